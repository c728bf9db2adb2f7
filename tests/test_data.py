"""Tests for poshw.data: finding, verifying and loading MNIST / Fashion-MNIST."""

from __future__ import annotations

import gzip
import hashlib
import inspect
import io
import os
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poshw import PoshwError, data

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@pytest.fixture(autouse=True)
def hermetic(tmp_path, monkeypatch):
    """No test sees the caller's POSHW_DATA, ~/.cache or /usr/share/datasets, and
    none can reach the network."""
    monkeypatch.delenv("POSHW_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(data, "DEBIAN_DATASETS_DIR", tmp_path / "debian-datasets")

    def no_network(url, *args, **kwargs):
        raise AssertionError(f"test tried to reach the network: {url}")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)


def real_dir(data_dir: Path, name: str) -> Path:
    """The directory with the real files of ``name`` (either layout of data_dir)."""
    return data.find_dataset_dir(name, data_dir)


def link_dataset(src: Path, dst: Path) -> Path:
    """A copy of a dataset dir made of symlinks (cheap; content is the real one)."""
    dst.mkdir(parents=True, exist_ok=True)
    for stem in STEMS:
        (dst / f"{stem}.gz").symlink_to(src / f"{stem}.gz")
    return dst


def idx_images(n: int, rows: int = 28, cols: int = 28, magic: int = 2051, pad: int = 0) -> bytes:
    body = bytes((i * 7) % 256 for i in range(n * rows * cols + pad))
    return struct.pack(">IIII", magic, n, rows, cols) + body


def idx_labels(values, magic: int = 2049, n: int | None = None) -> bytes:
    values = bytes(values)
    return struct.pack(">II", magic, len(values) if n is None else n) + values


def synthetic_dir(root: Path, images: bytes, labels: bytes) -> Path:
    """A 'mnist' dir whose test split is the given decompressed bytes; the train
    files are empty placeholders (only their presence matters to the search)."""
    d = root / "synthetic"
    d.mkdir()
    (d / "t10k-images-idx3-ubyte").write_bytes(images)
    (d / "t10k-labels-idx1-ubyte").write_bytes(labels)
    (d / "train-images-idx3-ubyte").write_bytes(b"")
    (d / "train-labels-idx1-ubyte").write_bytes(b"")
    return d


def load_error(*args) -> str:
    with pytest.raises(PoshwError) as exc:
        data.load_split(*args)
    return str(exc.value)


# --------------------------------------------------------------------------- real data


@pytest.mark.parametrize("name", data.DATASETS)
def test_load_real_dataset(data_dir, name):
    ds = data.load_dataset(name, data_dir)
    assert ds.name == name
    assert ds.train_images.shape == (60000, 28, 28) and ds.train_labels.shape == (60000,)
    assert ds.test_images.shape == (10000, 28, 28) and ds.test_labels.shape == (10000,)
    for arr in (ds.train_images, ds.train_labels, ds.test_images, ds.test_labels):
        assert arr.dtype == np.uint8
    for images in (ds.train_images, ds.test_images):
        assert images.min() == 0 and images.max() == 255
    train_counts = np.bincount(ds.train_labels, minlength=10).tolist()
    test_counts = np.bincount(ds.test_labels, minlength=10).tolist()
    if name == "mnist":
        assert train_counts == MNIST_TRAIN_COUNTS
        assert test_counts == MNIST_TEST_COUNTS
    else:  # Fashion-MNIST is balanced by construction
        assert train_counts == [6000] * 10
        assert test_counts == [1000] * 10
    assert len(ds.class_names) == 10


def test_first_mnist_labels(data_dir):
    # The well-known start of each MNIST split: parsing order and offsets are right.
    _, train_labels = data.load_split("mnist", "train", data_dir)
    _, test_labels = data.load_split("mnist", "test", data_dir)
    assert train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert test_labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_repeated_load_is_cached_and_read_only(data_dir):
    images, labels = data.load_split("mnist", "test", data_dir)
    hits = data._load_files.cache_info().hits
    images2, labels2 = data.load_split("mnist", "test", data_dir)
    assert data._load_files.cache_info().hits == hits + 1
    assert np.shares_memory(images, images2) and np.shares_memory(labels, labels2)
    for arr in (images, labels):
        with pytest.raises(ValueError):
            arr[0] = 1
        with pytest.raises(ValueError):
            arr.flags.writeable = True
    # A caller's reshape of its view does not affect the next caller's.
    images.shape = (10000, 784)
    assert data.load_split("mnist", "test", data_dir)[0].shape == (10000, 28, 28)


