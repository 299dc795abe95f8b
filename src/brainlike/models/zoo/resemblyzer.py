"""Resemblyzer GE2E speaker encoder (Wan et al. 2018; Resemblyzer 0.1.4 ``pretrained.pt``).

Front end (``resemblyzer/audio.py``): 16 kHz waveform volume-normalised to -30 dBFS (gain only ever increased;
dBFS from the int16-scaled RMS); power mel spectrogram with n_fft 400 (25 ms), hop 160 (10 ms), periodic Hann,
centred (reflect padding, as the librosa of Resemblyzer's time), 40 Slaney mel bands (Slaney area norm), **linear
power (no log)**. Resemblyzer also trims long silences with webrtcvad; brainlike does not (it would break the time
alignment of stimuli and needs a compiled extra dependency), so speech with long pauses embeds slightly differently.

Network: 3-layer LSTM (40 -> 256 -> 256 -> 256), then ``ReLU(Linear(h_T))`` L2-normalised. Layers:
``lstm0``, ``lstm1``, ``lstm2`` (hidden states over the whole clip, one step per 10 ms frame) and ``embedding``
(one step): the utterance embedding of Resemblyzer's ``embed_utterance`` (1.6 s partial windows every 77 frames,
the last kept when it covers >= 75 %, audio zero-padded to the last window; mean of the partial embeddings,
L2-normalised).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from brainlike.models.base import FrameGrid, TorchAudioModel
from brainlike.models.zoo import init_module, register_zoo_model

NAME = "resemblyzer"
SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 40
HIDDEN = 256
TARGET_DBFS = -30.0
INT16_MAX = 2**15 - 1
PARTIAL_FRAMES = 160
PARTIAL_RATE = 1.3
MIN_COVERAGE = 0.75
LAYERS = ["lstm0", "lstm1", "lstm2", "embedding"]


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """40 Slaney mel filters (Slaney norm, 0-8 kHz) on the 400-point rfft grid: (40, 201)."""
    from brainlike.models.zoo.whisper import mel_filters as slaney_filters

    return slaney_filters(SAMPLE_RATE, N_FFT, N_MELS)


def normalize_volume(waveforms: Any, reference: Any = None) -> Any:
    """Raise each clip's level to -30 dBFS (int16-scaled RMS); louder clips and silent clips are left as they are.

    ``reference`` (default: the waveforms) is what the level is measured on: the sound alone when it is embedded
    in silence for frame-level extraction.
    """
    import torch

    reference = waveforms if reference is None else reference
    rms = torch.sqrt(torch.mean((reference * INT16_MAX) ** 2, dim=-1, keepdim=True))
    dbfs = 20 * torch.log10(rms.clamp_min(1e-12) / INT16_MAX)
    change = TARGET_DBFS - dbfs
    gain = torch.where((change > 0) & (rms > 0), 10 ** (change / 20), torch.ones_like(change))
    return waveforms * gain


def mel_spectrogram(waveforms: Any) -> Any:
    """(batch, samples) -> power mel (batch, 1 + samples // 160, 40), float32."""
    import torch

    window = torch.hann_window(N_FFT, periodic=True, dtype=waveforms.dtype, device=waveforms.device)
    stft = torch.stft(waveforms, N_FFT, HOP, window=window, center=True, pad_mode="reflect", return_complex=True)
    power = stft.real**2 + stft.imag**2
    mel = torch.matmul(torch.as_tensor(mel_filters(), device=waveforms.device), power)
    return mel.transpose(1, 2)


def partial_slices(n_samples: int) -> list[tuple[int, int]]:
    """Frame ranges of Resemblyzer's partial utterances for a clip of ``n_samples`` (rate 1.3, coverage 0.75)."""
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    step = int(np.round((SAMPLE_RATE / PARTIAL_RATE) / HOP))
    starts = range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step)
    slices = [(i, i + PARTIAL_FRAMES) for i in starts]
    last_start, last_stop = slices[-1][0] * HOP, slices[-1][1] * HOP
    coverage = (n_samples - last_start) / (last_stop - last_start)
    if coverage < MIN_COVERAGE and len(slices) > 1:
        slices = slices[:-1]
    return slices


