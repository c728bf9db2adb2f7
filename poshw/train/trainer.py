"""The training loop: seeded, checkpointed, resumable bit for bit.

A run directory holds::

    config.json     the TrainConfig (JSON)
    spec.json       the model spec
    checkpoint.pt   model + optimiser state, step counters, shuffling RNG state (atomic)
    history.jsonl   one JSON line per finished epoch (rewritten atomically from the checkpoint)
    coefs.npz       the trained coefficient set (poshw.coefset), written at the end
    metrics.json    final metrics

Reproducibility: the data order comes from a numpy ``PCG64`` generator seeded from
the config's seed (never the global RNG); each epoch's permutation is drawn from the
generator's state at the start of the epoch, which the checkpoint stores, so a run
resumed from a mid-epoch checkpoint redraws the same permutation and skips the batches
already done. Dropout (the only other randomness) draws from a torch seed derived
from (seed, step) inside ``torch.random.fork_rng``, so it neither depends on nor
disturbs the caller's global RNG.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .. import PoshwError, __version__, data
from ..bases.prng import splitmix64
from ..coefset import CoefficientSet, load as load_coefset
from ..fileio import make_dir, write_text_atomic
from ..nn import PoshwNet, build_model
from .checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from .config import RESUME_MUTABLE, Optimizer, Schedule, TrainConfig
from .lift import lift_model

CONFIG_NAME = "config.json"
SPEC_NAME = "spec.json"
HISTORY_NAME = "history.jsonl"
COEFS_NAME = "coefs.npz"
METRICS_NAME = "metrics.json"
EVAL_BATCH = 1000
#: salt of the shuffling generator's seed, so it never equals another use of the seed
_SHUFFLE_SALT = 0x5348_5546  # "SHUF"
_DROPOUT_SALT = 0x4452_4F50  # "DROP"


@dataclass
class TrainResult:
    out_dir: Path
    config: TrainConfig
    model: PoshwNet
    history: list[dict[str, Any]]
    metrics: dict[str, Any]
    coefs: CoefficientSet


# --- data ------------------------------------------------------------------------------

def _tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(data.to_float(images)), torch.from_numpy(labels.astype(np.int64))


def load_train_test(config: TrainConfig, data_dir: str | Path | None = None):
    """``(x_train, y_train, x_test, y_test)`` float/long tensors, subsets applied."""
    tr_x, tr_y = data.load_split(config.dataset, "train", data_dir)
    te_x, te_y = data.load_split(config.dataset, "test", data_dir)
    if config.subset is not None:
        tr_x, tr_y = data.subset(tr_x, tr_y, config.subset, config.seed)
    if config.test_subset is not None:
        te_x, te_y = data.subset(te_x, te_y, config.test_subset, config.seed)
    return (*_tensors(tr_x, tr_y), *_tensors(te_x, te_y))


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray,
             batch_size: int = EVAL_BATCH) -> dict[str, Any]:
    """Accuracy and mean cross-entropy of ``model`` on ``x`` (float, or uint8 images) and ``y``."""
    if isinstance(x, np.ndarray):
        x, y = _tensors(np.asarray(x), np.asarray(y))
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        logits = model(x[i:i + batch_size])
        yb = y[i:i + batch_size]
        loss_sum += float(F.cross_entropy(logits.float(), yb, reduction="sum"))
        correct += int((logits.argmax(1) == yb).sum())
    model.train(was_training)
    n = len(x)
    return {"accuracy": correct / n if n else float("nan"), "loss": loss_sum / n if n else float("nan"),
            "correct": correct, "count": n}


def evaluate_run(run: str | Path, dataset: str | None = None, split: str = "test",
                 data_dir: str | Path | None = None) -> dict[str, Any]:
    """Evaluate a run directory's (or a ``coefs.npz``'s) coefficient set on a dataset split.

    ``dataset`` defaults to the one the coefficients were trained on.
    """
    cs = load_coefset(run)
    ds = dataset or cs.info.get("dataset")
    if not ds:
        raise PoshwError(f"{run}: the coefficient set does not say which dataset it was trained "
                         f"on; pass --dataset")
    images, labels = data.load_split(ds, split, data_dir)
    model = cs.build_model()
    out = evaluate(model, images, labels)
    return {"model": cs.spec.name, "dataset": _dataset_name(ds), "split": split,
            "trainable_parameters": cs.trainable_parameters(), **out}


def _dataset_name(name: str) -> str:
    # the spelling TrainConfig uses (load_split has validated it already)
    n = str(name).strip().lower().replace("_", "-")
    return "fashion-mnist" if n == "fashionmnist" else n


# --- pieces of the loop ----------------------------------------------------------------

def make_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    if config.optimizer is Optimizer.ADAM:
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay)


def lr_at(config: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate of (0-based) ``step``."""
    if config.schedule is Schedule.COSINE and total_steps > 0:
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    return config.lr


