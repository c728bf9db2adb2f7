"""The model zoo: names, parameters, and exact trainable-parameter counts."""

from __future__ import annotations

import numpy as np
import pytest

from poshw import PoshwError, zoo
from poshw.nn import build_model
from poshw.nn import compact as compact_mod
from poshw.nn import layers as layers_mod

# The paper's counts (reference models) and this project's reduced models at their defaults.
REFERENCE_COUNTS = {
    "linear": 7_850,
    "lenet": 3_274_634,
    "mlp": 1_333_770,
    "linear-dct:m=169": 1_700,
    "prodsumnet": 3_554,
}
DEFAULT_COUNTS = {
    "linear": 7_850, "linear-dct": 1_700, "linear-gauss": 1_700, "linear-subsample": 1_700,
    "linear-prodsum": 210, "lenet": 3_274_634, "lenet-convs": 3_223_634, "prodsumnet": 3_554,
    "mlp": 1_333_770, "mlp-reduced": 56_818, "convfree": 3_234_118,
}


def test_available_lists_every_model_once():
    names = [m.name for m in zoo.available()]
    assert sorted(names) == sorted(DEFAULT_COUNTS)
    assert len(set(names)) == len(names)
    for info in zoo.available():
        assert info.summary and "seed" not in info.params


@pytest.mark.parametrize("name, count", sorted(REFERENCE_COUNTS.items()))
def test_paper_reference_counts(name, count):
    assert zoo.get(name).trainable_parameters() == count


@pytest.mark.parametrize("name, count", sorted(DEFAULT_COUNTS.items()))
def test_default_counts(name, count):
    assert zoo.get(name).trainable_parameters() == count


@pytest.fixture
def cheap_bases(monkeypatch):
    """Bases whose values do not matter (parameter counting): all-zero stores, built at once.

    The big ones (prodsumnet fc1: 100 x 3.2M entries) take seconds to generate, and a
    count never depends on the values.
    """
    class _ZeroStore:
        def __init__(self, family, seed, path, count, entries):
            self.family, self.count, self.entries, self.bits = family, count, entries, 8
            self.data = np.zeros((entries, count), dtype=np.int8)

    # raising=False: if the layer module stops using these names, counting is just slower
    monkeypatch.setattr(layers_mod, "CompactStack", _ZeroStore, raising=False)
    monkeypatch.setattr(layers_mod, "rank1_vectors", lambda seed, path, count, rows, cols: (
        np.zeros((count, rows), np.int8), np.zeros((count, cols), np.int8)), raising=False)
    monkeypatch.setattr(layers_mod, "basis_stack", lambda fam, seed, path, count, entries:
                        np.zeros((count, entries), np.int8), raising=False)
    assert compact_mod  # the real store is exercised in test_layers


@pytest.mark.parametrize("name", sorted(DEFAULT_COUNTS))
def test_torch_module_count_equals_spec_count(name, cheap_bases):
    spec = zoo.get(name)
    model = build_model(spec)
    assert model.trainable_parameters() == spec.trainable_parameters() == DEFAULT_COUNTS[name]
    assert sum(p.numel() for p in model.parameters()) == DEFAULT_COUNTS[name]


@pytest.mark.parametrize("text", ["linear-dct:m=64", "linear-prodsum:p=3,k=5,inner=32",
                                  "mlp-reduced:m=32,last=prodsum", "lenet-convs:conv1=10,conv2=20"])
def test_parameterised_models_build_with_real_bases(text):
    spec = zoo.get(text)
    assert build_model(spec).trainable_parameters() == spec.trainable_parameters()


def test_parameterised_counts():
    assert zoo.get("linear-dct:m=64").trainable_parameters() == 650
    assert zoo.get("linear-gauss:m=1").trainable_parameters() == 20
    assert zoo.get("linear-prodsum:p=10,k=20").trainable_parameters() == 210
    assert zoo.get("linear-prodsum:p=1,k=40").trainable_parameters() == 50
    assert zoo.get("prodsumnet:fc1_bias=0").trainable_parameters() == 3_554 - 824


def test_canonical_names():
    assert zoo.get("linear-dct").name == "linear-dct"
    assert zoo.get("linear-dct:m=169").name == "linear-dct"  # the default is not spelled out
    assert zoo.get("linear-dct: m = 64").name == "linear-dct:m=64"
    assert zoo.get("linear-prodsum:k=5,p=2").name == "linear-prodsum:k=5,p=2"
    assert zoo.get(zoo.get("mlp-reduced:s=10,m=20").name) == zoo.get("mlp-reduced:m=20,s=10")


def test_seed_override():
    assert zoo.get("linear-gauss").seed == 0
    assert zoo.get("linear-gauss", seed=7).seed == 7
    assert zoo.get("linear-gauss", seed=7).name == "linear-gauss"


@pytest.mark.parametrize("text, msg", [
    ("nope", "unknown model 'nope'; available: linear, linear-dct"),
    ("linear-dct:x=3", "has no parameter 'x'; it takes \\['m'\\]"),
    ("linear-dct:seed=3", "has no parameter 'seed'"),
    ("linear-dct:m=abc", "m='abc' is not a valid int"),
    ("linear-dct:m", "is not key=value"),
    ("linear-dct:m=0", "m must be an integer >= 1"),
    ("linear-dct:m=900", "exceeds n_in"),
    ("linear-prodsum:family=laplace", "unknown basis family"),
    ("mlp-reduced:last=conv", "last must be 'dense' or 'prodsum'"),
])
def test_bad_names_are_one_clear_error(text, msg):
    with pytest.raises(PoshwError, match=msg):
        zoo.get(text)


def test_descriptions_explain_counts():
    for info in zoo.available():
        spec = zoo.get(info.name)
        assert spec.description
    assert "3,554" in zoo.get("prodsumnet").description or "930" in zoo.get("prodsumnet").description
