"""ONNX export (poshw.onnx_export, ``poshw onnx``): every layer kind against the torch model.

Tiny specs cover every layer kind and option (ProdSumLinear p = 1 with every basis family and
p = 3 multiplied out and as a chain, every bias mode, dense and product-of-sums convolutions
with padding, max pooling, every projection method with several channels, Hadamard broadcast
and depthwise, Dropout). Each is exported with random parameter values and run with
``onnx.reference.ReferenceEvaluator`` on random inputs; the logits must equal the torch
model's to float32 precision. Then: checker and shape inference, metadata round trip, the CLI
end to end, and bad input.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx.reference import ReferenceEvaluator

import poshw
from poshw import PoshwError, coefset, zoo
from poshw import onnx_export as ox
from poshw import spec as S
from poshw.bases import Family
from poshw.cli import main
from poshw.nn import build_model

torch.set_num_threads(1)
G, T, R, R1 = Family.GAUSS, Family.TERNARY, Family.RADEMACHER, Family.RANK1


def _spec(name, layers, input_shape, seed=3):
    return S.ModelSpec(name, tuple(layers), seed=seed, input_shape=input_shape)


SPECS = {
    "prodsum-p1-mixed": _spec("prodsum-p1-mixed", [
        S.Flatten(),
        S.ProdSumLinear(36, 12, ((S.Terms(G, 3), S.Terms(R1, 2), S.Terms(T, 4), S.Terms(R, 5)),),
                        bias=S.Bias("basis", 3)),
        S.ReLU(),
        S.ProdSumLinear(12, 10, ((S.Terms(R1, 3),),), bias=S.NO_BIAS),
    ], (1, 6, 6)),
    # p = 3, square inner factors: multiplied out (one Gemm)
    "prodsum-p3-product": _spec("prodsum-p3-product", [
        S.ProdSumLinear(16, 10, ((S.Terms(G, 2), S.Terms(R1, 1)), (S.Terms(T, 3),),
                                 (S.Terms(R, 2), S.Terms(R1, 2)))),
    ], (1, 4, 4)),
    # p = 3 through narrow inner dimensions: the chain of factors is smaller (three Gemms)
    "prodsum-p3-chain": _spec("prodsum-p3-chain", [
        S.Flatten(),
        S.ProdSumLinear(36, 10, ((S.Terms(R1, 2),), (S.Terms(G, 3), S.Terms(T, 1)), (S.Terms(R, 4),)),
                        inner=(4, 3), bias=S.Bias("basis", 2)),
    ], (1, 6, 6)),
    "conv-pool": _spec("conv-pool", [
        S.ProdSumConv2d(1, 4, 3, padding=1, terms=(S.Terms(G, 2), S.Terms(T, 3))),
        S.ReLU(),
        S.MaxPool2d(2),
        S.Conv2d(4, 3, 3, padding=0, bias=S.Bias("basis", 2)),
        S.ReLU(),
        S.MaxPool2d(2),
        S.ProdSumConv2d(3, 2, 1, padding=1, terms=(S.Terms(R, 2),), bias=S.NO_BIAS),
        S.Flatten(),
        S.Dropout(0.5),
        S.Linear(32, 10),
    ], (1, 12, 12)),
    "projections": _spec("projections", [
        S.Projection("dct", 16, 9, channels=2, image=(4, 4)),
        S.Projection("gauss", 9, 5, channels=2),
        S.Projection("subsample", 5, 4, channels=2),
        S.Projection("select", 4, 3, channels=2),
        S.Linear(6, 10, bias=S.NO_BIAS),
        S.Dropout(0.25),  # last layer: the graph output is the Gemm's
    ], (2, 4, 4)),
    "hadamard": _spec("hadamard", [
        S.Projection("dct", 16, 16, image=(4, 4)),
        S.Hadamard(16, 3, S.Terms(G, 4)),                                     # broadcast, channel bias
        S.ReLU(),
        S.Projection("select", 16, 8, channels=3),
        S.Hadamard(8, 3, S.Terms(R, 2), depthwise=True, bias=S.FULL_BIAS),
        S.Hadamard(8, 3, S.Terms(T, 2), depthwise=True, bias=S.Bias("basis", 2)),
        S.Hadamard(8, 3, S.Terms(G, 1), depthwise=True, bias=S.NO_BIAS),
        S.Linear(24, 10),
    ], (1, 4, 4)),
}
ZOO = ["linear-dct:m=16", "linear-subsample:m=20", "mlp-reduced:m=16,h1=32,h2=16,s=16,inner=8"]


def _randomised(spec: S.ModelSpec, seed: int = 0):
    """The torch model with every parameter (coefficients and biases) random."""
    model = build_model(spec)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return model


def _inputs(spec: S.ModelSpec, n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *spec.input_shape), dtype=np.float32)


def _torch_logits(model, x: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(x)).reshape(len(x), -1).numpy()


def _assert_close(got, ref):
    assert got.shape == ref.shape and got.dtype == np.float32
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=2e-6 * scale)


def _ops(proto) -> list[str]:
    return [n.op_type for n in proto.graph.node]


# --- every layer kind against torch -------------------------------------------------------

@pytest.mark.parametrize("name", list(SPECS) + ZOO)
def test_reference_runtime_matches_torch(name):
    spec = SPECS[name] if name in SPECS else zoo.get(name)
    model = _randomised(spec)
    proto = ox.build_onnx(model)
    onnx.checker.check_model(proto, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    dims = inferred.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["N", 10]
    ins = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in ins] == ["N", *spec.input_shape]
    assert "Dropout" not in _ops(proto)
    ev = ReferenceEvaluator(proto)
    for n in (1, 3):  # the batch dimension is symbolic
        x = _inputs(spec, n, seed=n)
        (got,) = ev.run(None, {"input": x})
        _assert_close(got, _torch_logits(model, x))


def test_layer_lowering_choices():
    """Gemm chain when the factors are smaller than their product, one Gemm otherwise; ops per kind."""
    product = ox.build_onnx(build_model(SPECS["prodsum-p3-product"]))
    assert _ops(product) == ["Flatten", "Gemm"]
    chain = ox.build_onnx(build_model(SPECS["prodsum-p3-chain"]))
    assert _ops(chain) == ["Flatten", "Gemm", "Gemm", "Gemm"]
    shapes = [tuple(onnx.numpy_helper.to_array(i).shape) for i in chain.graph.initializer]
    assert shapes == [(3, 36), (4, 3), (10, 4), (10,)]  # F_3, F_2, F_1, bias: 190 floats < 360
    conv = ox.build_onnx(build_model(SPECS["conv-pool"]))
    assert _ops(conv) == ["Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool", "Conv", "Flatten", "Gemm"]
    pads = [list(a.ints) for n in conv.graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "pads"]
    assert pads == [[1] * 4, [0] * 4, [1] * 4]
    proj = ox.build_onnx(build_model(SPECS["projections"]))
    assert _ops(proj) == ["Reshape", "MatMul", "MatMul", "Gather", "Slice", "Flatten", "Gemm"]
    had = ox.build_onnx(build_model(SPECS["hadamard"]))
    assert _ops(had) == ["Reshape", "MatMul", "Mul", "Add", "Relu", "Slice", "Mul", "Add", "Mul", "Add",
                         "Mul", "Flatten", "Gemm"]
    # the channel bias is one value per filter, broadcast over n
    arrays = {i.name: onnx.numpy_helper.to_array(i) for i in had.graph.initializer}
    assert arrays["layer1.bias"].shape == (3, 1) and arrays["layer1.diag"].shape == (3, 16)
    assert arrays["layer4.bias"].shape == (3, 8)


def test_weights_are_the_materialised_matrices():
    model = _randomised(SPECS["prodsum-p1-mixed"])
    proto = ox.build_onnx(model)
    arrays = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    with torch.no_grad():
        np.testing.assert_array_equal(arrays["layer1.weight"], model.layers[1].weight().numpy())
        np.testing.assert_array_equal(arrays["layer1.bias"], model.layers[1].bias().numpy())
    assert all(a.dtype == np.float32 for a in arrays.values())


@pytest.mark.parametrize("opset", [ox.MIN_OPSET, ox.DEFAULT_OPSET, ox.max_opset()])
def test_opsets(opset):
    spec = SPECS["hadamard"]
    model = _randomised(spec, seed=4)
    proto = ox.build_onnx(model, opset=opset)
    assert ox.summary(proto)["opset"] == opset
    assert proto.ir_version == onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", opset)])
    x = _inputs(spec, 2)
    _assert_close(ox.reference_logits(proto, x), _torch_logits(model, x))


# --- metadata, files ----------------------------------------------------------------------

def test_metadata_round_trip(tmp_path):
    spec = SPECS["conv-pool"]
    cs = coefset.CoefficientSet.from_model(_randomised(spec), {"dataset": "fashion-mnist"})
    cs.save(tmp_path / "coefs.npz")
    out = tmp_path / "sub" / "m.onnx"
    proto = ox.export_onnx(tmp_path, out)  # a run directory
    loaded = onnx.load(str(out))
    assert loaded.SerializeToString() == proto.SerializeToString()
    meta = ox.onnx_metadata(out)
    assert meta == ox.onnx_metadata(loaded)
    assert meta["version"] == poshw.__version__
    assert meta["model"] == spec.name
    assert ox.spec_of(loaded) == spec and S.ModelSpec.from_dict(json.loads(meta["spec"])) == spec
    assert int(meta["trainable_parameters"]) == spec.trainable_parameters() == cs.trainable_parameters()
    file_sha = coefset.load(tmp_path / "coefs.npz").checksum()
    assert meta["coefset_sha256"] == cs.checksum() == file_sha
    assert meta["dataset"] == "fashion-mnist"
    assert int(meta["stored_floats"]) == sum(onnx.numpy_helper.to_array(i).size for i in loaded.graph.initializer
                                             if i.data_type == onnx.TensorProto.FLOAT)
    assert "baked" in loaded.doc_string and cs.checksum() in loaded.doc_string
    assert "pixel / 255" in loaded.graph.input[0].doc_string
    assert loaded.producer_name == "poshw" and loaded.graph.name == spec.name
    # a model (not a coefficient set) gets the checksum its coefficient set would have
    assert ox.onnx_metadata(ox.build_onnx(cs.build_model()))["coefset_sha256"] == cs.checksum()


def test_export_writes_atomically_and_refuses_bad_paths(tmp_path):
    model = build_model(SPECS["prodsum-p3-product"])
    target = tmp_path / "m.onnx"
    target.write_bytes(b"old")
    with pytest.raises(PoshwError, match="is a directory"):
        ox.export_onnx(model, tmp_path)
    with pytest.raises(PoshwError, match="not a directory"):
        ox.export_onnx(model, target / "x.onnx")
    with pytest.raises(PoshwError, match="opset"):
        ox.export_onnx(model, target, opset=5)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temporary left behind
    ox.export_onnx(model, target)
    assert onnx.load(str(target)).graph.name == "prodsum-p3-product"
    assert ox.export_onnx(model, None).graph.name == "prodsum-p3-product"  # nothing written


# --- errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("opset", [5, ox.MIN_OPSET - 1, 10_000, True, "17"])
def test_bad_opset(opset):
    with pytest.raises(PoshwError, match="opset must be an integer"):
        ox.build_onnx(build_model(SPECS["prodsum-p3-product"]), opset=opset)


def test_unsupported_layer_is_named():
    class Swish(S.ReLU):  # a layer kind the exporter does not know (torch builds it as ReLU)
        kind = "swish"

    spec = _spec("odd", [S.Flatten(), S.Linear(16, 10), Swish()], (1, 4, 4))
    with pytest.raises(PoshwError, match=r"layer 2 \(Swish\): layer kind 'swish' is not supported"):
        ox.build_onnx(build_model(spec))


def test_bad_sources_and_broken_graphs(tmp_path):
    with pytest.raises(PoshwError, match="got int"):
        ox.build_onnx(42)
    with pytest.raises(coefset.CoefSetError, match="no coefficient set"):
        ox.export_onnx(tmp_path / "missing", tmp_path / "m.onnx")
    proto = ox.build_onnx(build_model(SPECS["prodsum-p3-product"]))
    del proto.graph.initializer[0]
    with pytest.raises(PoshwError, match="fails the checker"):
        ox.check_onnx(proto, 10)
    (tmp_path / "junk.onnx").write_bytes(b"\xff not a protobuf")
    with pytest.raises(PoshwError, match="not a readable ONNX model"):
        ox.onnx_metadata(tmp_path / "junk.onnx")


# --- the CLI --------------------------------------------------------------------------------

def _cli(capsys, argv):
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _fails(capsys, argv, *needles):
    rc, out, err = _cli(capsys, argv)
    lines = [ln for ln in err.splitlines() if ln.startswith("poshw: error:")]
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err + out, (rc, err)
    for needle in needles:
        assert str(needle) in lines[0], (needle, err)
    return lines[0]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_dir):
    from poshw.train.config import TrainConfig
    from poshw.train.trainer import train

    out = tmp_path_factory.mktemp("onnx") / "run"
    train(TrainConfig(model="linear-dct:m=16", epochs=1, subset=500, test_subset=100), out,
          data_dir=data_dir, progress=False, log=lambda s: None)
    return out


def test_cli_end_to_end(trained_run, data_dir, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    rc, text, err = _cli(capsys, ["onnx", trained_run, "--out", out, "--check-n", 16, "--data-dir", data_dir])
    assert rc == 0, err
    assert f"wrote {out}: {out.stat().st_size:,} bytes, opset 17" in text
    assert "4 nodes" in text and "170 trainable parameters" in text
    assert "on 16 mnist test images: max |diff|" in text and "argmax agrees on 16/16" in text
    meta = ox.onnx_metadata(out)
    assert meta["coefset_sha256"] == coefset.load(trained_run).checksum()
    # the file's logits on real images are the torch model's
    from poshw.data import load_split, to_float

    images = load_split("mnist", "test", data_dir)[0][:8]
    cs = coefset.load(trained_run)
    _assert_close(ox.reference_logits(onnx.load(str(out)), to_float(images)[:, None]),
                  cs.build_model().logits(images))
    # --json, another opset, the other dataset
    rc, text, err = _cli(capsys, ["onnx", trained_run, "--out", out, "--check-n", 4, "--data-dir", data_dir,
                                  "--json", "--opset", 18, "--dataset", "fashion-mnist"])
    assert rc == 0, err
    r = json.loads(text)
    assert r["opset"] == 18 and r["nodes"] == 4 and r["check"]["n"] == 4 and r["check"]["ok"]
    assert r["dataset"] == "fashion-mnist" and r["bytes"] == out.stat().st_size


def test_cli_mismatch_writes_nothing(trained_run, data_dir, tmp_path, capsys, monkeypatch):
    real = ox.compare_with_torch
    monkeypatch.setattr(ox, "compare_with_torch", lambda p, m, x: real(p, m, x, rtol=-1.0))
    out = tmp_path / "model.onnx"
    _fails(capsys, ["onnx", trained_run, "--out", out, "--check-n", 2, "--data-dir", data_dir],
           "ONNX and torch logits differ on 2 mnist test images", "nothing written")
    assert not out.exists()


def test_cli_without_data(tmp_path, capsys):
    """An untrained coefficient set with no dataset: --check-n 0 exports, a check asks for --dataset."""
    cs = coefset.CoefficientSet.from_model(build_model(SPECS["projections"]))
    cs.save(tmp_path / "ps.npz")
    out = tmp_path / "ps.onnx"
    rc, text, err = _cli(capsys, ["onnx", tmp_path / "ps.npz", "--out", out, "--check-n", 0])
    assert rc == 0, err
    assert "reference check skipped" in text and "7 nodes" in text and out.is_file()
    _fails(capsys, ["onnx", tmp_path / "ps.npz", "--out", out], "pass --dataset", "--check-n 0")


def test_cli_errors(tmp_path, capsys):
    cs = coefset.CoefficientSet.from_model(build_model(SPECS["prodsum-p3-product"]), {"dataset": "mnist"})
    cs.save(tmp_path / "c.npz")
    (tmp_path / "file").write_text("x")
    good = tmp_path / "m.onnx"
    _fails(capsys, ["onnx", tmp_path / "nope", "--out", good], "nope", "no coefficient set")
    _fails(capsys, ["onnx", tmp_path / "c.npz", "--out", tmp_path], "is a directory")
    _fails(capsys, ["onnx", tmp_path / "c.npz", "--out", tmp_path / "file" / "m.onnx"], "not a directory")
    _fails(capsys, ["onnx", tmp_path / "c.npz", "--out", good, "--check-n", -1], "--check-n must be >= 0")
    _fails(capsys, ["onnx", tmp_path / "c.npz", "--out", good, "--opset", 3], "opset must be an integer")
    _fails(capsys, ["onnx", tmp_path / "c.npz", "--out", good, "--dataset", "cifar"], "unknown dataset")
    _fails(capsys, ["onnx", tmp_path / "c.npz", "--out", good, "--check-n", "many"], "--check-n")
    _fails(capsys, ["onnx", tmp_path / "c.npz"], "--out")
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    _fails(capsys, ["onnx", tmp_path / "bad.npz", "--out", good], "bad.npz")
    assert not good.exists()
