"""Hardware figures of the README: RTL verification on real data, two tasks on one design,
iCE40 UP5K resources and Fmax.

    python -m bench.hardware [--n 100] [--skip-synth]

1. Trains two small models on MNIST: `linear-dct:m=16` and a reduced MLP with a
   product of two sums of random +-1 bases regenerated on chip (generator basis
   source), and the same MLP (same architecture and basis seed) on Fashion-MNIST.
2. Exports them (8 MAC lanes), compiles the Verilog and runs `poshw verify` on Icarus
   and Verilator: `--n` MNIST test images each, bit-exact against the numba simulator,
   cycles equal; the MLP's run reloads the Fashion-MNIST coefficients into the running
   design and checks that the same Verilog classifies Fashion-MNIST.
3. Synthesises `linear-dct:m=16` exported with 2 lanes for the iCE40 UP5K (yosys +
   nextpnr, placer seed 1), beside the analytic estimate.

Runs live in runs/bench/hardware (reused when finished); writes results/hardware.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .common import ROOT, write_result

WORK = ROOT / "runs" / "bench" / "hardware"
LINEAR = "linear-dct:m=16"
MLP = "mlp-reduced:m=16,h1=32,h2=16,s=16,inner=8,family=rademacher"


def _train(model: str, dataset: str, key: str, epochs: int, data_dir: str | None) -> Path:
    from poshw.train.config import TrainConfig
    from poshw.train.trainer import CHECKPOINT_NAME, METRICS_NAME, train

    out = WORK / key
    if not (out / METRICS_NAME).exists():
        config = TrainConfig(model=model, dataset=dataset, epochs=epochs, lr=1e-2, schedule="cosine", seed=0)
        train(config, out, resume=(out / CHECKPOINT_NAME).exists(), data_dir=data_dir, progress=False,
              command="bench.hardware")
    return out


def _export(run: Path, key: str, lanes: int, data_dir: str | None) -> tuple[Path, dict]:
    from poshw.coefset import load
    from poshw.compiler.export import export_build
    from poshw.compiler.lower import CompileOptions

    out = WORK / key
    _, report = export_build(load(run), out, CompileOptions(lanes=lanes), data_dir=data_dir)
    return out, report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100, help="MNIST test images per simulator (default 100)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--skip-synth", action="store_true", help="no yosys / nextpnr run")
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)

    from poshw.hw.flow import compile_build, verify_build
    from poshw.hw.ice40 import synth_build

    t_start = time.time()
    runs = {"linear": _train(LINEAR, "mnist", "linear-mnist", args.epochs, args.data_dir),
            "mlp": _train(MLP, "mnist", "mlp-mnist", args.epochs, args.data_dir),
            "mlp_fashion": _train(MLP, "fashion-mnist", "mlp-fashion", args.epochs, args.data_dir)}
    builds, quant = {}, {}
    for key, run in runs.items():
        builds[key], quant[key] = _export(run, f"build-{key}", 8, args.data_dir)
        compile_build(builds[key])
    from poshw.compiler.artifacts import load_build

    irs = {k: load_build(b).ir for k, b in builds.items()}
    verify = []
    for sim in ("icarus", "verilator"):
        for key, second in (("linear", None), ("mlp", builds["mlp_fashion"])):
            rep = verify_build(builds[key], sim=sim, n=args.n, second=second)
            row = {"build": key, "model": LINEAR if key == "linear" else MLP,
                   "lower_bound": irs[key].lane_bound_cycles(), **rep.to_dict()}
            row.pop("log", None)
            verify.append(row)
            print(f"{sim:9s} {key:6s}: {rep.mismatches} mismatches in {rep.images} inferences, cycles "
                  f"{'agree' if rep.cycles_agree else 'DISAGREE'} (latency {rep.latency_rtl}), "
                  f"{rep.cycles_per_s:,.0f} cycles/s", flush=True)
    designs = {k: f"0x{ir.design_id():08x}" for k, ir in irs.items()}
    synth = None
    if not args.skip_synth:
        small, _ = _export(runs["linear"], "build-linear-lanes2", 2, args.data_dir)
        rep = synth_build(small, seed=1)
        synth = {"model": LINEAR, "lanes": 2, **rep.to_dict()}
        print(f"iCE40 UP5K: {rep.message}", flush=True)
    ok = all(v["mismatches"] == 0 and v["cycles_agree"] and v["passed"] for v in verify)
    write_result("hardware", {
        "models": {"linear": LINEAR, "mlp": MLP},
        "quantize": {k: {"dataset": q["dataset"], "float_accuracy": q["test"]["float_accuracy"],
                         "fixed_accuracy": q["test"]["fixed_accuracy"], "test_images": q["test"]["n"]}
                     for k, q in quant.items()},
        "design_ids": designs, "one_design_two_tasks": designs["mlp"] == designs["mlp_fashion"],
        "verify": verify, "synth": synth, "all_passed": ok, "wall_seconds": time.time() - t_start})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
