"""The model protocol every audio model follows.

A model has a ``name``, a ``sample_rate`` (Hz), ordered ``layers`` and is called on a float32 waveform batch
``(batch, samples)`` at that rate, returning ``{layer: (batch, time, features)}``. Calls are deterministic, in eval
mode and without gradients. ``weights_id`` (the sha256 of the weights, or ``random:<seed>``), ``adapter_version``
(bumped whenever the adapter's output changes) and ``preprocessing`` (parameters that change the output) form part
of every cache key.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Mapping

import numpy as np

from brainlike.errors import ModelError

__all__ = ["AudioModel", "TorchAudioModel", "seed_everything_for_init", "RANDOM_SEED"]


class AudioModel(ABC):
    """Base class for brainlike models.

    Subclasses set the class or instance attributes below and implement :meth:`forward`.

    Attributes
    ----------
    name : str
        The model spec string this instance was built from (e.g. ``"melspec"``, ``"whisper-base@random"``).
    sample_rate : int
        Sample rate (Hz) the model expects its waveforms at.
    layers : list of str
        Ordered, unique layer names, from input side to output side.
    adapter_version : int
        Bumped whenever the adapter's output for the same weights changes (part of the cache key).
    weights_id : str
        sha256 of the weights file(s), ``"random:<seed>"`` for random-init models, ``"none"`` for parameter-free ones.
    preprocessing : dict
        JSON-serialisable parameters that change the output (hop, padding...), part of the cache key.
    batch_size : int
        How many clips the extractor should pass per call (a memory/speed hint).
    """

    name: str = ""
    sample_rate: int = 16000
    layers: list[str] = []
    adapter_version: int = 1
    weights_id: str = "none"
    preprocessing: dict[str, Any] = {}
    batch_size: int = 8

    @abstractmethod
    def forward(self, waveforms: np.ndarray) -> Mapping[str, Any]:
        """Compute activations.

        Parameters
        ----------
        waveforms : ndarray, shape (batch, samples), float32
            Waveforms at ``self.sample_rate``.

        Returns
        -------
        dict
            ``{layer: array (batch, time, features)}`` (numpy arrays or torch tensors) for every name in ``layers``.
        """

    def __call__(self, waveforms: np.ndarray) -> dict[str, np.ndarray]:
        waveforms = np.asarray(waveforms, dtype=np.float32)
        if waveforms.ndim == 1:
            waveforms = waveforms[None, :]
        if waveforms.ndim != 2:
            raise ModelError(f"{self.name}: waveforms must be (batch, samples), got shape {waveforms.shape}")
        outputs = self.forward(waveforms)
        activations: dict[str, np.ndarray] = {}
        for layer in self.layers:
            if layer not in outputs:
                raise ModelError(f"{self.name}: forward() did not return layer {layer!r}")
            activations[layer] = _to_numpy(outputs[layer], self.name, layer, len(waveforms))
        return activations

    def describe(self) -> dict[str, Any]:
        """Provenance of this model (name, rate, layers, versions, weights)."""
        return {
            "name": self.name,
            "class": type(self).__name__,
            "sample_rate": self.sample_rate,
            "layers": list(self.layers),
            "adapter_version": self.adapter_version,
            "weights_id": self.weights_id,
            "preprocessing": dict(self.preprocessing),
        }


def _to_numpy(value: Any, model: str, layer: str, batch: int) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().to("cpu").float().numpy()
    array = np.asarray(value, dtype=np.float32)
    if array.ndim == 2:  # (batch, features): a single time step
        array = array[:, None, :]
    if array.ndim != 3 or array.shape[0] != batch:
        raise ModelError(
            f"{model}: layer {layer!r} has shape {array.shape}; expected (batch={batch}, time, features)"
        )
    return array


class TorchAudioModel(AudioModel):
    """An :class:`AudioModel` around a ``torch.nn.Module``: eval mode, no gradients, chosen device.

    Subclasses set ``self.module`` and implement :meth:`forward_torch` taking a float32 tensor (batch, samples)
    on ``self.device`` and returning ``{layer: tensor (batch, time, features)}``.
    """

    device: str = "cpu"

    def to(self, device: str) -> "TorchAudioModel":
        self.device = device
        self.module.to(device)
        return self

    @abstractmethod
    def forward_torch(self, waveforms: Any) -> Mapping[str, Any]:
        """Torch forward pass on (batch, samples) -> {layer: (batch, time, features)}."""

    def forward(self, waveforms: np.ndarray) -> Mapping[str, Any]:
        import torch

        self.module.eval()
        with torch.inference_mode():
            batch = torch.from_numpy(np.ascontiguousarray(waveforms)).to(self.device)
            return self.forward_torch(batch)


def seed_everything_for_init(seed: int) -> Any:
    """Return a ``torch.Generator`` seeded for random-init twins and set torch's global seed (used by ``nn`` init)."""
    import torch

    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


RANDOM_SEED = 0
"""Seed used for every ``NAME@random`` twin (recorded as ``weights_id = "random:0"``)."""
