"""Torch network of :mod:`brainlike.models.zoo.silero_vad`, imported by its ``build_module`` when a model is built."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from brainlike.models.zoo.silero_vad import CONTEXT, N_FFT, STFT_HOP, dft_basis

__all__ = ["SileroVAD"]


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
