"""Weighted sums of compactly stored integer bases, with a lean custom backward.

``combine(a, stack, scale)`` computes ``scale * sum_k a_k M_k`` for an int8 stack
``M`` of shape ``(count, entries)`` without ever holding a float32 copy of the
whole stack: entries are processed in blocks, converted to float block by block.
Backward uses ``dL/da_k = scale * <M_k, dL/dW>``, the same blocked way.
"""

from __future__ import annotations

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
