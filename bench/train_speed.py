"""Training-step speed and memory: dense LeNet reference vs ProdSumNet-3554.

    python -m bench.train_speed [--batch 128] [--repeats 15] [--models lenet prodsumnet ...]

Each model is timed in its own subprocess (so each peak RSS is its own): build,
``warmup`` steps, then the median of ``repeats`` Adam steps on random data of
the MNIST shape. Also measured: memory bandwidth (numpy copy of 256 MB), from
which the floor of the basis traffic follows: every compact basis store is read
twice per step (forward combine, backward correlation), so
``floor = 2 * basis bytes / bandwidth``. Writes results/train_speed.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

from .common import write_result

DEFAULT_MODELS = ["lenet", "prodsumnet", "prodsumnet:family=rademacher"]


def _basis_bytes(model) -> int:
    from poshw.nn.compact import CompactStack

    total = 0
    for mod in model.modules():
        for v in list(vars(mod).values()):
            stores = v.values() if isinstance(v, dict) else [v]
            total += sum(s.nbytes for s in stores if isinstance(s, CompactStack))
    total += sum(b.numel() * b.element_size() for _, b in model.named_buffers())
    return total


def measure_one(name: str, batch: int, warmup: int, repeats: int, threads: int) -> dict:
    import torch

    from poshw import zoo
    from poshw.nn import build_model

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    model = build_model(zoo.get(name))
    build_s = time.perf_counter() - t0
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand((batch, 1, 28, 28), generator=gen)
    y = torch.randint(0, 10, (batch,), generator=gen)
    times = []
    for i in range(warmup + repeats):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return {"model": name, "trainable_params": model.trainable_parameters(),
            "step_ms_median": 1e3 * statistics.median(times),
            "step_ms_min": 1e3 * min(times), "step_ms_all": [round(1e3 * t, 2) for t in times],
            "build_s": build_s, "basis_bytes": _basis_bytes(model),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def bandwidth_gbs(mb: int = 256, repeats: int = 5) -> float:
    a = np.ones(mb << 18, dtype=np.float32)
    b = np.empty_like(a)
    best = min(_timed(lambda: np.copyto(b, a)) for _ in range(repeats))
    return 2 * a.nbytes / best / 1e9  # read + write


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(measure_one(args.child, args.batch, args.warmup, args.repeats, args.threads)))
        return 0
    rows = []
    for name in args.models:
        cmd = [sys.executable, "-m", "bench.train_speed", "--child", name, "--batch", str(args.batch),
               "--warmup", str(args.warmup), "--repeats", str(args.repeats), "--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        rows.append(row)
        print(f"{name:32s} {row['trainable_params']:>10,d} params  step {row['step_ms_median']:7.1f} ms  "
              f"peak RSS {row['peak_rss_mb']:6.0f} MiB  bases {row['basis_bytes'] / 1e6:6.1f} MB", flush=True)
    bw = bandwidth_gbs()
    ref = next((r for r in rows if r["model"] == "lenet"), None)
    for r in rows:
        r["floor_ms"] = 1e3 * 2 * r["basis_bytes"] / (bw * 1e9)
        if ref:
            r["ratio_to_lenet"] = r["step_ms_median"] / ref["step_ms_median"]
    print(f"memory bandwidth (numpy copy): {bw:.1f} GB/s")
    for r in rows:
        extra = f"  ratio {r['ratio_to_lenet']:.2f}" if "ratio_to_lenet" in r else ""
        print(f"{r['model']:32s} basis-traffic floor {r['floor_ms']:6.1f} ms{extra}")
    path = write_result("train_speed", {"batch": args.batch, "repeats": args.repeats,
                                         "bandwidth_gbs": bw, "rows": rows})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
