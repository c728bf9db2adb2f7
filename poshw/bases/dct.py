"""Truncated 2-D DCT on a fixed integer grid.

The orthonormal DCT-II of an ``h x w`` image has entries
``C2[(u,v),(i,j)] = c_u(i) * c_v(j)`` with ``c_u(i) = alpha_u cos(pi (2i+1) u / 2n)``,
``alpha_0 = sqrt(1/n)``, ``alpha_u = sqrt(2/n)``. poshw stores
``floor(C2 * 2**frac_bits + 0.5)`` (round half up) as integers; the default 10
fractional bits keep a 28x28 DCT in int8. Rows are ordered by the JPEG zigzag
so "the lowest m coefficients" is the first m rows.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

DEFAULT_FRAC_BITS = 10


def dct_matrix(n: int) -> np.ndarray:
    """The orthonormal n-point DCT-II matrix (float64), rows = frequencies."""
    u = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    c = np.cos(math.pi * (2 * i + 1) * u / (2 * n))
    alpha = np.where(u == 0, math.sqrt(1.0 / n), math.sqrt(2.0 / n))
    return alpha * c


def zigzag_order(h: int, w: int) -> list[tuple[int, int]]:
    """JPEG zigzag order of the ``(row, col)`` frequencies of an ``h x w`` block.

    Anti-diagonals ``d = row + col`` in increasing order; on odd ``d`` rows increase,
    on even ``d`` rows decrease ((0,0), (0,1), (1,0), (2,0), (1,1), (0,2), ...).
    """
    cells = [(r, c) for r in range(h) for c in range(w)]
    return sorted(cells, key=lambda rc: (rc[0] + rc[1], rc[0] if (rc[0] + rc[1]) % 2 else -rc[0]))


@lru_cache(maxsize=16)
def _dct2_int_full(h: int, w: int, frac_bits: int) -> np.ndarray:
    ch, cw = dct_matrix(h), dct_matrix(w)
    rows = []
    for u, v in zigzag_order(h, w):
        rows.append(np.outer(ch[u], cw[v]).reshape(-1))
    full = np.floor(np.array(rows) * (1 << frac_bits) + 0.5).astype(np.int64)
    full.setflags(write=False)
    return full


def dct2_int(h: int, w: int, m: int, frac_bits: int = DEFAULT_FRAC_BITS) -> np.ndarray:
    """Integer matrix ``m x (h*w)``: the lowest ``m`` zigzag 2-D DCT rows, times ``2**frac_bits``.

    Pixels are flattened row-major. The float basis is ``dct2_int(...) * 2**-frac_bits``.
    """
    if not 0 < m <= h * w:
        raise ValueError(f"DCT size m must be in 1..{h * w} for a {h}x{w} image, got {m}")
    if not 0 <= frac_bits <= 20:
        raise ValueError(f"frac_bits must be in 0..20, got {frac_bits}")
    return _dct2_int_full(h, w, frac_bits)[:m].copy()
