"""The ``mae`` model family: masked-reconstruction checkpoints trained by ``brainlike pretrain``.

Specs: ``mae:<checkpoint>`` (a checkpoint folder, its ``model.safetensors``, or a training output folder, which means
its latest checkpoint) and ``mae@random`` (the ``small`` preset's architecture, random weights, seed 0). Layers are
``embedding``, ``block1`` ... ``blockN`` of the encoder, run on the whole clip without masking.
"""

from __future__ import annotations

from typing import Any, Mapping

from brainlike.models.base import RANDOM_SEED, FrameGrid, TorchAudioModel, seed_everything_for_init
from brainlike.models.registry import FamilyEntry, register_family


class MAEModel(TorchAudioModel):
    """A :class:`MaskedAudioModel` behind the model protocol (every encoder block a layer)."""

    adapter_version = 1
    batch_size = 16

    def __init__(self, module: Any, weights_id: str, source: str | None) -> None:
        config = module.config
        self.module = module.eval()
        self.name = f"mae:{source}" if source else "mae@random"
        self.sample_rate = config.sample_rate
        self.layers = list(module.layer_names)
        self.weights_id = weights_id
        self.preprocessing = {
            "n_fft": config.n_fft, "hop_length": config.hop_length, "n_mels": config.n_mels,
            "patch_frames": config.patch_frames, "mel_mean": config.mel_mean, "mel_std": config.mel_std,
            "pooling": "none",
        }

    def forward_torch(self, waveforms: Any) -> Mapping[str, Any]:
        outputs = self.module.layer_outputs(waveforms)
        return dict(zip(self.layers, outputs))

    def frame_times(self, layer: str, n_frames: int, n_samples: int) -> Any:
        """Centred STFT frames every ``hop_length``; token j = frames ``j P ... j P + P - 1`` (``P = patch_frames``)."""
        config = self.module.config
        grid = FrameGrid(0.0, config.hop_length).blocks(config.patch_frames, config.patch_frames)
        return grid.times(n_frames, self.sample_rate)


def load_mae(argument: str | None, random: bool) -> MAEModel:
    """Build ``mae:<argument>`` or, with ``random``, the random-init ``mae@random``."""
    from brainlike.pretrain.mae import MaskedAudioModel, load_checkpoint
    from brainlike.pretrain.presets import random_model_config

    if random or argument is None:
        seed_everything_for_init(RANDOM_SEED)
        return MAEModel(MaskedAudioModel(random_model_config()), f"random:{RANDOM_SEED}", None)
    module, _, sha256 = load_checkpoint(argument)
    return MAEModel(module, sha256, argument)


register_family(FamilyEntry(
    prefix="mae",
    load=load_mae,
    description="masked-reconstruction audio model trained with `brainlike pretrain` (log-mel, transformer or conv)",
    metadata={"paper": "Pepino et al. 2025 (sections on pretraining)", "weights": "local safetensors checkpoints"},
))
