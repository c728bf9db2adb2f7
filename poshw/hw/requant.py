"""Bias/requantise/ReLU arithmetic (docs/FIXED_POINT.md) and the pipelined requantiser.

``round_shift(v, s)`` is round half up: ``v`` if ``s == 0`` else
``floor((v + 2**(s-1)) / 2**s)``; ``sat`` clamps to a format's ``[lo, hi]`` (a ReLU
stage has an unsigned format, so its lower bound 0 is the ReLU).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..ir import REQUANT_MULT, REQUANT_SHIFT, Format

__all__ = ["fmt_shape", "round_shift", "round_shift_saturate", "saturate", "Requantiser"]


def fmt_shape(fmt: Format) -> Shape:
    """The Amaranth shape of an IR number format."""
    return signed(fmt.bits) if fmt.signed else unsigned(fmt.bits)


def round_shift(v, s, max_shift: int | None = None):
    """``round_shift(v, s)`` (round half up) of a signed expression by an unsigned shift ``s``.

    ``max_shift``: largest shift that can occur (defaults to the full range of ``s``).
    """
    if max_shift is None:
        max_shift = (1 << len(s)) - 1
    half = (Const(1, 1) << s)[:max_shift + 1] >> 1
    return (v + half) >> s


def _sext(v, width: int):
    """``v`` (signed) sign-extended to at least ``width`` bits."""
    v = v.as_signed()
    n = len(v)
    return v if n >= width else Cat(v, v[-1].replicate(width - n)).as_signed()


def round_shift_saturate(v, s, fmt: Format):
    """``sat(round_shift(v, s), fmt)`` with a short critical path (same values as the rule).

    ``round_shift(v, s) = (v >> s) + r`` with the round bit ``r`` = bit ``s - 1`` of ``v``
    (0 for ``s == 0``), so there is no wide rounding adder: a barrel shift, then range
    checks on the shifted value's upper bits (reductions, no wide comparators) and a
    ``fmt.bits``-wide increment. If ``q = v >> s`` is at or beyond a bound, the result
    is that bound whatever ``r`` is; otherwise ``q + r`` cannot pass ``hi``.
    """
    b = fmt.bits
    v = _sext(v, b + 2)
    n = len(v)
    smax = (1 << len(s)) - 1
    vx = Cat(Const(0, 1), v, v[-1].replicate(max(smax + 1 - n, 0)))  # bit k = v[k-1], sign-extended
    r = vx.bit_select(s, 1)
    q = v >> s
    neg = q[-1]
    low = q[:b]
    if fmt.signed:
        top = q[b - 1:]
        in_range = top.all() | ~top.any()
        at_hi = in_range & ~low[-1] & low[:b - 1].all() if b > 1 else in_range & Const(0, 1)
        bounded = Mux(neg, Const(fmt.lo, signed(b)), Const(fmt.hi, signed(b)))
        return Mux(~in_range | at_hi, bounded.as_unsigned(), (low + r)[:b])
    top = q[b:]
    in_range = ~top.any()
    at_hi = in_range & low.all()
    return Mux(neg, Const(0, b), Mux(~in_range | at_hi, Const(fmt.hi, b), (low + r)[:b]))


def saturate(v, fmt: Format):
    """``v`` clamped to ``[fmt.lo, fmt.hi]`` (an expression of the format's shape)."""
    lo, hi = fmt.lo, fmt.hi
    return Mux(v > hi, hi, Mux(v < lo, lo, v)).as_signed()[:fmt.bits]


class Requantiser(wiring.Component):
    """``y = sat(round_shift(value * mult, shift), out_fmt)``, one value per cycle, latency 1.

    The product ``value * mult`` is registered at the clock edge after ``value``; the
    rounding shift and saturation are combinational from that register, so ``y``
    belongs to the ``value`` of the previous cycle. With ``requant=False`` the value is
    only delayed (``y = value``: logits).

    Parameters
    ----------
    value_bits : int
        Width of the signed input (the stage's accumulator, bias included).
    out_fmt : :class:`poshw.ir.Format`
        Output format (unsigned for a ReLU stage).
    requant : bool
        Requantise (True) or pass the accumulator on (False; ``out_fmt`` must then be
        ``int<value_bits>``).

    Ports
    -----
    value : In(signed(value_bits))
    mult : In(16)
        Requantisation multiplier (uint16).
    shift : In(6)
        Requantisation shift (0..63).
    y : Out(out_fmt)
        Result for the previous cycle's ``value``.
    """

    def __init__(self, value_bits: int, out_fmt: Format, requant: bool = True):
        if not isinstance(value_bits, int) or not 1 <= value_bits <= 64:
            raise TypeError(f"Requantiser: value_bits must be an integer in 1..64, not {value_bits!r}")
        if not isinstance(out_fmt, Format):
            raise TypeError(f"Requantiser: out_fmt must be a poshw.ir.Format, not {out_fmt!r}")
        if not requant and out_fmt != Format(value_bits, True):
            raise ValueError(f"Requantiser: without requantisation the output is int{value_bits}, "
                             f"not {out_fmt}")
        self.value_bits, self.out_fmt, self.requant = value_bits, out_fmt, bool(requant)
        super().__init__({
            "value": In(signed(value_bits)),
            "mult": In(REQUANT_MULT.bits),
            "shift": In(REQUANT_SHIFT.bits),
            "y": Out(fmt_shape(out_fmt)),
        })

    def elaborate(self, platform):
        m = Module()
        if not self.requant:
            held = Signal(signed(self.value_bits))
            m.d.sync += held.eq(self.value)
            m.d.comb += self.y.eq(held)
            return m
        prod = Signal(signed(self.value_bits + REQUANT_MULT.bits + 1))
        m.d.sync += prod.eq(self.value * self.mult)
        m.d.comb += self.y.eq(round_shift_saturate(prod, self.shift, self.out_fmt))
        return m
