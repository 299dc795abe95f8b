"""Simulated pairs of models for the calibration of ``brainlike compare`` (vectorised over simulations).

Each simulation draws a latent signal z over n sounds (unit variance) and a response y = z + noise (unit variance).

* :func:`simulate_predictions`: each model's out-of-fold predictions are c z + e with its own independent noise e
  (unit variance): two models with independent features that carry the signal with strength c. Equal c is the
  null the prediction-swap test addresses (the two sets of predictions are equally accurate); the population R2
  of a model is c^2 / (2 (c^2 + 1)).
* :func:`simulate_refits`: each model has p features X = z a^T + E (a loading of norm ``loading``, E independent
  noise) and its out-of-fold predictions come from ridge regressions refitted on each of 5 folds (fixed alpha,
  all simulations solved as one batch): the fitted weights vary from model to model, a variability that swapping
  predictions per sound cannot see (``benchmarks/compare_calibration.py`` measures what it does to the test).
"""

from __future__ import annotations

import numpy as np

N_SOUNDS, N_FEATURES, ALPHA = 165, 8, 10.0
NOISE = 1.0
"""Standard deviation of the response noise (the latent signal has unit variance)."""


def out_of_fold(features: np.ndarray, y: np.ndarray, folds: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Ridge out-of-fold predictions for a batch: features (S, n, p), y (S, n) -> (S, n)."""
    predictions = np.zeros_like(y)
    eye = np.eye(features.shape[2])
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        x_mean = features[:, train].mean(axis=1, keepdims=True)
        y_mean = y[:, train].mean(axis=1, keepdims=True)
        xt = features[:, train] - x_mean
        gram = np.einsum("snp,snq->spq", xt, xt) + alpha * eye
        rhs = np.einsum("snp,sn->sp", xt, y[:, train] - y_mean)
        beta = np.linalg.solve(gram, rhs[..., None])[..., 0]
        predictions[:, test] = np.einsum("snp,sp->sn", features[:, test] - x_mean, beta) + y_mean
    return predictions


def simulate_predictions(n_sims: int, signal_a: float, signal_b: float, seed: int = 0,
                         n_sounds: int = N_SOUNDS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Responses and two models' predictions c z + e: three (n_sims, n_sounds) arrays."""
    rng = np.random.default_rng(seed)
    signal = rng.standard_normal((n_sims, n_sounds))
    y = signal + NOISE * rng.standard_normal((n_sims, n_sounds))
    pred_a = signal_a * signal + rng.standard_normal((n_sims, n_sounds))
    pred_b = signal_b * signal + rng.standard_normal((n_sims, n_sounds))
    return y, pred_a, pred_b


def population_r2(strength: float) -> float:
    """R2 of predictions c z + e of y = z + noise over infinitely many sounds."""
    return strength ** 2 / ((1 + NOISE ** 2) * (strength ** 2 + 1))


def simulate_refits(n_sims: int, loading_a: float, loading_b: float, seed: int = 0, n_sounds: int = N_SOUNDS,
                   n_features: int = N_FEATURES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Responses and both models' out-of-fold predictions: three (n_sims, n_sounds) arrays."""
    rng = np.random.default_rng(seed)
    folds = np.arange(n_sounds) % 5
    signal = rng.standard_normal((n_sims, n_sounds))
    y = signal + NOISE * rng.standard_normal((n_sims, n_sounds))
    out = []
    for loading in (loading_a, loading_b):
        direction = rng.standard_normal((n_sims, n_features))
        direction *= loading / np.linalg.norm(direction, axis=1, keepdims=True)
        features = signal[:, :, None] * direction[:, None, :] + rng.standard_normal((n_sims, n_sounds, n_features))
        out.append(out_of_fold(features, y, folds))
    return y, out[0], out[1]


def p_values(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, n_permutations: int = 1000,
             seed: int = 0) -> np.ndarray:
    """The compare permutation p-value of each simulation (one target each; fresh swap masks per simulation)."""
    from brainlike.align.compare import Draws, compare_pair

    out = np.zeros(len(y))
    for s in range(len(y)):
        draws = Draws.make(y.shape[1], 1, 0, n_permutations, seed + s)
        out[s] = compare_pair(y[s][:, None], pred_a[s][:, None], pred_b[s][:, None], np.array(["all"]),
                              draws).p[0]
    return out
