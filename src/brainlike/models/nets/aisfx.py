"""Torch network of :mod:`brainlike.models.zoo.aisfx`, imported by its ``_build_network`` when a model is built."""

from __future__ import annotations

import torch
from torch import nn

from brainlike.models.zoo.aisfx import CHANNELS

__all__ = ["ConvBlock", "EmbeddingNet"]


class ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.bn2 = nn.BatchNorm2d(cout)


class EmbeddingNet(nn.Module):
    """(n, 100, 96) spectrogram blocks -> {layer: (n, C, T, F) maps, "embedding": (n, 512)}."""

    def __init__(self) -> None:
        super().__init__()
        cins = [1] + CHANNELS[:-1]
        for b, (cin, cout) in enumerate(zip(cins, CHANNELS), start=1):
            setattr(self, f"conv_block{b}", ConvBlock(cin, cout))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = x[:, None]
        out: dict[str, torch.Tensor] = {}
        for b in range(1, 5):
            block = getattr(self, f"conv_block{b}")
            x = torch.relu(block.bn1(block.conv1(x)))
            out[f"block{b}.conv1"] = x
            x = torch.relu(block.bn2(block.conv2(x)))
            out[f"block{b}.conv2"] = x
            if b < 4:
                x = nn.functional.max_pool2d(x, 2)
        out["embedding"] = x.mean(dim=3).amax(dim=2)
        return out
