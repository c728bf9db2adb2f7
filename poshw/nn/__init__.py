"""torch side: product-of-sums layers and the float model built from a spec."""

from .basis_ops import combine, combine_rank1
from .model import PoshwNet, build_model

__all__ = ["PoshwNet", "build_model", "combine", "combine_rank1"]
