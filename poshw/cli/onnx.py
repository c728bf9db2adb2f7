"""``poshw onnx``: export a trained run's float model to ONNX and check it against torch."""

from __future__ import annotations

import argparse
import json

from .. import PoshwError
from . import path_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "onnx", help="export the float model to ONNX (weights materialised) and check it",
        description="Write the trained float model of a run as an ONNX file: every product of sums "
                    "multiplied out (the fixed bases baked into float32 weights), input float32 "
                    "[N, 1, 28, 28] holding pixel/255, output logits [N, 10]. The graph passes the "
                    "ONNX checker; before the file is written (atomically), "
                    "onnx.reference.ReferenceEvaluator (pure Python, slow) runs the first N test images "
                    "and its logits must match the torch model's, or nothing is written.")
    p.add_argument("run", type=path_arg, metavar="RUN", help="run directory or coefs.npz")
    p.add_argument("--out", type=path_arg, required=True, metavar="FILE", help="ONNX file to write")
    p.add_argument("--opset", type=int, metavar="V", help="ONNX opset (default 17; 13 up to the installed onnx's newest)")
    p.add_argument("--check-n", type=int, default=64, metavar="N",
                   help="compare ONNX and torch logits on the first N test images (default 64; 0: skip)")
    p.add_argument("--dataset", help="mnist or fashion-mnist (default: the one it was trained on)")
    p.add_argument("--data-dir", type=path_arg, metavar="DIR", help="dataset directory")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import coefset, data
    from .. import onnx_export as ox

    if args.check_n < 0:
        raise PoshwError("--check-n must be >= 0")
    opset = ox.DEFAULT_OPSET if args.opset is None else args.opset
    ox.check_opset(opset)
    ox.check_writable(args.out)          # refuse a bad path before any slow work
    cs = coefset.load(args.run)
    images = None
    dataset = None
    if args.check_n:
        dataset = args.dataset or cs.info.get("dataset")
        if not dataset:
            raise PoshwError(f"{args.run}: the coefficient set does not say which dataset it was "
                             f"trained on; pass --dataset (or --check-n 0 to skip the check)")
        try:
            images, _ = data.load_split(dataset, "test", args.data_dir)
        except PoshwError as e:
            raise PoshwError(f"{e} (the ONNX check needs the test images; --check-n 0 skips it)") from None
        images = images[:args.check_n]
    proto = ox.build_onnx(cs, opset=opset)
    check = None
    if images is not None:
        # check the bytes that will be written (serialised and parsed back), before writing them
        import onnx

        proto = onnx.load_from_string(proto.SerializeToString())
        check = ox.compare_with_torch(proto, cs.build_model(), images)
        if not check["ok"]:
            raise PoshwError(
                f"ONNX and torch logits differ on {check['n']} {dataset} test images: max |diff| "
                f"{check['max_abs_diff']:.3g} > {check['tolerance']:g} x {check['max_abs_logit']:.3g} "
                f"(nothing written to {args.out})")
    path = ox.save_onnx(proto, args.out)
    s = ox.summary(proto)
    size = path.stat().st_size
    if args.json:
        print(json.dumps({"out": str(path), "bytes": size, "opset": s["opset"], "ir_version": s["ir_version"],
                          "nodes": s["nodes"], "ops": s["ops"], "metadata": s["metadata"],
                          "check": check, "dataset": dataset}, sort_keys=True))
        return 0
    ops = ", ".join(f"{k} {v}" for k, v in s["ops"].items())
    meta = s["metadata"]
    print(f"wrote {path}: {size:,} bytes, opset {s['opset']} (IR {s['ir_version']}), {s['nodes']} nodes "
          f"({ops})")
    print(f"model {meta['model']}: {int(meta['trainable_parameters']):,} trainable parameters, "
          f"{int(meta['stored_floats']):,} stored floats (bases baked in), coefs sha256 "
          f"{meta['coefset_sha256'][:16]}...")
    if check is None:
        print("reference check skipped (--check-n 0)")
    else:
        print(f"onnx.reference vs torch on {check['n']} {dataset} test images: max |diff| "
              f"{check['max_abs_diff']:.3g} (relative {check['relative']:.3g}, tolerance "
              f"{check['tolerance']:g}), argmax agrees on {check['argmax_agree']}/{check['n']}")
    return 0
