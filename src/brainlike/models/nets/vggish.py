"""Torch network of :mod:`brainlike.models.paper.vggish`, imported by its ``_modules`` when a model is built."""

from __future__ import annotations

import torch
from torch import nn

from brainlike.models.paper.vggish import _EMBEDDING_TAPS, _FEATURE_TAPS, EXAMPLE_FRAMES, N_MELS, log_mel_examples

__all__ = ["VGGish"]


class VGGish(nn.Module):
    """VGGish with the parameter names of torchvggish (``features.*``, ``embeddings.*``)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for v in [64, "M", 128, "M", 256, 256, "M", 512, 512, "M"]:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, v, kernel_size=3, padding=1), nn.ReLU()]
                channels = v
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(nn.Linear(512 * 4 * 6, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(),
                                        nn.Linear(4096, 128), nn.ReLU())

    def layer_outputs(self, waveforms: torch.Tensor) -> dict[str, torch.Tensor]:
        examples = log_mel_examples(waveforms)  # (B, E, 96, 64)
        b, e = examples.shape[:2]
        x = examples.reshape(b * e, 1, EXAMPLE_FRAMES, N_MELS)
        out: dict[str, torch.Tensor] = {}
        for i, module in enumerate(self.features):
            x = module(x)
            if i in _FEATURE_TAPS:  # (B*E, C, T, F) -> (B, E*T, F*C), channels last as TF
                out[_FEATURE_TAPS[i]] = x.permute(0, 2, 3, 1).reshape(b, e * x.shape[2], -1)
        x = x.permute(0, 2, 3, 1).reshape(b * e, -1)
        for i, module in enumerate(self.embeddings):
            x = module(x)
            if i in _EMBEDDING_TAPS:
                out[_EMBEDDING_TAPS[i]] = x.reshape(b, e, -1)
        return out
