"""``poshw evaluate``: accuracy and loss of a trained run on a dataset split."""

from __future__ import annotations

import argparse
import json

from . import path_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="test accuracy and loss of a trained run",
                       description="Evaluate the coefficient set of a run directory (or a "
                                   "coefs.npz) with the float model.")
    p.add_argument("run", type=path_arg, metavar="RUN", help="run directory or coefs.npz")
    p.add_argument("--dataset", help="mnist or fashion-mnist (default: the one it was trained on)")
    p.add_argument("--split", choices=["test", "train"], default="test")
    p.add_argument("--data-dir", type=path_arg, metavar="DIR", help="dataset directory")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train import evaluate_run

    r = evaluate_run(args.run, dataset=args.dataset, split=args.split, data_dir=args.data_dir)
    if args.json:
        print(json.dumps(r, sort_keys=True))
    else:
        print(f"{r['model']} on {r['dataset']} {r['split']}: accuracy {100 * r['accuracy']:.2f}% "
              f"({r['correct']}/{r['count']}), loss {r['loss']:.4f}")
    return 0
