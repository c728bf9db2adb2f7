"""ROM contents as a function of the IR alone, and the lane packing of weight memories.

The IR fully determines every ROM, so :meth:`NetworkIR.design_id` covers them:

* a matvec with ``weight_source = "rom"`` names its matrix in ``rom_origin`` with the
  grammar below;
* a basis group with ``source = "rom"`` stores ``basis_stack`` / ``rank1_vectors`` of
  its ``(family, seed, path, count)``; with ``source = "generator"`` its seed ROM holds
  ``stream_seeds(seed, path, count)``;
* a gather stage's index ROM is the first ``n_out`` entries (``"prefix"``) or
  ``permutation_prefix(seed, path, n_in, n_out)`` (``"permutation"``).

``rom_origin`` grammar (docs/ARTIFACTS.md)::

    origin  := kind ":" item ("," item)*
    item    := key "=" value                       (keys in any order, no spaces)
    dct     : h=H,w=W,m=M,frac_bits=F[,channels=C]
              block-diagonal, C copies of dct2_int(H, W, M, F)         (C*M x C*H*W)
    gauss   : seed=S,path=P0.P1...,rows=R,cols=K[,channels=C]
              block-diagonal, C copies of basis_stack(gauss, S, P, 1, R*K).reshape(R, K)

Keys are required unless in brackets (default ``channels=1``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .. import PoshwError
from ..bases import Family, basis_stack, dct2_int, permutation_prefix, rank1_vectors, stream_seeds
from ..ir import BasisSource, Format, Gather, MatVec, NetworkIR, WeightSource


class RomError(PoshwError, ValueError):
    """An IR whose ROM description is malformed or does not match its shapes."""


@dataclass(frozen=True)
class RomOrigin:
    """A parsed ``rom_origin``: ``kind`` and integer / path fields."""

    kind: str
    fields: tuple[tuple[str, object], ...]

    def get(self, key: str, default: object = None) -> object:
        return dict(self.fields).get(key, default)

    def __str__(self) -> str:
        return format_rom_origin(self.kind, **dict(self.fields))


_REQUIRED = {"dct": ("h", "w", "m", "frac_bits"), "gauss": ("seed", "path", "rows", "cols")}
_OPTIONAL = {"dct": ("channels",), "gauss": ("channels",)}


def format_rom_origin(kind: str, **fields: object) -> str:
    """The canonical text of a ROM origin (``path`` tuples are dot-joined)."""
    parts = []
    for k, v in fields.items():
        if isinstance(v, (tuple, list)):
            v = ".".join(str(int(p)) for p in v)
        parts.append(f"{k}={v}")
    return f"{kind}:{','.join(parts)}"


def parse_rom_origin(text: str, where: str = "rom_origin") -> RomOrigin:
    kind, colon, rest = text.partition(":")
    if not colon or kind not in _REQUIRED:
        raise RomError(f"{where}: {text!r} is not a ROM origin; expected "
                       f"'dct:h=..,w=..,m=..,frac_bits=..' or 'gauss:seed=..,path=..,rows=..,cols=..'")
    fields: dict[str, object] = {}
    for item in rest.split(","):
        key, eq, value = item.partition("=")
        allowed = _REQUIRED[kind] + _OPTIONAL[kind]
        if not eq or key not in allowed or key in fields:
            raise RomError(f"{where}: bad item {item!r} in {text!r} (keys: {', '.join(allowed)})")
        try:
            if key == "path":
                fields[key] = tuple(int(p) for p in value.split(".")) if value else ()
                if any(p < 0 for p in fields[key]):  # type: ignore[union-attr]
                    raise ValueError
            else:
                fields[key] = int(value)
                if fields[key] < 0:  # type: ignore[operator]
                    raise ValueError
        except ValueError:
            raise RomError(f"{where}: {key}={value!r} is not a non-negative integer in {text!r}") from None
    missing = [k for k in _REQUIRED[kind] if k not in fields]
    if missing:
        raise RomError(f"{where}: {text!r} lacks {', '.join(missing)}")
    fields.setdefault("channels", 1)
    return RomOrigin(kind, tuple(fields.items()))


def _block_diag(block: np.ndarray, channels: int) -> np.ndarray:
    r, c = block.shape
    out = np.zeros((channels * r, channels * c), dtype=np.int64)
    for ch in range(channels):
        out[ch * r:(ch + 1) * r, ch * c:(ch + 1) * c] = block
    return out


def rom_matrix(stage: MatVec) -> np.ndarray:
    """The ``[n_out, n_in]`` integer matrix of a ROM-weight matvec, from ``rom_origin``."""
    where = f"stage {stage.name!r}"
    o = parse_rom_origin(stage.rom_origin, f"{where} rom_origin")
    ch = int(o.get("channels"))  # type: ignore[arg-type]
    if ch < 1:
        raise RomError(f"{where}: channels must be >= 1 in {stage.rom_origin!r}")
    try:
        if o.kind == "dct":
            block = dct2_int(int(o.get("h")), int(o.get("w")), int(o.get("m")),  # type: ignore[arg-type]
                             int(o.get("frac_bits")))  # type: ignore[arg-type]
        else:
            rows, cols = int(o.get("rows")), int(o.get("cols"))  # type: ignore[arg-type]
            if rows < 1 or cols < 1:
                raise ValueError("rows and cols must be >= 1")
            block = basis_stack(Family.GAUSS, int(o.get("seed")), o.get("path"),  # type: ignore[arg-type]
                                1, rows * cols).reshape(rows, cols)
    except ValueError as e:
        raise RomError(f"{where}: {stage.rom_origin!r}: {e}") from None
    mat = _block_diag(block.astype(np.int64), ch)
    if mat.shape != (stage.n_out, stage.n_in):
        raise RomError(f"{where}: {stage.rom_origin!r} makes a {mat.shape[0]}x{mat.shape[1]} matrix, "
                       f"the stage is {stage.n_out}x{stage.n_in}")
    if mat.min() < stage.weight_fmt.lo or mat.max() > stage.weight_fmt.hi:
        raise RomError(f"{where}: ROM values [{mat.min()}, {mat.max()}] do not fit {stage.weight_fmt}")
    return mat


def gather_index(stage: Gather) -> np.ndarray:
    """The gather index ROM: ``n_out`` int64 values in ``0..n_in-1``."""
    if stage.index_origin == "prefix":
        return np.arange(stage.n_out, dtype=np.int64)
    return permutation_prefix(stage.seed, tuple(stage.path), stage.n_in, stage.n_out)


def index_format(stage: Gather) -> Format:
    """Width of an index ROM word (as in ``NetworkIR.estimates``)."""
    return Format(max(1, (stage.n_in - 1).bit_length()), False)


def rom_contents(ir: NetworkIR) -> dict[str, np.ndarray]:
    """Every ROM of the design as int64 arrays, keyed ``"s<i>.<rom>"``.

    * ``s<i>.weights``: ROM matvec weights ``[n_out, n_in]``;
    * ``s<i>.basis<g>``: basis ROM ``[count, rows*cols]`` (rank-1: ``[count, rows+cols]``, u then v);
    * ``s<i>.seeds<g>``: ``[count]`` xorshift32 seed states (0..2**32-1);
    * ``s<i>.index``: gather indices ``[n_out]``.
    """
    out: dict[str, np.ndarray] = {}
    for i, st in enumerate(ir.stages):
        if isinstance(st, MatVec) and st.weight_source is WeightSource.ROM:
            out[f"s{i}.weights"] = rom_matrix(st)
        if isinstance(st, Gather):
            out[f"s{i}.index"] = gather_index(st)
        synth = getattr(st, "synth", None)
        if synth is None:
            continue
        for g, grp in enumerate(synth.groups):
            if grp.source is BasisSource.GENERATOR:
                out[f"s{i}.seeds{g}"] = stream_seeds(grp.seed, tuple(grp.path), grp.count).astype(np.int64)
            elif grp.family is Family.RANK1:
                u, v = rank1_vectors(grp.seed, tuple(grp.path), grp.count, synth.rows, synth.cols)
                out[f"s{i}.basis{g}"] = np.concatenate([u, v], axis=1).astype(np.int64)
            else:
                out[f"s{i}.basis{g}"] = basis_stack(grp.family, grp.seed, tuple(grp.path), grp.count,
                                                    synth.entries).astype(np.int64)
    return out


def rom_format(ir: NetworkIR, key: str) -> tuple[Format, int]:
    """``(element format, lanes)`` of ROM ``key`` ("s<i>.<rom>")."""
    stage_part, _, rom = key.partition(".")
    st = ir.stages[int(stage_part[1:])]
    if rom == "weights":
        lanes = st.lanes if isinstance(st, MatVec) else 1
        return st.weight_fmt, lanes
    if rom == "index":
        return index_format(st), 1  # type: ignore[arg-type]
    if rom.startswith("seeds"):
        return Format(32, False), 1
    if rom.startswith("basis"):
        grp = st.synth.groups[int(rom[5:])]  # type: ignore[union-attr]
        fam = Family.GAUSS if grp.family is Family.RANK1 else grp.family  # u, v entries are gauss
        return Format(fam.entry_bits, True), 1
    raise RomError(f"unknown ROM {key!r}")


# --- lane packing -----------------------------------------------------------------------------

def lane_pack(matrix: np.ndarray, lanes: int, bits: int) -> list[int]:
    """Pack ``W [n_out, n_in]`` into ``ceil(n_out/lanes) * n_in`` words of ``lanes * bits`` bits.

    Word ``b * n_in + c`` holds ``W[b*lanes + l, c]`` at bits ``[l*bits, (l+1)*bits)``
    (two's complement masked to ``bits``; 0 beyond ``n_out``), docs/MICROARCHITECTURE.md.
    """
    m = np.asarray(matrix, dtype=np.int64)
    if m.ndim != 2:
        raise RomError(f"lane_pack needs a matrix, got shape {m.shape}")
    if lanes < 1 or bits < 1 or bits > 64:
        raise RomError(f"lane_pack: bad lanes={lanes} or bits={bits}")
    n_out, n_in = m.shape
    blocks = -(-n_out // lanes)
    padded = np.zeros((blocks * lanes, n_in), dtype=np.int64)
    padded[:n_out] = m
    mask = (1 << bits) - 1
    # lane-major view: lanes_arr[l] = rows b*lanes + l, words in (b, c) order
    per_lane = padded.reshape(blocks, lanes, n_in).transpose(1, 0, 2).reshape(lanes, -1)
    per_lane = (per_lane.astype(np.uint64) & np.uint64(mask)) if bits < 64 else per_lane.astype(np.uint64)
    if lanes * bits <= 64:  # whole words fit uint64: vectorised
        words = np.zeros(per_lane.shape[1], dtype=np.uint64)
        for lane in range(lanes):
            words |= per_lane[lane] << np.uint64(lane * bits)
        return [int(w) for w in words.tolist()]
    out = [0] * per_lane.shape[1]
    cols = [per_lane[lane].tolist() for lane in range(lanes)]
    for j in range(per_lane.shape[1]):
        w = 0
        for lane in range(lanes - 1, -1, -1):
            w = (w << bits) | cols[lane][j]
        out[j] = w
    return out


def lane_unpack(words: Sequence[int], n_out: int, n_in: int, lanes: int, bits: int,
                signed: bool = True) -> np.ndarray:
    """Inverse of :func:`lane_pack`: the int64 ``[n_out, n_in]`` matrix (sign-extended)."""
    blocks = -(-n_out // lanes)
    if len(words) != blocks * n_in:
        raise RomError(f"lane_unpack: {len(words)} words, expected {blocks * n_in}")
    mask = (1 << bits) - 1
    if lanes * bits <= 64:
        arr = np.array(words, dtype=np.uint64)
        per_lane = np.stack([(arr >> np.uint64(lane * bits)) & np.uint64(mask) for lane in range(lanes)])
    else:
        per_lane = np.array([[(w >> (lane * bits)) & mask for w in words] for lane in range(lanes)],
                            dtype=np.uint64)
    vals = per_lane.astype(np.int64) if bits < 64 else per_lane.view(np.int64)
    if signed and bits < 64:
        vals = np.where(vals >= (1 << (bits - 1)), vals - (1 << bits), vals)
    full = vals.reshape(lanes, blocks, n_in).transpose(1, 0, 2).reshape(blocks * lanes, n_in)
    return np.ascontiguousarray(full[:n_out])
