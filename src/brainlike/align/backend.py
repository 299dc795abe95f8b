"""Array backends for the ridge engine: ``numpy`` (float64 reference) and ``torch`` (CPU or CUDA, float32 default).

The engine calls only the methods below, so one implementation of each protocol runs on every backend (the pattern
of himalaya's ``backend`` package, reduced to what brainlike needs). Spectral quantities that span many orders of
magnitude (ridge shrinkage factors for alphas 1e-50..1e49) are always computed in float64 on the host and cast
only once they are bounded.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

__all__ = ["NumpyBackend", "TorchBackend", "get_backend", "host_threads"]


class NumpyBackend:
    """float64 numpy reference backend."""

    name = "numpy"

    def __init__(self, dtype: str = "float64") -> None:
        self.dtype = np.dtype(dtype)
        self.device = "cpu"

    def asarray(self, x: Any) -> np.ndarray:
        return np.asarray(x, dtype=self.dtype)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def zeros(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.zeros(shape, dtype=self.dtype)

    def eigh(self, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values, vectors = np.linalg.eigh(np.asarray(k, dtype=np.float64))
        return values, vectors

    def column_pearson(self, a: Any, b: Any) -> np.ndarray:
        """Pearson r between matching columns of a and b (n, t); 0 where either column is constant."""
        return _column_pearson(a, b, np)


class TorchBackend:
    """torch backend (``cpu`` or ``cuda``), float32 by default."""

    name = "torch"

    def __init__(self, device: str = "cpu", dtype: str = "float32") -> None:
        import torch

        if device.startswith("cuda") and not torch.cuda.is_available():
            from brainlike.errors import BrainlikeError

            raise BrainlikeError("--device cuda requested but torch sees no CUDA device")
        self.torch = torch
        self.device = device
        self.dtype = getattr(torch, dtype)

    def asarray(self, x: Any):
        if isinstance(x, self.torch.Tensor):
            return x.to(device=self.device, dtype=self.dtype)
        return self.torch.as_tensor(np.asarray(x), dtype=self.dtype, device=self.device)

    def to_numpy(self, x: Any) -> np.ndarray:
        if isinstance(x, self.torch.Tensor):
            return x.detach().to("cpu").numpy()
        return np.asarray(x)

    def zeros(self, shape: tuple[int, ...]):
        return self.torch.zeros(shape, dtype=self.dtype, device=self.device)

    def eigh(self, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Kernels are small (n_train x n_train): decompose in float64 on the host for exact spectra.
        values, vectors = np.linalg.eigh(np.asarray(k, dtype=np.float64))
        return values, vectors

    def column_pearson(self, a: Any, b: Any):
        return _column_pearson(a, b, self.torch)


def _column_pearson(a, b, xp):
    a = a - a.mean(0, keepdims=True) if xp is np else a - a.mean(0, keepdim=True)
    b = b - b.mean(0, keepdims=True) if xp is np else b - b.mean(0, keepdim=True)
    num = (a * b).sum(0)
    den = xp.sqrt((a * a).sum(0) * (b * b).sum(0))
    if xp is np:
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
        return r
    return xp.where(den > 0, num / xp.where(den > 0, den, xp.ones_like(den)), xp.zeros_like(den))


def get_backend(device: str = "cpu", backend: str | None = None, dtype: str | None = None):
    """Pick a backend: ``numpy`` (float64) or ``torch`` on ``device`` (float32 unless ``dtype`` says otherwise).

    The default is numpy float64 on ``cpu`` and torch float32 on ``cuda``.
    """
    if backend is None:
        backend = "numpy" if device == "cpu" else "torch"
    if backend == "numpy":
        if device != "cpu":
            raise ValueError("the numpy backend runs on cpu only")
        return NumpyBackend(dtype or "float64")
    if backend == "torch":
        return TorchBackend(device, dtype or "float32")
    raise ValueError(f"unknown backend {backend!r} (numpy or torch)")


@contextmanager
def host_threads(backend, threads: int | None = 1) -> Iterator[None]:
    """Run the host's BLAS (numpy) and, on a CPU torch backend, torch's intra-op pool on ``threads`` threads inside
    the block; restored afterwards (``None``: unchanged).

    The ridge engines make thousands of small calls (eigendecompositions and products of stimuli x stimuli
    matrices, products over a few hundred targets): a multithreaded call that size mostly waits for its threads, and
    on a loaded 2-core machine each parallel region can wait a scheduler time slice for a descheduled thread
    (measured 3-10x slower than one thread).
    """
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    torch = getattr(backend, "torch", None)
    on_cpu = torch is not None and str(getattr(backend, "device", "cpu")).startswith("cpu")
    previous = torch.get_num_threads() if on_cpu else None
    try:
        if on_cpu:
            torch.set_num_threads(threads)
        with threadpool_limits(limits=threads, user_api="blas"):
            yield
    finally:
        if on_cpu:
            torch.set_num_threads(previous)

