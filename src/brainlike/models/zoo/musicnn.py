"""musicnn music taggers (Pons & Serra 2019) read from the musicnn 0.1.0 TensorFlow checkpoints without TensorFlow.

Four checkpoints, two architectures x two training sets: ``musicnn-mtt`` / ``musicnn-msd`` (the musically motivated
CNN: timbral and temporal front-end filters, a residual mid-end, temporal pooling and a dense back-end; 0.79 M
params) and ``musicnn-vgg-mtt`` / ``musicnn-vgg-msd`` (a 5-layer 3x3 VGG-like CNN, 128 filters; 0.61 M params),
trained on MagnaTagATune (50 tags) or the Million Song Dataset (50 Last.fm tags). The weights are read with
:mod:`brainlike.models.zoo.tensorbundle` (``.index`` SSTable + ``.data`` file).

Front end (musicnn ``extractor.py``): 16 kHz; power mel spectrogram (n_fft 512, hop 256, periodic Hann, centred with
zero padding, 96 Slaney mel bands with Slaney norm, 0-8 kHz), rounded to float16, then ``log10(10000 x + 1)``;
input (time, 96).

Time axis: the musicnn networks are fully convolutional in time and brainlike runs each clip as one sequence
(the package cuts 3 s patches of 187 frames and drops the remainder; for a clip of 187 frames both agree). The VGG
networks need 187-frame patches: a clip is zero-padded (in the log domain: silence) to whole patches.

Layers. musicnn: ``timbral`` (the two 7 x 38 / 7 x 67 timbral convs, max-pooled over frequency, 408), ``temporal``
(the 128/64/32-frame temporal convs, 153), ``cnn1``-``cnn3`` (mid-end convs with residual sums, 64 each), one step
per 16 ms frame; ``max_pool``, ``mean_pool`` (753 each), ``penultimate`` (200) and ``taggram`` (50 sigmoid tag
probabilities), one step per clip. VGG: ``pool1``-``pool5`` (each conv after batch norm and max pooling, features =
channels x frequency bins, channel-major) and ``taggram``, one step per patch.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from brainlike.errors import ModelError
from brainlike.models.base import TorchAudioModel
from brainlike.models.zoo import init_module, register_zoo_model
from brainlike.models.zoo.tempocnn import keras_same_pad

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
PATCH = 187
BN_EPS = 1e-3
MUSICNN_LAYERS = ["timbral", "temporal", "cnn1", "cnn2", "cnn3", "max_pool", "mean_pool", "penultimate", "taggram"]
VGG_LAYERS = ["pool1", "pool2", "pool3", "pool4", "pool5", "taggram"]
VGG_POOLS = [((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4))]

MTT_LABELS = ["guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano",
              "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing", "vocals",
              "no vocals", "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop", "soft",
              "sitar", "solo", "man", "classic", "choir", "voice", "new age", "dance", "male voice", "female vocal",
              "beats", "harp", "cello", "no voice", "weird", "country", "metal", "female voice", "choral"]
MSD_LABELS = ["rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
              "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul",
              "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies",
              "blues", "hard rock", "ambient", "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop",
              "70s", "party", "country", "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal",
              "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy"]
"""Tag names in output order (musicnn ``configuration.py``)."""

CHECKPOINTS = {
    "musicnn-mtt": ("MTT_musicnn", "musicnn", "MagnaTagATune"),
    "musicnn-msd": ("MSD_musicnn", "musicnn", "Million Song Dataset"),
    "musicnn-vgg-mtt": ("MTT_vgg", "vgg", "MagnaTagATune"),
    "musicnn-vgg-msd": ("MSD_vgg", "vgg", "Million Song Dataset"),
}
"""brainlike name -> (checkpoint folder in the wheel, architecture, training data)."""

INDEX_SHA256 = {
    "musicnn-mtt": "da2d7bb670b2b31e9bc441bb1bd75eca31b5b061f963cc1f9630c1aff3238f57",
    "musicnn-msd": "87f3e0f3550c8d3bafc840374003e5c8af5eeb5ecf6add61af09a7822d3282c8",
    "musicnn-vgg-mtt": "4b0d3d2d02bbe0919c063c1fb74bfa9018ac3517e362d681b07444d4207a5f5f",
    "musicnn-vgg-msd": "50e499238457558bba9f34f8b84d4afb8279afd43520cdf0a4fdf805a49c9ca3",
}
"""sha256 of each checkpoint's ``.index`` file (checked before it is parsed)."""


