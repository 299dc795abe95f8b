"""Fixtures for the zoo tests: the real zoo folder (installed weights), an espeak-ng sentence and a 440 Hz tone.

The session conftest gives every test run a fresh ``BRAINLIKE_CACHE``, which holds no weights. Tests marked
``zoo`` use the zoo folder that was in force when the tests were collected (``$BRAINLIKE_ZOO`` or the user's cache):
install it first with ``brainlike zoo install all``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from brainlike.models.zoo import store

REAL_ZOO = store.zoo_root()  # evaluated at collection, before the session fixture swaps BRAINLIKE_CACHE
SENTENCE = "the quick brown fox jumps over the lazy dog"


@pytest.fixture
def real_zoo(monkeypatch: pytest.MonkeyPatch):
    """Point brainlike at the installed zoo; ``real_zoo(name)`` skips the test when ``name`` is not installed."""
    monkeypatch.setenv("BRAINLIKE_ZOO", str(REAL_ZOO))

    def require(*names: str) -> Path:
        for name in names:
            if not store.is_installed(name):
                pytest.skip(f"{name} not installed in {REAL_ZOO}: run `brainlike zoo install {name}`")
        return REAL_ZOO

    return require


@pytest.fixture(scope="session")
def speech_clip(tmp_path_factory) -> np.ndarray:
    """The sentence above, synthesised by espeak-ng and resampled to 16 kHz (float32)."""
    from brainlike.data.audio import read_audio, resample

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not found (apt-get install espeak-ng)")
    path = tmp_path_factory.mktemp("espeak") / "sentence.wav"
    subprocess.run(["espeak-ng", "-w", str(path), SENTENCE], check=True, capture_output=True)
    audio, rate = read_audio(path)
    return resample(audio, rate, 16000).astype(np.float32)


@pytest.fixture(scope="session")
def tone() -> np.ndarray:
    """2 s at 16 kHz: 0.5 sin(2 pi 440 t) + 0.05 white noise (seed 0), as in zoo-architectures.md."""
    t = np.arange(32000) / 16000
    noise = np.random.default_rng(0).standard_normal(32000)
    return (0.5 * np.sin(2 * np.pi * 440 * t) + 0.05 * noise).astype(np.float32)
