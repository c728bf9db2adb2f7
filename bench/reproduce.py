"""Reproduce the paper's experiments on MNIST and Fashion-MNIST.

    python -m bench.reproduce --list
    python -m bench.reproduce fig1a fig1b [--trials 3] [--epochs-scale 1.0] [--plot-only]

Every run of an experiment is an ordinary `poshw train` run directory under
``runs/bench/<experiment>/<run>``: a finished run (``metrics.json``) is reused, an
interrupted one resumes from its checkpoint, so the whole script can be stopped
and restarted at any time (and run in the background: ``nohup ... &``). Results:
``results/<experiment>.json`` (config, seeds, trainable params, accuracy per trial,
wall time) and ``results/<experiment>.png`` in the style of the paper's figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from .common import ROOT, RESULTS, write_result

RUNS = ROOT / "runs" / "bench"


@dataclass(frozen=True)
class Run:
    """One training run: its group (a curve in the figure), x value and trial."""

    key: str
    model: str
    dataset: str
    epochs: int
    lr: float
    seed: int
    group: str
    batch_size: int = 128
    schedule: str = "cosine"
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    #: experiment whose run directory holds this run, when it is shared with another figure
    home: str | None = None

    def directory(self, exp: str) -> Path:
        return RUNS / (self.home or exp) / self.key


@dataclass(frozen=True)
class Experiment:
    name: str
    figure: str
    title: str
    runs: Callable[[argparse.Namespace], list[Run]]
    #: the figure's x axis: "params" (trainable parameters) or a run meta key
    x: str = "params"
    xlabel: str = "trainable parameters"
    xlog: bool = True
    #: paper figure for the README table, e.g. "~92% at 7,850 params"
    paper: str = ""


def _epochs(args, n: int) -> int:
    return max(1, round(n * args.epochs_scale))


# --- experiment definitions -------------------------------------------------------------

LINEAR_M = (16, 36, 64, 169, 400, 784)
LINEAR_LR = 1e-2


def _fig1(dataset: str) -> Callable[[argparse.Namespace], list[Run]]:
    def runs(args) -> list[Run]:
        out = []
        for t in range(args.trials):
            out.append(Run(f"linear-t{t}", "linear", dataset, _epochs(args, 15), 1e-3, t, "reference (dense)"))
            for method in ("dct", "gauss", "subsample"):
                for m in LINEAR_M:
                    out.append(Run(f"{method}-m{m}-t{t}", f"linear-{method}:m={m}", dataset, _epochs(args, 15),
                                   LINEAR_LR, t, {"dct": "2-D DCT", "gauss": "Gaussian projection",
                                                  "subsample": "random subsampling"}[method], meta={"m": m}))
        return out
    return runs


def _fig2a(args) -> list[Run]:
    # The dense and DCT curves are Fig 1a's runs, shared (same settings, same directories).
    fig1a = _fig1("mnist")(argparse.Namespace(trials=args.trials, epochs_scale=1.0))
    out = [replace(r, home="fig1a") for r in fig1a if r.group in ("2-D DCT", "reference (dense)")]
    for t in range(args.trials):
        for k in (2, 5, 10, 20, 40, 80):
            out.append(Run(f"prodsum-k{k}-t{t}", f"linear-prodsum:p=10,k={k},family=rademacher", "mnist",
                           _epochs(args, 10), 1e-1, t, "product of p=10 random sums", meta={"k": k}))
    return out


def _fig2b(args) -> list[Run]:
    # conv params: LeNet's 5x5 convs, 1->32 and 32->64 filters with biases
    out = [Run("lenet", "lenet", "mnist", _epochs(args, 8), 1e-3, 0, "reference LeNet",
               meta={"conv_params": 32 * 25 + 32 + 64 * 32 * 25 + 64})]
    for c1, c2 in ((8, 16), (25, 50), (50, 200), (100, 400), (200, 800)):
        out.append(Run(f"convs-{c1}-{c2}", f"lenet-convs:conv1={c1},conv2={c2}", "mnist", _epochs(args, 8),
                       1e-3, 0, "convolutions as sums of random filters",
                       meta={"conv_params": c1 + c2 + 96}))
    return out


PSN_SIZES = ((0.125, "x1/8"), (0.25, "x1/4"), (0.5, "x1/2"), (1.0, "3554 (paper)"), (3.5, "x3.5"))
PSN_LR = 1e-1


def _prodsumnet(scale: float) -> str:
    c1, c2, fd, fr, f2, fb = (max(1, round(v * scale)) for v in (200, 800, 100, 500, 1024, 824))
    return (f"prodsumnet:conv1={c1},conv2={c2},fc1_dense={fd},fc1_rank1={fr},fc2={f2},fc1_bias={fb},"
            f"family=rademacher")


def _fig3(dataset: str) -> Callable[[argparse.Namespace], list[Run]]:
    def runs(args) -> list[Run]:
        out = [Run("lenet", "lenet", dataset, _epochs(args, 12), 1e-3, 0, "reference LeNet")]
        for scale, label in PSN_SIZES:
            out.append(Run(f"psn-{scale:g}", _prodsumnet(scale), dataset, _epochs(args, 20), PSN_LR, 0,
                           "ProdSumNet", meta={"size": label}))
        return out
    return runs


def _fig4a(args) -> list[Run]:
    out = [Run("mlp", "mlp", "mnist", _epochs(args, 10), 1e-3, 0, "reference MLP")]
    for m, s, last in ((25, 100, "dense"), (48, 200, "dense"), (48, 500, "dense"), (100, 500, "dense"),
                       (48, 500, "prodsum")):
        out.append(Run(f"mlpr-m{m}-s{s}-{last}", f"mlp-reduced:m={m},s={s},last={last}", "mnist",
                       _epochs(args, 10), 3e-3, 0, f"reduced MLP (last layer {last})"))
    return out


def _fig4b(args) -> list[Run]:
    return [Run(f"convfree-t{t}", "convfree", "mnist", _epochs(args, 15), 1e-3, t, "conv-free DCT-Hadamard")
            for t in range(max(1, min(args.trials, 2)))]


EXPERIMENTS = {e.name: e for e in (
    Experiment("fig1a", "Fig 1a", "Linear classifier on a fixed projection (MNIST)", _fig1("mnist"),
               paper="dense 7,850 params ~92%; DCT at ~10% of the params matches it"),
    Experiment("fig1b", "Fig 1b", "Linear classifier on a fixed projection (Fashion-MNIST)", _fig1("fashion-mnist"),
               paper="dense ~84%; DCT at ~10% of the params matches it"),
    Experiment("fig2a", "Fig 2a", "Linear: product of p=10 random sums vs DCT (MNIST)", _fig2a,
               paper="approaches the DCT curve"),
    Experiment("fig2b", "Fig 2b", "LeNet with only the convolutions reduced (MNIST)", _fig2b,
               x="conv_params", xlabel="trainable parameters in the convolutions",
               paper="reference 99.34%; same accuracy with far fewer conv params"),
    Experiment("fig3a", "Fig 3a / Table 1", "ProdSumNet: every layer a sum of fixed bases (MNIST)", _fig3("mnist"),
               paper="3,554 params: 98.44%"),
    Experiment("fig3b", "Fig 3b", "ProdSumNet (Fashion-MNIST)", _fig3("fashion-mnist"),
               paper="within ~4% of LeNet (92.5%) at 0.38% of its params"),
    Experiment("fig4a", "Fig 4a", "MLP 1024-512-10 reduced: DCT first layer, product of sums second (MNIST)", _fig4a,
               paper="reference 98.2%; within 1.5% at 4.3% of the params"),
    Experiment("fig4b", "Fig 4b", "Conv-free DCT-Hadamard net (MNIST)", _fig4b, x="params",
               paper="98.2% with 300 params in the Hadamard layers"),
)}


# --- running ----------------------------------------------------------------------------

def run_one(exp: str, run: Run, data_dir: str | None) -> dict[str, Any]:
    from poshw.train.config import TrainConfig
    from poshw.train.trainer import CHECKPOINT_NAME, METRICS_NAME, train

    out = run.directory(exp)
    metrics_path = out / METRICS_NAME
    if not metrics_path.exists():
        config = TrainConfig(model=run.model, dataset=run.dataset, epochs=run.epochs, lr=run.lr,
                             seed=run.seed, batch_size=run.batch_size, schedule=run.schedule)
        resume = (out / CHECKPOINT_NAME).exists()
        print(f"[{exp}] {'resuming' if resume else 'training'} {run.key}: {run.model} on {run.dataset}, "
              f"{run.epochs} epochs", flush=True)
        train(config, out, resume=resume, data_dir=data_dir, progress=sys.stderr.isatty(),
              command=f"bench.reproduce {exp}")
    metrics = json.loads(metrics_path.read_text())
    config = json.loads((out / "config.json").read_text())  # what the run really used
    return {"key": run.key, "group": run.group, "model": metrics["model"], "dataset": run.dataset,
            "seed": config["seed"], "epochs": config["epochs"], "lr": config["lr"],
            "schedule": config["schedule"], "batch_size": config["batch_size"],
            "trainable_params": metrics["trainable_parameters"], "test_accuracy": metrics["test_accuracy"],
            "train_seconds": metrics.get("train_seconds"), **run.meta}


def summarise(rows: list[dict[str, Any]], x: str = "params") -> list[dict[str, Any]]:
    """Mean / min / max accuracy over trials per (group, params); ``x`` is the figure's abscissa."""
    by: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault((r["group"], r["trainable_params"]), []).append(r)
    out = []
    for (group, params), rs in sorted(by.items()):
        accs = [r["test_accuracy"] for r in rs]
        out.append({"group": group, "trainable_params": params, "trials": len(accs),
                    "x": params if x == "params" else rs[0].get(x, params),
                    "accuracy_mean": statistics.fmean(accs), "accuracy_min": min(accs),
                    "accuracy_max": max(accs), "error_mean": 1 - statistics.fmean(accs),
                    "models": sorted({r["model"] for r in rs})})
    return out


