"""The requantiser against the golden rule of docs/FIXED_POINT.md."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from poshw.hw.requant import Requantiser
from poshw.ir import Format


def golden_requant(v: int, mult: int, shift: int, fmt: Format) -> int:
    p = v * mult
    r = p if shift == 0 else (p + (1 << (shift - 1))) >> shift
    return min(max(r, fmt.lo), fmt.hi)


def _golden():
    try:  # the shared golden reference, when present
        from poshw.fixedpoint import golden
        return getattr(golden, "requantize", None)
    except ImportError:
        return None


@pytest.mark.parametrize("bits,fmt", [(24, Format(8, False)), (47, Format(8, True)), (12, Format(4, True)),
                                      (4, Format(24, True)), (20, Format(1, False)), (9, Format(9, False))])
def test_requantiser_matches_rule(bits, fmt):
    dut = Requantiser(bits, fmt)
    rng = random.Random(bits)
    vlo, vhi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    cases = [(vlo, 65535, 0), (vhi, 65535, 63), (-3, 1, 1), (-2, 1, 1),
             (-1, 1, 1), (1, 1, 1), (3, 1, 1), (5, 3, 2), (-5, 3, 2), (vlo, 1, 0), (vhi, 1, 0)]
    for _ in range(600):
        s = rng.randrange(0, 64) if rng.random() < 0.5 else rng.randrange(0, 24)
        cases.append((rng.randrange(vlo, vhi + 1), rng.randrange(0, 65536), s))
    # values whose shifted product lands next to the bounds, with either round bit
    for _ in range(300):
        s = rng.randrange(0, 12)
        target = rng.choice([fmt.hi - 1, fmt.hi, fmt.hi + 1, fmt.lo - 1, fmt.lo, fmt.lo + 1])
        p = (target << s) + rng.choice([0, (1 << s) - 1, 1 << max(s - 1, 0), max((1 << max(s - 1, 0)) - 1, 0)])
        mult = rng.choice([1, 3, 7])
        v = p // mult
        if vlo <= v <= vhi:
            cases.append((v, mult, s))

    async def tb(ctx):
        prev = None
        for v, mult, shift in cases + [(0, 0, 0)]:
            ctx.set(dut.value, v)
            ctx.set(dut.mult, mult)
            await ctx.tick()
            if prev is not None:
                pass
            ctx.set(dut.shift, shift)
            assert ctx.get(dut.y) == golden_requant(v, mult, shift, fmt), (v, mult, shift)
            prev = v

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()


def test_requantiser_passthrough():
    dut = Requantiser(20, Format(20, True), requant=False)

    async def tb(ctx):
        for v in (-(1 << 19), -1, 0, 7, (1 << 19) - 1):
            ctx.set(dut.value, v)
            await ctx.tick()
            assert ctx.get(dut.y) == v

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_requantiser_checks():
    with pytest.raises(ValueError, match="without requantisation"):
        Requantiser(20, Format(8, True), requant=False)
    with pytest.raises(TypeError):
        Requantiser(0, Format(8, True))
    with pytest.raises(TypeError):
        Requantiser(20, "int8")
