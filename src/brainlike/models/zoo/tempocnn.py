"""Tempo-CNN tempo estimators (Schreiber & Müller 2018, 2019, 2020) read from the tempocnn 0.0.8 Keras ``.h5`` files.

tempocnn ships several distinct networks (and cross-validation fold replicas of the Mazurka model); brainlike keeps
one of each: ``tempocnn-cnn`` (ISMIR 2018 CNN: mel-axis-pooled convs, multi-filter temporal modules, dense head),
``tempocnn-fcn`` (fully convolutional, densely connected), ``tempocnn-deeptemp`` (DeepTemp k=8, temporal 1xN
filters), ``tempocnn-deepsquare`` (DeepSquare k=8, square NxN filters), ``tempocnn-shallowtemp`` (ShallowTemp k=6:
one wide temporal filter over mel-averaged input) and ``tempocnn-mazurka`` (DeepTemp k=16 trained on Chopin
Mazurka recordings: fold 0 of the "v" split, the package's ``mazurka`` default). Not kept: ``ismir2018.h5`` (the
``cnn`` architecture again), the other k widths, the other nine Mazurka folds.

Front end (tempocnn ``feature.py``): 11,025 Hz mono; magnitude (power 1) STFT with n_fft 1024, hop 512, periodic
Hann, centred with zero padding; 40 Slaney mel bands (Slaney area norm) from 20 to 5,000 Hz. The networks see
windows of 256 frames (11.9 s); shorter clips are zero-padded to 256 frames, longer ones are cut into consecutive
256-frame windows (the package slides windows with a hop of 128 and averages them; brainlike uses a hop of 256 so
that the time axes concatenate). Each clip's windows are normalised together: divided by their maximum (``cnn``,
``fcn``), or standardised to zero mean and unit variance and rounded to float16 (the DeepTemp family).

Layers: every convolution (post-activation, before its batch norm and pooling), features = channels x remaining mel
bands (channel-major), time = spectrogram frames after the layer's pooling, cropped to the frames that carry audio;
the dense layers and the 256-way softmax (tempo class i = 30 + i BPM) have one step per window.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from brainlike.errors import ModelError
from brainlike.models.base import TorchAudioModel
from brainlike.models.zoo import init_module, register_zoo_model

SAMPLE_RATE = 11025
N_FFT = 1024
HOP = 512
N_MELS = 40
WINDOW = 256
BN_EPS = 1e-3
MIN_BPM = 30
MULTI_KERNELS = (32, 64, 96, 128, 192, 256)


@dataclass(frozen=True)
class Variant:
    """One kept tempocnn network: its file, architecture and input normalisation."""

    member: str
    architecture: str
    width: int
    normaliser: str
    description: str
    params: str


VARIANTS: dict[str, Variant] = {
    "tempocnn-cnn": Variant("cnn.h5", "cnn", 0, "max", "Tempo-CNN ISMIR 2018 CNN", "2.9 M"),
    "tempocnn-fcn": Variant("fcn.h5", "fcn", 0, "max", "Tempo-CNN fully convolutional network", "0.31 M"),
    "tempocnn-deeptemp": Variant("deeptemp_k8.h5", "deeptemp", 8, "std", "DeepTemp k=8 (temporal filters)", "0.09 M"),
    "tempocnn-deepsquare": Variant("deepsquare_k8.h5", "deepsquare", 8, "std", "DeepSquare k=8 (square filters)",
                                   "0.31 M"),
    "tempocnn-shallowtemp": Variant("shallowtemp_k6.h5", "shallowtemp", 6, "std",
                                    "ShallowTemp k=6 (one wide temporal filter)", "0.69 M"),
    "tempocnn-mazurka": Variant("dt_maz_v_fold0.h5", "deeptemp", 16, "std",
                                "DeepTemp k=16 trained on Chopin Mazurkas (fold 0, v split)", "0.32 M"),
}


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """40 Slaney mel filters (Slaney norm, 20-5000 Hz) on the 1024-point rfft grid at 11,025 Hz: (40, 513)."""
    from brainlike.models.zoo.whisper import mel_filters as slaney_filters

    return slaney_filters(SAMPLE_RATE, N_FFT, N_MELS, fmin=20.0, fmax=5000.0)


def mel_spectrogram(waveforms: Any) -> Any:
    """(batch, samples) at 11,025 Hz -> magnitude mel (batch, 40, 1 + samples // 512), as tempocnn's librosa call."""
    import torch

    window = torch.hann_window(N_FFT, periodic=True, dtype=waveforms.dtype, device=waveforms.device)
    spec = torch.stft(waveforms, N_FFT, HOP, window=window, center=True, pad_mode="constant", return_complex=True)
    return torch.matmul(torch.as_tensor(mel_filters(), device=waveforms.device), spec.abs())


def windows(mel: Any, normaliser: str) -> tuple[Any, int]:
    """Cut (batch, 40, frames) into normalised 256-frame windows (batch * n_windows, 1, 40, 256); also n_windows."""
    import torch

    frames = mel.shape[-1]
    n_windows = max(1, -(-frames // WINDOW))
    mel = torch.nn.functional.pad(mel, (0, n_windows * WINDOW - frames))
    batch = mel.shape[0]
    flat = mel.reshape(batch, -1).double()
    if normaliser == "max":
        peak = flat.amax(dim=1, keepdim=True)
        flat = flat / torch.where(peak != 0, peak, torch.ones_like(peak))
    else:
        std = flat.std(dim=1, unbiased=False, keepdim=True)
        flat = torch.where(std != 0, (flat - flat.mean(dim=1, keepdim=True)) / std, flat).half()
    data = flat.float().reshape(batch, N_MELS, n_windows, WINDOW).permute(0, 2, 1, 3)
    return data.reshape(batch * n_windows, 1, N_MELS, WINDOW), n_windows


def keras_same_pad(x: Any, kernel: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> Any:
    """Keras/TensorFlow "same" padding for stride 1: (k - 1) // 2 before, the rest after, per axis, with k the
    dilated kernel extent."""
    import torch

    kh, kw = ((k - 1) * d + 1 for k, d in zip(kernel, dilation))
    return torch.nn.functional.pad(x, ((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2))


def _build_network(architecture: str, width: int) -> Any:
    """The network as an ``nn.Module`` whose ``weighted`` list orders its Keras layers as in the ``.h5`` file.

    ``forward`` maps (n, 1, 40, 256) windows to ``{layer: tensor}``: conv layers (n, C, H, T), dense/output (n, F).
    """
    import torch
    from torch import nn

    def conv(cin: int, cout: int, kernel: tuple[int, int], dilation: int = 1) -> nn.Conv2d:
        return nn.Conv2d(cin, cout, kernel, dilation=(1, dilation))

    def bn(channels: int) -> nn.BatchNorm2d:
        return nn.BatchNorm2d(channels, eps=BN_EPS)

    class TempoNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
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
                cout = width * (1, 1, 2, 2, 4, 4, 4, 4, 8, 8, 8, 8)[i]
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
            self.add("Conv0", conv(1, width, (1, 3)))
            self.add("Conv2", conv(width, 64 * width, (1, WINDOW)))
            self.add("1x1", conv(64 * width, 256, (1, 1)))

        def _forward_shallowtemp(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            out: dict[str, torch.Tensor] = {}
            x = out["conv0"] = self.run_conv("Conv0", x, "relu")
            x = nn.functional.avg_pool2d(x, (N_MELS, 1))
            x = out["conv2"] = self.run_conv("Conv2", x, "relu")
            x = out["conv1x1"] = self.run_conv("1x1", x, "relu")
            out["output"] = torch.softmax(x.mean(dim=(2, 3)), dim=1)
            return out

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return getattr(self, f"_forward_{architecture}")(x)

    return TempoNet()


def layer_names(architecture: str) -> list[str]:
    """Exposed layers of an architecture, input side first."""
    if architecture == "cnn":
        multi = [name for s in (4, 5, 6, 7) for name in (f"conv{s}", f"conv{s}_1x1")]
        return ["conv1", "conv2", "conv3", *multi, "dense1", "dense2", "output"]
    if architecture == "fcn":
        return [f"conv{i}" for i in range(1, 10)] + ["output"]
    if architecture in ("deeptemp", "deepsquare"):
        return [f"conv{i}" for i in range(12)] + ["conv1x1", "output"]
    return ["conv0", "conv2", "conv1x1", "output"]


def read_keras_h5(path: Path) -> list[tuple[str, list[np.ndarray]]]:
    """``[(layer name, [weight arrays])]`` for every Keras layer with weights, in the file's layer order (h5py)."""
    import h5py

    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    layers = []
    with h5py.File(path, "r") as handle:
        group = handle["model_weights"] if "model_weights" in handle else handle
        for layer in group.attrs["layer_names"]:
            names = [text(n) for n in group[text(layer)].attrs["weight_names"]]
            if names:
                layers.append((text(layer), [np.asarray(group[text(layer)][n]) for n in names]))
    return layers


def state_from_keras(module: Any, keras_layers: list[tuple[str, list[np.ndarray]]]) -> dict[str, Any]:
    """Map Keras weights (layer order of the file) onto ``module.weighted`` (same order), checking every shape.

    Conv2D kernels (kh, kw, in, out) become (out, in, kh, kw); Dense kernels (in, out) become (out, in); batch norms
    carry (gamma, beta, moving mean, moving variance).
    """
    import torch

    if len(keras_layers) != len(module.weighted):
        raise ModelError(f"the .h5 file has {len(keras_layers)} weighted layers, the network {len(module.weighted)}")
    state = {}
    for name, (keras_name, arrays) in zip(module.weighted, keras_layers):
        target = module.blocks[name]
        if isinstance(target, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            keys, arrays = ["weight", "bias", "running_mean", "running_var"], arrays
        elif isinstance(target, torch.nn.Conv2d):
            keys, arrays = ["weight", "bias"], [arrays[0].transpose(3, 2, 0, 1), arrays[1]]
        else:
            keys, arrays = ["weight", "bias"], [arrays[0].T, arrays[1]]
        for key, array in zip(keys, arrays):
            expected = tuple(getattr(target, key).shape)
            if tuple(array.shape) != expected:
                raise ModelError(f"{keras_name}: {key} shape {array.shape} does not fit {name} {expected}")
            state[f"blocks.{name}.{key}"] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if isinstance(target, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            state[f"blocks.{name}.num_batches_tracked"] = torch.tensor(0)
    return state


def probabilities_to_bpm(probabilities: np.ndarray) -> float:
    """Global tempo (BPM) from softmax outputs (..., 256): argmax of the window average, class i = 30 + i BPM."""
    mean = np.asarray(probabilities, dtype=np.float64).reshape(-1, 256).mean(axis=0)
    return float(MIN_BPM + int(mean.argmax()))


class TempoCNNModel(TorchAudioModel):
    """A tempocnn network as a brainlike model (11,025 Hz).

    Parameters
    ----------
    name : str
        A key of :data:`VARIANTS` (``"tempocnn-cnn"``...).
    weights : path, optional
        The variant's ``.h5`` file; None builds the random-init twin (seed 0).
    weights_id : str, optional
        sha256 of ``weights`` (computed when not given).
    """

    sample_rate = SAMPLE_RATE
    adapter_version = 1
    batch_size = 8

    def __init__(self, name: str, weights: Path | None = None, weights_id: str | None = None) -> None:
        from brainlike.models.zoo.store import sha256_file

        variant = VARIANTS[name]
        self.variant = variant
        self.layers = layer_names(variant.architecture)
        self.preprocessing = {"mel": "slaney40-20-5000-magnitude", "n_fft": N_FFT, "hop": HOP, "window": WINDOW,
                              "window_hop": WINDOW, "normaliser": variant.normaliser}
        init_module(self, name, lambda: _build_network(variant.architecture, variant.width), weights, weights_id,
                    lambda path: state_from_keras(self.module, read_keras_h5(path)), lambda: sha256_file(weights))
        pools = self._time_pools()
        frame = HOP / SAMPLE_RATE
        self.hop_seconds = {layer: frame * pools[layer] if layer in pools else WINDOW * frame for layer in self.layers}

    def _time_pools(self) -> dict[str, int]:
        """Time-pooling factor of each conv layer (frames per step); dense/output layers are absent."""
        if self.variant.architecture in ("deeptemp", "deepsquare"):
            pools = {f"conv{i}": 2 ** (i // 2) for i in range(12)}  # a pool after every odd conv
            return {**pools, "conv1x1": 64}
        return {layer: 1 for layer in self.layers if layer.startswith("conv")}

    def forward_torch(self, waveforms: Any) -> Mapping[str, Any]:
        mel = mel_spectrogram(waveforms)
        frames = mel.shape[-1]
        data, n_windows = windows(mel, self.variant.normaliser)
        raw = self.module(data)
        batch = waveforms.shape[0]
        pools = self._time_pools()
        out = {}
        for layer in self.layers:
            value = raw[layer]
            if value.ndim == 2:  # one step per window
                out[layer] = value.reshape(batch, n_windows, -1)
                continue
            n, channels, height, steps = value.shape
            value = value.permute(0, 3, 1, 2).reshape(batch, n_windows * steps, channels * height)
            out[layer] = value[:, : max(1, -(-frames // pools[layer]))]
        return out


def _factory(name: str):
    def build(weights: Path | None = None, weights_id: str | None = None) -> TempoCNNModel:
        return TempoCNNModel(name, weights, weights_id)

    return build


for _name, _variant in VARIANTS.items():
    register_zoo_model(
        _name, _factory(_name),
        f"{_variant.description} ({_variant.params} params), tempocnn 0.0.8 Keras weights, 11.025 kHz, 40 mel bands",
        {"licence": "AGPL-3.0", "distribution": "tempocnn==0.0.8", "member": _variant.member},
    )
