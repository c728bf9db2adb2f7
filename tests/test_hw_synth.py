"""WeightSynth (weighted-sum accumulator) against a numpy sum, and its cycle count."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from poshw.bases import Family, basis_stack, rank1_vectors, stream_seeds
from poshw.hw.synth import WeightSynth
from poshw.ir import INT8, BasisGroup, BasisSource, Format, Synth


def _round_shift(v, s):
    return v if s == 0 else (v + (1 << (s - 1))) >> s


def naive_synth(syn: Synth, coefs, shift, wfmt):
    """acc = sum_k a_k M_k (int64), W = sat(round_shift(acc, shift))."""
    acc = np.zeros(syn.entries, dtype=np.int64)
    for g, grp in enumerate(syn.groups):
        if grp.family is Family.RANK1:
            U, V = rank1_vectors(grp.seed, grp.path, grp.count, syn.rows, syn.cols)
            M = np.einsum("kr,kc->krc", U.astype(np.int64), V.astype(np.int64)).reshape(grp.count, -1)
        else:
            M = basis_stack(grp.family, grp.seed, grp.path, grp.count, syn.entries).astype(np.int64)
        acc += (np.asarray(coefs[g], dtype=np.int64)[:, None] * M).sum(0)
    w = np.array([_round_shift(int(v), shift) for v in acc])
    return acc, np.clip(w, wfmt.lo, wfmt.hi).reshape(syn.rows, syn.cols)


def roms_for(syn: Synth):
    basis, seeds = {}, {}
    for g, grp in enumerate(syn.groups):
        if grp.source is BasisSource.GENERATOR:
            seeds[g] = stream_seeds(grp.seed, grp.path, grp.count)
        elif grp.family is Family.RANK1:
            U, V = rank1_vectors(grp.seed, grp.path, grp.count, syn.rows, syn.cols)
            basis[g] = np.concatenate([U, V], axis=1)
        else:
            basis[g] = basis_stack(grp.family, grp.seed, grp.path, grp.count, syn.entries)
    return basis, seeds


def run_synth(syn: Synth, wfmt: Format, lanes: int, coefs, shift):
    basis, seeds = roms_for(syn)
    dut = WeightSynth(syn, wfmt, lanes, basis_roms=basis, seeds=seeds)
    blocks = -(-syn.rows // lanes)
    mem = np.zeros((blocks * syn.cols, lanes), dtype=np.int64)
    out = {}

    async def tb(ctx):
        G = len(syn.groups)
        for g in range(G):
            for i, a in enumerate(coefs[g]):
                ctx.set(dut.p_en, 1); ctx.set(dut.p_field, g); ctx.set(dut.p_idx, i)
                ctx.set(dut.p_data, int(a) & 0xFFFFFFFF)
                await ctx.tick()
        ctx.set(dut.p_field, G); ctx.set(dut.p_data, shift); ctx.set(dut.p_idx, 0)
        await ctx.tick()
        ctx.set(dut.p_en, 0)
        ctx.set(dut.start, 1)
        cycle = 0
        while True:
            if cycle == 1:
                ctx.set(dut.start, 0)
            en = ctx.get(dut.w_en)
            if en:
                addr, data = ctx.get(dut.w_addr), ctx.get(dut.w_data)
                for lane in range(lanes):
                    if en >> lane & 1:
                        v = (data >> (lane * wfmt.bits)) & ((1 << wfmt.bits) - 1)
                        mem[addr, lane] = v - (1 << wfmt.bits) if v >> (wfmt.bits - 1) else v
            if ctx.get(dut.last):
                out["cycles"] = cycle + 1
                break
            await ctx.tick()
            cycle += 1
            assert cycle < 10 * syn.synth_cycles() + 100

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    W = np.zeros((blocks * lanes, syn.cols), dtype=np.int64)
    for b in range(blocks):
        for l in range(lanes):
            W[b * lanes + l] = mem[b * syn.cols:(b + 1) * syn.cols, l]
    return W[:syn.rows], out["cycles"]


@pytest.mark.parametrize("source", [BasisSource.GENERATOR, BasisSource.ROM])
def test_synth_mixed_groups(source):
    groups = (BasisGroup(Family.GAUSS, 3, source, 7, (1, 0, 0)),
              BasisGroup(Family.RADEMACHER, 2, source, 7, (1, 0, 1)),
              BasisGroup(Family.TERNARY, 2, source, 7, (1, 0, 2)),
              BasisGroup(Family.RANK1, 2, source, 7, (1, 0, 3)))
    syn = Synth(3, 4, groups, coef_fmt=INT8)
    rng = np.random.default_rng(0)
    coefs = [rng.integers(-128, 128, g.count) for g in groups]
    coefs[0][0] = -128
    wfmt = INT8
    _, want = naive_synth(syn, coefs, 5, wfmt)
    got, cycles = run_synth(syn, wfmt, 2, coefs, 5)
    assert cycles == syn.synth_cycles()
    np.testing.assert_array_equal(got, want)


def test_synth_no_multiplier_saturates():
    groups = (BasisGroup(Family.RADEMACHER, 4, BasisSource.GENERATOR, 3, (0, 0, 0)),
              BasisGroup(Family.TERNARY, 3, BasisSource.ROM, 3, (0, 0, 1)))
    syn = Synth(2, 5, groups, coef_fmt=INT8)
    assert not syn.needs_multiplier()
    rng = np.random.default_rng(1)
    coefs = [rng.integers(-128, 128, g.count) for g in groups]
    for shift in (0, 2):
        acc, want = naive_synth(syn, coefs, shift, Format(6, True))
        got, cycles = run_synth(syn, Format(6, True), 1, coefs, shift)
        assert cycles == syn.synth_cycles()
        np.testing.assert_array_equal(got, want)
    assert np.abs(acc).max() > 31  # the saturation was exercised


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_synth_constructor_checks():
    syn = Synth(2, 2, (BasisGroup(Family.GAUSS, 1, BasisSource.ROM, 0, (0,)),))
    with pytest.raises(ValueError, match="no basis ROM"):
        WeightSynth(syn, INT8)
    with pytest.raises(TypeError):
        WeightSynth("x", INT8)
    with pytest.raises(ValueError, match="lanes"):
        WeightSynth(syn, INT8, 3, basis_roms={0: np.zeros(4)})
    with pytest.raises(ValueError, match="outside"):
        WeightSynth(syn, INT8, 1, basis_roms={0: np.full(4, 99)})
