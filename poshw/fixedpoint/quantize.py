"""Post-training quantisation: float stage values to integer parameters (docs/FIXED_POINT.md).

Calibration walks the *integer* pipeline stage by stage on a slice of the
training set: each stage's output scale is chosen from the real values its
exact integer accumulator represents (``acc * s_w * s_x``) given the already
quantised stages before it, so the error of earlier stages is part of what
later stages are calibrated on.

Scales, per stage with input scale ``s_x`` (pixels: ``1/255``):

* ROM weights: ``s_w`` is the ROM's exact scale (``2**-frac_bits`` for the DCT);
* RAM weights: ``s_w = max|W| / hi(weight_fmt)``;
* synthesised weights: group ``g``'s coefficients get scale ``S / s_M[g]`` with one
  common product scale ``S = max_g(max|a_g| * s_M[g]) / hi(coef_fmt)`` (the synthesis
  accumulator adds all groups, so ``a_int * M_int`` must mean the same real value in
  every group); ``synth_shift`` is the smallest that keeps ``round_shift(acc, shift)``
  inside the weight format, and ``s_w = S * 2**synth_shift``;
* output: ``s_y = stat / hi(out_fmt)`` where ``stat`` is the max, or the given percentile,
  of ``|acc * s_w * s_x|`` (of ``max(., 0)`` for a ReLU stage) over the calibration set;
  ``s_w * s_x / s_y`` becomes ``mult / 2**shift`` (16-bit ``mult``, the largest shift
  <= 63); the next stage's ``s_x`` is the exactly represented ``s_w * s_x * 2**shift / mult``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import PoshwError
from ..compiler.lower import CalibMethod, CompileOptions, Lowered
from ..compiler.roms import gather_index, rom_contents, rom_matrix
from ..ir import INT32, REQUANT_MULT, REQUANT_SHIFT, SYNTH_SHIFT, Argmax, Gather, Hadamard, MatVec
from .golden import (
    Params, count_saturated, exact_matmul, hadamard_forward, matvec_forward, round_shift, saturate,
    stage_roms, synth_accumulate,
)


class QuantError(PoshwError, ValueError):
    """A value that no parameter of the given formats can represent."""


@dataclass
class StageQuant:
    """How one stage was quantised (a row of ``quant.json``)."""

    name: str
    kind: str
    s_in: float
    s_weight: float | None = None
    s_out: float | None = None
    requant_mult: int | None = None
    requant_shift: int | None = None
    synth_shift: int | None = None
    coef_scales: list[float] = field(default_factory=list)
    calib_stat: float | None = None
    #: outputs that saturated on the calibration set
    calib_saturated: int = 0
    calib_outputs: int = 0
    bias_saturated: int = 0
    coef_saturated: int = 0
    weight_saturated: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class Quantized:
    lowered: Lowered
    params: Params
    stages: list[StageQuant]

    @property
    def ir(self):
        return self.lowered.ir


def _round(x: np.ndarray) -> np.ndarray:
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5)  # round half up, like round_shift


def multiplier(m: float, where: str) -> tuple[int, int]:
    """``m ~= mult / 2**shift`` with ``mult <= 65535`` and the largest ``shift <= 63``."""
    if not (m > 0 and math.isfinite(m)):
        raise QuantError(f"{where}: requantisation factor {m!r} must be a positive number")
    shift = min(REQUANT_SHIFT.hi, math.floor(math.log2(REQUANT_MULT.hi / m)))
    while shift >= 0 and math.floor(m * 2.0 ** shift + 0.5) > REQUANT_MULT.hi:
        shift -= 1
    if shift < 0:
        raise QuantError(f"{where}: requantisation factor {m:.3g} needs a multiplier above "
                         f"{REQUANT_MULT.hi} (output scale too fine for the accumulator)")
    mult = int(math.floor(m * 2.0 ** shift + 0.5))
    if mult == 0:
        raise QuantError(f"{where}: requantisation factor {m:.3g} is below 2**-63 (output scale too coarse)")
    return mult, shift


def _stat(values: np.ndarray, options: CompileOptions) -> float:
    if values.size == 0:
        return 0.0
    if options.calibration is CalibMethod.MAX:
        return float(values.max())
    return float(np.percentile(values, options.percentile))


def _quantize_synth(st: MatVec | Hadamard, v, roms: dict[str, np.ndarray], rec: StageQuant) -> tuple[dict, float]:
    """Coefficients and synthesis shift; returns the fields and the weight scale ``s_w``."""
    synth = st.synth
    cf = synth.coef_fmt
    peaks = [float(np.abs(a).max(initial=0.0)) * s for a, s in zip(v.coefs, v.basis_scales)]
    common = max(peaks) / cf.hi if max(peaks) > 0 else 1.0
    out: dict[str, np.ndarray] = {}
    for g, (a, s) in enumerate(zip(v.coefs, v.basis_scales)):
        q = _round(np.asarray(a) * s / common)
        rec.coef_saturated += count_saturated(q, cf)
        out[f"coef.{g}"] = saturate(q, cf)
        rec.coef_scales.append(common / s)
    acc = synth_accumulate(synth, roms, out, f"stage {st.name!r}")
    wf = st.weight_fmt
    shift = 0
    while shift < SYNTH_SHIFT.hi and count_saturated(round_shift(acc, shift), wf):
        shift += 1
    rec.weight_saturated = count_saturated(round_shift(acc, shift), wf)
    out["synth_shift"] = np.array([shift], dtype=np.int64)
    rec.synth_shift = shift
    return out, common * 2.0 ** shift


def quantize(lowered: Lowered, calib_images: np.ndarray) -> Quantized:
    """Integer parameters for ``lowered.ir``, calibrated on uint8 ``calib_images``."""
    ir, options = lowered.ir, lowered.options
    roms = rom_contents(ir)
    x = np.asarray(calib_images, dtype=np.int64).reshape(len(calib_images), -1)
    s_x = 1.0 / 255.0
    params: Params = {}
    report: list[StageQuant] = []
    for i, st in enumerate(ir.stages):
        v = lowered.stages[i]
        rec = StageQuant(st.name, st.kind.value, s_x)
        report.append(rec)
        where = f"stage {i} {st.name!r}"
        if isinstance(st, Argmax):
            break
        if isinstance(st, Gather):
            idx = gather_index(st)
            x = x.reshape(len(x), st.channels, st.n_in)[:, :, idx].reshape(len(x), -1)
            continue
        p: dict[str, np.ndarray] = {}
        sr = stage_roms(roms, i)
        if v.kind == "rom":
            w_int = rom_matrix(st)
            s_w = float(v.weight_scale)
        elif v.kind == "ram":
            wmax = float(np.abs(v.weight).max(initial=0.0))
            s_w = wmax / st.weight_fmt.hi if wmax > 0 else 1.0
            q = _round(v.weight / s_w)
            rec.weight_saturated = count_saturated(q, st.weight_fmt)
            w_int = saturate(q, st.weight_fmt)
            p["weights"] = w_int
        else:
            fields_, s_w = _quantize_synth(st, v, sr, rec)
            p.update(fields_)
            w_int = None
        rec.s_weight = s_w
        if st.bias:
            b = _round(np.asarray(v.bias, dtype=np.float64) / (s_w * s_x))
            rec.bias_saturated = count_saturated(b, INT32)
            p["bias"] = saturate(b, INT32)
        if w_int is None:
            from .golden import synthesize
            w_int = synthesize(st, sr, p)
        # the exact accumulator on the calibration set (the epilogue is applied below)
        if isinstance(st, MatVec):
            acc = exact_matmul(x, w_int.T) + (p["bias"][None, :] if st.bias else 0)
        else:
            xc = x.reshape(len(x), st.channels_in, st.n)
            acc = (xc * w_int[None]).reshape(len(x), -1)
            if st.bias:
                acc = acc + np.repeat(p["bias"], st.n)[None, :]
        if not st.requant:
            params[i] = p
            rec.s_out = s_w * s_x
            s_x = rec.s_out
            continue
        real = acc.astype(np.float64) * (s_w * s_x)
        vals = np.maximum(real, 0.0) if st.relu else np.abs(real)
        stat = _stat(vals.reshape(-1), options)
        if stat <= 0:
            stat = max(float(vals.max(initial=0.0)), s_w * s_x)  # a dead stage: any scale works
        rec.calib_stat = stat
        s_y = stat / st.out_fmt.hi
        mult, shift = multiplier(s_w * s_x / s_y, where)
        p["requant_mult"] = np.array([mult], dtype=np.int64)
        p["requant_shift"] = np.array([shift], dtype=np.int64)
        rec.requant_mult, rec.requant_shift = mult, shift
        params[i] = p
        # the integer output, exactly as the golden computes it
        if isinstance(st, MatVec):
            res = matvec_forward(st, x, w_int, p)
        else:
            res = hadamard_forward(st, x, w_int, p)
        rec.calib_saturated, rec.calib_outputs = res.saturated, int(res.y.size)
        x = res.y
        s_x = s_w * s_x * 2.0 ** shift / mult
        rec.s_out = s_x
    return Quantized(lowered, params, report)
