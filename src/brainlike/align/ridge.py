"""Batched kernel ridge regression: every alpha from one eigendecomposition, every target at once.

All protocols work from per-layer Gram matrices ``G = X X^T`` (stimuli x stimuli, float64), so the feature width
enters once per layer. For a train/test split the centred kernels follow from ``G`` alone (centring with the
training means, as ``sklearn.linear_model.Ridge(fit_intercept=True)`` does), and with ``Kc = U diag(s) U^T``

    prediction(alpha) = mean(y_train) + Kt_c U diag(1 / (s + alpha)) U^T (y_train - mean(y_train))

which equals the primal ridge solution. Eigen-directions with ``s`` below ``n * eps * max(s)`` (numerically null:
the centring direction, or rank deficiency when features < stimuli) are dropped: their exact contribution to
predictions is zero, and keeping them would amplify rounding noise by 1/alpha for tiny alphas.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import ThreadpoolController

__all__ = ["NULL_TOLERANCE", "gram_matrix", "centered_kernels", "Spectrum", "split_spectrum", "shrinkage",
           "predict_alphas", "predict_per_target"]

NULL_TOLERANCE = 10.0
"""Eigenvalues below NULL_TOLERANCE * n * eps * max(s) are treated as exactly zero."""


def gram_matrix(features: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """``X X^T`` in float64 for features (n_stimuli, n_features), accumulated over feature chunks.

    Each feature is first centred over all stimuli: every centred split kernel derived from the Gram matrix is
    unchanged by a per-feature shift, and centring avoids cancellation for features with large offsets.
    """
    features = np.asarray(features)
    n = features.shape[0]
    gram = np.zeros((n, n), dtype=np.float64)
    for start in range(0, features.shape[1], chunk):
        block = np.asarray(features[:, start:start + chunk], dtype=np.float64)
        block = block - block.mean(axis=0)
        gram += block @ block.T
    return gram


def centered_kernels(gram: np.ndarray, train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Train kernel and test-by-train kernel of features centred with the training means.

    Parameters
    ----------
    gram : ndarray (n, n)
        ``X X^T`` of uncentred features.
    train, test : ndarray of int
        Row indices.

    Returns
    -------
    k_train : ndarray (n_train, n_train)
    k_test : ndarray (n_test, n_train)
    """
    g_tt = gram[np.ix_(train, train)]
    g_st = gram[np.ix_(test, train)]
    train_mean = g_tt.mean(axis=1)  # x_j . m for each training row j
    total = g_tt.mean()  # m . m
    k_train = g_tt - train_mean[:, None] - train_mean[None, :] + total
    k_test = g_st - g_st.mean(axis=1)[:, None] - train_mean[None, :] + total
    return k_train, k_test


@dataclass
class Spectrum:
    """Eigendecomposition of one split's centred train kernel, with its test projection.

    Attributes
    ----------
    vectors : ndarray (n_train, r)
        Eigenvectors with non-null eigenvalues.
    values : ndarray (r,)
        Their eigenvalues (float64).
    test_proj : ndarray (n_test, r)
        ``Kt_c @ vectors``.
    """

    vectors: np.ndarray
    values: np.ndarray
    test_proj: np.ndarray
    _train_operator: np.ndarray | None = field(default=None, repr=False)

    @property
    def train_operator(self) -> np.ndarray:
        """``V^T (I - 1 1^T / n_train)`` (r, n_train): projects uncentred training targets on the eigenvectors."""
        if self._train_operator is None:
            vt = self.vectors.T
            self._train_operator = vt - vt.mean(axis=1, keepdims=True)
        return self._train_operator


