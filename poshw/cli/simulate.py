"""``poshw simulate``: run a build in the numba simulator: accuracy, cycles, throughput, estimates."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from .. import PoshwError
from . import path_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="bit- and cycle-accurate simulation of a build",
                       description="Load and verify a build directory, check the simulator against its "
                                   "golden vectors, then report test accuracy, cycles per inference "
                                   "(cycle-stepped), the lane lower bound, synthesis cycles, simulator "
                                   "throughput and the analytic resource estimates.")
    p.add_argument("build", type=path_arg, metavar="BUILD", help="build directory written by `poshw export`")
    p.add_argument("--dataset", help="mnist or fashion-mnist (default: the one the build was made for)")
    p.add_argument("--data-dir", type=path_arg, metavar="DIR", help="dataset directory")
    p.add_argument("--n", type=int, metavar="N", help="simulate the first N test images (default all)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def simulate_build(path: str, dataset: str | None = None, data_dir: str | None = None,
                   n: int | None = None) -> dict[str, Any]:
    from ..compiler.artifacts import load_build
    from ..data import DATASETS, load_split
    from ..sim import Simulator

    if n is not None and n < 1:
        raise PoshwError("--n must be >= 1")
    build = load_build(path)
    quant = build.extra.get("quant.json", {})
    if not isinstance(quant, dict) or quant.get("dataset", DATASETS[0]) not in DATASETS:
        raise PoshwError(f"{build.path / 'quant.json'}: not a calibration report of {' or '.join(DATASETS)}")
    made_for = quant.get("dataset")
    ds = (dataset or made_for or "mnist").strip().lower()
    if ds not in DATASETS:
        raise PoshwError(f"unknown dataset {ds!r}; choose from {', '.join(DATASETS)}")
    if made_for and made_for != ds:
        raise PoshwError(f"build {path} was calibrated for {made_for}, not {ds}: pass --dataset {made_for}")
    ir = build.ir
    sim = Simulator(build)
    out: dict[str, Any] = {"build": str(build.path), "model": ir.name, "dataset": ds,
                           "design_id": f"0x{ir.design_id():08x}"}
    if build.golden is not None:
        logits = sim.logits(build.golden.inputs)
        ok = int(np.sum(np.all(logits == build.golden.logits, axis=1)))
        out["golden"] = {"n": int(len(build.golden.inputs)), "bit_exact": ok}
        if ok != len(build.golden.inputs):
            raise PoshwError(f"{path}: the simulator disagrees with the golden vectors on "
                             f"{len(build.golden.inputs) - ok} of {len(build.golden.inputs)} images")
    images, labels = load_split(ds, "test", data_dir)
    if n is not None:
        images, labels = images[:n], labels[:n]
    sim.run(images[:8])  # compile (or load cached) kernels before timing
    t0 = time.perf_counter()
    res = sim.run(images)
    dt = time.perf_counter() - t0
    stepped = sim.run_cycle_stepped(images[0])
    if stepped.cls != int(res.classes[0]) or not np.array_equal(stepped.logits, res.logits[0]):
        raise PoshwError("internal error: cycle-stepped and fast modes disagree on image 0")
    latency, bound = stepped.cycles, ir.lane_bound_cycles()
    out.update({
        "n": int(len(labels)), "accuracy": float(np.mean(res.classes == labels)),
        "saturation": res.saturation,
        "cycles": {"latency": latency, "formula": ir.latency_cycles(), "lane_bound": bound,
                   "ratio": latency / bound, "stages": stepped.stage_cycles,
                   "synth": sim.synth_cycles(), "synth_formula": ir.synth_cycles()},
        "throughput": {"inferences_per_s": len(labels) / dt if dt > 0 else float("inf"), "seconds": dt,
                       "macs_per_inference": ir.macs()},
        "estimates": [e.__dict__ for e in ir.estimates()],
    })
    return out


def format_result(r: dict[str, Any]) -> str:
    c, t = r["cycles"], r["throughput"]
    lines = [f"{r['model']} (design {r['design_id']}) on {r['dataset']}"]
    if "golden" in r:
        lines.append(f"golden vectors: {r['golden']['bit_exact']}/{r['golden']['n']} bit-exact")
    lines += [
        f"accuracy: {100 * r['accuracy']:.2f}% on {r['n']} test images",
        f"cycles per inference: {c['latency']} (formula {c['formula']}); lane lower bound {c['lane_bound']}; "
        f"ratio {c['ratio']:.3f}",
        f"weight synthesis after a coefficient load: {c['synth']} cycles (formula {c['synth_formula']})",
        f"simulator throughput: {t['inferences_per_s']:.0f} inferences/s "
        f"({t['macs_per_inference'] * t['inferences_per_s'] / 1e9:.2f} GMAC/s)",
        "",
        f"{'stage':<16} {'ROM bits':>10} {'coef RAM':>9} {'weight RAM':>11} {'act bits':>9} {'mults':>6} "
        f"{'cycles':>8} {'synth cyc':>10} {'MACs':>9} {'saturated':>10}",
    ]
    tot = {k: 0 for k in ("rom_bits", "coef_ram_bits", "weight_ram_bits", "act_bits", "multipliers",
                          "cycles", "synth_cycles", "macs")}
    for e in r["estimates"]:
        for k in tot:
            tot[k] += e[k]
        lines.append(f"{e['stage']:<16} {e['rom_bits']:>10} {e['coef_ram_bits']:>9} {e['weight_ram_bits']:>11} "
                     f"{e['act_bits']:>9} {e['multipliers']:>6} {e['cycles']:>8} {e['synth_cycles']:>10} "
                     f"{e['macs']:>9} {r['saturation'].get(e['stage'], 0):>10}")
    lines.append(f"{'total':<16} {tot['rom_bits']:>10} {tot['coef_ram_bits']:>9} {tot['weight_ram_bits']:>11} "
                 f"{tot['act_bits']:>9} {tot['multipliers']:>6} {tot['cycles']:>8} {tot['synth_cycles']:>10} "
                 f"{tot['macs']:>9}")
    lines.append("(coef RAM = the variable memory: coefficients, biases, requantisation and synthesis "
                 "parameters, RAM weights; cycles exclude the input beats)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    r = simulate_build(args.build, args.dataset, args.data_dir, args.n)
    if args.json:
        print(json.dumps(r, sort_keys=True))
    else:
        print(format_result(r))
    return 0
