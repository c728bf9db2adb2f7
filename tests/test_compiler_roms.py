"""ROM contents from the IR, lane packing, and the parameter image."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poshw.bases import Family, basis_stack, dct2_int, permutation_prefix, rank1_vectors, stream_seeds
from poshw.compiler.params import ParamError, check_params, decode_params, encode_params
from poshw.compiler.roms import (
    RomError, format_rom_origin, lane_pack, lane_unpack, parse_rom_origin, rom_contents, rom_matrix,
)
from poshw.compiler.testing import random_ir, random_params
from poshw.ir import (
    INT8, PARAM_MAGIC, UINT8, Argmax, BasisGroup, BasisSource, Format, Gather, MatVec, NetworkIR, Synth,
    WeightSource,
)


# --- rom_origin grammar --------------------------------------------------------------------

def test_rom_origin_round_trip():
    text = format_rom_origin("gauss", seed=3, path=(1, 0, 0), rows=5, cols=7, channels=2)
    assert text == "gauss:seed=3,path=1.0.0,rows=5,cols=7,channels=2"
    o = parse_rom_origin(text)
    assert o.kind == "gauss" and o.get("path") == (1, 0, 0) and o.get("channels") == 2
    assert str(o) == text
    assert parse_rom_origin("dct:h=28,w=28,m=169,frac_bits=10").get("channels") == 1


@pytest.mark.parametrize("bad", ["", "dct", "foo:h=1", "dct:h=28,w=28,m=10", "dct:h=28,w=28,m=10,frac_bits=x",
                                 "dct:h=28,w=28,m=10,frac_bits=10,zz=1", "gauss:seed=1,path=a.b,rows=1,cols=1",
                                 "dct:h=28,h=28,w=28,m=1,frac_bits=1"])
def test_rom_origin_errors(bad):
    with pytest.raises(RomError):
        parse_rom_origin(bad)


def _mv(origin, n_out, n_in, wbits=8):
    return MatVec("p", n_in=n_in, n_out=n_out, in_fmt=UINT8, weight_source=WeightSource.ROM,
                  weight_fmt=Format(wbits, True), rom_origin=origin, bias=False, requant=True, out_fmt=INT8)


def test_rom_matrices():
    assert np.array_equal(rom_matrix(_mv("dct:h=28,w=28,m=169,frac_bits=10", 169, 784)), dct2_int(28, 28, 169, 10))
    g = rom_matrix(_mv("gauss:seed=4,path=2.0.0,rows=3,cols=5,channels=2", 6, 10))
    block = basis_stack(Family.GAUSS, 4, (2, 0, 0), 1, 15).reshape(3, 5)
    assert np.array_equal(g[:3, :5], block) and np.array_equal(g[3:, 5:], block)
    assert not g[:3, 5:].any() and not g[3:, :5].any()
    with pytest.raises(RomError, match="makes a 3x5"):
        rom_matrix(_mv("gauss:seed=4,path=2,rows=3,cols=5", 4, 5))
    with pytest.raises(RomError, match="do not fit int4"):
        rom_matrix(_mv("gauss:seed=4,path=2,rows=3,cols=5", 3, 5, wbits=4))


def test_rom_contents_of_every_kind():
    groups = (BasisGroup(Family.TERNARY, 3, BasisSource.ROM, 9, (1, 0, 0)),
              BasisGroup(Family.RANK1, 2, BasisSource.ROM, 9, (1, 0, 1)),
              BasisGroup(Family.GAUSS, 4, BasisSource.GENERATOR, 9, (1, 0, 2)))
    s0 = _mv("dct:h=3,w=4,m=6,frac_bits=6", 6, 12)
    s1 = MatVec("syn", n_in=6, n_out=5, lanes=2, in_fmt=INT8, weight_source=WeightSource.SYNTH,
                synth=Synth(5, 6, groups, INT8), bias=True, requant=True, out_fmt=INT8)
    s2 = Gather("g", n_in=5, n_out=3, fmt=INT8, index_origin="permutation", seed=9, path=(2, 0, 0))
    s3 = MatVec("o", n_in=3, n_out=2, in_fmt=INT8, bias=False, requant=False)
    ir = NetworkIR("t", (s0, s1, s2, s3, Argmax("a", n=2, in_fmt=s3.out_fmt)), input_len=12, input_shape=(3, 4))
    roms = rom_contents(ir)
    assert sorted(roms) == ["s0.weights", "s1.basis0", "s1.basis1", "s1.seeds2", "s2.index"]
    assert np.array_equal(roms["s0.weights"], dct2_int(3, 4, 6, 6))
    assert np.array_equal(roms["s1.basis0"], basis_stack(Family.TERNARY, 9, (1, 0, 0), 3, 30))
    u, v = rank1_vectors(9, (1, 0, 1), 2, 5, 6)
    assert np.array_equal(roms["s1.basis1"], np.concatenate([u, v], axis=1))
    assert np.array_equal(roms["s1.seeds2"], stream_seeds(9, (1, 0, 2), 4))
    assert np.array_equal(roms["s2.index"], permutation_prefix(9, (2, 0, 0), 5, 3))
    assert all(a.dtype == np.int64 for a in roms.values())


# --- lane packing --------------------------------------------------------------------------

def test_lane_pack_by_hand():
    w = np.array([[1, -1], [2, 3], [4, 5]])
    # 2 lanes of 4 bits: word b*2 + c holds W[2b, c] in bits 0..3 and W[2b+1, c] in bits 4..7
    assert lane_pack(w, 2, 4) == [0x21, 0x3F, 0x04, 0x05]
    assert np.array_equal(lane_unpack([0x21, 0x3F, 0x04, 0x05], 3, 2, 2, 4), w)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9), st.integers(1, 7), st.integers(1, 12), st.integers(2, 16), st.integers(0, 2**31))
def test_lane_pack_round_trip(n_out, n_in, lanes, bits, seed):
    lanes = min(lanes, n_out)
    rng = np.random.default_rng(seed)
    w = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=(n_out, n_in))
    words = lane_pack(w, lanes, bits)
    assert len(words) == -(-n_out // lanes) * n_in
    assert all(0 <= x < 1 << (lanes * bits) for x in words)
    assert np.array_equal(lane_unpack(words, n_out, n_in, lanes, bits), w)
    # lane l of word b*n_in + c is W[b*lanes + l, c]
    b, c, lane = int(rng.integers(-(-n_out // lanes))), int(rng.integers(n_in)), int(rng.integers(lanes))
    r = b * lanes + lane
    field = (words[b * n_in + c] >> (lane * bits)) & ((1 << bits) - 1)
    want = 0 if r >= n_out else int(w[r, c]) & ((1 << bits) - 1)
    assert field == want


# --- parameter image -----------------------------------------------------------------------

def _design(seed=3):
    rng = np.random.default_rng(seed)
    ir = random_ir(rng, stages=3, kinds=("ram", "synth", "hadamard", "rom"))
    return ir, random_params(ir, rng)


def test_params_round_trip_and_layout():
    ir, params = _design()
    words = encode_params(ir, params)
    assert words.dtype == np.uint32 and len(words) == 2 + ir.param_words()
    assert words[0] == PARAM_MAGIC and words[1] == ir.design_id()
    back = decode_params(ir, words)
    norm = check_params(ir, params)
    assert back.keys() == norm.keys()
    for i in norm:
        for k in norm[i]:
            assert np.array_equal(back[i][k], norm[i][k]), (i, k)
    # payload order = param_layout, values sign-extended to 32 bits
    for f in ir.param_layout():
        vals = norm[f.stage][f.name].reshape(-1)
        got = words[2 + f.offset: 2 + f.offset + f.count].astype(np.int64)
        assert np.array_equal(got, vals & 0xFFFFFFFF)


def test_params_errors():
    ir, params = _design()
    f = next(f for f in ir.param_layout() if f.fmt.bits < 32)
    bad = {i: dict(p) for i, p in params.items()}
    v = np.array(bad[f.stage][f.name]).reshape(-1).copy()
    v[0] = f.fmt.hi + 1
    bad[f.stage][f.name] = v
    with pytest.raises(ParamError, match=f"stage {f.stage} .*{f.name}.*outside {f.fmt}"):
        encode_params(ir, bad)
    missing = {i: {k: a for k, a in p.items() if (i, k) != (f.stage, f.name)} for i, p in params.items()}
    with pytest.raises(ParamError, match="missing"):
        encode_params(ir, missing)
    extra = {i: dict(p) for i, p in params.items()}
    extra[f.stage]["nonsense"] = np.zeros(1)
    with pytest.raises(ParamError, match="unexpected"):
        encode_params(ir, extra)
    words = encode_params(ir, params)
    with pytest.raises(ParamError, match="magic"):
        decode_params(ir, np.concatenate([[0], words[1:]]))
    with pytest.raises(ParamError, match="design id"):
        decode_params(ir, np.concatenate([words[:1], [words[1] ^ 1], words[2:]]))
    with pytest.raises(ParamError, match="words, the IR needs"):
        decode_params(ir, words[:-1])
    w2 = words.copy()
    w2[2 + f.offset] = 0x7FFFFFFF  # not a sign/zero extension of a narrow field
    with pytest.raises(ParamError, match="not a"):
        decode_params(ir, w2)
