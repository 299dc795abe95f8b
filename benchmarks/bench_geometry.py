"""Layer x layer angular Procrustes matrix benchmark (issue 16, "Figures to reach").

Two 13-layer, 768-wide models on 165 sounds (random features with decaying spectra and offsets, seeded), timed in ONE
run:

* ``brainlike``: :func:`brainlike.align.geometry.procrustes_matrix`: each layer reduced once to 165 x r coordinates
  from its centred Gram matrix, all 169 cross matrices as one batched product, one batched SVD (values only);
* ``naive``: a loop over the 169 layer pairs, each centring both layers and taking the full SVD of the 768 x 768
  cross-covariance X^T Y (``numpy.linalg.svd``), then arccos(||X^T Y||_* / (||X|| ||Y||)).

Prints both times (CPU seconds of this process and wall seconds; best of ``--repeats`` for brainlike), their ratio,
and the largest difference between the two matrices. Also times the other metrics of ``brainlike similarity`` on
the same problem. Run it single-threaded on a shared machine (``OMP_NUM_THREADS=1``) for stable figures.

    OMP_NUM_THREADS=1 python benchmarks/bench_geometry.py [--layers 13] [--width 768] [--sounds 165] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np


def timed(fn: Callable[[], object]) -> tuple[object, float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return result, time.process_time() - cpu, time.perf_counter() - wall


def model(rng: np.random.Generator, layers: int, sounds: int, width: int) -> list[np.ndarray]:
    """Layers of one random model, float32 like extracted activations (a decaying spectrum, per-feature offsets)."""
    out = []
    for layer in range(layers):
        decay = np.exp(-np.arange(width) / (20 + 10 * layer))
        out.append((rng.standard_normal((sounds, width)) * decay + rng.normal(0, 2, width)).astype(np.float32))
    return out


def naive(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    out = np.zeros((len(a), len(b)))
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            xc = np.asarray(x, np.float64) - x.mean(0)
            yc = np.asarray(y, np.float64) - y.mean(0)
            singular = np.linalg.svd(xc.T @ yc, compute_uv=True)[1]
            cosine = singular.sum() / (np.linalg.norm(xc) * np.linalg.norm(yc))
            out[i, j] = np.arccos(np.clip(cosine, -1, 1))
    return out


def main() -> None:
    from brainlike.align.geometry import cka_matrix, procrustes_cv_matrix, procrustes_matrix, rsa_matrix

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=13)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--sounds", type=int, default=165)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    a, b = model(rng, args.layers, args.sounds, args.width), model(rng, args.layers, args.sounds, args.width)
    runs = [timed(lambda: procrustes_matrix(a, b)) for _ in range(args.repeats)]
    fast, cpu, wall = min(runs, key=lambda r: r[1])
    slow, slow_cpu, slow_wall = timed(lambda: naive(a, b))
    pairs = args.layers ** 2
    print(f"{args.layers} x {args.layers} Procrustes matrix, {args.sounds} sounds, width {args.width}")
    print(f"brainlike (best of {args.repeats}): {cpu:.3f} s CPU, {wall:.3f} s wall")
    print(f"naive loop over {pairs} pairs, full SVDs: {slow_cpu:.2f} s CPU, {slow_wall:.2f} s wall")
    print(f"ratio (CPU): {slow_cpu / cpu:.1f}x; max |difference|: {np.abs(fast - slow).max():.2e} rad")
    folds = np.arange(args.sounds) % 5
    for name, fn in (("cka", lambda: cka_matrix(a, b)), ("cka-debiased", lambda: cka_matrix(a, b, debiased=True)),
                     ("procrustes whiten 0.5", lambda: procrustes_matrix(a, b, 0.5)),
                     ("procrustes-cv", lambda: procrustes_cv_matrix(a, b, folds)), ("rsa", lambda: rsa_matrix(a, b))):
        _, c, w = timed(fn)
        print(f"{name}: {c:.3f} s CPU, {w:.3f} s wall")


if __name__ == "__main__":
    main()
