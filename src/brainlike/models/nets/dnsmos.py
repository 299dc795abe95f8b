"""Torch networks of :mod:`brainlike.models.zoo.dnsmos`, imported by its ``_build_network`` / ``_build_p835`` when a
model is built."""

from __future__ import annotations

import torch
from torch import nn

from brainlike.models.zoo.dnsmos import CHANNELS, HOP, P835_CHANNELS, P835_POOL_AFTER, POOL_AFTER

__all__ = ["P808", "P835"]


class P808(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(cin, cout, 3, padding=1) for cin, cout in CHANNELS])
        self.dense1, self.dense2, self.dense3 = nn.Linear(64, 64), nn.Linear(64, 64), nn.Linear(64, 1)

    def forward(self, mel: torch.Tensor) -> dict[str, torch.Tensor]:
        out, x = {}, mel[:, None]
        for i, conv in enumerate(self.convs, start=1):
            x = torch.relu(conv(x))
            if i in POOL_AFTER:
                x = nn.functional.max_pool2d(x, 2)
            out[f"conv{i}"] = x
        out["dense1"] = torch.relu(self.dense1(x.amax(dim=(2, 3))))
        out["dense2"] = torch.relu(self.dense2(out["dense1"]))
        out["mos"] = self.dense3(out["dense2"])
        return out


class P835(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stft_real = nn.Linear(2 * HOP, 161, bias=False)
        self.stft_imag = nn.Linear(2 * HOP, 161, bias=False)
        self.convs = nn.ModuleList([nn.Conv2d(cin, cout, 3, padding=1) for cin, cout in P835_CHANNELS])
        self.dense1, self.dense2, self.dense3 = nn.Linear(64, 128), nn.Linear(128, 64), nn.Linear(64, 3)

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        power = self.stft_real(frames) ** 2 + self.stft_imag(frames) ** 2
        out = {"logpow": torch.log10(power.clamp_min(1e-12))}
        x = out["logpow"][:, None]
        for i, conv in enumerate(self.convs, start=1):
            x = out[f"conv{i}"] = torch.relu(conv(x))
            if i in P835_POOL_AFTER:
                x = nn.functional.max_pool2d(x, 2)
        out["dense1"] = torch.relu(self.dense1(x.amax(dim=(2, 3))))
        out["dense2"] = torch.relu(self.dense2(out["dense1"]))
        out["scores"] = self.dense3(out["dense2"])
        return out
