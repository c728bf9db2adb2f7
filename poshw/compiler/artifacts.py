"""Build directories: write and verify the artifacts of docs/ARTIFACTS.md.

:func:`write_build` writes the IR, every ROM image, the initial contents of every
RAM / synthesised weight memory, the parameter image, optional golden vectors and
extra JSON reports, then ``manifest.json`` last. :func:`load_build` reads a build
back and verifies everything it can without running the network: every file's
sha256 and word count, that every word fits its width, that ``.hex`` and ``.bin``
agree, that each ROM equals what the IR defines, that the parameter image belongs
to this IR and that each weight memory's initial contents equal the weights the
parameters give. Any failure is one :class:`BuildError` naming the file.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .. import PoshwError
from ..fileio import make_dir, sha256_bytes, write_bytes_atomic
from ..fixedpoint.golden import all_weights, golden_forward
from ..ir import Format, Hadamard, IRError, MatVec, NetworkIR, WeightSource
from .params import ParamError, Params, check_params, decode_params, encode_params
from .roms import RomError, lane_pack, lane_unpack, rom_contents, rom_format

BUILD_FORMAT = "poshw.build"
BUILD_VERSION = 1
MANIFEST = "manifest.json"
IR_FILE = "ir.json"
PARAMS_STEM = "params"
GOLDEN_DIR = "golden"

#: the ``kind`` of each manifest entry (docs/ARTIFACTS.md)
KINDS = ("ir", "rom_weights", "weights_init", "basis_rom", "seed_rom", "index_rom", "params", "golden_inputs",
         "golden_logits", "golden_classes", "report")

PACKING_LANES = "lanes"          #: word b*n_in + c holds W[b*lanes + l, c] at bits [l*w, (l+1)*w)
PACKING_ROW_MAJOR = "row-major"  #: one element per word, the array flattened row-major
PACKING_PARAMS = "param-words"   #: one value per 32-bit word, sign/zero-extended


class BuildError(PoshwError):
    """A missing, truncated, corrupt or mismatched build artifact."""


# --- .hex / .bin --------------------------------------------------------------------------

def hex_digits(width: int) -> int:
    return -(-width // 4)


def bin_bytes(width: int) -> int:
    return -(-width // 8)


def to_words(values: np.ndarray, fmt: Format) -> list[int]:
    """Values of ``fmt`` as unsigned words (two's complement masked to ``fmt.bits``)."""
    v = np.asarray(values, dtype=np.int64).reshape(-1)
    if v.size and (v.min() < fmt.lo or v.max() > fmt.hi):
        raise BuildError(f"values outside {fmt}")
    mask = (1 << fmt.bits) - 1
    if fmt.bits >= 64:
        return [int(x) & mask for x in v.tolist()]
    return (v & mask).astype(np.uint64).tolist()


def from_words(words: Sequence[int], fmt: Format) -> np.ndarray:
    """Inverse of :func:`to_words`: int64 values (sign-extended for signed formats)."""
    a = np.array([int(w) for w in words], dtype=object if fmt.bits >= 64 else np.int64)
    if fmt.signed:
        a = np.where(a >= (1 << (fmt.bits - 1)), a - (1 << fmt.bits), a)
    return np.asarray(a, dtype=np.int64)


def _check_word_range(words: Sequence[int], width: int, where: str) -> None:
    limit = 1 << width
    for j, w in enumerate(words):
        if not 0 <= int(w) < limit:
            raise BuildError(f"{where}: word {j} ({w}) does not fit {width} bits")


def hex_bytes(words: Sequence[int], width: int) -> bytes:
    _check_word_range(words, width, "hex")
    d = hex_digits(width)
    return "".join(f"{int(w):0{d}x}\n" for w in words).encode("ascii")


def bin_data(words: Sequence[int], width: int) -> bytes:
    _check_word_range(words, width, "bin")
    nb = bin_bytes(width)
    if nb in (1, 2, 4, 8):
        return np.asarray(words, dtype=np.uint64).astype(f"<u{nb}").tobytes()
    return b"".join(int(w).to_bytes(nb, "little") for w in words)


def write_hex(path: str | Path, words: Sequence[int], width: int) -> None:
    """``$readmemh`` text: one word per line, ``ceil(width/4)`` lowercase digits, nothing else."""
    write_bytes_atomic(path, hex_bytes(words, width))


def write_bin(path: str | Path, words: Sequence[int], width: int) -> None:
    """The same words little-endian, ``ceil(width/8)`` bytes each."""
    write_bytes_atomic(path, bin_data(words, width))


def parse_hex(data: bytes, width: int, where: str, count: int | None = None) -> list[int]:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise BuildError(f"{where}: not an ASCII hex file") from None
    if text and not text.endswith("\n"):
        raise BuildError(f"{where}: truncated (the last line has no newline)")
    lines = text.split("\n")[:-1] if text else []
    d = hex_digits(width)
    limit = 1 << width
    out = []
    for j, line in enumerate(lines):
        if len(line) != d:
            raise BuildError(f"{where}: line {j + 1} has {len(line)} digits, expected {d}")
        try:
            v = int(line, 16)
        except ValueError:
            raise BuildError(f"{where}: line {j + 1} {line!r} is not hex") from None
        if line != line.lower() or v >= limit:
            raise BuildError(f"{where}: line {j + 1} {line!r} is not a lowercase {width}-bit word")
        out.append(v)
    if count is not None and len(out) != count:
        raise BuildError(f"{where}: {len(out)} words, expected {count} (truncated or padded)")
    return out


def parse_bin(data: bytes, width: int, where: str, count: int | None = None) -> list[int]:
    nb = bin_bytes(width)
    if len(data) % nb:
        raise BuildError(f"{where}: {len(data)} bytes is not a whole number of {nb}-byte words")
    n = len(data) // nb
    if count is not None and n != count:
        raise BuildError(f"{where}: {n} words, expected {count} (truncated or padded)")
    if nb in (1, 2, 4, 8):
        words = np.frombuffer(data, dtype=f"<u{nb}").tolist()
    else:
        words = [int.from_bytes(data[j * nb:(j + 1) * nb], "little") for j in range(n)]
    limit = 1 << width
    for j, w in enumerate(words):
        if w >= limit:
            raise BuildError(f"{where}: word {j} does not fit {width} bits")
    return words


def read_hex(path: str | Path, width: int, count: int | None = None) -> list[int]:
    path = Path(path)
    return parse_hex(_read(path), width, path.name, count)


def read_bin(path: str | Path, width: int, count: int | None = None) -> list[int]:
    path = Path(path)
    return parse_bin(_read(path), width, path.name, count)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise BuildError(f"{path}: missing") from None
    except OSError as e:
        raise BuildError(f"{path}: cannot read ({e.strerror})") from None


# --- the build ------------------------------------------------------------------------------

@dataclass
class Golden:
    """Golden vectors: uint8 inputs ``[N, h, w]``, int64 logits ``[N, n]``, int64 classes ``[N]``."""

    inputs: np.ndarray
    logits: np.ndarray
    classes: np.ndarray


@dataclass
class Build:
    """A loaded, verified build directory."""

    path: Path
    ir: NetworkIR
    params: Params
    #: ROM contents, keys ``"s<i>.<rom>"`` (``poshw.compiler.roms.rom_contents``)
    roms: dict[str, np.ndarray]
    #: the parameter image (uint32 words, header included)
    param_words: np.ndarray
    golden: Golden | None
    #: manifest entries (one dict per file)
    files: list[dict[str, Any]]
    #: initial contents of RAM / synthesised weight memories, keys ``"s<i>.weights"``
    weights_init: dict[str, np.ndarray] = field(default_factory=dict)
    #: extra JSON reports by file name (e.g. ``quant.json``)
    extra: dict[str, Any] = field(default_factory=dict)

    def file(self, name: str) -> dict[str, Any]:
        for e in self.files:
            if e["file"] == name:
                return e
        raise KeyError(name)


def _memory_meta(ir: NetworkIR, key: str, shape: Sequence[int], kind: str) -> dict[str, Any]:
    """Manifest fields of one ROM / weight memory of ``shape`` (unpacked)."""
    stage = int(key.split(".")[0][1:])
    fmt, lanes = rom_format(ir, key)
    if key.endswith(".weights"):
        rows, cols = shape
        width, packing, words = lanes * fmt.bits, PACKING_LANES, -(-rows // lanes) * cols
    else:
        width, packing, words = fmt.bits, PACKING_ROW_MAJOR, int(np.prod(shape, dtype=np.int64))
    return {"kind": kind, "memory": key, "stage": stage, "stage_name": ir.stages[stage].name,
            "shape": [int(n) for n in shape], "elem_bits": fmt.bits, "signed": fmt.signed, "lanes": lanes,
            "width": width, "packing": packing, "words": int(words)}


def _memory_entries(ir: NetworkIR, key: str, arr: np.ndarray, kind: str) -> tuple[list[int], dict]:
    """Words and manifest fields of one ROM / weight memory."""
    meta = _memory_meta(ir, key, arr.shape, kind)
    fmt, lanes = rom_format(ir, key)
    words = lane_pack(arr, lanes, fmt.bits) if key.endswith(".weights") else to_words(arr, fmt)
    assert len(words) == meta["words"]
    return words, meta


def _params_meta(ir: NetworkIR) -> dict[str, Any]:
    """Manifest fields of the parameter image."""
    return {"kind": "params", "width": 32, "elem_bits": 32, "signed": False, "lanes": 1,
            "packing": PACKING_PARAMS, "words": 2 + ir.param_words(), "design_id": f"0x{ir.design_id():08x}"}


def _kind_of_rom(key: str) -> str:
    rom = key.split(".", 1)[1]
    for prefix, kind in (("weights", "rom_weights"), ("basis", "basis_rom"), ("seeds", "seed_rom"),
                         ("index", "index_rom")):
        if rom.startswith(prefix):
            return kind
    raise BuildError(f"unknown ROM {key!r}")


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def weight_memories(ir: NetworkIR) -> list[int]:
    """Stages whose weight memory is written at run time (RAM weights or synthesis)."""
    out = []
    for i, st in enumerate(ir.stages):
        if isinstance(st, Hadamard) or (isinstance(st, MatVec) and st.weight_source is not WeightSource.ROM):
            out.append(i)
    return out


def write_build(out_dir: str | Path, ir: NetworkIR, params: Mapping[int, Mapping[str, np.ndarray]],
                golden_inputs: np.ndarray | None = None,
                extra: Mapping[str, Any] | None = None) -> Build:
    """Write a build directory (docs/ARTIFACTS.md); returns it as :func:`load_build` would.

    ``extra`` maps JSON file names (``"quant.json"``) to JSON-serialisable reports.
    """
    out = make_dir(out_dir, "build directory")
    checked = check_params(ir, params)
    param_words = encode_params(ir, checked)
    roms = rom_contents(ir)
    weights, _ = all_weights(ir, roms, checked)
    entries: list[dict[str, Any]] = []

    def put(name: str, data: bytes, meta: dict[str, Any]) -> None:
        _write(out / name, data)
        entries.append({"file": name, **meta, "bytes": len(data), "sha256": sha256_bytes(data)})

    put(IR_FILE, ir.to_json().encode(), {"kind": "ir"})
    memories = [(k, v, _kind_of_rom(k)) for k, v in roms.items()]
    memories += [(f"s{i}.weights", weights[i], "weights_init") for i in weight_memories(ir)]
    for key, arr, kind in memories:
        words, meta = _memory_entries(ir, key, arr, kind)
        put(f"{key}.hex", hex_bytes(words, meta["width"]), {**meta, "format": "hex"})
        put(f"{key}.bin", bin_data(words, meta["width"]), {**meta, "format": "bin"})
    pw = [int(w) for w in param_words.tolist()]
    pmeta = _params_meta(ir)
    put(f"{PARAMS_STEM}.hex", hex_bytes(pw, 32), {**pmeta, "format": "hex"})
    put(f"{PARAMS_STEM}.bin", bin_data(pw, 32), {**pmeta, "format": "bin"})
    if golden_inputs is not None:
        imgs = np.ascontiguousarray(golden_inputs, dtype=np.uint8)
        res = golden_forward(ir, roms, checked, imgs, weights=weights)
        for name, arr in (("inputs", imgs), ("logits", res.logits.astype(np.int64)),
                          ("classes", res.classes.astype(np.int64))):
            put(f"{GOLDEN_DIR}/{name}.npy", _npy_bytes(arr),
                {"kind": f"golden_{name}", "format": "npy", "shape": list(arr.shape), "dtype": arr.dtype.str})
    for name, obj in (extra or {}).items():
        if "/" in name or not name.endswith(".json") or name in (MANIFEST, IR_FILE):
            raise BuildError(f"extra file {name!r} must be a plain *.json name")
        put(name, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode(), {"kind": "report", "format": "json"})
    manifest = {"format": BUILD_FORMAT, "version": BUILD_VERSION, "name": ir.name,
                "design_id": f"0x{ir.design_id():08x}", "files": entries}
    _write(out / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    return load_build(out)


def _write(path: Path, data: bytes) -> None:
    try:
        write_bytes_atomic(path, data)
    except OSError as e:
        raise BuildError(f"{path}: cannot write ({e.strerror})") from None


def _load_manifest(path: Path) -> dict[str, Any]:
    mpath = path / MANIFEST
    data = _read(mpath)
    try:
        m = json.loads(data.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BuildError(f"{mpath}: corrupt manifest ({e})") from None
    if not isinstance(m, dict) or m.get("format") != BUILD_FORMAT or not isinstance(m.get("files"), list):
        raise BuildError(f"{mpath}: not a poshw build manifest")
    if m.get("version") != BUILD_VERSION:
        raise BuildError(f"{mpath}: build version {m.get('version')!r} is not supported ({BUILD_VERSION})")
    for e in m["files"]:
        if not isinstance(e, dict) or not isinstance(e.get("file"), str) or not isinstance(e.get("sha256"), str):
            raise BuildError(f"{mpath}: malformed file entry {e!r}")
        if e.get("kind") not in KINDS:
            raise BuildError(f"{mpath}: file entry {e['file']!r} has unknown kind {e.get('kind')!r}")
        if Path(e["file"]).is_absolute() or ".." in Path(e["file"]).parts or not Path(e["file"]).parts:
            raise BuildError(f"{mpath}: file entry {e['file']!r} leaves the build directory")
    return m


def load_build(path: str | Path) -> Build:
    """Read and verify a build directory; any problem is a :class:`BuildError` naming the file."""
    path = Path(path)
    if not path.is_dir():
        raise BuildError(f"{path}: no build directory here (make one with `poshw export RUN --out {path}`)")
    manifest = _load_manifest(path)
    blobs: dict[str, bytes] = {}
    for e in manifest["files"]:
        data = _read(path / e["file"])
        if sha256_bytes(data) != e["sha256"]:
            raise BuildError(f"{path / e['file']}: checksum mismatch (corrupt, truncated or edited; "
                             f"the manifest expects sha256 {e['sha256'][:16]}...)")
        if e["file"] in blobs:
            raise BuildError(f"{path / MANIFEST}: lists {e['file']} twice")
        blobs[e["file"]] = data
    by_name = {e["file"]: e for e in manifest["files"]}

    def check_entry(name: str, want: dict[str, Any], needs: str = "the IR needs") -> None:
        e = by_name[name]
        for k, v in want.items():
            if e.get(k) != v:
                raise BuildError(f"{path / name}: manifest says {k}={e.get(k)!r}, {needs} {v!r}")

    if IR_FILE not in blobs:
        raise BuildError(f"{path / MANIFEST}: lists no {IR_FILE}")
    check_entry(IR_FILE, {"kind": "ir"}, "expected")
    try:
        ir = NetworkIR.from_json(blobs[IR_FILE].decode())
    except (IRError, UnicodeDecodeError) as e:
        raise BuildError(f"{path / IR_FILE}: {e}") from None
    if manifest.get("design_id") != f"0x{ir.design_id():08x}":
        raise BuildError(f"{path / MANIFEST}: design id {manifest.get('design_id')} does not match "
                         f"{IR_FILE} (0x{ir.design_id():08x})")
    if manifest.get("name") != ir.name:
        raise BuildError(f"{path / MANIFEST}: name {manifest.get('name')!r} does not match {IR_FILE} ({ir.name!r})")

    def words_of(stem: str, meta_check: dict[str, Any]) -> list[int]:
        """Words of ``stem``.hex and ``stem``.bin, checked against each other and the manifest."""
        got = None
        for fmt in ("hex", "bin"):
            name = f"{stem}.{fmt}"
            if name not in by_name:
                raise BuildError(f"{path / MANIFEST}: lists no {name}")
            check_entry(name, {**meta_check, "format": fmt})
            e = by_name[name]
            parse = parse_hex if fmt == "hex" else parse_bin
            words = parse(blobs[name], int(e["width"]), str(path / name), int(e["words"]))
            if got is not None and words != got:
                raise BuildError(f"{path / name}: contents differ from {path / (stem + '.hex')}")
            got = words
        assert got is not None
        return got

    try:
        expected_roms = rom_contents(ir)
    except RomError as e:
        raise BuildError(f"{path / IR_FILE}: {e}") from None
    roms: dict[str, np.ndarray] = {}
    for key, want in expected_roms.items():
        words, meta = _memory_entries(ir, key, want, _kind_of_rom(key))
        got_words = words_of(key, meta)
        if got_words != words:
            raise BuildError(f"{path / (key + '.hex')}: contents differ from the ROM the IR defines")
        roms[key] = want

    pw_list = words_of(PARAMS_STEM, _params_meta(ir))
    pwords = np.array(pw_list, dtype=np.uint32)
    try:
        params = decode_params(ir, pwords)
    except ParamError as e:
        raise BuildError(f"{path / (PARAMS_STEM + '.hex')}: {e}") from None

    weights, _ = all_weights(ir, roms, params)
    init: dict[str, np.ndarray] = {}
    for i in weight_memories(ir):
        key = f"s{i}.weights"
        fmt, lanes = rom_format(ir, key)
        rows, cols = weights[i].shape
        check = _memory_meta(ir, key, (rows, cols), "weights_init")
        got = lane_unpack(words_of(key, check), rows, cols, lanes, fmt.bits, signed=True)
        if not np.array_equal(got, weights[i]):
            raise BuildError(f"{path / (key + '.hex')}: initial weights differ from those the "
                             f"parameters give (stale or edited)")
        init[key] = got

    golden = None
    gnames = [f"{GOLDEN_DIR}/{n}.npy" for n in ("inputs", "logits", "classes")]
    present = [n in blobs for n in gnames]
    if any(present):
        if not all(present):
            raise BuildError(f"{path / GOLDEN_DIR}: incomplete golden vectors (need inputs, logits, classes)")
        arrs = []
        for n in gnames:
            buf = io.BytesIO(blobs[n])
            try:
                a = np.load(buf, allow_pickle=False)
            except (ValueError, OSError, EOFError) as e:
                raise BuildError(f"{path / n}: not a readable .npy ({e})") from None
            if not isinstance(a, np.ndarray) or buf.tell() != len(blobs[n]):
                raise BuildError(f"{path / n}: not a single .npy array (trailing data)")
            check_entry(n, {"kind": f"golden_{Path(n).stem}", "format": "npy", "shape": list(a.shape),
                            "dtype": a.dtype.str}, "the file holds")
            arrs.append(a)
        inputs, logits, classes = arrs
        n_img = inputs.shape[0] if inputs.ndim else -1
        if (inputs.dtype != np.uint8 or inputs.ndim != 3 or tuple(inputs.shape[1:]) != ir.input_shape):
            raise BuildError(f"{path / gnames[0]}: expected uint8 [N, {ir.input_shape[0]}, "
                             f"{ir.input_shape[1]}], got {inputs.dtype} {inputs.shape}")
        n_cls = ir.stages[-1].n_inputs
        if logits.dtype != np.int64 or logits.shape != (n_img, n_cls):
            raise BuildError(f"{path / gnames[1]}: expected int64 [{n_img}, {n_cls}], got {logits.dtype} {logits.shape}")
        if classes.dtype != np.int64 or classes.shape != (n_img,):
            raise BuildError(f"{path / gnames[2]}: expected int64 [{n_img}], got {classes.dtype} {classes.shape}")
        golden = Golden(inputs, logits, classes)

    for e in manifest["files"]:  # last: the contents' own checks name the problem better
        if e.get("bytes") != len(blobs[e["file"]]):
            raise BuildError(f"{path / MANIFEST}: says {e['file']} has {e.get('bytes')!r} bytes, "
                             f"it has {len(blobs[e['file']])}")
    extra: dict[str, Any] = {}
    for e in manifest["files"]:
        if e.get("kind") == "report":
            check_entry(e["file"], {"format": "json"}, "expected")
            try:
                extra[e["file"]] = json.loads(blobs[e["file"]].decode())
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise BuildError(f"{path / e['file']}: not valid JSON ({err})") from None
    return Build(path=path, ir=ir, params=params, roms=roms, param_words=pwords, golden=golden,
                 files=list(manifest["files"]), weights_init=init, extra=extra)
