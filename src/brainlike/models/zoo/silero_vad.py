"""Silero VAD (speech-activity CNN + LSTM), 16 kHz, from ``silero_vad_16k.safetensors`` in ``silero-vad`` 6.2.3.

Architecture (per 32 ms chunk of 512 samples, with the previous 64 samples as context): right reflect-pad of 64,
a fixed STFT (periodic-Hann DFT basis of 256, hop 128) and its magnitude (129 x 4), four Conv1d + ReLU stages
(129->128 k3; 128->64 k3 s2; 64->64 k3 s2; 64->128 k3), an LSTM cell (128) carried across chunks, and a 1x1
output convolution + sigmoid giving the speech probability of the chunk.

Layers (time = chunks, 31.25 per second; features = channels x frames): ``stft`` (129 x 4), ``conv1`` (128 x 4),
``conv2`` (64 x 2), ``conv3`` (64), ``conv4`` (128), ``lstm`` (hidden state, 128). The output stage (one speech
probability per chunk) is available from :meth:`SileroVADModel.speech_probability`, not as a layer: a single
feature cannot be compared by RSA.

Note: the safetensors weights differ from the package's default TorchScript/ONNX model (their release is not
recorded); the architecture is the same. ``silero-vad@random`` keeps the fixed DFT basis and draws the learned
weights with torch's default initialisation (seed 0).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from brainlike.errors import ModelError
from brainlike.models.base import RANDOM_SEED, FrameGrid, TorchAudioModel, seed_everything_for_init
from brainlike.models.registry import ModelEntry, register_model
from brainlike.models.zoo import store

SAMPLE_RATE = 16000
CHUNK, CONTEXT, N_FFT, STFT_HOP = 512, 64, 256, 128
LAYERS = ["stft", "conv1", "conv2", "conv3", "conv4", "lstm"]
"""Layers exposed to scoring. The 1-value speech probability is not one of them (a single feature has no
correlation-based RDM); :meth:`SileroVADModel.speech_probability` gives it."""


def dft_basis(n_fft: int = N_FFT) -> np.ndarray:
    """The fixed STFT kernel: periodic Hann times cos (rows 0..n/2) and -sin (rows n/2+1..n+1), (n+2, 1, n)."""
    n = np.arange(n_fft)
    k = np.arange(n_fft // 2 + 1)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)
    angle = 2 * np.pi * k * n / n_fft
    return np.concatenate([window * np.cos(angle), -window * np.sin(angle)])[:, None, :].astype(np.float32)


def chunk_inputs(waveforms: Any) -> Any:
    """(B, N) tensor -> (B, n_chunks, 64 + 512) chunks with their 64-sample context (zeros before the start)."""
    import torch

    n_chunks = max(1, waveforms.shape[1] // CHUNK)
    audio = torch.nn.functional.pad(waveforms, (CONTEXT, max(0, CHUNK - waveforms.shape[1])))
    audio = audio[:, : CONTEXT + n_chunks * CHUNK]
    return audio.unfold(1, CONTEXT + CHUNK, CHUNK)


def build_module() -> Any:
    """The Silero VAD network as a torch module with state-dict keys matching the safetensors file."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class SileroVAD(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stft_conv = nn.Conv1d(1, N_FFT + 2, N_FFT, stride=STFT_HOP, bias=False)
            self.conv1 = nn.Conv1d(N_FFT // 2 + 1, 128, 3, padding=1)
            self.conv2 = nn.Conv1d(128, 64, 3, stride=2, padding=1)
            self.conv3 = nn.Conv1d(64, 64, 3, stride=2, padding=1)
            self.conv4 = nn.Conv1d(64, 128, 3, padding=1)
            self.lstm_cell = nn.LSTMCell(128, 128)
            self.final_conv = nn.Conv1d(128, 1, 1)
            with torch.no_grad():
                self.stft_conv.weight.copy_(torch.from_numpy(dft_basis()))

        def forward(self, chunks: torch.Tensor) -> dict[str, torch.Tensor]:
            """chunks (B, T, 576) -> {layer: (B, T, features)}."""
            b, t, n = chunks.shape
            x = F.pad(chunks.reshape(b * t, 1, n), (0, CONTEXT), mode="reflect")
            spec = self.stft_conv(x)
            half = spec.shape[1] // 2
            x = torch.sqrt(spec[:, :half] ** 2 + spec[:, half:] ** 2)
            out = {"stft": x}
            for name in ("conv1", "conv2", "conv3", "conv4"):
                x = F.relu(getattr(self, name)(x))
                out[name] = x
            features = x.mean(dim=-1).reshape(b, t, -1)
            h = c = features.new_zeros(b, 128)
            states = []
            for i in range(t):
                h, c = self.lstm_cell(features[:, i], (h, c))
                states.append(h)
            hidden = torch.stack(states, dim=1)
            prob = torch.sigmoid(self.final_conv(F.relu(hidden).reshape(b * t, 128, 1))).mean(dim=-1)
            result = {k: v.reshape(b, t, -1) for k, v in out.items()}
            result["lstm"] = hidden
            result["speech_prob"] = prob.reshape(b, t, 1)
            return result

    return SileroVAD()


def load_weights(module: Any, path: str) -> None:
    """Load the safetensors weights into :func:`build_module`'s network (strict)."""
    import torch
    from safetensors.numpy import load_file

    tensors = load_file(path)
    state = {k: torch.from_numpy(v.copy()) for k, v in tensors.items()}
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(f"{path}: weights do not fit Silero VAD (missing {missing}, unexpected {unexpected})")


class SileroVADModel(TorchAudioModel):
    """Silero VAD as a brainlike model."""

    adapter_version = 2
    batch_size = 16
    causal = True  # a chunk reads its own 32 ms and 4 ms before it; the LSTM runs forward in time

    def __init__(self, random: bool = False) -> None:
        self.name = "silero-vad@random" if random else "silero-vad"
        self.sample_rate = SAMPLE_RATE
        self.layers = list(LAYERS)
        self.preprocessing = {"sample_rate": SAMPLE_RATE, "chunk": CHUNK, "context": CONTEXT,
                              "layout": "time=chunk, features=channel*frame"}
        if random:
            seed_everything_for_init(RANDOM_SEED)
            self.module = build_module()
            self.weights_id = f"random:{RANDOM_SEED}"
        else:
            self.module = build_module()
            load_weights(self.module, str(store.weights_path("silero-vad")))
            self.weights_id = store.weights_sha256("silero-vad")
        self.module.eval()

    def forward_torch(self, waveforms: Any) -> Mapping[str, Any]:
        return self.module(chunk_inputs(waveforms))

    def frame_times(self, layer: str, n_frames: int, n_samples: int) -> np.ndarray:
        """Chunk i holds samples ``512 i ... 512 i + 511``: centre ``512 i + 255.5`` (every 32 ms)."""
        return FrameGrid().conv(CHUNK, CHUNK).times(n_frames, self.sample_rate)

    def speech_probability(self, waveform: np.ndarray) -> np.ndarray:
        """Per-chunk speech probability of one 16 kHz clip, (n_chunks,)."""
        return np.asarray(self.forward(np.asarray(waveform, np.float32)[None])["speech_prob"][0, :, 0])


register_model(ModelEntry(
    name="silero-vad",
    build=lambda random: SileroVADModel(random),
    family="zoo",
    description="Silero VAD speech-activity CNN + LSTM (16 kHz safetensors weights)",
    available=lambda: store.available_reason("silero-vad"),
    metadata={"licence": store.item("silero-vad").licence, "source": "silero-vad 6.2.3 safetensors"},
))
