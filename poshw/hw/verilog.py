"""Verilog generation: the top level, the memory primitive and the ``.hex`` initial contents.

:func:`generate_rtl` writes into one directory::

    poshw_top.v            the design (Amaranth output; memories instantiate poshw_mem)
    poshw_mem.v            the hand-kept memory primitive ($readmemh, no literals)
    <stage>.<rom>.hex      ROM contents read by $readmemh (relative file names: run
                           simulators and yosys with this directory as the working dir)
    rtl.json               manifest: ports, cycle counts, memories, files with sha256

The same :class:`~poshw.hw.top.PoshwTop` simulated with Amaranth memories is what the
unit tests check; the cocotb suite checks this Verilog against the golden model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
from amaranth import Shape

from .. import PoshwError
from ..fileio import make_dir, sha256_file, write_text_atomic
from ..ir import NetworkIR
from .mem import POSHW_MEM_VERILOG, ReadmemhMemories
from .top import PoshwTop

__all__ = ["generate_rtl", "RtlDesign", "TOP_NAME", "load_rtl_manifest"]

TOP_NAME = "poshw_top"
MANIFEST = "rtl.json"


@dataclass
class RtlDesign:
    """What :func:`generate_rtl` wrote."""

    path: Path
    top: str
    sources: list[Path]
    hex_files: list[Path]
    manifest: dict


def _ports(top: PoshwTop) -> list[dict]:
    out = [{"name": "clk", "dir": "in", "width": 1}, {"name": "rst", "dir": "in", "width": 1}]
    for name, member in top.signature.members.items():
        out.append({"name": name, "dir": member.flow.value.lower() if hasattr(member.flow, "value") else str(member.flow),
                    "width": Shape.cast(member.shape).width})
    return out


def generate_rtl(ir: NetworkIR, roms: Mapping[str, np.ndarray], out_dir: str | os.PathLike,
                 *, top_name: str = TOP_NAME) -> RtlDesign:
    """Write the Verilog of ``ir`` with ``roms`` (``rom_contents(ir)``) into ``out_dir``."""
    from amaranth.back import verilog

    out = make_dir(out_dir, "generated RTL")
    mems = ReadmemhMemories()
    top = PoshwTop(ir, roms, mems=mems)
    ports = _ports(top)
    text = verilog.convert(top, name=top_name, emit_src=False)
    if not text.strip():
        raise PoshwError("Verilog generation produced nothing")
    sources = [out / f"{top_name}.v", out / "poshw_mem.v"]
    write_text_atomic(sources[0], text)
    write_text_atomic(sources[1], POSHW_MEM_VERILOG)
    hexes = []
    for fname, body in sorted(mems.files.items()):
        p = out / fname
        write_text_atomic(p, body)
        hexes.append(p)
    files = [{"file": p.name, "sha256": sha256_file(p), "bytes": p.stat().st_size} for p in sources + hexes]
    n = ir.stages[-1].n
    manifest = {
        "top": top_name, "ir_name": ir.name, "design_id": f"0x{ir.design_id():08x}",
        "latency_cycles": ir.latency_cycles(), "synth_cycles": ir.synth_cycles(),
        "lane_bound_cycles": ir.lane_bound_cycles(), "param_words": 2 + ir.param_words(),
        "input_len": ir.input_len, "classes": n, "logit_bits": top.logit_bits,
        "ports": ports,
        "memories": [{"name": nm, "width": w, "depth": d, "writable": wr} for nm, w, d, wr in mems.memories],
        "verilog_lines": text.count("\n"),
        "files": files,
    }
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return RtlDesign(out, top_name, sources, hexes, manifest)


def load_rtl_manifest(rtl_dir: str | os.PathLike, check: bool = True) -> dict:
    """Read ``rtl.json`` of a generated directory; with ``check``, verify every file's sha256."""
    path = Path(rtl_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise PoshwError(f"{path}: no generated RTL here (run `poshw compile` first)") from None
    except (OSError, ValueError) as e:
        raise PoshwError(f"{path}: cannot read: {e}") from None
    keys = ("top", "design_id", "latency_cycles", "synth_cycles", "classes", "logit_bits", "files")
    if (not isinstance(manifest, dict) or any(k not in manifest for k in keys)
            or not isinstance(manifest["files"], list)
            or not all(isinstance(f, dict) and isinstance(f.get("file"), str) and isinstance(f.get("sha256"), str)
                       for f in manifest["files"])):
        raise PoshwError(f"{path}: not a poshw RTL manifest (regenerate with `poshw compile`)")
    if check:
        for f in manifest["files"]:
            p = Path(rtl_dir) / f["file"]
            if not p.is_file():
                raise PoshwError(f"{p}: missing (regenerate with `poshw compile`)")
            if sha256_file(p) != f["sha256"]:
                raise PoshwError(f"{p}: checksum mismatch (edited or stale; regenerate with `poshw compile`)")
    return manifest
