"""torch modules for product-of-sums layers, built from the spec dataclasses.

Bases are regenerated from the spec's seed at construction (``poshw.bases``) and
kept as non-persistent int8 buffers (or closed forms: rank-1 vectors, a single
DCT matrix, gather indices); only coefficients and biases are parameters.
Initial values come from a ``torch.Generator`` seeded per layer, never from
torch's global RNG, so the same spec and seed give the same model.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import spec as S
from ..bases import Family, basis_stack, dct2_int, permutation_prefix, rank1_vectors
from ..bases.dct import DEFAULT_FRAC_BITS
from ..bases.prng import splitmix64
from .basis_ops import combine_compact, combine_rank1
from .compact import CompactStack

#: stream path component of the initial-value generator (never used by a basis)
_INIT_FACTOR = 254


def init_generator(seed: int, layer: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(splitmix64((seed * 1000003 + layer) & 0xFFFFFFFFFFFFFFFF ^ _INIT_FACTOR) >> 1)
    return g


def _normal(shape, std: float, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=gen, dtype=torch.float32) * std


class BasisSum(nn.Module):
    """One sum ``sum_k a_k M_k`` of a ``rows x cols`` matrix (or flat tensor), mixing term groups.

    ``path`` is the stream path prefix ``(layer, factor)``; group ``g`` uses
    streams ``(seed, layer, factor, g, k)``. Each group has its own parameter
    ``coef_<g>``.
    """

    def __init__(self, terms: tuple[S.Terms, ...], rows: int, cols: int, seed: int,
                 path: tuple[int, int], gen: torch.Generator, fan_in: int):
        super().__init__()
        self.rows, self.cols = rows, cols
        self.families: list[Family] = []
        self.stores: dict[int, CompactStack] = {}
        total = sum(t.count for t in terms)
        # Coefficients are O(1) (initialised N(0, 1)); the fixed gain 1/sqrt(s * fan_in)
        # sits in the basis scale. Then W starts with variance 1/fan_in, and an optimiser
        # step of size lr moves every layer by the same relative amount whatever its
        # number of bases s (with the gain in the coefficients instead, a layer of 1024
        # bases would move 30x faster than one of 1).
        self.gain = 1.0 / math.sqrt(total * fan_in)
        std = 1.0
        for g, t in enumerate(terms):
            self.families.append(t.family)
            self.register_parameter(f"coef_{g}", nn.Parameter(_normal((t.count,), std, gen)))
            stream = (*path, g)
            if t.family is Family.RANK1:
                u, v = rank1_vectors(seed, stream, t.count, rows, cols)
                self.register_buffer(f"u_{g}", torch.from_numpy(u.astype(np.float32)), persistent=False)
                self.register_buffer(f"v_{g}", torch.from_numpy(v.astype(np.float32)), persistent=False)
            else:
                # compact int8 / bit-packed store: never a float32 copy of the stack
                self.stores[g] = CompactStack(t.family, seed, stream, t.count, rows * cols)

    def coefficient(self, g: int) -> torch.Tensor:
        return getattr(self, f"coef_{g}")

    def group_scale(self, g: int) -> float:
        """Float value of one integer step of group ``g``'s basis entries: family scale x gain.

        ``W = sum_g sum_k coef_g[k] * group_scale(g) * M_int_{g,k}``; for rank-1 the
        integer entry is ``u[r] * v[c]``.
        """
        return self.families[g].scale * self.gain

    def forward(self) -> torch.Tensor:
        total = None
        for g, fam in enumerate(self.families):
            a = self.coefficient(g)
            if fam is Family.RANK1:
                part = combine_rank1(a, getattr(self, f"u_{g}"), getattr(self, f"v_{g}"), self.group_scale(g))
            else:
                part = combine_compact(a, self.stores[g], self.group_scale(g)).view(self.rows, self.cols)
            total = part if total is None else total + part
        return total

    def forward_dense(self) -> torch.Tensor | None:
        """Sum of the non-rank-1 groups only (None if there are none)."""
        total = None
        for g, fam in enumerate(self.families):
            if fam is not Family.RANK1:
                part = combine_compact(self.coefficient(g), self.stores[g], self.group_scale(g)).view(self.rows, self.cols)
                total = part if total is None else total + part
        return total

    def apply_rank1(self, x: torch.Tensor) -> torch.Tensor | None:
        """``x @ (sum of the rank-1 groups)^T`` without forming the matrix:
        ``((x V^T) * a * scale) U`` costs batch * count * (rows + cols)."""
        total = None
        for g, fam in enumerate(self.families):
            if fam is Family.RANK1:
                u, v = getattr(self, f"u_{g}"), getattr(self, f"v_{g}")
                part = ((x @ v.t()) * (self.coefficient(g) * self.group_scale(g))) @ u
                total = part if total is None else total + part
        return total

    def materialize_bases(self) -> torch.Tensor:
        """Dense float stack ``(total, rows, cols)`` of every basis (for tests and fitting)."""
        out = []
        for g, fam in enumerate(self.families):
            if fam is Family.RANK1:
                u, v = getattr(self, f"u_{g}"), getattr(self, f"v_{g}")
                out.append(torch.einsum("kr,kc->krc", u, v) * self.group_scale(g))
            else:
                stack = torch.from_numpy(self.stores[g].unpack())
                out.append(stack.float().view(-1, self.rows, self.cols) * self.group_scale(g))
        return torch.cat(out)

    def coefficients(self) -> torch.Tensor:
        return torch.cat([self.coefficient(g) for g in range(len(self.families))])


class BiasParam(nn.Module):
    """A bias: full, none, per-channel, or a sum of fixed gauss vectors."""

    def __init__(self, bias: S.Bias, outputs: int, channels: int, seed: int, layer: int):
        super().__init__()
        self.mode, self.outputs, self.channels = bias.mode, outputs, channels
        if bias.mode is S.BiasMode.FULL:
            self.bias = nn.Parameter(torch.zeros(outputs))
        elif bias.mode is S.BiasMode.CHANNEL:
            self.bias = nn.Parameter(torch.zeros(channels))
        elif bias.mode is S.BiasMode.BASIS:
            self.bias_coef = nn.Parameter(torch.zeros(bias.count))
            self.bias_store = CompactStack(Family.GAUSS, seed, (layer, S.BIAS_FACTOR, 0), bias.count, outputs)
            #: float value of one integer step of a bias basis entry (coefficients O(1), as above)
            self.basis_scale = Family.GAUSS.scale / math.sqrt(bias.count)

    def forward(self) -> torch.Tensor | None:
        if self.mode is S.BiasMode.FULL:
            return self.bias
        if self.mode is S.BiasMode.CHANNEL:
            return self.bias.repeat_interleave(self.outputs // self.channels)
        if self.mode is S.BiasMode.BASIS:
            return combine_compact(self.bias_coef, self.bias_store, self.basis_scale)
        return None


class ProdSumLinear(nn.Module):
    """``y = (F_1 ... F_p) x + b`` with every ``F_j`` a :class:`BasisSum`."""

    def __init__(self, cfg: S.ProdSumLinear, seed: int, layer: int):
        super().__init__()
        self.cfg = cfg
        gen = init_generator(seed, layer)
        self.factors = nn.ModuleList(
            BasisSum(terms, r, c, seed, (layer, j), gen, fan_in=c)
            for j, (terms, (r, c)) in enumerate(zip(cfg.factors, cfg.factor_shapes())))
        self.bias = BiasParam(cfg.bias, cfg.n_out, 1, seed, layer)

    def weight(self) -> torch.Tensor:
        w = self.factors[0]()
        for f in self.factors[1:]:
            w = w @ f()
        return w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        if len(self.factors) == 1 and Family.RANK1 in self.factors[0].families:
            # p = 1 with rank-1 terms: apply them factored instead of forming u v^T sums
            f = self.factors[0]
            dense = f.forward_dense()
            y = f.apply_rank1(x)
            if dense is not None:
                y = y + x @ dense.t()
            b = self.bias()
            return y if b is None else y + b
        mats = [f() for f in self.factors]
        # Apply the chain to x when that is cheaper than multiplying the factors out.
        chain = x.shape[0] * sum(m.shape[0] * m.shape[1] for m in mats)
        product = sum(mats[0].shape[0] * m.shape[0] * m.shape[1] for m in mats[1:]) \
            + x.shape[0] * self.cfg.n_out * self.cfg.n_in
        if len(mats) > 1 and chain < product:
            for m in reversed(mats):
                x = x @ m.t()
            y = x
        else:
            w = mats[0]
            for m in mats[1:]:
                w = w @ m
            y = x @ w.t()
        b = self.bias()
        return y if b is None else y + b


class DenseLinear(nn.Module):
    def __init__(self, cfg: S.Linear, seed: int, layer: int):
        super().__init__()
        gen = init_generator(seed, layer)
        bound = 1.0 / math.sqrt(cfg.n_in)
        self.weight = nn.Parameter((torch.rand((cfg.n_out, cfg.n_in), generator=gen) * 2 - 1) * bound)
        self.bias = BiasParam(cfg.bias, cfg.n_out, 1, seed, layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.bias()
        return F.linear(x.flatten(1), self.weight, b)


class Conv2d(nn.Module):
    """Dense reference convolution or (``ProdSumConv2d``) a sum of fixed random filters."""

    def __init__(self, cfg: S.Conv2d, seed: int, layer: int):
        super().__init__()
        self.cfg = cfg
        gen = init_generator(seed, layer)
        fan_in = cfg.c_in * cfg.kernel * cfg.kernel
        if isinstance(cfg, S.ProdSumConv2d):
            self.kernel_sum = BasisSum(cfg.terms, cfg.c_out, fan_in, seed, (layer, 0), gen, fan_in)
        else:
            bound = 1.0 / math.sqrt(fan_in)
            self.weight = nn.Parameter((torch.rand(cfg.weight_shape, generator=gen) * 2 - 1) * bound)
        self.bias = BiasParam(cfg.bias, cfg.c_out, 1, seed, layer)

    def kernel(self) -> torch.Tensor:
        if hasattr(self, "kernel_sum"):
            return self.kernel_sum().view(self.cfg.weight_shape)
        return self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel(), self.bias(), padding=self.cfg.padding)


class Projection(nn.Module):
    """Fixed projection per channel: DCT rows, gauss matrix, pixel subsample or low-pass select."""

    def __init__(self, cfg: S.Projection, seed: int, layer: int):
        super().__init__()
        self.cfg = cfg
        if cfg.method is S.ProjectionKind.DCT:
            h, w = cfg.image
            mat = dct2_int(h, w, cfg.m).astype(np.float32) * 2.0 ** -DEFAULT_FRAC_BITS
            self.register_buffer("matrix", torch.from_numpy(mat), persistent=False)
        elif cfg.method is S.ProjectionKind.GAUSS:
            stack = basis_stack(Family.GAUSS, seed, (layer, 0, 0), 1, cfg.m * cfg.n_in)
            mat = stack.reshape(cfg.m, cfg.n_in).astype(np.float32) * self.gauss_scale(cfg)
            self.register_buffer("matrix", torch.from_numpy(mat), persistent=False)
        elif cfg.method is S.ProjectionKind.SUBSAMPLE:
            idx = permutation_prefix(seed, (layer, 0, 0), cfg.n_in, cfg.m)
            self.register_buffer("index", torch.from_numpy(idx), persistent=False)

    @staticmethod
    def gauss_scale(cfg: S.Projection) -> float:
        # unit-variance entries / sqrt(n_in): outputs keep the scale of the inputs
        return Family.GAUSS.scale / math.sqrt(cfg.n_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        x = x.reshape(n, self.cfg.channels, self.cfg.n_in)
        kind = self.cfg.method
        if kind is S.ProjectionKind.SELECT:
            y = x[:, :, : self.cfg.m]
        elif kind is S.ProjectionKind.SUBSAMPLE:
            y = x.index_select(2, self.index)
        else:
            y = x @ self.matrix.t()
        return y.reshape(n, -1)


class Hadamard(nn.Module):
    """Diagonal filters ``d_f = sum_k a_k D_{k,f}`` applied elementwise (paper section 6)."""

    def __init__(self, cfg: S.Hadamard, seed: int, layer: int):
        super().__init__()
        self.cfg = cfg
        gen = init_generator(seed, layer)
        # one coefficient per filter tuple; filters start near unit gain in expectation
        self.diag_sum = BasisSum((cfg.terms,), cfg.filters, cfg.n, seed, (layer, 0), gen, fan_in=1)
        self.bias = BiasParam(cfg.bias, cfg.filters * cfg.n, cfg.filters, seed, layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        x = x.reshape(n, self.cfg.channels_in, self.cfg.n)
        y = (x * self.diag_sum().unsqueeze(0)).reshape(n, -1)
        b = self.bias()
        return y if b is None else y + b


class Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def build_layer(cfg: S.LayerSpec, seed: int, layer: int) -> nn.Module:
    if isinstance(cfg, S.ProdSumLinear):
        return ProdSumLinear(cfg, seed, layer)
    if isinstance(cfg, S.Linear):
        return DenseLinear(cfg, seed, layer)
    if isinstance(cfg, S.Conv2d):
        return Conv2d(cfg, seed, layer)
    if isinstance(cfg, S.Projection):
        return Projection(cfg, seed, layer)
    if isinstance(cfg, S.Hadamard):
        return Hadamard(cfg, seed, layer)
    if isinstance(cfg, S.ReLU):
        return nn.ReLU()
    if isinstance(cfg, S.MaxPool2d):
        return nn.MaxPool2d(cfg.kernel)
    if isinstance(cfg, S.Flatten):
        return Flatten()
    if isinstance(cfg, S.Dropout):
        return nn.Dropout(cfg.p)
    raise S.SpecError(f"layer {layer}: no torch implementation for {type(cfg).__name__}")
