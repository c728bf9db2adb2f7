"""The matvec stage (P MAC lanes, bias, requantise, ReLU) against numpy, and its cycle count."""

from __future__ import annotations

import numpy as np
import pytest

from poshw.hw.matvec import MatVecStage, pack_lanes
from poshw.hw.synth import to_words
from poshw.ir import INT8, UINT8, MatVec, WeightSource

from hw_bench import run_stage


def naive_matvec(st: MatVec, W, x, bias, mult, shift):
    acc = W.astype(np.int64) @ np.asarray(x, dtype=np.int64) + (bias if st.bias else 0)
    if not st.requant:
        return acc
    p = acc * mult
    r = p if shift == 0 else (p + (1 << (shift - 1))) >> shift
    return np.clip(r, st.out_fmt.lo, st.out_fmt.hi)


@pytest.mark.parametrize("n_out,n_in,lanes,relu", [(5, 7, 2, False), (6, 4, 3, True), (3, 9, 1, False),
                                                   (4, 5, 4, True)])
def test_matvec_ram_weights(n_out, n_in, lanes, relu):
    st = MatVec("mv", n_in=n_in, n_out=n_out, lanes=lanes, in_fmt=UINT8, weight_source=WeightSource.RAM,
                bias=True, requant=True, relu=relu, out_fmt=UINT8 if relu else INT8)
    rng = np.random.default_rng(n_out * 100 + n_in)
    W = rng.integers(-128, 128, size=(n_out, n_in))
    W[0, 0] = -128
    x = rng.integers(0, 256, size=n_in)
    x[0] = 255
    bias = rng.integers(-5000, 5000, size=n_out)
    mult, shift = int(rng.integers(1 << 14, 1 << 16)), 17
    params = {"weights": W, "bias": bias, "requant_mult": [mult], "requant_shift": [shift]}
    y, cycles, _ = run_stage(MatVecStage(st), st, x, params)
    want = naive_matvec(st, W, x, bias, mult, shift)
    assert cycles == st.cycles()
    np.testing.assert_array_equal(y, want)


def test_matvec_rom_logits():
    """ROM weights, no bias, no requantisation: the outputs are the exact accumulators."""
    st = MatVec("mv", n_in=6, n_out=5, lanes=2, in_fmt=INT8, weight_source=WeightSource.ROM,
                rom_origin="test", bias=False, requant=False)
    rng = np.random.default_rng(7)
    W = rng.integers(-128, 128, size=(5, 6))
    x = rng.integers(-128, 128, size=6)
    y, cycles, _ = run_stage(MatVecStage(st, weights=W), st, x, {})
    np.testing.assert_array_equal(y, W @ x)  # ctx.get returns signed values
    assert cycles == st.cycles() == 1 + 3 * (6 + 2 + 2)


def test_pack_lanes_matches_compiler():
    from poshw.compiler.roms import lane_pack
    W = np.random.default_rng(3).integers(-128, 128, size=(7, 5))
    assert pack_lanes(W, 3, 8) == lane_pack(W, 3, 8)
    assert to_words([-1, 0, 1], 2) == [3, 0, 1]


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_matvec_checks():
    st = MatVec("mv", n_in=3, n_out=2, lanes=1, weight_source=WeightSource.ROM, rom_origin="t",
                requant=False, bias=False)
    with pytest.raises(ValueError, match="needs its weights"):
        MatVecStage(st)
    with pytest.raises(ValueError, match="shape"):
        MatVecStage(st, weights=np.zeros((3, 3)))
    with pytest.raises(TypeError):
        MatVecStage("mv")
    ram = MatVec("mv", n_in=3, n_out=2, lanes=1, requant=False, bias=False)
    with pytest.raises(ValueError, match="only given for a ROM"):
        MatVecStage(ram, weights=np.zeros((2, 3)))
