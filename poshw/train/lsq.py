"""Least-squares coefficients of a sum of fixed bases: ``min_a ||W - sum_k a_k M_k||_F``.

Used to lift a trained decomposition into a larger one (paper section 7, staged
training) and to project any matrix onto a basis span. The normal equations
``G a = b`` with ``G_kl = <M_k, M_l>`` and ``b_k = <M_k, W>`` are assembled from the
compact integer bases, block by block over the entries, so a layer's bases are never
held as one float stack:

* dense groups (gauss / rademacher / ternary, int8 stacks ``count x entries``): the
  Gram block of two groups is the sum over entry blocks of ``S1_blk S2_blk^T`` in
  float64. Each product of two int8 values and every partial sum is an integer below
  2**53, so the integer Gram is exact;
* rank-1 groups ``u_k v_k^T``: ``<u_k v_k^T, u_l v_l^T> = (u_k.u_l)(v_k.v_l)`` and
  ``<u_k v_k^T, W> = u_k^T W v_k`` (closed forms);
* a dense group against a rank-1 group: ``u_l^T M_k v_l``, over blocks of rows.

The system is solved after symmetric diagonal scaling by a Cholesky factorisation,
falling back to an eigenvalue pseudo-inverse when the bases are linearly dependent
(then the minimum-norm coefficients are returned).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np
import torch

from ..bases import Family
from ..nn.layers import BasisSum

#: float64 entries of one converted block (32 MiB)
DEFAULT_BLOCK_VALUES = 1 << 22


@dataclass(frozen=True)
class DenseGroup:
    """``count`` flat integer bases (``stack``: int ``count x entries``) times ``scale``."""

    stack: np.ndarray
    scale: float

    @property
    def count(self) -> int:
        return int(self.stack.shape[0])


@dataclass(frozen=True)
class Rank1Group:
    """``count`` rank-1 bases ``scale * u_k v_k^T`` (``u``: count x rows, ``v``: count x cols)."""

    u: np.ndarray
    v: np.ndarray
    scale: float

    @property
    def count(self) -> int:
        return int(self.u.shape[0])


Group = Union[DenseGroup, Rank1Group]
BasisLike = Union[BasisSum, np.ndarray, torch.Tensor, Sequence[Group]]


def basis_groups(basis: BasisLike, scale: float | None = None) -> list[Group]:
    """The term groups of ``basis``: a :class:`BasisSum`, one int stack (with ``scale``,
    default 1), or a sequence of groups."""
    if isinstance(basis, BasisSum):
        if scale is not None:
            raise ValueError("scale is taken from the BasisSum (group_scale); do not pass one")
        groups: list[Group] = []
        for g, fam in enumerate(basis.families):
            if fam is Family.RANK1:
                u = getattr(basis, f"u_{g}").detach().cpu().numpy()
                v = getattr(basis, f"v_{g}").detach().cpu().numpy()
                groups.append(Rank1Group(np.rint(u).astype(np.int8), np.rint(v).astype(np.int8),
                                         basis.group_scale(g)))
            else:
                groups.append(DenseGroup(stored_stack(basis, g), basis.group_scale(g)))
        return groups
    if isinstance(basis, (np.ndarray, torch.Tensor)):
        stack = basis.detach().cpu().numpy() if isinstance(basis, torch.Tensor) else basis
        if stack.ndim < 2:
            raise ValueError(f"a basis stack needs shape (count, entries...), got {stack.shape}")
        return [DenseGroup(stack.reshape(stack.shape[0], -1), 1.0 if scale is None else float(scale))]
    groups = list(basis)
    if not groups or not all(isinstance(g, (DenseGroup, Rank1Group)) for g in groups):
        raise TypeError(f"cannot use {type(basis).__name__} as a basis: pass a BasisSum, an int "
                        f"stack or a list of DenseGroup/Rank1Group")
    return groups


def stored_stack(module: BasisSum, g: int) -> np.ndarray:
    """The int8 stack ``count x entries`` of dense group ``g`` of a BasisSum.

    The int8 store is entry-major (``entries x count``), so its transpose is a free
    view; a bit-packed store is unpacked (still int8, never float).
    """
    stores = getattr(module, "stores", None)
    if stores is not None and g in stores:
        store = stores[g]
        return store.data.T if getattr(store, "bits", 0) == 8 else store.unpack()
    return getattr(module, f"stack_{g}").detach().cpu().numpy()


def _shape_of(groups: Sequence[Group], target: np.ndarray) -> tuple[int, int]:
    """``(rows, cols)`` the rank-1 groups need; dense-only fits work on the flat target."""
    for g in groups:
        if isinstance(g, Rank1Group):
            shape = (g.u.shape[1], g.v.shape[1])
            if target.size != shape[0] * shape[1]:
                raise ValueError(f"target has {target.size} entries, rank-1 bases are {shape}")
            return shape
    return (1, target.size)


def _check_entries(groups: Sequence[Group], entries: int) -> None:
    for g in groups:
        n = g.stack.shape[1] if isinstance(g, DenseGroup) else g.u.shape[1] * g.v.shape[1]
        if n != entries:
            raise ValueError(f"basis group of {n} entries does not match a target of {entries}")


def _rows_per_block(count: int, cols: int, block_values: int) -> int:
    return max(1, block_values // max(1, count * cols))


def _f64(x: np.ndarray) -> torch.Tensor:
    """Integers as a contiguous float64 torch tensor.

    The products run in torch, not numpy: torch's BLAS follows ``torch.set_num_threads``,
    while numpy's may oversubscribe a busy machine (10x slower measured on 2 cores).
    """
    return torch.from_numpy(np.ascontiguousarray(x)).to(torch.float64)


def _entries(stack: np.ndarray, e0: int, e1: int) -> torch.Tensor:
    """Entries ``e0..e1-1`` of every basis as float64, shape ``(e1 - e0) x count``.

    The training stores are entry-major (``stack`` is then the transpose of a contiguous
    ``entries x count`` array): their rows convert without a gather.
    """
    if stack.T.flags.c_contiguous:
        return torch.from_numpy(stack.T[e0:e1]).to(torch.float64)
    return _f64(stack[:, e0:e1]).T


def _dense_dense(a: np.ndarray, b: np.ndarray | None, block_values: int) -> np.ndarray:
    """Integer Gram ``a b^T`` (``b is None``: ``a a^T``) accumulated over entry blocks."""
    count = a.shape[0] + (0 if b is None else b.shape[0])
    step = max(1, block_values // max(1, count))
    out = torch.zeros((a.shape[0], a.shape[0] if b is None else b.shape[0]), dtype=torch.float64)
    for e0 in range(0, a.shape[1], step):
        fa = _entries(a, e0, e0 + step)
        fb = fa if b is None else _entries(b, e0, e0 + step)
        out += fa.T @ fb
    return out.numpy()


def _dense_rank1(s: np.ndarray, r: Rank1Group, rows: int, cols: int,
                 block_values: int) -> np.ndarray:
    """``X[j, l] = u_l^T M_j v_l`` for dense bases ``M_j`` (rows x cols) and rank-1 ``u_l v_l^T``."""
    u = _f64(r.u)
    vt = _f64(r.v).T.contiguous()  # cols x L
    count = s.shape[0]
    out = torch.zeros((count, r.count), dtype=torch.float64)
    # bounds both the converted block (nr x cols x count) and the product (nr x count x L)
    step = _rows_per_block(count, max(cols, r.count), block_values)
    for r0 in range(0, rows, step):
        r1 = min(r0 + step, rows)
        blk = _entries(s, r0 * cols, r1 * cols).reshape(r1 - r0, cols, count)
        t = blk.transpose(1, 2) @ vt                     # nr x count x L: sum_c M_j[r, c] v_l[c]
        out += (t * u[:, r0:r1].T.unsqueeze(1)).sum(0)   # sum_r u_l[r] (...)
    return out.numpy()


def gram_matrix(basis: BasisLike, scale: float | None = None, shape: tuple[int, int] | None = None,
                block_values: int = DEFAULT_BLOCK_VALUES) -> np.ndarray:
    """``G_kl = <M_k, M_l>`` (float64, ``total x total``) in the basis' group order."""
    groups = basis_groups(basis, scale)
    rows, cols = shape if shape is not None else _infer_shape(groups)
    _check_entries(groups, rows * cols)
    offsets = np.cumsum([0] + [g.count for g in groups])
    g_all = np.zeros((offsets[-1], offsets[-1]))
    for i, gi in enumerate(groups):
        for j, gj in enumerate(groups[i:], start=i):
            if isinstance(gi, DenseGroup) and isinstance(gj, DenseGroup):
                blk = _dense_dense(gi.stack, None if i == j else gj.stack, block_values)
            elif isinstance(gi, Rank1Group) and isinstance(gj, Rank1Group):
                ui, vi = gi.u.astype(np.float64), gi.v.astype(np.float64)
                uj, vj = gj.u.astype(np.float64), gj.v.astype(np.float64)
                blk = (ui @ uj.T) * (vi @ vj.T)
            elif isinstance(gi, DenseGroup):
                blk = _dense_rank1(gi.stack, gj, rows, cols, block_values)
            else:
                blk = _dense_rank1(gj.stack, gi, rows, cols, block_values).T
            blk = blk * (gi.scale * gj.scale)
            g_all[offsets[i]:offsets[i + 1], offsets[j]:offsets[j + 1]] = blk
            g_all[offsets[j]:offsets[j + 1], offsets[i]:offsets[i + 1]] = blk.T
    return g_all


