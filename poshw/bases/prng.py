"""The integer basis generator: xorshift32 plus a splitmix64 seed derivation.

This is the contract between software and hardware (see docs/BASES.md):

* ``stream_seed(seed, *path)`` derives a non-zero 32-bit state for one basis
  stream from the model seed and a path of small integers (layer, factor, term
  group, basis index). Hardware stores these states in a small seed ROM.
* ``xorshift32`` (Marsaglia's 13/17/5 triple) advances the state; the value of
  entry ``e`` of a stream comes from the state after ``e + 1`` steps. A step is
  three shift-xors, so hardware produces one entry per cycle.
* Because xorshift32 is linear over GF(2), ``jump(state, n)`` skips ``n`` steps
  with a 32x32 bit-matrix power; any chunk of a stream can be generated on its
  own, so results never depend on chunk size or thread count.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

MASK32 = 0xFFFFFFFF
MASK64 = 0xFFFFFFFFFFFFFFFF
# Replacement for a derived all-zero state (xorshift's only fixed point).
ZERO_STATE_REPLACEMENT = 0x6D2B79F5


def xorshift32(state: int) -> int:
    """One step of xorshift32 (shifts 13, 17, 5) on a Python int."""
    x = state & MASK32
    x ^= (x << 13) & MASK32
    x ^= x >> 17
    x ^= (x << 5) & MASK32
    return x


def splitmix64(z: int) -> int:
    """The splitmix64 finaliser (Steele, Lea, Flood 2014) on a 64-bit int."""
    z = (z + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def stream_seed(seed: int, *path: int) -> int:
    """Non-zero 32-bit xorshift state for the stream named by ``(seed, *path)``.

    ``h = splitmix64(seed)``; for each path element ``p``: ``h = splitmix64(h ^ p)``;
    the state is the upper 32 bits of ``h`` (``ZERO_STATE_REPLACEMENT`` if zero).
    """
    if seed < 0 or any(p < 0 for p in path):
        raise ValueError(f"seed and stream path must be non-negative, got {seed}, {path}")
    h = splitmix64(seed & MASK64)
    for p in path:
        h = splitmix64(h ^ (p & MASK64))
    s = h >> 32
    return s if s != 0 else ZERO_STATE_REPLACEMENT


def stream_seeds(seed: int, prefix: tuple[int, ...], count: int) -> np.ndarray:
    """Seeds of ``count`` consecutive streams ``(seed, *prefix, k)``, k = 0..count-1."""
    return np.array([stream_seed(seed, *prefix, k) for k in range(count)], dtype=np.uint32)


# --- jump-ahead over GF(2) -------------------------------------------------------------

def _step_matrix() -> np.ndarray:
    """Columns of the 32x32 GF(2) matrix of one xorshift32 step (column i = image of bit i)."""
    return np.array([xorshift32(1 << i) for i in range(32)], dtype=np.uint64)


def _mat_apply(cols: np.ndarray, x: int) -> int:
    out = 0
    i = 0
    while x:
        if x & 1:
            out ^= int(cols[i])
        x >>= 1
        i += 1
    return out


def _mat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Columns of A @ B (apply B first)."""
    return np.array([_mat_apply(a, int(c)) for c in b], dtype=np.uint64)


_POW2_MATRICES: list[np.ndarray] = [_step_matrix()]
for _ in range(63):
    _POW2_MATRICES.append(_mat_mul(_POW2_MATRICES[-1], _POW2_MATRICES[-1]))


def jump(state: int, steps: int) -> int:
    """The state after ``steps`` xorshift32 steps from ``state``, in O(log steps)."""
    if steps < 0:
        raise ValueError("steps must be non-negative")
    x = state & MASK32
    i = 0
    while steps:
        if steps & 1:
            x = _mat_apply(_POW2_MATRICES[i], x)
        steps >>= 1
        i += 1
    return x


# --- bulk generation (numba) -----------------------------------------------------------

