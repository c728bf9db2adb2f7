"""The trainer: config validation, determinism, exact resume, checkpoints, staged init.

Every run here trains on a few hundred examples for a few steps.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from poshw import PoshwError
from poshw.coefset import load as load_coefset
from poshw.train import (
    CHECKPOINT_NAME, CheckpointError, ConfigError, Optimizer, Schedule, TrainConfig,
    evaluate_run, load_checkpoint, lr_at, resume_config, train,
)

torch.set_num_threads(1)
SMALL = dict(model="linear-dct:m=16", dataset="fashion-mnist", epochs=2, batch_size=64,
             lr=1e-2, subset=300, test_subset=200)


def quiet(*_):
    pass


def _run(tmp, data_dir, name="run", resume=False, on_step=None, **kw):
    cfg = TrainConfig(**{**SMALL, **kw})
    return train(cfg, tmp / name, resume=resume, data_dir=data_dir, progress=False, log=quiet,
                 on_step=on_step)


def _coefs(result_or_dir):
    d = result_or_dir.out_dir if hasattr(result_or_dir, "out_dir") else result_or_dir
    return load_coefset(d).tensors


def _same(a, b):
    return sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)


class Interrupt(Exception):
    pass


def _stop_at(n):
    def hook(step):
        if step == n:
            raise Interrupt
    return hook


# --- config ----------------------------------------------------------------------------

def test_config_json_round_trip_and_canonical_name():
    cfg = TrainConfig(model="linear-dct: m=16", dataset="Fashion_MNIST", optimizer="sgd",
                      schedule="cosine", subset=10, lr=1)
    assert cfg.model == "linear-dct:m=16" and cfg.dataset == "fashion-mnist"
    assert cfg.optimizer is Optimizer.SGD and cfg.schedule is Schedule.COSINE
    assert isinstance(cfg.lr, float)
    back = TrainConfig.from_json(cfg.to_json())
    assert back == cfg
    assert json.loads(cfg.to_json())["optimizer"] == "sgd"
    with pytest.raises(Exception):
        cfg.lr = 3  # frozen


@pytest.mark.parametrize("kw, msg", [
    (dict(model=""), "--model is required"),
    (dict(model="nope"), "unknown model 'nope'; available: linear"),
    (dict(dataset="cifar10"), "unknown dataset 'cifar10'; choose one of: mnist, fashion-mnist"),
    (dict(epochs=-1), "--epochs must be an integer >= 0"),
    (dict(epochs=1.5), "--epochs must be an integer"),
    (dict(batch_size=0), "--batch-size must be an integer >= 1"),
    (dict(lr=0), "--lr must be a finite number > 0"),
    (dict(lr=float("nan")), "--lr must be a finite number"),
    (dict(seed=-3), "--seed must be an integer >= 0"),
    (dict(subset=0), "--subset must be an integer >= 1"),
    (dict(test_subset=-1), "--test-subset"),
    (dict(optimizer="rmsprop"), "unknown optimizer 'rmsprop'; choose one of: adam, sgd"),
    (dict(schedule="step"), "unknown schedule"),
    (dict(momentum=1.0), "--momentum must be < 1"),
    (dict(weight_decay=-1.0), "--weight-decay"),
    (dict(checkpoint_every=-1), "--checkpoint-every"),
    (dict(init_from=""), "--init-from"),
])
def test_bad_config_is_one_clear_error(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        TrainConfig(**{**SMALL, **kw})
    assert issubclass(ConfigError, PoshwError)


def test_config_from_dict_errors():
    d = TrainConfig(**SMALL).to_dict()
    with pytest.raises(ConfigError, match="unknown keys \\['bogus'\\]"):
        TrainConfig.from_dict({**d, "bogus": 1})
    with pytest.raises(ConfigError, match="version"):
        TrainConfig.from_dict({**d, "config_version": 9})
    with pytest.raises(ConfigError, match="not valid JSON"):
        TrainConfig.from_json("{")


def test_lr_schedules():
    c = TrainConfig(**SMALL)
    assert lr_at(c, 0, 100) == lr_at(c, 99, 100) == 1e-2
    cos = c.replace(schedule="cosine")
    assert lr_at(cos, 0, 100) == 1e-2
    assert math.isclose(lr_at(cos, 50, 100), 5e-3)
    assert lr_at(cos, 99, 100) < 1e-5


# --- runs ------------------------------------------------------------------------------

def test_run_directory_contents(tmp_path, data_dir):
    r = _run(tmp_path, data_dir, checkpoint_every=2)
    out = r.out_dir
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["config.json", "spec.json", "checkpoint.pt", "history.jsonl", "coefs.npz", "metrics.json"])
    assert TrainConfig.from_json((out / "config.json").read_text()) == r.config
    hist = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in hist] == [1, 2]
    assert hist == r.history
    for h in hist:
        assert {"train_loss", "train_accuracy", "test_loss", "test_accuracy", "step", "lr"} <= set(h)
    steps = math.ceil(300 / 64)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 2 * steps and metrics["test_accuracy"] == hist[-1]["test_accuracy"]
    assert metrics["trainable_parameters"] == 170 and metrics["train_examples"] == 300
    ck = load_checkpoint(out / CHECKPOINT_NAME)
    assert (ck["epoch"], ck["step"], ck["step_in_epoch"]) == (2, 2 * steps, 0)
    assert set(ck["model"]) == {n for n, _ in r.model.named_parameters()}
    assert "state" in ck["optimizer"] and json.loads(ck["epoch_rng_state"])["bit_generator"] == "PCG64"
    cs = load_coefset(out)
    assert cs.info["dataset"] == "fashion-mnist" and cs.info["epochs"] == 2
    assert cs.info["test_accuracy"] == metrics["test_accuracy"]
    assert "command" in cs.info and cs.info["config"] == r.config.to_dict()
    assert metrics["coefs_sha256"] == cs.checksum()
    assert r.metrics["test_accuracy"] > 0.2  # it learns something in 10 steps (chance: 0.1)


def test_same_seed_same_result_other_seed_differs(tmp_path, data_dir):
    a = _run(tmp_path, data_dir, "a")
    b = _run(tmp_path, data_dir, "b")
    c = _run(tmp_path, data_dir, "c", seed=1)
    assert _same(_coefs(a), _coefs(b))
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    assert not _same(_coefs(a), _coefs(c))


@pytest.mark.parametrize("stop", [3, 5, 7, 10])  # mid-epoch, exactly at a checkpoint, epoch end
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, data_dir, stop):
    ref = _run(tmp_path, data_dir, "ref", checkpoint_every=2)
    with pytest.raises(Interrupt):
        _run(tmp_path, data_dir, "cut", checkpoint_every=2, on_step=_stop_at(stop))
    done = load_checkpoint(tmp_path / "cut" / CHECKPOINT_NAME)["step"]
    assert done <= stop
    res = _run(tmp_path, data_dir, "cut", checkpoint_every=2, resume=True)
    assert _same(_coefs(res), _coefs(ref))
    strip = lambda hist: [{k: v for k, v in h.items() if k != "train_seconds"} for h in hist]
    assert strip(res.history) == strip(ref.history)
    ck_ref = load_checkpoint(tmp_path / "ref" / CHECKPOINT_NAME)
    ck_res = load_checkpoint(tmp_path / "cut" / CHECKPOINT_NAME)
    for k, v in ck_ref["optimizer"]["state"].items():
        for name, t in v.items():
            assert torch.equal(torch.as_tensor(t), torch.as_tensor(ck_res["optimizer"]["state"][k][name]))


def test_resume_extends_epochs_exactly(tmp_path, data_dir):
    ref = _run(tmp_path, data_dir, "ref", epochs=3)
    _run(tmp_path, data_dir, "ext", epochs=1)
    res = _run(tmp_path, data_dir, "ext", epochs=3, resume=True)
    assert _same(_coefs(res), _coefs(ref))
    # resuming a finished run does nothing and gives the same files back
    again = _run(tmp_path, data_dir, "ext", epochs=3, resume=True)
    assert _same(_coefs(again), _coefs(ref))


def test_dropout_runs_resume_exactly_and_leave_global_rng_alone(tmp_path, data_dir):
    kw = dict(model="lenet-convs:conv1=2,conv2=2", subset=128, batch_size=32, epochs=1,
              test_subset=100, lr=1e-3, checkpoint_every=2)
    torch.manual_seed(0)
    np.random.seed(0)
    t_state, n_state = torch.get_rng_state(), np.random.get_state()
    ref = _run(tmp_path, data_dir, "ref", **kw)
    assert torch.equal(torch.get_rng_state(), t_state)
    assert np.array_equal(np.random.get_state()[1], n_state[1])
    with pytest.raises(Interrupt):
        _run(tmp_path, data_dir, "cut", on_step=_stop_at(3), **kw)
    torch.manual_seed(12345)  # the global RNG must not matter
    res = _run(tmp_path, data_dir, "cut", resume=True, **kw)
    assert _same(_coefs(res), _coefs(ref))


def test_sgd_and_cosine_train(tmp_path, data_dir):
    r = _run(tmp_path, data_dir, optimizer="sgd", schedule="cosine", lr=0.5, epochs=1)
    assert r.history[0]["lr"] < 0.5
    assert r.metrics["test_accuracy"] > 0.2


def test_zero_epochs_writes_initial_coefficients(tmp_path, data_dir):
    r = _run(tmp_path, data_dir, epochs=0)
    assert r.history == [] and r.metrics["steps"] == 0
    assert 0.0 <= r.metrics["test_accuracy"] <= 1.0
    assert load_coefset(r.out_dir).info["epochs"] == 0


# --- refusals --------------------------------------------------------------------------

def test_out_dir_checks(tmp_path, data_dir):
    _run(tmp_path, data_dir, "r", epochs=1)
    with pytest.raises(PoshwError, match="already holds a run of model 'linear-dct:m=16' \\(not 'linear'\\)"):
        _run(tmp_path, data_dir, "r", model="linear")
    with pytest.raises(PoshwError, match="pass --resume"):
        _run(tmp_path, data_dir, "r", epochs=1)
    with pytest.raises(PoshwError, match="holds a run of model 'linear-dct:m=16', not 'linear'"):
        _run(tmp_path, data_dir, "r", model="linear", resume=True)
    with pytest.raises(PoshwError, match="lr 0.01 \\(stored\\) vs 0.1"):
        _run(tmp_path, data_dir, "r", lr=0.1, resume=True)
    with pytest.raises(PoshwError, match="already done 1 epochs, more than --epochs 0"):
        _run(tmp_path, data_dir, "r", epochs=0, resume=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(PoshwError, match="exists and is not empty"):
        _run(tmp_path, data_dir, "other")
    (tmp_path / "file").write_text("x")
    with pytest.raises(PoshwError, match="not a directory"):
        _run(tmp_path, data_dir, "file")
    with pytest.raises(PoshwError, match="no run to resume"):
        _run(tmp_path, data_dir, "fresh", resume=True)
    (tmp_path / "empty").mkdir()
    _run(tmp_path, data_dir, "empty", epochs=0)  # an empty directory is fine


def test_cosine_resume_cannot_change_epochs(tmp_path, data_dir):
    _run(tmp_path, data_dir, "c", schedule="cosine", epochs=1)
    with pytest.raises(PoshwError, match="cosine schedule depends on --epochs"):
        _run(tmp_path, data_dir, "c", schedule="cosine", epochs=2, resume=True)


def test_resume_config_merges_and_checks(tmp_path, data_dir):
    _run(tmp_path, data_dir, "r", epochs=1)
    cfg = resume_config(tmp_path / "r", epochs=4, lr=None)
    assert cfg.epochs == 4 and cfg.lr == SMALL["lr"]
    assert resume_config(tmp_path / "r", model="linear-dct:m=16").model == "linear-dct:m=16"
    with pytest.raises(PoshwError, match="holds a run of model"):
        resume_config(tmp_path / "r", model="linear")
    with pytest.raises(PoshwError, match="no run to resume"):
        resume_config(tmp_path / "nothing")


def test_corrupt_checkpoint_is_refused(tmp_path, data_dir):
    r = _run(tmp_path, data_dir, "r", epochs=1)
    (r.out_dir / CHECKPOINT_NAME).write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt or truncated checkpoint"):
        _run(tmp_path, data_dir, "r", epochs=2, resume=True)


def test_bad_subset_and_init_from(tmp_path, data_dir):
    with pytest.raises(PoshwError, match="out of range"):
        _run(tmp_path, data_dir, "a", subset=70_000)
    with pytest.raises(PoshwError, match="no coefficient set here"):
        _run(tmp_path, data_dir, "b", init_from=str(tmp_path / "missing"))


# --- staged training and evaluation ----------------------------------------------------

def test_init_from_smaller_run_keeps_its_accuracy(tmp_path, data_dir):
    small = _run(tmp_path, data_dir, "s20", model="linear-prodsum:p=1,k=20", epochs=1, lr=3e-2)
    lifted = _run(tmp_path, data_dir, "s40", model="linear-prodsum:p=1,k=40", epochs=0,
                  init_from=str(small.out_dir))
    assert lifted.metrics["test_accuracy"] == small.metrics["test_accuracy"]
    assert abs(lifted.metrics["test_loss"] - small.metrics["test_loss"]) < 1e-4
    with torch.no_grad():
        assert torch.allclose(lifted.model.layers[1].weight(), small.model.layers[1].weight(),
                              rtol=1e-4, atol=1e-6)
    # and it trains on from there
    cont = _run(tmp_path, data_dir, "s40b", model="linear-prodsum:p=1,k=40", epochs=1,
                init_from=str(small.out_dir / "coefs.npz"))
    assert cont.config.init_from.endswith("coefs.npz")


def test_init_from_refuses_what_cannot_be_lifted(tmp_path, data_dir):
    dense = _run(tmp_path, data_dir, "dense", model="linear", epochs=0)
    with pytest.raises(PoshwError, match="cannot lift every layer"):
        _run(tmp_path, data_dir, "p2", model="linear-prodsum:p=2,k=3,inner=8", epochs=0,
             init_from=str(dense.out_dir))
    r = _run(tmp_path, data_dir, "p2b", model="linear-prodsum:p=2,k=3,inner=8", epochs=0,
             init_from=str(dense.out_dir), partial_init=True)
    assert r.metrics["steps"] == 0


def test_evaluate_run_matches_training_metrics(tmp_path, data_dir):
    r = _run(tmp_path, data_dir, "r", epochs=1, test_subset=None)
    ev = evaluate_run(r.out_dir, data_dir=data_dir)
    assert ev["accuracy"] == r.metrics["test_accuracy"]
    assert math.isclose(ev["loss"], r.metrics["test_loss"], rel_tol=1e-5)
    assert ev["dataset"] == "fashion-mnist" and ev["count"] == 10_000
    other = evaluate_run(r.out_dir / "coefs.npz", dataset="mnist", split="train", data_dir=data_dir)
    assert other["count"] == 60_000


def test_keyboard_interrupt_says_how_to_resume(tmp_path, data_dir):
    lines = []

    def ctrl_c(step):
        if step == 4:
            raise KeyboardInterrupt

    cfg = TrainConfig(**{**SMALL, "checkpoint_every": 3})
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "r", data_dir=data_dir, progress=False, log=lines.append,
              on_step=ctrl_c)
    assert "the checkpoint holds step 3" in lines[-1] and "--resume" in lines[-1]
    ref = _run(tmp_path, data_dir, "ref", checkpoint_every=3)
    res = _run(tmp_path, data_dir, "r", checkpoint_every=3, resume=True)
    assert _same(_coefs(res), _coefs(ref))
