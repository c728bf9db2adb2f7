"""Model specs: validation, parameter counts, JSON round trip and every malformed-spec error."""

from __future__ import annotations

import copy
import json

import pytest

from poshw import PoshwError, zoo
from poshw import spec as S
from poshw.bases import Family
from poshw.spec import (
    Bias, BiasMode, Conv2d, Dropout, Flatten, Hadamard, Linear, MaxPool2d, ModelSpec,
    ProdSumConv2d, ProdSumLinear, Projection, ReLU, SpecError, Terms,
)

G = Family.GAUSS


def _all_zoo_specs():
    return [zoo.get(info.name) for info in zoo.available()]


def test_spec_error_is_poshw_error_and_value_error():
    assert issubclass(SpecError, PoshwError) and issubclass(SpecError, ValueError)


@pytest.mark.parametrize("spec", _all_zoo_specs(), ids=lambda s: s.name)
def test_json_round_trip_every_zoo_model(spec):
    text = spec.to_json()
    back = ModelSpec.from_json(text)
    assert back == spec
    assert back.to_json() == text
    assert back.shapes == spec.shapes
    assert back.trainable_parameters() == spec.trainable_parameters()


def test_round_trip_of_every_layer_kind_and_option():
    spec = ModelSpec("all", (
        ProdSumConv2d(1, 4, 3, 1, bias=Bias(BiasMode.NONE),
                      terms=(Terms(G, 3), Terms(Family.TERNARY, 2))),
        ReLU(), MaxPool2d(2), Conv2d(4, 2, 3, 1, bias=Bias(BiasMode.BASIS, 2)), Flatten(),
        Projection("subsample", 392, 100), Dropout(0.25),
        ProdSumLinear(100, 50, ((Terms(G, 2), Terms(Family.RANK1, 3)), (Terms(Family.RADEMACHER, 4),)),
                      inner=(20,), bias=Bias(BiasMode.BASIS, 5)),
        Hadamard(50, 2, Terms(Family.TERNARY, 3), bias=Bias(BiasMode.FULL)),
        Projection("select", 50, 5, channels=2),
        Hadamard(5, 2, Terms(G, 1), depthwise=True), Linear(10, 10, bias=Bias(BiasMode.NONE)),
    ), seed=12345, description="every kind")
    back = ModelSpec.from_json(spec.to_json())
    assert back == spec
    assert back.layers[7].dims == (50, 20, 100)
    assert spec.trainable_parameters() == sum(p for _, _, p in spec.parameter_breakdown())


def test_parameter_counts_by_hand():
    assert Linear(784, 10).trainable_parameters() == 7850
    assert Linear(784, 10, bias=Bias("none")).trainable_parameters() == 7840
    assert ProdSumLinear(784, 10, ((Terms(G, 20),),) * 3).trainable_parameters() == 70
    assert ProdSumLinear(784, 10, ((Terms(G, 2), Terms(Family.RANK1, 3)),),
                         bias=Bias("basis", 4)).trainable_parameters() == 9
    assert Conv2d(1, 32, 5, 2).trainable_parameters() == 832
    assert Conv2d(32, 64, 5, 2).trainable_parameters() == 51264
    assert ProdSumConv2d(1, 32, 5, 2, terms=(Terms(G, 200),)).trainable_parameters() == 232
    assert Hadamard(784, 8, Terms(G, 100)).trainable_parameters() == 108
    assert Hadamard(784, 8, Terms(G, 100), bias=Bias("full")).trainable_parameters() == 100 + 8 * 784
    for layer in (ReLU(), MaxPool2d(), Flatten(), Dropout(), Projection("dct", 784, 10)):
        assert layer.trainable_parameters() == 0


def test_default_inner_dims_are_square():
    layer = ProdSumLinear(784, 10, ((Terms(G, 1),),) * 3)
    assert layer.inner == (784, 784)
    assert layer.factor_shapes() == [(10, 784), (784, 784), (784, 784)]


