"""Torch network of :mod:`brainlike.models.zoo.resemblyzer`, imported by its ``_build_network`` when a model is built."""

from __future__ import annotations

import torch
from torch import nn

from brainlike.models.zoo.resemblyzer import HIDDEN, N_MELS

__all__ = ["SpeakerEncoder"]


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
