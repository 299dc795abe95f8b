"""The adapter shared by the paper's models: a torch module, its layer map and its provenance."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from brainlike.models.base import RANDOM_SEED, TorchAudioModel, seed_everything_for_init


class PaperModel(TorchAudioModel):
    """A :class:`TorchAudioModel` around one of the paper's architectures.

    Parameters
    ----------
    module : torch.nn.Module
        The network; ``module.layer_outputs(waveforms)`` returns ``{layer: (batch, time, features)}``.
    name : str
        Model spec string.
    sample_rate : int
        Rate the network expects (Hz).
    layers : list of str
        Ordered layer names (the paper's layer map).
    weights_id : str
        sha256 of the checkpoint, or ``random:<seed>``.
    preprocessing : dict
        Parameters that change the output (front end, chunking...).
    batch_size : int
        Clips per forward call.
    provenance : dict, optional
        Extra facts for :meth:`describe` (checkpoint path, configuration).
    """

    adapter_version = 1
    frame_rule: Callable[[str, int, int], np.ndarray] | None = None
    """``rule(layer, n_frames, n_samples)`` -> frame centres in input samples (set by each family); None places
    frames evenly over the input (the base default)."""

    def __init__(self, module: Any, *, name: str, sample_rate: int, layers: list[str], weights_id: str,
                 preprocessing: Mapping[str, Any], batch_size: int = 4,
                 provenance: Mapping[str, Any] | None = None) -> None:
        self.module = module.eval()
        self.name = name
        self.sample_rate = sample_rate
        self.layers = list(layers)
        self.weights_id = weights_id
        self.preprocessing = dict(preprocessing)
        self.batch_size = batch_size
        self.provenance = dict(provenance or {})

    def forward_torch(self, waveforms: Any) -> Mapping[str, Any]:
        outputs = self.module.layer_outputs(waveforms)
        return {layer: outputs[layer] for layer in self.layers}

    def forward_padded(self, waveforms: Any, sound: slice) -> Mapping[str, Any]:
        """Modules with a per-sound normalisation provide ``frame_outputs(waveforms, sound)``."""
        if not hasattr(self.module, "frame_outputs"):
            return self.forward(waveforms)
        import torch

        self.module.eval()
        with torch.inference_mode():
            batch = torch.from_numpy(np.ascontiguousarray(waveforms)).to(self.device)
            return self.module.frame_outputs(batch, sound)

    def frame_times(self, layer: str, n_frames: int, n_samples: int) -> np.ndarray:
        if self.frame_rule is None:
            return super().frame_times(layer, n_frames, n_samples)
        return np.asarray(self.frame_rule(layer, n_frames, n_samples), dtype=np.float64) / float(self.sample_rate)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(self.provenance)
        return info


def build_random(factory: Callable[[], Any]) -> tuple[Any, str]:
    """Build a module with the fixed random-twin seed; return it with its ``weights_id`` (``random:<seed>``)."""
    seed_everything_for_init(RANDOM_SEED)
    return factory(), f"random:{RANDOM_SEED}"
