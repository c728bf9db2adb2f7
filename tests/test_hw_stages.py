"""Hadamard, gather and argmax stages against naive models, and their cycle counts."""

from __future__ import annotations

import numpy as np
import pytest

from poshw.bases import Family, basis_stack, permutation_prefix, stream_seeds
from poshw.hw.argmax import ArgmaxStage
from poshw.hw.gather import GatherStage
from poshw.hw.hadamard import HadamardStage
from poshw.ir import INT8, UINT8, Argmax, BasisGroup, BasisSource, Format, Gather, Hadamard, Synth

from hw_bench import run_stage


def _rs(v, s):
    return v if s == 0 else (v + (1 << (s - 1))) >> s


@pytest.mark.parametrize("channels_in", [1, 3])
def test_hadamard(channels_in):
    F, n = 3, 5
    grp = BasisGroup(Family.GAUSS, 2, BasisSource.GENERATOR, 4, (0, 0, 0))
    st = Hadamard("h", n=n, filters=F, channels_in=channels_in, in_fmt=UINT8,
                  synth=Synth(F, n, (grp,)), bias=True, requant=True, relu=False, out_fmt=INT8)
    rng = np.random.default_rng(channels_in)
    x = rng.integers(0, 256, size=channels_in * n)
    coef = np.array([37, -90])
    sshift, bias, mult, shift = 4, rng.integers(-3000, 3000, size=F), 40000, 18
    params = {"coef.0": coef, "synth_shift": [sshift], "bias": bias, "requant_mult": [mult],
              "requant_shift": [shift]}
    unit = HadamardStage(st, seeds={0: stream_seeds(4, (0, 0, 0), 2)})
    y, cycles, scycles = run_stage(unit, st, x, params, synth=True)
    M = basis_stack(Family.GAUSS, 4, (0, 0, 0), 2, F * n).astype(np.int64)
    d = np.clip([_rs(int(v), sshift) for v in coef @ M], -128, 127).reshape(F, n)
    xs = x.reshape(channels_in, n)
    want = []
    for f in range(F):
        for i in range(n):
            acc = d[f, i] * xs[0 if channels_in == 1 else f, i] + bias[f]
            want.append(min(max(_rs(acc * mult, shift), -128), 127))
    np.testing.assert_array_equal(y, want)
    assert cycles == st.cycles() and scycles == st.synth_cycles()


def test_gather():
    st = Gather("g", n_in=9, n_out=4, channels=2, fmt=INT8, index_origin="permutation", seed=3, path=(1,))
    idx = permutation_prefix(3, (1,), 9, 4)
    x = np.random.default_rng(0).integers(-128, 128, size=18)
    y, cycles, _ = run_stage(GatherStage(st, idx), st, x, {})
    want = np.concatenate([x[c * 9 + idx] for c in range(2)])
    np.testing.assert_array_equal(y, want)
    assert cycles == st.cycles()


@pytest.mark.parametrize("values", [[3, -7, 3, 9, 9, -1], [-5, -5, -5], [0]])
def test_argmax_lowest_index_wins(values):
    st = Argmax("a", n=len(values), in_fmt=Format(20, True))
    unit = ArgmaxStage(st)
    from amaranth.sim import Simulator
    from hw_bench import _Bench

    bench = _Bench(unit, np.array(values), 20)
    got = {}

    async def tb(ctx):
        ctx.set(unit.start, 1)
        await ctx.tick()
        ctx.set(unit.start, 0)
        c = 1
        while not ctx.get(unit.last):
            await ctx.tick()
            c += 1
        await ctx.tick()
        got["cycles"] = c + 1
        got["cls"] = ctx.get(unit.cls)
        lg = ctx.get(unit.logits)
        got["logits"] = [((lg >> (20 * k)) & 0xFFFFF) - (1 << 20) * (((lg >> (20 * k)) >> 19) & 1)
                         for k in range(len(values))]

    sim = Simulator(bench)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert got["cls"] == int(np.argmax(values))
    assert got["logits"] == values
    assert got["cycles"] == st.cycles()


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_stage_checks():
    st = Gather("g", n_in=9, n_out=4)
    with pytest.raises(ValueError, match="index ROM"):
        GatherStage(st, [0, 1, 2, 9])
    with pytest.raises(ValueError, match="8 bits"):
        ArgmaxStage(Argmax("a", n=300))
    with pytest.raises(TypeError):
        HadamardStage(st)
