"""Least-squares fitting of basis coefficients and staged-training lifts (paper section 7)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from poshw import spec as S
from poshw import zoo
from poshw.bases import Family, basis_stack, rank1_vectors
from poshw.coefset import CoefficientSet
from poshw.nn import build_model
from poshw.nn.layers import BasisSum
from poshw.train import (
    LiftError, Rank1Group, basis_groups, combine_numpy, fit_basis_sum, fit_coefficients,
    gram_matrix, lift_model, project,
)

torch.set_num_threads(1)


def _basis_sum(terms, rows, cols, seed=3, path=(0, 0)):
    return BasisSum(tuple(terms), rows, cols, seed, path, torch.Generator().manual_seed(0), cols)


def test_gram_is_exact_integer_gram_times_scales():
    s = basis_stack(Family.GAUSS, 1, (0, 0, 0), 6, 5000)
    g = gram_matrix(s, scale=0.5, block_values=1000)  # many blocks
    ref = s.astype(np.int64) @ s.astype(np.int64).T
    assert np.array_equal(g, ref.astype(np.float64) * 0.25)


def test_gram_mixed_groups_matches_dense_materialisation():
    bs = _basis_sum([S.Terms(Family.GAUSS, 4), S.Terms(Family.RANK1, 3),
                     S.Terms(Family.TERNARY, 5), S.Terms(Family.RADEMACHER, 9)], 7, 11)
    dense = bs.materialize_bases().double().reshape(21, -1).numpy()
    g = gram_matrix(bs, block_values=64)
    assert np.allclose(g, dense @ dense.T, rtol=1e-6, atol=1e-5)  # dense is float32-scaled
    w = np.random.default_rng(0).normal(size=(7, 11))
    assert np.allclose(project(w, bs, block_values=50), dense @ w.reshape(-1), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("terms", [
    [S.Terms(Family.GAUSS, 12)],
    [S.Terms(Family.GAUSS, 5), S.Terms(Family.RANK1, 6), S.Terms(Family.TERNARY, 4)],
    [S.Terms(Family.RADEMACHER, 10), S.Terms(Family.RANK1, 3)],
])
def test_fit_recovers_coefficients_of_a_matrix_in_the_span(terms):
    bs = _basis_sum(terms, 9, 13)
    total = sum(t.count for t in terms)
    a = np.random.default_rng(1).normal(size=total)
    w = combine_numpy(a, bs, shape=(9, 13))
    got = fit_coefficients(w, bs, block_values=40)
    assert np.allclose(got, a, rtol=1e-9, atol=1e-9)


def test_fit_is_the_orthogonal_projection():
    # A target outside the span: the residual is orthogonal to every basis.
    s = basis_stack(Family.GAUSS, 2, (0, 0, 0), 8, 200)
    w = np.random.default_rng(2).normal(size=200)
    a = fit_coefficients(w, s, scale=0.1)
    r = w - combine_numpy(a, s, scale=0.1)
    assert np.abs(s.astype(np.float64) @ r).max() < 1e-9 * np.abs(w).sum() * 30
    ref, *_ = np.linalg.lstsq(s.T.astype(np.float64) * 0.1, w, rcond=None)
    assert np.allclose(a, ref, rtol=1e-8, atol=1e-10)


def test_fit_with_dependent_bases_gives_minimum_norm_solution():
    s = basis_stack(Family.GAUSS, 2, (0, 0, 0), 3, 100)
    dup = np.concatenate([s, s[:1]])  # basis 0 twice
    w = combine_numpy(np.array([2.0, 1.0, -1.0]), s)
    a = fit_coefficients(w, dup)
    assert np.allclose(combine_numpy(a, dup), w, atol=1e-9)
    assert np.allclose(a, [1.0, 1.0, -1.0, 1.0], atol=1e-8)  # weight split evenly


def test_fit_accepts_torch_and_groups_and_checks_shapes():
    u, v = rank1_vectors(0, (0, 0, 0), 4, 5, 6)
    groups = [Rank1Group(u, v, 1 / 85)]
    a = np.arange(1.0, 5.0)
    w = torch.from_numpy(combine_numpy(a, groups, shape=(5, 6)))
    assert np.allclose(fit_coefficients(w, groups), a)
    with pytest.raises(ValueError):
        fit_coefficients(np.zeros(31), groups)
    with pytest.raises(ValueError):
        fit_coefficients(np.zeros(10), basis_stack(Family.GAUSS, 0, (0,), 2, 11))
    with pytest.raises(ValueError):
        fit_coefficients(np.full(11, np.nan), basis_stack(Family.GAUSS, 0, (0,), 2, 11))
    with pytest.raises(TypeError):
        fit_coefficients(np.zeros(3), [1, 2])


def test_ridge_shrinks():
    s = basis_stack(Family.GAUSS, 0, (0,), 4, 50)
    w = combine_numpy(np.ones(4), s)
    a0 = fit_coefficients(w, s)
    a1 = fit_coefficients(w, s, ridge=1e4)
    assert np.linalg.norm(a1) < np.linalg.norm(a0)


def test_fit_basis_sum_assigns_and_reports_residual():
    bs = _basis_sum([S.Terms(Family.GAUSS, 6), S.Terms(Family.RANK1, 2)], 4, 5)
    a = np.random.default_rng(3).normal(size=8)
    w = combine_numpy(a, bs, shape=(4, 5))
    res = fit_basis_sum(bs, w)
    assert res < 1e-6
    assert np.allclose(bs.coefficients().detach().numpy(), a, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        assert np.allclose(bs().double().numpy(), w, rtol=1e-5, atol=1e-5)


# --- staged training ------------------------------------------------------------------

def _trained_like(spec, seed=0):
    """A model with random (non-initial) coefficient values, as if trained."""
    m = build_model(spec)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.05)
    return m


def test_bases_nest_in_the_models():
    # The integer bases nest (basis k is stream k); the float scale may depend on the count.
    small = build_model(zoo.get("linear-prodsum:p=1,k=20"))
    big = build_model(zoo.get("linear-prodsum:p=1,k=40"))
    (a,) = basis_groups(small.layers[1].factors[0])
    (b,) = basis_groups(big.layers[1].factors[0])
    assert np.array_equal(b.stack[:20], a.stack)
    sa = small.layers[1].factors[0].materialize_bases()
    sb = big.layers[1].factors[0].materialize_bases()[:20]
    assert torch.allclose(sb * (a.scale / b.scale), sa, rtol=1e-6, atol=0)


def test_lift_s20_to_s40_reproduces_w_exactly():
    src = _trained_like(zoo.get("linear-prodsum:p=1,k=20"))
    dst = build_model(zoo.get("linear-prodsum:p=1,k=40"))
    report = lift_model(dst, src)
    assert not report.not_lifted
    fs, fd = src.layers[1].factors[0], dst.layers[1].factors[0]
    # nested bases: the first 20 effective coefficients (coefficient x float scale of the
    # integer basis) are the source's, the 20 new ones are zero
    a_src = fs.coefficients().detach().double().numpy() * basis_groups(fs)[0].scale
    a_dst = fd.coefficients().detach().double().numpy() * basis_groups(fd)[0].scale
    assert np.allclose(a_dst[:20], a_src, rtol=1e-5, atol=1e-9)
    assert np.abs(a_dst[20:]).max() < 1e-5 * np.abs(a_src).max()
    with torch.no_grad():
        assert torch.allclose(dst.layers[1].weight(), src.layers[1].weight(), rtol=1e-5, atol=1e-6)
        assert torch.equal(dst.layers[1].bias.bias, src.layers[1].bias.bias)
    fitted = [s for s in report.steps if s.action == "fitted"]
    assert fitted and fitted[0].residual < 1e-6


def test_lift_p3_factor_by_factor_is_exact_when_nested():
    src = _trained_like(zoo.get("linear-prodsum:p=3,k=4,inner=16"), seed=1)
    dst = build_model(zoo.get("linear-prodsum:p=3,k=7,inner=16"))
    report = lift_model(dst, src)
    with torch.no_grad():
        assert torch.allclose(dst.layers[1].weight(), src.layers[1].weight(), rtol=1e-4, atol=1e-6)
    assert "factor by factor" in report.lines()[-2]


def test_lift_dense_into_sum_and_from_coefset(tmp_path):
    # dense linear -> p=1 sum of 30 bases: the least-squares projection of the dense W
    src = _trained_like(zoo.get("linear"))
    cs = CoefficientSet.from_model(src, {"dataset": "mnist"})
    cs.save(tmp_path / "coefs.npz")
    dst = build_model(zoo.get("linear-prodsum:p=1,k=30"))
    report = lift_model(dst, tmp_path)
    step = [s for s in report.steps if s.action == "fitted"][0]
    w = src.layers[1].weight.detach().double()
    bs = dst.layers[1].factors[0]
    a = fit_coefficients(w, bs)
    assert np.allclose(bs.coefficients().detach().numpy(), a, rtol=1e-5, atol=1e-7)
    assert 0.5 < step.residual < 1.0  # 30 random bases capture a little of a random W


def test_lift_refuses_what_cannot_be_lifted_and_leaves_target_untouched():
    src = _trained_like(zoo.get("linear"))
    dst = build_model(zoo.get("linear-prodsum:p=2,k=5,inner=32"))
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with pytest.raises(LiftError, match="factor by factor"):
        lift_model(dst, src)
    for k, v in dst.state_dict().items():
        assert torch.equal(v, before[k])
    report = lift_model(dst, src, strict=False)
    assert [s.layer for s in report.not_lifted] == [1]
    assert any(s.action == "copied" for s in report.steps)  # the bias still comes across
    with pytest.raises(LiftError, match="layer kinds differ"):
        lift_model(build_model(zoo.get("mlp")), src)


def test_lift_projection_mismatch_is_reported():
    src = _trained_like(zoo.get("linear-gauss:m=20", seed=1))
    dst = build_model(zoo.get("linear-gauss:m=20", seed=2))
    with pytest.raises(LiftError, match="fixed projection differs"):
        lift_model(dst, src)


def test_lift_bias_basis_and_conv():
    spec = S.ModelSpec("t", (
        S.ProdSumConv2d(1, 2, 3, 1, terms=(S.Terms(Family.GAUSS, 5),)), S.ReLU(), S.Flatten(),
        S.ProdSumLinear(2 * 28 * 28, 10, ((S.Terms(Family.GAUSS, 3),),),
                        bias=S.Bias(S.BiasMode.BASIS, 4))), seed=0)
    big = S.ModelSpec("t2", (
        S.ProdSumConv2d(1, 2, 3, 1, terms=(S.Terms(Family.GAUSS, 9),)), S.ReLU(), S.Flatten(),
        S.ProdSumLinear(2 * 28 * 28, 10, ((S.Terms(Family.GAUSS, 6),),),
                        bias=S.Bias(S.BiasMode.BASIS, 8))), seed=0)
    src = _trained_like(spec)
    dst = build_model(big)
    report = lift_model(dst, src)
    assert all(s.residual is None or s.residual < 1e-5 for s in report.steps)
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(dst(x), src(x), rtol=1e-4, atol=1e-5)