def _build_network() -> Any:
    """The GE2E encoder as an ``nn.Module``: the stacked LSTM as three 1-layer LSTMs ``lstm0``-``lstm2`` + ``linear``.

    Splitting the stack is exact (a stacked LSTM feeds each layer's hidden sequence to the next) and exposes every
    layer's hidden states; :func:`load_state` renames the checkpoint's ``lstm.*_l{k}`` to ``lstm{k}.*_l0``.
    """
    import torch
    from torch import nn

    class SpeakerEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm0 = nn.LSTM(N_MELS, HIDDEN, batch_first=True)
            self.lstm1 = nn.LSTM(HIDDEN, HIDDEN, batch_first=True)
            self.lstm2 = nn.LSTM(HIDDEN, HIDDEN, batch_first=True)
            self.linear = nn.Linear(HIDDEN, HIDDEN)

        def forward(self, mels: torch.Tensor) -> list[torch.Tensor]:
            """(batch, frames, 40) -> hidden-state sequences of the three layers, (batch, frames, 256) each."""
            outputs, x = [], mels
            for k in range(3):
                x, _ = getattr(self, f"lstm{k}")(x)
                outputs.append(x)
            return outputs

        def embed(self, mels: torch.Tensor) -> torch.Tensor:
            """(batch, frames, 40) -> L2-normalised ReLU(Linear(last hidden state)), (batch, 256)."""
            raw = torch.relu(self.linear(self(mels)[-1][:, -1]))
            return raw / torch.linalg.vector_norm(raw, dim=1, keepdim=True).clamp_min(1e-12)

    return SpeakerEncoder()


def load_state(path: Path) -> dict[str, Any]:
    """State dict for :func:`_build_network` from ``pretrained.pt`` (weights_only load; GE2E scalars dropped)."""
    import re

    import torch

    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = {}
    for key, value in checkpoint["model_state"].items():
        match = re.fullmatch(r"lstm\.(\w+)_l(\d)", key)
        if match:
            state[f"lstm{match.group(2)}.{match.group(1)}_l0"] = value
        elif key.startswith("linear."):
            state[key] = value
    return state


class ResemblyzerModel(TorchAudioModel):
    """Resemblyzer's GE2E speaker encoder as a brainlike model (16 kHz).

    Parameters
    ----------
    weights : path, optional
        ``pretrained.pt``; None builds the random-init twin (seed 0).
    weights_id : str, optional
        sha256 of ``weights`` (computed when not given).
    """

    sample_rate = SAMPLE_RATE
    layers = list(LAYERS)
    adapter_version = 1
    preprocessing = {"volume_dbfs": TARGET_DBFS, "vad_trim": False, "mel": "slaney40-power", "hop": HOP,
                     "partials": {"frames": PARTIAL_FRAMES, "rate": PARTIAL_RATE, "min_coverage": MIN_COVERAGE}}
    batch_size = 8
    causal = True  # forward LSTMs over centred 25 ms frames
    clip_level_layers = ("embedding",)

    def __init__(self, weights: Path | None = None, weights_id: str | None = None) -> None:
        from brainlike.models.zoo.store import sha256_file

        init_module(self, NAME, _build_network, weights, weights_id, load_state, lambda: sha256_file(weights))

    def forward_torch(self, waveforms: Any) -> Mapping[str, Any]:
        wav = normalize_volume(waveforms)
        hidden = self.module(mel_spectrogram(wav))
        out = {f"lstm{k}": h for k, h in enumerate(hidden)}
        out["embedding"] = self.embed_utterance(wav)[:, None, :]
        return out

    def forward_padded(self, waveforms: np.ndarray, sound: slice) -> Mapping[str, Any]:
        """LSTM layers of sounds in silence, each sound's level measured on the sound alone."""
        import torch

        self.module.eval()
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(waveforms)).to(self.device)
            hidden = self.module(mel_spectrogram(normalize_volume(x, x[:, sound])))
        return {f"lstm{k}": h for k, h in enumerate(hidden)}

    def frame_times(self, layer: str, n_frames: int, n_samples: int) -> np.ndarray:
        """Centred STFT: frame k (and the LSTM step reading it) at sample 160 k."""
        return FrameGrid(0.0, HOP).times(n_frames, self.sample_rate)

    def embed_utterance(self, wav: Any) -> Any:
        """Utterance embeddings (batch, 256) of volume-normalised 16 kHz clips, as Resemblyzer's ``embed_utterance``."""
        import torch

        slices = partial_slices(wav.shape[-1])
        end = slices[-1][1] * HOP
        if end > wav.shape[-1]:
            wav = torch.nn.functional.pad(wav, (0, end - wav.shape[-1]))
        mel = mel_spectrogram(wav)
        partials = torch.stack([mel[:, a:b] for a, b in slices], dim=1)  # (batch, n_partials, 160, 40)
        batch, n_partials = partials.shape[:2]
        embeds = self.module.embed(partials.reshape(batch * n_partials, PARTIAL_FRAMES, N_MELS))
        mean = embeds.reshape(batch, n_partials, HIDDEN).mean(dim=1)
        return mean / torch.linalg.vector_norm(mean, dim=1, keepdim=True).clamp_min(1e-12)


register_zoo_model(NAME, ResemblyzerModel, "Resemblyzer GE2E speaker encoder (3 x LSTM 256, 1.4 M params), LibriSpeech + VoxCeleb, 16 kHz",
                   {"licence": "Apache-2.0", "distribution": "Resemblyzer==0.1.4"})
