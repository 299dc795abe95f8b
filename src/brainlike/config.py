"""Where brainlike finds data and keeps its caches (``BRAINLIKE_DATA``, ``BRAINLIKE_CACHE``)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

__all__ = ["APP_NAME", "data_root", "cache_root"]

APP_NAME = "brainlike"


def data_root() -> Path:
    """Root of the data folder: ``$BRAINLIKE_DATA`` or the user data folder, as an absolute path."""
    env = os.environ.get("BRAINLIKE_DATA")
    if env:
        return Path(env).expanduser().resolve()
    return Path(platformdirs.user_data_dir(APP_NAME)).resolve()


def cache_root() -> Path:
    """Root of the cache (activations, weights, embeddings): ``$BRAINLIKE_CACHE`` or the user cache folder."""
    env = os.environ.get("BRAINLIKE_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    return Path(platformdirs.user_cache_dir(APP_NAME)).resolve()
