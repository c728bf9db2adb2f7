"""The integer basis contract (docs/BASES.md): generator, value maps, DCT grid, golden vectors.

The golden values below are printed in docs/BASES.md; any change to the generator, the
seed derivation or a value map breaks these tests, as it must (hardware ROMs and seed
ROMs are built from the same definitions).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from poshw import spec as S
from poshw.bases import (
    Family, basis_chunk, basis_stack, dct2_int, dct_matrix, jump, map_values, permutation_prefix,
    rank1_vectors, raw_stream, raw_streams, stream_seed, stream_seeds, uniform_below, xorshift32,
    zigzag_order,
)
from poshw.bases import prng

# --- golden vectors (keep in sync with docs/BASES.md) ----------------------------------

GOLDEN_SEED_00000 = 0x78AE5A9A
GOLDEN_RAW_00000 = [0xCC552FE4, 0x5C9AFD30, 0x64A3696E, 0x385B1889,
                    0x3208B0AC, 0xA7B976E2, 0xA5CB3850, 0x9AEA7F30]
GOLDEN_VALUES_00000 = {
    "gauss": [4, 6, -7, -3, -17, 7, 8, 13],
    "rademacher": [-1, 1, 1, 1, 1, -1, -1, -1],
    "ternary": [0, 1, 1, -1, -1, 0, 0, 0],
}


def test_golden_xorshift32_reference_values():
    # Marsaglia (2003): y ^= y<<13; y ^= y>>17; y ^= y<<5, from 2463534242 gives 723471715.
    assert xorshift32(2463534242) == 723471715
    assert xorshift32(1) == 270369
    assert xorshift32(0) == 0  # the fixed point every derived state avoids


def test_golden_splitmix64_and_stream_seeds():
    assert prng.splitmix64(0) == 0xE220A8397B1DCDAF  # Steele, Lea, Flood reference output
    assert stream_seed(0) == 0xE220A839
    assert stream_seed(0, 0, 0, 0, 0) == GOLDEN_SEED_00000
    assert stream_seed(1, 2, 3, 4, 5) == 0x90BB69B7
    assert stream_seed(1, 0, 0, 0, 0) == 0x348C3D1A
    assert stream_seed(0, 3, S.BIAS_FACTOR, 0, 0) == 0xFD957553
    assert stream_seeds(0, (0, 0, 0), 2).tolist() == [GOLDEN_SEED_00000, stream_seed(0, 0, 0, 0, 1)]


def test_golden_raw_outputs():
    assert raw_stream(GOLDEN_SEED_00000, 0, 8).tolist() == GOLDEN_RAW_00000
    # entry e is the state after e + 1 steps
    x = GOLDEN_SEED_00000
    for r in GOLDEN_RAW_00000:
        x = xorshift32(x)
        assert x == r
    assert raw_stream(stream_seed(0, 1, 0, 0, 0), 0, 4).tolist() == [
        0xF92CB4C6, 0x993C209C, 0xB8DA6F6B, 0x53D9CBF0]
    assert jump(GOLDEN_SEED_00000, 1000) == 0xE132770B
    assert raw_stream(GOLDEN_SEED_00000, 999, 1)[0] == 0xE132770B


def test_golden_family_values():
    for fam, want in GOLDEN_VALUES_00000.items():
        assert basis_chunk(fam, 0, (0, 0, 0), 0, 0, 8).tolist() == want
        assert basis_stack(fam, 0, (0, 0, 0), 1, 8)[0].tolist() == want
    assert basis_chunk("gauss", 0, (0, 0, 0), 1, 0, 8).tolist() == [1, -11, 2, -9, -3, 5, -3, -1]
    u, v = rank1_vectors(0, (0, 0, 0), 2, 3, 4)
    assert u.tolist() == [[4, 6, -7], [1, -11, 2]]
    assert v.tolist() == [[-3, -17, 7, 8], [-9, -3, 5, -3]]
    # bias basis of layer 3: streams (seed, 3, 255, 0, k)
    assert basis_stack("gauss", 0, (3, S.BIAS_FACTOR, 0), 2, 6).tolist() == [
        [-2, -2, -8, 3, -2, -5], [-1, 11, 2, 5, -10, 4]]


def test_golden_dct_and_zigzag():
    assert zigzag_order(4, 4)[:10] == [(0, 0), (0, 1), (1, 0), (2, 0), (1, 1), (0, 2), (0, 3),
                                       (1, 2), (2, 1), (3, 0)]
    assert zigzag_order(28, 28)[165:169] == [(12, 5), (13, 4), (14, 3), (15, 2)]
    d = dct2_int(28, 28, 784)
    assert (d.min(), d.max(), d[0, 0]) == (-73, 73, 37)
    assert d[1, :4].tolist() == [52, 51, 50, 48]
    assert d[2, :4].tolist() == [52, 52, 52, 52]
    assert d[168, :4].tolist() == [48, 46, 41, 34]
    assert d[783, :4].tolist() == [0, -1, 1, -2]
    assert int(dct2_int(28, 28, 169).sum()) == 29088
    # row 1 of an 8x8 block is frequency (0, 1): constant down the rows, a cosine across
    assert dct2_int(8, 8, 2)[1, :8].tolist() == [178, 151, 101, 35, -35, -101, -151, -178]


def test_golden_permutation_prefix():
    assert permutation_prefix(0, (0, 0, 0), 784, 10).tolist() == [294, 660, 167, 228, 533, 464,
                                                                  732, 14, 230, 20]
    assert permutation_prefix(7, (2, 0, 0), 10, 10).tolist() == [8, 2, 5, 4, 3, 9, 0, 7, 6, 1]
    assert int(uniform_below(np.uint32(0xFFFFFFFF), 10)) == 9
    assert int(uniform_below(np.uint32(0x80000000), 10)) == 5


# --- the generator ---------------------------------------------------------------------

@pytest.mark.slow
def test_full_period_of_xorshift32():
    # The 13/17/5 triple is full-period: every non-zero state recurs after exactly 2^32 - 1 steps.
    assert prng.period_from(np.uint32(1), np.int64(2**32)) == 2**32 - 1


def test_period_is_not_short():
    # A quick guard for the non-slow suite: no return within 2^24 steps from a few states.
    for s in (1, GOLDEN_SEED_00000, 0xFFFFFFFF):
        assert prng.period_from(np.uint32(s), np.int64(1 << 24)) == -1


def test_step_matrix_has_full_order():
    # Full period <=> the GF(2) step matrix T has order 2^32 - 1: T^(2^32-1) = I and
    # T^((2^32-1)/q) != I for every prime q | 2^32 - 1 = 3 * 5 * 17 * 257 * 65537.
    n = 2**32 - 1
    for x in (1, 0xDEADBEEF, GOLDEN_SEED_00000):
        assert jump(x, n) == x
    for q in (3, 5, 17, 257, 65537):
        assert any(jump(x, n // q) != x for x in (1 << i for i in range(32)))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 2**32 - 1), st.integers(0, 3000))
def test_jump_equals_stepping(state, steps):
    x = state
    for _ in range(steps):
        x = xorshift32(x)
    assert jump(state, steps) == x


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**40), st.lists(st.integers(0, 300), min_size=0, max_size=5))
def test_stream_seed_nonzero_32bit(seed, path):
    s = stream_seed(seed, *path)
    assert 0 < s < 2**32


def test_stream_seed_rejects_negative():
    with pytest.raises(ValueError):
        stream_seed(-1)
    with pytest.raises(ValueError):
        stream_seed(0, 1, -2)
    with pytest.raises(ValueError):
        jump(1, -1)


def test_zero_state_replacement_is_documented_constant():
    assert prng.ZERO_STATE_REPLACEMENT == 0x6D2B79F5


def test_numba_matches_python_reference():
    x = 12345
    ref = []
    for _ in range(1000):
        x = xorshift32(x)
        ref.append(x)
    assert raw_stream(12345, 0, 1000).tolist() == ref
    assert raw_streams(np.array([12345, 1], dtype=np.uint32), 1000)[0].tolist() == ref


# --- chunking, start offsets, threads: no influence on values ---------------------------

def test_raw_streams_with_start_equals_slices():
    states = stream_seeds(3, (1, 0, 0), 5)
    full = raw_streams(states, 500)
    for start in (0, 1, 17, 250, 499):
        assert np.array_equal(raw_streams(states, 500 - start, start=start), full[:, start:])
    for k, s in enumerate(states):
        assert np.array_equal(raw_stream(int(s), 123, 77), full[k, 123:200])


def test_basis_chunk_equals_basis_stack_for_any_chunking():
    stack = basis_stack(Family.GAUSS, 9, (2, 1, 0), 4, 1000)
    for chunk in (1, 7, 64, 333, 1000):
        for k in range(4):
            parts = [basis_chunk(Family.GAUSS, 9, (2, 1, 0), k, e, min(e + chunk, 1000))
                     for e in range(0, 1000, chunk)]
            assert np.array_equal(np.concatenate(parts), stack[k])


def test_one_pass_mapping_equals_raw_then_map():
    # basis_stack maps inside the numba kernel; it must equal the documented two-step map.
    states = stream_seeds(5, (0, 0, 1), 9)
    raw = raw_streams(states, 300)
    for fam in (Family.GAUSS, Family.RADEMACHER, Family.TERNARY):
        want = map_values(raw, fam)
        assert np.array_equal(basis_stack(fam, 5, (0, 0, 1), 9, 300), want)
        for lo, hi in ((0, 1), (2, 7), (8, 9)):
            code = {Family.GAUSS: prng.MAP_GAUSS, Family.RADEMACHER: prng.MAP_RADEMACHER,
                    Family.TERNARY: prng.MAP_TERNARY}[fam]
            assert np.array_equal(prng.mapped_streams(states[lo:hi], 300, code), want[lo:hi])


def test_bases_nest_basis_k_is_stream_k():
    # Staged training relies on this: the first s bases do not depend on the count.
    big = basis_stack(Family.GAUSS, 0, (1, 0, 0), 40, 200)
    assert np.array_equal(big[:20], basis_stack(Family.GAUSS, 0, (1, 0, 0), 20, 200))
    u40, v40 = rank1_vectors(0, (1, 0, 1), 40, 10, 12)
    u20, v20 = rank1_vectors(0, (1, 0, 1), 20, 10, 12)
    assert np.array_equal(u40[:20], u20) and np.array_equal(v40[:20], v20)


def test_thread_count_does_not_change_values():
    states = stream_seeds(11, (0, 0, 0), 8)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = raw_streams(states, 4096)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = raw_streams(states, 4096)
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(one, many)


def test_torch_global_rng_is_not_used():
    torch.manual_seed(1)
    a = basis_stack(Family.GAUSS, 0, (0, 0, 0), 3, 50)
    state = torch.get_rng_state()
    np.random.seed(123)
    torch.manual_seed(999)
    b = basis_stack(Family.GAUSS, 0, (0, 0, 0), 3, 50)
    assert np.array_equal(a, b)
    torch.manual_seed(1)
    basis_stack(Family.GAUSS, 0, (0, 0, 0), 3, 50)
    assert torch.equal(torch.get_rng_state(), state)


# --- exact bits -> value maps ----------------------------------------------------------

def _gauss_ref(r: int) -> int:
    h = r >> 16
    return sum((h >> (4 * i)) & 15 for i in range(4)) - 30


def _ternary_ref(r: int) -> int:
    return {0: -1, 1: 1, 2: 0, 3: 0}[r >> 30]


EDGE = [0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x0000FFFF, 0xFFFF0000, 0x3FFFFFFF,
        0x40000000, 0xC0000000]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=64))
def test_value_maps_match_reference(raws):
    raws = raws + EDGE
    r = np.array(raws, dtype=np.uint32)
    assert map_values(r, Family.GAUSS).tolist() == [_gauss_ref(x) for x in raws]
    assert map_values(r, Family.RANK1).tolist() == [_gauss_ref(x) for x in raws]
    assert map_values(r, Family.RADEMACHER).tolist() == [1 - 2 * (x >> 31) for x in raws]
    assert map_values(r, Family.TERNARY).tolist() == [_ternary_ref(x) for x in raws]
    for x in raws:
        for n in (1, 2, 10, 784, 2**31):
            assert int(uniform_below(np.uint32(x), n)) == (x * n) >> 32


def test_gauss_map_exact_distribution():
    # Over all 2^16 values of the upper half: symmetric, mean exactly 0, variance exactly 85.
    r = (np.arange(1 << 16, dtype=np.uint32) << np.uint32(16))
    g = map_values(r, Family.GAUSS).astype(np.int64)
    assert g.min() == -30 and g.max() == 30
    assert g.sum() == 0
    assert (g * g).sum() == 85 * (1 << 16)
    assert np.array_equal(np.bincount(g + 30), np.bincount(-g + 30))


def test_ternary_and_rademacher_exact_distribution():
    r = np.arange(4, dtype=np.uint32) << np.uint32(30)
    assert sorted(map_values(r, Family.TERNARY).tolist()) == [-1, 0, 0, 1]
    assert map_values(np.array([0, 0x80000000], np.uint32), Family.RADEMACHER).tolist() == [1, -1]


def test_value_distribution_sanity():
    raw = raw_streams(stream_seeds(0, (0, 0, 0), 64), 100_000)
    g = map_values(raw, Family.GAUSS).astype(np.float64)
    assert abs(g.mean()) < 0.02
    assert abs(g.var() - 85.0) < 0.3
    t = map_values(raw, Family.TERNARY).astype(np.float64)
    assert abs(t.mean()) < 0.005 and abs(t.var() - 0.5) < 0.005
    rd = map_values(raw, Family.RADEMACHER).astype(np.float64)
    assert abs(rd.mean()) < 0.005
    # neighbouring entries of a stream are uncorrelated
    assert abs(np.corrcoef(g[:, :-1].ravel(), g[:, 1:].ravel())[0, 1]) < 0.01


@pytest.mark.parametrize("fam", list(Family))
def test_scales_make_unit_variance(fam):
    var = {Family.GAUSS: 85.0, Family.RADEMACHER: 1.0, Family.TERNARY: 0.5,
           Family.RANK1: 85.0 ** 2}[fam]
    assert math.isclose(fam.scale ** 2 * var, 1.0)
    lo, hi = fam.value_range
    assert -(2 ** (fam.entry_bits - 1)) <= lo and hi <= 2 ** (fam.entry_bits - 1) - 1


def test_stacks_are_int8_in_range():
    for fam in (Family.GAUSS, Family.RADEMACHER, Family.TERNARY):
        s = basis_stack(fam, 1, (0, 0, 0), 3, 5000)
        assert s.dtype == np.int8
        lo, hi = fam.value_range
        assert s.min() >= lo and s.max() <= hi
    with pytest.raises(ValueError):
        basis_stack(Family.RANK1, 0, (0, 0, 0), 1, 1)
    with pytest.raises(ValueError):
        basis_stack(Family.GAUSS, 0, (0, 0, 0), -1, 1)


# --- DCT grid --------------------------------------------------------------------------

def test_dct_matrix_orthonormal():
    for n in (1, 8, 28):
        c = dct_matrix(n)
        assert np.allclose(c @ c.T, np.eye(n), atol=1e-12)


def test_dct_int_is_rounded_grid_of_float_dct():
    h = w = 28
    c = dct_matrix(28)
    order = zigzag_order(h, w)
    d = dct2_int(h, w, 50)
    for row, (u, v) in enumerate(order[:50]):
        exact = np.outer(c[u], c[v]).reshape(-1) * 1024
        assert np.array_equal(d[row], np.floor(exact + 0.5).astype(np.int64))
    assert np.abs(d).max() <= 127  # int8 for 28x28 at 10 fractional bits
    assert np.array_equal(dct2_int(28, 28, 10, frac_bits=4), np.floor(
        np.array([np.outer(c[u], c[v]).reshape(-1) for u, v in order[:10]]) * 16 + 0.5))


def test_dct_prefix_nests_and_checks_args():
    assert np.array_equal(dct2_int(28, 28, 169)[:64], dct2_int(28, 28, 64))
    for bad in (0, 785):
        with pytest.raises(ValueError):
            dct2_int(28, 28, bad)
    with pytest.raises(ValueError):
        dct2_int(28, 28, 5, frac_bits=21)


def test_zigzag_is_a_permutation_in_antidiagonal_order():
    order = zigzag_order(7, 5)
    assert sorted(order) == [(r, c) for r in range(7) for c in range(5)]
    d = [r + c for r, c in order]
    assert d == sorted(d)


# --- subsampling permutation -----------------------------------------------------------

def test_permutation_prefix_is_fisher_yates():
    n = 50
    perm = permutation_prefix(4, (0, 0, 0), n, n)
    assert sorted(perm.tolist()) == list(range(n))
    raw = raw_stream(stream_seed(4, 0, 0, 0), 0, n - 1)
    ref = list(range(n))
    for t in range(n - 1):
        i = n - 1 - t
        j = (int(raw[t]) * (i + 1)) >> 32
        ref[i], ref[j] = ref[j], ref[i]
    assert perm.tolist() == ref
    assert np.array_equal(permutation_prefix(4, (0, 0, 0), n, 7), perm[:7])
    with pytest.raises(ValueError):
        permutation_prefix(0, (0,), 5, 6)
