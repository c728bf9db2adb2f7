"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The directory holding the real datasets (mnist/ and fashion-mnist/).

    $POSHW_DATA when set, else ../shared/data next to the repository root. Tests
    that need the real files are skipped when it is absent. Session-scoped so it
    is read before any test's monkeypatching of the environment.
    """
    env = os.environ.get("POSHW_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"datasets not found at {path}; set POSHW_DATA to run these tests")
    return path
