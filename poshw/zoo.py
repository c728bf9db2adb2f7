"""The paper's models by name, with their sizes as parameters.

``get("linear-dct:m=64")`` returns a :class:`~poshw.spec.ModelSpec`; ``available()``
lists the names. Reference models match the paper's parameter counts exactly;
each reduced model's ``description`` says how its count is made up.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Callable

from . import PoshwError
from .bases import Family
from .spec import (
    Bias, BiasMode, Conv2d, Dropout, Flatten, Hadamard, Linear, MaxPool2d, ModelSpec,
    ProdSumConv2d, ProdSumLinear, Projection, ReLU, Terms, NO_BIAS,
)

_BUILDERS: dict[str, Callable[..., ModelSpec]] = {}
_SUMMARIES: dict[str, str] = {}


def _model(name: str, summary: str):
    def register(fn: Callable[..., ModelSpec]) -> Callable[..., ModelSpec]:
        _BUILDERS[name] = fn
        _SUMMARIES[name] = summary
        return fn
    return register


def _family(name: str) -> Family:
    try:
        return Family(name)
    except ValueError:
        raise PoshwError(f"unknown basis family {name!r}; choose from {[f.value for f in Family]}") from None


# --- linear classifiers (paper sections 4.1 and 5.1) ------------------------------------

@_model("linear", "reference linear classifier 784x10 (paper 4.1): 7,850 params")
def linear(seed: int = 0) -> ModelSpec:
    return ModelSpec("linear", (Flatten(), Linear(784, 10)), seed=seed,
                     description="784x10 weights + 10 biases, all trainable")


def _projected_linear(name: str, method: str, m: int, seed: int) -> ModelSpec:
    return ModelSpec(name, (Projection(method, 784, m), Linear(m, 10)), seed=seed,
                     description=f"fixed {method} projection 784->{m}, trainable {m}x10 + 10 "
                                 f"biases = 10(m+1) = {10 * (m + 1)}")


@_model("linear-dct", "linear on the m lowest 2-D DCT coefficients (paper Fig 1): 10(m+1) params")
def linear_dct(m: int = 169, seed: int = 0) -> ModelSpec:
    return _projected_linear("linear-dct", "dct", m, seed)


@_model("linear-gauss", "linear on an m-dim random (gauss) projection (paper Fig 1): 10(m+1)")
def linear_gauss(m: int = 169, seed: int = 0) -> ModelSpec:
    return _projected_linear("linear-gauss", "gauss", m, seed)


@_model("linear-subsample", "linear on m random pixels (paper Fig 1): 10(m+1) params")
def linear_subsample(m: int = 169, seed: int = 0) -> ModelSpec:
    return _projected_linear("linear-subsample", "subsample", m, seed)


@_model("linear-prodsum", "linear 784x10 as a product of p random sums of k bases (paper 5.1, Fig 2a)")
def linear_prodsum(p: int = 10, k: int = 20, family: str = "gauss", inner: int = 784,
                   seed: int = 0) -> ModelSpec:
    terms = (Terms(_family(family), k),)
    layer = ProdSumLinear(784, 10, (terms,) * p, inner=(inner,) * (p - 1))
    return ModelSpec("linear-prodsum", (Flatten(), layer), seed=seed,
                     description=f"p={p} sums of k={k} fixed {family} matrices (first 10x{inner}, "
                                 f"then {inner}x{inner} ..., last {inner}x784): p*k coefficients "
                                 f"+ 10 biases = {p * k + 10}")


# --- LeNet (paper 5.2) -----------------------------------------------------------------

def _lenet_layers(conv1, conv2, fc1, fc2, dropout: float) -> tuple:
    layers = [conv1, ReLU(), MaxPool2d(2), conv2, ReLU(), MaxPool2d(2), Flatten(), fc1, ReLU()]
    if dropout != 0:  # Dropout refuses values outside [0, 1)
        layers.append(Dropout(dropout))
    layers.append(fc2)
    return tuple(layers)


@_model("lenet", "reference LeNet 'Deep MNIST for experts' (paper 5.2): 3,274,634 params")
def lenet(dropout: float = 0.5, seed: int = 0) -> ModelSpec:
    layers = _lenet_layers(Conv2d(1, 32, 5, 2), Conv2d(32, 64, 5, 2), Linear(3136, 1024),
                           Linear(1024, 10), dropout)
    return ModelSpec("lenet", layers, seed=seed,
                     description="conv 832 + conv 51,264 + fc 3,212,288 + fc 10,250, all trainable")


@_model("lenet-convs", "LeNet with only the convolutions as sums of random filters (paper Fig 2b)")
def lenet_convs(conv1: int = 200, conv2: int = 800, family: str = "gauss", dropout: float = 0.5,
                seed: int = 0) -> ModelSpec:
    f = _family(family)
    layers = _lenet_layers(ProdSumConv2d(1, 32, 5, 2, terms=(Terms(f, conv1),)),
                           ProdSumConv2d(32, 64, 5, 2, terms=(Terms(f, conv2),)),
                           Linear(3136, 1024), Linear(1024, 10), dropout)
    return ModelSpec("lenet-convs", layers, seed=seed,
                     description=f"conv kernels = sums of {conv1} and {conv2} random filters "
                                 f"(+32, +64 biases); dense layers as in the reference")


@_model("prodsumnet", "ProdSumNet (paper 5.2.2, Table 1): every layer a sum of fixed bases, 3,554 params")
def prodsumnet(conv1: int = 200, conv2: int = 800, fc1_dense: int = 100, fc1_rank1: int = 500,
               fc2: int = 1024, fc1_bias: int = 824, family: str = "gauss",
               seed: int = 0) -> ModelSpec:
    f = _family(family)
    fc1_b = Bias(BiasMode.BASIS, fc1_bias) if fc1_bias != 0 else NO_BIAS
    fc1_terms = tuple(t for t in (Terms(f, fc1_dense) if fc1_dense else None,
                                  Terms(Family.RANK1, fc1_rank1) if fc1_rank1 else None) if t)
    layers = _lenet_layers(ProdSumConv2d(1, 32, 5, 2, terms=(Terms(f, conv1),)),
                           ProdSumConv2d(32, 64, 5, 2, terms=(Terms(f, conv2),)),
                           ProdSumLinear(3136, 1024, (fc1_terms,), bias=fc1_b),
                           ProdSumLinear(1024, 10, ((Terms(f, fc2),),)), dropout=0.0)
    coefs = conv1 + conv2 + fc1_dense + fc1_rank1 + fc2
    return ModelSpec("prodsumnet", layers, seed=seed,
                     description=f"{coefs} basis coefficients (conv1 {conv1}, conv2 {conv2}, fc1 "
                                 f"{fc1_dense} dense + {fc1_rank1} rank-1, fc2 {fc2}) + conv biases "
                                 f"32 + 64 + fc1 bias as a sum of {fc1_bias} fixed vectors + fc2 "
                                 f"bias 10. The paper gives 3,554 without saying how biases are "
                                 f"counted; the defaults spend exactly the remaining 930 on biases")


# --- MLP (paper 5.3) -------------------------------------------------------------------

@_model("mlp", "reference MLP 784-1024-512-10 (paper 5.3): 1,333,770 params")
def mlp(seed: int = 0) -> ModelSpec:
    return ModelSpec("mlp", (Flatten(), Linear(784, 1024), ReLU(), Linear(1024, 512), ReLU(),
                             Linear(512, 10)), seed=seed,
                     description="784x1024 + 1024 + 1024x512 + 512 + 512x10 + 10, all trainable")


@_model("mlp-reduced", "MLP with a DCT first layer and a product of sums second (paper 5.3, Fig 4a)")
def mlp_reduced(m: int = 48, h1: int = 1024, h2: int = 512, p: int = 2, s: int = 500,
                inner: int = 128, last: str = "dense", s_last: int = 200, family: str = "gauss",
                seed: int = 0) -> ModelSpec:
    f = _family(family)
    if last not in ("dense", "prodsum"):
        raise PoshwError(f"mlp-reduced: last must be 'dense' or 'prodsum', got {last!r}")
    second = ProdSumLinear(h1, h2, ((Terms(f, s),),) * p, inner=(inner,) * (p - 1))
    third = (Linear(h2, 10) if last == "dense"
             else ProdSumLinear(h2, 10, ((Terms(f, s_last),),)))
    layers = (Projection("dct", 784, m), Linear(m, h1), ReLU(), second, ReLU(), third)
    n3 = layers[-1].trainable_parameters()
    return ModelSpec("mlp-reduced", layers, seed=seed,
                     description=f"DCT {m} -> dense {m}x{h1}+{h1}; {h1}->{h2} as {p} sums of {s} "
                                 f"{family} bases (inner {inner}) + {h2} biases; last {last} ({n3})")


# --- conv-free DCT-Hadamard net (paper 6) ----------------------------------------------

@_model("convfree", "conv-free net: DCT, Hadamard filters in the DCT domain, dense (paper 6, Fig 4b)")
def convfree(filters: int = 8, terms1: int = 100, terms2: int = 200, hidden: int = 2048,
             family: str = "gauss", seed: int = 0) -> ModelSpec:
    f = _family(family)
    layers = (
        Projection("dct", 784, 784),
        Hadamard(784, filters, Terms(f, terms1)),
        ReLU(),
        Projection("select", 784, 196, channels=filters),
        Hadamard(196, filters, Terms(f, terms2), depthwise=True),
        ReLU(),
        Linear(filters * 196, hidden), ReLU(), Linear(hidden, 10),
    )
    return ModelSpec("convfree", layers, seed=seed,
                     description=f"Hadamard layers: {terms1} + {terms2} tuple coefficients + "
                                 f"{filters} + {filters} per-filter biases; the reduction keeps the "
                                 f"lowest quarter (196) of each filter's zigzag DCT coefficients; "
                                 f"dense {filters * 196}x{hidden} and {hidden}x10 fully trainable")


# --- lookup ----------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelInfo:
    name: str
    summary: str
    params: dict[str, object]


def available() -> list[ModelInfo]:
    out = []
    for name, fn in _BUILDERS.items():
        sig = inspect.signature(fn)
        out.append(ModelInfo(name, _SUMMARIES[name],
                             {k: p.default for k, p in sig.parameters.items() if k != "seed"}))
    return out


def parse_name(text: str) -> tuple[str, dict[str, str]]:
    """Split ``"name:k=v,k=v"`` into the name and raw parameter strings."""
    name, _, rest = text.partition(":")
    params: dict[str, str] = {}
    if rest:
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise PoshwError(f"model {text!r}: parameter {item!r} is not key=value")
            if key.strip() in params:
                raise PoshwError(f"model {text!r}: parameter {key.strip()!r} is given twice")
            params[key.strip()] = value.strip()
    return name.strip(), params


def get(text: str, seed: int | None = None) -> ModelSpec:
    """The model named ``text`` (``"name"`` or ``"name:k=v,..."``)."""
    name, raw = parse_name(text)
    if name not in _BUILDERS:
        raise PoshwError(f"unknown model {name!r}; available: {', '.join(_BUILDERS)} "
                         f"(see `poshw models`)")
    fn = _BUILDERS[name]
    sig = inspect.signature(fn)
    kwargs: dict[str, object] = {}
    for key, value in raw.items():
        if key not in sig.parameters or key == "seed":
            allowed = [k for k in sig.parameters if k != "seed"]
            raise PoshwError(f"model {name!r} has no parameter {key!r}; it takes {allowed}")
        default = sig.parameters[key].default
        try:
            kwargs[key] = type(default)(value)
        except ValueError:
            raise PoshwError(f"model {name!r}: {key}={value!r} is not a valid "
                             f"{type(default).__name__}") from None
    if seed is not None:
        kwargs["seed"] = seed
    try:
        spec = fn(**kwargs)
    except PoshwError as e:
        raise PoshwError(f"model {text!r}: {e}") from None
    # The canonical name lists exactly the parameters that differ from the defaults.
    changed = {k: v for k, v in kwargs.items()
               if k != "seed" and v != sig.parameters[k].default}
    canonical = name + (":" + ",".join(f"{k}={v}" for k, v in sorted(changed.items())) if changed else "")
    return dataclasses.replace(spec, name=canonical)
