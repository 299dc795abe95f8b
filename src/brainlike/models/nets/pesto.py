"""Torch network of :mod:`brainlike.models.zoo.pesto`, imported by its ``_build_network`` when a model is built."""

from __future__ import annotations

import torch
from torch import nn

from brainlike.models.zoo.pesto import CHANNELS, KERNEL, LEAKY_SLOPE, N_BINS_IN, OUTPUT_DIM

__all__ = ["Encoder"]


class Encoder(nn.Module):
    """(n, 219) log-power CQT frames -> {layer: (n, features)}."""

    def __init__(self) -> None:
        super().__init__()
        self.layernorm = nn.LayerNorm([1, N_BINS_IN])
        self.conv1 = nn.Sequential(nn.Conv1d(1, CHANNELS[0], KERNEL, padding=KERNEL // 2))
        self.prefilt_layers = nn.ModuleList(
            [nn.Sequential(nn.Conv1d(CHANNELS[0], CHANNELS[0], KERNEL, padding=KERNEL // 2)) for _ in range(2)]
        )
        pointwise = {}
        for i, (cin, cout) in enumerate(zip(CHANNELS[:-1], CHANNELS[1:])):
            pointwise[str(3 * i)] = nn.Conv1d(cin, cout, 1)
        self.conv_layers = nn.ModuleDict(pointwise)
        n_in = N_BINS_IN * CHANNELS[-1]
        self.fc = nn.Conv1d(1, 1, n_in + OUTPUT_DIM - 1, padding=OUTPUT_DIM - 1, bias=False)

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        act = lambda t: nn.functional.leaky_relu(t, LEAKY_SLOPE)  # noqa: E731
        x = act(self.conv1(self.layernorm(frames[:, None])))
        out = {"conv1": x}
        for i, layer in enumerate(self.prefilt_layers, start=1):
            x = x + act(layer(x))
            out[f"prefilt{i}"] = x
        for i, conv in enumerate(self.conv_layers.values(), start=1):
            x = act(conv(x))
            out[f"pointwise{i}"] = x
        logits = self.fc(x.flatten(1)[:, None])[:, 0]
        out["output"] = torch.softmax(logits, dim=-1)
        return {k: v.flatten(1) for k, v in out.items()}
