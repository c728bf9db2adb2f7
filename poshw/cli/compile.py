"""``poshw compile``: Verilog of a build directory (Amaranth -> Verilog + $readmemh images)."""

from __future__ import annotations

import argparse
import json

from . import path_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compile", help="generate the Verilog of a build",
                       description="Generate the Verilog of a build directory (poshw export) with "
                                   "Amaranth: BUILD/rtl/poshw_top.v, the memory primitive poshw_mem.v "
                                   "and the ROM images it reads with $readmemh.")
    p.add_argument("build", type=path_arg, metavar="BUILD", help="build directory")
    p.add_argument("--out", type=path_arg, metavar="DIR", help="output directory (default BUILD/rtl)")
    p.add_argument("--json", action="store_true", help="print the RTL manifest as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from ..hw.flow import compile_build

    t0 = time.perf_counter()
    build, design = compile_build(args.build, args.out)
    m = design.manifest
    if args.json:
        print(json.dumps(m, indent=1))
        return 0
    ir = build.ir
    mem_bits = sum(x["width"] * x["depth"] for x in m["memories"])
    rom_bits = sum(x["width"] * x["depth"] for x in m["memories"] if not x["writable"])
    print(f"{ir.name}: design 0x{ir.design_id():08x}, {len(ir.stages)} stages -> {design.path}")
    print(f"  {design.top}.v ({m['verilog_lines']} lines), poshw_mem.v, "
          f"{len(design.hex_files)} ROM images ({', '.join(p.name for p in design.hex_files) or 'none'})")
    print(f"  memories: {len(m['memories'])}, {mem_bits / 1024:.1f} kbit ({rom_bits / 1024:.1f} kbit ROM)")
    print(f"  latency {m['latency_cycles']} cycles per inference (lower bound {m['lane_bound_cycles']}, "
          f"x{m['latency_cycles'] / max(m['lane_bound_cycles'], 1):.2f}); reload {m['synth_cycles']} cycles "
          f"after the last of {m['param_words']} coefficient words")
    print(f"  m_axis_tuser: {m['classes']} logits x {m['logit_bits']} bits; "
          f"done in {time.perf_counter() - t0:.1f} s")
    return 0