def _infer_shape(groups: Sequence[Group]) -> tuple[int, int]:
    for g in groups:
        if isinstance(g, Rank1Group):
            return (g.u.shape[1], g.v.shape[1])
    return (1, groups[0].stack.shape[1])


def project(target: np.ndarray | torch.Tensor, basis: BasisLike, scale: float | None = None,
            block_values: int = DEFAULT_BLOCK_VALUES) -> np.ndarray:
    """``b_k = <M_k, W>`` (float64) for every basis, in group order."""
    groups = basis_groups(basis, scale)
    w = _as_f64(target)
    rows, cols = _shape_of(groups, w)
    _check_entries(groups, w.size)
    w2 = w.reshape(rows, cols)
    flat = w.reshape(-1)
    out = []
    for g in groups:
        if isinstance(g, Rank1Group):
            b = np.einsum("lr,lr->l", g.u.astype(np.float64) @ w2, g.v.astype(np.float64))
        else:
            step = max(1, block_values // max(1, g.count))
            acc = torch.zeros(g.count, dtype=torch.float64)
            wt = torch.from_numpy(flat)
            for e0 in range(0, flat.size, step):
                acc += _entries(g.stack, e0, e0 + step).T @ wt[e0:e0 + step]
            b = acc.numpy()
        out.append(b * g.scale)
    return np.concatenate(out)


def _as_f64(target: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(target, torch.Tensor):
        target = target.detach().cpu().double().numpy()
    w = np.asarray(target, dtype=np.float64)
    if not np.all(np.isfinite(w)):
        raise ValueError("the target matrix has non-finite entries")
    return w


def solve_normal_equations(gram: np.ndarray, rhs: np.ndarray, ridge: float = 0.0) -> np.ndarray:
    """Solve ``(G + ridge I) a = b``; minimum-norm solution when ``G`` is singular."""
    n = gram.shape[0]
    d = np.sqrt(np.maximum(np.diag(gram), 0.0))
    d[d == 0] = 1.0
    # Equilibrate so bases of different scales (families) do not skew the conditioning.
    gs = gram / d[:, None] / d[None, :] + (ridge / (d[:, None] * d[None, :])) * np.eye(n)
    bs = rhs / d
    try:
        chol = np.linalg.cholesky(gs)
        y = np.linalg.solve(chol, bs)
        x = np.linalg.solve(chol.T, y)
        # A nearly singular G passes Cholesky with a useless answer: check the residual.
        if np.linalg.norm(gs @ x - bs) <= 1e-8 * max(np.linalg.norm(bs), 1e-300):
            return x / d
    except np.linalg.LinAlgError:
        pass
    vals, vecs = np.linalg.eigh(gs)
    keep = vals > vals.max() * n * np.finfo(np.float64).eps
    x = vecs[:, keep] @ ((vecs[:, keep].T @ bs) / vals[keep])
    return x / d


def fit_coefficients(target: np.ndarray | torch.Tensor, basis: BasisLike, *,
                     scale: float | None = None, ridge: float = 0.0,
                     block_values: int = DEFAULT_BLOCK_VALUES) -> np.ndarray:
    """Coefficients ``a`` (float64, group order) minimising ``||W - sum_k a_k M_k||_F``.

    ``basis``: a :class:`~poshw.nn.layers.BasisSum` (its int8 stacks and rank-1 vectors),
    an int stack ``count x entries`` (times ``scale``), or a list of groups. ``target``
    has the basis' entry count (a ``rows x cols`` matrix for a BasisSum).
    """
    groups = basis_groups(basis, scale)
    w = _as_f64(target)
    rows, cols = _shape_of(groups, w)
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    gram = gram_matrix(groups, shape=(rows, cols), block_values=block_values)
    rhs = project(w, groups, block_values=block_values)
    return solve_normal_equations(gram, rhs, ridge)


def combine_numpy(coefs: np.ndarray, basis: BasisLike, scale: float | None = None,
                  shape: tuple[int, int] | None = None) -> np.ndarray:
    """``sum_k a_k M_k`` in float64 (flat, or ``shape``), for residuals and tests."""
    groups = basis_groups(basis, scale)
    coefs = np.asarray(coefs, dtype=np.float64)
    total = sum(g.count for g in groups)
    if coefs.shape != (total,):
        raise ValueError(f"{coefs.shape[0] if coefs.ndim else 0} coefficients for {total} bases")
    out = None
    k = 0
    for g in groups:
        a = coefs[k:k + g.count] * g.scale
        k += g.count
        if isinstance(g, Rank1Group):
            part = ((g.u.astype(np.float64).T * a) @ g.v.astype(np.float64)).reshape(-1)
        else:
            part = a @ g.stack.astype(np.float64)
        out = part if out is None else out + part
    return out if shape is None else out.reshape(shape)


def assign_coefficients(module: BasisSum, coefs: np.ndarray) -> None:
    """Copy fitted coefficients (group order) into the module's ``coef_<g>`` parameters."""
    coefs = np.asarray(coefs)
    counts = [module.coefficient(g).numel() for g in range(len(module.families))]
    if coefs.shape != (sum(counts),):
        raise ValueError(f"{coefs.size} coefficients for a BasisSum of {sum(counts)} bases")
    k = 0
    with torch.no_grad():
        for g, n in enumerate(counts):
            p = module.coefficient(g)
            p.copy_(torch.from_numpy(coefs[k:k + n]).to(p.dtype))
            k += n


def fit_basis_sum(module: BasisSum, target: np.ndarray | torch.Tensor, ridge: float = 0.0) -> float:
    """Fit and assign ``module``'s coefficients to ``target``; return the relative residual
    ``||W - fit|| / ||W||`` (0 for a zero target)."""
    w = _as_f64(target).reshape(module.rows, module.cols)
    coefs = fit_coefficients(w, module, ridge=ridge)
    assign_coefficients(module, coefs)
    # The residual of what the module itself now computes, not of the fit on paper.
    with torch.no_grad():
        fit = module().detach().cpu().double().numpy()
    norm = np.linalg.norm(w)
    return float(np.linalg.norm(fit - w) / norm) if norm > 0 else float(np.linalg.norm(fit))
