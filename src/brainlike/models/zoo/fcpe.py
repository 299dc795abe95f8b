"""TorchFCPE pitch estimator (CFNaiveMelPE, conv-only conformer) read from torchfcpe 0.0.4 ``fcpe_c_v001.pt``.

Front end (torchfcpe ``MelModule``): 16 kHz waveform reflect-padded by 432 samples on each side, STFT (n_fft = window
= 1024, periodic Hann, hop 160, not centred), magnitude ``sqrt(re^2 + im^2 + 1e-9)``, 128 Slaney mel bands 0-8 kHz
(Slaney area norm), ``ln(max(mel, 1e-5))``; ``samples // 160 + 1`` frames (the last computed frame is repeated).

Network: ``input_stack`` = conv 128->512 k3, GroupNorm(4), LeakyReLU(0.01), conv 512->512 k3; six residual
conformer convolution modules (LayerNorm -> pointwise conv 512->2048 -> GLU -> depthwise conv k31 -> SiLU ->
pointwise conv 1024->512; the checkpoint is ``conv_only``: no attention); final LayerNorm; weight-normalised linear
512->360 and sigmoid (pitch saliences over 360 bins from 32.7 to 1975.5 Hz).

Layers (time = 10 ms frames): ``input_stack``, ``encoder0`` ... ``encoder5`` (512-d) and ``output`` (360 saliences).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from brainlike.models.base import FrameGrid, TorchAudioModel
from brainlike.models.zoo import init_module, register_zoo_model

NAME = "fcpe"
SAMPLE_RATE = 16000
N_FFT = 1024
HOP = 160
N_MELS = 128
HIDDEN = 512
N_LAYERS = 6
N_BINS = 360
F0_MIN, F0_MAX = 32.7, 1975.5
THRESHOLD = 0.006
LAYERS = ["input_stack"] + [f"encoder{i}" for i in range(N_LAYERS)] + ["output"]


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """128 Slaney mel filters (Slaney norm, 0-8 kHz) on the 1024-point rfft grid: (128, 513)."""
    from brainlike.models.zoo.whisper import mel_filters as slaney_filters

    return slaney_filters(SAMPLE_RATE, N_FFT, N_MELS)


def log_mel(waveforms: Any) -> Any:
    """(batch, samples) -> log-mel (batch, samples // 160 + 1, 128), as torchfcpe's ``Wav2MelModule``."""
    import torch

    pad = (N_FFT - HOP) // 2
    mode = "reflect" if waveforms.shape[-1] > pad else "constant"
    y = torch.nn.functional.pad(waveforms[:, None], (pad, pad), mode=mode)[:, 0]
    window = torch.hann_window(N_FFT, periodic=True, dtype=y.dtype, device=y.device)
    stft = torch.stft(y, N_FFT, HOP, window=window, center=False, return_complex=True)
    magnitude = torch.sqrt(stft.real**2 + stft.imag**2 + 1e-9)
    mel = torch.log(torch.matmul(torch.as_tensor(mel_filters(), device=y.device), magnitude).clamp_min(1e-5))
    mel = mel.transpose(1, 2)
    n_frames = waveforms.shape[-1] // HOP + 1
    if mel.shape[1] < n_frames:
        mel = torch.cat([mel, mel[:, -1:].expand(-1, n_frames - mel.shape[1], -1)], dim=1)
    return mel[:, :n_frames]


def cent_table() -> np.ndarray:
    """Cents (re 10 Hz) of the 360 output bins: evenly spaced from 32.7 Hz to 1975.5 Hz."""
    return np.linspace(1200 * np.log2(F0_MIN / 10), 1200 * np.log2(F0_MAX / 10), N_BINS)


def salience_to_hz(salience: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Pitch (Hz) per frame from FCPE saliences (..., 360) by torchfcpe's "local_argmax" rule; 0 where unvoiced.

    The estimate is the salience-weighted mean of bin cents over argmax +- 4 bins (indices clamped to the table),
    ``f = 10 * 2 ** (cents / 1200)``; frames whose peak salience is <= ``threshold`` are unvoiced (0 Hz).
    """
    salience = np.asarray(salience, dtype=np.float64)
    peak = salience.argmax(axis=-1)
    index = np.clip(peak[..., None] + np.arange(-4, 5), 0, N_BINS - 1)
    weights = np.take_along_axis(salience, index, axis=-1)
    cents = (weights * cent_table()[index]).sum(-1) / np.maximum(weights.sum(-1), 1e-12)
    hz = 10.0 * 2.0 ** (cents / 1200.0)
    return np.where(salience.max(axis=-1) > threshold, hz, 0.0)


def _build_network() -> Any:
    """CFNaiveMelPE (conv only) as an ``nn.Module``; names match the checkpoint's ``model`` dict."""
    import torch
    from torch import nn

    class ConformerConv(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            inner = 2 * HIDDEN
            # indices 0, 2, 4, 6 carry weights in the checkpoint (Sequential with Transpose/GLU/SiLU between)
            self.net = nn.ModuleDict({
                "0": nn.LayerNorm(HIDDEN),
                "2": nn.Conv1d(HIDDEN, 2 * inner, 1),
                "4": nn.ModuleDict({"conv": nn.Conv1d(inner, inner, 31, padding=15, groups=inner)}),
                "6": nn.Conv1d(inner, HIDDEN, 1),
            })

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.net["0"](x).transpose(1, 2)
            h = nn.functional.glu(self.net["2"](h), dim=1)
            h = nn.functional.silu(self.net["4"]["conv"](h))
            return self.net["6"](h).transpose(1, 2)

    class EncoderLayer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conformer = ConformerConv()

    class FCPE(nn.Module):
        """(batch, frames, 128) log-mel -> {layer: (batch, frames, features)}."""

        def __init__(self) -> None:
            super().__init__()
            self.input_stack = nn.ModuleDict({
                "0": nn.Conv1d(N_MELS, HIDDEN, 3, 1, 1),
                "1": nn.GroupNorm(4, HIDDEN),
                "3": nn.Conv1d(HIDDEN, HIDDEN, 3, 1, 1),
            })
            self.net = nn.Module()
            self.net.encoder_layers = nn.ModuleList([EncoderLayer() for _ in range(N_LAYERS)])
            self.norm = nn.LayerNorm(HIDDEN)
            self.output_proj = nn.Linear(HIDDEN, N_BINS)

        def forward(self, mel: torch.Tensor) -> dict[str, torch.Tensor]:
            stack = self.input_stack
            h = nn.functional.leaky_relu(stack["1"](stack["0"](mel.transpose(1, 2))), 0.01)
            x = stack["3"](h).transpose(1, 2)
            out = {"input_stack": x}
            for i, layer in enumerate(self.net.encoder_layers):
                x = x + layer.conformer(x)
                out[f"encoder{i}"] = x
            out["output"] = torch.sigmoid(self.output_proj(self.norm(x)))
            return out

    return FCPE()


def load_state(path: Path) -> dict[str, Any]:
    """State dict for :func:`_build_network` from ``fcpe_c_v001.pt`` (weights_only load).

    The weight-normalised output projection is folded: ``W = g * v / ||v||`` per output row. The per-layer
    ``norm`` parameters (used only with attention) and the decoding buffers are dropped.
    """
    import torch

    model = torch.load(path, map_location="cpu", weights_only=True)["model"]
    state = {k: v for k, v in model.items()
             if not k.startswith("output_proj.weight_") and not k.endswith((".norm.weight", ".norm.bias"))
             and k not in ("cent_table", "gaussian_blurred_cent_mask")}
    g, v = model["output_proj.weight_g"], model["output_proj.weight_v"]
    state["output_proj.weight"] = g * v / torch.linalg.vector_norm(v, dim=1, keepdim=True)
    return state


class FcpeModel(TorchAudioModel):
    """TorchFCPE as a brainlike model (16 kHz, 10 ms frames).

    Parameters
    ----------
    weights : path, optional
        ``fcpe_c_v001.pt``; None builds the random-init twin (seed 0).
    weights_id : str, optional
        sha256 of ``weights`` (computed when not given).
    """

    sample_rate = SAMPLE_RATE
    layers = list(LAYERS)
    adapter_version = 1
    preprocessing = {"mel": "slaney128-log", "n_fft": N_FFT, "hop": HOP}
    causal = False  # depthwise convolutions of 31 frames centred on each frame
    batch_size = 8

    def __init__(self, weights: Path | None = None, weights_id: str | None = None) -> None:
        from brainlike.models.zoo.store import sha256_file

        init_module(self, NAME, _build_network, weights, weights_id, load_state, lambda: sha256_file(weights))

    def forward_torch(self, waveforms: Any) -> Mapping[str, Any]:
        return self.module(log_mel(waveforms))

    def frame_times(self, layer: str, n_frames: int, n_samples: int) -> np.ndarray:
        """Reflect padding of 432, 1024-sample frames every 160: frame k reads samples ``160 k - 432 ... 160 k + 591``
        (centre ``160 k + 79.5``); the network keeps one step per frame."""
        return FrameGrid().conv(N_FFT, HOP, (N_FFT - HOP) // 2).times(n_frames, self.sample_rate)


register_zoo_model(NAME, FcpeModel, "TorchFCPE pitch estimator (conv input stack + 6 conformer-conv layers, 10.8 M params), 16 kHz",
                   {"licence": "MIT", "distribution": "torchfcpe==0.0.4"})
