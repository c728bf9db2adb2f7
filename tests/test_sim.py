"""The numba simulator against the golden reference: bit-exact outputs, exact cycle counts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poshw.bases import Family
from poshw.compiler.artifacts import load_build, write_build
from poshw.compiler.roms import rom_contents
from poshw.compiler.testing import STAGE_KINDS, random_ir, random_params
from poshw.fixedpoint.golden import GoldenModel, all_weights, golden_forward
from poshw.ir import INT8, UINT8, Argmax, BasisGroup, BasisSource, Format, MatVec, NetworkIR, Synth, WeightSource
from poshw.sim import SimError, Simulator


def _check(ir, params, images, stepped=2):
    roms = rom_contents(ir)
    ref = golden_forward(ir, roms, params, images)
    sim = Simulator.from_parts(ir, roms, params)
    res = sim.run(images)
    assert np.array_equal(res.logits, ref.logits)
    assert np.array_equal(res.classes, ref.classes)
    assert res.saturation == ref.saturation
    if sim.use_vnni:  # the portable kernels too (the VNNI one runs where the host has it)
        sim.use_vnni = False
        assert np.array_equal(sim.run(images).logits, ref.logits)
        sim.use_vnni = True
    gw, gsat = all_weights(ir, roms, params)
    sw = sim.weights()
    assert all(np.array_equal(sw[i], gw[i]) for i in gw)
    assert sim.synth_saturation == gsat
    # cycle-stepped: same values, cycles equal to the formulas
    weights, cycles = sim.synthesize_cycle_stepped()
    assert cycles == ir.synth_cycles()
    assert all(np.array_equal(weights[i], gw[i]) for i in weights)
    for j in range(min(stepped, len(images))):
        r = sim.run_cycle_stepped(images[j])
        assert np.array_equal(r.logits, ref.logits[j]) and r.cls == ref.classes[j]
        assert r.cycles == ir.latency_cycles()
        assert r.stage_cycles == {"input": ir.input_len, **{s.name: s.cycles() for s in ir.stages}}
    return sim


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.integers(1, 4))
def test_random_designs_bit_exact(seed, stages):
    rng = np.random.default_rng(seed)
    ir = random_ir(rng, stages=stages)
    params = random_params(ir, rng)
    images = rng.integers(0, 256, size=(9, *ir.input_shape)).astype(np.uint8)
    _check(ir, params, images)


@pytest.mark.parametrize("kind", STAGE_KINDS)
@pytest.mark.parametrize("seed", range(4))
def test_every_stage_kind(kind, seed):
    rng = np.random.default_rng(1000 * seed + STAGE_KINDS.index(kind))
    ir = random_ir(rng, stages=2, kinds=(kind,), max_lanes=8)
    assert sum(kind in s.name for s in ir.stages) >= 2
    params = random_params(ir, rng)
    images = rng.integers(0, 256, size=(6, *ir.input_shape)).astype(np.uint8)
    _check(ir, params, images)


@pytest.mark.parametrize("family", list(Family))
@pytest.mark.parametrize("source", list(BasisSource))
@pytest.mark.parametrize("wbits", [8, 16])
def test_synth_families_sources_and_int16(family, source, wbits):
    rng = np.random.default_rng(7)
    synth = Synth(6, 12, (BasisGroup(family, 5, source, 3, (0, 0, 0)),), Format(wbits, True))
    s0 = MatVec("syn", n_in=12, n_out=6, lanes=4, in_fmt=UINT8, weight_source=WeightSource.SYNTH,
                weight_fmt=Format(wbits, True), synth=synth, bias=True, requant=True, relu=False,
                out_fmt=Format(16, True))
    s1 = MatVec("o", n_in=6, n_out=3, lanes=2, in_fmt=Format(16, True), weight_source=WeightSource.RAM,
                weight_fmt=Format(16, True), bias=True, requant=False)
    ir = NetworkIR("t", (s0, s1, Argmax("a", n=3, in_fmt=s1.out_fmt)), input_len=12, input_shape=(3, 4))
    params = random_params(ir, rng)
    images = rng.integers(0, 256, size=(6, 3, 4)).astype(np.uint8)
    _check(ir, params, images)


def test_wide_formats_use_the_int64_kernel():
    # int16 x int24 products overflow int32: the simulator must switch to 64-bit MACs
    rng = np.random.default_rng(3)
    s0 = MatVec("a", n_in=12, n_out=5, lanes=2, in_fmt=UINT8, weight_source=WeightSource.RAM,
                weight_fmt=INT8, bias=True, requant=True, out_fmt=Format(16, True))
    s1 = MatVec("b", n_in=5, n_out=4, lanes=3, in_fmt=Format(16, True), weight_source=WeightSource.RAM,
                weight_fmt=Format(24, True), bias=True, requant=False)
    ir = NetworkIR("t", (s0, s1, Argmax("m", n=4, in_fmt=s1.out_fmt)), input_len=12, input_shape=(3, 4))
    params = random_params(ir, rng)
    _check(ir, params, rng.integers(0, 256, size=(7, 3, 4)).astype(np.uint8))


def test_simulator_from_a_build_and_predict_interface(tmp_path):
    rng = np.random.default_rng(21)
    ir = random_ir(rng, stages=3)
    params = random_params(ir, rng)
    images = rng.integers(0, 256, size=(10, *ir.input_shape)).astype(np.uint8)
    build = load_build(write_build(tmp_path / "b", ir, params, golden_inputs=images).path)
    sim = Simulator(build)
    golden = GoldenModel(build)
    assert np.array_equal(sim.logits(build.golden.inputs), build.golden.logits)
    assert np.array_equal(sim.predict(images), golden.predict(images))
    assert np.array_equal(sim.predict(images.reshape(10, -1)), build.golden.classes)
    assert sim.predict(images[:0]).shape == (0,)
    assert sim.latency_cycles() == ir.latency_cycles()
    assert sim.synth_cycles() == ir.synth_cycles()
    assert sim.stage_cycles()["input"] == ir.input_len
    with pytest.raises(SimError, match="uint8"):
        sim.predict(images.astype(np.float32))
    with pytest.raises(SimError, match="images must be"):
        sim.predict(np.zeros((2, 5, 5), np.uint8))


def test_reloaded_coefficients_change_the_synthesised_weights():
    rng = np.random.default_rng(4)
    ir = random_ir(rng, stages=2, kinds=("synth",))
    p1, p2 = random_params(ir, rng), random_params(ir, rng)
    sim = Simulator.from_parts(ir, rom_contents(ir), p1)
    w2, cycles = sim.synthesize_cycle_stepped(p2)
    gw, _ = all_weights(ir, rom_contents(ir), p2)
    assert cycles == ir.synth_cycles()
    assert all(np.array_equal(w2[i], gw[i]) for i in gw)


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("n_images", [1, 4, 7])
def test_vnni_and_portable_kernels_agree(signed, n_images):
    """The AVX-512 VNNI kernel (when the host has it) and the portable kernel, on odd sizes."""
    from poshw.sim import kernels as K

    rng = np.random.default_rng(n_images)
    fmt = INT8 if signed else UINT8
    s0 = MatVec("a", n_in=12, n_out=67, lanes=3, in_fmt=UINT8, weight_source=WeightSource.RAM,
                weight_fmt=INT8, bias=True, requant=True, relu=not signed, out_fmt=fmt)
    s1 = MatVec("b", n_in=67, n_out=5, lanes=5, in_fmt=fmt, weight_source=WeightSource.RAM,
                weight_fmt=Format(6, True), bias=True, requant=False)
    ir = NetworkIR("t", (s0, s1, Argmax("m", n=5, in_fmt=s1.out_fmt)), input_len=12, input_shape=(3, 4))
    params = random_params(ir, rng)
    images = rng.integers(0, 256, size=(n_images, 3, 4)).astype(np.uint8)
    sim = _check(ir, params, images, stepped=1)
    fast = sim.run(images)
    sim.use_vnni = False
    portable = sim.run(images)
    assert np.array_equal(fast.logits, portable.logits) and fast.saturation == portable.saturation
    if K.HAVE_VNNI:
        sim.use_vnni = True
        assert sim._vnni(1, s1) is not None  # the int8 path really ran
