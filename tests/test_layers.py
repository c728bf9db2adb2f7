"""torch layers built from specs: forward values and gradients against the materialised bases.

The reference for every product-of-sums layer is plain autograd on the dense float64
weight built from ``BasisSum.materialize_bases()``: ``W = prod_j sum_k a_jk M_jk``. The
layers compute the same thing from compact integer stores, closed forms and custom
backward passes (some kernels in float32, hence the tolerances).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from poshw import spec as S
from poshw import zoo
from poshw.bases import Family, basis_stack, dct2_int, permutation_prefix, rank1_vectors
from poshw.nn import PoshwNet, build_model
from poshw.nn import layers as L

torch.set_num_threads(1)
RTOL, ATOL = 2e-5, 1e-6
G, T, R, R1 = Family.GAUSS, Family.TERNARY, Family.RADEMACHER, Family.RANK1


def _rand_coefs(module: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))


def _ref_sum(bs: L.BasisSum, coefs: torch.Tensor) -> torch.Tensor:
    m = bs.materialize_bases().double()
    return torch.einsum("k,krc->rc", coefs, m)


def _leaf_copies(module):
    return {n: p.detach().double().clone().requires_grad_(True) for n, p in module.named_parameters()}


def _check_grads(module, leaves, loss_mod, loss_ref):
    loss_mod.backward()
    loss_ref.backward()
    for n, p in module.named_parameters():
        assert p.grad is not None, n
        assert torch.allclose(p.grad.double(), leaves[n].grad, rtol=1e-4, atol=1e-5), n


# --- BasisSum --------------------------------------------------------------------------

@pytest.mark.parametrize("terms", [
    (S.Terms(G, 5),), (S.Terms(T, 9),), (S.Terms(R, 17),), (S.Terms(R1, 4),),
    (S.Terms(G, 3), S.Terms(R1, 2), S.Terms(T, 6), S.Terms(R, 8)),
])
def test_basis_sum_forward_and_grad_match_materialised(terms):
    bs = L.BasisSum(terms, 6, 7, 11, (2, 0), torch.Generator().manual_seed(1), 7)
    _rand_coefs(bs)
    a = bs.coefficients().detach().double().requires_grad_(True)
    ref = _ref_sum(bs, a)
    out = bs()
    assert out.shape == (6, 7)
    assert torch.allclose(out.double(), ref, rtol=RTOL, atol=ATOL)
    gw = torch.randn(6, 7, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    (out.double() * gw).sum().backward()
    (ref * gw).sum().backward()
    got = torch.cat([bs.coefficient(g).grad for g in range(len(terms))]).double()
    assert torch.allclose(got, a.grad, rtol=1e-4, atol=1e-5)


def test_materialised_bases_are_integers_times_scale():
    bs = L.BasisSum((S.Terms(G, 3), S.Terms(R1, 2), S.Terms(T, 4)), 5, 6, 0, (0, 0),
                    torch.Generator().manual_seed(0), 6)
    m = bs.materialize_bases().double()
    ints = [basis_stack(G, 0, (0, 0, 0), 3, 30)]
    u, v = rank1_vectors(0, (0, 0, 1), 2, 5, 6)
    ints.append(np.einsum("kr,kc->krc", u.astype(np.int64), v.astype(np.int64)).reshape(2, 30))
    ints.append(basis_stack(T, 0, (0, 0, 2), 4, 30))
    ints = torch.from_numpy(np.concatenate(ints).astype(np.float64)).reshape(9, 5, 6)
    ratio = m[ints != 0] / ints[ints != 0]
    assert torch.all(m[ints == 0] == 0)
    # one float scale per group, the same for every entry of the group
    for lo, hi in ((0, 3), (3, 5), (5, 9)):
        r = m[lo:hi][ints[lo:hi] != 0] / ints[lo:hi][ints[lo:hi] != 0]
        assert torch.allclose(r, r[0].expand_as(r), rtol=1e-6)
    assert ratio.numel() > 0


def test_compact_store_is_lossless():
    from poshw.nn.compact import CompactStack
    for fam in (G, T, R):
        for count in (1, 7, 8, 9, 33):
            ref = basis_stack(fam, 4, (1, 2, 0), count, 501)
            assert np.array_equal(CompactStack(fam, 4, (1, 2, 0), count, 501).unpack(), ref)


# --- ProdSumLinear ---------------------------------------------------------------------

def _ref_prodsum_linear(layer: L.ProdSumLinear, leaves, x):
    w = None
    for j, f in enumerate(layer.factors):
        coefs = torch.cat([leaves[f"factors.{j}.coef_{g}"] for g in range(len(f.families))])
        fj = _ref_sum(f, coefs)
        w = fj if w is None else w @ fj
    y = x.double() @ w.t()
    b = _ref_bias(layer.bias, leaves, "bias.")
    return y if b is None else y + b


def _ref_bias(bp: L.BiasParam, leaves, prefix):
    if bp.mode is S.BiasMode.FULL:
        return leaves[prefix + "bias"]
    if bp.mode is S.BiasMode.CHANNEL:
        return leaves[prefix + "bias"].repeat_interleave(bp.outputs // bp.channels)
    if bp.mode is S.BiasMode.BASIS:
        # the float vectors the module uses, from its own output for unit coefficients
        k = leaves[prefix + "bias_coef"].numel()
        with torch.no_grad():
            saved = bp.bias_coef.detach().clone()
            cols = []
            for i in range(k):
                bp.bias_coef.zero_()
                bp.bias_coef[i] = 1.0
                cols.append(bp().double())
            bp.bias_coef.copy_(saved)
        return torch.stack(cols, 1) @ leaves[prefix + "bias_coef"]
    return None


@pytest.mark.parametrize("cfg", [
    S.ProdSumLinear(20, 6, ((S.Terms(G, 7),),)),
    S.ProdSumLinear(20, 6, ((S.Terms(G, 3),),) * 3, inner=(9, 11)),
    S.ProdSumLinear(20, 6, ((S.Terms(G, 3), S.Terms(R1, 4), S.Terms(T, 5)),)),
    S.ProdSumLinear(20, 6, ((S.Terms(G, 3), S.Terms(R1, 4)), (S.Terms(T, 5), S.Terms(R, 3))),
                    inner=(8,), bias=S.Bias("basis", 3)),
    S.ProdSumLinear(20, 6, ((S.Terms(R1, 5),),), bias=S.Bias("none")),
], ids=["p1", "p3", "mixed-p1", "mixed-p2-biasbasis", "rank1-nobias"])
@pytest.mark.parametrize("batch", [2, 300])
def test_prodsum_linear_matches_autograd_of_materialised_w(cfg, batch):
    layer = L.ProdSumLinear(cfg, seed=5, layer=1)
    _rand_coefs(layer)
    x = torch.randn(batch, 20, generator=torch.Generator().manual_seed(3))
    leaves = _leaf_copies(layer)
    y = layer(x)
    ref = _ref_prodsum_linear(layer, leaves, x)
    assert torch.allclose(y.double(), ref, rtol=1e-4, atol=1e-5)
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    _check_grads(layer, leaves, (y.double() * gy).sum(), (ref * gy).sum())
    with torch.no_grad():
        w = layer.weight()
    assert torch.allclose(x.double() @ w.double().t(), ref.detach() - (
        _ref_bias(layer.bias, leaves, "bias.").detach() if cfg.bias.mode is not S.BiasMode.NONE else 0),
        rtol=1e-4, atol=1e-5)


def test_dense_linear_is_torch_linear():
    layer = L.DenseLinear(S.Linear(12, 4), 0, 0)
    x = torch.randn(3, 12)
    assert torch.allclose(layer(x), F.linear(x, layer.weight, layer.bias.bias))
    assert sum(p.numel() for p in layer.parameters()) == 52


# --- convolution -----------------------------------------------------------------------

@pytest.mark.parametrize("terms", [(S.Terms(G, 6),), (S.Terms(T, 4), S.Terms(R, 9))])
def test_prodsum_conv_matches_materialised_kernel(terms):
    cfg = S.ProdSumConv2d(2, 3, 3, 1, terms=terms)
    layer = L.Conv2d(cfg, seed=1, layer=0)
    _rand_coefs(layer)
    leaves = _leaf_copies(layer)
    x = torch.randn(2, 2, 7, 7, generator=torch.Generator().manual_seed(0))
    y = layer(x)
    coefs = torch.cat([leaves[f"kernel_sum.coef_{g}"] for g in range(len(terms))])
    k = _ref_sum(layer.kernel_sum, coefs).reshape(cfg.weight_shape)
    ref = F.conv2d(x.double(), k, leaves["bias.bias"], padding=1)
    assert torch.allclose(y.double(), ref, rtol=1e-4, atol=1e-5)
    gy = torch.randn(y.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    _check_grads(layer, leaves, (y.double() * gy).sum(), (ref * gy).sum())


def test_dense_conv_is_torch_conv():
    layer = L.Conv2d(S.Conv2d(1, 2, 5, 2), 0, 0)
    x = torch.randn(1, 1, 8, 8)
    assert torch.allclose(layer(x), F.conv2d(x, layer.weight, layer.bias.bias, padding=2))


# --- Hadamard --------------------------------------------------------------------------

@pytest.mark.parametrize("depthwise", [False, True])
@pytest.mark.parametrize("bias", [S.Bias("channel"), S.Bias("full"), S.Bias("basis", 3), S.Bias("none")])
def test_hadamard_matches_materialised_diagonals(depthwise, bias):
    cfg = S.Hadamard(10, 3, S.Terms(G, 4), depthwise=depthwise, bias=bias)
    layer = L.Hadamard(cfg, seed=2, layer=1)
    _rand_coefs(layer)
    leaves = _leaf_copies(layer)
    cin = 3 if depthwise else 1
    x = torch.randn(5, cin * 10, generator=torch.Generator().manual_seed(0))
    y = layer(x)
    d = _ref_sum(layer.diag_sum, leaves["diag_sum.coef_0"])  # filters x n
    ref = (x.double().reshape(5, cin, 10) * d.unsqueeze(0)).reshape(5, 30)
    b = _ref_bias(layer.bias, leaves, "bias.")
    if b is not None:
        ref = ref + b
    assert y.shape == (5, 30)
    assert torch.allclose(y.double(), ref, rtol=1e-4, atol=1e-5)
    gy = torch.randn(y.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    _check_grads(layer, leaves, (y.double() * gy).sum(), (ref * gy).sum())


# --- bias variants ---------------------------------------------------------------------

def test_bias_basis_is_a_sum_of_fixed_gauss_vectors():
    bp = L.BiasParam(S.Bias("basis", 4), 9, 1, seed=3, layer=2)
    ints = basis_stack(G, 3, (2, S.BIAS_FACTOR, 0), 4, 9).astype(np.float64)
    with torch.no_grad():
        bp.bias_coef.copy_(torch.tensor([1.0, -2.0, 0.5, 3.0]))
        b = bp().double().numpy()
    unit = []
    for i in range(4):
        with torch.no_grad():
            bp.bias_coef.zero_()
            bp.bias_coef[i] = 1
            unit.append(bp().double().numpy())
    unit = np.array(unit)
    scale = unit[ints != 0] / ints[ints != 0]
    assert np.allclose(scale, scale[0], rtol=1e-6)  # integers times one scale
    assert np.allclose(b, np.array([1.0, -2.0, 0.5, 3.0]) @ unit, rtol=1e-5, atol=1e-6)
    assert L.BiasParam(S.Bias("none"), 5, 1, 0, 0)() is None
    ch = L.BiasParam(S.Bias("channel"), 6, 3, 0, 0)
    with torch.no_grad():
        ch.bias.copy_(torch.tensor([1.0, 2.0, 3.0]))
    assert ch().tolist() == [1, 1, 2, 2, 3, 3]


# --- fixed projections -----------------------------------------------------------------

def test_dct_projection_uses_the_integer_grid():
    layer = L.Projection(S.Projection("dct", 784, 169), 0, 0)
    x = torch.rand(4, 784, dtype=torch.float32)
    ref = x.double() @ torch.from_numpy(dct2_int(28, 28, 169).astype(np.float64) / 1024).t()
    assert torch.allclose(layer(x).double(), ref, rtol=1e-5, atol=1e-5)
    full = L.Projection(S.Projection("dct", 784, 784), 0, 0)
    # the rounded grid is nearly orthonormal: norms kept to ~1% (the DC row is 37/1024,
    # not 1/28: +1.2%)
    y = full(x)
    assert torch.allclose(y.norm(dim=1), x.norm(dim=1), rtol=2e-2)


def test_subsample_select_and_gauss_projections():
    x = torch.rand(3, 2 * 784)
    sub = L.Projection(S.Projection("subsample", 784, 50, channels=2), 7, 4)
    idx = torch.from_numpy(permutation_prefix(7, (4, 0, 0), 784, 50))
    assert torch.equal(sub(x), x.reshape(3, 2, 784)[:, :, idx].reshape(3, 100))
    sel = L.Projection(S.Projection("select", 784, 10, channels=2), 0, 0)
    assert torch.equal(sel(x), x.reshape(3, 2, 784)[:, :, :10].reshape(3, 20))
    cfg = S.Projection("gauss", 784, 16)
    gp = L.Projection(cfg, 1, 0)
    ints = basis_stack(G, 1, (0, 0, 0), 1, 16 * 784).reshape(16, 784).astype(np.float64)
    mat = gp.matrix.double().numpy()
    assert np.allclose(mat, ints * G.scale / math.sqrt(784), rtol=1e-6)


# --- whole models ----------------------------------------------------------------------

def test_model_is_deterministic_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a = build_model(zoo.get("linear-prodsum:p=2,k=4,inner=16"))
    torch.manual_seed(123)
    b = build_model(zoo.get("linear-prodsum:p=2,k=4,inner=16"))
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(p, q), n
    torch.set_rng_state(state)
    build_model(zoo.get("lenet-convs:conv1=3,conv2=3"))
    assert torch.equal(torch.get_rng_state(), state)
    c = build_model(zoo.get("linear-prodsum:p=2,k=4,inner=16", seed=1))
    assert not torch.equal(a.layers[1].factors[0].coef_0, c.layers[1].factors[0].coef_0)


def test_predict_takes_uint8_images_and_breaks_ties_low():
    model = build_model(zoo.get("linear"))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    assert model.predict(images).tolist() == [0] * 5  # all logits equal: lowest index
    logits = model.logits(images)
    assert logits.shape == (5, 10) and logits.dtype == np.float32
    assert model.logits(images[:0]).shape == (0, 10)


@pytest.mark.parametrize("name", ["linear-dct:m=20", "linear-prodsum:p=2,k=3,inner=8",
                                  "mlp-reduced:m=16,h1=32,h2=16,s=5,inner=8,last=prodsum",
                                  "convfree:filters=2,terms1=3,terms2=4,hidden=8",
                                  "lenet-convs:conv1=3,conv2=4"])
def test_models_run_forward_and_backward(name):
    model = build_model(zoo.get(name))
    x = torch.rand(3, 28, 28)
    y = model(x)
    assert y.shape == (3, 10)
    y.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert isinstance(model, PoshwNet)
