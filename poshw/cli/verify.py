"""``poshw verify``: the cocotb suite on the generated Verilog (Icarus or Verilator)."""

from __future__ import annotations

import argparse
import json

from . import path_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="co-simulate the Verilog against the simulator",
                       description="Stream test images and random inputs through the generated "
                                   "Verilog (cocotb on Icarus or Verilator) and compare every class and "
                                   "logit with the numba simulator, bit for bit, and the cycles with "
                                   "the IR. Also reloads a second coefficient set into the running "
                                   "design and checks the protocol errors. Compiles the RTL if needed.")
    p.add_argument("build", type=path_arg, metavar="BUILD", help="build directory")
    p.add_argument("--sim", choices=["icarus", "verilator", "both"], default="icarus")
    p.add_argument("--n", type=int, default=100, help="test images (default 100)")
    p.add_argument("--random", type=int, default=None, metavar="R",
                   help="random images after the test images (default n/10, at least 2)")
    p.add_argument("--second", type=path_arg, metavar="BUILD2",
                   help="reload the coefficients of this build (same design, e.g. trained on "
                        "another dataset) instead of random ones")
    p.add_argument("--second-n", type=int, default=None, metavar="N",
                   help="test images for the second build (default --n)")
    p.add_argument("--no-reload", action="store_true", help="skip the reload phases")
    p.add_argument("--no-protocol", action="store_true", help="skip the protocol-error test")
    p.add_argument("--rtl", type=path_arg, metavar="DIR", help="generated RTL directory (default BUILD/rtl)")
    p.add_argument("--waves", action="store_true",
                   help="write waveforms (Icarus: FST, Verilator: VCD) for GTKWave")
    p.add_argument("--seed", type=int, default=0, help="seed of the random images and coefficients")
    p.add_argument("--json", action="store_true", help="print one JSON object per simulator")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import PoshwError
    from ..hw.flow import verify_build

    if args.n < 1:
        raise PoshwError("--n must be at least 1")
    sims = ["icarus", "verilator"] if args.sim == "both" else [args.sim]
    ok = True
    for sim in sims:
        rep = verify_build(args.build, sim=sim, n=args.n, random_n=args.random, reload=not args.no_reload,
                           second=args.second, second_n=args.second_n, protocol=not args.no_protocol,
                           waves=args.waves, rtl=args.rtl, seed=args.seed,
                           log=(lambda *a: None) if args.json else print)
        ok = ok and rep.passed and rep.mismatches == 0 and rep.cycles_agree
        if args.json:
            print(json.dumps(rep.to_dict(), sort_keys=True))
            continue
        print(format_report(rep))
    return 0 if ok else 1


def format_report(rep) -> str:
    """Human-readable summary of a :class:`~poshw.hw.flow.VerifyReport`."""
    sim = rep.sim
    lines: list[str] = []
    lines.append(f"{sim}: {'PASS' if rep.passed else 'FAIL'}: {rep.mismatches} mismatches in {rep.images} "
          f"inferences (reference: {rep.reference})")
    for ph in rep.phases:
        extra = f", reload {ph['reload_cycles']} cycles" if ph.get("reload_cycles") is not None else ""
        lines.append(f"  {ph['name']}: {ph['mismatches']} mismatches / {ph['images']}{extra}")
        for mm in ph.get("first_mismatches", []):
            lines.append(f"    image {mm.get('image')}: {json.dumps({k: v for k, v in mm.items() if k != 'image'})}")
    ref_lat = f", {rep.reference} {rep.latency_ref}" if rep.latency_ref is not None else ""
    ref_syn = f", {rep.reference} {rep.synth_ref}" if rep.synth_ref is not None else ""
    lines.append(f"  cycles {'agree' if rep.cycles_agree else 'DISAGREE'}: latency RTL {rep.latency_rtl}, "
          f"IR {rep.latency_ir}{ref_lat}; reload RTL {rep.reload_rtl}, IR {rep.synth_ir}{ref_syn}")
    if rep.protocol:
        bad = [k for k, v in rep.protocol.items() if not v]
        lines.append(f"  protocol errors: {len(rep.protocol) - len(bad)}/{len(rep.protocol)} checks pass"
              + (f" (failed: {', '.join(bad)})" if bad else ""))
    lines.append(f"  speed: {rep.cycles_per_s:,.0f} cycles/s, {rep.inferences_per_s:.1f} inferences/s "
          f"({rep.cycles:,} cycles in {rep.wall_s:.1f} s; build {rep.build_s:.1f} s)")
    if rep.waves:
        lines.append(f"  waves: {', '.join(rep.waves)}")
    if not rep.passed and rep.log:
        lines.append(f"  log: {rep.log}")
    return "\n".join(lines)