def eigh_small(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``numpy.linalg.eigh`` on one LAPACK thread: kernels are small (stimuli x stimuli), and a multithreaded
    LAPACK on a matrix this size mostly waits for its threads (10x slower on a loaded 2-core machine)."""
    global _THREADPOOLS
    if _THREADPOOLS is None:
        _THREADPOOLS = ThreadpoolController()
    with _THREADPOOLS.limit(limits=1, user_api="blas"):
        return np.linalg.eigh(matrix)


_THREADPOOLS: ThreadpoolController | None = None


def _kept(values: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = values > NULL_TOLERANCE * len(values) * np.finfo(np.float64).eps * max(values.max(), 0.0)
    return values[keep], vectors[:, keep]


def split_spectrum(gram: np.ndarray, train: np.ndarray, test: np.ndarray) -> Spectrum:
    """Eigendecomposition of the centred train kernel of one split (null directions dropped)."""
    k_train, k_test = centered_kernels(gram, train, test)
    values, vectors = _kept(*eigh_small(k_train))
    return Spectrum(vectors, values, k_test @ vectors)


class SpectrumCache:
    """Split spectra of a set of kernels, each training set decomposed once.

    The spectrum of a split depends on its training rows only (its test rows enter through ``test_proj``), and
    nested cross-validation meets the same training set twice: with folds {0..4}, the inner split that holds out
    fold s inside outer fold o trains on the same stimuli as the one holding out o inside s. The cache keys
    eigendecompositions by (kernel, training rows), which halves the inner decompositions; an entry is dropped
    after its expected number of uses, which bounds memory.

    Parameters
    ----------
    grams : sequence or mapping
        ``grams[key]`` is ``X X^T`` (n, n) of a kernel (layer, band, or a weighted sum of bands).
    """

    def __init__(self, grams) -> None:
        self.grams = grams
        self._eigen: dict[tuple, list] = {}

    def get(self, key, train: np.ndarray, test: np.ndarray, uses: int = 2) -> Spectrum:
        """Spectrum of kernel ``key`` for a split; ``uses``: how many times this training set will be asked for
        (2 for the inner splits of nested CV, 1 for an outer split: not kept)."""
        train = np.asarray(train, dtype=np.int64)
        k_train, k_test = centered_kernels(self.grams[key], train, test)
        cache_key = (key, train.tobytes())
        entry = self._eigen.get(cache_key)
        if entry is None:
            entry = [*_kept(*eigh_small(k_train)), uses]
            if uses > 1:
                self._eigen[cache_key] = entry
        else:
            entry[2] -= 1
            if entry[2] <= 1:
                del self._eigen[cache_key]
        values, vectors = entry[0], entry[1]
        return Spectrum(vectors, values, k_test @ vectors)


def shrinkage(values: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """``1 / (s + alpha)`` for every alpha (rows) and eigenvalue (columns), in float64."""
    return 1.0 / (values[None, :] + np.asarray(alphas, dtype=np.float64)[:, None])


def predict_alphas(spectrum: Spectrum, y_train, alphas: np.ndarray, backend, scale: np.ndarray | None = None):
    """Ridge predictions on the test rows for every alpha.

    With ``scale`` (one positive number per alpha) the shrinkage factors are multiplied by it in float64 before
    use: the predictions' deviations from the training mean then change by that constant per alpha, which leaves
    correlations unchanged (when the same scale is used for every pooled fold) and keeps alphas up to 1e50 in
    float32 range.

    Parameters
    ----------
    spectrum : Spectrum
    y_train : backend array (n_train, t)
        Training targets (uncentred).
    alphas : ndarray (n_alpha,)

    Returns
    -------
    backend array (n_alpha, n_test, t)
    """
    mean = y_train.mean(0)
    projected = backend.asarray(spectrum.vectors.T) @ (y_train - mean)  # (r, t)
    factors = shrinkage(spectrum.values, alphas)
    if scale is not None:
        factors = factors * np.asarray(scale, dtype=np.float64)[:, None]
    weights = spectrum.test_proj[None, :, :] * factors[:, None, :]  # (a, n_test, r)
    n_alpha, n_test, rank = weights.shape
    preds = backend.asarray(weights.reshape(n_alpha * n_test, rank)) @ projected
    return preds.reshape(n_alpha, n_test, -1) + mean


def predict_per_target(spectrum: Spectrum, y_train, alpha_per_target: np.ndarray, backend):
    """Ridge predictions (n_test, t) with one alpha per target (targets grouped by equal alpha)."""
    mean = y_train.mean(0)
    projected = backend.asarray(spectrum.vectors.T) @ (y_train - mean)  # (r, t)
    out = backend.zeros((spectrum.test_proj.shape[0], projected.shape[1]))
    for alpha in np.unique(alpha_per_target):
        cols = np.flatnonzero(alpha_per_target == alpha)
        weights = backend.asarray(spectrum.test_proj * shrinkage(spectrum.values, np.array([alpha]))[0])
        out[:, cols] = weights @ projected[:, cols]
    return out + mean
