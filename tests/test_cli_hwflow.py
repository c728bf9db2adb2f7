"""``poshw quantize``, ``export`` and ``simulate`` end to end on a tiny trained run."""

from __future__ import annotations

import json

import pytest

from poshw import zoo
from poshw.cli import main
from poshw.compiler.artifacts import load_build
from poshw.compiler.testing import train_tiny
from poshw.data import load_split, subset


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_dir):
    x, y = load_split("mnist", "train", data_dir)
    xs, ys = subset(x, y, 3000, seed=2)
    cs = train_tiny(zoo.get("linear-dct:m=36"), xs, ys, steps=200)
    path = tmp_path_factory.mktemp("run")
    cs.save(path / "coefs.npz")
    return path


@pytest.fixture(scope="module")
def build_dir(run_dir, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("b") / "build"
    rc = main(["export", str(run_dir), "--out", str(out), "--data-dir", str(data_dir), "--calib", "300",
               "--n-test", "300", "--golden", "16", "--lanes", "4"])
    assert rc == 0
    return out


def test_quantize_prints_accuracies_and_saturation(run_dir, data_dir, capsys):
    rc = main(["quantize", str(run_dir), "--data-dir", str(data_dir), "--calib", "300", "--n-test", "300"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "float" in out and "fixed-point" in out and "l0_dct" in out and "calib sat" in out
    rc = main(["quantize", str(run_dir), "--data-dir", str(data_dir), "--calib", "300", "--n-test", "300",
               "--calibration", "max", "--json"])
    r = json.loads(capsys.readouterr().out)
    assert rc == 0 and r["calibration"]["method"] == "max" and r["test"]["n"] == 300
    assert 0.0 <= r["test"]["fixed_accuracy"] <= 1.0


def test_export_writes_a_loadable_build(build_dir):
    b = load_build(build_dir)
    assert b.golden is not None and len(b.golden.inputs) == 16
    assert b.extra["quant.json"]["dataset"] == "mnist"
    assert b.ir.stages[0].lanes == 4
    names = {e["file"] for e in b.files}
    assert {"ir.json", "params.hex", "params.bin", "s0.weights.hex", "s1.weights.bin", "quant.json"} <= names


def test_simulate_reports_cycles_and_estimates(build_dir, data_dir, capsys):
    rc = main(["simulate", str(build_dir), "--data-dir", str(data_dir), "--n", "200", "--json"])
    r = json.loads(capsys.readouterr().out)
    assert rc == 0
    b = load_build(build_dir)
    assert r["golden"] == {"n": 16, "bit_exact": 16}
    assert r["cycles"]["latency"] == r["cycles"]["formula"] == b.ir.latency_cycles()
    assert r["cycles"]["lane_bound"] == b.ir.lane_bound_cycles()
    assert r["cycles"]["synth"] == b.ir.synth_cycles()
    assert r["n"] == 200 and r["throughput"]["inferences_per_s"] > 0
    assert [e["stage"] for e in r["estimates"]] == [s.name for s in b.ir.stages]
    rc = main(["simulate", str(build_dir), "--data-dir", str(data_dir), "--n", "50"])
    out = capsys.readouterr().out
    assert rc == 0 and "cycles per inference" in out and "lane lower bound" in out and "ROM bits" in out


def test_user_errors_are_one_line(build_dir, run_dir, data_dir, tmp_path, capsys):
    def err(argv):
        rc = main(argv)
        e = capsys.readouterr().err
        assert rc == 2 and e.startswith("poshw: error:") and e.count("\n") == 1, e
        return e

    assert "no build directory" in err(["simulate", str(tmp_path / "nope")])
    assert "fashion-mnist" in err(["simulate", str(build_dir), "--dataset", "fashion-mnist",
                                   "--data-dir", str(data_dir)])
    assert "trained on mnist" in err(["quantize", str(run_dir), "--dataset", "fashion-mnist"])
    assert "no coefficient set" in err(["export", str(tmp_path), "--out", str(tmp_path / "o")])
    assert "--act-bits" in err(["quantize", str(run_dir), "--act-bits", "40"])
    # a corrupt file in a copy of the build
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(build_dir, copy)
    p = copy / "s1.weights.hex"
    p.write_text(p.read_text()[:-3] + "\n")
    assert "s1.weights.hex" in err(["simulate", str(copy), "--data-dir", str(data_dir)])
