"""The numpy golden reference of docs/FIXED_POINT.md.

Plain int64 numpy, written to be read: every other implementation (the numba
simulator, the RTL) is checked bit for bit against this module.

Conventions shared with the simulator and the RTL tests:

* ``Params`` is ``{stage_index: {field: int64 array}}`` with the field names of
  :meth:`poshw.ir.NetworkIR.param_layout`: ``"weights"`` as ``[n_out, n_in]``,
  ``"coef.<g>"`` as ``[count]``, ``"synth_shift"``, ``"requant_mult"`` and
  ``"requant_shift"`` as ``[1]``, ``"bias"`` as ``[n_out]`` (``[filters]`` for a
  Hadamard stage).
* ROM contents (``poshw.compiler.roms.rom_contents``) are keyed ``"s<i>.<rom>"``
  over the whole network. The single-stage functions (:func:`synthesize`,
  :func:`stage_forward`) take one stage's ROMs with the ``"s<i>."`` prefix
  removed (``"weights"``, ``"basis<g>"``, ``"seeds<g>"``, ``"index"``) and that
  stage's parameter dict; :func:`stage_roms` makes that slice.

Matrix products are computed in float64 when every partial sum is provably an
integer below 2**53 (then the result is exact in any summation order and BLAS
is 100x faster than numpy's int64 matmul); otherwise in int64.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from .. import PoshwError
from ..bases import Family, map_values, raw_streams
from ..ir import Argmax, Format, Gather, Hadamard, MatVec, NetworkIR, Stage, Synth, WeightSource

Params = dict[int, dict[str, np.ndarray]]

#: partial sums below this are exact in float64
_EXACT_F64 = 1 << 53
#: basis entries generated at once during synthesis (bounds temporary memory)
_SYNTH_CHUNK_ENTRIES = 1 << 22


class GoldenError(PoshwError, ValueError):
    """Inputs that do not fit the IR (shapes, formats, missing parameters or ROMs)."""


# --- arithmetic primitives ----------------------------------------------------------------

def round_shift(v: Any, s: Any) -> np.ndarray:
    """``v`` if ``s == 0`` else ``floor((v + 2**(s-1)) / 2**s)``: round half up.

    ``v`` and ``s`` broadcast; ``0 <= s <= 63``. The caller keeps ``v + 2**(s-1)``
    inside int64 (the IR's accumulator limits guarantee it).
    """
    v = np.asarray(v, dtype=np.int64)
    s = np.asarray(s, dtype=np.int64)
    if np.any(s < 0) or np.any(s > 63):
        raise GoldenError(f"shift must be in 0..63, got {s}")
    half = np.where(s > 0, np.left_shift(np.int64(1), np.maximum(s - 1, 0)), np.int64(0))
    return np.right_shift(v + half, s)  # arithmetic shift on int64: floor division


def saturate(v: Any, fmt: Format) -> np.ndarray:
    """Clamp ``v`` to ``[fmt.lo, fmt.hi]`` (int64)."""
    return np.clip(np.asarray(v, dtype=np.int64), fmt.lo, fmt.hi)


def count_saturated(v: Any, fmt: Format) -> int:
    """How many values of ``v`` lie outside ``fmt`` (would be changed by :func:`saturate`)."""
    v = np.asarray(v, dtype=np.int64)
    return int(np.count_nonzero((v < fmt.lo) | (v > fmt.hi)))


def count_overflow(v: Any, fmt: Format) -> int:
    """Saturated values that are overflows: above ``hi``, or below ``lo`` of a signed format.

    An unsigned output's lower bound 0 is the ReLU, the activation function, not an
    overflow; it is not counted (saturation reports would otherwise say "35%" for a
    healthy ReLU layer).
    """
    v = np.asarray(v, dtype=np.int64)
    over = v > fmt.hi
    if fmt.signed:
        over |= v < fmt.lo
    return int(np.count_nonzero(over))


def requantize(acc: np.ndarray, mult: int, shift: int, fmt: Format) -> tuple[np.ndarray, int]:
    """``sat(round_shift(acc * mult, shift), fmt)`` and the number of overflows (:func:`count_overflow`)."""
    r = round_shift(np.asarray(acc, dtype=np.int64) * np.int64(mult), shift)
    return saturate(r, fmt), count_overflow(r, fmt)


def exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` of integer matrices, exact, as int64."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    inner = a.shape[-1]
    amax = int(np.abs(a).max(initial=0))
    bmax = int(np.abs(b).max(initial=0))
    if inner * amax * bmax < _EXACT_F64:
        return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    return a @ b


# --- slicing helpers ----------------------------------------------------------------------

def stage_roms(roms: Mapping[str, np.ndarray], index: int) -> dict[str, np.ndarray]:
    """The ROMs of stage ``index`` with the ``"s<index>."`` prefix removed."""
    prefix = f"s{index}."
    return {k[len(prefix):]: v for k, v in roms.items() if k.startswith(prefix)}


def _param(params: Mapping[str, np.ndarray], name: str, where: str) -> np.ndarray:
    if name not in params:
        raise GoldenError(f"{where}: missing parameter {name!r}")
    return np.asarray(params[name], dtype=np.int64)


def _scalar(params: Mapping[str, np.ndarray], name: str, where: str) -> int:
    v = _param(params, name, where).reshape(-1)
    if v.size != 1:
        raise GoldenError(f"{where}: parameter {name!r} must hold one value, got {v.size}")
    return int(v[0])


def _rom(roms: Mapping[str, np.ndarray], name: str, where: str) -> np.ndarray:
    if name not in roms:
        raise GoldenError(f"{where}: missing ROM {name!r}")
    return np.asarray(roms[name], dtype=np.int64)


# --- weight synthesis ---------------------------------------------------------------------

def synth_accumulate(synth: Synth, roms: Mapping[str, np.ndarray],
                     params: Mapping[str, np.ndarray], where: str = "synth") -> np.ndarray:
    """The exact synthesis sum ``acc = sum_k a_k M_k`` as int64 ``[rows, cols]``.

    Bases come from the basis ROM (``"basis<g>"``) or, for the generator source,
    are regenerated from the seed ROM (``"seeds<g>"``) exactly as the hardware
    does: entry ``e`` of basis ``k`` is the family map of the xorshift32 state after
    ``e + 1`` steps from seed ``k``; a rank-1 basis takes ``u`` from entries
    ``0..rows-1`` and ``v`` from ``rows..rows+cols-1``.
    """
    rows, cols, n = synth.rows, synth.cols, synth.entries
    acc = np.zeros((rows, cols), dtype=np.int64)
    for g, group in enumerate(synth.groups):
        a = _param(params, f"coef.{g}", where).reshape(-1)
        if a.size != group.count:
            raise GoldenError(f"{where}: coef.{g} has {a.size} values, the group has {group.count} bases")
        if group.source.value == "rom":
            table = _rom(roms, f"basis{g}", where)
        else:
            seeds = _rom(roms, f"seeds{g}", where).reshape(-1)
            if seeds.size != group.count:
                raise GoldenError(f"{where}: seeds{g} has {seeds.size} seeds for {group.count} bases")
            table = None
        length = rows + cols if group.family is Family.RANK1 else n
        if table is not None and table.shape != (group.count, length):
            raise GoldenError(f"{where}: basis{g} ROM has shape {table.shape}, "
                              f"expected {(group.count, length)}")
        step = max(1, _SYNTH_CHUNK_ENTRIES // length)
        for k0 in range(0, group.count, step):
            k1 = min(k0 + step, group.count)
            if table is not None:
                vals = table[k0:k1]
            else:
                raw = raw_streams(seeds[k0:k1].astype(np.uint32), length)
                vals = map_values(raw, group.family).astype(np.int64)
            if group.family is Family.RANK1:
                u, v = vals[:, :rows], vals[:, rows:]
                acc += exact_matmul(u.T * a[k0:k1], v)       # sum_k a_k u_k v_k^T
            else:
                acc += exact_matmul(a[None, k0:k1], vals).reshape(rows, cols)
    return acc


def synthesize_with_count(stage: Stage, roms: Mapping[str, np.ndarray],
                          params: Mapping[str, np.ndarray]) -> tuple[np.ndarray, int]:
    """:func:`synthesize` plus the number of weights that saturated."""
    synth = getattr(stage, "synth", None)
    if synth is None:
        raise GoldenError(f"stage {stage.name!r} has no synthesised weights")
    where = f"stage {stage.name!r}"
    acc = synth_accumulate(synth, roms, params, where)
    shift = _scalar(params, "synth_shift", where)
    w = round_shift(acc, shift)
    return saturate(w, stage.weight_fmt), count_saturated(w, stage.weight_fmt)


def synthesize(stage: Stage, roms: Mapping[str, np.ndarray],
               params: Mapping[str, np.ndarray]) -> np.ndarray:
    """Synthesised weights ``W = sat(round_shift(sum_k a_k M_k, synth_shift), weight_fmt)``.

    ``roms`` and ``params`` are the stage's own (see the module docstring).
    Returns int64 ``[rows, cols]`` (``[n_out, n_in]``; Hadamard: ``[filters, n]``).
    """
    return synthesize_with_count(stage, roms, params)[0]


def stage_weights(stage: Stage, roms: Mapping[str, np.ndarray],
                  params: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """The weight matrix a stage computes with (ROM, RAM or synthesised); None if it has none."""
    where = f"stage {stage.name!r}"
    if isinstance(stage, MatVec):
        if stage.weight_source is WeightSource.ROM:
            w = _rom(roms, "weights", where)
        elif stage.weight_source is WeightSource.RAM:
            w = _param(params, "weights", where)
        else:
            return synthesize(stage, roms, params)
        if w.shape != (stage.n_out, stage.n_in):
            w = w.reshape(stage.n_out, stage.n_in)
        return w
    if isinstance(stage, Hadamard):
        return synthesize(stage, roms, params)
    return None


# --- stages -------------------------------------------------------------------------------

@dataclass
class StageResult:
    """Output of one stage and how many of its outputs saturated."""

    y: np.ndarray
    saturated: int = 0


def _check_input(stage: Stage, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != stage.n_inputs:
        raise GoldenError(f"stage {stage.name!r}: input must be [N, {stage.n_inputs}], got {x.shape}")
    x = x.astype(np.int64)
    fmt = stage.input_fmt
    if x.size and (x.min() < fmt.lo or x.max() > fmt.hi):
        raise GoldenError(f"stage {stage.name!r}: input values outside {fmt}")
    return x


def _bias(stage: Stage, params: Mapping[str, np.ndarray], count: int) -> np.ndarray:
    if not stage.bias:
        return np.zeros(count, dtype=np.int64)
    b = _param(params, "bias", f"stage {stage.name!r}").reshape(-1)
    if b.size != count:
        raise GoldenError(f"stage {stage.name!r}: bias has {b.size} values, expected {count}")
    return b


def _epilogue(stage: MatVec | Hadamard, acc: np.ndarray,
              params: Mapping[str, np.ndarray]) -> StageResult:
    if not stage.requant:
        return StageResult(acc, 0)
    where = f"stage {stage.name!r}"
    y, n = requantize(acc, _scalar(params, "requant_mult", where),
                      _scalar(params, "requant_shift", where), stage.out_fmt)
    return StageResult(y, n)


def matvec_forward(stage: MatVec, x: np.ndarray, w: np.ndarray,
                   params: Mapping[str, np.ndarray]) -> StageResult:
    """``acc = W x + bias``; requantise or pass the accumulator on (logits)."""
    acc = exact_matmul(x, np.asarray(w, dtype=np.int64).T) + _bias(stage, params, stage.n_out)
    return _epilogue(stage, acc, params)


def hadamard_forward(stage: Hadamard, x: np.ndarray, d: np.ndarray,
                     params: Mapping[str, np.ndarray]) -> StageResult:
    """``acc[f, i] = d[f, i] * x[c(f), i] + bias[f]``; output laid out ``f * n + i``."""
    n_img = x.shape[0]
    xc = x.reshape(n_img, stage.channels_in, stage.n)
    if stage.channels_in == 1:
        xc = np.broadcast_to(xc, (n_img, stage.filters, stage.n))   # every filter reads channel 0
    bias = _bias(stage, params, stage.filters)
    acc = xc * np.asarray(d, dtype=np.int64)[None] + bias[None, :, None]
    return _epilogue(stage, acc.reshape(n_img, -1), params)


def gather_forward(stage: Gather, x: np.ndarray, index: np.ndarray) -> StageResult:
    """``y[c * n_out + i] = x[c * n_in + index[i]]``."""
    index = np.asarray(index, dtype=np.int64).reshape(-1)
    if index.size != stage.n_out or index.min() < 0 or index.max() >= stage.n_in:
        raise GoldenError(f"stage {stage.name!r}: index ROM must hold {stage.n_out} values in "
                          f"0..{stage.n_in - 1}")
    xc = x.reshape(x.shape[0], stage.channels, stage.n_in)
    return StageResult(xc[:, :, index].reshape(x.shape[0], -1), 0)


def argmax_forward(stage: Argmax, x: np.ndarray) -> StageResult:
    """Index of the largest value; ``np.argmax`` returns the first maximum: lowest index wins."""
    return StageResult(np.argmax(x, axis=1).astype(np.int64), 0)


def stage_forward(stage: Stage, x: np.ndarray, roms: Mapping[str, np.ndarray],
                  params: Mapping[str, np.ndarray], weights: np.ndarray | None = None) -> StageResult:
    """Run one stage on a batch ``x`` ([N, n_inputs] integers in the stage's input format).

    ``roms``/``params`` are the stage's own. ``weights`` (the matrix or diagonals)
    skips the synthesis when the caller already has it.
    """
    x = _check_input(stage, x)
    if isinstance(stage, MatVec):
        w = stage_weights(stage, roms, params) if weights is None else weights
        return matvec_forward(stage, x, w, params)
    if isinstance(stage, Hadamard):
        d = synthesize(stage, roms, params) if weights is None else weights
        return hadamard_forward(stage, x, d, params)
    if isinstance(stage, Gather):
        return gather_forward(stage, x, _rom(roms, "index", f"stage {stage.name!r}"))
    if isinstance(stage, Argmax):
        return argmax_forward(stage, x)
    raise GoldenError(f"unknown stage type {type(stage).__name__}")


# --- the whole network --------------------------------------------------------------------

@dataclass
class GoldenResult:
    """Logits (int64 ``[N, n]``), classes (int64 ``[N]``) and per-stage saturation counts."""

    logits: np.ndarray
    classes: np.ndarray
    #: stage name -> outputs that overflowed in requantisation (ReLU zeros are not counted)
    saturation: dict[str, int] = field(default_factory=dict)
    #: stage name -> synthesised weights that saturated
    synth_saturation: dict[str, int] = field(default_factory=dict)
    #: stage name -> the stage's output, when requested
    activations: dict[str, np.ndarray] | None = None


def flatten_images(ir: NetworkIR, images: np.ndarray) -> np.ndarray:
    """uint8 images ``[N, h, w]`` (or ``[N, input_len]``) as int64 ``[N, input_len]``."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise GoldenError(f"images must be uint8 pixels, got {images.dtype}")
    if images.ndim < 1 or images[0:1].size and int(np.prod(images.shape[1:])) != ir.input_len:
        raise GoldenError(f"images must be [N, {ir.input_shape[0]}, {ir.input_shape[1]}], got {images.shape}")
    return images.reshape(images.shape[0], ir.input_len).astype(np.int64)


def all_weights(ir: NetworkIR, roms: Mapping[str, np.ndarray],
                params: Params) -> tuple[dict[int, np.ndarray], dict[str, int]]:
    """Every stage's weight matrix and the synthesis saturation counts."""
    weights: dict[int, np.ndarray] = {}
    sat: dict[str, int] = {}
    for i, st in enumerate(ir.stages):
        p = params.get(i, {})
        r = stage_roms(roms, i)
        if getattr(st, "synth", None) is not None:
            weights[i], sat[st.name] = synthesize_with_count(st, r, p)
        elif isinstance(st, MatVec):
            weights[i] = stage_weights(st, r, p)
    return weights, sat


def golden_forward(ir: NetworkIR, roms: Mapping[str, np.ndarray], params: Params,
                   images: np.ndarray, *, keep_activations: bool = False,
                   weights: dict[int, np.ndarray] | None = None) -> GoldenResult:
    """The fixed-point network on uint8 images: logits, classes, saturation counts."""
    if weights is None:
        weights, synth_sat = all_weights(ir, roms, params)
    else:
        synth_sat = {}
    x = flatten_images(ir, images)
    sat: dict[str, int] = {}
    acts: dict[str, np.ndarray] = {}
    logits = x
    for i, st in enumerate(ir.stages):
        if isinstance(st, Argmax):
            logits = x
        res = stage_forward(st, x, stage_roms(roms, i), params.get(i, {}), weights.get(i))
        sat[st.name] = res.saturated
        x = res.y
        if keep_activations:
            acts[st.name] = x
    return GoldenResult(logits=np.asarray(logits, dtype=np.int64), classes=np.asarray(x, dtype=np.int64),
                        saturation=sat, synth_saturation=synth_sat,
                        activations=acts if keep_activations else None)


class GoldenModel:
    """The golden reference behind the common ``predict(images)`` interface.

    ``GoldenModel(build)`` takes a loaded build (``poshw.compiler.artifacts.load_build``);
    :meth:`from_parts` takes an IR, ROM contents and parameters directly.
    """

    def __init__(self, build: Any):
        self.ir: NetworkIR = build.ir
        self.roms: dict[str, np.ndarray] = dict(build.roms)
        self.params: Params = build.params
        self._weights: dict[int, np.ndarray] | None = None
        self._synth_sat: dict[str, int] = {}

    @classmethod
    def from_parts(cls, ir: NetworkIR, roms: Mapping[str, np.ndarray], params: Params) -> "GoldenModel":
        obj = cls.__new__(cls)
        obj.ir, obj.roms, obj.params = ir, dict(roms), params
        obj._weights, obj._synth_sat = None, {}
        return obj

    def weights(self) -> dict[int, np.ndarray]:
        if self._weights is None:
            self._weights, self._synth_sat = all_weights(self.ir, self.roms, self.params)
        return self._weights

    def run(self, images: np.ndarray, batch_size: int = 2000) -> GoldenResult:
        w = self.weights()
        parts = [golden_forward(self.ir, self.roms, self.params, images[i:i + batch_size], weights=w)
                 for i in range(0, len(images), batch_size)]
        if not parts:
            n = self.ir.stages[-1].n
            return GoldenResult(np.zeros((0, n), np.int64), np.zeros(0, np.int64), {}, dict(self._synth_sat))
        sat = {k: sum(p.saturation[k] for p in parts) for k in parts[0].saturation}
        return GoldenResult(np.concatenate([p.logits for p in parts]),
                            np.concatenate([p.classes for p in parts]), sat, dict(self._synth_sat))

    def logits(self, images: np.ndarray) -> np.ndarray:
        return self.run(images).logits

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.run(images).classes
