"""Shared fixtures: the real data folder (BRAINLIKE_DATA) and an isolated cache per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _data_root() -> Path | None:
    env = os.environ.get("BRAINLIKE_DATA")
    root = Path(env).resolve() if env else DEFAULT_DATA
    return root if (root / "natsound165").is_dir() else None


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _data_root()
    if root is None:
        pytest.skip("real data not found: set BRAINLIKE_DATA to the data folder")
    return root


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory) -> None:
    """Every test session gets its own BRAINLIKE_CACHE unless the caller set one explicitly for tests."""
    if not os.environ.get("BRAINLIKE_TEST_CACHE"):
        os.environ["BRAINLIKE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    else:
        os.environ["BRAINLIKE_CACHE"] = os.environ["BRAINLIKE_TEST_CACHE"]
    root = _data_root()
    if root is not None:
        os.environ["BRAINLIKE_DATA"] = str(root)
