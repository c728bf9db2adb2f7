"""Fixed bases defined at the integer level: generator, value maps, DCT grid.

See docs/BASES.md for the contract with the hardware and golden vectors.
"""

from .dct import DEFAULT_FRAC_BITS, dct2_int, dct_matrix, zigzag_order
from .families import (
    Family,
    basis_chunk,
    basis_stack,
    map_values,
    permutation_prefix,
    rank1_vectors,
    uniform_below,
)
from .prng import jump, raw_stream, raw_streams, stream_seed, stream_seeds, xorshift32

__all__ = [
    "DEFAULT_FRAC_BITS", "Family", "basis_chunk", "basis_stack", "dct2_int", "dct_matrix",
    "jump", "map_values", "permutation_prefix", "rank1_vectors", "raw_stream", "raw_streams",
    "stream_seed", "stream_seeds", "uniform_below", "xorshift32", "zigzag_order",
]
