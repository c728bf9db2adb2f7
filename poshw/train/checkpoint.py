"""Training checkpoints: everything needed to continue a run bit for bit, written atomically.

A checkpoint (``checkpoint.pt``) is a ``torch.save`` dict of plain data: the model and
optimiser state dicts, the step counters, the state of the data-shuffling generator at
the start of the current epoch, the running sums of the current epoch and the history
so far. It is loaded with ``weights_only=True`` (no pickled code), and written to a
temporary file that replaces the old one only once complete, so a crash during the
write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from .. import PoshwError
from ..fileio import write_bytes_atomic

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT = "poshw.checkpoint"
FORMAT_VERSION = 1
_REQUIRED = ("config", "spec", "model", "optimizer", "epoch", "step", "step_in_epoch",
             "epoch_rng_state", "epoch_sums", "history", "train_seconds")


class CheckpointError(PoshwError):
    """A missing, corrupt or incompatible checkpoint."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (see ``_REQUIRED``) to ``path`` atomically."""
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise ValueError(f"checkpoint state lacks {missing}")
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, **state}, buf)
    write_bytes_atomic(path, buf.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; one clear error if unusable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint here")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, pickle.UnpicklingError,
            ValueError) as e:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({str(e).splitlines()[0]})") \
            from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a poshw training checkpoint")
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state.get('format_version')!r} is not "
                              f"{FORMAT_VERSION}")
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}")
    return state
