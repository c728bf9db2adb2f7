"""Lowering coefficient sets to the IR, and post-training quantisation on tiny trained models."""

from __future__ import annotations

import json

import numpy as np
import pytest

from poshw import zoo
from poshw.bases import Family
from poshw.coefset import CoefficientSet
from poshw.compiler.export import calibration_images, quantize_coefset
from poshw.compiler.lower import CompileOptions, LoweringError, float_forward, lower
from poshw.compiler.testing import train_tiny
from poshw.data import load_split, subset
from poshw.fixedpoint.quantize import QuantError, multiplier
from poshw.ir import Argmax, BasisSource, Gather, MatVec, WeightSource
from poshw.nn import build_model
from poshw.spec import Bias, BiasMode, Conv2d, Flatten, Linear, MaxPool2d, ModelSpec, Projection, ReLU, Terms
from poshw.spec import Hadamard as HadamardSpec


def _cs(spec: ModelSpec) -> CoefficientSet:
    return CoefficientSet.from_model(build_model(spec))


def test_refuses_convolutions_by_layer():
    with pytest.raises(LoweringError, match=r"layer 0 \(prodsum_conv2d\): ProdSumConv2d is not supported"):
        lower(_cs(zoo.get("lenet-convs:conv1=4,conv2=4")))
    conv = ModelSpec("c", (Conv2d(1, 2, 3), ReLU(), MaxPool2d(2), Flatten(), Linear(338, 10)))
    with pytest.raises(LoweringError, match=r"layer 0 \(conv2d\): Conv2d is not supported"):
        lower(_cs(conv))
    pool = ModelSpec("p", (MaxPool2d(2), Flatten(), Linear(196, 10)))
    with pytest.raises(LoweringError, match=r"layer 0 \(maxpool2d\): MaxPool2d is not supported"):
        lower(_cs(pool))


def test_linear_projections():
    ir = lower(_cs(zoo.get("linear-dct:m=20"))).ir
    s0, s1, s2 = ir.stages
    assert isinstance(s0, MatVec) and s0.weight_source is WeightSource.ROM
    assert s0.rom_origin == "dct:h=28,w=28,m=20,frac_bits=10,channels=1"
    assert s0.weight_fmt.bits == 8 and s0.in_fmt.bits == 8 and not s0.in_fmt.signed
    assert s1.weight_source is WeightSource.RAM and not s1.requant and s1.bias and s1.lanes == 8
    assert isinstance(s2, Argmax) and s2.n == 10
    g = lower(_cs(zoo.get("linear-gauss:m=16"))).ir.stages[0]
    assert g.rom_origin == "gauss:seed=0,path=0.0.0,rows=16,cols=784,channels=1" and g.weight_fmt.bits == 6
    sub = lower(_cs(zoo.get("linear-subsample:m=30"))).ir.stages[0]
    assert isinstance(sub, Gather) and sub.index_origin == "permutation" and sub.path == (0, 0, 0)


def test_mlp_reduced_chain_relu_folding_and_options():
    spec = zoo.get("mlp-reduced:m=16,h1=24,h2=12,s=6,inner=8,s_last=4,last=prodsum")
    opts = CompileOptions(lanes=4, stage_lanes=(("l1_linear", 6),), layer_basis_source=((3, BasisSource.ROM),))
    ir = lower(_cs(spec), opts).ir
    names = [s.name for s in ir.stages]
    # factor 1 (24 -> 8) runs before factor 0 (8 -> 12); the last layer is a product of one sum
    assert names == ["l0_dct", "l1_linear", "l3_f1", "l3_f0", "l5_psum", "argmax"]
    dct, lin, f1, f0, last, _ = ir.stages
    assert lin.relu and not lin.out_fmt.signed and lin.lanes == 6
    assert not f1.relu and not f1.bias and f1.out_fmt.signed and f1.requant
    assert f0.relu and f0.bias and (f0.n_in, f0.n_out) == (8, 12)
    assert all(g.source is BasisSource.ROM for g in f1.synth.groups + f0.synth.groups)
    assert all(g.source is BasisSource.GENERATOR for g in last.synth.groups)
    assert f1.synth.groups[0].path == (3, 1, 0) and f0.synth.groups[0].path == (3, 0, 0)
    assert not last.requant and last.lanes == 4
    assert CompileOptions.from_dict(json.loads(opts.to_json())) == opts


def test_convfree_hadamard_and_select():
    spec = zoo.get("convfree:filters=2,terms1=5,terms2=6,hidden=16")
    low = lower(_cs(spec))  # also checks the float network against the torch model
    kinds = [type(s).__name__ for s in low.ir.stages]
    assert kinds == ["MatVec", "Hadamard", "Gather", "Hadamard", "MatVec", "MatVec", "Argmax"]
    h1, sel, h2 = low.ir.stages[1:4]
    assert h1.channels_in == 1 and h1.filters == 2 and h1.relu and h1.bias
    assert sel.channels == 2 and sel.index_origin == "prefix" and (sel.n_in, sel.n_out) == (784, 196)
    assert h2.channels_in == 2 and h2.synth.groups[0].count == 6