def test_shapes_are_propagated():
    spec = zoo.get("lenet")
    assert spec.shapes[0] == (1, 28, 28)
    assert spec.shapes[1] == (32, 28, 28)
    assert spec.shapes[-1] == (10,)


# --- malformed specs: constructor errors ------------------------------------------------

@pytest.mark.parametrize("make, msg", [
    (lambda: Terms("bogus", 3), "unknown basis family"),
    (lambda: Terms(G, 0), "count must be an integer >= 1"),
    (lambda: Terms(G, 2.5), "count must be an integer"),
    (lambda: Terms(G, True), "count must be an integer"),
    (lambda: Bias("sideways"), "unknown bias mode"),
    (lambda: Bias("basis", 0), "count"),
    (lambda: Bias("full", 3), "only used with mode 'basis'"),
    (lambda: Linear(0, 10), "n_in"),
    (lambda: Linear(10, -1), "n_out"),
    (lambda: Linear(10, 10, bias="full"), "bias must be a Bias"),
    (lambda: Linear(10, 10, bias=Bias("channel")), "only for Hadamard"),
    (lambda: ProdSumLinear(10, 10, ()), "at least one factor"),
    (lambda: ProdSumLinear(10, 10, ((),)), "non-empty tuple of Terms"),
    (lambda: ProdSumLinear(10, 10, (("x",),)), "non-empty tuple of Terms"),
    (lambda: ProdSumLinear(10, 10, ((Terms(G, 1),),) * 2, inner=(3, 4)), "inner dimensions"),
    (lambda: ProdSumLinear(10, 10, ((Terms(G, 1),),) * 2, inner=(0,)), "inner dimension"),
    (lambda: Conv2d(1, 2, 0), "kernel"),
    (lambda: Conv2d(1, 2, 3, -1), "padding"),
    (lambda: ProdSumConv2d(1, 2, 3), "terms must be a non-empty"),
    (lambda: ProdSumConv2d(1, 2, 3, terms=(Terms(Family.RANK1, 2),)), "rank1"),
    (lambda: Projection("fft", 784, 10), "unknown method"),
    (lambda: Projection("dct", 784, 800), "exceeds n_in"),
    (lambda: Projection("dct", 100, 10), "does not have n_in"),
    (lambda: Projection("dct", 784, 10, channels=0), "channels"),
    (lambda: Hadamard(10, 2, Terms(Family.RANK1, 1)), "one Terms group"),
    (lambda: Hadamard(10, 2, (Terms(G, 1),)), "one Terms group"),
    (lambda: Hadamard(0, 2, Terms(G, 1)), "n must be"),
    (lambda: MaxPool2d(0), "kernel"),
    (lambda: Dropout(1.0), "p must be in"),
    (lambda: Dropout("x"), "p must be in"),
])
def test_layer_constructor_errors(make, msg):
    with pytest.raises(SpecError, match=msg):
        make()


@pytest.mark.parametrize("kwargs, msg", [
    (dict(name="", layers=(Flatten(), Linear(784, 10))), "name"),
    (dict(name="m", layers=()), "at least one layer"),
    (dict(name="m", layers=(Flatten(), Linear(784, 10)), seed=-1), "seed"),
    (dict(name="m", layers=(Flatten(), Linear(784, 10)), seed=2**63), "seed must be < 2\\*\\*63"),
    (dict(name="m", layers=(Flatten(), Linear(700, 10))), "n_in=700"),
    (dict(name="m", layers=(Flatten(), Linear(784, 9))), "expected 10 class scores"),
    (dict(name="m", layers=(Conv2d(3, 4, 3),)), "expects a \\(3, H, W\\)"),
    (dict(name="m", layers=(Conv2d(1, 4, 30),)), "too large"),
    (dict(name="m", layers=(Flatten(), MaxPool2d())), "expects \\(C, H, W\\)"),
    (dict(name="m", layers=("relu",)), "not a layer spec"),
    (dict(name="m", layers=(Projection("dct", 784, 10, channels=2),)), "expects 2 x 784"),
    (dict(name="m", layers=(Hadamard(784, 2, Terms(G, 1), depthwise=True),)), "expects 2 x 784"),
])
def test_model_spec_errors(kwargs, msg):
    with pytest.raises(SpecError, match=msg):
        ModelSpec(**kwargs)


