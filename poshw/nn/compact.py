"""Compact storage of fixed basis stacks and the numba kernels that combine them.

A group of ``count`` bases of ``entries`` entries each is stored entry-major, so
that one entry's values for every basis are adjacent in memory:

* ``gauss`` (``[-30, 30]``): int8, ``entries x count`` bytes.
* ``rademacher`` (+-1): one bit per basis, 8 bases per byte, ``entries x ceil(count/8)``
  bytes. Combining uses a 256-entry table per byte of partial sums of the
  coefficients (``T_g[b] = sum_j +-a_{8g+j}``), so an entry costs ``count/8`` table
  lookups instead of ``count`` multiply-adds.
* ``ternary`` (-1, 0, +1): two bits per basis, 4 bases per byte, tables the same way.

Forward: ``W[e] = scale * sum_k a_k M_k[e]``. Backward: ``grad a_k = scale * sum_e M_k[e] G[e]``;
for packed stores via a per-byte histogram ``H_g[b] = sum_{e: byte_g[e] = b} G[e]``, then
``grad a_{g,j} = sum_b H_g[b] * value_j(b)``. The stored values are exactly the
generator's (``poshw.bases``): packing is lossless, and :meth:`CompactStack.unpack`
returns the int8 stack for tests and least-squares fitting.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..bases import Family
from ..bases import prng

#: partial sums of a correlation, reduced in a fixed order (see CompactStack.correlate)
_CORRELATE_CHUNKS = 16
#: bases generated at once while building a store (bounds the int8 temporary)
_GEN_CHUNK_ENTRIES = 1 << 24

# bits per basis and the value of each code, per packed family
_PACKED = {
    Family.RADEMACHER: (1, np.array([1, -1], dtype=np.int8)),
    Family.TERNARY: (2, np.array([0, 1, -1, 0], dtype=np.int8)),
}
_MAP_CODE = {Family.GAUSS: prng.MAP_GAUSS, Family.RADEMACHER: prng.MAP_RADEMACHER,
             Family.TERNARY: prng.MAP_TERNARY}


# fastmath lets the reduction over bases vectorise (summation order is free here)
@njit(cache=True, parallel=True, fastmath=True)
def _combine_int8(stack: np.ndarray, a: np.ndarray, out: np.ndarray) -> None:
    entries, count = stack.shape
    for e in prange(entries):
        acc = np.float32(0.0)
        row = stack[e]
        for k in range(count):
            acc += np.float32(row[k]) * a[k]
        out[e] = acc


@njit(cache=True, parallel=True, fastmath=True)
def _grad_int8(stack: np.ndarray, g: np.ndarray, n_chunks: int, partial: np.ndarray) -> None:
    entries, count = stack.shape
    per = (entries + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        acc = partial[c]
        for e in range(c * per, min(entries, (c + 1) * per)):
            ge = g[e]
            row = stack[e]
            for k in range(count):
                acc[k] += np.float32(row[k]) * ge


@njit(cache=True)
def _tables(a: np.ndarray, bits: int, values: np.ndarray, groups: int) -> np.ndarray:
    per_byte = 8 // bits
    mask = (1 << bits) - 1
    t = np.zeros((groups, 256), dtype=np.float32)
    for g in range(groups):
        for b in range(256):
            s = np.float32(0.0)
            for j in range(per_byte):
                k = g * per_byte + j
                if k < a.shape[0]:
                    s += values[(b >> (j * bits)) & mask] * a[k]
            t[g, b] = s
    return t


@njit(cache=True, parallel=True)
def _combine_packed(packed: np.ndarray, tables: np.ndarray, out: np.ndarray) -> None:
    entries, groups = packed.shape
    for e in prange(entries):
        acc = np.float32(0.0)
        row = packed[e]
        for g in range(groups):
            acc += tables[g, row[g]]
        out[e] = acc


@njit(cache=True, parallel=True)
def _histograms(packed: np.ndarray, g: np.ndarray, n_chunks: int, hist: np.ndarray) -> None:
    entries, groups = packed.shape
    per = (entries + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        h = hist[c]
        for e in range(c * per, min(entries, (c + 1) * per)):
            ge = g[e]
            row = packed[e]
            for j in range(groups):
                h[j, row[j]] += ge


@njit(cache=True)
def _grad_from_histograms(hist: np.ndarray, bits: int, values: np.ndarray, count: int) -> np.ndarray:
    per_byte = 8 // bits
    mask = (1 << bits) - 1
    groups = hist.shape[0]
    grad = np.zeros(count, dtype=np.float64)
    for g in range(groups):
        for j in range(per_byte):
            k = g * per_byte + j
            if k >= count:
                break
            s = 0.0
            for b in range(256):
                s += hist[g, b] * values[(b >> (j * bits)) & mask]
            grad[k] = s
    return grad


@njit(cache=True, parallel=True)
def _pack(values: np.ndarray, k0: int, bits: int, out: np.ndarray) -> None:
    # values: int8 [kc, entries] of bases k0..k0+kc-1; OR their codes into out [entries, groups]
    per_byte = 8 // bits
    kc, entries = values.shape
    for e in prange(entries):
        for i in range(kc):
            k = k0 + i
            v = values[i, e]
            if bits == 1:
                code = 1 if v < 0 else 0
            else:
                code = 1 if v > 0 else (2 if v < 0 else 0)
            out[e, k // per_byte] |= np.uint8(code << ((k % per_byte) * bits))


class CompactStack:
    """``count`` bases of ``entries`` entries of one family, stored compactly (see module doc)."""

    def __init__(self, family: Family, seed: int, path: tuple[int, ...], count: int, entries: int):
        self.family = Family(family)
        if self.family is Family.RANK1:
            raise ValueError("rank1 bases use the closed form, not a stack")
        self.count, self.entries = count, entries
        seeds = prng.stream_seeds(seed, path, count)
        code = _MAP_CODE[self.family]
        chunk = max(1, _GEN_CHUNK_ENTRIES // max(entries, 1))
        if self.family in _PACKED:
            bits, self._values = _PACKED[self.family]
            self.bits = bits
            groups = -(-count * bits // 8)
            self.data = np.zeros((entries, groups), dtype=np.uint8)
            for k0 in range(0, count, chunk):
                vals = prng.mapped_streams(seeds[k0:k0 + chunk], entries, code)
                _pack(vals, k0, bits, self.data)
        else:
            self.bits = 8
            self.data = np.empty((entries, count), dtype=np.int8)
            for k0 in range(0, count, chunk):
                self.data[:, k0:k0 + chunk] = prng.mapped_streams(seeds[k0:k0 + chunk], entries, code).T

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    def combine(self, a: np.ndarray) -> np.ndarray:
        """``sum_k a_k M_k`` (float32, ``entries``) for float32 coefficients ``a``."""
        a = np.ascontiguousarray(a, dtype=np.float32)
        out = np.empty(self.entries, dtype=np.float32)
        if self.bits == 8:
            _combine_int8(self.data, a, out)
        else:
            _combine_packed(self.data, _tables(a, self.bits, self._values, self.data.shape[1]), out)
        return out

    def correlate(self, g: np.ndarray) -> np.ndarray:
        """``<M_k, g>`` for every basis (float64, ``count``) for a float32 ``g`` of ``entries``."""
        g = np.ascontiguousarray(g, dtype=np.float32)
        # a fixed number of chunks (not the thread count): the float sums, hence training,
        # are the same bit for bit on any number of threads
        chunks = max(1, min(_CORRELATE_CHUNKS, self.entries // 4096))
        if self.bits == 8:
            partial = np.zeros((chunks, self.count), dtype=np.float32)
            _grad_int8(self.data, g, chunks, partial)
            return partial.astype(np.float64).sum(axis=0)
        hist = np.zeros((chunks, self.data.shape[1], 256), dtype=np.float64)
        _histograms(self.data, g, chunks, hist)
        return _grad_from_histograms(hist.sum(axis=0), self.bits, self._values, self.count)

    def unpack(self) -> np.ndarray:
        """The int8 stack ``count x entries`` (exactly the generator's values)."""
        if self.bits == 8:
            return np.ascontiguousarray(self.data.T)
        per_byte = 8 // self.bits
        mask = (1 << self.bits) - 1
        out = np.empty((self.count, self.entries), dtype=np.int8)
        for k in range(self.count):
            codes = (self.data[:, k // per_byte] >> ((k % per_byte) * self.bits)) & mask
            out[k] = self._values[codes]
        return out
