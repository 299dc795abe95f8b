"""Reading, checking and resampling audio (soundfile for I/O, scipy polyphase or soxr for resampling)."""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np

from brainlike.errors import AudioError

__all__ = ["SILENCE_RMS", "RESAMPLERS", "read_audio", "probe_sample_rate", "check_waveform", "resample"]

SILENCE_RMS = 1e-6
"""Clips whose RMS (full scale = 1) is below this are treated as silent and rejected."""

RESAMPLERS = ("resample_poly", "soxr")


def read_audio(path: str | Path, *, allow_silent: bool = False) -> tuple[np.ndarray, int]:
    """Read an audio file as a mono float32 waveform in [-1, 1].

    Multi-channel files are averaged over channels. Raises :class:`AudioError` with the file name for unreadable,
    empty, non-finite or (unless ``allow_silent``) silent audio.

    Returns
    -------
    waveform : ndarray, shape (samples,), float32
    sample_rate : int
    """
    import soundfile as sf

    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise AudioError(f"audio file {path} is empty (0 bytes)")
    _check_riff_complete(path)
    try:
        data, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise AudioError(f"cannot read audio file {path}: {_first_line(exc)}") from None
    waveform = data.mean(axis=1, dtype=np.float64).astype(np.float32) if data.shape[1] > 1 else data[:, 0]
    check_waveform(waveform, str(path), allow_silent=allow_silent)
    return np.ascontiguousarray(waveform), int(sample_rate)


def probe_sample_rate(path: str | Path) -> int:
    """Sample rate of an audio file, after the same empty/truncation checks as :func:`read_audio`."""
    import soundfile as sf

    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise AudioError(f"audio file {path} is empty (0 bytes)")
    _check_riff_complete(path)
    try:
        return int(sf.info(str(path)).samplerate)
    except Exception as exc:
        raise AudioError(f"cannot read audio file {path}: {_first_line(exc)}") from None


def check_waveform(waveform: np.ndarray, label: str, *, allow_silent: bool = False) -> None:
    """Raise :class:`AudioError` if a waveform is empty, non-finite or silent."""
    if waveform.size == 0:
        raise AudioError(f"audio {label} is empty (0 samples)")
    if not np.all(np.isfinite(waveform)):
        raise AudioError(f"audio {label} contains NaN or Inf samples")
    if not allow_silent and float(np.sqrt(np.mean(np.square(waveform, dtype=np.float64)))) < SILENCE_RMS:
        raise AudioError(f"audio {label} is silent (RMS < {SILENCE_RMS:g})")


def resample(waveform: np.ndarray, rate_in: int, rate_out: int, method: str = "resample_poly") -> np.ndarray:
    """Resample a 1-D float32 waveform.

    ``resample_poly`` (default) is ``scipy.signal.resample_poly(x, up, down)`` with scipy's defaults on float32
    input, as in the reference pipeline; ``soxr`` uses libsoxr at VHQ quality.
    """
    if rate_in <= 0 or rate_out <= 0:
        raise AudioError(f"invalid sample rates {rate_in} -> {rate_out}")
    waveform = np.asarray(waveform, dtype=np.float32)
    if rate_in == rate_out:
        return waveform.copy()
    if method == "resample_poly":
        from scipy.signal import resample_poly

        g = gcd(int(rate_in), int(rate_out))
        return resample_poly(waveform, rate_out // g, rate_in // g).astype(np.float32, copy=False)
    if method == "soxr":
        import soxr

        return soxr.resample(waveform, rate_in, rate_out, quality="VHQ").astype(np.float32, copy=False)
    raise ValueError(f"unknown resampler {method!r}; choose from {RESAMPLERS}")


def _check_riff_complete(path: Path) -> None:
    """Reject WAV files whose data chunk is shorter than their header declares (libsndfile reads them silently)."""
    import struct

    try:
        with open(path, "rb") as handle:
            header = handle.read(12)
            if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
                return
            size = path.stat().st_size
            offset = 12
            while offset + 8 <= size:
                handle.seek(offset)
                chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
                if chunk_id == b"data":
                    if offset + 8 + chunk_size > size:
                        raise AudioError(f"audio file {path} is truncated: its header declares {chunk_size} bytes of "
                                         f"samples, only {size - offset - 8} are present")
                    return
                offset += 8 + chunk_size + (chunk_size & 1)
    except OSError as exc:
        raise AudioError(f"cannot read audio file {path}: {exc.strerror}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