# --- malformed JSON ---------------------------------------------------------------------

def _base() -> dict:
    return zoo.get("prodsumnet").to_dict()


def _mutate(fn):
    d = copy.deepcopy(_base())
    fn(d)
    return d


@pytest.mark.parametrize("mutate, msg", [
    (lambda d: d.update(spec_version=2), "spec_version 2 is not supported"),
    (lambda d: d.pop("spec_version"), "spec_version None"),
    (lambda d: d.update(extra=1), "unknown keys \\['extra'\\]"),
    (lambda d: d.update(layers={}), "'layers' must be a list"),
    (lambda d: d["layers"].__setitem__(0, 5), "layer 0: must be an object with a 'kind'"),
    (lambda d: d["layers"][0].pop("kind"), "layer 0: must be an object"),
    (lambda d: d["layers"][0].update(kind="lstm"), "unknown kind 'lstm'"),
    (lambda d: d["layers"][0].update(stride=2), "unknown keys \\['stride'\\]"),
    (lambda d: d["layers"][0].pop("c_in"), "layer 0 \\(prodsum_conv2d\\).*c_in"),
    (lambda d: d["layers"][0].update(terms={"family": "gauss", "count": 2}), "expected a list"),
    (lambda d: d["layers"][0].update(terms=[5]), "expected an object for Terms"),
    (lambda d: d["layers"][0].update(terms=[{"family": "gauss"}]), "bad Terms"),
    (lambda d: d["layers"][0].update(terms=[{"family": "gauss", "count": 2, "x": 1}]), "bad Terms"),
    (lambda d: d["layers"][0]["terms"][0].update(family="laplace"), "unknown basis family"),
    (lambda d: d["layers"][0]["terms"][0].update(count=-3), "count must be an integer >= 1"),
    (lambda d: d["layers"][0].update(bias="full"), "expected an object for Bias"),
    (lambda d: d["layers"][7]["bias"].update(mode="weird"), "unknown bias mode"),
    (lambda d: d["layers"][7].update(factors=[[{"family": "gauss", "count": 1}], 3]), "expected a list"),
    (lambda d: d["layers"][7].update(factors="x"), "expected a list"),
    (lambda d: d["layers"][7].update(n_in=3000), "n_in=3000"),
    (lambda d: d.update(num_classes=11), "expected 11 class scores"),
    (lambda d: d.update(seed=-5), "seed"),
    (lambda d: d.update(name=""), "name"),
    (lambda d: d.update(input_shape=[1, 32, 32]), "n_in=3136"),
])
def test_from_dict_errors(mutate, msg):
    with pytest.raises(SpecError, match=msg):
        ModelSpec.from_dict(_mutate(mutate))


def test_from_json_errors():
    with pytest.raises(SpecError, match="not valid JSON"):
        ModelSpec.from_json("{")
    with pytest.raises(SpecError, match="must be a JSON object"):
        ModelSpec.from_json("[]")


def test_specs_are_frozen_and_hashable():
    spec = zoo.get("linear-dct:m=16")
    with pytest.raises(Exception):
        spec.seed = 3
    with pytest.raises(Exception):
        spec.layers[1].n_in = 5
    assert hash(spec) == hash(ModelSpec.from_json(spec.to_json()))


def test_json_is_stable_and_sorted():
    d = json.loads(zoo.get("linear").to_json())
    assert d["spec_version"] == S.SPEC_VERSION
    assert list(d) == sorted(d)
