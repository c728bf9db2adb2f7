"""Float vs fixed-point accuracy of the hardware flow: train -> quantize -> export -> simulate.

    python -m bench.quantize [--epochs 15]

Trains `linear-dct:m=169` and the default reduced MLP (`mlp-reduced`: DCT 48, dense
48x1024, a 1024->512 product of two sums of 500 random bases, dense 512x10) on MNIST,
quantises them (int8 activations, weights and coefficients; calibration on 2,000
training images), exports the builds and runs the numba simulator on the 10,000 test
images: accuracy, cycles per inference against the lane lower bound, the analytic
variable (coefficient) memory. Target: at most 0.5 points lost to fixed point.
Runs live in runs/bench/quantize (reused when finished); writes results/quantize.json.
"""

from __future__ import annotations

import argparse
import sys

from .common import ROOT, write_result

WORK = ROOT / "runs" / "bench" / "quantize"
MODELS = (("linear-dct:m=169", 1e-2), ("mlp-reduced", 3e-3))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)

    from poshw.cli.simulate import simulate_build
    from poshw.coefset import load
    from poshw.compiler.export import export_build
    from poshw.train.config import TrainConfig
    from poshw.train.trainer import CHECKPOINT_NAME, METRICS_NAME, train

    rows = []
    for model, lr in MODELS:
        key = model.replace(":", "_").replace("=", "")
        run = WORK / key
        if not (run / METRICS_NAME).exists():
            config = TrainConfig(model=model, dataset="mnist", epochs=args.epochs, lr=lr, schedule="cosine")
            train(config, run, resume=(run / CHECKPOINT_NAME).exists(), data_dir=args.data_dir,
                  progress=False, command="bench.quantize")
        _, report = export_build(load(run), WORK / f"build-{key}", data_dir=args.data_dir)
        sim = simulate_build(str(WORK / f"build-{key}"), "mnist", args.data_dir)
        test = report["test"]
        coef_bits = sum(e["coef_ram_bits"] for e in sim["estimates"])
        row = {"model": model, "trainable_params": load(run).trainable_parameters(),
               "float_accuracy": test["float_accuracy"], "fixed_accuracy": test["fixed_accuracy"],
               "sim_accuracy": sim["accuracy"], "drop_points": 100 * (test["float_accuracy"] - test["fixed_accuracy"]),
               "latency_cycles": sim["cycles"]["latency"], "lane_bound_cycles": sim["cycles"]["lane_bound"],
               "synth_cycles": sim["cycles"]["synth"], "coef_ram_bits": coef_bits,
               "design_id": sim["design_id"], "epochs": args.epochs, "lr": lr}
        rows.append(row)
        print(f"{model:24s} float {100 * row['float_accuracy']:.2f}%  fixed {100 * row['fixed_accuracy']:.2f}% "
              f"(sim {100 * row['sim_accuracy']:.2f}%, drop {row['drop_points']:+.2f} points)  "
              f"{row['latency_cycles']:,} cycles (bound {row['lane_bound_cycles']:,})", flush=True)
    write_result("quantize", {"dataset": "mnist", "rows": rows,
                              "within_half_point": all(r["drop_points"] <= 0.5 for r in rows)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
