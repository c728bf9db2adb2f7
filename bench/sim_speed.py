"""Throughput of the bit-accurate numba simulator vs the numpy float32 forward of the same network.

    python -m bench.sim_speed [--n 10000] [--repeats 3] [--lanes 8]

The network is the paper's reference MLP 784-1024-512-10 (section 5.3) as a hardware
IR: three RAM-weight matvecs, int8 weights, uint8 activations after the ReLUs, int32
biases, logits from the last accumulator. Weights and requantisation parameters are
random (``poshw.compiler.testing.random_params``); inputs are the real MNIST test images.
Timed in one process, best of ``repeats``, after a warm-up that compiles the kernels:

* ``sim``: ``Simulator.run`` (numba, prange over 4-image tiles, int32 chunk sums);
* ``numpy_float32``: ``relu(x @ W1.T + b1)`` ... with the same weights as float32 (BLAS);
* ``golden``: the numpy golden reference on a slice (exact float64 BLAS), for scale;

and checked: the simulator's logits equal the golden's on that slice. Also measured: the
memory bandwidth (numpy copy of 256 MB) and the weight traffic the simulator's tiling
implies, to say what limits it. Writes results/sim_speed.json.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from .common import write_result


def mlp_ir(lanes: int):
    from poshw.ir import INT8, UINT8, Argmax, MatVec, NetworkIR, WeightSource

    s1 = MatVec("fc1", n_in=784, n_out=1024, lanes=lanes, in_fmt=UINT8, weight_source=WeightSource.RAM,
                weight_fmt=INT8, bias=True, requant=True, relu=True, out_fmt=UINT8)
    s2 = MatVec("fc2", n_in=1024, n_out=512, lanes=lanes, in_fmt=UINT8, weight_source=WeightSource.RAM,
                weight_fmt=INT8, bias=True, requant=True, relu=True, out_fmt=UINT8)
    s3 = MatVec("fc3", n_in=512, n_out=10, lanes=lanes, in_fmt=UINT8, weight_source=WeightSource.RAM,
                weight_fmt=INT8, bias=True, requant=False)
    return NetworkIR("mlp-784-1024-512-10", (s1, s2, s3, Argmax("argmax", n=10, in_fmt=s3.out_fmt)))


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bandwidth_gbs() -> float:
    a = np.ones(1 << 25, dtype=np.float64)  # 256 MB
    b = np.empty_like(a)
    np.copyto(b, a)
    t = _best(lambda: np.copyto(b, a), 3)
    return 2 * a.nbytes / t / 1e9  # read + write


def cpu_mhz() -> float | None:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1])
    except OSError:
        pass
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10000, help="MNIST test images (default 10000)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--lanes", type=int, default=8)
    ap.add_argument("--golden-n", type=int, default=500)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)

    from numba import get_num_threads

    from poshw.compiler.roms import rom_contents
    from poshw.compiler.testing import random_params
    from poshw.data import load_split
    from poshw.fixedpoint.golden import golden_forward
    from poshw.sim import Simulator

    ir = mlp_ir(args.lanes)
    params = random_params(ir, np.random.default_rng(0))
    roms = rom_contents(ir)
    images = np.ascontiguousarray(load_split("mnist", "test", args.data_dir)[0][:args.n])
    n = len(images)
    macs = ir.macs()

    sim = Simulator.from_parts(ir, roms, params)
    t0 = time.perf_counter()
    sim.run(images[:16])  # compile or load the cached kernels
    warmup = time.perf_counter() - t0
    t_sim = _best(lambda: sim.run(images), args.repeats)

    # the same network in float32: weights and biases as the integers' real values (scale 1)
    ws = [params[i]["weights"].astype(np.float32) for i in range(3)]
    bs = [params[i]["bias"].astype(np.float32) for i in range(3)]
    x32 = images.reshape(n, -1).astype(np.float32) / np.float32(255.0)

    def float_forward() -> np.ndarray:
        h = np.maximum(x32 @ ws[0].T + bs[0], 0.0)
        h = np.maximum(h @ ws[1].T + bs[1], 0.0)
        return h @ ws[2].T + bs[2]

    float_forward()
    t_float = _best(float_forward, args.repeats)

    g = images[:args.golden_n]
    t0 = time.perf_counter()
    ref = golden_forward(ir, roms, params, g)
    t_golden = time.perf_counter() - t0
    exact = bool(np.array_equal(sim.logits(g), ref.logits))

    bw = bandwidth_gbs()
    weight_bytes = sum(w.size for w in ws)  # int8
    # each 4-image tile streams every weight once: weight traffic per inference
    traffic = weight_bytes / 4
    sim_ips, float_ips = n / t_sim, n / t_float
    mhz = cpu_mhz()
    threads = get_num_threads()
    payload = {
        "network": ir.name, "images": n, "macs_per_inference": macs, "lanes": args.lanes,
        "numba_threads": threads,
        "sim": {"seconds": t_sim, "inferences_per_s": sim_ips, "gmac_per_s": macs * sim_ips / 1e9,
                "warmup_seconds": warmup, "bit_exact_vs_golden": exact, "golden_checked": len(g)},
        "numpy_float32": {"seconds": t_float, "inferences_per_s": float_ips,
                          "gflop_per_s": 2 * macs * float_ips / 1e9},
        "golden": {"images": len(g), "seconds": t_golden, "inferences_per_s": len(g) / t_golden},
        "sim_vs_float": sim_ips / float_ips,
        "limits": {
            "memory_bandwidth_gb_per_s": bw,
            "weight_bytes": weight_bytes,
            "weight_traffic_gb_per_s": traffic * sim_ips / 1e9,
            "cpu_mhz": mhz,
            "macs_per_cycle_per_core": (macs * sim_ips / (threads * mhz * 1e6)) if mhz else None,
            "vnni_kernel": bool(sim.use_vnni),
            "load_average": os.getloadavg()[0],
            "note": ("uint8 x int8 layers run on an AVX-512 VNNI kernel (vpdpbusd: 64 u8 x s8 MACs into "
                     "16 int32 lanes per instruction, 8 accumulators per 4-image x 2-row block); without "
                     "VNNI the portable kernel is LLVM-vectorised int32 multiply-accumulate (at most 16 "
                     "MACs per 256-bit instruction, about 5x slower). The int8 weights (1.3 MB) stay in "
                     "each core's 2 MB L2 and every 4-image tile reads them once, so the traffic is L2, "
                     "not DRAM: compute bound, at a fraction of the VNNI peak (64-128 MACs/cycle/core) "
                     "because of the per-block horizontal reductions, the scalar epilogue and the other "
                     "jobs sharing the 2 cores (load_average)."),
        },
    }
    path = write_result("sim_speed", payload)
    print(f"{ir.name}, {n} MNIST test images, {threads} threads, {macs:,} MACs per inference")
    print(f"  numba bit-accurate simulator: {sim_ips:10.0f} inferences/s  ({macs * sim_ips / 1e9:.1f} GMAC/s; "
          f"bit-exact vs golden on {len(g)}: {exact}; warm-up {warmup:.1f} s)")
    print(f"  numpy float32 forward:        {float_ips:10.0f} inferences/s  "
          f"({2 * macs * float_ips / 1e9:.1f} GFLOP/s)")
    print(f"  numpy golden (exact):         {len(g) / t_golden:10.0f} inferences/s")
    print(f"  simulator / float: {sim_ips / float_ips:.2f}x; VNNI kernel: {sim.use_vnni}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"  limits: DRAM bandwidth {bw:.1f} GB/s; weight traffic (from L2) {traffic * sim_ips / 1e9:.1f} GB/s"
          + (f"; {payload['limits']['macs_per_cycle_per_core']:.1f} MACs/cycle/core at {mhz:.0f} MHz" if mhz else ""))
    print(f"wrote {path}")
    return 0 if exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
