"""``poshw models``: the model zoo with exact trainable-parameter counts."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the model zoo (names, parameters, sizes)",
                       description="List the paper's models with their default parameters and "
                                   "exact trainable-parameter counts. With NAME (e.g. "
                                   "'linear-dct:m=64'), show that model's layers.")
    p.add_argument("name", nargs="?", metavar="NAME", help="one model, with optional :k=v,... params")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def model_table() -> list[dict[str, Any]]:
    """One row per zoo model: name, summary, default params, exact trainable parameters."""
    from .. import zoo

    rows = []
    for info in zoo.available():
        spec = zoo.get(info.name)
        rows.append({"name": info.name, "summary": info.summary, "params": info.params,
                     "trainable_parameters": spec.trainable_parameters()})
    return rows


def model_detail(name: str) -> dict[str, Any]:
    from .. import zoo

    spec = zoo.get(name)
    return {"name": spec.name, "trainable_parameters": spec.trainable_parameters(),
            "description": spec.description,
            "layers": [{"index": i, "kind": layer.kind, "output_shape": list(spec.shapes[i + 1]),
                        "trainable_parameters": layer.trainable_parameters()}
                       for i, layer in enumerate(spec.layers)],
            "spec": spec.to_dict()}


def run(args: argparse.Namespace) -> int:
    if args.name is not None:
        d = model_detail(args.name)
        if args.json:
            print(json.dumps(d, indent=1, sort_keys=True))
            return 0
        print(f"{d['name']}: {d['trainable_parameters']:,} trainable parameters")
        print(f"  {d['description']}")
        for layer in d["layers"]:
            n = layer["trainable_parameters"]
            print(f"  {layer['index']:>3}  {layer['kind']:<15} -> {str(tuple(layer['output_shape'])):<16}"
                  f" {n:>12,}" if n else
                  f"  {layer['index']:>3}  {layer['kind']:<15} -> {tuple(layer['output_shape'])}")
        return 0
    rows = model_table()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    width = max(len(r["name"]) for r in rows)
    print(f"{'model':<{width}}  {'trainable':>10}  summary / default parameters")
    for r in rows:
        params = ",".join(f"{k}={v}" for k, v in r["params"].items())
        print(f"{r['name']:<{width}}  {r['trainable_parameters']:>10,}  {r['summary']}")
        if params:
            print(f"{'':<{width}}  {'':>10}    {r['name']}:{params}")
    return 0
