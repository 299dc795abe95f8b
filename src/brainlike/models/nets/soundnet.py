"""Torch network of :mod:`brainlike.models.zoo.soundnet`, imported by its ``_build_network`` when a model is built."""

from __future__ import annotations

import torch
from torch import nn

from brainlike.models.zoo.soundnet import BN_EPS, CONFIG

__all__ = ["SoundNet8"]


class SoundNet8(nn.Module):
    """conv -> BN -> ReLU (-> max-pool) x 7 on a (batch, 1, samples) waveform scaled by 256."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleDict()
        self.norms = nn.ModuleDict()
        for name, cin, cout, kernel, stride, pad, _pool in CONFIG:
            self.convs[name] = nn.Conv1d(cin, cout, kernel, stride, pad)
            self.norms[name] = nn.BatchNorm1d(cout, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name, *_, pool in CONFIG:
            x = torch.relu(self.norms[name](self.convs[name](x)))
            if pool > 1:
                x = nn.functional.max_pool1d(x, pool, pool, ceil_mode=x.shape[-1] < pool)
            out[name] = x.transpose(1, 2)
        return out
