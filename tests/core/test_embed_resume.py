"""A stopped clip embedding resumes from its checkpoint and gives exactly the uninterrupted result."""

from __future__ import annotations

import numpy as np
import pytest

from brainlike.data.stimuli import load_natsound165
from brainlike.extract import embed_clips, embedding_cache_state, extractor
from brainlike.models.baselines import MelSpectrogram


class _Stopping(MelSpectrogram):
    """The real log-mel baseline, counting its calls and failing on call ``stop_at`` (a killed run)."""

    def __init__(self, stop_at=None):
        super().__init__()
        self.name, self.batch_size, self.calls, self.stop_at = "melspec", 2, 0, stop_at

    def forward(self, waveforms):
        self.calls += 1
        if self.calls == self.stop_at:
            raise RuntimeError("killed")
        return super().forward(waveforms)


def _clips(data_root):
    """Eleven real clips of four lengths; batches hold clips of one length, at most 2: 2 + 3 + 3 + 3 clips -> 7."""
    stimuli = load_natsound165(data_root)
    lengths = [16000, 8000, 12000, 16000, 8000, 12000, 4000, 16000, 8000, 12000, 4000]
    return [stimuli.waveform(i, 16000)[:n] for i, n in enumerate(lengths)], 16000


def test_a_killed_embedding_resumes_where_it_stopped(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINLIKE_CACHE", str(tmp_path / "a"))
    monkeypatch.setattr(extractor, "CHECKPOINT_S", 0.0)  # checkpoint after every batch
    clips, rate = _clips(data_root)
    parts = {"set": "resume-test"}
    assert embedding_cache_state(_Stopping(), parts, rate) == "absent"
    with pytest.raises(RuntimeError, match="killed"):
        embed_clips(_Stopping(stop_at=4), clips, rate, cache_key_parts=parts, progress=False)
    assert embedding_cache_state(_Stopping(), parts, rate) == "partial"
    resumed_model = _Stopping()
    resumed = embed_clips(resumed_model, clips, rate, cache_key_parts=parts, progress=False)
    assert resumed_model.calls == 7 - 3  # batches 1-3 came from the checkpoint
    assert embedding_cache_state(_Stopping(), parts, rate) == "cached"
    assert not list((tmp_path / "a" / "embeddings").glob("*/partial-*"))  # the checkpoint is gone

    monkeypatch.setenv("BRAINLIKE_CACHE", str(tmp_path / "b"))
    whole_model = _Stopping()
    whole = embed_clips(whole_model, clips, rate, cache_key_parts=parts, progress=False)
    assert whole_model.calls == 7
    assert list(resumed) == list(whole)
    for layer in whole:
        np.testing.assert_array_equal(resumed[layer], whole[layer])  # same batches, so bit for bit


def test_a_checkpoint_of_another_clip_count_is_ignored(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINLIKE_CACHE", str(tmp_path))
    monkeypatch.setattr(extractor, "CHECKPOINT_S", 0.0)
    clips, rate = _clips(data_root)
    model = _Stopping()
    key = extractor._embedding_key(model, {"set": "x"}, rate)
    extractor.ArrayCache("embeddings").save("partial-" + key, {"log_mel128": np.zeros((3, 128), np.float32)},
                                            {"n_clips": 3, "done": 2})
    embed_clips(model, clips, rate, cache_key_parts={"set": "x"}, progress=False)
    assert model.calls == 7
