"""Torch network of :mod:`brainlike.models.zoo.yamnet`, imported by its ``build_torch_mobilenet`` when a model is built."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from brainlike.models.zoo.yamnet import SEPARABLE, layer_names

__all__ = ["SameConv", "conv3x3", "MobileNet"]


class SameConv(nn.Conv2d):
    """Conv 3x3 stride 2 with TF "SAME" padding (one extra row/column at the end only)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (0, 1, 0, 1)))


def conv3x3(cin: int, cout: int, stride: int, groups: int) -> nn.Conv2d:
    if stride == 2:
        return SameConv(cin, cout, 3, stride=2, padding=0, groups=groups)
    return nn.Conv2d(cin, cout, 3, stride=1, padding=1, groups=groups)


class MobileNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        convs, cin = [conv3x3(1, 32, 2, 1)], 32
        for stride, cout in SEPARABLE:
            convs += [conv3x3(cin, cin, stride, cin), nn.Conv2d(cin, cout, 1)]
            cin = cout
        self.convs = nn.ModuleList(convs)
        self.classifier = nn.Linear(1024, 521)
        self.names = layer_names()
        for conv in self.convs:  # He (fan-in) initialisation: activations keep their scale through 27 layers
            nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        nn.init.normal_(self.classifier.weight, 0.0, 0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for name, conv in zip(self.names, self.convs):
            x = F.relu(conv(x))
            out[name] = x
        out["embedding"] = x.mean(dim=(2, 3))
        out["logits"] = self.classifier(out["embedding"])
        return out
