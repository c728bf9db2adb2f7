"""MNIST and Fashion-MNIST: find, verify and load the original idx files.

The datasets are read from the original idx files (gzip or already decompressed)
and never from a hard-coded path. :func:`find_dataset_dir` searches, in order:

1. the ``data_dir`` argument (the CLI's ``--data-dir``),
2. the ``POSHW_DATA`` environment variable,
3. Debian's dataset directory, ``/usr/share/datasets/<name>``
   (package ``dataset-fashion-mnist``, for example),
4. the user cache, ``$XDG_CACHE_HOME/poshw/datasets/<name>``
   (``~/.cache/poshw/datasets/<name>`` when ``XDG_CACHE_HOME`` is unset),
   which is also where ``download=True`` puts the files.

The first two may hold the four files directly or in a ``<name>/`` subfolder, so
one ``POSHW_DATA`` can serve both datasets.

Every file is checked against the published distribution before use: a ``.gz``
by the MD5 of the file, a decompressed file by its idx header (magic number,
dimensions, exact length, label range) and then by the MD5 of its content. A
missing, truncated or corrupt file is one :class:`~poshw.PoshwError` that names
the file and says what was expected.

Pixel convention, used across the whole project: images are ``uint8`` in
``[0, 255]``; the float model sees ``pixel / 255`` (:func:`to_float`) and the
hardware sees the ``uint8`` pixel itself.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import logging
import os
import pathlib
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from poshw import PoshwError

__all__ = [
    "CLASS_NAMES",
    "DATASETS",
    "ENV_VAR",
    "SPLITS",
    "Dataset",
    "clear_cache",
    "find_dataset_dir",
    "load_dataset",
    "load_split",
    "subset",
    "to_float",
]

log = logging.getLogger(__name__)

DATASETS = ("mnist", "fashion-mnist")
SPLITS = ("train", "test")

#: Environment variable naming a data directory (files directly or in ``<name>/``).
ENV_VAR = "POSHW_DATA"
#: Where Debian's ``dataset-*`` packages install; module-level so tests can redirect it.
DEBIAN_DATASETS_DIR = pathlib.Path("/usr/share/datasets")

CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion-mnist": (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
}

NUM_CLASSES = 10
ROWS = COLS = 28
IMAGES_MAGIC = 2051  # idx: 0x00 0x00, type 0x08 (ubyte), 3 dimensions
LABELS_MAGIC = 2049  # idx: 0x00 0x00, type 0x08 (ubyte), 1 dimension
IMAGES_HEADER = 16   # magic, count, rows, cols: four big-endian uint32
LABELS_HEADER = 8    # magic, count

# File stem per split: the original names, "t10k" for the test split.
_PREFIX = {"train": "train", "test": "t10k"}
_COUNT = {"train": 60_000, "test": 10_000}

# Public mirrors, tried in order. The MD5 check makes any mirror as good as another.
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}
DOWNLOAD_TIMEOUT_S = 60.0


class _Known(NamedTuple):
    gz_md5: str    # published MD5 of the .gz file
    gz_size: int
    raw_md5: str   # MD5 of the decompressed content (computed from the published .gz)
    raw_size: int


# Keyed by (dataset, file stem). The .gz MD5s are the published ones; the raw MD5s
# are those of their decompressed content, so decompressed copies (and .gz files
# recompressed by a packager) are held to the same standard.
_KNOWN: dict[tuple[str, str], _Known] = {
    ("mnist", "train-images-idx3-ubyte"): _Known(
        "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422, "6bbc9ace898e44ae57da46a324031adb", 47040016),
    ("mnist", "train-labels-idx1-ubyte"): _Known(
        "d53e105ee54ea40749a09fcbcd1e9432", 28881, "a25bea736e30d166cdddb491f175f624", 60008),
    ("mnist", "t10k-images-idx3-ubyte"): _Known(
        "9fb629c4189551a2d022fa330f9573f3", 1648877, "2646ac647ad5339dbf082846283269ea", 7840016),
    ("mnist", "t10k-labels-idx1-ubyte"): _Known(
        "ec29112dd5afa0611ce80d1b7f02629c", 4542, "27ae3e4e09519cfbb04c329615203637", 10008),
    ("fashion-mnist", "train-images-idx3-ubyte"): _Known(
        "cf8536b0aa1a6ac5fa3f23001093305c", 26421856, "f4a8712d7a061bf5bd6d2ca38dc4d50a", 47040016),
    ("fashion-mnist", "train-labels-idx1-ubyte"): _Known(
        "10bea18fdb374794d4bb42e356e600c9", 29491, "9018921c3c673c538a1fc5bad174d6f9", 60008),
    ("fashion-mnist", "t10k-images-idx3-ubyte"): _Known(
        "f78720b4224f21cce2f2ccf2d7a94c9a", 4422079, "8181f5470baa50b63fa0f6fddb340f0a", 7840016),
    ("fashion-mnist", "t10k-labels-idx1-ubyte"): _Known(
        "0d30e22e447f3c33dab9ed536400ac01", 5125, "15d484375f8d13e6eb1aabb0c3f46965", 10008),
}

# MD5 -> which known file it is, to explain "you pointed fashion-mnist at the MNIST files".
_MD5_OWNER: dict[str, str] = {}
for (_ds, _stem), _k in _KNOWN.items():
    _MD5_OWNER[_k.gz_md5] = f"{_ds} {_stem}.gz"
    _MD5_OWNER[_k.raw_md5] = f"{_ds} {_stem}"


# --------------------------------------------------------------------------- names


def _check_name(name: str) -> str:
    """Return the canonical dataset name, or raise PoshwError listing the choices."""
    canon = str(name).strip().lower().replace("_", "-")
    if canon == "fashionmnist":
        canon = "fashion-mnist"
    if canon not in DATASETS:
        raise PoshwError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return canon


def _check_split(split: str) -> str:
    canon = str(split).strip().lower()
    if canon not in SPLITS:
        raise PoshwError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    return canon


def _stems(split: str) -> tuple[str, str]:
    """(images stem, labels stem) of a split, e.g. ('t10k-images-idx3-ubyte', ...)."""
    p = _PREFIX[split]
    return f"{p}-images-idx3-ubyte", f"{p}-labels-idx1-ubyte"


_ALL_STEMS = tuple(s for split in SPLITS for s in _stems(split))


def _variants(stem: str) -> tuple[str, ...]:
    """File names accepted for one stem, preferred first.

    The .gz comes first because its MD5 is the published one. Decompressed copies
    exist under the original name and, from old archives, with a dot before 'idx'.
    """
    dotted = stem.replace("-idx", ".idx")
    return (f"{stem}.gz", stem, f"{dotted}.gz", dotted)


def _find_file(directory: pathlib.Path, stem: str) -> pathlib.Path | None:
    for fname in _variants(stem):
        path = directory / fname
        if path.is_file():
            return path
    return None


# --------------------------------------------------------------------------- search


def _cache_root() -> pathlib.Path:
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says relative values are invalid and must be ignored.
    base = pathlib.Path(xdg) if xdg and os.path.isabs(xdg) else pathlib.Path.home() / ".cache"
    return base / "poshw" / "datasets"


def _candidates(name: str, data_dir: str | os.PathLike | None) -> list[tuple[pathlib.Path, str]]:
    """Directories to search, in order, each with where it came from (for messages)."""
    out: list[tuple[pathlib.Path, str]] = []
    env = os.environ.get(ENV_VAR, "")
    for base, origin in ((data_dir, "data_dir argument"), (env or None, f"${ENV_VAR}")):
        if base is None:
            continue
        base = pathlib.Path(base).expanduser()
        # A shared data dir holds <name>/ subfolders; a dataset dir holds the files.
        out.append((base / name, origin))
        out.append((base, origin))
    out.append((DEBIAN_DATASETS_DIR / name, "Debian dataset dir"))
    out.append((_cache_root() / name, "user cache"))
    return out


def find_dataset_dir(
    name: str, data_dir: str | os.PathLike | None = None, download: bool = False
) -> pathlib.Path:
    """Return the directory that holds all four idx files of dataset ``name``.

    Searches the ``data_dir`` argument, then ``$POSHW_DATA`` (each either holding
    the files or a ``<name>/`` subfolder), then ``/usr/share/datasets/<name>``,
    then the user cache. The first directory with all four files (``.gz`` or
    decompressed) wins. Files are not verified here; :func:`load_split` does that.

    With ``download=True`` and nothing found, the files are downloaded into the
    user cache (MD5-checked, written atomically) and that directory is returned.

    Raises:
        PoshwError: unknown name; or nothing found (the message lists every place
            searched and how to fix it); or the download failed.
    """
    name = _check_name(name)
    searched: list[str] = []
    if data_dir is None:
        searched.append("  (no data_dir argument / --data-dir given)")
    if not os.environ.get(ENV_VAR):
        searched.append(f"  (${ENV_VAR} not set)")
    for directory, origin in _candidates(name, data_dir):
        if not directory.is_dir():
            searched.append(f"  {directory}  ({origin}: no such directory)")
            continue
        missing = [s for s in _ALL_STEMS if _find_file(directory, s) is None]
        if not missing:
            return directory.resolve()
        if len(missing) == len(_ALL_STEMS):
            searched.append(f"  {directory}  ({origin}: no {name} files)")
        else:
            # Name the absent files: a half-copied directory should not look empty.
            searched.append(
                f"  {directory}  ({origin}: incomplete, missing "
                + ", ".join(f"{s}[.gz]" for s in missing)
                + ")"
            )
    if download:
        return _download(name, _cache_root() / name)
    raise PoshwError(
        f"dataset {name!r} not found. Searched, in order:\n"
        + "\n".join(searched)
        + f"\nEach place needs the four files {', '.join(s + '.gz' for s in _ALL_STEMS)}"
        " (gzip or decompressed), directly or in a '" + name + "/' subfolder.\n"
        f"Fix: set {ENV_VAR}=/path/to/data or pass --data-dir /path/to/data "
        f"or let poshw download them into {_cache_root() / name}."
    )


# --------------------------------------------------------------------------- download


def _download(name: str, dest: pathlib.Path) -> pathlib.Path:
    """Fetch the missing files of ``name`` into ``dest``; return ``dest`` resolved."""
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PoshwError(f"cannot create the dataset cache directory {dest}: {e}") from e
    for stem in _ALL_STEMS:
        if _find_file(dest, stem) is not None:
            continue  # left by an earlier, partly finished download; load_split verifies it
        known = _KNOWN[(name, stem)]
        fname = f"{stem}.gz"
        errors: list[str] = []
        for mirror in MIRRORS[name]:
            url = mirror + fname
            try:
                _fetch(url, dest / fname, known.gz_md5)
                break
            # URLError and timeouts are OSErrors; IncompleteRead is an HTTPException.
            except (OSError, ValueError, http.client.HTTPException) as e:
                errors.append(f"  {url}: {e}")
        else:
            raise PoshwError(
                f"could not download {name} file {fname} into {dest}:\n"
                + "\n".join(errors)
                + f"\nWithout network access, copy the files there yourself or set {ENV_VAR}."
            )
    return dest.resolve()


def _fetch(url: str, target: pathlib.Path, md5: str) -> None:
    """Download ``url`` to ``target`` only if its MD5 is ``md5``.

    Written to a temporary file in the same directory and moved into place with
    os.replace, so an interrupted or bad download never leaves a file under the
    final name (a later search would otherwise find it and fail to load).
    """
    log.info("downloading %s", url)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        digest = hashlib.md5()
        size = 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
            while chunk := resp.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
        if digest.hexdigest() != md5:
            raise ValueError(
                f"MD5 mismatch after download: expected {md5}, got {digest.hexdigest()} ({size} bytes)"
            )
        os.replace(tmp_name, target)
    except BaseException:
        # Any failure, including Ctrl-C, removes the partial file.
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise


# --------------------------------------------------------------------------- parsing


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _owner_hint(md5: str, expected_owner: str) -> str:
    owner = _MD5_OWNER.get(md5)
    if owner is None or owner == expected_owner:
        return ""
    return f" This is the {owner} file; the data directory points at the wrong dataset or split."


def _read_idx_bytes(path: pathlib.Path, name: str, stem: str) -> tuple[bytes, bool]:
    """Return (decompressed bytes, content_verified) of one file.

    A .gz must match the published MD5 (or decompress to the known content, so a
    packager's recompression is accepted); a decompressed file is returned as is,
    to be checked structurally and then by content MD5 by the caller.
    """
    known = _KNOWN[(name, stem)]
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PoshwError(f"cannot read {path}: {e.strerror or e}") from e
    if path.suffix != ".gz":
        return data, False
    actual = _md5(data)
    if actual == known.gz_md5:
        return gzip.decompress(data), True
    try:
        raw = gzip.decompress(data)
    except (OSError, EOFError, zlib.error):
        raw = None
    if raw is not None and _md5(raw) == known.raw_md5:
        return raw, True
    hint = _owner_hint(actual, f"{name} {stem}.gz")
    if hint or len(data) == known.gz_size:
        size_note = ""
    elif len(data) < known.gz_size:
        size_note = f"; it is {len(data)} bytes, expected {known.gz_size} (truncated: an incomplete download or copy?)"
    else:
        size_note = f"; it is {len(data)} bytes, expected {known.gz_size}"
    raise PoshwError(
        f"corrupt {name} file {path}: MD5 mismatch, expected {known.gz_md5}, got {actual}{size_note}."
        + hint
        + " Replace it with the original file (a downloaded one: delete it and download again)."
    )


def _parse_images(raw: bytes, path: pathlib.Path) -> np.ndarray:
    """Check an idx3 image file's header and length; return a read-only [N, 28, 28] view."""
    if len(raw) < IMAGES_HEADER:
        raise PoshwError(
            f"{path}: too short for an idx image file: {len(raw)} bytes, expected at least {IMAGES_HEADER}"
        )
    magic, n, rows, cols = (int.from_bytes(raw[i : i + 4], "big") for i in range(0, 16, 4))
    if magic != IMAGES_MAGIC:
        hint = " (that is a label file's magic number)" if magic == LABELS_MAGIC else ""
        raise PoshwError(
            f"{path}: not an idx image file: magic number {magic}, expected {IMAGES_MAGIC}{hint}"
        )
    if (rows, cols) != (ROWS, COLS):
        raise PoshwError(f"{path}: images are {rows}x{cols}, expected {ROWS}x{COLS}")
    expected = IMAGES_HEADER + n * ROWS * COLS
    if len(raw) != expected:
        raise PoshwError(
            f"{path}: wrong length: header says {n} images of {rows}x{cols}, i.e. {expected} bytes, "
            f"but the file has {len(raw)} bytes"
        )
    # frombuffer over immutable bytes: the array cannot be made writeable, so the
    # in-process cache cannot be corrupted by a caller.
    return np.frombuffer(raw, dtype=np.uint8, offset=IMAGES_HEADER).reshape(n, ROWS, COLS)


def _parse_labels(raw: bytes, path: pathlib.Path) -> np.ndarray:
    """Check an idx1 label file's header, length and values; return a read-only [N] view."""
    if len(raw) < LABELS_HEADER:
        raise PoshwError(
            f"{path}: too short for an idx label file: {len(raw)} bytes, expected at least {LABELS_HEADER}"
        )
    magic, n = (int.from_bytes(raw[i : i + 4], "big") for i in range(0, 8, 4))
    if magic != LABELS_MAGIC:
        hint = " (that is an image file's magic number)" if magic == IMAGES_MAGIC else ""
        raise PoshwError(
            f"{path}: not an idx label file: magic number {magic}, expected {LABELS_MAGIC}{hint}"
        )
    expected = LABELS_HEADER + n
    if len(raw) != expected:
        raise PoshwError(
            f"{path}: wrong length: header says {n} labels, i.e. {expected} bytes, "
            f"but the file has {len(raw)} bytes"
        )
    labels = np.frombuffer(raw, dtype=np.uint8, offset=LABELS_HEADER)
    if labels.size and int(labels.max()) >= NUM_CLASSES:
        bad = int(np.argmax(labels >= NUM_CLASSES))
        raise PoshwError(
            f"{path}: label {int(labels[bad])} at index {bad} is out of range; "
            f"expected values 0..{NUM_CLASSES - 1}"
        )
    return labels


@functools.lru_cache(maxsize=8)
def _load_files(
    name: str,
    split: str,
    images_path: pathlib.Path,
    labels_path: pathlib.Path,
    _stamp: tuple[int, int, int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Load and verify one split. Cached on the resolved paths plus size and mtime
    (``_stamp``), so repeated loads are free and a replaced file is re-read."""
    images_stem, labels_stem = _stems(split)
    raw_images, images_ok = _read_idx_bytes(images_path, name, images_stem)
    raw_labels, labels_ok = _read_idx_bytes(labels_path, name, labels_stem)
    images = _parse_images(raw_images, images_path)
    labels = _parse_labels(raw_labels, labels_path)
    if len(images) != len(labels):
        raise PoshwError(
            f"{name} {split}: {images_path} has {len(images)} images but "
            f"{labels_path} has {len(labels)} labels; the counts must agree"
        )
    if len(images) != _COUNT[split]:
        raise PoshwError(
            f"{name} {split}: {images_path} has {len(images)} images, "
            f"expected {_COUNT[split]} (not the original {name} {split} files)"
        )
    # Decompressed files carry no published checksum; their content must still be
    # the original one, since a flipped pixel passes every structural check.
    for raw, ok, path, stem in (
        (raw_images, images_ok, images_path, images_stem),
        (raw_labels, labels_ok, labels_path, labels_stem),
    ):
        if ok:
            continue
        expected, actual = _KNOWN[(name, stem)].raw_md5, _md5(raw)
        if actual != expected:
            raise PoshwError(
                f"corrupt {name} file {path}: content MD5 mismatch, expected {expected}, got {actual} "
                "(a well-formed idx file, but not the original data)."
                + _owner_hint(actual, f"{name} {stem}")
                + " Replace it with the original file."
            )
    return images, labels


def clear_cache() -> None:
    """Forget the arrays loaded so far (frees their memory)."""
    _load_files.cache_clear()


def load_split(
    name: str, split: str, data_dir: str | os.PathLike | None = None, *, download: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of a dataset, verified against the published files.

    Args:
        name: ``"mnist"`` or ``"fashion-mnist"``.
        split: ``"train"`` (60,000 examples) or ``"test"`` (10,000).
        data_dir: where to look first; see :func:`find_dataset_dir`.
        download: fetch into the user cache when not found anywhere.

    Returns:
        ``(images, labels)``: ``uint8 [N, 28, 28]`` pixels 0..255 and ``uint8 [N]``
        labels 0..9. Both are read-only (they are shared by every caller through
        the in-process cache); use ``np.array(x)`` for a writeable copy, or
        :func:`to_float` for the model's input.

    Raises:
        PoshwError: unknown name or split, dataset not found, or a file that is
            truncated, corrupt or not the original.
    """
    name = _check_name(name)
    split = _check_split(split)
    directory = find_dataset_dir(name, data_dir, download=download)
    paths = []
    for stem in _stems(split):
        path = _find_file(directory, stem)
        if path is None:  # removed since the search
            raise PoshwError(f"{directory}: missing {stem}.gz (or decompressed {stem})")
        paths.append(path.resolve())
    try:
        stats = [p.stat() for p in paths]
    except OSError as e:
        raise PoshwError(f"cannot read {e.filename}: {e.strerror}") from e
    stamp = (stats[0].st_size, stats[0].st_mtime_ns, stats[1].st_size, stats[1].st_mtime_ns)
    images, labels = _load_files(name, split, paths[0], paths[1], stamp)
    # New view objects: a caller's reshape or flag change cannot touch the cached ones.
    return images.view(), labels.view()


@dataclass(frozen=True, eq=False)  # eq on arrays is ambiguous; compare fields explicitly
class Dataset:
    """Both splits of one dataset; arrays as returned by :func:`load_split`."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray

    @property
    def class_names(self) -> tuple[str, ...]:
        return CLASS_NAMES[self.name]


def load_dataset(
    name: str, data_dir: str | os.PathLike | None = None, *, download: bool = False
) -> Dataset:
    """Load the train and test splits of ``name``; see :func:`load_split`."""
    name = _check_name(name)
    train = load_split(name, "train", data_dir, download=download)
    test = load_split(name, "test", data_dir, download=download)
    return Dataset(name, train[0], train[1], test[0], test[1])


# --------------------------------------------------------------------------- helpers


def subset(
    images: np.ndarray, labels: np.ndarray, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic random subset of ``n`` examples, balanced across classes.

    Each class contributes ``n // k`` examples (``k`` classes present) and the
    remainder goes to randomly chosen classes; a class with too few examples
    gives all it has and the others make up the difference. The same ``seed``
    always picks the same examples; they are returned in their original order.

    Raises:
        PoshwError: ``n`` is not an integer in ``0..len(labels)``.
        ValueError: ``images`` and ``labels`` differ in length.
    """
    labels = np.asarray(labels)
    total = len(labels)
    if len(images) != total:
        raise ValueError(f"subset: {len(images)} images but {total} labels")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise PoshwError(f"subset size must be an integer, got {n!r}")
    if not 0 <= n <= total:
        raise PoshwError(f"subset size {n} is out of range: only {total} examples are available")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(total)
    # Rank of each example within its class in the shuffled order; taking the
    # examples by increasing rank takes one of every class per round, which is
    # a stratified sample whose remainder falls on random classes.
    shuffled = labels[perm]
    by_class = np.argsort(shuffled, kind="stable")
    sorted_labels = shuffled[by_class]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    group_start = np.repeat(starts, np.diff(np.r_[starts, total]))
    rank = np.empty(total, dtype=np.int64)
    rank[by_class] = np.arange(total) - group_start
    take = np.lexsort((np.arange(total), rank))[:n]
    idx = np.sort(perm[take])
    return images[idx], labels[idx]


def to_float(images: np.ndarray) -> np.ndarray:
    """``uint8`` pixels to ``float32`` ``pixel / 255``, the float model's input.

    Division (not multiplication by 1/255) gives the correctly rounded float32 of
    pixel/255, the value the fixed-point path is compared against.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"to_float expects uint8 pixels, got {images.dtype}")
    return images.astype(np.float32) / np.float32(255.0)
