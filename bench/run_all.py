"""`make bench`: every benchmark, then the README's results table.

    python -m bench.run_all            # speed, hardware, the whole paper reproduction
    python -m bench.run_all --quick    # speed benchmarks only (a few minutes)

The reproduction (bench/reproduce.py) trains many models and takes hours on 2 cores;
it is resumable: finished runs are reused, interrupted ones continue.
"""

from __future__ import annotations

import argparse
import sys

from . import hardware, linear_fashion, quantize, report, reproduce, sim_speed, train_speed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="speed benchmarks only, no training runs")
    args = ap.parse_args(argv)
    steps = [("simulator speed", sim_speed.main, []), ("training-step speed", train_speed.main, [])]
    if not args.quick:
        steps += [("fixed point: train -> quantize -> export -> simulate", quantize.main, []),
                  ("hardware: RTL verification, two tasks, iCE40", hardware.main, []),
                  ("linear, Fashion-MNIST", linear_fashion.main, ["--dataset", "fashion-mnist"]),
                  ("linear, MNIST", linear_fashion.main, ["--dataset", "mnist"]),
                  ("paper reproduction", reproduce.main, [])]
    for title, fn, fn_args in steps:
        print(f"\n=== {title} ===", flush=True)
        rc = fn(fn_args)
        if rc:
            return rc
    return report.main([])


if __name__ == "__main__":
    sys.exit(main())
