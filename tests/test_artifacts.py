"""Build directories: hex/bin formats, write/load round trips, and refusal of bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poshw.compiler.artifacts import (
    BuildError, bin_data, hex_bytes, load_build, parse_bin, parse_hex, read_bin, read_hex, write_bin,
    write_build, write_hex,
)
from poshw.compiler.params import encode_params
from poshw.compiler.roms import lane_unpack, rom_contents
from poshw.compiler.testing import random_ir, random_params
from poshw.fileio import sha256_bytes
from poshw.fixedpoint.golden import golden_forward


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 100), st.data())
def test_hex_bin_round_trip(width, data):
    words = data.draw(st.lists(st.integers(0, (1 << width) - 1), max_size=20))
    h = hex_bytes(words, width)
    lines = h.decode().splitlines()
    assert all(len(x) == -(-width // 4) and x == x.lower() for x in lines)
    assert parse_hex(h, width, "f", len(words)) == words
    b = bin_data(words, width)
    assert len(b) == len(words) * -(-width // 8)
    assert parse_bin(b, width, "f", len(words)) == words


def test_hex_bin_files(tmp_path):
    write_hex(tmp_path / "a.hex", [0, 0xABC, 5], 12)
    assert (tmp_path / "a.hex").read_text() == "000\nabc\n005\n"
    assert read_hex(tmp_path / "a.hex", 12) == [0, 0xABC, 5]
    write_bin(tmp_path / "a.bin", [0x234, 1], 12)
    assert (tmp_path / "a.bin").read_bytes() == b"\x34\x02\x01\x00"
    assert read_bin(tmp_path / "a.bin", 12) == [0x234, 1]
    write_bin(tmp_path / "w.bin", [1 << 20], 24)  # 3-byte words
    assert (tmp_path / "w.bin").read_bytes() == b"\x00\x00\x10"
    with pytest.raises(BuildError, match="does not fit"):
        write_hex(tmp_path / "b.hex", [16], 4)
    (tmp_path / "c.hex").write_text("00\n1\n")
    with pytest.raises(BuildError, match="c.hex: line 2 has 1 digits"):
        read_hex(tmp_path / "c.hex", 8)
    (tmp_path / "d.hex").write_text("0g\n")
    with pytest.raises(BuildError, match="not hex"):
        read_hex(tmp_path / "d.hex", 8)
    with pytest.raises(BuildError, match="3 words, expected 4"):
        read_hex(tmp_path / "a.hex", 12, count=4)
    with pytest.raises(BuildError, match="whole number"):
        parse_bin(b"\x00\x01\x02", 12, "e.bin")
    with pytest.raises(BuildError, match="missing"):
        read_hex(tmp_path / "nope.hex", 8)


@pytest.fixture(scope="module")
def design():
    rng = np.random.default_rng(11)
    ir = random_ir(rng, stages=4, kinds=("rom", "ram", "synth", "hadamard", "gather"))
    params = random_params(ir, rng)
    images = rng.integers(0, 256, size=(5, *ir.input_shape)).astype(np.uint8)
    return ir, params, images


def test_build_round_trip(tmp_path, design):
    ir, params, images = design
    build = write_build(tmp_path / "b", ir, params, golden_inputs=images, extra={"quant.json": {"x": 1}})
    again = load_build(tmp_path / "b")
    assert again.ir == ir and again.ir.design_id() == ir.design_id()
    assert np.array_equal(again.param_words, encode_params(ir, params))
    roms = rom_contents(ir)
    assert again.roms.keys() == roms.keys()
    assert all(np.array_equal(again.roms[k], roms[k]) for k in roms)
    for i, p in params.items():
        for k, v in p.items():
            assert np.array_equal(again.params[i][k].reshape(-1), np.asarray(v).reshape(-1))
    ref = golden_forward(ir, roms, params, images)
    assert np.array_equal(again.golden.inputs, images)
    assert np.array_equal(again.golden.logits, ref.logits)
    assert np.array_equal(again.golden.classes, ref.classes)
    assert again.extra == {"quant.json": {"x": 1}}
    # manifest: every file with its checksum; the manifest itself written last
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    for e in manifest["files"]:
        assert sha256_bytes((tmp_path / "b" / e["file"]).read_bytes()) == e["sha256"]
    names = {e["file"] for e in manifest["files"]}
    assert {"ir.json", "params.hex", "params.bin", "golden/inputs.npy", "quant.json"} <= names
    # lane-packed weight files decode to the matrices
    for e in manifest["files"]:
        if e["file"].endswith(".weights.hex"):
            words = read_hex(tmp_path / "b" / e["file"], e["width"], e["words"])
            mat = lane_unpack(words, *e["shape"], e["lanes"], e["elem_bits"])
            key = e["memory"]
            want = again.roms[key] if key in again.roms else again.weights_init[key]
            assert np.array_equal(mat, want)
    assert build.files == again.files


def _rewrite(path, name, data: bytes, fix_manifest: bool):
    (path / name).write_bytes(data)
    if fix_manifest:
        m = json.loads((path / "manifest.json").read_text())
        for e in m["files"]:
            if e["file"] == name:
                e["sha256"] = sha256_bytes(data)
        (path / "manifest.json").write_text(json.dumps(m))


def test_corrupt_truncated_and_mismatched_files(tmp_path, design):
    ir, params, images = design
    b = tmp_path / "b"
    write_build(b, ir, params, golden_inputs=images)
    weights = next(p.name for p in sorted(b.glob("s*.weights.hex")))
    original = (b / weights).read_bytes()

    # a flipped digit: checksum
    _rewrite(b, weights, original[:-2] + (b"0" if original[-2:-1] != b"0" else b"1") + b"\n", False)
    with pytest.raises(BuildError, match=f"{weights}: checksum mismatch"):
        load_build(b)
    # truncated, manifest updated to match: word count
    _rewrite(b, weights, original[: original.rindex(b"\n", 0, len(original) - 1) + 1], True)
    with pytest.raises(BuildError, match=f"{weights}.*expected"):
        load_build(b)
    # a different, well-formed value: contents differ from what the IR / parameters say
    first = original.split(b"\n")[0]
    other = (b"1" if first[:1] != b"1" else b"2") + first[1:]
    _rewrite(b, weights, other + original[len(first):], True)
    with pytest.raises(BuildError, match=weights[:-len(".hex")]):  # the .hex, or the .bin that now differs
        load_build(b)
    _rewrite(b, weights, original, True)
    load_build(b)

    # parameters for another design
    pw = (b / "params.hex").read_text().splitlines()
    pw[1] = f"{int(pw[1], 16) ^ 1:08x}"
    _rewrite(b, "params.hex", ("\n".join(pw) + "\n").encode(), True)
    _rewrite(b, "params.bin", bin_data([int(x, 16) for x in pw], 32), True)
    with pytest.raises(BuildError, match="params.hex.*design id"):
        load_build(b)


def test_missing_files_and_bad_manifest(tmp_path, design):
    ir, params, _ = design
    with pytest.raises(BuildError, match="no build directory"):
        load_build(tmp_path / "absent")
    b = tmp_path / "b"
    write_build(b, ir, params)
    (b / "params.bin").unlink()
    with pytest.raises(BuildError, match="params.bin: missing"):
        load_build(b)
    (b / "manifest.json").write_text("{not json")
    with pytest.raises(BuildError, match="manifest.json: corrupt"):
        load_build(b)
    (b / "manifest.json").unlink()
    with pytest.raises(BuildError, match="manifest.json: missing"):
        load_build(b)
