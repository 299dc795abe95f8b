"""Training configurations: ``tiny`` (tests, a few CPU minutes), ``small`` (CPU experiments), ``base`` (GPU).

``base`` has Dasheng-base's shape: 16 kHz, 64 mel bins, 4-frame patches (25 tokens/s), a 12 x 768 encoder on the 25%
visible tokens of a 10 s clip (250 tokens), an 8 x 512 decoder, batch 128.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from brainlike.errors import PretrainError
from brainlike.models.nets.mae import SMALL_CONFIG, MAEConfig

__all__ = ["TrainConfig", "PRESETS", "preset", "override"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (with the corpus and the seed, it fixes the result).

    Attributes
    ----------
    model : MAEConfig
    steps, batch_size, clip_seconds
        Optimiser steps, clips per step and clip length.
    lr, min_lr, warmup_steps, weight_decay, betas, grad_clip
        AdamW with linear warm-up and cosine decay to ``min_lr``.
    checkpoint_every, log_every
        Checkpoint and loss-log intervals (steps); step 0 (the initial weights) is always saved.
    seed
        Seeds the initial weights, the data order, the crops and the masks.
    kmeans_clips, kmeans_iterations
        Clips sampled to fit the discrete-target codebook, and Lloyd iterations.
    """

    model: MAEConfig = field(default_factory=MAEConfig)
    steps: int = 1000
    batch_size: int = 32
    clip_seconds: float = 4.0
    lr: float = 5e-4
    min_lr: float = 5e-5
    warmup_steps: int = 100
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    checkpoint_every: int = 250
    log_every: int = 10
    seed: int = 0
    kmeans_clips: int = 64
    kmeans_iterations: int = 25

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.checkpoint_every < 1 or self.log_every < 1:
            raise PretrainError("steps, batch_size, checkpoint_every and log_every must be >= 1")
        if self.clip_seconds * self.model.token_rate < 2:
            raise PretrainError(f"clip_seconds={self.clip_seconds} gives fewer than 2 tokens")
        if not 0 <= self.min_lr <= self.lr:
            raise PretrainError("need 0 <= min_lr <= lr")

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.model.sample_rate))

    @property
    def tokens_per_clip(self) -> int:
        cfg = self.model
        return (self.clip_samples // cfg.hop_length + 1) // cfg.patch_frames

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["betas"] = list(self.betas)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        data = dict(data)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PretrainError(f"unknown training config keys {unknown}")
        data["model"] = MAEConfig.from_dict(data.get("model", {}))
        if "betas" in data:
            data["betas"] = tuple(data["betas"])
        return cls(**data)


PRESETS: dict[str, TrainConfig] = {
    "tiny": TrainConfig(
        model=MAEConfig(n_mels=32, patch_frames=4, depth=2, width=64, heads=2, decoder_depth=1, decoder_width=64,
                        decoder_heads=2, mask_ratio=0.75),
        steps=300, batch_size=16, clip_seconds=2.0, lr=2e-3, min_lr=2e-4, warmup_steps=20, checkpoint_every=100,
        log_every=10, kmeans_clips=32, kmeans_iterations=10),
    "small": TrainConfig(
        model=SMALL_CONFIG,
        steps=2000, batch_size=32, clip_seconds=4.0, lr=1e-3, min_lr=1e-4, warmup_steps=100, checkpoint_every=250,
        log_every=10),
    "base": TrainConfig(
        model=MAEConfig(n_mels=64, patch_frames=4, depth=12, width=768, heads=12, decoder_depth=8, decoder_width=512,
                        decoder_heads=16, mask_ratio=0.75),
        steps=100_000, batch_size=128, clip_seconds=10.0, lr=3e-4, min_lr=3e-5, warmup_steps=2000,
        checkpoint_every=1000, log_every=50, kmeans_clips=512),
}


def preset(name: str) -> TrainConfig:
    """The named training configuration (``tiny``, ``small``, ``base``)."""
    if name not in PRESETS:
        raise PretrainError(f"unknown training config {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]


def override(config: TrainConfig, model_changes: dict[str, Any], train_changes: dict[str, Any]) -> TrainConfig:
    """Apply non-None overrides to the model and training parts of a configuration."""
    model = replace(config.model, **{k: v for k, v in model_changes.items() if v is not None})
    return replace(config, model=model, **{k: v for k, v in train_changes.items() if v is not None})

