"""Torch network of :mod:`brainlike.models.zoo.nsnet2`, imported by its ``_build_network`` when a model is built."""

from __future__ import annotations

import torch
from torch import nn

from brainlike.models.zoo.nsnet2 import BINS, HIDDEN

__all__ = ["NSNet2"]


class NSNet2(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc_in = nn.Linear(BINS, HIDDEN)
        self.gru1 = nn.GRU(HIDDEN, HIDDEN, batch_first=True)
        self.gru2 = nn.GRU(HIDDEN, HIDDEN, batch_first=True)
        self.fc_out1 = nn.Linear(HIDDEN, 600)
        self.fc_out2 = nn.Linear(600, 600)
        self.fc_out3 = nn.Linear(600, BINS)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"fc_in": torch.relu(self.fc_in(features))}
        out["gru1"] = self.gru1(out["fc_in"])[0]
        out["gru2"] = self.gru2(out["gru1"])[0]
        out["fc_out1"] = torch.relu(self.fc_out1(out["gru2"]))
        out["fc_out2"] = torch.relu(self.fc_out2(out["fc_out1"]))
        out["gain"] = torch.sigmoid(self.fc_out3(out["fc_out2"]))
        return out
