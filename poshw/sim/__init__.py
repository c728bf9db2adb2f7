"""The numba simulator of a build: bit-accurate fast mode and cycle-stepped mode.

``Simulator(build)`` runs the IR, ROMs and parameter image of a
build directory (``poshw.compiler.load_build``); ``predict(images)`` is the same
interface as the float model and the golden model.
"""

from .simulator import SimError, SimResult, Simulator, SteppedResult, dtype_for

__all__ = ["SimError", "SimResult", "Simulator", "SteppedResult", "dtype_for"]