def shuffle_generator(seed: int) -> np.random.Generator:
    """The data-order generator of a run: its own PCG64, never the global RNG."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, _SHUFFLE_SALT])))


def _dropout_seed(seed: int, step: int) -> int:
    return splitmix64(splitmix64(seed ^ _DROPOUT_SALT) ^ step) >> 1


def _has_randomness(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules())


def _read_stored_config(out: Path) -> TrainConfig | None:
    path = out / CONFIG_NAME
    if not path.is_file():
        return None
    try:
        return TrainConfig.from_json(path.read_text())
    except (PoshwError, OSError):
        return None


def resume_config(out_dir: str | Path, **overrides: Any) -> TrainConfig:
    """The stored config of the run in ``out_dir`` with ``overrides`` applied (``None``
    values ignored). Only ``epochs`` and ``checkpoint_every`` may change on resume."""
    out = Path(out_dir)
    if not (out / CHECKPOINT_NAME).is_file():
        raise PoshwError(f"--resume: {out} holds no run to resume (no {CHECKPOINT_NAME})")
    stored = TrainConfig.from_dict(load_checkpoint(out / CHECKPOINT_NAME)["config"])
    changes = {k: v for k, v in overrides.items() if v is not None}
    if "model" in changes and changes["model"] != stored.model:
        canonical = TrainConfig(model=changes["model"], dataset=stored.dataset).model
        if canonical != stored.model:
            raise PoshwError(f"--out {out} holds a run of model {stored.model!r}, not "
                             f"{canonical!r}; choose another --out")
        changes["model"] = canonical
    return stored.replace(**changes)


def _check_resume(out: Path, stored: TrainConfig, config: TrainConfig, epochs_done: int) -> None:
    diffs = {k: v for k, v in stored.differences(config).items() if k not in RESUME_MUTABLE}
    if "model" in diffs:
        raise PoshwError(f"--out {out} holds a run of model {stored.model!r}, not "
                         f"{config.model!r}; choose another --out")
    if diffs:
        desc = ", ".join(f"{k} {a!r} (stored) vs {b!r}" for k, (a, b) in sorted(diffs.items()))
        raise PoshwError(f"--resume: the options differ from the run in {out}: {desc}; a resumed "
                         f"run may only change --epochs and --checkpoint-every")
    if config.epochs < epochs_done:
        raise PoshwError(f"--resume: the run in {out} has already done {epochs_done} epochs, more "
                         f"than --epochs {config.epochs}")
    if config.schedule is Schedule.COSINE and config.epochs != stored.epochs:
        raise PoshwError("--resume: the cosine schedule depends on --epochs, which cannot change "
                         f"on resume (stored {stored.epochs}, given {config.epochs})")


def _prepare_fresh(out: Path, config: TrainConfig) -> None:
    if out.exists() and not out.is_dir():
        raise PoshwError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        stored = _read_stored_config(out)
        if stored is not None and stored.model != config.model:
            raise PoshwError(f"--out {out} already holds a run of model {stored.model!r} (not "
                             f"{config.model!r}); choose another --out")
        if stored is not None or (out / CHECKPOINT_NAME).exists():
            raise PoshwError(f"--out {out} already holds a run of {config.model!r}; pass --resume "
                             f"to continue it, or choose another --out")
        raise PoshwError(f"--out {out} exists and is not empty (and is not a poshw run); "
                         f"choose a new or empty directory")
    make_dir(out, "run directory (--out)")


def _write_history(out: Path, history: list[dict[str, Any]]) -> None:
    write_text_atomic(out / HISTORY_NAME, "".join(json.dumps(h, sort_keys=True) + "\n" for h in history))


# --- the loop --------------------------------------------------------------------------

def train(config: TrainConfig, out_dir: str | Path, *, resume: bool = False,
          data_dir: str | Path | None = None, progress: bool | None = None,
          log: Callable[[str], None] = print, command: str | None = None,
          on_step: Callable[[int], None] | None = None) -> TrainResult:
    """Train ``config`` into ``out_dir`` (see the module doc), or continue it with ``resume``.

    ``progress``: show a tqdm bar (default: when stderr is a terminal). ``on_step(step)``
    is called after every optimiser step (tests use it to interrupt a run).
    Raises :class:`~poshw.PoshwError` for every user mistake, before any training.
    """
    out = Path(out_dir)
    spec = config.spec()
    ckpt = None
    if resume:
        if not (out / CHECKPOINT_NAME).is_file():
            raise PoshwError(f"--resume: {out} holds no run to resume (no {CHECKPOINT_NAME})")
        ckpt = load_checkpoint(out / CHECKPOINT_NAME)
        stored = TrainConfig.from_dict(ckpt["config"])
        _check_resume(out, stored, config, int(ckpt["epoch"]))
        if ckpt["spec"] != spec.to_dict():
            raise PoshwError(f"--resume: the model spec of {config.model!r} has changed since the "
                             f"run in {out} was started (a different poshw version?)")
    else:
        _prepare_fresh(out, config)
    if config.init_from is not None and ckpt is None:
        # Fail early on a bad path, before any data is loaded.
        load_coefset(config.init_from)

    x_tr, y_tr, x_te, y_te = load_train_test(config, data_dir)
    n = len(x_tr)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = steps_per_epoch * config.epochs

    model = build_model(spec)
    opt = make_optimizer(config, model.parameters())
    rng = shuffle_generator(config.seed)
    write_text_atomic(out / CONFIG_NAME, config.to_json() + "\n")
    write_text_atomic(out / SPEC_NAME, spec.to_json() + "\n")

    if ckpt is None:
        epoch, step, step_in_epoch = 0, 0, 0
        sums = {"loss": 0.0, "correct": 0, "seen": 0}
        history: list[dict[str, Any]] = []
        train_seconds = 0.0
        if config.init_from is not None:
            report = lift_model(model, config.init_from, strict=not config.partial_init)
            for line in report.lines():
                log(line)
        epoch_rng_state = rng.bit_generator.state
        save_checkpoint(out / CHECKPOINT_NAME, _state(config, spec, model, opt, epoch, step, 0,
                                                      epoch_rng_state, sums, history, 0.0))
    else:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        epoch, step, step_in_epoch = int(ckpt["epoch"]), int(ckpt["step"]), int(ckpt["step_in_epoch"])
        sums = dict(ckpt["epoch_sums"])
        history = list(ckpt["history"])
        train_seconds = float(ckpt["train_seconds"])
        epoch_rng_state = json.loads(ckpt["epoch_rng_state"])
        rng.bit_generator.state = epoch_rng_state
        log(f"resuming {config.model} from epoch {epoch} step {step} ({out / CHECKPOINT_NAME})")
    _write_history(out, history)

    random_layers = _has_randomness(model)
    show = sys.stderr.isatty() if progress is None else progress
    model.train()
    saved_step = step  # the step of the checkpoint on disk
    try:
        while epoch < config.epochs:
            t0 = time.perf_counter()
            epoch_rng_state = rng.bit_generator.state
            perm = torch.from_numpy(rng.permutation(n))
            bar = tqdm(total=steps_per_epoch, initial=step_in_epoch, disable=not show, leave=False,
                       desc=f"epoch {epoch + 1}/{config.epochs}", unit="step", dynamic_ncols=True)
            try:
                for b in range(step_in_epoch, steps_per_epoch):
                    idx = perm[b * config.batch_size:(b + 1) * config.batch_size]
                    xb, yb = x_tr[idx], y_tr[idx]
                    lr = lr_at(config, step, total_steps)
                    for group in opt.param_groups:
                        group["lr"] = lr
                    if random_layers:
                        with torch.random.fork_rng(devices=[]):
                            torch.manual_seed(_dropout_seed(config.seed, step))
                            loss, logits = _forward_backward(model, opt, xb, yb)
                    else:
                        loss, logits = _forward_backward(model, opt, xb, yb)
                    if not math.isfinite(float(loss)):
                        raise PoshwError(f"training diverged at epoch {epoch + 1} step {step + 1} "
                                         f"(loss {float(loss)}); lower --lr")
                    opt.step()
                    step += 1
                    step_in_epoch = b + 1
                    sums["loss"] += float(loss) * len(idx)
                    sums["correct"] += int((logits.argmax(1) == yb).sum())
                    sums["seen"] += len(idx)
                    bar.update(1)
                    if show and step % 20 == 0:
                        bar.set_postfix(loss=f"{sums['loss'] / sums['seen']:.4f}", refresh=False)
                    if (config.checkpoint_every and step % config.checkpoint_every == 0
                            and step_in_epoch < steps_per_epoch):
                        save_checkpoint(out / CHECKPOINT_NAME, _state(
                            config, spec, model, opt, epoch, step, step_in_epoch, epoch_rng_state,
                            sums, history, train_seconds + time.perf_counter() - t0))
                        saved_step = step
                    if on_step is not None:
                        on_step(step)
            finally:
                bar.close()
            train_seconds += time.perf_counter() - t0
            test = evaluate(model, x_te, y_te)
            model.train()
            epoch += 1
            entry = {"epoch": epoch, "step": step, "lr": lr_at(config, step - 1, total_steps),
                     "train_loss": sums["loss"] / max(sums["seen"], 1),
                     "train_accuracy": sums["correct"] / max(sums["seen"], 1),
                     "test_loss": test["loss"], "test_accuracy": test["accuracy"],
                     "train_seconds": round(train_seconds, 3)}
            history.append(entry)
            log(f"epoch {epoch}/{config.epochs}  train loss {entry['train_loss']:.4f} "
                f"acc {100 * entry['train_accuracy']:.2f}%  test loss {test['loss']:.4f} "
                f"acc {100 * test['accuracy']:.2f}%  ({time.perf_counter() - t0:.1f} s)")
            step_in_epoch = 0
            sums = {"loss": 0.0, "correct": 0, "seen": 0}
            # The generator now stands at the next epoch's start.
            save_checkpoint(out / CHECKPOINT_NAME, _state(config, spec, model, opt, epoch, step, 0,
                                                          rng.bit_generator.state, sums, history,
                                                          train_seconds))
            saved_step = step
            _write_history(out, history)
    except KeyboardInterrupt:
        log(f"interrupted at epoch {epoch + 1} step {step}; the checkpoint holds step "
            f"{saved_step}: continue with `poshw train --resume --out {out}`")
        raise

    return _finish(out, config, model, history, step, train_seconds, x_tr, x_te, y_te, command)


def _forward_backward(model, opt, xb, yb):
    logits = model(xb)
    loss = F.cross_entropy(logits, yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    return loss.detach(), logits.detach()


def _state(config, spec, model, opt, epoch, step, step_in_epoch, epoch_rng_state, sums, history,
           train_seconds) -> dict[str, Any]:
    return {"config": config.to_dict(), "spec": spec.to_dict(), "model": model.state_dict(),
            "optimizer": opt.state_dict(), "epoch": epoch, "step": step,
            "step_in_epoch": step_in_epoch,
            # JSON: PCG64's 128-bit state integers, kept exact and loadable with weights_only
            "epoch_rng_state": json.dumps(epoch_rng_state), "epoch_sums": dict(sums),
            "history": list(history), "train_seconds": float(train_seconds)}


def _finish(out, config, model, history, step, train_seconds, x_tr, x_te, y_te, command) -> TrainResult:
    if history and history[-1]["epoch"] == config.epochs:
        last = history[-1]
        test = {"accuracy": last["test_accuracy"], "loss": last["test_loss"]}
    else:  # no epochs (e.g. only lifting): evaluate the initial model
        test = evaluate(model, x_te, y_te)
    last = history[-1] if history else {}
    info = {"dataset": config.dataset, "epochs": config.epochs, "steps": step,
            "test_accuracy": test["accuracy"], "test_loss": test["loss"],
            "test_examples": len(x_te), "train_examples": len(x_tr),
            "command": command, "config": config.to_dict(), "poshw_version": __version__}
    coefs = CoefficientSet.from_model(model, info)
    coefs.save(out / COEFS_NAME)
    metrics = {"model": config.model, "dataset": config.dataset,
               "trainable_parameters": model.trainable_parameters(),
               "epochs": config.epochs, "steps": step,
               "train_loss": last.get("train_loss"), "train_accuracy": last.get("train_accuracy"),
               "test_loss": test["loss"], "test_accuracy": test["accuracy"],
               "test_examples": len(x_te), "train_examples": len(x_tr),
               "train_seconds": round(train_seconds, 3), "coefs_sha256": coefs.checksum()}
    write_text_atomic(out / METRICS_NAME, json.dumps(metrics, indent=1, sort_keys=True) + "\n")
    return TrainResult(out, config, model, history, metrics, coefs)
