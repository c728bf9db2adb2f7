"""On-chip basis generator: xorshift32 (13/17/5) plus the families' exact value maps.

The same generator and maps as :mod:`poshw.bases` (docs/BASES.md), one entry per
cycle, so a large synthesised layer needs a seed ROM (one 32-bit state per basis)
instead of a basis ROM.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..bases import Family

__all__ = ["BasisGenerator", "xorshift32_step", "value_map", "VALUE_BITS"]

#: width of a (signed) basis value of each elementwise family
VALUE_BITS = {Family.GAUSS: 7, Family.RADEMACHER: 2, Family.TERNARY: 2, Family.RANK1: 7}


def xorshift32_step(x):
    """One xorshift32 step (Marsaglia's 13, 17, 5) of a 32-bit value, as an expression."""
    a = (x ^ (x << 13))[:32]
    b = a ^ (a >> 17)
    return (b ^ (b << 5))[:32]


def value_map(m: Module, raw, family: Family, name: str = "value") -> Signal:
    """The family's integer value of a raw 32-bit output (docs/BASES.md), as a signal.

    gauss (and the u, v entries of rank1): sum of the four nibbles of ``raw >> 16``
    minus 30; rademacher: +1 if bit 31 is 0 else -1; ternary: ``raw >> 30`` 0 -> -1,
    1 -> +1, 2 or 3 -> 0.
    """
    family = Family(family)
    v = Signal(signed(VALUE_BITS[family]), name=name)
    if family in (Family.GAUSS, Family.RANK1):
        h = raw[16:32]
        m.d.comb += v.eq(h[0:4] + h[4:8] + h[8:12] + h[12:16] - 30)
    elif family is Family.RADEMACHER:
        m.d.comb += v.eq(Mux(raw[31], -1, 1))
    else:
        top = raw[30:32]
        m.d.comb += v.eq(Mux(top[1], 0, Mux(top[0], 1, -1)))
    return v


class BasisGenerator(wiring.Component):
    """xorshift32 basis generator with a family value map, one entry per cycle.

    Parameters
    ----------
    family : :class:`poshw.bases.Family`
        Value map applied to every raw output (rank1 uses the gauss map for u and v).

    Ports
    -----
    seed : In(32)
        Stream state to start from (a seed ROM word).
    load : In(1)
        Use ``seed`` instead of the held state as the current state this cycle.
    advance : In(1)
        Step: the held state becomes ``raw`` at the clock edge.
    raw : Out(32)
        ``xorshift32(current state)``: entry ``e`` of a stream is the state after
        ``e + 1`` steps, so with ``load`` high in the cycle of entry 0 and ``advance``
        high in every entry cycle, ``raw`` is the raw output of entry ``e`` in cycle ``e``.
    value : Out(signed)
        The family's value of ``raw`` (combinational).
    """

    def __init__(self, family: Family):
        try:
            family = Family(family)
        except ValueError:
            raise ValueError(f"BasisGenerator: unknown family {family!r}") from None
        self.family = family
        super().__init__({
            "seed": In(32), "load": In(1), "advance": In(1),
            "raw": Out(32), "value": Out(signed(VALUE_BITS[family])),
        })

    def elaborate(self, platform):
        m = Module()
        state = Signal(32, init=1)
        cur = Mux(self.load, self.seed, state)
        m.d.comb += self.raw.eq(xorshift32_step(cur))
        with m.If(self.advance):
            m.d.sync += state.eq(self.raw)
        v = value_map(m, self.raw, self.family)
        m.d.comb += self.value.eq(v)
        return m
