"""``poshw train``, ``poshw evaluate`` and ``poshw models`` through the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from poshw.cli import main
from poshw.coefset import load as load_coefset
from poshw.zoo import available

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


def _train(out, data_dir, *extra):
    args = ["train", "--model", "linear-dct:m=16", "--dataset", "fashion-mnist", "--epochs", "2",
            "--batch-size", "64", "--lr", "0.01", "--subset", "300", "--test-subset", "200",
            "--data-dir", str(data_dir), "--out", str(out), "--no-progress", *extra]
    return main(args)


def _error(capsys, argv, msg):
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("poshw: error: "), err
    assert msg in err, err
    assert "Traceback" not in err


def test_train_then_evaluate(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    assert _train(out, data_dir) == 0
    text = capsys.readouterr().out
    assert "epoch 1/2" in text and "epoch 2/2" in text
    assert "linear-dct:m=16 on fashion-mnist: test accuracy" in text and "170 trainable" in text
    metrics = json.loads((out / "metrics.json").read_text())
    info = load_coefset(out).info
    # the recorded command reproduces the run
    assert info["command"].startswith("poshw train --model linear-dct:m=16 --dataset fashion-mnist")
    assert "--subset 300" in info["command"] and f"--out {out}" in info["command"]

    assert main(["evaluate", str(out), "--data-dir", str(data_dir)]) == 0
    line = capsys.readouterr().out
    assert "linear-dct:m=16 on fashion-mnist test: accuracy" in line and "/10000" in line
    assert main(["evaluate", str(out / "coefs.npz"), "--dataset", "mnist", "--json",
                 "--data-dir", str(data_dir)]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["dataset"] == "mnist" and r["count"] == 10_000 and 0 <= r["accuracy"] <= 1
    assert metrics["test_examples"] == 200


def test_cli_resume_extends_to_the_same_result(tmp_path, data_dir, capsys):
    assert _train(tmp_path / "ref", data_dir) == 0
    assert _train(tmp_path / "cut", data_dir, "--epochs", "1") == 0
    # resume needs only --out; --epochs extends the run
    assert main(["train", "--resume", "--out", str(tmp_path / "cut"), "--epochs", "2",
                 "--data-dir", str(data_dir), "--no-progress"]) == 0
    assert "resuming linear-dct:m=16 from epoch 1" in capsys.readouterr().out
    a, b = load_coefset(tmp_path / "ref").tensors, load_coefset(tmp_path / "cut").tensors
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_cli_staged_training(tmp_path, data_dir, capsys):
    base = ["--dataset", "fashion-mnist", "--subset", "200", "--test-subset", "200",
            "--data-dir", str(data_dir), "--no-progress"]
    assert main(["train", "--model", "linear-prodsum:p=1,k=10", "--epochs", "1", "--lr", "0.03",
                 "--out", str(tmp_path / "a"), *base]) == 0
    assert main(["train", "--model", "linear-prodsum:p=1,k=20", "--epochs", "0",
                 "--init-from", str(tmp_path / "a"), "--out", str(tmp_path / "b"), *base]) == 0
    out = capsys.readouterr().out
    assert f"initialised from {tmp_path / 'a'}" in out and "fitted" in out
    ma = json.loads((tmp_path / "a" / "metrics.json").read_text())
    mb = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert ma["test_accuracy"] == mb["test_accuracy"]


@pytest.mark.parametrize("argv, msg", [
    (["train", "--model", "nope", "--out", "X"], "unknown model 'nope'; available: linear"),
    (["train", "--out", "X"], "--model is required"),
    (["train", "--model", "linear", "--dataset", "cifar", "--out", "X"], "unknown dataset 'cifar'"),
    (["train", "--model", "linear", "--epochs", "-2", "--out", "X"], "--epochs must be an integer >= 0"),
    (["train", "--model", "linear", "--lr", "0", "--out", "X"], "--lr must be a finite number > 0"),
    (["train", "--model", "linear", "--threads", "0", "--out", "X"], "--threads must be >= 1"),
    (["train", "--model", "linear-dct:q=1", "--out", "X"], "has no parameter 'q'"),
    (["train", "--resume", "--out", "X"], "holds no run to resume"),
    (["evaluate", "X"], "no coefficient set here"),
    (["models", "nope"], "unknown model 'nope'"),
])
def test_user_mistakes_are_one_line_errors(tmp_path, capsys, monkeypatch, argv, msg):
    monkeypatch.chdir(tmp_path)
    _error(capsys, argv, msg)
    assert not (tmp_path / "X").exists() or argv[0] != "train" or "--resume" in argv


def test_out_dir_refusals(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    assert _train(out, data_dir, "--epochs", "0") == 0
    capsys.readouterr()
    _error(capsys, ["train", "--model", "linear", "--out", str(out)],
           "already holds a run of model 'linear-dct:m=16' (not 'linear')")
    _error(capsys, ["train", "--model", "linear-dct:m=16", "--out", str(out)], "pass --resume")
    _error(capsys, ["train", "--resume", "--model", "linear", "--out", str(out)],
           "holds a run of model 'linear-dct:m=16', not 'linear'")
    _error(capsys, ["train", "--resume", "--lr", "0.5", "--out", str(out)],
           "may only change --epochs and --checkpoint-every")
    _error(capsys, ["evaluate", str(out), "--dataset", "svhn"], "unknown dataset 'svhn'")


def test_models_table_and_json(capsys):
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    for info in available():
        assert info.name in text
    assert "7,850" in text and "3,274,634" in text and "1,333,770" in text and "3,554" in text
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    counts = {r["name"]: r["trainable_parameters"] for r in rows}
    assert counts["linear"] == 7850 and counts["linear-dct"] == 1700
    assert counts["lenet"] == 3_274_634 and counts["mlp"] == 1_333_770 and counts["prodsumnet"] == 3554
    assert rows[1]["params"] == {"m": 169}
    assert all(r["summary"] for r in rows)


def test_models_detail(capsys):
    assert main(["models", "linear-dct:m=64"]) == 0
    text = capsys.readouterr().out
    assert "linear-dct:m=64: 650 trainable parameters" in text
    assert main(["models", "prodsumnet", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["trainable_parameters"] == 3554
    assert sum(layer["trainable_parameters"] for layer in d["layers"]) == 3554


def test_real_entry_point_exit_code_and_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "poshw", "train", "--model", "linear",
                        "--epochs", "-1", "--out", str(tmp_path / "x")],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip() == "poshw: error: --epochs must be an integer >= 0, got -1"
    assert not (tmp_path / "x").exists()
