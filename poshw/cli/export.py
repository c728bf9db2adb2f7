"""``poshw export``: quantise a trained run and write its build directory (docs/ARTIFACTS.md)."""

from __future__ import annotations

import argparse
import json

from .. import PoshwError
from . import path_arg
from .quantize import add_compile_options, format_report, options_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="quantise a run and write the hardware build directory",
                       description="Lower and quantise a trained run, then write the build: ir.json, ROM "
                                   "images, initial weight memories, the parameter image (params.hex/.bin), "
                                   "golden vectors and quant.json, with a sha256 manifest written last.")
    p.add_argument("run", type=path_arg, metavar="RUN", help="run directory or coefs.npz")
    p.add_argument("--out", type=path_arg, required=True, metavar="BUILD", help="build directory to write")
    p.add_argument("--dataset", help="mnist or fashion-mnist (default: the one it was trained on)")
    p.add_argument("--data-dir", type=path_arg, metavar="DIR", help="dataset directory")
    p.add_argument("--golden", type=int, default=64, metavar="N",
                   help="golden vectors: the first N test images and their logits (default 64; 0: none)")
    p.add_argument("--n-test", type=int, metavar="N", help="report accuracy on the first N test images only")
    p.add_argument("--no-eval", action="store_true", help="skip the float vs fixed-point test evaluation")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    add_compile_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import coefset
    from ..compiler.export import export_build

    if args.golden < 0:
        raise PoshwError("--golden must be >= 0")
    if args.n_test is not None and args.n_test < 1:
        raise PoshwError("--n-test must be >= 1")
    options = options_from_args(args)
    cs = coefset.load(args.run)
    build, report = export_build(cs, args.out, options, dataset=args.dataset, data_dir=args.data_dir,
                                 golden_n=args.golden, n_test=args.n_test, evaluate=not args.no_eval)
    files = [e["file"] for e in build.files]
    if args.json:
        print(json.dumps({"build": str(build.path), "design_id": f"0x{build.ir.design_id():08x}",
                          "files": files, "param_words": int(len(build.param_words)),
                          "report": report}, sort_keys=True))
        return 0
    if not args.no_eval:
        print(format_report(report))
    print(f"wrote {build.path}: {len(files)} files, design 0x{build.ir.design_id():08x}, "
          f"{len(build.param_words)} parameter words, "
          f"{0 if build.golden is None else len(build.golden.inputs)} golden vectors")
    return 0
