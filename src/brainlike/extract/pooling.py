"""Pooling activations over time."""

from __future__ import annotations

import numpy as np

__all__ = ["POOLING", "time_average"]

POOLING = "mean"


def time_average(activations: np.ndarray) -> np.ndarray:
    """(batch, time, features) -> (batch, features): mean over time, accumulated in float64, returned as float32."""
    return activations.mean(axis=1, dtype=np.float64).astype(np.float32)
