"""Model specifications: frozen, validated, JSON-serialisable descriptions of networks.

A :class:`ModelSpec` says everything about a network except the trained values:
the layers, the basis families and counts of every product of sums, and the seed
from which every fixed basis entry is generated. The torch model (``poshw.nn``),
the coefficient set (``poshw.coefset``) and the hardware compiler all read it.

Basis streams are named by ``(seed, layer, factor, group, basis)``: ``layer`` is the
layer's index in ``ModelSpec.layers``, ``factor`` the index ``j`` of the sum in the
product, ``group`` the index of the :class:`Terms` group in that sum and ``basis`` the
index ``k`` inside the group (see docs/BASES.md). Bias bases use factor ``BIAS_FACTOR``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, ClassVar, Union

from . import PoshwError
from .bases import Family

SPEC_VERSION = 1
#: factor index used in the stream path of a bias expressed as a sum of basis vectors
BIAS_FACTOR = 255


class SpecError(PoshwError, ValueError):
    """A malformed or inconsistent model specification."""


class BiasMode(str, Enum):
    FULL = "full"        #: one trainable value per output
    NONE = "none"        #: no bias
    BASIS = "basis"      #: a sum of ``count`` fixed gauss vectors with trainable coefficients
    CHANNEL = "channel"  #: one trainable value per channel / filter (Hadamard layers)


class ProjectionKind(str, Enum):
    DCT = "dct"              #: lowest m zigzag 2-D DCT coefficients of each channel's image
    GAUSS = "gauss"          #: dense m x n random (gauss family) projection
    SUBSAMPLE = "subsample"  #: m pixels picked by a seeded random permutation
    SELECT = "select"        #: the first m entries of each channel (low-pass of a zigzag DCT)


def _need(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise SpecError(f"{where}: {msg}")


def _pos_int(value: Any, where: str, name: str, minimum: int = 1) -> None:
    _need(isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
          where, f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class Terms:
    """``count`` fixed bases of one family inside a sum."""

    family: Family
    count: int

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "family", Family(self.family))
        except ValueError:
            raise SpecError(f"unknown basis family {self.family!r}; "
                            f"choose from {[f.value for f in Family]}") from None
        _pos_int(self.count, "Terms", "count")


@dataclass(frozen=True)
class Bias:
    mode: BiasMode = BiasMode.FULL
    count: int = 0

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "mode", BiasMode(self.mode))
        except ValueError:
            raise SpecError(f"unknown bias mode {self.mode!r}; "
                            f"choose from {[m.value for m in BiasMode]}") from None
        if self.mode is BiasMode.BASIS:
            _pos_int(self.count, "Bias", "count (number of bias basis vectors)")
        else:
            _need(self.count == 0, "Bias", f"count is only used with mode 'basis', got {self.count}")

    def parameters(self, outputs: int, channels: int = 1) -> int:
        return {BiasMode.FULL: outputs, BiasMode.NONE: 0, BiasMode.BASIS: self.count,
                BiasMode.CHANNEL: channels}[self.mode]


FULL_BIAS = Bias()
NO_BIAS = Bias(BiasMode.NONE)


# --- layers ----------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerSpec:
    """Base of all layer specs. ``kind`` names the layer in JSON."""

    kind: ClassVar[str] = ""

    def output_shape(self, in_shape: tuple[int, ...], where: str) -> tuple[int, ...]:
        raise NotImplementedError

    def trainable_parameters(self) -> int:
        return 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for f in fields(self):
            out[f.name] = _to_json(getattr(self, f.name))
        return out


def _to_json(v: Any) -> Any:
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, (Terms, Bias)):
        return {f.name: _to_json(getattr(v, f.name)) for f in fields(v)}
    if isinstance(v, tuple):
        return [_to_json(x) for x in v]
    return v


def _features(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def _check_bias(bias: Bias, where: str, allow_channel: bool = False) -> None:
    _need(isinstance(bias, Bias), where, f"bias must be a Bias, got {bias!r}")
    _need(allow_channel or bias.mode is not BiasMode.CHANNEL, where,
          "bias mode 'channel' is only for Hadamard layers")


@dataclass(frozen=True)
class Linear(LayerSpec):
    """Dense reference layer: every weight trainable."""

    kind: ClassVar[str] = "linear"
    n_in: int
    n_out: int
    bias: Bias = FULL_BIAS

    def __post_init__(self) -> None:
        _pos_int(self.n_in, "Linear", "n_in")
        _pos_int(self.n_out, "Linear", "n_out")
        _check_bias(self.bias, "Linear")

    def output_shape(self, in_shape, where):
        _need(_features(in_shape) == self.n_in, where,
              f"n_in={self.n_in} but the input has {_features(in_shape)} features {in_shape}")
        return (self.n_out,)

    def trainable_parameters(self) -> int:
        return self.n_in * self.n_out + self.bias.parameters(self.n_out)


@dataclass(frozen=True)
class ProdSumLinear(LayerSpec):
    """``y = (F_1 F_2 ... F_p) x + b`` with ``F_j = sum_k a_jk M_jk``.

    ``factors[j]`` lists the term groups of sum ``j``. Factor shapes follow
    ``dims = [n_out, *inner, n_in]``: ``F_j`` is ``dims[j] x dims[j+1]``. With
    ``inner`` empty and p > 1, every inner dimension is ``n_in`` (square factors,
    as in section 5.1 of the paper).
    """

    kind: ClassVar[str] = "prodsum_linear"
    n_in: int
    n_out: int
    factors: tuple[tuple[Terms, ...], ...]
    inner: tuple[int, ...] = ()
    bias: Bias = FULL_BIAS

    def __post_init__(self) -> None:
        w = "ProdSumLinear"
        _pos_int(self.n_in, w, "n_in")
        _pos_int(self.n_out, w, "n_out")
        object.__setattr__(self, "factors", tuple(tuple(f) for f in self.factors))
        object.__setattr__(self, "inner", tuple(self.inner))
        _need(len(self.factors) >= 1, w, "needs at least one factor (p >= 1)")
        for j, f in enumerate(self.factors):
            _need(len(f) >= 1 and all(isinstance(t, Terms) for t in f), w,
                  f"factor {j} must be a non-empty tuple of Terms, got {f!r}")
        p = len(self.factors)
        if not self.inner and p > 1:
            object.__setattr__(self, "inner", (self.n_in,) * (p - 1))
        _need(len(self.inner) == p - 1, w,
              f"{p} factors need {p - 1} inner dimensions, got {len(self.inner)}")
        for d in self.inner:
            _pos_int(d, w, "inner dimension")
        _check_bias(self.bias, w)

    @property
    def dims(self) -> tuple[int, ...]:
        return (self.n_out, *self.inner, self.n_in)

    def factor_shapes(self) -> list[tuple[int, int]]:
        d = self.dims
        return [(d[j], d[j + 1]) for j in range(len(self.factors))]

    def output_shape(self, in_shape, where):
        _need(_features(in_shape) == self.n_in, where,
              f"n_in={self.n_in} but the input has {_features(in_shape)} features {in_shape}")
        return (self.n_out,)

    def trainable_parameters(self) -> int:
        return (sum(t.count for f in self.factors for t in f)
                + self.bias.parameters(self.n_out))


@dataclass(frozen=True)
class Conv2d(LayerSpec):
    kind: ClassVar[str] = "conv2d"
    c_in: int
    c_out: int
    kernel: int
    padding: int = 0
    bias: Bias = FULL_BIAS

    def __post_init__(self) -> None:
        w = type(self).__name__
        _pos_int(self.c_in, w, "c_in")
        _pos_int(self.c_out, w, "c_out")
        _pos_int(self.kernel, w, "kernel")
        _pos_int(self.padding, w, "padding", minimum=0)
        _check_bias(self.bias, w)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.c_out, self.c_in, self.kernel, self.kernel)

    def output_shape(self, in_shape, where):
        _need(len(in_shape) == 3 and in_shape[0] == self.c_in, where,
              f"expects a ({self.c_in}, H, W) input, got {in_shape}")
        h = in_shape[1] + 2 * self.padding - self.kernel + 1
        wd = in_shape[2] + 2 * self.padding - self.kernel + 1
        _need(h > 0 and wd > 0, where, f"kernel {self.kernel} too large for input {in_shape}")
        return (self.c_out, h, wd)

    def trainable_parameters(self) -> int:
        return math.prod(self.weight_shape) + self.bias.parameters(self.c_out)


@dataclass(frozen=True)
class ProdSumConv2d(Conv2d):
    """Convolution whose kernel is ``sum_k a_k B_k`` over fixed random filters ``B_k``."""

    kind: ClassVar[str] = "prodsum_conv2d"
    terms: tuple[Terms, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "terms", tuple(self.terms))
        _need(len(self.terms) >= 1 and all(isinstance(t, Terms) for t in self.terms),
              "ProdSumConv2d", "terms must be a non-empty tuple of Terms")
        _need(all(t.family is not Family.RANK1 for t in self.terms), "ProdSumConv2d",
              "rank1 bases are for linear layers; use gauss, rademacher or ternary filters")

    def trainable_parameters(self) -> int:
        return sum(t.count for t in self.terms) + self.bias.parameters(self.c_out)


@dataclass(frozen=True)
class Projection(LayerSpec):
    """A fixed (untrained) linear map applied to each of ``channels`` channels."""

    kind: ClassVar[str] = "projection"
    method: ProjectionKind
    n_in: int
    m: int
    channels: int = 1
    #: image shape (h, w) of one channel, used by the DCT (h * w == n_in)
    image: tuple[int, int] = (28, 28)

    def __post_init__(self) -> None:
        w = "Projection"
        try:
            object.__setattr__(self, "method", ProjectionKind(self.method))
        except ValueError:
            raise SpecError(f"{w}: unknown method {self.method!r}; "
                            f"choose from {[k.value for k in ProjectionKind]}") from None
        object.__setattr__(self, "image", tuple(self.image))
        _pos_int(self.n_in, w, "n_in")
        _pos_int(self.m, w, "m")
        _pos_int(self.channels, w, "channels")
        _need(self.m <= self.n_in or self.method is ProjectionKind.GAUSS, w,
              f"m={self.m} exceeds n_in={self.n_in}")
        if self.method is ProjectionKind.DCT:
            _need(len(self.image) == 2 and self.image[0] * self.image[1] == self.n_in, w,
                  f"image {self.image} does not have n_in={self.n_in} pixels")

    def output_shape(self, in_shape, where):
        _need(_features(in_shape) == self.channels * self.n_in, where,
              f"expects {self.channels} x {self.n_in} features, got {in_shape}")
        return (self.channels * self.m,)


@dataclass(frozen=True)
class Hadamard(LayerSpec):
    """Elementwise (diagonal) filters in the transform domain.

    Each of ``terms.count`` bases is a ``filters``-tuple of diagonals of length ``n``;
    filter ``f`` is ``d_f = sum_k a_k D_{k,f}`` (one coefficient per tuple, as in the
    paper's section 6). With ``depthwise`` the input has ``filters`` channels and
    filter ``f`` multiplies channel ``f``; otherwise the input is one channel and
    every filter multiplies it. Output: ``filters x n``.
    """

    kind: ClassVar[str] = "hadamard"
    n: int
    filters: int
    terms: Terms
    depthwise: bool = False
    bias: Bias = Bias(BiasMode.CHANNEL)

    def __post_init__(self) -> None:
        w = "Hadamard"
        _pos_int(self.n, w, "n")
        _pos_int(self.filters, w, "filters")
        _need(isinstance(self.terms, Terms) and self.terms.family is not Family.RANK1, w,
              "terms must be one Terms group of gauss, rademacher or ternary diagonals")
        _check_bias(self.bias, w, allow_channel=True)

    @property
    def channels_in(self) -> int:
        return self.filters if self.depthwise else 1

    def output_shape(self, in_shape, where):
        _need(_features(in_shape) == self.channels_in * self.n, where,
              f"expects {self.channels_in} x {self.n} features, got {in_shape}")
        return (self.filters * self.n,)

    def trainable_parameters(self) -> int:
        return self.terms.count + self.bias.parameters(self.filters * self.n, self.filters)


@dataclass(frozen=True)
class ReLU(LayerSpec):
    kind: ClassVar[str] = "relu"

    def output_shape(self, in_shape, where):
        return in_shape


@dataclass(frozen=True)
class MaxPool2d(LayerSpec):
    kind: ClassVar[str] = "maxpool2d"
    kernel: int = 2

    def __post_init__(self) -> None:
        _pos_int(self.kernel, "MaxPool2d", "kernel")

    def output_shape(self, in_shape, where):
        _need(len(in_shape) == 3, where, f"expects (C, H, W), got {in_shape}")
        return (in_shape[0], in_shape[1] // self.kernel, in_shape[2] // self.kernel)


@dataclass(frozen=True)
class Flatten(LayerSpec):
    kind: ClassVar[str] = "flatten"

    def output_shape(self, in_shape, where):
        return (_features(in_shape),)


@dataclass(frozen=True)
class Dropout(LayerSpec):
    kind: ClassVar[str] = "dropout"
    p: float = 0.5

    def __post_init__(self) -> None:
        _need(isinstance(self.p, (int, float)) and 0.0 <= self.p < 1.0, "Dropout",
              f"p must be in [0, 1), got {self.p!r}")

    def output_shape(self, in_shape, where):
        return in_shape


LAYER_TYPES: dict[str, type[LayerSpec]] = {
    cls.kind: cls for cls in (Linear, ProdSumLinear, Conv2d, ProdSumConv2d, Projection,
                              Hadamard, ReLU, MaxPool2d, Flatten, Dropout)
}
AnyLayer = Union[Linear, ProdSumLinear, Conv2d, ProdSumConv2d, Projection, Hadamard, ReLU,
                 MaxPool2d, Flatten, Dropout]


# --- the model -------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelSpec:
    """A whole network: layers in order, the basis seed, the input shape and class count."""

    name: str
    layers: tuple[LayerSpec, ...]
    seed: int = 0
    input_shape: tuple[int, ...] = (1, 28, 28)
    num_classes: int = 10
    #: free-form notes (e.g. how parameters are counted); not used by any computation
    description: str = ""
    shapes: tuple[tuple[int, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        _need(isinstance(self.name, str) and self.name != "", "ModelSpec", "name must be a non-empty string")
        _pos_int(self.seed, "ModelSpec", "seed", minimum=0)
        _need(self.seed < 2**63, "ModelSpec", "seed must be < 2**63")
        _need(len(self.layers) >= 1, "ModelSpec", "needs at least one layer")
        shape = self.input_shape
        shapes = [shape]
        for i, layer in enumerate(self.layers):
            _need(isinstance(layer, LayerSpec), "ModelSpec", f"layer {i} is not a layer spec: {layer!r}")
            shape = layer.output_shape(shape, f"layer {i} ({type(layer).__name__})")
            shapes.append(tuple(shape))
        _need(_features(shape) == self.num_classes, "ModelSpec",
              f"the last layer gives {shape}, expected {self.num_classes} class scores")
        object.__setattr__(self, "shapes", tuple(shapes))

    def trainable_parameters(self) -> int:
        """Exact count: sum of all coefficients ``s_j`` plus trainable biases and dense weights."""
        return sum(layer.trainable_parameters() for layer in self.layers)

    def parameter_breakdown(self) -> list[tuple[int, str, int]]:
        return [(i, type(l).__name__, l.trainable_parameters())
                for i, l in enumerate(self.layers) if l.trainable_parameters()]

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec_version": SPEC_VERSION,
            "name": self.name,
            "seed": self.seed,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "description": self.description,
            "layers": [layer.to_dict() for layer in self.layers],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelSpec":
        _need(isinstance(d, dict), "model spec", "must be a JSON object")
        version = d.get("spec_version")
        _need(version == SPEC_VERSION, "model spec",
              f"spec_version {version!r} is not supported (this poshw reads {SPEC_VERSION})")
        known = {"spec_version", "name", "seed", "input_shape", "num_classes", "description", "layers"}
        extra = set(d) - known
        _need(not extra, "model spec", f"unknown keys {sorted(extra)}")
        _need(isinstance(d.get("layers"), list), "model spec", "'layers' must be a list")
        layers = tuple(_layer_from_dict(ld, i) for i, ld in enumerate(d["layers"]))
        try:
            return cls(name=d.get("name", ""), layers=layers, seed=d.get("seed", 0),
                       input_shape=tuple(d.get("input_shape", (1, 28, 28))),
                       num_classes=d.get("num_classes", 10), description=d.get("description", ""))
        except TypeError as e:
            raise SpecError(f"model spec: {e}") from None

    @classmethod
    def from_json(cls, text: str) -> "ModelSpec":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise SpecError(f"model spec is not valid JSON: {e}") from None
        return cls.from_dict(d)


def _layer_from_dict(d: Any, index: int) -> LayerSpec:
    where = f"layer {index}"
    _need(isinstance(d, dict) and "kind" in d, where, "must be an object with a 'kind'")
    kind = d["kind"]
    _need(kind in LAYER_TYPES, where, f"unknown kind {kind!r}; choose from {sorted(LAYER_TYPES)}")
    cls = LAYER_TYPES[kind]
    names = {f.name for f in fields(cls)}
    extra = set(d) - names - {"kind"}
    _need(not extra, where, f"unknown keys {sorted(extra)} for kind {kind!r}")
    kwargs: dict[str, Any] = {}
    for k, v in d.items():
        if k == "kind":
            continue
        if k == "bias":
            v = _obj(Bias, v, where)
        elif k == "terms":
            v = _obj(Terms, v, where) if cls is Hadamard else tuple(_obj(Terms, t, where) for t in _list(v, where))
        elif k == "factors":
            v = tuple(tuple(_obj(Terms, t, where) for t in _list(f, where)) for f in _list(v, where))
        elif isinstance(v, list):
            v = tuple(v)
        kwargs[k] = v
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise SpecError(f"{where} ({kind}): {e}") from None


def _list(v: Any, where: str) -> list:
    _need(isinstance(v, list), where, f"expected a list, got {v!r}")
    return v


def _obj(cls: type, v: Any, where: str) -> Any:
    _need(isinstance(v, dict), where, f"expected an object for {cls.__name__}, got {v!r}")
    try:
        return cls(**v)
    except TypeError as e:
        raise SpecError(f"{where}: bad {cls.__name__} {v!r}: {e}") from None
