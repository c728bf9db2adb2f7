"""poshw: product-of-sums neural networks compiled to verified hardware.

Data flows one way::

    spec (poshw.spec) -> torch model (poshw.nn) -> trained coefficient set (poshw.train)
        -> fixed point (poshw.fixedpoint) -> hardware IR (poshw.ir) -> artifacts (poshw.compiler)
        -> numba simulator (poshw.sim) / Amaranth RTL (poshw.hw) -> cocotb verification (sim/)
"""

__version__ = "0.1.0"


class PoshwError(Exception):
    """A user-facing error: bad input, corrupt file, unsupported configuration.

    The CLI prints the message (no traceback) and exits non-zero.
    """
