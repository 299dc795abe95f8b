"""Parameter-free baselines: ``melspec`` (log-mel spectrograms and MFCCs), ``envelope`` (broadband envelope),
``cochleagram`` (the compressed cochleagram, frame by frame) and ``random-features`` (a null control).

All four have a time axis (frame-level analyses). ``spectrotemporal`` (the NH2015 / Tuckute 2023 baseline, time-
averaged by construction) lives in :mod:`brainlike.models.spectrotemporal`.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Mapping

import numpy as np

from brainlike.models.base import AudioModel, FrameGrid
from brainlike.models.registry import ModelEntry, register_model

MEL_SAMPLE_RATE = 16000
MEL_N_FFT = 400  # 25 ms Hann window
MEL_HOP = 160  # 10 ms
MEL_FMIN, MEL_FMAX = 0.0, 8000.0
MEL_POWER_FLOOR = 1e-10  # dB floor: 10 log10(1e-10) = -100 dB
N_MFCC = 20


def hz_to_mel(frequency: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: 2595 log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(frequency, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=8)
def mel_filterbank(n_mels: int, n_fft: int = MEL_N_FFT, sample_rate: int = MEL_SAMPLE_RATE,
                   fmin: float = MEL_FMIN, fmax: float = MEL_FMAX) -> np.ndarray:
    """Triangular mel filters on the rfft grid, area-normalised (Slaney-style), shape (n_mels, n_fft // 2 + 1).

    Filter m rises linearly from edge m to centre m + 1 and falls to edge m + 2, with ``n_mels + 2`` edges equally
    spaced on the HTK mel scale between ``fmin`` and ``fmax``; each is scaled by 2 / (upper edge - lower edge) in Hz.
    """
    bins_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins_hz[None, :] - lower) / (centre - lower)
    falling = (upper - bins_hz[None, :]) / (upper - centre)
    filters = np.maximum(0.0, np.minimum(rising, falling))
    return filters * (2.0 / (upper - lower))


def power_spectrogram(waveforms: np.ndarray) -> np.ndarray:
    """|STFT|^2 with a periodic Hann window of MEL_N_FFT, hop MEL_HOP, centred (reflect padding).

    Returns (batch, frames, n_fft // 2 + 1) float64.
    """
    import torch

    x = torch.from_numpy(np.asarray(waveforms, dtype=np.float64))
    window = torch.hann_window(MEL_N_FFT, periodic=True, dtype=torch.float64)
    spec = torch.stft(x, MEL_N_FFT, MEL_HOP, window=window, center=True, pad_mode="reflect", return_complex=True)
    return (spec.abs() ** 2).transpose(1, 2).numpy()


def log_mel(power: np.ndarray, n_mels: int) -> np.ndarray:
    """10 log10(max(mel power, 1e-10)) of a power spectrogram (batch, frames, bins) -> (batch, frames, n_mels)."""
    return 10.0 * np.log10(np.maximum(power @ mel_filterbank(n_mels).T, MEL_POWER_FLOOR))


def mfcc(log_mel_db: np.ndarray, n_mfcc: int = N_MFCC) -> np.ndarray:
    """First ``n_mfcc`` coefficients of the orthonormal DCT-II of log-mel (dB) frames."""
    from scipy.fft import dct

    return dct(log_mel_db, type=2, norm="ortho", axis=-1)[..., :n_mfcc]


class MelSpectrogram(AudioModel):
    """Log-mel spectrograms and MFCCs at 16 kHz.

    Layers: ``logmel128`` (128 mel bands, 0-8 kHz, dB), ``logmel64`` (64 bands) and ``mfcc20`` (DCT-II of the 128-band
    log-mel, first 20 coefficients). STFT: 25 ms periodic Hann window (400 samples), 10 ms hop, centred with reflect
    padding; power spectrum; HTK-spaced triangular filters with Slaney area normalisation; floor 1e-10 (-100 dB).
    """

    sample_rate = MEL_SAMPLE_RATE
    layers = ["logmel128", "logmel64", "mfcc20"]
    adapter_version = 1
    weights_id = "none"
    batch_size = 32
    preprocessing = {"n_fft": MEL_N_FFT, "hop": MEL_HOP, "fmin": MEL_FMIN, "fmax": MEL_FMAX, "floor": MEL_POWER_FLOOR,
                     "mel": "htk-slaney-norm"}
    causal = True  # frame-local: each frame reads its own 25 ms window (12.5 ms after its centre)

    def forward(self, waveforms: np.ndarray) -> Mapping[str, np.ndarray]:
        power = power_spectrogram(waveforms)
        mel128 = log_mel(power, 128)
        return {"logmel128": mel128, "logmel64": log_mel(power, 64), "mfcc20": mfcc(mel128)}

    def frame_times(self, layer: str, n_frames: int, n_samples: int) -> np.ndarray:
        """Centred STFT: frame k is centred on sample ``k * 160`` (every 10 ms from 0)."""
        return FrameGrid(0.0, MEL_HOP).times(n_frames, self.sample_rate)


ENVELOPE_FLOOR_DB = -100.0


class BroadbandEnvelope(AudioModel):
    """Broadband envelope at 100 Hz (16 kHz input): two features per 10 ms frame.

    ``rms_db``: 10 log10 of the mean power in a centred 25 ms periodic-Hann window (weights sum to 1), floored at
    -100 dB; ``rise_db``: its positive first difference ``max(0, e[k] - e[k-1])`` (dB per 10 ms, onsets; 0 at
    k = 0). Layer ``envelope`` holds both. The absolute level is kept (no per-sound normalisation).
    """

    sample_rate = MEL_SAMPLE_RATE
    layers = ["envelope"]
    adapter_version = 1
    weights_id = "none"
    batch_size = 64
    preprocessing = {"window": MEL_N_FFT, "hop": MEL_HOP, "floor_db": ENVELOPE_FLOOR_DB, "features": "rms_db,rise_db"}
    causal = True

    def forward(self, waveforms: np.ndarray) -> Mapping[str, np.ndarray]:
        x = np.asarray(waveforms, dtype=np.float64)
        half = MEL_N_FFT // 2
        padded = np.pad(x, ((0, 0), (half, half)))
        n_frames = 1 + x.shape[1] // MEL_HOP
        window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(MEL_N_FFT) / MEL_N_FFT)
        window /= window.sum()
        frames = np.lib.stride_tricks.sliding_window_view(padded, MEL_N_FFT, axis=1)[:, ::MEL_HOP][:, :n_frames]
        power = np.einsum("bfw,w->bf", frames**2, window)
        level = np.maximum(10.0 * np.log10(np.maximum(power, 1e-30)), ENVELOPE_FLOOR_DB)
        rise = np.maximum(0.0, np.diff(level, axis=1, prepend=level[:, :1]))
        return {"envelope": np.stack([level, rise], axis=-1).astype(np.float32)}

    def frame_times(self, layer: str, n_frames: int, n_samples: int) -> np.ndarray:
        """Frame k is centred on sample ``k * 160``."""
        return FrameGrid(0.0, MEL_HOP).times(n_frames, self.sample_rate)


class RandomFeatures(AudioModel):
    """Null control: standard-normal numbers seeded by the sha256 of the clip's float32 samples, 10 ms frames.

    Per clip: a vector ``v`` of 128 numbers (seed: the clip's hash) and, per 10 ms frame k (``1 + samples // 160``
    frames), ``v + e_k - mean_k(e)`` with ``e_k`` further standard-normal numbers (seed: the clip's hash and the
    frame stream), so the time average is exactly ``v`` (the clip-level null of earlier versions) while every
    frame differs. Deterministic and independent of batching, but unrelated to what the sound is: its alignment
    score shows the bias of a protocol (it should be near zero), time-averaged or frame by frame.
    """

    sample_rate = 16000
    layers = ["random"]
    adapter_version = 2
    weights_id = "none"
    batch_size = 64
    n_features = 128
    causal = True

    def forward(self, waveforms: np.ndarray) -> Mapping[str, np.ndarray]:
        waveforms = np.asarray(waveforms, dtype=np.float32)
        n_frames = 1 + waveforms.shape[1] // MEL_HOP
        rows = []
        for clip in waveforms:
            seed = int.from_bytes(hashlib.sha256(np.ascontiguousarray(clip).tobytes()).digest()[:8], "little")
            clip_level = np.random.default_rng(seed).standard_normal(self.n_features)
            noise = np.random.default_rng([seed, 1]).standard_normal((n_frames, self.n_features))
            rows.append(clip_level + noise - noise.mean(axis=0))
        return {"random": np.stack(rows).astype(np.float32)}

    def frame_times(self, layer: str, n_frames: int, n_samples: int) -> np.ndarray:
        """Frame k is centred on sample ``k * 160``."""
        return FrameGrid(0.0, MEL_HOP).times(n_frames, self.sample_rate)


class FrameCochleagram(AudioModel):
    """The compressed cochleagram of :mod:`brainlike.models.cochleagram`, 211 channels at 200 Hz, as frames.

    Each sound is demeaned and set to RMS 0.1 (as for ``spectrotemporal``; computed on the sound alone when it is
    embedded in silence), then filtered; layer ``cochleagram`` is (time, 211). Frame m is the Kaiser-sinc low-pass
    of the envelope read at samples ``100 m ... 100 m + 1000`` (peak at ``100 m + 500.5``): its centre.
    Not causal (frequency-domain filters and Hilbert envelope over the whole input).
    """

    layers = ["cochleagram"]
    adapter_version = 1
    weights_id = "none"
    batch_size = 8
    preprocessing = {"cochleagram": "cochleagram_1", "rms": 0.1, "demean": True}
    causal = False

    def __init__(self) -> None:
        from brainlike.models import cochleagram as coch

        self.sample_rate = coch.SAMPLE_RATE

    def forward(self, waveforms: np.ndarray) -> Mapping[str, np.ndarray]:
        return self.forward_padded(waveforms, slice(None))

    def forward_padded(self, waveforms: np.ndarray, sound: slice) -> Mapping[str, np.ndarray]:
        from brainlike.models import cochleagram as coch

        x = np.asarray(waveforms, dtype=np.float64)
        part = x[:, sound]
        mean = part.mean(axis=1, keepdims=True)
        rms = np.sqrt(np.mean((part - mean) ** 2, axis=1, keepdims=True))
        x = (x - mean) * (0.1 / np.where(rms > 0, rms, 1.0))
        x[:, : sound.start or 0] = 0.0  # silence stays silence after demeaning
        if sound.stop is not None:
            x[:, sound.stop:] = 0.0
        return {"cochleagram": coch.cochleagram(x).transpose(0, 2, 1).astype(np.float32)}

    def frame_times(self, layer: str, n_frames: int, n_samples: int) -> np.ndarray:
        from brainlike.models import cochleagram as coch

        stride = coch.SAMPLE_RATE // coch.ENV_SAMPLE_RATE
        return FrameGrid(coch.KERNEL_SIZE / 2, stride).times(n_frames, self.sample_rate)


def _no_twin(cls):
    return lambda random: cls()


register_model(ModelEntry("melspec", _no_twin(MelSpectrogram), "baseline",
                          "log-mel spectrogram (128 and 64 bands) and 20 MFCCs at 16 kHz", has_random_twin=False))
register_model(ModelEntry("random-features", _no_twin(RandomFeatures), "baseline",
                          "null control: 128 Gaussian numbers seeded by a hash of each clip (10 ms frames)",
                          has_random_twin=False))
register_model(ModelEntry("envelope", _no_twin(BroadbandEnvelope), "baseline",
                          "broadband envelope at 100 Hz: level (dB) and its rise (onsets)", has_random_twin=False))
register_model(ModelEntry("cochleagram", _no_twin(FrameCochleagram), "baseline",
                          "compressed cochleagram (211 channels, 200 Hz frames; the spectrotemporal front end)",
                          has_random_twin=False))