def plot(exp: Experiment, summary: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    groups = sorted({s["group"] for s in summary})
    for g in groups:
        pts = sorted((s["x"], 100 * s["error_mean"]) for s in summary if s["group"] == g)
        xs, ys = zip(*pts)
        style = "--" if g.startswith("reference") else "-o"
        if len(xs) == 1 and g.startswith("reference"):
            ax.axhline(ys[0], ls="--", color="k", lw=1, label=f"{g}: {xs[0]:,} {'params' if exp.x == 'params' else exp.x.replace('_', ' ')}")
        else:
            ax.plot(xs, ys, style, ms=4, label=g)
    if exp.xlog:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(exp.xlabel)
    ax.set_ylabel("test error (%)")
    ax.set_title(f"{exp.figure}: {exp.title}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)
    plt.close(fig)


def reproduce_commands(exp: Experiment, runs: list[Run], rows: list[dict[str, Any]]) -> list[str]:
    """The commands that retrain exactly the finished ``rows`` on a fresh machine.

    Runs may have been trained at different ``--epochs-scale`` (a long run at full
    length, a sweep at half): each scale gets its own command, with ``--only`` when
    there are several. Runs shared from another experiment (``home``) are left to it.
    """
    by_key = {r.key: r for r in runs}
    trials = len({row["seed"] for row in rows}) or 1
    trial_dependent = len(exp.runs(argparse.Namespace(trials=1, epochs_scale=1.0))) != \
        len(exp.runs(argparse.Namespace(trials=2, epochs_scale=1.0)))
    full = {r.key: r.epochs for r in exp.runs(argparse.Namespace(trials=max(trials, 1), epochs_scale=1.0))}
    scales: dict[float, list[str]] = {}
    for row in rows:
        run = by_key.get(row["key"])
        if run is None or run.home or row["key"] not in full:
            continue
        scales.setdefault(round(row["epochs"] / full[row["key"]], 2), []).append(row["key"])
    base = f"python -m bench.reproduce {exp.name}" + (f" --trials {trials}" if trial_dependent and trials != 2 else "")
    out = []
    for scale, keys in sorted(scales.items(), reverse=True):
        cmd = base + (f" --epochs-scale {scale:g}" if scale != 1 else "")
        out.append(cmd + (f" --only {' '.join(keys)}" if len(scales) > 1 else ""))
    return out or [base]


def run_experiment(exp: Experiment, args: argparse.Namespace) -> dict[str, Any]:
    runs = exp.runs(args)
    rows = []
    t0 = time.time()
    for i, run in enumerate(runs):
        metrics_path = run.directory(exp.name) / "metrics.json"
        if (args.plot_only or (args.only and run.key not in args.only)) and not metrics_path.exists():
            continue
        print(f"[{exp.name}] run {i + 1}/{len(runs)}", flush=True)
        rows.append(run_one(exp.name, run, args.data_dir))
    summary = summarise(rows, exp.x)
    # complete: every run of the trials that exist (a --plot-only call does not know --trials)
    trials = len({r["seed"] for r in rows}) or args.trials
    expected = {r.key for r in exp.runs(argparse.Namespace(trials=trials, epochs_scale=args.epochs_scale))}
    payload = {"experiment": exp.name, "figure": exp.figure, "title": exp.title, "paper": exp.paper,
               "trials": trials, "complete": expected <= {r["key"] for r in rows},
               "commands": reproduce_commands(exp, runs, rows),
               "runs": rows, "summary": summary, "wall_seconds_this_invocation": time.time() - t0}
    write_result(exp.name, payload)
    if summary:
        plot(exp, summary, RESULTS / f"{exp.name}.png")
    for s in summary:
        print(f"  {s['group']:40s} {s['trainable_params']:>10,d} params  "
              f"acc {100 * s['accuracy_mean']:6.2f}% (n={s['trials']})")
    return payload


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiments", nargs="*", help="experiment names (default: all)")
    ap.add_argument("--list", action="store_true", help="list the experiments and their runs")
    ap.add_argument("--trials", type=int, default=2, help="trials (seeds) for the linear sweeps")
    ap.add_argument("--epochs-scale", type=float, default=1.0, help="multiply every run's epochs")
    ap.add_argument("--plot-only", action="store_true", help="summarise finished runs; train nothing")
    ap.add_argument("--data-dir", default=None, help="dataset directory (default: POSHW_DATA / search)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--only", nargs="+", default=None, help="run only these run keys (then summarise all finished)")
    args = ap.parse_args(argv)
    names = args.experiments or list(EXPERIMENTS)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        print(f"unknown experiment(s) {unknown}; choose from {list(EXPERIMENTS)}", file=sys.stderr)
        return 2
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.list:
        for n in names:
            runs = EXPERIMENTS[n].runs(args)
            print(f"{n}: {EXPERIMENTS[n].title} ({len(runs)} runs)")
            for r in runs:
                print(f"   {r.key:24s} {r.model:60s} {r.dataset:14s} {r.epochs:3d} ep lr {r.lr:g}")
        return 0
    for n in names:
        run_experiment(EXPERIMENTS[n], args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
