"""The training configuration: a frozen, validated dataclass serialised to ``config.json``.

Everything that determines the trained values is in :class:`TrainConfig` (model,
dataset, optimiser, schedule, seed, subset sizes, initialisation); where the data
lives, how many threads run and whether a progress bar is shown are not, since
they do not change the result.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from enum import Enum
from typing import Any

from .. import PoshwError, zoo
from ..data import DATASETS

CONFIG_VERSION = 1


class ConfigError(PoshwError, ValueError):
    """A bad training option."""


class Optimizer(str, Enum):
    ADAM = "adam"
    SGD = "sgd"  #: with ``momentum`` (0.9 by default)


class Schedule(str, Enum):
    CONSTANT = "constant"
    #: cosine decay from ``lr`` to 0 over all epochs, evaluated per step
    COSINE = "cosine"


#: fields a resumed run may change: they do not alter the steps already taken
RESUME_MUTABLE = ("epochs", "checkpoint_every")


def _int(name: str, value: Any, minimum: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"--{name.replace('_', '-')} must be an integer >= {minimum}, got {value!r}")


def _float(name: str, value: Any, minimum: float, strict: bool) -> None:
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and (value > minimum if strict else value >= minimum))
    if not ok:
        rel = ">" if strict else ">="
        raise ConfigError(f"--{name.replace('_', '-')} must be a finite number {rel} {minimum}, "
                          f"got {value!r}")


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained. ``model`` is a zoo name (``"linear-dct:m=64"``).

    ``seed`` is both the model's basis seed (``ModelSpec.seed``: bases and initial
    values) and the seed of the data shuffling and subset choice.
    """

    model: str
    dataset: str = "mnist"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    optimizer: Optimizer = Optimizer.ADAM
    #: SGD momentum (ignored by Adam)
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: Schedule = Schedule.CONSTANT
    #: train on a class-balanced random subset of this many training examples
    subset: int | None = None
    #: evaluate on a class-balanced random subset of the test set (quick runs only)
    test_subset: int | None = None
    #: also checkpoint every this many steps (0: only after every epoch)
    checkpoint_every: int = 0
    #: run directory or coefs.npz whose coefficients initialise this model (least squares)
    init_from: str | None = None
    #: with ``init_from``: keep fresh initial values for layers that cannot be lifted
    partial_init: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError("--model is required (see `poshw models`)")
        # Canonical name (also validates it: unknown model -> the list of models).
        try:
            object.__setattr__(self, "model", zoo.get(self.model).name)
        except ConfigError:
            raise
        except PoshwError as e:
            raise ConfigError(str(e)) from None
        ds = str(self.dataset).strip().lower().replace("_", "-")
        if ds not in DATASETS:
            raise ConfigError(f"unknown dataset {self.dataset!r}; choose one of: {', '.join(DATASETS)}")
        object.__setattr__(self, "dataset", ds)
        for name, enum in (("optimizer", Optimizer), ("schedule", Schedule)):
            try:
                object.__setattr__(self, name, enum(getattr(self, name)))
            except ValueError:
                raise ConfigError(f"unknown {name} {getattr(self, name)!r}; choose one of: "
                                  f"{', '.join(e.value for e in enum)}") from None
        _int("epochs", self.epochs, 0)
        _int("batch_size", self.batch_size, 1)
        _int("seed", self.seed, 0)
        if self.seed >= 2**63:
            raise ConfigError(f"--seed must be < 2**63, got {self.seed}")
        _int("subset", self.subset, 1, optional=True)
        _int("test_subset", self.test_subset, 1, optional=True)
        _int("checkpoint_every", self.checkpoint_every, 0)
        _float("lr", self.lr, 0.0, strict=True)
        _float("momentum", self.momentum, 0.0, strict=False)
        if self.momentum >= 1:
            raise ConfigError(f"--momentum must be < 1, got {self.momentum}")
        _float("weight_decay", self.weight_decay, 0.0, strict=False)
        if self.init_from is not None and not (isinstance(self.init_from, str) and self.init_from):
            raise ConfigError(f"--init-from must be a path, got {self.init_from!r}")
        if not isinstance(self.partial_init, bool):
            raise ConfigError(f"partial_init must be true or false, got {self.partial_init!r}")
        object.__setattr__(self, "lr", float(self.lr))
        object.__setattr__(self, "momentum", float(self.momentum))
        object.__setattr__(self, "weight_decay", float(self.weight_decay))

    def spec(self):
        """The model spec: the zoo model with this config's seed."""
        return zoo.get(self.model, seed=self.seed)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["optimizer"] = self.optimizer.value
        d["schedule"] = self.schedule.value
        return {"config_version": CONFIG_VERSION, **d}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        if not isinstance(d, dict):
            raise ConfigError("training config must be a JSON object")
        d = dict(d)
        version = d.pop("config_version", None)
        if version != CONFIG_VERSION:
            raise ConfigError(f"training config version {version!r} is not supported "
                              f"(this poshw reads {CONFIG_VERSION})")
        known = {f.name for f in fields(cls)}
        extra = sorted(set(d) - known)
        if extra:
            raise ConfigError(f"training config has unknown keys {extra}")
        try:
            return cls(**d)
        except TypeError as e:
            raise ConfigError(f"training config: {e}") from None

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise ConfigError(f"training config is not valid JSON: {e}") from None

    def differences(self, other: "TrainConfig") -> dict[str, tuple[Any, Any]]:
        """Fields whose values differ: ``{name: (self's, other's)}``."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}

    def replace(self, **changes: Any) -> "TrainConfig":
        return replace(self, **changes)
