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
from brainlike.models.base import FrameGrid, TorchAudioModel
from brainlike.models.zoo import init_module, register_zoo_model

__all__ = ["SAMPLE_RATE", "N_FFT", "HOP", "N_MELS", "WINDOW", "BN_EPS", "MIN_BPM", "MULTI_KERNELS", "Variant",
           "VARIANTS", "mel_filters", "mel_spectrogram", "windows", "keras_same_pad", "layer_names", "read_keras_h5",
           "state_from_keras", "probabilities_to_bpm", "TempoCNNModel"]

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
    from brainlike.models.mel import slaney_mel_filterbank as slaney_filters

    return slaney_filters(SAMPLE_RATE, N_FFT, N_MELS, fmin=20.0, fmax=5000.0)


def mel_spectrogram(waveforms: Any) -> Any:
    """(batch, samples) at 11,025 Hz -> magnitude mel (batch, 40, 1 + samples // 512), as tempocnn's librosa call."""
    import torch

    window = torch.hann_window(N_FFT, periodic=True, dtype=waveforms.dtype, device=waveforms.device)
    spec = torch.stft(waveforms, N_FFT, HOP, window=window, center=True, pad_mode="constant", return_complex=True)
    return torch.matmul(torch.as_tensor(mel_filters(), device=waveforms.device), spec.abs())