@njit(cache=True, inline="always")
def _step(x: np.uint64) -> np.uint64:
    # 64-bit arithmetic with explicit masks: numba promotes uint32 shifts to 64 bits.
    m = np.uint64(MASK32)
    x = (x ^ (x << np.uint64(13))) & m
    x = x ^ (x >> np.uint64(17))
    return (x ^ (x << np.uint64(5))) & m


@njit(cache=True, nogil=True)
def _fill_raw(state: np.uint32, out: np.ndarray) -> np.uint32:
    x = np.uint64(state)
    for i in range(out.shape[0]):
        x = _step(x)
        out[i] = x
    return np.uint32(x)


def raw_stream(state: int, start: int, count: int) -> np.ndarray:
    """Raw 32-bit outputs of entries ``start .. start+count-1`` of the stream seeded by ``state``."""
    out = np.empty(count, dtype=np.uint32)
    if count:
        _fill_raw(np.uint32(jump(state, start)), out)
    return out


@njit(cache=True, parallel=True)
def _fill_many_raw(states: np.ndarray, out: np.ndarray) -> None:
    for k in prange(states.shape[0]):
        x = np.uint64(states[k])
        row = out[k]
        for i in range(row.shape[0]):
            x = _step(x)
            row[i] = x


def raw_streams(states: np.ndarray, count: int, start: int = 0) -> np.ndarray:
    """``len(states) x count`` raw outputs: entries ``start..start+count-1`` of each stream."""
    states = np.asarray(states, dtype=np.uint32)
    if start:
        states = np.array([jump(int(s), start) for s in states], dtype=np.uint32)
    out = np.empty((states.shape[0], count), dtype=np.uint32)
    if count and states.shape[0]:
        _fill_many_raw(states, out)
    return out


@njit(cache=True, nogil=True)
def period_from(state: np.uint32, limit: np.int64) -> np.int64:
    """Steps until the stream returns to ``state`` (or -1 after ``limit`` steps)."""
    x = np.uint64(state)
    start = x
    n = np.int64(0)
    while n < limit:
        x = _step(x)
        n += 1
        if x == start:
            return n
    return np.int64(-1)


#: value-map codes of the numba kernels (see families.py for the maps themselves)
MAP_GAUSS, MAP_RADEMACHER, MAP_TERNARY = 0, 1, 2


@njit(cache=True, inline="always")
def _map_value(x: np.uint64, code: int) -> np.int8:
    if code == 0:
        h = x >> np.uint64(16)
        s = (h & np.uint64(15)) + ((h >> np.uint64(4)) & np.uint64(15)) \
            + ((h >> np.uint64(8)) & np.uint64(15)) + ((h >> np.uint64(12)) & np.uint64(15))
        return np.int8(np.int64(s) - 30)
    if code == 1:
        return np.int8(1 - 2 * np.int64(x >> np.uint64(31)))
    t = np.int64(x >> np.uint64(30))
    if t == 0:
        return np.int8(-1)
    if t == 1:
        return np.int8(1)
    return np.int8(0)


@njit(cache=True, parallel=True)
def _fill_many_mapped(states: np.ndarray, code: int, out: np.ndarray) -> None:
    for k in prange(states.shape[0]):
        x = np.uint64(states[k])
        row = out[k]
        for i in range(row.shape[0]):
            x = _step(x)
            row[i] = _map_value(x, code)


def mapped_streams(states: np.ndarray, count: int, code: int) -> np.ndarray:
    """int8 values of entries ``0..count-1`` of each stream, mapped in one pass.

    Same values as ``map_values(raw_streams(states, count))`` without the uint32
    intermediate (4x the memory of the result, which matters for big layers).
    """
    states = np.asarray(states, dtype=np.uint32)
    out = np.empty((states.shape[0], count), dtype=np.int8)
    if count and states.shape[0]:
        _fill_many_mapped(states, code, out)
    return out
