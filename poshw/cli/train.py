"""``poshw train``: train a zoo model on MNIST / Fashion-MNIST into a run directory."""

from __future__ import annotations

import argparse
import shlex

from .. import PoshwError
from . import path_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a model into a run directory (checkpointed, resumable)",
        description="Train a zoo model (see `poshw models`). The run directory gets config.json, "
                    "checkpoint.pt (after every epoch, and every N steps with "
                    "--checkpoint-every), history.jsonl, coefs.npz and metrics.json. "
                    "--resume continues an interrupted run exactly where its last checkpoint "
                    "stopped; the same --seed gives the same result.")
    # Training options default to None so that a resumed run can tell which were given.
    p.add_argument("--model", help="zoo model name, e.g. linear-dct:m=169 (see `poshw models`)")
    p.add_argument("--dataset", help="mnist or fashion-mnist (default mnist)")
    p.add_argument("--epochs", type=int, help="epochs (default 10; on --resume: raise to extend)")
    p.add_argument("--batch-size", type=int, help="mini-batch size (default 128)")
    p.add_argument("--lr", type=float, help="learning rate (default 1e-3)")
    p.add_argument("--seed", type=int, help="basis, initialisation and shuffling seed (default 0)")
    p.add_argument("--optimizer", choices=["adam", "sgd"], help="default adam")
    p.add_argument("--momentum", type=float, help="SGD momentum (default 0.9)")
    p.add_argument("--weight-decay", type=float, help="L2 weight decay (default 0)")
    p.add_argument("--schedule", choices=["constant", "cosine"],
                   help="learning-rate schedule (default constant)")
    p.add_argument("--subset", type=int, metavar="N",
                   help="train on a class-balanced random subset of N training examples")
    p.add_argument("--test-subset", type=int, metavar="N",
                   help="evaluate on a class-balanced subset of N test examples (quick runs)")
    p.add_argument("--checkpoint-every", type=int, metavar="STEPS",
                   help="also checkpoint every STEPS optimiser steps (default: per epoch only)")
    p.add_argument("--init-from", type=path_arg, metavar="RUN",
                   help="initialise from a trained run (directory or coefs.npz) by least squares "
                        "(staged training, paper section 7)")
    p.add_argument("--partial-init", action="store_true", default=None,
                   help="with --init-from: keep fresh values for layers that cannot be lifted")
    p.add_argument("--data-dir", type=path_arg, metavar="DIR",
                   help="dataset directory (default: $POSHW_DATA, then the standard places)")
    p.add_argument("--out", type=path_arg, required=True, metavar="DIR", help="run directory")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: torch's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


_FIELDS = ("model", "dataset", "epochs", "batch_size", "lr", "seed", "optimizer", "momentum",
           "weight_decay", "schedule", "subset", "test_subset", "checkpoint_every", "init_from",
           "partial_init")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..train import TrainConfig, resume_config, train

    if args.threads is not None:
        if args.threads < 1:
            raise PoshwError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    given = {k: getattr(args, k) for k in _FIELDS if getattr(args, k) is not None}
    if args.resume:
        config = resume_config(args.out, **given)
    else:
        if "model" not in given:
            raise PoshwError("--model is required (see `poshw models` for the list)")
        config = TrainConfig(**given)
    command = canonical_command(config, args.out)
    result = train(config, args.out, resume=args.resume, data_dir=args.data_dir,
                   progress=False if args.no_progress else None, command=command)
    m = result.metrics
    print(f"{m['model']} on {m['dataset']}: test accuracy {100 * m['test_accuracy']:.2f}% "
          f"(loss {m['test_loss']:.4f}), {m['trainable_parameters']:,} trainable parameters, "
          f"{m['epochs']} epochs in {m['train_seconds']:.1f} s -> {args.out}")
    return 0


def canonical_command(config, out: str) -> str:
    """The ``poshw train`` command that reproduces ``config`` (every training option spelled
    out, so it does not depend on defaults), recorded in the coefficient set."""
    d = config.to_dict()
    parts = ["poshw", "train"]
    for k in _FIELDS:
        v = d[k]
        if v is None or v is False:
            continue
        flag = "--" + k.replace("_", "-")
        parts += [flag] if v is True else [flag, str(v)]
    return shlex.join(parts + ["--out", str(out)])
