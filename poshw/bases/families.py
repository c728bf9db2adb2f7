"""Basis families: exact maps from generator bits to small integers.

Every basis entry is ``int_value * scale``. The integer comes from the raw
32-bit xorshift output ``r`` of its stream (see ``prng``) through one of these maps:

=============  ===========================================  ==========  ===============
family         integer value from r                         range       scale (1/std)
=============  ===========================================  ==========  ===============
gauss          sum of the four nibbles of ``r >> 16`` - 30  [-30, 30]   1/sqrt(85)
rademacher     ``+1`` if bit 31 is 0, else ``-1``           {-1, +1}    1
ternary        ``r >> 30``: 0 -> -1, 1 -> +1, 2/3 -> 0      {-1, 0, 1}  sqrt(2)
=============  ===========================================  ==========  ===============

``gauss`` is the "Gaussian-like" small integer: a sum of four uniform nibbles is
symmetric about 30 with variance 4 * (16**2 - 1) / 12 = 85; hardware computes it
with three 4-bit adders. All maps fit in int8, so bases store compactly and
rademacher/ternary weight synthesis needs no multiplier.
"""

from __future__ import annotations

import math
from enum import Enum

import numpy as np

from . import prng


class Family(str, Enum):
    """Integer value map of a basis family."""

    GAUSS = "gauss"
    RADEMACHER = "rademacher"
    TERNARY = "ternary"
    #: rank-1 ``u v^T``: u then v come from one stream, each entry a ``gauss`` value.
    RANK1 = "rank1"

    @property
    def value_range(self) -> tuple[int, int]:
        return {
            Family.GAUSS: (-30, 30),
            Family.RADEMACHER: (-1, 1),
            Family.TERNARY: (-1, 1),
            Family.RANK1: (-900, 900),
        }[self]

    @property
    def scale(self) -> float:
        """Float value of one integer step; makes entries unit-variance."""
        return {
            Family.GAUSS: 1.0 / math.sqrt(85.0),
            Family.RADEMACHER: 1.0,
            Family.TERNARY: math.sqrt(2.0),
            Family.RANK1: 1.0 / 85.0,
        }[self]

    @property
    def entry_bits(self) -> int:
        """Width of a signed two's-complement integer that holds every value."""
        lo, hi = self.value_range
        return max(int(lo).bit_length(), int(hi).bit_length()) + 1


GAUSS_OFFSET = 30
_TERNARY_LUT = np.array([-1, 1, 0, 0], dtype=np.int8)


def map_gauss(raw: np.ndarray) -> np.ndarray:
    h = (np.asarray(raw, dtype=np.uint32) >> np.uint32(16)).astype(np.int16)
    s = (h & 15) + ((h >> 4) & 15) + ((h >> 8) & 15) + ((h >> 12) & 15)
    return (s - GAUSS_OFFSET).astype(np.int8)


def map_rademacher(raw: np.ndarray) -> np.ndarray:
    top = (np.asarray(raw, dtype=np.uint32) >> np.uint32(31)).astype(np.int8)
    return (1 - 2 * top).astype(np.int8)


def map_ternary(raw: np.ndarray) -> np.ndarray:
    return _TERNARY_LUT[np.asarray(raw, dtype=np.uint32) >> np.uint32(30)]


def map_values(raw: np.ndarray, family: Family) -> np.ndarray:
    """Integer basis values (int8) of raw generator outputs for an elementwise family."""
    family = Family(family)
    if family in (Family.GAUSS, Family.RANK1):
        return map_gauss(raw)
    if family is Family.RADEMACHER:
        return map_rademacher(raw)
    return map_ternary(raw)


def uniform_below(raw: np.ndarray | int, n: np.ndarray | int) -> np.ndarray:
    """Exact multiply-shift map of a raw output to ``[0, n)``: ``(r * n) >> 32``."""
    return (np.asarray(raw, dtype=np.uint64) * np.asarray(n, dtype=np.uint64)) >> np.uint64(32)


# --- stacks of bases ------------------------------------------------------------------

def basis_stack(family: Family, seed: int, path: tuple[int, ...], count: int,
                entries: int) -> np.ndarray:
    """``count x entries`` int8 integer values: basis k is stream ``(seed, *path, k)``.

    Entry ``e`` of basis ``k`` is ``map(raw_k[e])``, the state after ``e + 1`` steps.
    For ``rank1`` use :func:`rank1_vectors` instead.
    """
    family = Family(family)
    if family is Family.RANK1:
        raise ValueError("rank1 bases are stored as vectors: use rank1_vectors()")
    _check_sizes(count, entries)
    # One numba pass from seed to int8 value: no uint32 intermediate (4x the result's
    # memory). Every basis is its own stream, so the values do not depend on threads.
    code = {Family.GAUSS: prng.MAP_GAUSS, Family.RADEMACHER: prng.MAP_RADEMACHER,
            Family.TERNARY: prng.MAP_TERNARY}[family]
    return prng.mapped_streams(prng.stream_seeds(seed, path, count), entries, code)


def basis_chunk(family: Family, seed: int, path: tuple[int, ...], basis: int,
                start: int, stop: int) -> np.ndarray:
    """Entries ``start..stop-1`` of one basis, generated on their own (jump-ahead)."""
    state = prng.stream_seed(seed, *path, basis)
    return map_values(prng.raw_stream(state, start, stop - start), family)


def rank1_vectors(seed: int, path: tuple[int, ...], count: int, rows: int,
                  cols: int) -> tuple[np.ndarray, np.ndarray]:
    """``(U, V)``, int8 ``count x rows`` and ``count x cols``: basis k is ``U[k] V[k]^T``.

    Stream k's entries ``0..rows-1`` give ``u``, entries ``rows..rows+cols-1`` give ``v``.
    """
    _check_sizes(count, rows + cols)
    raw = prng.raw_streams(prng.stream_seeds(seed, path, count), rows + cols)
    vals = map_gauss(raw)
    return np.ascontiguousarray(vals[:, :rows]), np.ascontiguousarray(vals[:, rows:])


def permutation_prefix(seed: int, path: tuple[int, ...], n: int, m: int) -> np.ndarray:
    """First ``m`` entries of a seeded Fisher-Yates shuffle of ``0..n-1`` (int64).

    ``perm = [0, 1, ..., n-1]``; step ``t = 0..n-2`` takes raw output ``r_t`` of stream
    ``(seed, *path)``, ``i = n-1-t``, ``j = (r_t * (i+1)) >> 32`` and swaps ``perm[i]``,
    ``perm[j]``. The result is ``perm[:m]`` (the columns of a random permutation matrix).
    """
    if not 0 < m <= n:
        raise ValueError(f"need 0 < m <= n, got m={m}, n={n}")
    raw = prng.raw_stream(prng.stream_seed(seed, *path), 0, max(n - 1, 0))
    perm = np.arange(n, dtype=np.int64)
    for t in range(n - 1):
        i = n - 1 - t
        j = int(uniform_below(raw[t], i + 1))
        perm[i], perm[j] = perm[j], perm[i]
    return perm[:m].copy()


def _check_sizes(count: int, entries: int) -> None:
    if count < 0 or entries < 0:
        raise ValueError(f"basis count and size must be non-negative, got {count}, {entries}")
