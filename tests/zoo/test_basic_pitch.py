"""Basic Pitch windowing (the package's long-audio scheme) without the model file."""

from __future__ import annotations

import numpy as np
import pytest

from brainlike.models.zoo import basic_pitch as bp


@pytest.mark.parametrize("n,n_windows,n_frames", [(44100, 2, 173), (43844 - 3840, 2, 156), (30000, 1, 117),
                                                  (300000, 9, 1176), (100, 1, 1)])
def test_windows_and_unwrap_counts(n, n_windows, n_frames):
    audio = np.arange(1, n + 1, dtype=np.float32)
    wins = bp.windows(audio)
    assert wins.shape == (n_windows, 43844)
    assert np.all(wins[0, :3840] == 0) and wins[0, 3840] == 1.0  # 3,840 zeros prepended
    if n_windows > 1:  # consecutive windows overlap by 30 frames of 256 samples
        assert wins[1, 0] == audio[36164 - 3840]
    per_window = np.repeat(np.arange(172, dtype=np.float32)[None, :, None], n_windows, axis=0)
    joined = bp.unwrap(per_window, n)
    assert joined.shape == (n_frames, 1)
    assert joined[0, 0] == 15 and joined[:, 0].max() <= 172 - 15 - 1  # 15 edge frames dropped per window
