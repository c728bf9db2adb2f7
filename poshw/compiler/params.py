"""The parameter image: ``[PARAM_MAGIC, design_id, payload...]`` 32-bit words.

The payload follows :meth:`NetworkIR.param_layout`; each word holds one value of
its field's format, sign- (signed formats) or zero-extended to 32 bits
(docs/MICROARCHITECTURE.md). Encoding checks every value against its format;
decoding checks the header, the length and that every word is a proper
extension of an in-range value.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .. import PoshwError
from ..ir import PARAM_MAGIC, NetworkIR, ParamField

Params = dict[int, dict[str, np.ndarray]]
HEADER_WORDS = 2
WORD_BITS = 32


class ParamError(PoshwError, ValueError):
    """Parameter values that do not fit the IR, or a malformed parameter image."""


def _where(ir: NetworkIR, f: ParamField) -> str:
    return f"stage {f.stage} {ir.stages[f.stage].name!r} field {f.name!r}"


def field_shape(ir: NetworkIR, f: ParamField) -> tuple[int, ...]:
    """The array shape of a field in :data:`Params` (``weights`` is ``[n_out, n_in]``)."""
    if f.name == "weights":
        st = ir.stages[f.stage]
        return (st.n_out, st.n_in)  # type: ignore[attr-defined]
    return (f.count,)


def check_params(ir: NetworkIR, params: Mapping[int, Mapping[str, np.ndarray]]) -> Params:
    """Validate ``params`` against the IR: every field present, right size, in range.

    Returns a normalised copy (int64 arrays of the canonical shapes). Extra fields
    or stages are refused too: they would be silently ignored otherwise.
    """
    layout = ir.param_layout()
    expected: dict[int, set[str]] = {}
    out: Params = {}
    for f in layout:
        expected.setdefault(f.stage, set()).add(f.name)
        where = _where(ir, f)
        stage_params = params.get(f.stage)
        if stage_params is None or f.name not in stage_params:
            raise ParamError(f"{where}: missing")
        raw = np.asarray(stage_params[f.name])
        if raw.size != f.count:
            raise ParamError(f"{where}: {raw.size} values, expected {f.count}")
        if raw.dtype.kind not in "iub":
            if raw.dtype.kind == "f" and np.all(np.isfinite(raw)) and np.all(raw == np.round(raw)):
                pass  # integral floats are accepted
            else:
                raise ParamError(f"{where}: values must be integers, got dtype {raw.dtype}")
        vals = raw.astype(np.int64).reshape(field_shape(ir, f))
        bad = np.flatnonzero((vals.reshape(-1) < f.fmt.lo) | (vals.reshape(-1) > f.fmt.hi))
        if bad.size:
            j = int(bad[0])
            raise ParamError(f"{where}: value {int(vals.reshape(-1)[j])} at index {j} is outside "
                             f"{f.fmt} [{f.fmt.lo}, {f.fmt.hi}] ({bad.size} values out of range)")
        out.setdefault(f.stage, {})[f.name] = vals
    for stage, fields in params.items():
        extra = set(fields) - expected.get(int(stage), set())
        if extra:
            name = ir.stages[int(stage)].name if 0 <= int(stage) < len(ir.stages) else "?"
            raise ParamError(f"stage {stage} {name!r}: unexpected parameter(s) {sorted(extra)}")
    return out


def encode_params(ir: NetworkIR, params: Mapping[int, Mapping[str, np.ndarray]]) -> np.ndarray:
    """The parameter image as uint32 words: header then payload in ``param_layout`` order."""
    checked = check_params(ir, params)
    words = np.empty(HEADER_WORDS + ir.param_words(), dtype=np.uint32)
    words[0] = PARAM_MAGIC
    words[1] = ir.design_id()
    for f in ir.param_layout():
        if f.fmt.bits > WORD_BITS:
            raise ParamError(f"{_where(ir, f)}: {f.fmt} does not fit a {WORD_BITS}-bit parameter word")
        vals = checked[f.stage][f.name].reshape(-1)
        start = HEADER_WORDS + f.offset
        # two's complement in 32 bits = sign extension of the field's value
        words[start:start + f.count] = (vals & 0xFFFFFFFF).astype(np.uint32)
    return words


def decode_params(ir: NetworkIR, words: np.ndarray | list[int]) -> Params:
    """Parse a parameter image; refuses a wrong magic, design id, length or value."""
    w = np.asarray(words, dtype=np.int64).reshape(-1)
    if w.size and (w.min() < 0 or w.max() > 0xFFFFFFFF):
        raise ParamError("parameter image: words must be 32-bit unsigned values")
    if w.size < HEADER_WORDS:
        raise ParamError(f"parameter image: {w.size} words, too short for the header")
    if int(w[0]) != PARAM_MAGIC:
        raise ParamError(f"parameter image: bad magic 0x{int(w[0]):08x} (expected 0x{PARAM_MAGIC:08x})")
    if int(w[1]) != ir.design_id():
        raise ParamError(f"parameter image: design id 0x{int(w[1]):08x} is not this IR's "
                         f"0x{ir.design_id():08x} (parameters for another design)")
    need = HEADER_WORDS + ir.param_words()
    if w.size != need:
        raise ParamError(f"parameter image: {w.size} words, the IR needs {need}")
    out: Params = {}
    for f in ir.param_layout():
        raw = w[HEADER_WORDS + f.offset:HEADER_WORDS + f.offset + f.count]
        if f.fmt.signed:
            vals = np.where(raw >= (1 << 31), raw - (1 << 32), raw)
        else:
            vals = raw
        bad = np.flatnonzero((vals < f.fmt.lo) | (vals > f.fmt.hi))
        if bad.size:
            j = int(bad[0])
            raise ParamError(f"parameter image: {_where(ir, f)}: word 0x{int(raw[j]):08x} at index {j} "
                             f"is not a {f.fmt} value")
        out.setdefault(f.stage, {})[f.name] = vals.astype(np.int64).reshape(field_shape(ir, f))
    return out
