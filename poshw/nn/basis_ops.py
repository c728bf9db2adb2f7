"""Weighted sums of compactly stored integer bases, with a lean custom backward.

``combine(a, stack, scale)`` computes ``scale * sum_k a_k M_k`` for an int8 stack
``M`` of shape ``(count, entries)`` without ever holding a float32 copy of the
whole stack: entries are processed in blocks, converted to float block by block.
Backward uses ``dL/da_k = scale * <M_k, dL/dW>``, the same blocked way.
"""

from __future__ import annotations

import numpy as np
import torch

#: entries per block; a block of the stack is converted to float32 at a time
DEFAULT_BLOCK = 1 << 16


class _Combine(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: torch.Tensor, stack: torch.Tensor, scale: float, block: int) -> torch.Tensor:
        ctx.save_for_backward(stack)
        ctx.scale, ctx.block = scale, block
        count, entries = stack.shape
        out = torch.empty(entries, dtype=a.dtype)
        a_row = (a * scale).unsqueeze(0)
        for e0 in range(0, entries, block):
            e1 = min(e0 + block, entries)
            out[e0:e1] = (a_row @ stack[:, e0:e1].to(a.dtype)).squeeze(0)
        return out

    @staticmethod
    def backward(ctx, grad_w: torch.Tensor):
        (stack,) = ctx.saved_tensors
        count, entries = stack.shape
        grad_a = torch.zeros(count, dtype=grad_w.dtype)
        g = grad_w.reshape(-1)
        for e0 in range(0, entries, ctx.block):
            e1 = min(e0 + ctx.block, entries)
            grad_a += stack[:, e0:e1].to(grad_w.dtype) @ g[e0:e1]
        return grad_a * ctx.scale, None, None, None


def combine(a: torch.Tensor, stack: torch.Tensor, scale: float,
            block: int = DEFAULT_BLOCK) -> torch.Tensor:
    """``scale * (a @ stack)`` as a flat tensor of ``stack.shape[1]`` entries.

    ``a``: float coefficients ``(count,)``; ``stack``: int8 ``(count, entries)``.
    """
    if a.dim() != 1 or stack.dim() != 2 or a.shape[0] != stack.shape[0]:
        raise ValueError(f"combine: coefficients {tuple(a.shape)} do not match basis stack "
                         f"{tuple(stack.shape)}")
    return _Combine.apply(a, stack, float(scale), int(block))


def combine_rank1(a: torch.Tensor, u: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Closed form of ``scale * sum_k a_k u_k v_k^T``: ``U^T diag(a) V`` (``u``: count x rows)."""
    return (u.t() * (a * scale)) @ v


class _CompactCombine(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: torch.Tensor, store, scale: float) -> torch.Tensor:
        ctx.store, ctx.scale = store, scale
        coef = a.detach().to(torch.float32).numpy() * np.float32(scale)
        return torch.from_numpy(store.combine(coef)).to(a.dtype)

    @staticmethod
    def backward(ctx, grad_w: torch.Tensor):
        g = grad_w.detach().reshape(-1).to(torch.float32).contiguous().numpy()
        grad = torch.from_numpy(ctx.store.correlate(g) * ctx.scale)
        return grad.to(grad_w.dtype), None, None


def combine_compact(a: torch.Tensor, store, scale: float) -> torch.Tensor:
    """``scale * sum_k a_k M_k`` over a :class:`~poshw.nn.compact.CompactStack` (flat tensor).

    The numba kernels run on the compact (int8 or bit-packed) store; the backward
    pass is ``grad a_k = scale * <M_k, dL/dW>``.
    """
    if a.dim() != 1 or a.shape[0] != store.count:
        raise ValueError(f"combine: {a.shape[0] if a.dim() == 1 else tuple(a.shape)} coefficients "
                         f"for {store.count} bases")
    return _CompactCombine.apply(a, store, float(scale))
