"""Whisper-base weights from the CTranslate2 zoo file, loaded into transformers' WhisperEncoder (``hf:<model.bin>``),
match the native ``whisper-base`` adapter layer by layer (max |diff| <= 1e-3)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")

from brainlike.models.registry import load_model  # noqa: E402
from brainlike.models.zoo import store  # noqa: E402

REAL_ZOO = store.zoo_root()  # evaluated at collection, before the session fixture swaps BRAINLIKE_CACHE


@pytest.mark.zoo
def test_ct2_whisper_base_in_transformers_matches_native(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAINLIKE_ZOO", str(REAL_ZOO))
    if not store.is_installed("whisper-base"):
        pytest.skip(f"whisper-base not installed in {REAL_ZOO}: run `brainlike zoo install whisper-base`")
    native = load_model("whisper-base")
    path = store.weights_path("whisper-base")
    converted = load_model(f"hf:{path}")
    assert converted.weights_id == store.weights_sha256("whisper-base")
    t = np.arange(32000) / 16000
    rng = np.random.default_rng(0)
    x = np.stack([0.5 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size),
                  0.2 * np.sin(2 * np.pi * (200 + 900 * t) * t)]).astype(np.float32)
    a, b = native(x), converted(x)
    n = 6  # base: 6 blocks; transformers' last hidden state is after ln_post
    pairs = {"conv1": "conv1", "conv2": "conv2", "ln_post": f"hidden_states.{n}",
             **{f"blocks.{i}": f"hidden_states.{i + 1}" for i in range(n - 1)}}
    for native_layer, hf_layer in pairs.items():
        assert a[native_layer].shape == b[hf_layer].shape
        diff = float(np.abs(a[native_layer] - b[hf_layer]).max())
        assert diff <= 1e-3, (native_layer, diff)
    assert b["hidden_states.0"].shape == (2, 100, 512)
