"""The numba simulator: executes a build's IR, ROMs and parameter image, not the torch model.

Two modes share one object:

* **fast** (:meth:`Simulator.run`, :meth:`predict`, :meth:`logits`): bit-accurate,
  batch-parallel numba kernels; identical to ``poshw.fixedpoint.golden`` on every output;
* **cycle-stepped** (:meth:`run_cycle_stepped`, :meth:`synthesize_cycle_stepped`): walks the
  schedule of docs/MICROARCHITECTURE.md cycle by cycle, one image at a time, and counts
  the cycles it took; the counts equal ``poshw.ir``'s formulas and the values the golden's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple

import numpy as np
from numba import get_num_threads

from .. import PoshwError
from ..bases import Family
from ..ir import STAGE_SETUP, Argmax, BasisSource, Format, Gather, Hadamard, MatVec, NetworkIR, Stage
from . import kernels as K
from . import stepped as C

_FAMILY_CODE = {Family.GAUSS: 0, Family.RANK1: 0, Family.RADEMACHER: 1, Family.TERNARY: 2}
#: int32 headroom for the chunked dot product
_INT32_LIMIT = (1 << 31) - 1


class SimError(PoshwError, ValueError):
    """Inputs the simulator cannot run (wrong image shape or dtype, a build that does not fit)."""


def dtype_for(fmt: Format) -> np.dtype:
    """The compact numpy type the fast kernels use for ``fmt``.

    Only int8, uint8, int16, int32 and int64 occur, so numba compiles few specialisations
    (unsigned 9..15-bit values ride in int16, 16..31-bit ones in int32).
    """
    if fmt.bits <= 8:
        return np.dtype(np.int8 if fmt.signed else np.uint8)
    if fmt.bits <= 15 or (fmt.signed and fmt.bits <= 16):
        return np.dtype(np.int16)
    if fmt.bits <= 31 or (fmt.signed and fmt.bits <= 32):
        return np.dtype(np.int32)
    return np.dtype(np.int64)


@dataclass
class SimResult:
    logits: np.ndarray
    classes: np.ndarray
    #: stage name -> outputs that saturated
    saturation: dict[str, int]
    seconds: float = 0.0


class SteppedResult(NamedTuple):
    logits: np.ndarray
    cls: int
    cycles: int
    stage_cycles: dict[str, int]


def _scalar(p: Mapping[str, np.ndarray], name: str) -> int:
    return int(np.asarray(p[name]).reshape(-1)[0])


class Simulator:
    """Bit- and cycle-accurate simulator of a build (``poshw.compiler.artifacts.load_build``)."""

    def __init__(self, build: Any):
        self._init(build.ir, build.roms, build.params)

    @classmethod
    def from_parts(cls, ir: NetworkIR, roms: Mapping[str, np.ndarray],
                   params: Mapping[int, Mapping[str, np.ndarray]]) -> "Simulator":
        obj = cls.__new__(cls)
        obj._init(ir, roms, params)
        return obj

    def _init(self, ir: NetworkIR, roms: Mapping[str, np.ndarray],
              params: Mapping[int, Mapping[str, np.ndarray]]) -> None:
        self.ir = ir
        self.roms = {k: np.asarray(v, dtype=np.int64) for k, v in roms.items()}
        self.params = {int(i): {k: np.asarray(v, dtype=np.int64) for k, v in p.items()}
                       for i, p in params.items()}
        self.synth_saturation: dict[str, int] = {}
        self._weights: dict[int, np.ndarray] = {}
        for i, st in enumerate(ir.stages):
            w = self._fast_weights(i, st)
            if w is not None:
                self._weights[i] = w
        #: run <= 8-bit matvecs on the AVX-512 VNNI kernel (when the host has it)
        self.use_vnni: bool = K.HAVE_VNNI
        self._vnni_cache: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}
        self._stepped_cache: SteppedResult | None = None
        self._synth_cache: tuple[dict[int, np.ndarray], int, dict[str, int]] | None = None

    # --- parameters -----------------------------------------------------------------------
    def _p(self, i: int) -> dict[str, np.ndarray]:
        return self.params.get(i, {})

    def _fast_weights(self, i: int, st: Stage) -> np.ndarray | None:
        """Weights in the compact dtype of the weight format (synthesised by the numba kernels)."""
        if isinstance(st, MatVec):
            if st.weight_source.value == "rom":
                w = self.roms[f"s{i}.weights"]
            elif st.weight_source.value == "ram":
                w = self._p(i)["weights"].reshape(st.n_out, st.n_in)
            else:
                w = self._synth_fast(i, st)
            return np.ascontiguousarray(w, dtype=dtype_for(st.weight_fmt))
        if isinstance(st, Hadamard):
            return self._synth_fast(i, st)  # int64: the Hadamard kernel has one specialisation
        return None

    def _synth_fast(self, i: int, st: MatVec | Hadamard) -> np.ndarray:
        synth = st.synth
        p = self._p(i)
        acc = np.zeros(synth.entries, dtype=np.int64)
        for g, grp in enumerate(synth.groups):
            coef = p[f"coef.{g}"].reshape(-1)
            use_rom = grp.source is BasisSource.ROM
            seeds = self.roms[f"s{i}.seeds{g}"] if not use_rom else np.zeros(grp.count, np.int64)
            table = self.roms[f"s{i}.basis{g}"] if use_rom else np.zeros((1, 1), np.int64)
            K.synth_group(acc, coef, seeds.astype(np.uint64), table, _FAMILY_CODE[grp.family],
                          grp.family is Family.RANK1, synth.rows, synth.cols, use_rom, get_num_threads())
        w = np.empty(synth.entries, dtype=np.int64)
        self.synth_saturation[st.name] = int(K.synth_finish(acc, _scalar(p, "synth_shift"), st.weight_fmt.lo,
                                                            st.weight_fmt.hi, w))
        return w.reshape(synth.rows, synth.cols)

    def weights(self) -> dict[int, np.ndarray]:
        """int64 copies of every stage's weights (ROM, RAM or synthesised)."""
        return {i: w.astype(np.int64) for i, w in self._weights.items()}

    # --- fast mode --------------------------------------------------------------------------
    def _images(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise SimError(f"images must be uint8 pixels, got {images.dtype}")
        if images.ndim == 2 and images.shape[1] == self.ir.input_len:
            return np.ascontiguousarray(images)
        if images.ndim != 3 or tuple(images.shape[1:]) != tuple(self.ir.input_shape):
            h, w = self.ir.input_shape
            raise SimError(f"images must be [N, {h}, {w}] uint8, got {images.shape}")
        return np.ascontiguousarray(images.reshape(len(images), self.ir.input_len))

    def _epi(self, i: int, st: MatVec | Hadamard) -> tuple[int, int, int, int]:
        if not st.requant:
            return 1, 0, 0, 0
        p = self._p(i)
        return _scalar(p, "requant_mult"), _scalar(p, "requant_shift"), st.out_fmt.lo, st.out_fmt.hi

    def _bias(self, i: int, st: MatVec | Hadamard, count: int) -> np.ndarray:
        if not st.bias:
            return np.zeros(count, dtype=np.int64)
        return np.ascontiguousarray(self._p(i)["bias"].reshape(-1), dtype=np.int64)

    def run(self, images: np.ndarray) -> SimResult:
        """Fast bit-accurate inference of a batch: logits, classes, saturation per stage."""
        t0 = time.perf_counter()
        x = self._images(images)
        n = len(x)
        sat: dict[str, int] = {}
        logits = np.zeros((n, 0), np.int64)
        for i, st in enumerate(self.ir.stages):
            if isinstance(st, Argmax):
                logits = np.asarray(x, dtype=np.int64)
                out = np.empty(n, dtype=np.int64)
                if n:
                    K.argmax(logits, out)
                sat[st.name] = 0
                x = out
                continue
            # kernels write int64; the activation buffer then takes the compact type of its format
            out = np.empty((n, st.n_outputs), dtype=np.int64)
            if isinstance(st, Gather):
                K.gather(np.asarray(x, dtype=np.int64), self.roms[f"s{i}.index"], st.channels, st.n_in, out)
                sat[st.name] = 0
            elif isinstance(st, MatVec):
                w = self._weights[i]
                mult, shift, lo, hi = self._epi(i, st)
                bias = self._bias(i, st, st.n_out)
                prod = max(st.weight_fmt.max_abs * st.in_fmt.max_abs, 1)
                vnni = self._vnni(i, st)
                if vnni is not None:
                    wp, corr = vnni
                    if dtype_for(st.output_fmt) in (np.int8, np.uint8):  # written directly: less traffic
                        out = np.empty((n, st.n_outputs), dtype=dtype_for(st.output_fmt))
                    s = K.matvec_vnni(self._vnni_input(x, st, wp.shape[1]), wp, corr, bias, mult, shift, lo,
                                      hi, st.requant, out)
                elif prod <= _INT32_LIMIT and w.dtype.itemsize <= 2 and x.dtype.itemsize <= 2:
                    chunk = max(1, _INT32_LIMIT // prod)
                    s = K.matvec_chunked(x, w, bias, mult, shift, lo, hi, st.requant, chunk, out)
                else:
                    s = K.matvec_wide(np.asarray(x, dtype=np.int64), np.asarray(w, dtype=np.int64), bias,
                                      mult, shift, lo, hi, st.requant, out)
                sat[st.name] = int(s)
            elif isinstance(st, Hadamard):
                mult, shift, lo, hi = self._epi(i, st)
                s = K.hadamard(np.asarray(x, dtype=np.int64), self._weights[i], st.channels_in,
                               self._bias(i, st, st.filters), mult, shift, lo, hi, st.requant, out)
                sat[st.name] = int(s)
            else:
                raise SimError(f"unknown stage {type(st).__name__}")
            x = out if out.dtype == dtype_for(st.output_fmt) else out.astype(dtype_for(st.output_fmt))
        return SimResult(logits, np.asarray(x, dtype=np.int64), sat, time.perf_counter() - t0)

    def _vnni(self, i: int, st: MatVec) -> tuple[np.ndarray, np.ndarray] | None:
        """Padded int8 weights and the per-row correction for the VNNI kernel, or None.

        Used for <= 8-bit activations and weights when the host has AVX-512 VNNI. Signed
        activations ride as ``x + 128`` in uint8; ``-128 * rowsum(W)`` undoes the shift.
        """
        if not (self.use_vnni and st.in_fmt.bits <= 8 and st.weight_fmt.bits <= 8):
            return None
        if i not in self._vnni_cache:
            npad = -(-st.n_in // 64) * 64
            if npad * 255 * 128 > _INT32_LIMIT:  # int32 lanes must hold the whole dot product
                self._vnni_cache[i] = None
            else:
                wp = np.zeros((st.n_out, npad), dtype=np.int8)
                wp[:, :st.n_in] = self._weights[i]
                corr = (-128 * self._weights[i].astype(np.int64).sum(axis=1) if st.in_fmt.signed
                        else np.zeros(st.n_out, dtype=np.int64))
                self._vnni_cache[i] = (wp, np.ascontiguousarray(corr))
        return self._vnni_cache[i]

    @staticmethod
    def _vnni_input(x: np.ndarray, st: MatVec, npad: int) -> np.ndarray:
        xp = np.zeros((len(x), npad), dtype=np.uint8)
        if st.in_fmt.signed:
            xp[:, :st.n_in] = x.view(np.uint8) ^ np.uint8(0x80)  # two's complement + 128
        else:
            xp[:, :st.n_in] = x
        return xp

    def logits(self, images: np.ndarray) -> np.ndarray:
        return self.run(images).logits

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class indices of uint8 images (lowest index wins ties), as every poshw model."""
        return self.run(images).classes

    # --- cycle-stepped mode -------------------------------------------------------------------
    def _memory(self, i: int, st: MatVec, w: np.ndarray) -> np.ndarray:
        """``[words, lanes]`` lane-packed weight memory of a matvec (zeros beyond n_out)."""
        lanes = st.lanes
        blocks = st.blocks
        padded = np.zeros((blocks * lanes, st.n_in), dtype=np.int64)
        padded[:st.n_out] = w
        return np.ascontiguousarray(padded.reshape(blocks, lanes, st.n_in).transpose(0, 2, 1)
                                    .reshape(blocks * st.n_in, lanes))

    def synthesize_cycle_stepped(self, params: Mapping[int, Mapping[str, np.ndarray]] | None = None
                                 ) -> tuple[dict[int, np.ndarray], int]:
        """Weight synthesis after a coefficient load, cycle by cycle.

        Returns the synthesised weights per stage (int64 ``[rows, cols]``) and the cycles from
        the last coefficient beat to ready: ``1 + sum(stage synthesis cycles)``.
        """
        p_all = self.params if params is None else {int(i): {k: np.asarray(v, np.int64) for k, v in p.items()}
                                                     for i, p in params.items()}
        weights, total, per = self._synth_stepped(p_all)
        if params is None:
            self._synth_cache = (weights, total, per)
        return weights, total

    def _synth_stepped(self, p_all) -> tuple[dict[int, np.ndarray], int, dict[str, int]]:
        total = STAGE_SETUP  # top-level: one cycle to enter synthesis
        out: dict[int, np.ndarray] = {}
        per: dict[str, int] = {}
        for i, st in enumerate(self.ir.stages):
            synth = getattr(st, "synth", None)
            if synth is None:
                continue
            p = p_all[i]
            acc = np.zeros(synth.entries, dtype=np.int64)
            buf = np.zeros(synth.rows + synth.cols, dtype=np.int64)
            cycles = STAGE_SETUP
            first = True
            for g, grp in enumerate(synth.groups):
                coef = p[f"coef.{g}"].reshape(-1)
                use_rom = grp.source is BasisSource.ROM
                seeds = self.roms.get(f"s{i}.seeds{g}")
                table = self.roms.get(f"s{i}.basis{g}")
                empty = np.zeros(1, np.int64)
                for k in range(grp.count):
                    row = table[k] if use_rom else empty
                    seed = 0 if use_rom else int(seeds[k])
                    cycles += C.synth_basis(acc, first, int(coef[k]), np.uint64(seed), row,
                                            _FAMILY_CODE[grp.family], grp.family is Family.RANK1,
                                            synth.rows, synth.cols, use_rom, buf)
                    first = False
            lanes = st.lanes if isinstance(st, MatVec) else 1
            blocks = -(-synth.rows // lanes)
            mem = np.zeros((blocks * synth.cols, lanes), dtype=np.int64)
            c, _ = C.synth_final(acc, _scalar(p, "synth_shift"), st.weight_fmt.lo, st.weight_fmt.hi,
                                 synth.rows, synth.cols, lanes, mem)
            cycles += c
            w = mem.reshape(blocks, synth.cols, lanes).transpose(0, 2, 1).reshape(blocks * lanes, synth.cols)
            out[i] = np.ascontiguousarray(w[:synth.rows])
            per[st.name] = cycles
            total += cycles
        return out, total, per

    def run_cycle_stepped(self, image: np.ndarray) -> SteppedResult:
        """One inference walked cycle by cycle: (logits, class, cycles, per-stage cycles).

        ``cycles`` runs from the first input beat to the result (input beats back to back).
        """
        image = np.asarray(image)
        x_in = self._images(image.reshape(1, *image.shape) if image.ndim == 2 else image.reshape(1, -1))[0]
        if self._synth_cache is None:
            self.synthesize_cycle_stepped()
        synth_w = self._synth_cache[0]  # type: ignore[index]
        buf = np.zeros(self.ir.input_len, dtype=np.int64)
        cycles = C.input_stream(x_in, buf)
        per: dict[str, int] = {"input": cycles}
        x = buf
        logits = np.zeros(0, np.int64)
        cls = -1
        for i, st in enumerate(self.ir.stages):
            if isinstance(st, Argmax):
                logits = x.copy()
                cls, c = C.argmax(x, st.n)
            elif isinstance(st, Gather):
                out = np.zeros(st.n_outputs, dtype=np.int64)
                c = C.gather(x, self.roms[f"s{i}.index"], st.channels, st.n_in, st.n_out, out)
                x = out
            elif isinstance(st, MatVec):
                w = synth_w[i] if st.synth is not None else self._weights[i].astype(np.int64)
                mem = self._memory(i, st, w)
                mult, shift, lo, hi = self._epi(i, st)
                out = np.zeros(st.n_out, dtype=np.int64)
                c, _ = C.matvec(x, mem, st.n_out, st.n_in, st.lanes, self._bias(i, st, st.n_out), st.bias,
                                mult, shift, lo, hi, st.requant, out)
                x = out
            elif isinstance(st, Hadamard):
                mult, shift, lo, hi = self._epi(i, st)
                out = np.zeros(st.n_outputs, dtype=np.int64)
                c, _ = C.hadamard(x, synth_w[i], st.filters, st.n, st.channels_in,
                                  self._bias(i, st, st.filters), st.bias, mult, shift, lo, hi, st.requant, out)
                x = out
            else:
                raise SimError(f"unknown stage {type(st).__name__}")
            per[st.name] = int(c)
            cycles += int(c)
        return SteppedResult(logits, int(cls), int(cycles), per)

    # --- cycle counts ---------------------------------------------------------------------------
    def _stepped_zero(self) -> SteppedResult:
        if self._stepped_cache is None:
            self._stepped_cache = self.run_cycle_stepped(np.zeros(self.ir.input_shape, dtype=np.uint8))
        return self._stepped_cache

    def latency_cycles(self) -> int:
        """Cycles per inference, first input beat to result, as counted by the stepped mode."""
        return self._stepped_zero().cycles

    def stage_cycles(self) -> dict[str, int]:
        """Cycles of the input stream and of every stage, as counted by the stepped mode."""
        return dict(self._stepped_zero().stage_cycles)

    def synth_cycles(self) -> int:
        """Cycles of weight synthesis after a coefficient load, as counted by the stepped mode."""
        if self._synth_cache is None:
            self.synthesize_cycle_stepped()
        return self._synth_cache[1]  # type: ignore[index]

    def synth_stage_cycles(self) -> dict[str, int]:
        if self._synth_cache is None:
            self.synthesize_cycle_stepped()
        return dict(self._synth_cache[2])  # type: ignore[index]


# Name as the issue spells the cross-team API.
