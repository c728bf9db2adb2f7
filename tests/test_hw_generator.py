"""The on-chip basis generator against poshw.bases, bit for bit (raw and value streams)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from poshw.bases import Family, basis_chunk, raw_stream, stream_seed
from poshw.hw.generator import BasisGenerator


def run_generator(family, seeds, n):
    """Raw and value streams of ``n`` entries per seed, reseeding between streams."""
    dut = BasisGenerator(family)
    raws, vals = [], []

    async def tb(ctx):
        for seed in seeds:
            r, v = [], []
            ctx.set(dut.seed, seed)
            ctx.set(dut.advance, 1)
            for e in range(n):
                ctx.set(dut.load, e == 0)
                r.append(ctx.get(dut.raw))
                v.append(ctx.get(dut.value))
                await ctx.tick()
            raws.append(r)
            vals.append(v)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return np.array(raws, dtype=np.uint64), np.array(vals, dtype=np.int64)


@pytest.mark.parametrize("family", [Family.GAUSS, Family.RADEMACHER, Family.TERNARY])
def test_generator_matches_software(family):
    seeds = [stream_seed(11, 2, 0, 0, k) for k in range(3)] + [1, 0xFFFFFFFF]
    n = 300
    raws, vals = run_generator(family, seeds, n)
    for i, s in enumerate(seeds):
        np.testing.assert_array_equal(raws[i], raw_stream(s, 0, n).astype(np.uint64))
    for k in range(3):
        np.testing.assert_array_equal(vals[k], basis_chunk(family, 11, (2, 0, 0), k, 0, n))
    lo, hi = family.value_range
    assert lo <= vals.min() and vals.max() <= hi


def test_generator_golden_vector():
    # xorshift32(1) with the 13/17/5 triple: 270369, then 67634689 (Marsaglia 2003)
    raws, _ = run_generator(Family.GAUSS, [1], 2)
    assert list(raws[0]) == [270369, 67634689]


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_generator_rejects_bad_family():
    with pytest.raises(ValueError, match="unknown family"):
        BasisGenerator("normal")
