"""Torch network of :mod:`brainlike.models.zoo.tempocnn`, imported by its ``_build_network`` when a model is built."""

from __future__ import annotations

import torch
from torch import nn

from brainlike.models.zoo.tempocnn import BN_EPS, MULTI_KERNELS, N_MELS, WINDOW, keras_same_pad

__all__ = ["TempoNet"]


def conv(cin: int, cout: int, kernel: tuple[int, int], dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, dilation=(1, dilation))


def bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class TempoNet(nn.Module):
    """A tempocnn network; ``weighted`` orders its Keras layers as in the ``.h5`` file."""

    def __init__(self, architecture: str, width: int) -> None:
        super().__init__()
        self.architecture, self.width = architecture, width
        self.weighted: list[str] = []  # Keras order
        self.blocks = nn.ModuleDict()
        getattr(self, f"_init_{architecture}")()

    def add(self, name: str, module: nn.Module) -> None:
        self.blocks[name] = module
        self.weighted.append(name)

    def run_conv(self, name: str, x: torch.Tensor, act: str) -> torch.Tensor:
        layer = self.blocks[name]
        y = layer(keras_same_pad(x, layer.kernel_size, layer.dilation))
        return nn.functional.elu(y) if act == "elu" else torch.relu(y)

    # --- ISMIR 2018 CNN (cnn.h5): BN, 3 short temporal convs, mel pooling, 4 multi-filter modules, dense head
    def _init_cnn(self) -> None:
        self.add("BN0", bn(1))
        cin = 1
        for i in (1, 2, 3):
            self.add(f"Conv{i}", conv(cin, 16, (1, 5)))
            cin = 16
            if i < 3:
                self.add(f"BN{i}", bn(16))
        for stage in (4, 5, 6, 7):
            self.add(f"BN{stage - 1}", bn(cin))
            for j, k in enumerate(MULTI_KERNELS, start=1):
                self.add(f"Conv{stage}_{j}", conv(cin, 24, (1, k)))
            self.add(f"Conv{stage}_1x1", conv(24 * len(MULTI_KERNELS), 36, (1, 1)))
            cin = 36
        self.add("BN7", bn(36))
        self.add("dense1", nn.Linear(36 * WINDOW, 64))
        self.add("dense1_bn", nn.BatchNorm1d(64, eps=BN_EPS))
        self.add("dense2", nn.Linear(64, 64))
        self.add("dense2_bn", nn.BatchNorm1d(64, eps=BN_EPS))
        self.add("output", nn.Linear(64, 256))

    def _forward_cnn(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        x = self.blocks["BN0"](x)
        for i in (1, 2, 3):
            x = out[f"conv{i}"] = self.run_conv(f"Conv{i}", x, "elu")
            if i < 3:
                x = self.blocks[f"BN{i}"](x)
        x = nn.functional.avg_pool2d(x, (5, 1))
        for stage in (4, 5, 6, 7):
            x = self.blocks[f"BN{stage - 1}"](x)
            branches = [self.run_conv(f"Conv{stage}_{j}", x, "elu") for j in range(1, len(MULTI_KERNELS) + 1)]
            x = out[f"conv{stage}"] = torch.cat(branches, dim=1)
            x = out[f"conv{stage}_1x1"] = self.run_conv(f"Conv{stage}_1x1", x, "elu")
            if stage < 7:
                x = nn.functional.avg_pool2d(x, (2, 1))
        x = self.blocks["BN7"](x)
        x = x.permute(0, 2, 3, 1).flatten(1)  # Keras flattens channels-last (H, W, C)
        x = out["dense1"] = nn.functional.elu(self.blocks["dense1"](x))
        x = out["dense2"] = nn.functional.elu(self.blocks["dense2"](self.blocks["dense1_bn"](x)))
        out["output"] = torch.softmax(self.blocks["output"](self.blocks["dense2_bn"](x)), dim=1)
        return out

    # --- fully convolutional network (fcn.h5): densely connected (dilated) temporal convs, mel pooling only
    def _init_fcn(self) -> None:
        self.add("BN0", bn(1))
        channels = [1, 12, 12, 12, 60, 60, 60, 120, 240, 256]
        inputs = {1: 1, 2: 13, 3: 25, 4: 12, 5: 72, 6: 132, 7: 60, 8: 120, 9: 240}
        dilations = {4: 2, 5: 4, 6: 16}  # temporal dilation of Conv4-6
        for i in range(1, 10):
            self.add(f"Conv{i}", conv(inputs[i], channels[i], (1, 1) if i == 9 else (1, 5), dilations.get(i, 1)))
            if i in (1, 2, 4, 5):
                self.add(f"BN{i}", bn(inputs[i + 1]))
            elif i in (3, 6, 7, 8):
                self.add(f"BN{i}", bn(channels[i]))
        self.add("BN9", bn(256))

    def _forward_fcn(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        x = self.blocks["BN0"](x)
        dense = [x]  # inputs of the densely connected block (Keras Concatenate layers)
        for i in range(1, 10):
            y = out[f"conv{i}"] = self.run_conv(f"Conv{i}", x, "elu")
            if i in (1, 2, 4, 5):
                dense.append(y)
                x = self.blocks[f"BN{i}"](torch.cat(dense, dim=1))
                continue
            if i == 3:
                y = nn.functional.avg_pool2d(y, (5, 1))
            elif i in (6, 7, 8):
                y = nn.functional.max_pool2d(y, (2, 1))
            x = self.blocks[f"BN{i}"](y)
            if i == 3:
                dense = [x]
        out["output"] = torch.softmax(x.mean(dim=(2, 3)), dim=1)
        return out

    # --- DeepTemp / DeepSquare (Schreiber & Müller 2019): 6 pairs of conv+BN, 2x2 max pooling, 1x1, GAP
    def _init_deep(self, kernels: tuple[tuple[int, int], tuple[int, int]]) -> None:
        cin = 1
        for i in range(12):
            cout = self.width * (1, 1, 2, 2, 4, 4, 4, 4, 8, 8, 8, 8)[i]
            self.add(f"Conv{i}", conv(cin, cout, kernels[i % 2]))
            self.add(f"BN{i}", bn(cout))
            cin = cout
        self.add("1x1", conv(cin, 256, (1, 1)))

    def _init_deeptemp(self) -> None:
        self._init_deep(((1, 5), (1, 3)))

    def _init_deepsquare(self) -> None:
        self._init_deep(((5, 5), (3, 3)))

    def _forward_deep(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for i in range(12):
            out[f"conv{i}"] = self.run_conv(f"Conv{i}", x, "relu")
            x = self.blocks[f"BN{i}"](out[f"conv{i}"])
            if i % 2 == 1:
                x = nn.functional.max_pool2d(x, (2, 2) if i < 11 else (1, 2))
        x = out["conv1x1"] = self.run_conv("1x1", x, "relu")
        out["output"] = torch.softmax(x.mean(dim=(2, 3)), dim=1)
        return out

    _forward_deeptemp = _forward_deep
    _forward_deepsquare = _forward_deep

    # --- ShallowTemp: one short temporal conv, mel averaging, one 256-frame temporal conv, 1x1, GAP
    def _init_shallowtemp(self) -> None:
        self.add("Conv0", conv(1, self.width, (1, 3)))
        self.add("Conv2", conv(self.width, 64 * self.width, (1, WINDOW)))
        self.add("1x1", conv(64 * self.width, 256, (1, 1)))

    def _forward_shallowtemp(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        x = out["conv0"] = self.run_conv("Conv0", x, "relu")
        x = nn.functional.avg_pool2d(x, (N_MELS, 1))
        x = out["conv2"] = self.run_conv("Conv2", x, "relu")
        x = out["conv1x1"] = self.run_conv("1x1", x, "relu")
        out["output"] = torch.softmax(x.mean(dim=(2, 3)), dim=1)
        return out

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return getattr(self, f"_forward_{self.architecture}")(x)
