"""Helpers shared by the paper-model tests (signals, state-dict shapes, parameter perturbation)."""

from __future__ import annotations

import numpy as np


def make_signal(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """A deterministic test waveform: two tones, a chirp and noise, peak about 0.5."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    x = 0.2 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 2500 * t)
    x += 0.1 * np.sin(2 * np.pi * (200 + 1500 * t / max(seconds, 1e-9)) * t) + 0.05 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def shapes(module) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every state-dict entry."""
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def perturb_(module, seed: int = 1, scale: float = 0.05) -> None:
    """Add seeded noise to every parameter and set BatchNorm statistics to non-trivial values (in place)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