def pad_to_windows(mel: Any) -> tuple[Any, int]:
    """(batch, 40, frames) zero-padded at the end to whole 256-frame windows; also the number of windows."""
    import torch

    frames = mel.shape[-1]
    n_windows = max(1, -(-frames // WINDOW))
    return torch.nn.functional.pad(mel, (0, n_windows * WINDOW - frames)), n_windows


def window_statistics(mel: Any, normaliser: str) -> tuple[Any, Any]:
    """(shift, scale), float64 (batch, 1), of a clip's mel (batch, 40, frames) padded to whole windows: (0, maximum)
    for ``max``; (mean, standard deviation) for ``std``; a constant clip gets (0, 1)."""
    import torch

    flat = pad_to_windows(mel)[0].reshape(mel.shape[0], -1).double()
    if normaliser == "max":
        peak = flat.amax(dim=1, keepdim=True)
        return torch.zeros_like(peak), torch.where(peak != 0, peak, torch.ones_like(peak))
    std = flat.std(dim=1, unbiased=False, keepdim=True)
    mean = flat.mean(dim=1, keepdim=True)
    return torch.where(std != 0, mean, torch.zeros_like(mean)), torch.where(std != 0, std, torch.ones_like(std))


def windows(mel: Any, normaliser: str, statistics: tuple[Any, Any] | None = None) -> tuple[Any, int]:
    """Cut (batch, 40, frames) into normalised 256-frame windows (batch * n_windows, 1, 40, 256); also n_windows.

    ``statistics``: the (shift, scale) to normalise with (default: the clip's own, :func:`window_statistics`).
    """
    mel, n_windows = pad_to_windows(mel)
    batch = mel.shape[0]
    flat = mel.reshape(batch, -1).double()
    shift, scale = window_statistics(mel, normaliser) if statistics is None else statistics
    if normaliser == "max":
        flat = flat / scale
    else:
        flat = ((flat - shift) / scale).half()
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
    from brainlike.models.nets.tempocnn import TempoNet

    return TempoNet(architecture, width)


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


def clip_level_layer_names(architecture: str) -> tuple[str, ...]:
    """Layers with one step per 256-frame window (11.9 s, longer than a stimulus with its padding)."""
    return ("dense1", "dense2", "output") if architecture == "cnn" else ("output",)


def layer_grid(architecture: str, layer: str) -> FrameGrid:
    """Frame grid (input samples) of a convolution layer; windows join without a gap (256 frames every 256).

    Spectrogram frame f is centred on sample 512 f (centred STFT). Keras "same" convolutions keep the grid for odd
    (dilated) kernel extents and move it by half a frame for even ones (output j reads ``j - (k/2 - 1) ... j + k/2``):
    the multi-filter modules of ``cnn`` (kernels 32 ... 256, every branch the same half frame) and ShallowTemp's
    256-frame ``conv2``. 2 x 2 max pooling (DeepTemp, DeepSquare; before conv2, conv4 ... conv10, and 1 x 2 before
    ``conv1x1``) halves the frame rate; a pooled step covers two frames and sits between them. The mel-axis pooling of
    ``cnn`` and ``fcn`` leaves the time axis alone.
    """
    grid = FrameGrid(0.0, HOP)
    if architecture == "cnn" and layer[4] in "4567":
        for _ in range(int(layer[4]) - 3):
            grid = grid.conv(MULTI_KERNELS[0], 1, (MULTI_KERNELS[0] - 1) // 2)
    elif architecture in ("deeptemp", "deepsquare"):
        for _ in range(6 if layer == "conv1x1" else int(layer[4:]) // 2):
            grid = grid.conv(2, 2)
    elif architecture == "shallowtemp" and layer != "conv0":
        grid = grid.conv(WINDOW, 1, (WINDOW - 1) // 2)
    return grid


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
    causal = False  # centred 93 ms STFT frames, "same" convolutions, normalisation over the whole clip
    frames_version = 2

    def __init__(self, name: str, weights: Path | None = None, weights_id: str | None = None) -> None:
        variant = VARIANTS[name]
        self.variant = variant
        self.layers = layer_names(variant.architecture)
        self.clip_level_layers = clip_level_layer_names(variant.architecture)
        if variant.architecture in ("deeptemp", "deepsquare"):
            self.frame_edge_s = 1.6  # conv1x1: one step per 64 frames (2.97 s), the first centred 1.46 s in
        self.preprocessing = {"mel": "slaney40-20-5000-magnitude", "n_fft": N_FFT, "hop": HOP, "window": WINDOW,
                              "window_hop": WINDOW, "normaliser": variant.normaliser}
        init_module(self, name, lambda: _build_network(variant.architecture, variant.width), weights, weights_id,
                    lambda path: state_from_keras(self.module, read_keras_h5(path)))
        pools = self._time_pools()
        frame = HOP / SAMPLE_RATE
        self.hop_seconds = {layer: frame * pools[layer] if layer in pools else WINDOW * frame for layer in self.layers}

    def _time_pools(self) -> dict[str, int]:
        """Time-pooling factor of each conv layer (frames per step); dense/output layers are absent."""
        if self.variant.architecture in ("deeptemp", "deepsquare"):
            pools = {f"conv{i}": 2 ** (i // 2) for i in range(12)}  # a pool after every odd conv
            return {**pools, "conv1x1": 64}
        return {layer: 1 for layer in self.layers if layer.startswith("conv")}

    def forward_torch(self, waveforms: Any, statistics: tuple[Any, Any] | None = None) -> Mapping[str, Any]:
        mel = mel_spectrogram(waveforms)
        frames = mel.shape[-1]
        data, n_windows = windows(mel, self.variant.normaliser, statistics)
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

    def forward_padded(self, waveforms: np.ndarray, sound: slice) -> Mapping[str, Any]:
        """Sounds in silence, normalised with the statistics of the sound alone (its mel padded to whole windows,
        as :meth:`forward` computes them): the silence around it, normalised with them, is what zero-padding the
        sound's own last window gives."""
        return self.torch_call(lambda batch: self.forward_torch(
            batch, window_statistics(mel_spectrogram(batch[:, sound]), self.variant.normaliser)), waveforms)

    def frame_times(self, layer: str, n_frames: int, n_samples: int) -> np.ndarray:
        """Convolution layers: :func:`layer_grid` (the cropped frames are the first ones of that grid)."""
        if layer in self.clip_level_layers:
            return super().frame_times(layer, n_frames, n_samples)
        return layer_grid(self.variant.architecture, layer).times(n_frames, self.sample_rate)


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
