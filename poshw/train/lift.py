"""Staged training (paper section 7): initialise a model from a trained, smaller one.

Layers are matched by index; the two models must have the same layer kinds in the
same order (a ``Linear`` and a ``ProdSumLinear`` of the same shape count as the same
kind, likewise dense and product-of-sums convolutions). For each layer with
trainable values:

* dense weights of identical shape are copied;
* a product-of-sums target with one factor (``p = 1``) is fitted by least squares
  (:mod:`poshw.train.lsq`) to the source's materialised weight (dense, or the
  product of the source's factors);
* a product-of-sums target with ``p > 1`` is fitted factor by factor, which needs a
  source with the same factor shapes (fitting a product to a product is not a linear
  problem, so anything else is reported as not liftable);
* biases: a full bias is copied, a bias that is a sum of fixed vectors is fitted by
  least squares, a per-channel bias takes the per-channel mean (its least-squares
  fit) or is copied.

When the bases nest (same seed, and the target's term groups start with the source's,
as when only the counts ``s_j`` grow), basis ``k`` of the target is the very stream of
the source's basis ``k``, so the fit reproduces the source exactly.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .. import PoshwError
from .. import spec as S
from ..coefset import CoefficientSet, load as load_coefset
from ..nn import PoshwNet
from ..nn import layers as L
from .lsq import DenseGroup, fit_basis_sum, fit_coefficients

#: relative residual below which a fit counts as exact in the report
EXACT = 1e-6


class LiftError(PoshwError):
    """The source cannot initialise the target."""


@dataclass(frozen=True)
class LiftStep:
    layer: int
    kind: str
    #: "copied", "fitted", "not lifted" (kept its fresh initial values) or "fixed"
    action: str
    detail: str
    #: relative Frobenius residual of a least-squares fit
    residual: float | None = None

    def line(self) -> str:
        res = "" if self.residual is None else f" (relative residual {self.residual:.2e})"
        return f"layer {self.layer} {self.kind}: {self.action}: {self.detail}{res}"


@dataclass
class LiftReport:
    source: str
    steps: list[LiftStep] = field(default_factory=list)

    @property
    def not_lifted(self) -> list[LiftStep]:
        return [s for s in self.steps if s.action == "not lifted"]

    def lines(self) -> list[str]:
        return [f"initialised from {self.source}:"] + ["  " + s.line() for s in self.steps]


def _family(cfg: S.LayerSpec) -> str:
    if isinstance(cfg, (S.Linear, S.ProdSumLinear)):
        return "linear"
    if isinstance(cfg, S.Conv2d):
        return "conv"
    return cfg.kind


def _rel(fit: torch.Tensor, target: torch.Tensor) -> float:
    n = float(target.norm())
    return float((fit - target).norm()) / n if n > 0 else float(fit.norm())


def _source_model(source: PoshwNet | CoefficientSet | str | Path) -> tuple[PoshwNet, str]:
    """A float64 copy of the source model (the fit should not inherit float32 rounding)."""
    if isinstance(source, PoshwNet):
        return copy.deepcopy(source).double(), f"model {source.spec.name!r}"
    if isinstance(source, (str, Path)):
        cs = load_coefset(source)
        name = str(source)
    elif isinstance(source, CoefficientSet):
        cs, name = source, f"coefficient set of {source.spec.name!r}"
    else:
        raise TypeError(f"cannot lift from {type(source).__name__}")
    return cs.build_model().double(), name


@torch.no_grad()
def lift_model(target: PoshwNet, source: PoshwNet | CoefficientSet | str | Path, *,
               strict: bool = True) -> LiftReport:
    """Initialise ``target``'s trainable values from ``source`` by copying and least squares.

    ``source``: a model, a coefficient set, or a path to a run directory / ``coefs.npz``.
    With ``strict`` a layer that cannot be lifted raises :class:`LiftError` (after
    nothing has been changed); otherwise it keeps its initial values and the report
    says so.
    """
    src_model, name = _source_model(source)
    report = LiftReport(name)
    t_layers, s_layers = target.spec.layers, src_model.spec.layers
    if len(t_layers) != len(s_layers) or any(_family(a) != _family(b) for a, b in zip(t_layers, s_layers)):
        raise LiftError(f"cannot initialise {target.spec.name!r} from {src_model.spec.name!r}: the "
                        f"layer kinds differ ({[_family(c) for c in s_layers]} vs "
                        f"{[_family(c) for c in t_layers]}); staged training needs the same "
                        f"architecture with different decompositions")
    if target.spec.input_shape != src_model.spec.input_shape:
        raise LiftError(f"input shapes differ: {src_model.spec.input_shape} vs {target.spec.input_shape}")
    # A strict failure must leave the target untouched: restore it on any error.
    saved = {k: v.clone() for k, v in target.state_dict().items()}
    try:
        for i, (tc, sc) in enumerate(zip(t_layers, s_layers)):
            tm, sm = target.layers[i], src_model.layers[i]
            if isinstance(tc, S.Projection):
                report.steps.append(_check_projection(i, tc, sc, target.spec.seed,
                                                      src_model.spec.seed))
            else:
                report.steps.extend(_lift_layer(i, tc, sc, tm, sm))
        bad = report.not_lifted
        if strict and bad:
            raise LiftError("cannot lift every layer:\n" + "\n".join("  " + s.line() for s in bad)
                            + "\n(pass --partial-init to keep fresh values for these layers)")
    except BaseException:
        target.load_state_dict(saved)
        raise
    return report


def _lift_layer(i: int, tc: S.LayerSpec, sc: S.LayerSpec, tm: nn.Module,
                sm: nn.Module) -> list[LiftStep]:
    kind = type(tc).__name__
    if isinstance(tc, (S.Linear, S.ProdSumLinear)):
        return _lift_linear(i, kind, tc, sc, tm, sm)
    if isinstance(tc, S.Conv2d):
        return _lift_conv(i, kind, tc, sc, tm, sm)
    if isinstance(tc, S.Hadamard):
        assert isinstance(sc, S.Hadamard)
        steps = []
        if (tc.n, tc.filters, tc.depthwise) != (sc.n, sc.filters, sc.depthwise):
            steps.append(LiftStep(i, kind, "not lifted",
                                  f"filter shape {sc.filters}x{sc.n} (depthwise={sc.depthwise}) vs "
                                  f"{tc.filters}x{tc.n} (depthwise={tc.depthwise})"))
        else:
            res = fit_basis_sum(tm.diag_sum, sm.diag_sum())
            steps.append(LiftStep(i, kind, "fitted", f"{tc.terms.count} diagonal tuples", res))
        return steps + _lift_bias(i, kind, tm.bias, sm.bias, tc.filters)
    return []  # ReLU, pooling, flatten, dropout: nothing trainable


def _check_projection(i: int, tc: S.Projection, sc: S.Projection, t_seed: int,
                      s_seed: int) -> LiftStep:
    # Random projections are drawn from the model seed: the same spec with another seed
    # is another projection.
    seeded = tc.method in (S.ProjectionKind.GAUSS, S.ProjectionKind.SUBSAMPLE)
    if tc != sc or (seeded and t_seed != s_seed):
        what = f"{sc} vs {tc}" if tc != sc else f"seed {s_seed} vs {t_seed}"
        return LiftStep(i, "Projection", "not lifted",
                        f"fixed projection differs ({what}): weights after it would not mean "
                        f"the same")
    return LiftStep(i, "Projection", "fixed", "identical fixed projection")


def _source_weight(sm: nn.Module) -> torch.Tensor:
    return sm.weight() if isinstance(sm, L.ProdSumLinear) else sm.weight


def _lift_linear(i, kind, tc, sc, tm, sm) -> list[LiftStep]:
    steps: list[LiftStep] = []
    if (tc.n_in, tc.n_out) != (sc.n_in, sc.n_out):
        steps.append(LiftStep(i, kind, "not lifted",
                              f"shape {sc.n_out}x{sc.n_in} vs {tc.n_out}x{tc.n_in}"))
        return steps
    w = _source_weight(sm)
    if isinstance(tc, S.Linear):
        tm.weight.copy_(w.to(tm.weight.dtype))
        steps.append(LiftStep(i, kind, "copied", f"dense {tc.n_out}x{tc.n_in} weight"))
    elif len(tc.factors) == 1:
        res = fit_basis_sum(tm.factors[0], w)
        src = ("dense weight" if isinstance(sc, S.Linear)
               else f"product of {len(sc.factors)} sums" if len(sc.factors) > 1 else "sum")
        steps.append(LiftStep(i, kind, "fitted",
                              f"{tc.trainable_parameters() - tc.bias.parameters(tc.n_out)} "
                              f"coefficients to the source's {src}", res))
    elif isinstance(sc, S.ProdSumLinear) and sc.factor_shapes() == tc.factor_shapes():
        worst = 0.0
        for j, (tf, sf) in enumerate(zip(tm.factors, sm.factors)):
            worst = max(worst, fit_basis_sum(tf, sf()))
        # Factor residuals do not say how close the product is: report the product's.
        steps.append(LiftStep(i, kind, "fitted",
                              f"factor by factor ({len(tc.factors)} factors "
                              f"{tc.factor_shapes()}; worst factor residual {worst:.2e})",
                              _rel(tm.weight().double(), w)))
    else:
        src = (f"factor shapes {sc.factor_shapes()}" if isinstance(sc, S.ProdSumLinear)
               else "a dense weight")
        steps.append(LiftStep(i, kind, "not lifted",
                              f"a product of {len(tc.factors)} sums with factor shapes "
                              f"{tc.factor_shapes()} can only be lifted factor by factor from a "
                              f"source with the same factor shapes (source: {src}); a product "
                              f"is not a linear function of its coefficients"))
    return steps + _lift_bias(i, kind, tm.bias, sm.bias, 1)


def _lift_conv(i, kind, tc, sc, tm, sm) -> list[LiftStep]:
    steps: list[LiftStep] = []
    if tc.weight_shape != sc.weight_shape or tc.padding != sc.padding:
        steps.append(LiftStep(i, kind, "not lifted",
                              f"kernel {sc.weight_shape} pad {sc.padding} vs "
                              f"{tc.weight_shape} pad {tc.padding}"))
        return steps
    k = sm.kernel()
    if isinstance(tc, S.ProdSumConv2d):
        res = fit_basis_sum(tm.kernel_sum, k.reshape(tc.c_out, -1))
        steps.append(LiftStep(i, kind, "fitted", f"{sum(t.count for t in tc.terms)} filter "
                                                 f"coefficients", res))
    else:
        tm.weight.copy_(k.to(tm.weight.dtype))
        steps.append(LiftStep(i, kind, "copied", f"dense kernel {tc.weight_shape}"))
    return steps + _lift_bias(i, kind, tm.bias, sm.bias, 1)


def _lift_bias(i: int, kind: str, tb: L.BiasParam, sb: L.BiasParam, channels: int) -> list[LiftStep]:
    b = sb()
    if tb.mode is S.BiasMode.NONE:
        if b is not None and float(b.abs().max()) > 0:
            return [LiftStep(i, kind + " bias", "not lifted",
                             "the target has no bias; the source's non-zero bias is dropped")]
        return []
    if b is None:
        b = torch.zeros(tb.outputs, dtype=torch.float64)
    if b.numel() != tb.outputs:
        return [LiftStep(i, kind + " bias", "not lifted", f"{b.numel()} vs {tb.outputs} outputs")]
    if tb.mode is S.BiasMode.FULL:
        tb.bias.copy_(b.to(tb.bias.dtype))
        return [LiftStep(i, kind + " bias", "copied", f"{tb.outputs} values")]
    if tb.mode is S.BiasMode.CHANNEL:
        if sb.mode is S.BiasMode.CHANNEL and sb.bias.numel() == tb.bias.numel():
            tb.bias.copy_(sb.bias.to(tb.bias.dtype))
            return [LiftStep(i, kind + " bias", "copied", f"{tb.channels} per-channel values")]
        means = b.reshape(tb.channels, -1).mean(1)
        tb.bias.copy_(means.to(tb.bias.dtype))
        fit = means.repeat_interleave(tb.outputs // tb.channels)
        return [LiftStep(i, kind + " bias", "fitted", "per-channel means", _rel(fit, b))]
    # BASIS: a sum of fixed gauss vectors
    store = getattr(tb, "bias_store", None)
    stack = store.unpack() if store is not None else tb.bias_stack.cpu().numpy()
    coefs = fit_coefficients(b, [DenseGroup(stack, tb.basis_scale)])
    tb.bias_coef.copy_(torch.from_numpy(coefs).to(tb.bias_coef.dtype))
    # residual of what the module now computes
    return [LiftStep(i, kind + " bias", "fitted", f"{stack.shape[0]} bias basis coefficients",
                     _rel(tb().double(), b.double()))]
