"""Torch network of :mod:`brainlike.models.zoo.crepe`, imported by its ``_build_network`` when a model is built."""

from __future__ import annotations

import torch
from torch import nn

from brainlike.models.zoo.crepe import BN_EPS, CAPACITY, N_BINS

__all__ = ["Crepe"]

class Crepe(nn.Module):
    """CREPE network over (n_frames, 1024) normalised frames."""

    def __init__(self, capacity: str) -> None:
        super().__init__()
        in_ch, out_ch = CAPACITY[capacity]
        for i, (cin, cout) in enumerate(zip(in_ch, out_ch), start=1):
            kernel, stride = (512, 4) if i == 1 else (64, 1)
            setattr(self, f"conv{i}", nn.Conv1d(cin, cout, kernel, stride))
            setattr(self, f"conv{i}_BN", nn.BatchNorm1d(cout, eps=BN_EPS, momentum=0.0))
        self.classifier = nn.Linear(4 * out_ch[-1], N_BINS)

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """(n_frames, 1024) -> {layer: (n_frames, features)}."""
        x = frames[:, None, :]
        out: dict[str, torch.Tensor] = {}
        for i in range(1, 7):
            x = nn.functional.pad(x, (254, 254) if i == 1 else (31, 32))
            x = getattr(self, f"conv{i}_BN")(torch.relu(getattr(self, f"conv{i}")(x)))
            x = nn.functional.max_pool1d(x, 2, 2)
            out[f"conv{i}"] = x.flatten(1)
        # time-major flatten of the last block, as in the original Keras model
        out["classifier"] = torch.sigmoid(self.classifier(x.transpose(1, 2).flatten(1)))
        return out
