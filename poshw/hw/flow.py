"""The hardware back half as functions: compile, verify (cocotb) and synthesise a build.

The CLI commands ``poshw compile``, ``poshw verify`` and ``poshw synth`` are thin
wrappers around :func:`compile_build`, :func:`verify_build` and
:func:`poshw.hw.ice40.synth_build`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import PoshwError
from ..bases import Family
from ..ir import Argmax, Gather, Hadamard, MatVec, NetworkIR
from .verilog import generate_rtl, load_rtl_manifest

__all__ = ["check_supported", "compile_build", "rtl_dir_of", "reference", "verify_build", "VerifyReport",
           "test_images"]


def check_supported(ir: NetworkIR) -> None:
    """Refuse, loudly, what the RTL cannot build."""
    if ir.input_fmt.bits != 8 or ir.input_fmt.signed:
        raise PoshwError(f"the pixel stream is uint8; this IR's input is {ir.input_fmt}")
    last = ir.stages[-1]
    if isinstance(last, Argmax) and last.n > 256:
        raise PoshwError(f"m_axis_tdata carries 8 bits: {last.n} classes do not fit")
    for i, st in enumerate(ir.stages):
        synth = getattr(st, "synth", None)
        if synth is not None:
            for g in synth.groups:
                if g.family is Family.RANK1 and synth.cols < 2:
                    raise PoshwError(f"stage {i} {st.name!r}: rank-1 bases need at least 2 columns in hardware")
        if not isinstance(st, (MatVec, Hadamard, Gather, Argmax)):  # pragma: no cover
            raise PoshwError(f"stage {i} {st.name!r}: kind {st.kind.value} has no RTL")


def rtl_dir_of(build_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    return Path(out) if out else Path(build_dir) / "rtl"


def compile_build(build_dir: str | os.PathLike, out: str | os.PathLike | None = None):
    """Generate the Verilog of a build into ``BUILD/rtl`` (or ``out``); returns ``(build, RtlDesign)``.

    The ``.hex`` files written beside the Verilog are checked word for word against
    the build's own ROM images.
    """
    from ..compiler import load_build

    build = load_build(build_dir)
    check_supported(build.ir)
    dest = rtl_dir_of(build_dir, out)
    design = generate_rtl(build.ir, build.roms, dest)
    for p in design.hex_files:
        theirs = Path(build_dir) / p.name
        if theirs.is_file() and theirs.read_bytes() != p.read_bytes():
            raise PoshwError(f"{p}: differs from the build's {theirs} (ROM packing disagreement)")
    return build, design


def ensure_rtl(build_dir, build, rtl: str | os.PathLike | None = None) -> tuple[Path, dict]:
    """The generated RTL of ``build`` (compiled now if missing or for another design).

    An explicit ``rtl`` directory holding the RTL of another design is refused rather
    than overwritten (it likely belongs to another build).
    """
    dest = rtl_dir_of(build_dir, rtl)
    want = f"0x{build.ir.design_id():08x}"
    try:
        manifest = load_rtl_manifest(dest)
    except PoshwError:
        manifest = None
    if manifest is not None:
        if manifest["design_id"] == want:
            return dest, manifest
        if rtl:
            raise PoshwError(f"--rtl {dest} holds the RTL of design {manifest['design_id']}, not this "
                             f"build's {want}: pass that build, or `poshw compile {build_dir} --out DIR`")
    design = generate_rtl(build.ir, build.roms, dest)
    return dest, design.manifest


# --- reference models --------------------------------------------------------------------------

@dataclass
class Reference:
    name: str
    logits: np.ndarray
    classes: np.ndarray
    latency: int | None = None
    synth: int | None = None


def reference(ir: NetworkIR, roms, params, images: np.ndarray, prefer: str = "numba") -> Reference:
    """Expected logits and classes: the numba simulator (with its cycle counts) or the golden model."""
    if prefer == "numba":
        try:
            from ..sim import Simulator
        except ImportError:
            Simulator = None
        if Simulator is not None:
            sim = Simulator.from_parts(ir, roms, params)
            r = sim.run(images)
            return Reference("numba", r.logits, r.classes, sim.latency_cycles(), sim.synth_cycles())
    from ..fixedpoint import golden

    g = golden.golden_forward(ir, roms, params, images)
    return Reference("golden", g.logits, g.classes)


def test_images(build, n: int) -> tuple[np.ndarray, str]:
    """The first ``n`` test images of the build's dataset (or its golden inputs)."""
    ds = None
    for rep in build.extra.values():
        if isinstance(rep, dict) and isinstance(rep.get("dataset"), str):
            ds = rep["dataset"]
    if ds and tuple(build.ir.input_shape) == (28, 28):
        try:
            from ..data import load_split

            images, _ = load_split(ds, "test")
            return np.ascontiguousarray(images[:n]), f"{ds} test"
        except PoshwError:
            pass
    if build.golden is not None:
        return np.ascontiguousarray(build.golden.inputs[:n]), "golden inputs"
    raise PoshwError("no test images: the build names no dataset found here and has no golden vectors")


# --- verify ------------------------------------------------------------------------------------

