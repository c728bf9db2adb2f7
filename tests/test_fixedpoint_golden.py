"""The golden reference against the rules of docs/FIXED_POINT.md, worked by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from poshw.bases import Family, basis_stack, rank1_vectors, stream_seeds
from poshw.compiler.roms import rom_contents
from poshw.fixedpoint import golden as G
from poshw.ir import (
    INT8, INT32, UINT8, Argmax, BasisGroup, BasisSource, Format, Gather, Hadamard, MatVec, NetworkIR,
    Synth, WeightSource,
)


# --- rounding and saturation ---------------------------------------------------------------

def test_round_shift_examples():
    # round half up: +2.5 -> 3, -2.5 -> -2, -1.5 -> -1, -1.25 -> -1, 7 >> 0 = 7
    assert G.round_shift(5, 1) == 3
    assert G.round_shift(-5, 1) == -2
    assert G.round_shift(-6, 2) == -1
    assert G.round_shift(-5, 2) == -1
    assert G.round_shift(7, 0) == 7
    assert G.round_shift(-(1 << 46), 63) == 0
    assert list(G.round_shift(np.array([1, 2, 3]), np.array([0, 1, 2]))) == [1, 1, 1]


@given(st.integers(-(1 << 61), (1 << 61) - 1), st.integers(0, 63))
def test_round_shift_is_floor_of_v_plus_half(v, s):
    want = v if s == 0 else (v + (1 << (s - 1))) >> s  # Python's >> floors
    assert int(G.round_shift(v, s)) == want
    # the definition: the nearest integer to v / 2**s, halves rounded up
    if s:
        assert abs(want - v / 2 ** s) <= 0.5 + 1e-9 * abs(v / 2 ** s)


def test_round_shift_rejects_bad_shift():
    with pytest.raises(G.GoldenError):
        G.round_shift(1, 64)
    with pytest.raises(G.GoldenError):
        G.round_shift(1, -1)


@given(st.lists(st.integers(-(1 << 40), 1 << 40), max_size=20), st.integers(1, 32), st.booleans())
def test_saturate_clamps_and_counts(values, bits, signed):
    fmt = Format(bits, signed)
    got = G.saturate(values, fmt)
    assert all(fmt.lo <= int(v) <= fmt.hi for v in got)
    assert [int(g) for g in got] == [min(max(v, fmt.lo), fmt.hi) for v in values]
    assert G.count_saturated(values, fmt) == sum(1 for v in values if not fmt.lo <= v <= fmt.hi)


def test_requantize_by_hand():
    # 1000 * 3 = 3000; (3000 + 8) >> 4 = 188 -> int8 saturates to 127
    y, n = G.requantize(np.array([1000, -1000, 40]), 3, 4, INT8)
    assert list(y) == [127, -128, 8] and n == 2        # -3000 + 8 >> 4 = -188; 120 + 8 >> 4 = 8
    y, n = G.requantize(np.array([-7, 5, 600]), 1, 1, UINT8)  # ReLU: lower bound 0
    assert list(y) == [0, 3, 255] and n == 1                  # only 300 > 255 is an overflow


def test_exact_matmul_large_values_stay_exact():
    a = np.array([[(1 << 40) + 1, 3]], dtype=np.int64)
    b = np.array([[1 << 20], [5]], dtype=np.int64)   # beyond 2**53: the int64 path
    assert G.exact_matmul(a, b)[0, 0] == ((1 << 40) + 1) * (1 << 20) + 15


# --- stages by hand -------------------------------------------------------------------------

def _ir(*stages, shape=(2, 3)):
    return NetworkIR("t", tuple(stages), input_len=shape[0] * shape[1], input_shape=shape)


def _with_head(first, shape):
    """``first`` followed by a 2-output logits matvec and the argmax."""
    head = MatVec("o", n_in=first.n_outputs, n_out=2, in_fmt=first.output_fmt,
                  weight_source=WeightSource.RAM, bias=False, requant=False)
    return _ir(first, head, Argmax("a", n=2, in_fmt=head.out_fmt), shape=shape)


def test_matvec_by_hand():
    st_ = MatVec("m", n_in=3, n_out=2, lanes=1, in_fmt=UINT8, weight_source=WeightSource.RAM,
                 bias=True, requant=True, relu=False, out_fmt=INT8)
    w = np.array([[1, -2, 3], [4, 5, -6]])
    x = np.array([[10, 20, 30]])
    # acc = [10 - 40 + 90 + 7, 40 + 100 - 180 - 9] = [67, -49]; * 5 = [335, -245]; >> 2 with +2
    p = {"weights": w, "bias": np.array([7, -9]), "requant_mult": np.array([5]), "requant_shift": np.array([2])}
    res = G.stage_forward(st_, x, {}, p)
    assert res.y.tolist() == [[(335 + 2) >> 2, (-245 + 2) >> 2]] == [[84, -61]]
    assert res.saturated == 0


def test_logits_stage_passes_the_accumulator():
    st_ = MatVec("m", n_in=2, n_out=2, in_fmt=INT8, weight_source=WeightSource.RAM, bias=False, requant=False)
    res = G.stage_forward(st_, np.array([[3, -4]]), {}, {"weights": np.array([[1, 1], [2, -1]])})
    assert res.y.tolist() == [[-1, 10]]
    assert st_.out_fmt == Format(st_.acc_bits, True)


def _hadamard(channels_in, filters, n):
    syn = Synth(filters, n, (BasisGroup(Family.RADEMACHER, 1, BasisSource.ROM, 0, (0,)),), INT8)
    return Hadamard("h", n=n, filters=filters, channels_in=channels_in, in_fmt=INT8, synth=syn,
                    bias=True, requant=True, relu=False, out_fmt=INT8)


def test_hadamard_broadcast_and_depthwise_by_hand():
    d = np.array([[1, -1, 2], [3, 0, -2]])
    p = {"bias": np.array([1, -1]), "requant_mult": np.array([1]), "requant_shift": np.array([0])}
    x = np.array([[5, 6, 7]])
    # broadcast: filter f multiplies channel 0: [5+1, -6+1, 14+1, 15-1, 0-1, -14-1]
    res = G.stage_forward(_hadamard(1, 2, 3), x, {}, p, weights=d)
    assert res.y.tolist() == [[6, -5, 15, 14, -1, -15]]
    x2 = np.array([[5, 6, 7, 1, 2, 3]])
    # depthwise: filter 1 multiplies channel 1 = [1, 2, 3]: [3-1, 0-1, -6-1]
    res = G.stage_forward(_hadamard(2, 2, 3), x2, {}, p, weights=d)
    assert res.y.tolist() == [[6, -5, 15, 2, -1, -7]]


def test_gather_and_argmax_lowest_index_wins_ties():
    g = Gather("g", n_in=3, n_out=2, channels=2, fmt=INT8)
    res = G.stage_forward(g, np.array([[1, 2, 3, 4, 5, 6]]), {"index": np.array([2, 0])}, {})
    assert res.y.tolist() == [[3, 1, 6, 4]]
    a = Argmax("a", n=4, in_fmt=INT32)
    res = G.stage_forward(a, np.array([[1, 7, 7, 2], [-3, -3, -5, -4]]), {}, {})
    assert res.y.tolist() == [1, 0]


def test_stage_input_outside_format_is_refused():
    st_ = MatVec("m", n_in=2, n_out=1, in_fmt=INT8, weight_source=WeightSource.RAM, bias=False, requant=False)
    with pytest.raises(G.GoldenError, match="outside int8"):
        G.stage_forward(st_, np.array([[200, 0]]), {}, {"weights": np.array([[1, 1]])})


# --- weight synthesis ----------------------------------------------------------------------

def _synth_stage(groups, rows=3, cols=4, wfmt=INT8):
    return MatVec("s", n_in=cols, n_out=rows, lanes=1, in_fmt=UINT8, weight_source=WeightSource.SYNTH,
                  weight_fmt=wfmt, synth=Synth(rows, cols, groups, INT8), bias=False, requant=True,
                  out_fmt=INT8)


@pytest.mark.parametrize("family", list(Family))
def test_synthesis_generator_equals_rom_and_explicit_sum(family):
    rng = np.random.default_rng(1)
    coef = rng.integers(-128, 128, size=5)
    p = {"coef.0": coef, "synth_shift": np.array([3])}
    ws = []
    for source in BasisSource:
        st_ = _synth_stage((BasisGroup(family, 5, source, 7, (2, 1, 0)),))
        ir = _with_head(st_, (1, 4))
        roms = G.stage_roms(rom_contents(ir), 0)
        ws.append(G.synthesize(st_, roms, p))
    assert np.array_equal(ws[0], ws[1])
    # explicit: sum_k a_k M_k, then round half up by 2**3 and saturate to int8
    if family is Family.RANK1:
        u, v = rank1_vectors(7, (2, 1, 0), 5, 3, 4)
        m = np.einsum("kr,kc->krc", u.astype(np.int64), v.astype(np.int64)).reshape(5, 12)
    else:
        m = basis_stack(family, 7, (2, 1, 0), 5, 12).astype(np.int64)
    acc = (coef[:, None] * m).sum(0).reshape(3, 4)
    want = np.clip((acc + 4) >> 3, -128, 127)
    assert np.array_equal(ws[0], want)


def test_seed_rom_holds_stream_seeds():
    st_ = _synth_stage((BasisGroup(Family.GAUSS, 4, BasisSource.GENERATOR, 3, (1, 0, 0)),))
    ir = _with_head(st_, (1, 4))
    assert np.array_equal(rom_contents(ir)["s0.seeds0"], stream_seeds(3, (1, 0, 0), 4).astype(np.int64))


def test_synthesis_saturation_is_counted():
    st_ = _synth_stage((BasisGroup(Family.RADEMACHER, 2, BasisSource.ROM, 0, (0,)),), wfmt=Format(4, True))
    roms = {"basis0": np.ones((2, 12), dtype=np.int64)}
    w, n = G.synthesize_with_count(st_, roms, {"coef.0": np.array([100, 27]), "synth_shift": np.array([2])})
    assert (w == 7).all() and n == 12  # (127 + 2) >> 2 = 32 -> int4 saturates to 7


def test_missing_parameter_is_an_error():
    st_ = _synth_stage((BasisGroup(Family.GAUSS, 2, BasisSource.ROM, 0, (0,)),))
    with pytest.raises(G.GoldenError, match="coef.0"):
        G.synthesize(st_, {"basis0": np.zeros((2, 12))}, {"synth_shift": np.array([0])})


# --- whole network --------------------------------------------------------------------------

def test_golden_forward_and_model_interface():
    from poshw.compiler.testing import random_ir, random_params
    rng = np.random.default_rng(5)
    ir = random_ir(rng, stages=3)
    params = random_params(ir, rng)
    roms = rom_contents(ir)
    images = rng.integers(0, 256, size=(7, *ir.input_shape)).astype(np.uint8)
    res = G.golden_forward(ir, roms, params, images, keep_activations=True)
    assert res.logits.shape == (7, ir.stages[-1].n) and res.logits.dtype == np.int64
    assert np.array_equal(res.classes, np.argmax(res.logits, axis=1))
    assert set(res.saturation) == {s.name for s in ir.stages}
    # stage by stage gives the same as the whole
    x = images.reshape(7, -1)
    for i, s in enumerate(ir.stages[:-1]):
        x = G.stage_forward(s, x, G.stage_roms(roms, i), params.get(i, {})).y
        assert np.array_equal(x, res.activations[s.name])
    model = G.GoldenModel.from_parts(ir, roms, params)
    assert np.array_equal(model.predict(images), res.classes)
    assert np.array_equal(model.run(images, batch_size=3).logits, res.logits)
    with pytest.raises(G.GoldenError, match="uint8"):
        model.predict(images.astype(np.int16))
