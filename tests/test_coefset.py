"""Coefficient sets: round trip, checksum, and refusal of corrupt or mismatched files."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from poshw import PoshwError, zoo
from poshw.coefset import META_KEY, CoefficientSet, CoefSetError, load
from poshw.nn import build_model

torch.set_num_threads(1)


def _model(name="linear-prodsum:p=2,k=3,inner=8"):
    m = build_model(zoo.get(name))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return m


def _rewrite(path, mutate):
    """Rewrite an npz with ``mutate(arrays, meta)`` applied (no checksum update)."""
    with np.load(path) as z:
        arrays = {n: z[n] for n in z.files}
    meta = json.loads(bytes(arrays.pop(META_KEY)).decode())
    mutate(arrays, meta)
    if meta is not None:
        arrays[META_KEY] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())


def test_round_trip_and_rebuild(tmp_path):
    m = _model()
    cs = CoefficientSet.from_model(m, {"dataset": "mnist", "test_accuracy": 0.5})
    assert cs.trainable_parameters() == m.trainable_parameters()
    cs.save(tmp_path / "coefs.npz")
    back = load(tmp_path / "coefs.npz")
    assert back.spec == m.spec
    assert back.info == {"dataset": "mnist", "test_accuracy": 0.5}
    assert back.checksum() == cs.checksum()
    assert set(back.tensors) == {n for n, _ in m.named_parameters()}
    assert load(tmp_path).checksum() == cs.checksum()  # a run directory works too
    x = torch.rand(4, 28, 28)
    with torch.no_grad():
        assert torch.equal(back.build_model()(x), m(x))
    images = (np.random.default_rng(0).random((6, 28, 28)) * 255).astype(np.uint8)
    assert np.array_equal(back.build_model().predict(images), m.predict(images))


def test_checksum_covers_spec_and_every_tensor():
    cs = CoefficientSet.from_model(_model())
    base = cs.checksum()
    name = sorted(cs.tensors)[0]
    t = dict(cs.tensors)
    t[name] = t[name].copy()
    t[name].flat[0] += 1e-7
    assert CoefficientSet(cs.spec, t).checksum() != base
    other = zoo.get("linear-prodsum:p=2,k=3,inner=8", seed=1)
    assert CoefficientSet(other, cs.tensors).checksum() != base
    assert CoefficientSet(cs.spec, cs.tensors, {"x": 1}).checksum() == base  # info is provenance


def test_missing_and_not_a_coefset(tmp_path):
    with pytest.raises(CoefSetError, match="no coefficient set here"):
        load(tmp_path)
    np.savez(tmp_path / "coefs.npz", a=np.zeros(3))
    with pytest.raises(CoefSetError, match="not a poshw coefficient set"):
        load(tmp_path / "coefs.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(CoefSetError, match="corrupt or truncated"):
        load(tmp_path / "junk.npz")


def test_truncated_file(tmp_path):
    CoefficientSet.from_model(_model()).save(tmp_path / "c.npz")
    data = (tmp_path / "c.npz").read_bytes()
    (tmp_path / "c.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CoefSetError, match="corrupt or truncated"):
        load(tmp_path / "c.npz")


@pytest.mark.parametrize("mutate, msg", [
    (lambda a, m: a.__setitem__(sorted(a)[0], a[sorted(a)[0]] + 1), "checksum mismatch"),
    (lambda a, m: m.update(schema="other"), "schema"),
    (lambda a, m: m.update(schema_version=99), "schema"),
    (lambda a, m: m["spec"].update(spec_version=5), "bad model spec"),
    (lambda a, m: m["spec"]["layers"][1].update(n_in=3), "bad model spec"),
])
def test_edited_files_are_refused(tmp_path, mutate, msg):
    path = tmp_path / "coefs.npz"
    CoefficientSet.from_model(_model()).save(path)
    _rewrite(path, mutate)
    with pytest.raises(CoefSetError, match=msg):
        load(path)


def test_tensors_must_fit_the_model():
    cs = CoefficientSet.from_model(_model())
    t = dict(cs.tensors)
    name = sorted(t)[0]
    t[name] = np.zeros(t[name].size + 1, np.float32)
    t.pop(sorted(t)[1])
    t["extra"] = np.zeros(2, np.float32)
    with pytest.raises(CoefSetError, match="missing .* unexpected \\['extra'\\], wrong shapes"):
        CoefficientSet(cs.spec, t).build_model()


def test_errors_are_poshw_errors():
    assert issubclass(CoefSetError, PoshwError)


def test_save_is_atomic_and_replaces(tmp_path):
    path = tmp_path / "coefs.npz"
    a = CoefficientSet.from_model(_model())
    a.save(path)
    b = CoefficientSet.from_model(_model("linear-dct:m=8"))
    b.save(path)
    assert load(path).spec.name == "linear-dct:m=8"
    assert [p.name for p in tmp_path.iterdir()] == ["coefs.npz"]  # no temporary left behind