def test_lowering_refusals():
    full_bias_hadamard = ModelSpec("h", (Flatten(), HadamardSpec(784, 1, Terms(Family.GAUSS, 3),
                                                                 bias=Bias(BiasMode.FULL)), Linear(784, 10)))
    with pytest.raises(LoweringError, match="Hadamard bias mode 'full'"):
        lower(_cs(full_bias_hadamard))
    relu_after_gather = ModelSpec("g", (Projection("select", 784, 50), ReLU(), Linear(50, 10)))
    with pytest.raises(LoweringError, match="ReLU after a prefix gather"):
        lower(_cs(relu_after_gather))
    relu_last = ModelSpec("r", (Flatten(), Linear(784, 10), ReLU()))
    with pytest.raises(LoweringError, match="ReLU after the last layer"):
        lower(_cs(relu_last))
    hadamard_last = ModelSpec("hl", (Projection("select", 784, 10), HadamardSpec(10, 1, Terms(Family.GAUSS, 3))))
    with pytest.raises(LoweringError, match="last layer must be"):
        lower(_cs(hadamard_last))
    with pytest.raises(LoweringError, match="lanes"):
        lower(_cs(zoo.get("linear-dct:m=20")), CompileOptions(stage_lanes=(("l1_linear", 11),)))
    with pytest.raises(LoweringError, match="--act-bits"):
        CompileOptions(act_bits=1)
    with pytest.raises(LoweringError):
        CompileOptions(calibration="median")


def test_mixed_basis_groups_and_basis_bias_quantise_consistently():
    """gauss + rank-1 groups share one product scale; a 'basis' bias becomes a full int32 vector."""
    from poshw.compiler.roms import rom_contents
    from poshw.fixedpoint.golden import golden_forward
    from poshw.fixedpoint.quantize import quantize
    from poshw.spec import ProdSumLinear

    spec = ModelSpec("mix", (Flatten(), ProdSumLinear(784, 16, ((Terms(Family.GAUSS, 6), Terms(Family.RANK1, 5)),),
                                                      bias=Bias(BiasMode.BASIS, 3)), ReLU(), Linear(16, 10)))
    model = build_model(spec)
    import torch
    with torch.no_grad():  # give the bias coefficients (zero at init) some values
        for name, p in model.named_parameters():
            if "bias_coef" in name:
                p.copy_(torch.linspace(-0.5, 0.5, p.numel()))
    low = lower(CoefficientSet.from_model(model))
    st0 = low.ir.stages[0]
    assert [g.family for g in st0.synth.groups] == [Family.GAUSS, Family.RANK1] and st0.bias
    rng = np.random.default_rng(0)
    images = (rng.random((300, 28, 28)) < 0.2).astype(np.uint8) * rng.integers(0, 256, (300, 28, 28)).astype(np.uint8)
    q = quantize(low, images[:200])
    rec = q.stages[0]
    assert len(rec.coef_scales) == 2 and rec.coef_saturated == 0
    # one product scale: coefficient scale x basis scale is the same for both groups
    prods = [c * s for c, s in zip(rec.coef_scales, low.stages[0].basis_scales)]
    assert prods[0] == pytest.approx(prods[1])
    assert q.params[0]["bias"].shape == (16,)
    res = golden_forward(q.ir, rom_contents(q.ir), q.params, images[200:])
    ref = float_forward(low, images[200:])
    scale = q.stages[1].s_out  # logits scale
    err = np.abs(res.logits * scale - ref).max() / np.abs(ref).max()
    assert err < 0.1


def test_multiplier_representation():
    assert multiplier(1.0, "x") == (32768, 15)            # 65535 / 1 -> 15 bits of shift
    mult, shift = multiplier(3.7e-5, "x")
    assert 32768 <= mult <= 65535 and abs(mult / 2 ** shift - 3.7e-5) < 3.7e-5 * 2 ** -15
    assert multiplier(65535.0, "x") == (65535, 0)
    with pytest.raises(QuantError, match="above 65535"):
        multiplier(70000.0, "x")
    with pytest.raises(QuantError, match="below"):
        multiplier(1e-30, "x")


@pytest.fixture(scope="module")
def mnist_small(data_dir):
    x, y = load_split("mnist", "train", data_dir)
    xs, ys = subset(x, y, 6000, seed=1)
    xt, yt = load_split("mnist", "test", data_dir)
    return xs, ys, np.asarray(xt[:2000]), np.asarray(yt[:2000], dtype=np.int64)


@pytest.mark.parametrize("model,steps,tol", [
    ("linear-dct:m=64", 300, 1.0),
    ("mlp-reduced:m=32,h1=64,h2=32,s=24,inner=16", 400, 1.5),
])
def test_quantization_keeps_accuracy(mnist_small, data_dir, model, steps, tol):
    xs, ys, xt, yt = mnist_small
    cs = train_tiny(zoo.get(model), xs, ys, steps=steps)
    out = quantize_coefset(cs, CompileOptions(calib_size=500), data_dir=str(data_dir), n_test=2000)
    t = out.report["test"]
    assert t["float_accuracy"] > 0.8
    assert t["float_accuracy"] - t["fixed_accuracy"] <= tol / 100
    assert out.report["calibration"]["split"] == "train"
    # the quantiser's integer network is the lowered float network, to within a small error
    low = out.quantized.lowered
    assert np.mean(np.argmax(float_forward(low, xt[:500]), 1) == cs.build_model().predict(xt[:500])) > 0.99
    rows = {s["name"]: s for s in out.report["stages"]}
    assert all(r["bias_saturated"] == 0 and r["coef_saturated"] == 0 for r in rows.values())


def test_calibration_uses_training_images(data_dir):
    cal = calibration_images("mnist", 100, 0, str(data_dir))
    train, labels = load_split("mnist", "train", data_dir)
    assert cal.shape == (100, 28, 28) and cal.dtype == np.uint8
    assert np.array_equal(cal, subset(train, labels, 100, 0)[0])  # a class-balanced training slice
