"""`make demo`: the whole poshw flow on a small model, end to end.

    python -m poshw.demo [--out build/demo] [--model NAME] [--epochs N] [--verify-n N]

train (short) -> quantize -> export -> compile (Verilog) -> simulate (numba, all MNIST
test images) -> verify (the Verilog in Icarus against the simulator, bit and cycle
exact), then a summary. Each step is the `poshw` command a user would type, run in
this process; the commands are printed so they can be rerun one by one.

The default model is a reduced MLP: the 16 lowest 2-D DCT coefficients, a dense 16x32
layer, a 32->16 product of two sums of 16 random +-1 bases (regenerated on chip by the
basis generator, no basis ROM) and a dense 16x10 layer.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from .cli import main as poshw_main
from .coefset import load as load_coefset
from .cli.simulate import format_result, simulate_build
from .cli.verify import format_report
from .hw.flow import verify_build

DEFAULT_MODEL = "mlp-reduced:m=16,h1=32,h2=16,s=16,inner=8,family=rademacher"


def _step(title: str, argv: list[str]) -> float:
    print(f"\n=== {title}\n$ poshw {shlex.join(argv)}", flush=True)
    t = time.perf_counter()
    rc = poshw_main(argv)
    if rc:
        raise SystemExit(f"demo: step '{title}' failed (exit {rc})")
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="build/demo", help="working directory (default build/demo)")
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--verify-n", type=int, default=20, help="MNIST test images run through the Verilog")
    args = ap.parse_args(argv)
    out = Path(args.out)
    run, build = out / "run", out / "build"
    times = {}
    train_argv = ["train", "--model", args.model, "--dataset", args.dataset, "--epochs", str(args.epochs),
                  "--lr", "0.01", "--schedule", "cosine", "--out", str(run), "--no-progress"]
    if (run / "coefs.npz").exists():
        print(f"\n=== train: reusing the finished run in {run} (delete it to retrain)")
    else:
        if run.exists():
            train_argv.append("--resume")
        times["train"] = _step("train (short)", train_argv)
    times["quantize"] = _step("quantize (post-training, calibrated on training images)",
                              ["quantize", str(run), "--dataset", args.dataset])
    times["export"] = _step("export (IR, ROM and parameter images, golden vectors)",
                            ["export", str(run), "--out", str(build), "--dataset", args.dataset])
    times["compile"] = _step("compile (Amaranth -> Verilog)", ["compile", str(build)])
    print(f"\n=== simulate (numba, bit- and cycle-accurate)\n$ poshw simulate {build} --dataset {args.dataset}",
          flush=True)
    t0 = time.perf_counter()
    sim = simulate_build(str(build), args.dataset)
    print(format_result(sim))
    times["simulate"] = time.perf_counter() - t0
    print(f"\n=== verify (the Verilog in Icarus vs the simulator)\n$ poshw verify {build} --sim icarus "
          f"--n {args.verify_n}", flush=True)
    t0 = time.perf_counter()
    rep = verify_build(build, sim="icarus", n=args.verify_n)
    print(format_report(rep))
    times["verify"] = time.perf_counter() - t0
    cyc = sim["cycles"]
    ok = rep.passed and rep.mismatches == 0 and rep.cycles_agree
    print("\n=== summary")
    print(f"model             {args.model}")
    print(f"design            {sim['design_id']}, {load_coefset(run).trainable_parameters():,} trainable "
          f"parameters")
    print(f"fixed-point acc.  {100 * sim['accuracy']:.2f}% on {sim['n']:,} {args.dataset} test images")
    print(f"cycles/inference  {cyc['latency']:,} (lower bound {cyc['lane_bound']:,}, ratio {cyc['ratio']:.2f}); "
          f"weight synthesis {cyc['synth']:,} cycles after a coefficient load")
    print(f"RTL (Icarus)      {rep.mismatches} mismatches in {rep.images} inferences, cycles "
          f"{'equal to' if rep.cycles_agree else 'DIFFERENT from'} the simulator's")
    print("step times        " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