def test_package_hard_codes_no_data_path():
    src = inspect.getsource(data)
    assert "shared/data" not in src and "/work" not in src


# --------------------------------------------------------------------------- search order


def test_explicit_dir_beats_env_var(data_dir, tmp_path, monkeypatch):
    src = real_dir(data_dir, "mnist")
    explicit = link_dataset(src, tmp_path / "explicit")
    env = link_dataset(src, tmp_path / "env")
    monkeypatch.setenv("POSHW_DATA", str(env))
    assert data.find_dataset_dir("mnist") == env.resolve()
    assert data.find_dataset_dir("mnist", explicit) == explicit.resolve()
    assert data.find_dataset_dir("mnist", str(explicit)) == explicit.resolve()
    # An explicit dir without the data falls through to the next place.
    assert data.find_dataset_dir("mnist", tmp_path / "empty") == env.resolve()


def test_env_var_with_subfolder_layout(data_dir, tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    for name in data.DATASETS:
        link_dataset(real_dir(data_dir, name), shared / name)
    monkeypatch.setenv("POSHW_DATA", str(shared))
    for name in data.DATASETS:
        assert data.find_dataset_dir(name) == (shared / name).resolve()
    images, labels = data.load_split("fashion-mnist", "test")
    assert images.shape == (10000, 28, 28) and np.bincount(labels).tolist() == [1000] * 10


def test_debian_dir_then_user_cache(data_dir, tmp_path, monkeypatch):
    src = real_dir(data_dir, "mnist")
    cache = link_dataset(src, tmp_path / "xdg-cache" / "poshw" / "datasets" / "mnist")
    assert data.find_dataset_dir("mnist") == cache.resolve()
    debian = link_dataset(src, tmp_path / "debian-datasets" / "mnist")
    assert data.find_dataset_dir("mnist") == debian.resolve()
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data._cache_root() == tmp_path / "home" / ".cache" / "poshw" / "datasets"


def test_decompressed_files_work(data_dir, tmp_path):
    src = real_dir(data_dir, "mnist")
    d = tmp_path / "raw"
    d.mkdir()
    # Both decompressed spellings: the original name and the old dotted one.
    (d / "t10k-images-idx3-ubyte").write_bytes(gzip.decompress((src / "t10k-images-idx3-ubyte.gz").read_bytes()))
    (d / "t10k-labels.idx1-ubyte").write_bytes(gzip.decompress((src / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    for stem in STEMS[:2]:
        (d / f"{stem}.gz").symlink_to(src / f"{stem}.gz")
    assert data.find_dataset_dir("mnist", d) == d.resolve()
    images, labels = data.load_split("mnist", "test", d)
    ref_images, ref_labels = data.load_split("mnist", "test", data_dir)
    np.testing.assert_array_equal(images, ref_images)
    np.testing.assert_array_equal(labels, ref_labels)


def test_recompressed_gz_is_accepted(data_dir, tmp_path):
    # A packager may recompress: the content, not the gzip stream, is what matters.
    src = real_dir(data_dir, "mnist")
    d = link_dataset(src, tmp_path / "recompressed")
    for stem in STEMS[2:]:
        raw = gzip.decompress((src / f"{stem}.gz").read_bytes())
        (d / f"{stem}.gz").unlink()
        (d / f"{stem}.gz").write_bytes(gzip.compress(raw, compresslevel=1, mtime=0))
    images, labels = data.load_split("mnist", "test", d)
    assert np.bincount(labels).tolist() == MNIST_TEST_COUNTS
    np.testing.assert_array_equal(images, data.load_split("mnist", "test", data_dir)[0])


# --------------------------------------------------------------------------- bad input


def test_unknown_dataset():
    for call in (
        lambda: data.load_split("cifar10", "train"),
        lambda: data.load_dataset("cifar10"),
        lambda: data.find_dataset_dir("cifar10"),
    ):
        with pytest.raises(PoshwError, match=r"unknown dataset 'cifar10'; choose one of: mnist, fashion-mnist"):
            call()


def test_name_spellings_are_normalised(data_dir):
    assert data.find_dataset_dir("Fashion_MNIST", data_dir) == data.find_dataset_dir("fashion-mnist", data_dir)


def test_unknown_split():
    msg = load_error("mnist", "validation")
    assert "unknown split 'validation'" in msg and "train, test" in msg


def test_missing_dir_lists_places_searched(tmp_path):
    missing = tmp_path / "nowhere"
    msg = load_error("mnist", "test", missing)
    assert "dataset 'mnist' not found" in msg
    for place in (
        missing / "mnist",
        missing,
        tmp_path / "debian-datasets" / "mnist",
        tmp_path / "xdg-cache" / "poshw" / "datasets" / "mnist",
    ):
        assert f"  {place}  (" in msg
    assert "$POSHW_DATA not set" in msg
    assert "POSHW_DATA=" in msg and "--data-dir" in msg


def test_env_var_place_is_listed(tmp_path, monkeypatch):
    monkeypatch.setenv("POSHW_DATA", str(tmp_path / "envdir"))
    msg = load_error("fashion-mnist", "train")
    assert f"{tmp_path / 'envdir' / 'fashion-mnist'}  ($POSHW_DATA: no such directory)" in msg


def test_incomplete_dir_names_missing_file(data_dir, tmp_path):
    d = link_dataset(real_dir(data_dir, "mnist"), tmp_path / "partial")
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    msg = load_error("mnist", "test", d)
    assert f"{d}  (data_dir argument: incomplete, missing t10k-labels-idx1-ubyte[.gz])" in msg


def test_truncated_gz(data_dir, tmp_path):
    src = real_dir(data_dir, "mnist")
    d = link_dataset(src, tmp_path / "trunc")
    target = d / "t10k-images-idx3-ubyte.gz"
    good = (src / "t10k-images-idx3-ubyte.gz").read_bytes()
    target.unlink()
    target.write_bytes(good[: len(good) // 2])
    msg = load_error("mnist", "test", d)
    assert str(target.resolve()) in msg
    assert "expected 9fb629c4189551a2d022fa330f9573f3" in msg
    assert f"{len(good) // 2} bytes, expected {len(good)}" in msg and "truncated" in msg
    assert msg.count("\n") == 0  # one message, not a cascade


def test_gz_with_flipped_byte(data_dir, tmp_path):
    src = real_dir(data_dir, "mnist")
    d = link_dataset(src, tmp_path / "flipped")
    target = d / "t10k-labels-idx1-ubyte.gz"
    bad = bytearray((src / "t10k-labels-idx1-ubyte.gz").read_bytes())
    bad[len(bad) // 2] ^= 0x01
    target.unlink()
    target.write_bytes(bytes(bad))
    msg = load_error("mnist", "test", d)
    assert f"corrupt mnist file {target.resolve()}: MD5 mismatch" in msg
    assert f"expected ec29112dd5afa0611ce80d1b7f02629c, got {hashlib.md5(bad).hexdigest()}" in msg


def test_wrong_dataset_is_recognised(data_dir):
    msg = load_error("fashion-mnist", "test", real_dir(data_dir, "mnist"))
    assert "This is the mnist t10k-images-idx3-ubyte.gz file" in msg


def test_decompressed_with_flipped_pixel(data_dir, tmp_path):
    src = real_dir(data_dir, "mnist")
    raw = bytearray(gzip.decompress((src / "t10k-images-idx3-ubyte.gz").read_bytes()))
    raw[16 + 5000] ^= 0xFF  # structurally perfect, content wrong
    labels = gzip.decompress((src / "t10k-labels-idx1-ubyte.gz").read_bytes())
    d = synthetic_dir(tmp_path, bytes(raw), labels)
    msg = load_error("mnist", "test", d)
    assert f"corrupt mnist file {(d / 't10k-images-idx3-ubyte').resolve()}: content MD5 mismatch" in msg
    assert "expected 2646ac647ad5339dbf082846283269ea" in msg


def test_decompressed_wrong_magic(tmp_path):
    d = synthetic_dir(tmp_path, idx_images(3, magic=2049), idx_labels([1, 2, 3]))
    msg = load_error("mnist", "test", d)
    assert str((d / "t10k-images-idx3-ubyte").resolve()) in msg
    assert "magic number 2049, expected 2051" in msg and "label file" in msg


def test_decompressed_labels_wrong_magic(tmp_path):
    d = synthetic_dir(tmp_path, idx_images(3), idx_labels([1, 2, 3], magic=0x12345678))
    msg = load_error("mnist", "test", d)
    assert "t10k-labels-idx1-ubyte" in msg and f"magic number {0x12345678}, expected 2049" in msg


def test_decompressed_wrong_dimensions(tmp_path):
    d = synthetic_dir(tmp_path, idx_images(3, rows=32, cols=32), idx_labels([1, 2, 3]))
    assert "images are 32x32, expected 28x28" in load_error("mnist", "test", d)


@pytest.mark.parametrize("pad", [-1, 1, -2000])
def test_decompressed_wrong_length(tmp_path, pad):
    d = synthetic_dir(tmp_path, idx_images(3, pad=pad), idx_labels([1, 2, 3]))
    msg = load_error("mnist", "test", d)
    assert str((d / "t10k-images-idx3-ubyte").resolve()) in msg
    assert f"header says 3 images of 28x28, i.e. {16 + 3 * 784} bytes, but the file has {16 + 3 * 784 + pad} bytes" in msg


def test_decompressed_labels_wrong_length(tmp_path):
    d = synthetic_dir(tmp_path, idx_images(3), idx_labels([1, 2, 3], n=4))
    assert "header says 4 labels, i.e. 12 bytes, but the file has 11 bytes" in load_error("mnist", "test", d)


def test_decompressed_header_too_short(tmp_path):
    d = synthetic_dir(tmp_path, b"\x00\x00\x08", idx_labels([1]))
    assert "too short for an idx image file: 3 bytes, expected at least 16" in load_error("mnist", "test", d)


def test_label_out_of_range(tmp_path):
    d = synthetic_dir(tmp_path, idx_images(3), idx_labels([1, 10, 2]))
    msg = load_error("mnist", "test", d)
    assert str((d / "t10k-labels-idx1-ubyte").resolve()) in msg
    assert "label 10 at index 1 is out of range; expected values 0..9" in msg


def test_mismatched_counts(tmp_path):
    d = synthetic_dir(tmp_path, idx_images(3), idx_labels([1, 2]))
    msg = load_error("mnist", "test", d)
    assert "has 3 images but" in msg and "has 2 labels" in msg and "must agree" in msg


def test_wellformed_but_not_original_count(tmp_path):
    d = synthetic_dir(tmp_path, idx_images(3), idx_labels([1, 2, 3]))
    assert "has 3 images, expected 10000" in load_error("mnist", "test", d)


# --------------------------------------------------------------------------- subset / to_float


def test_subset_deterministic_and_balanced(data_dir):
    images, labels = data.load_split("mnist", "train", data_dir)
    a_img, a_lab = data.subset(images, labels, 1000, seed=1)
    b_img, b_lab = data.subset(images, labels, 1000, seed=1)
    c_img, c_lab = data.subset(images, labels, 1000, seed=2)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_lab, b_lab)
    assert not np.array_equal(a_img, c_img)
    assert a_img.shape == (1000, 28, 28) and a_img.dtype == np.uint8
    assert np.bincount(a_lab, minlength=10).tolist() == [100] * 10
    assert np.bincount(c_lab, minlength=10).tolist() == [100] * 10


def test_subset_returns_matching_pairs_in_order():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 500).astype(np.uint8)
    images = np.arange(500)  # each "image" is its own index
    sub_idx, sub_lab = data.subset(images, labels, 123, seed=7)
    assert len(set(sub_idx.tolist())) == 123
    assert np.all(np.diff(sub_idx) > 0)
    np.testing.assert_array_equal(labels[sub_idx], sub_lab)


def test_subset_size_errors():
    labels = np.zeros(10, dtype=np.uint8)
    images = np.zeros((10, 28, 28), dtype=np.uint8)
    with pytest.raises(PoshwError, match="subset size 11 is out of range: only 10 examples are available"):
        data.subset(images, labels, 11, seed=0)
    with pytest.raises(PoshwError, match="out of range"):
        data.subset(images, labels, -1, seed=0)
    with pytest.raises(PoshwError, match="must be an integer"):
        data.subset(images, labels, 2.5, seed=0)
    assert len(data.subset(images, labels, 10, seed=0)[0]) == 10
    with pytest.raises(ValueError):
        data.subset(images[:9], labels, 3, seed=0)


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(0, 30), min_size=1, max_size=10),
    frac=st.floats(0, 1),
    seed=st.integers(0, 2**32 - 1),
)
def test_subset_balance_property(counts, frac, seed):
    labels = np.repeat(np.arange(len(counts)), counts).astype(np.uint8)
    np.random.default_rng(0).shuffle(labels)
    n = int(round(frac * len(labels)))
    idx, sub = data.subset(np.arange(len(labels)), labels, n, seed)
    assert len(idx) == n == len(set(idx.tolist()))
    got = np.bincount(sub, minlength=len(counts))
    # Balanced: a class may trail another by more than one only when exhausted.
    for a in range(len(counts)):
        for b in range(len(counts)):
            if got[a] + 1 < got[b]:
                assert got[a] == counts[a]


def test_to_float():
    px = np.array([[0, 1, 128, 254, 255]], dtype=np.uint8)
    out = data.to_float(px)
    assert out.dtype == np.float32 and out.shape == px.shape
    expected = np.array([[0.0, 1 / 255, 128 / 255, 254 / 255, 1.0]], dtype=np.float64).astype(np.float32)
    np.testing.assert_array_equal(out, expected)  # correctly rounded pixel/255
    with pytest.raises(TypeError, match="uint8"):
        data.to_float(px.astype(np.float32))


# --------------------------------------------------------------------------- download


class FakeResponse(io.BytesIO):
    """What urlopen returns: a context manager with read(n); may fail midway."""

    def __init__(self, payload: bytes, fail_after: int | None = None):
        super().__init__(payload)
        self.fail_after = fail_after

    def read(self, n=-1):
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise urllib.error.URLError("connection reset")
        return super().read(n if self.fail_after is None else min(n, self.fail_after))


def fake_server(monkeypatch, files: dict[str, bytes], fail: set[str] = frozenset(), fail_after=None):
    """Patch urlopen to serve ``files`` by URL; returns the list of (url, timeout) calls."""
    calls: list[tuple[str, float]] = []

    def urlopen(url, timeout=None):
        calls.append((url, timeout))
        if url in fail or url not in files:
            raise urllib.error.URLError("unreachable (test)")
        return FakeResponse(files[url], fail_after)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return calls


def mnist_payloads(data_dir, mirror: str) -> dict[str, bytes]:
    src = real_dir(data_dir, "mnist")
    return {f"{mirror}{stem}.gz": (src / f"{stem}.gz").read_bytes() for stem in STEMS}


def test_download_lands_atomically_in_cache(data_dir, tmp_path, monkeypatch):
    mirror = data.MIRRORS["mnist"][0]
    payloads = mnist_payloads(data_dir, mirror)
    calls = fake_server(monkeypatch, payloads)
    cache = tmp_path / "xdg-cache" / "poshw" / "datasets" / "mnist"
    replaces = []
    real_replace = os.replace

    def recording_replace(src, dst):
        # The final name must not exist before the move, and the source must be a
        # temporary in the same directory (so os.replace is an atomic rename).
        assert not Path(dst).exists()
        assert Path(src).parent == Path(dst).parent and Path(src).name.endswith(".part")
        assert Path(src).read_bytes() == payloads[mirror + Path(dst).name]
        replaces.append(Path(dst).name)
        real_replace(src, dst)

    monkeypatch.setattr(data.os, "replace", recording_replace)
    assert data.find_dataset_dir("mnist", download=True) == cache.resolve()
    assert sorted(replaces) == sorted(f"{s}.gz" for s in STEMS)
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{s}.gz" for s in STEMS)
    for stem in STEMS:
        assert (cache / f"{stem}.gz").read_bytes() == payloads[f"{mirror}{stem}.gz"]
    assert all(0 < timeout < 1000 for _, timeout in calls)
    # Found without downloading the next time; no further requests.
    n_calls = len(calls)
    images, labels = data.load_split("mnist", "test")
    assert np.bincount(labels).tolist() == MNIST_TEST_COUNTS and images.shape == (10000, 28, 28)
    assert len(calls) == n_calls


def test_download_falls_back_to_second_mirror(data_dir, tmp_path, monkeypatch):
    first, second = data.MIRRORS["mnist"][:2]
    calls = fake_server(monkeypatch, mnist_payloads(data_dir, second))
    cache = data.find_dataset_dir("mnist", download=True)
    assert [u for u, _ in calls] == [u for s in STEMS for u in (f"{first}{s}.gz", f"{second}{s}.gz")]
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{s}.gz" for s in STEMS)


def test_download_completes_partial_cache(data_dir, tmp_path, monkeypatch):
    mirror = data.MIRRORS["mnist"][0]
    payloads = mnist_payloads(data_dir, mirror)
    cache = tmp_path / "xdg-cache" / "poshw" / "datasets" / "mnist"
    cache.mkdir(parents=True)
    (cache / "train-images-idx3-ubyte.gz").write_bytes(payloads[f"{mirror}train-images-idx3-ubyte.gz"])
    calls = fake_server(monkeypatch, payloads)
    data.find_dataset_dir("mnist", download=True)
    assert sorted(u for u, _ in calls) == sorted(f"{mirror}{s}.gz" for s in STEMS[1:])


def test_download_bad_md5_rejected_no_partial_file(data_dir, tmp_path, monkeypatch):
    mirrors = data.MIRRORS["mnist"]
    files = {}
    for mirror in mirrors:
        payloads = mnist_payloads(data_dir, mirror)
        bad = bytearray(payloads[f"{mirror}train-labels-idx1-ubyte.gz"])
        bad[100] ^= 0x40
        payloads[f"{mirror}train-labels-idx1-ubyte.gz"] = bytes(bad)
        files.update(payloads)
    fake_server(monkeypatch, files)
    with pytest.raises(PoshwError) as exc:
        data.find_dataset_dir("mnist", download=True)
    msg = str(exc.value)
    assert "could not download mnist file train-labels-idx1-ubyte.gz" in msg
    for mirror in mirrors:
        assert f"{mirror}train-labels-idx1-ubyte.gz: MD5 mismatch after download: expected d53e105ee54ea40749a09fcbcd1e9432" in msg
    cache = tmp_path / "xdg-cache" / "poshw" / "datasets" / "mnist"
    # Only the good file fetched before the bad one; nothing partial, no temporaries.
    assert [p.name for p in cache.iterdir()] == ["train-images-idx3-ubyte.gz"]


def test_interrupted_download_leaves_no_partial_file(data_dir, tmp_path, monkeypatch):
    mirror = data.MIRRORS["fashion-mnist"][0]
    fake_server(monkeypatch, {f"{mirror}train-images-idx3-ubyte.gz": b"x" * 5000}, fail_after=2000)
    with pytest.raises(PoshwError, match="connection reset"):
        data.find_dataset_dir("fashion-mnist", download=True)
    cache = tmp_path / "xdg-cache" / "poshw" / "datasets" / "fashion-mnist"
    assert list(cache.iterdir()) == []


def test_no_download_without_flag(tmp_path):
    # The autouse fixture makes any urlopen call fail the test with AssertionError.
    with pytest.raises(PoshwError, match="not found"):
        data.find_dataset_dir("fashion-mnist")
