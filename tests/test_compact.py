"""The compact basis stores and their numba kernels against dense numpy arithmetic."""

import numpy as np
from hypothesis import given, settings, strategies as st

from poshw.bases import Family, basis_stack
from poshw.nn.compact import CompactStack

FAMILIES = (Family.GAUSS, Family.RADEMACHER, Family.TERNARY)


@settings(max_examples=40, deadline=None)
@given(family=st.sampled_from(FAMILIES), count=st.integers(1, 37), entries=st.integers(1, 300),
       seed=st.integers(0, 2**32), data=st.data())
def test_combine_and_correlate_equal_dense_arithmetic(family, count, entries, seed, data):
    store = CompactStack(family, seed, (3, 1, 2), count, entries)
    dense = basis_stack(family, seed, (3, 1, 2), count, entries).astype(np.float64)
    assert np.array_equal(store.unpack(), dense.astype(np.int8))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32)))
    a = rng.standard_normal(count).astype(np.float32)
    g = rng.standard_normal(entries).astype(np.float32)
    w = store.combine(a)
    assert w.shape == (entries,) and w.dtype == np.float32
    np.testing.assert_allclose(w, a.astype(np.float64) @ dense, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(store.correlate(g), dense @ g.astype(np.float64), rtol=1e-5, atol=1e-3)


def test_packed_stores_are_small():
    # +-1: one bit per basis, ternary: two bits; gauss: one byte
    assert CompactStack(Family.RADEMACHER, 0, (0,), 64, 1000).nbytes == 1000 * 8
    assert CompactStack(Family.TERNARY, 0, (0,), 64, 1000).nbytes == 1000 * 16
    assert CompactStack(Family.GAUSS, 0, (0,), 64, 1000).nbytes == 1000 * 64


def test_results_do_not_depend_on_thread_count():
    from numba import get_num_threads, set_num_threads

    store = CompactStack(Family.RADEMACHER, 5, (1,), 20, 50_000)
    a = np.linspace(-1, 1, 20, dtype=np.float32)
    g = np.sin(np.arange(50_000, dtype=np.float32))
    before = get_num_threads()
    try:
        set_num_threads(1)
        w1, c1 = store.combine(a), store.correlate(g)
        set_num_threads(before)
        w2, c2 = store.combine(a), store.correlate(g)
    finally:
        set_num_threads(before)
    assert np.array_equal(w1, w2)
    assert np.array_equal(c1, c2)