def labels(name: str) -> list[str]:
    """Tag names of a musicnn model's ``taggram`` columns."""
    return MTT_LABELS if "mtt" in name else MSD_LABELS


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """96 Slaney mel filters (Slaney norm, 0-8 kHz) on the 512-point rfft grid at 16 kHz: (96, 257)."""
    from brainlike.models.zoo.whisper import mel_filters as slaney_filters

    return slaney_filters(SAMPLE_RATE, N_FFT, N_MELS)


def log_mel(waveforms: Any) -> Any:
    """(batch, samples) at 16 kHz -> musicnn input (batch, 1 + samples // 256, 96): log10(10000 x + 1) of float16 x."""
    import torch

    window = torch.hann_window(N_FFT, periodic=True, dtype=waveforms.dtype, device=waveforms.device)
    spec = torch.stft(waveforms, N_FFT, HOP, window=window, center=True, pad_mode="constant", return_complex=True)
    power = spec.real**2 + spec.imag**2
    mel = torch.matmul(torch.as_tensor(mel_filters(), device=waveforms.device), power).transpose(1, 2)
    return torch.log10(10000 * mel.half().float() + 1)


def _build_network(architecture: str, n_classes: int = 50) -> Any:
    """The musicnn or VGG network; module names are the TensorFlow variable scopes of the checkpoint."""
    import torch
    from torch import nn

    class Network(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tf = nn.ModuleDict()
            getattr(self, f"_init_{architecture}")()

        def _init_musicnn(self) -> None:
            self.tf["batch_normalization"] = nn.BatchNorm2d(1, eps=BN_EPS)
            front = [((7, 38), 204), ((7, 67), 204), ((128, 1), 51), ((64, 1), 51), ((32, 1), 51)]
            for i, (kernel, filters) in enumerate(front):
                self.tf[f"conv2d{'_' + str(i) if i else ''}"] = nn.Conv2d(1, filters, kernel)
                self.tf[f"batch_normalization_{i + 1}"] = nn.BatchNorm2d(filters, eps=BN_EPS)
            for i, width in enumerate((561, 64, 64)):
                self.tf[f"conv2d_{5 + i}"] = nn.Conv2d(1, 64, (7, width))
                self.tf[f"batch_normalization_{6 + i}"] = nn.BatchNorm2d(64, eps=BN_EPS)
            self.tf["batch_normalization_9"] = nn.BatchNorm1d(1506, eps=BN_EPS)
            self.tf["dense"] = nn.Linear(1506, 200)
            self.tf["batch_normalization_10"] = nn.BatchNorm1d(200, eps=BN_EPS)
            self.tf["dense_1"] = nn.Linear(200, n_classes)

        def _init_vgg(self) -> None:
            self.tf["batch_normalization"] = nn.BatchNorm2d(1, eps=BN_EPS)
            for i in range(1, 6):
                self.tf[f"{i}CNN"] = nn.Conv2d(1 if i == 1 else 128, 128, (3, 3))
                self.tf[f"batch_normalization_{i}"] = nn.BatchNorm2d(128, eps=BN_EPS)
            self.tf["dense"] = nn.Linear(256, n_classes)

        def block(self, conv: str, bn: str, x: torch.Tensor, time_pad: int | None) -> torch.Tensor:
            """conv (time padding: ``time_pad`` zeros each side, or Keras "same" if None) -> ReLU -> batch norm."""
            layer = self.tf[conv]
            if time_pad is None:
                x = keras_same_pad(x, layer.kernel_size)
            else:
                x = nn.functional.pad(x, (0, 0, time_pad, time_pad))
            return self.tf[bn](torch.relu(layer(x)))

        def _forward_musicnn(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            """(n, time, 96) -> layers; frame layers (n, time, F), clip layers (n, F)."""
            x = self.tf["batch_normalization"](x[:, None])
            front = []
            for i in range(5):
                suffix = "_" + str(i) if i else ""
                y = self.block(f"conv2d{suffix}", f"batch_normalization_{i + 1}", x, 3 if i < 2 else None)
                front.append(y.amax(dim=3).transpose(1, 2))  # max over frequency -> (n, time, filters)
            out = {"timbral": torch.cat(front[:2], dim=2), "temporal": torch.cat(front[2:], dim=2)}
            features = torch.cat(front, dim=2)  # (n, time, 561)
            mid, h = [features], features
            for i in range(3):
                y = self.block(f"conv2d_{5 + i}", f"batch_normalization_{6 + i}", h[:, None], 3)  # (n, 64, time, 1)
                y = y[..., 0].transpose(1, 2)
                h = y if i == 0 else y + h
                out[f"cnn{i + 1}"] = h
                mid.append(h)
            stacked = torch.cat(mid, dim=2)  # (n, time, 753)
            out["max_pool"], out["mean_pool"] = stacked.amax(dim=1), stacked.mean(dim=1)
            pooled = torch.stack([out["max_pool"], out["mean_pool"]], dim=2).flatten(1)  # TF order: max, mean per unit
            dense = torch.relu(self.tf["dense"](self.tf["batch_normalization_9"](pooled)))
            out["penultimate"] = self.tf["batch_normalization_10"](dense)
            out["taggram"] = torch.sigmoid(self.tf["dense_1"](out["penultimate"]))
            return out

        def _forward_vgg(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            """(n, 187, 96) patches -> pool1-pool5 (n, C, time, freq) and taggram (n, 50)."""
            x = self.tf["batch_normalization"](x[:, None])
            out = {}
            for i, (pool, stride) in enumerate(VGG_POOLS, start=1):
                x = self.block(f"{i}CNN", f"batch_normalization_{i}", x, None)
                x = out[f"pool{i}"] = nn.functional.max_pool2d(x, pool, stride)
            flat = x.permute(0, 2, 3, 1).flatten(1)  # TF flattens (time, freq, channels)
            out["taggram"] = torch.sigmoid(self.tf["dense"](flat))
            return out

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return getattr(self, f"_forward_{architecture}")(x)

    return Network()


def state_from_checkpoint(module: Any, tensors: dict[str, np.ndarray]) -> dict[str, Any]:
    """Map TensorFlow variables (``scope/kernel``, ``scope/gamma``...) onto the network; every shape is checked."""
    import torch

    state = {}
    for scope, layer in module.tf.items():
        if isinstance(layer, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            names = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
            values = {key: tensors[f"{scope}/{tf_name}"] for key, tf_name in names.items()}
            state[f"tf.{scope}.num_batches_tracked"] = torch.tensor(0)
        elif isinstance(layer, torch.nn.Conv2d):
            values = {"weight": tensors[f"{scope}/kernel"].transpose(3, 2, 0, 1), "bias": tensors[f"{scope}/bias"]}
        else:
            values = {"weight": tensors[f"{scope}/kernel"].T, "bias": tensors[f"{scope}/bias"]}
        for key, value in values.items():
            expected = tuple(getattr(layer, key).shape)
            if value.shape != expected:
                raise ModelError(f"checkpoint {scope}: {key} shape {value.shape} does not fit {expected}")
            state[f"tf.{scope}.{key}"] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    return state


def load_checkpoint(module: Any, name: str, data_path: Path, weights_id: str | None) -> dict[str, Any]:
    """State dict from a ``.data`` file and the ``.index`` beside it; when the data file is the pinned zoo file, the
    index must be the pinned one too (sha256 checked before it is parsed)."""
    from brainlike.models.zoo.store import WEIGHTS_SHA256, verify_file
    from brainlike.models.zoo.tensorbundle import read_tensorbundle

    index_path = Path(data_path).with_name(Path(data_path).name.replace("data-00000-of-00001", "index"))
    if weights_id is not None and weights_id == WEIGHTS_SHA256.get(name):
        verify_file(index_path, INDEX_SHA256[name])
    return state_from_checkpoint(module, read_tensorbundle(index_path, data_path))


class MusicnnModel(TorchAudioModel):
    """A musicnn checkpoint as a brainlike model (16 kHz).

    Parameters
    ----------
    name : str
        A key of :data:`CHECKPOINTS`.
    weights : path, optional
        The checkpoint's ``.data-00000-of-00001`` file (its ``.index`` beside it, named by replacing
        ``data-00000-of-00001`` with ``index``); None builds the random-init twin (seed 0).
    weights_id : str, optional
        sha256 of ``weights`` (computed when not given).
    """

    sample_rate = SAMPLE_RATE
    adapter_version = 1
    batch_size = 8

    def __init__(self, name: str, weights: Path | None = None, weights_id: str | None = None) -> None:
        from brainlike.models.zoo.store import sha256_file

        self.architecture = CHECKPOINTS[name][1]
        self.layers = list(MUSICNN_LAYERS if self.architecture == "musicnn" else VGG_LAYERS)
        self.preprocessing = {"mel": "slaney96-power-float16-log10(10000x+1)", "n_fft": N_FFT, "hop": HOP,
                              "patch": None if self.architecture == "musicnn" else PATCH}
        init_module(self, name, lambda: _build_network(self.architecture), weights, weights_id,
                    lambda path: load_checkpoint(self.module, name, path, weights_id), lambda: sha256_file(weights))
        frame = HOP / SAMPLE_RATE
        if self.architecture == "musicnn":
            self.hop_seconds = {layer: frame for layer in self.layers[:5]}
        else:
            self.hop_seconds = {f"pool{i}": frame * PATCH / steps for i, steps in enumerate((92, 46, 23, 11, 2), 1)}
            self.hop_seconds["taggram"] = frame * PATCH

    def forward_torch(self, waveforms: Any) -> Mapping[str, Any]:
        x = log_mel(waveforms)
        if self.architecture == "musicnn":
            return self.module(x)
        batch, frames = x.shape[:2]
        n_patches = max(1, -(-frames // PATCH))
        x = nn_pad_time(x, n_patches * PATCH - frames).reshape(batch * n_patches, PATCH, N_MELS)
        raw = self.module(x)
        out = {"taggram": raw["taggram"].reshape(batch, n_patches, -1)}
        for layer in self.layers[:-1]:
            value = raw[layer]
            _, channels, steps, bins = value.shape
            value = value.permute(0, 2, 1, 3).reshape(batch, n_patches * steps, channels * bins)
            out[layer] = value[:, : max(1, -(-frames * steps // PATCH))]
        return out


def nn_pad_time(x: Any, extra: int) -> Any:
    """Append ``extra`` zero frames to (batch, time, bins)."""
    import torch

    return torch.nn.functional.pad(x, (0, 0, 0, extra))


def _factory(name: str):
    def build(weights: Path | None = None, weights_id: str | None = None) -> MusicnnModel:
        return MusicnnModel(name, weights, weights_id)

    return build


for _name, (_folder, _arch, _data) in CHECKPOINTS.items():
    register_zoo_model(
        _name, _factory(_name),
        f"musicnn {'musically motivated CNN (0.79 M' if _arch == 'musicnn' else 'VGG-like CNN (0.61 M'} params), "
        f"{_data} tagger (50 tags), musicnn 0.1.0 TF checkpoint, 16 kHz",
        {"licence": "ISC", "distribution": "musicnn==0.1.0", "training_data": _data},
    )
