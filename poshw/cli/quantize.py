"""``poshw quantize``: post-training quantisation of a run, float vs fixed-point accuracy.

Also home of the compile options shared with ``poshw export`` (:func:`add_compile_options`).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from .. import PoshwError
from . import path_arg


def add_compile_options(p: argparse.ArgumentParser) -> None:
    """The :class:`~poshw.compiler.lower.CompileOptions` flags (quantize and export)."""
    g = p.add_argument_group("compile options")
    g.add_argument("--act-bits", type=int, default=8, help="activation width (default 8)")
    g.add_argument("--weight-bits", type=int, default=8, help="RAM / synthesised weight width (default 8)")
    g.add_argument("--coef-bits", type=int, default=8, help="basis coefficient width (default 8)")
    g.add_argument("--lanes", type=int, default=8, help="MAC lanes per matvec, at most n_out (default 8)")
    g.add_argument("--stage-lanes", action="append", default=[], metavar="STAGE=P",
                   help="lanes of one stage by name (repeatable), e.g. l1_linear=16")
    g.add_argument("--basis-source", choices=["generator", "rom"], default="generator",
                   help="random bases regenerated on chip (default) or stored in ROM")
    g.add_argument("--layer-basis-source", action="append", default=[], metavar="LAYER=SRC",
                   help="basis source of one spec layer (repeatable), e.g. 3=rom")
    g.add_argument("--calib", type=int, default=2000, metavar="N",
                   help="training images used for calibration (default 2000)")
    g.add_argument("--calibration", choices=["percentile", "max"], default="percentile",
                   help="output scale from a percentile (default) or the max of |values|")
    g.add_argument("--percentile", type=float, default=99.99, help="calibration percentile (default 99.99)")
    g.add_argument("--calib-seed", type=int, default=0, help="seed of the calibration slice (default 0)")


def _pairs(items: list[str], flag: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        k, eq, v = item.partition("=")
        if not eq or not k or not v:
            raise PoshwError(f"{flag} {item!r}: expected KEY=VALUE")
        out.append((k.strip(), v.strip()))
    return out


def options_from_args(args: argparse.Namespace):
    from ..compiler.lower import CompileOptions

    stage_lanes, layer_src = [], []
    for k, v in _pairs(args.stage_lanes, "--stage-lanes"):
        try:
            stage_lanes.append((k, int(v)))
        except ValueError:
            raise PoshwError(f"--stage-lanes {k}={v}: takes STAGE=INT (lanes)") from None
    for k, v in _pairs(args.layer_basis_source, "--layer-basis-source"):
        try:
            layer_src.append((int(k), v))
        except ValueError:
            raise PoshwError(f"--layer-basis-source {k}={v}: takes LAYER_INDEX=generator|rom") from None
    return CompileOptions(act_bits=args.act_bits, weight_bits=args.weight_bits, coef_bits=args.coef_bits,
                          lanes=args.lanes, stage_lanes=tuple(stage_lanes), basis_source=args.basis_source,
                          layer_basis_source=tuple(layer_src), calib_size=args.calib, calibration=args.calibration,
                          percentile=args.percentile, calib_seed=args.calib_seed)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quantize", help="fixed-point accuracy of a trained run (post-training quantisation)",
                       description="Lower a trained run to the hardware IR, calibrate integer scales on a "
                                   "slice of the training set and compare the float model with the "
                                   "fixed-point golden model on the test set. Nothing is written.")
    p.add_argument("run", type=path_arg, metavar="RUN", help="run directory or coefs.npz")
    p.add_argument("--dataset", help="mnist or fashion-mnist (default: the one it was trained on)")
    p.add_argument("--data-dir", type=path_arg, metavar="DIR", help="dataset directory")
    p.add_argument("--n-test", type=int, metavar="N", help="evaluate on the first N test images only")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    add_compile_options(p)
    p.set_defaults(func=run)


def _pct(n: int, total: int) -> str:
    return f"{n} ({100.0 * n / total:.3f}%)" if total else str(n)


def format_report(r: dict[str, Any]) -> str:
    lines = [f"{r['model']} on {r['dataset']}: design 0x{int(r['design_id'], 16):08x}, calibration "
             f"{r['calibration']['method']}"
             + (f" {r['calibration']['percentile']}" if r['calibration']['method'] == "percentile" else "")
             + f" on {r['calibration']['n']} training images"]
    t = r.get("test")
    if t:
        drop = 100 * (t["float_accuracy"] - t["fixed_accuracy"])
        lines.append(f"test ({t['n']} images): float {100 * t['float_accuracy']:.2f}%  fixed-point "
                     f"{100 * t['fixed_accuracy']:.2f}%  (drop {drop:+.2f} points; agreement "
                     f"{100 * t['agreement']:.2f}%)")
    lines.append(f"{'stage':<16} {'kind':<9} {'s_out':>10} {'mult':>6} {'shift':>5} {'synth':>5} "
                 f"{'calib sat':>18} {'test sat':>18} {'bias/coef/w sat':>15}")
    for s in r["stages"]:
        if s["kind"] == "argmax":
            continue
        test_sat = ""
        if t:
            test_sat = _pct(t["saturation"].get(s["name"], 0), t["outputs"].get(s["name"], 0))
        other = f"{s['bias_saturated']}/{s['coef_saturated']}/{s['weight_saturated']}"
        lines.append(
            f"{s['name']:<16} {s['kind']:<9} {s['s_out'] if s['s_out'] is None else format(s['s_out'], '.3g'):>10} "
            f"{'' if s['requant_mult'] is None else s['requant_mult']:>6} "
            f"{'' if s['requant_shift'] is None else s['requant_shift']:>5} "
            f"{'' if s['synth_shift'] is None else s['synth_shift']:>5} "
            f"{_pct(s['calib_saturated'], s['calib_outputs']):>18} {test_sat:>18} {other:>15}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from .. import coefset
    from ..compiler.export import quantize_coefset

    options = options_from_args(args)
    if args.n_test is not None and args.n_test < 1:
        raise PoshwError("--n-test must be >= 1")
    cs = coefset.load(args.run)
    out = quantize_coefset(cs, options, dataset=args.dataset, data_dir=args.data_dir, n_test=args.n_test)
    if args.json:
        print(json.dumps(out.report, sort_keys=True))
    else:
        print(format_report(out.report))
    return 0