@dataclass
class VerifyReport:
    sim: str
    passed: bool
    reference: str
    images: int
    mismatches: int
    latency_rtl: list[int]
    latency_ir: int
    latency_ref: int | None
    reload_rtl: list[int]
    synth_ir: int
    synth_ref: int | None
    build_s: float
    wall_s: float
    cycles: int
    phases: list[dict] = field(default_factory=list)
    protocol: dict = field(default_factory=dict)
    waves: list[str] = field(default_factory=list)
    log: str | None = None

    @property
    def cycles_per_s(self) -> float:
        return self.cycles / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def inferences_per_s(self) -> float:
        return self.images / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def cycles_agree(self) -> bool:
        ok = self.latency_rtl == [self.latency_ir] and all(r == self.synth_ir for r in self.reload_rtl)
        if self.latency_ref is not None:
            ok = ok and self.latency_ref == self.latency_ir
        if self.synth_ref is not None:
            ok = ok and self.synth_ref == self.synth_ir
        return ok

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d.update(cycles_per_s=self.cycles_per_s, inferences_per_s=self.inferences_per_s,
                 cycles_agree=self.cycles_agree)
        return d


def verify_build(build_dir: str | os.PathLike, *, sim: str = "icarus", n: int = 100, random_n: int | None = None,
                 reload: bool = True, second: str | os.PathLike | None = None, second_n: int | None = None,
                 protocol: bool = True, waves: bool = False, rtl: str | os.PathLike | None = None,
                 seed: int = 0, log=print) -> VerifyReport:
    """Stream test and random images through the generated Verilog and compare with the simulator.

    Phases, in one simulation without reset: load the build's parameters and classify
    ``n`` test images; ``random_n`` random images; with ``reload``, load a second
    coefficient set (``second``: another build of the same design, e.g. the same
    architecture trained on Fashion-MNIST; else random parameters) and classify with
    it, then load the first set again.
    """
    from ..compiler import encode_params, load_build
    from .cosim import Phase, check_simulator, run_cosim
    from .testing import random_params

    for flag, v, lo in (("--n", n, 1), ("--random", random_n, 0), ("--second-n", second_n, 1), ("--seed", seed, 0)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < lo):
            raise PoshwError(f"{flag} must be an integer >= {lo}, got {v!r}")
    if second is not None and not reload:
        raise PoshwError("--second is loaded in the reload phase: it cannot go with --no-reload")
    if second_n is not None and second is None:
        raise PoshwError("--second-n needs --second")
    check_simulator(sim)
    build = load_build(build_dir)
    check_supported(build.ir)
    ir = build.ir
    b2 = None
    if second is not None:
        b2 = load_build(second)
        if b2.ir.design_id() != ir.design_id():
            raise PoshwError(f"{second}: design 0x{b2.ir.design_id():08x} is not "
                             f"0x{ir.design_id():08x}: it needs other RTL")
    rtl_dir, manifest = ensure_rtl(build_dir, build, rtl)
    images, source = test_images(build, n)
    rng = np.random.default_rng(seed)
    if random_n is None:
        random_n = max(2, n // 10)
    rand = rng.integers(0, 256, size=(random_n, *ir.input_shape)).astype(np.uint8)
    words_a = np.asarray(build.param_words, dtype=np.uint32)
    ref = reference(ir, build.roms, build.params, np.concatenate([images, rand]))
    phases = [Phase(f"{source} ({len(images)})", words_a, images, ref.logits[:len(images)],
                    ref.classes[:len(images)])]
    if random_n:
        phases.append(Phase(f"random ({random_n})", None, rand, ref.logits[len(images):],
                            ref.classes[len(images):]))
    if reload:
        if b2 is not None:
            imgs2, src2 = test_images(b2, n if second_n is None else second_n)
            r2 = reference(ir, build.roms, b2.params, imgs2)
            phases.append(Phase(f"reload {Path(second).name}: {src2} ({len(imgs2)})",
                                np.asarray(b2.param_words, dtype=np.uint32), imgs2, r2.logits, r2.classes))
        else:
            p2 = random_params(ir, seed + 1, build.roms)
            imgs2 = images[:min(len(images), 10)]
            r2 = reference(ir, build.roms, p2, imgs2)
            phases.append(Phase(f"reload random coefficients ({len(imgs2)})", encode_params(ir, p2), imgs2,
                                r2.logits, r2.classes))
        back = images[:min(len(images), 5)]
        phases.append(Phase(f"reload first set ({len(back)})", words_a, back, ref.logits[:len(back)],
                            ref.classes[:len(back)]))
    proto = phases[0] if protocol else None
    log(f"{sim}: {sum(len(p.images) for p in phases)} images in {len(phases)} phases, reference: {ref.name}")
    res = run_cosim(rtl_dir, manifest, phases, sim=sim, protocol=proto, waves=waves)
    cl = res.results.get("classify", {})
    lat, rel = set(), []
    for ph in cl.get("phases", []):
        lat.update(ph.get("latencies", []))
        if ph.get("reload_cycles") is not None:
            rel.append(ph["reload_cycles"])
    report = VerifyReport(
        sim=sim, passed=res.passed, reference=ref.name, images=int(cl.get("images", 0)),
        mismatches=int(cl.get("mismatches", -1)), latency_rtl=sorted(lat), latency_ir=ir.latency_cycles(),
        latency_ref=ref.latency, reload_rtl=rel, synth_ir=ir.synth_cycles(), synth_ref=ref.synth,
        build_s=res.build_s, wall_s=float(cl.get("wall_s", 0.0)), cycles=int(cl.get("cycles", 0)),
        phases=cl.get("phases", []), protocol=res.results.get("protocol_errors", {}),
        waves=[str(p) for p in res.waves], log=str(res.log) if res.log else None)
    if not res.passed and not cl:
        raise PoshwError(f"{sim}: the testbench failed before reporting; see {res.log}")
    return report
