"""Coefficient sets: the trained values of a model plus its full spec, in one file.

A coefficient set (``coefs.npz``) holds every trainable tensor (coefficients,
biases, dense weights) and the :class:`~poshw.spec.ModelSpec` (families, shapes,
seeds, scales follow from it), so it rebuilds the model exactly with no other
file. ``meta`` (JSON inside the archive) carries a schema version and a sha256
over the spec and every tensor; :func:`load` refuses a file whose checksum,
schema or tensor shapes do not match.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import PoshwError
from .fileio import write_bytes_atomic
from .spec import ModelSpec, SpecError

SCHEMA = "poshw.coefset"
SCHEMA_VERSION = 1
META_KEY = "__meta__"


class CoefSetError(PoshwError):
    """A missing, corrupt or mismatched coefficient set."""


@dataclass
class CoefficientSet:
    spec: ModelSpec
    tensors: dict[str, np.ndarray]
    #: free-form provenance: dataset, accuracy, training config
    info: dict[str, Any] = field(default_factory=dict)
    #: the file it was loaded from (named in errors), or None
    source: str | None = field(default=None, compare=False, repr=False)

    def checksum(self) -> str:
        h = hashlib.sha256(self.spec.to_json().encode())
        for name in sorted(self.tensors):
            t = np.ascontiguousarray(self.tensors[name])
            h.update(f"{name}|{t.dtype.str}|{t.shape}|".encode())
            h.update(t.tobytes())
        return h.hexdigest()

    def trainable_parameters(self) -> int:
        return int(sum(t.size for t in self.tensors.values()))

    @classmethod
    def from_model(cls, model, info: dict[str, Any] | None = None) -> "CoefficientSet":
        tensors = {n: p.detach().cpu().numpy().astype(np.float32).copy()
                   for n, p in model.named_parameters()}
        return cls(model.spec, tensors, dict(info or {}))

    def build_model(self):
        """The float torch model with these values loaded (strict: every tensor must match)."""
        import torch

        from .nn import build_model

        model = build_model(self.spec)
        expected = {n: tuple(p.shape) for n, p in model.named_parameters()}
        got = {n: tuple(t.shape) for n, t in self.tensors.items()}
        if expected != got:
            missing = sorted(set(expected) - set(got))
            extra = sorted(set(got) - set(expected))
            wrong = sorted(n for n in set(expected) & set(got) if expected[n] != got[n])
            where = f"{self.source}: " if self.source else ""
            raise CoefSetError(f"{where}coefficient set does not fit model {self.spec.name!r}: missing "
                               f"{missing}, unexpected {extra}, wrong shapes "
                               f"{[(n, got[n], expected[n]) for n in wrong]}")
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(torch.from_numpy(np.asarray(self.tensors[n], dtype=np.float32)))
        return model

    def save(self, path: str | Path) -> None:
        meta = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "spec": self.spec.to_dict(),
                "sha256": self.checksum(), "info": self.info,
                "tensors": {n: {"shape": list(t.shape), "dtype": t.dtype.str}
                            for n, t in sorted(self.tensors.items())}}
        buf = io.BytesIO()
        arrays = {n: np.ascontiguousarray(t) for n, t in self.tensors.items()}
        arrays[META_KEY] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
        np.savez(buf, **arrays)
        write_bytes_atomic(path, buf.getvalue())


def load(path: str | Path) -> CoefficientSet:
    """Read and verify a coefficient set (a ``coefs.npz`` file or a run directory holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "coefs.npz"
    if not path.is_file():
        raise CoefSetError(f"{path}: no coefficient set here (expected a coefs.npz written by "
                           f"`poshw train`)")
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise CoefSetError(f"{path}: not a poshw coefficient set (one .npy array, not an .npz archive)")
        with z:
            if META_KEY not in z.files:
                raise CoefSetError(f"{path}: not a poshw coefficient set (no {META_KEY} entry)")
            meta = json.loads(bytes(z[META_KEY]).decode())
            tensors = {n: z[n] for n in z.files if n != META_KEY}
    except CoefSetError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, json.JSONDecodeError, KeyError) as e:
        raise CoefSetError(f"{path}: corrupt or truncated coefficient set ({e})") from None
    if not isinstance(meta, dict):
        raise CoefSetError(f"{path}: not a poshw coefficient set ({META_KEY} is not a JSON object)")
    if meta.get("schema") != SCHEMA or meta.get("schema_version") != SCHEMA_VERSION:
        raise CoefSetError(f"{path}: schema {meta.get('schema')!r} version "
                           f"{meta.get('schema_version')!r} is not {SCHEMA!r} v{SCHEMA_VERSION}")
    try:
        spec = ModelSpec.from_dict(meta.get("spec"))
    except SpecError as e:
        raise CoefSetError(f"{path}: bad model spec: {e}") from None
    info = meta.get("info", {})
    if not isinstance(info, dict):
        raise CoefSetError(f"{path}: 'info' is not a JSON object")
    cs = CoefficientSet(spec, tensors, info, source=str(path))
    if cs.checksum() != meta.get("sha256"):
        raise CoefSetError(f"{path}: checksum mismatch: the file says {meta.get('sha256')}, "
                           f"its contents hash to {cs.checksum()} (corrupt or edited)")
    for name, t in sorted(tensors.items()):
        if t.dtype.kind not in "fiu":
            raise CoefSetError(f"{path}: tensor {name!r} has dtype {t.dtype}, expected real numbers")
        if not np.all(np.isfinite(t)):
            raise CoefSetError(f"{path}: tensor {name!r} holds NaN or infinite values")
    return cs
