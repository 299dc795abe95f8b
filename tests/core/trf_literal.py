"""A literal implementation of the trf protocol (methods.md section 9), the reference the engine is tested against.

Everything is done the slow, obvious way: scikit-learn ``StandardScaler`` and ``PCA(svd_solver="full")`` fitted on
the training sounds' response bins, an explicit lagged design matrix built by a loop over lags, and one
scikit-learn ``Ridge(fit_intercept=True)`` per target and alpha, on the same folds. Also imported by
``benchmarks/bench_trf.py``.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler


def lagged_design(layer: np.ndarray, sounds, index: np.ndarray, lags, scaler, pca) -> np.ndarray:
    """Rows (sound, response bin), columns [P(s, b - tau) for tau in lags] with P the PCA scores of every frame."""
    blocks = []
    for s in sounds:
        scores = scaler.transform(np.asarray(layer[s], dtype=np.float64))
        if pca is not None:
            scores = pca.transform(scores)
        blocks.append(np.hstack([np.stack([scores[index[j] - tau] for j in range(len(index))]) for tau in lags]))
    return np.vstack(blocks)


def fit_transform(layer: np.ndarray, train, index: np.ndarray, n_components: int):
    """StandardScaler and PCA (or None) fitted on the training sounds' response bins."""
    rows = np.vstack([np.asarray(layer[s][index], dtype=np.float64) for s in train])
    scaler = StandardScaler().fit(rows)
    pca = None
    if n_components:
        pca = PCA(n_components=min(n_components, rows.shape[1]), svd_solver="full").fit(scaler.transform(rows))
    return scaler, pca


def deviations(responses: np.ndarray, train, sounds) -> np.ndarray:
    """Responses of ``sounds`` minus the training sounds' mean time course, rows (sound, bin)."""
    course = responses[train].mean(axis=0)
    return (responses[sounds] - course).reshape(-1, responses.shape[2])


def ridge_predictions(x_train, y_train, x_test, alphas, targets) -> np.ndarray:
    """One Ridge per target and alpha: (n_alpha, n_test, n_targets)."""
    out = np.zeros((len(alphas), x_test.shape[0], len(targets)))
    for a, alpha in enumerate(alphas):
        for c, t in enumerate(targets):
            out[a, :, c] = Ridge(alpha=alpha, fit_intercept=True).fit(x_train, y_train[:, t]).predict(x_test)
    return out


def r2(pred: np.ndarray, obs: np.ndarray) -> float:
    r = np.corrcoef(pred, obs)[0, 1] if pred.std() > 0 and obs.std() > 0 else 0.0
    return max(r, 0.0) ** 2


def literal_trf(features, index, responses, folds, lags, n_components, alphas, targets=None, layers=None,
                timings=None, clock=time.perf_counter):
    """The protocol, literally.

    Parameters
    ----------
    features : list of ndarray (n_stimuli, n_frame_bins, n_features)
    index : ndarray (n_bins,)
        Frame bin of each response bin.
    responses : ndarray (n_stimuli, n_bins, n_targets)
    folds : ndarray (n_stimuli,)
    lags : sequence of int
    n_components : int
        PCA components (0 = off).
    alphas : sequence of float
    targets, layers : sequence of int, optional
        Subsets (default all).
    timings : dict, optional
        Filled with seconds spent in ``prepare`` (scaler, PCA, design) and ``ridge`` (Ridge fits).
    clock : callable
        What ``timings`` measure with (``time.process_time`` for CPU seconds).

    Returns
    -------
    dict
        ``scores`` (t,), ``layer_index`` and ``alpha`` (n_folds, t), ``inner_scores`` (n_folds, n_alpha,
        n_layers, t), ``predictions`` (n_stimuli, n_bins, t) of deviations.
    """
    timings = timings if timings is not None else {}
    timings.setdefault("prepare", 0.0)
    timings.setdefault("ridge", 0.0)
    targets = list(range(responses.shape[2])) if targets is None else list(targets)
    layers = list(range(len(features))) if layers is None else list(layers)
    fold_values = sorted(set(folds.tolist()))
    n_stimuli, n_bins, _ = responses.shape
    grid = np.zeros((len(fold_values), len(alphas), len(layers), len(targets)))
    layer_index = np.zeros((len(fold_values), len(targets)), dtype=int)
    chosen_alpha = np.zeros((len(fold_values), len(targets)))
    predictions = np.zeros((n_stimuli, n_bins, len(targets)))
    observed = np.zeros((n_stimuli, n_bins, len(targets)))

    def designs(layer, train, test):
        start = clock()
        scaler, pca = fit_transform(features[layer], train, index, n_components)
        x_train = lagged_design(features[layer], train, index, lags, scaler, pca)
        x_test = lagged_design(features[layer], test, index, lags, scaler, pca)
        timings["prepare"] += clock() - start
        return x_train, x_test

    for o, outer in enumerate(fold_values):
        outer_train = np.flatnonzero(folds != outer)
        test = np.flatnonzero(folds == outer)
        pooled_pred = [[] for _ in layers]
        pooled_obs = []
        for inner in fold_values:
            if inner == outer:
                continue
            train = np.flatnonzero((folds != outer) & (folds != inner))
            held = np.flatnonzero(folds == inner)
            y_train = deviations(responses, train, train)
            pooled_obs.append(deviations(responses, train, held)[:, targets])
            for li, layer in enumerate(layers):
                x_train, x_test = designs(layer, train, held)
                start = clock()
                pooled_pred[li].append(ridge_predictions(x_train, y_train, x_test, alphas, targets))
                timings["ridge"] += clock() - start
        obs = np.vstack(pooled_obs)
        for li in range(len(layers)):
            pred = np.concatenate(pooled_pred[li], axis=1)
            for a in range(len(alphas)):
                for c in range(len(targets)):
                    grid[o, a, li, c] = r2(pred[a, :, c], obs[:, c])
        y_train = deviations(responses, outer_train, outer_train)
        observed[test] = deviations(responses, outer_train, test)[:, targets].reshape(len(test), n_bins, -1)
        for c, t in enumerate(targets):
            flat = grid[o, :, :, c].reshape(-1)
            best = int(np.argmax(flat))
            a, li = divmod(best, len(layers))
            layer_index[o, c], chosen_alpha[o, c] = li, alphas[a]
            x_train, x_test = designs(layers[li], outer_train, test)
            start = clock()
            model = Ridge(alpha=alphas[a], fit_intercept=True).fit(x_train, y_train[:, t])
            predictions[test, :, c] = model.predict(x_test).reshape(len(test), n_bins)
            timings["ridge"] += clock() - start
    scores = np.array([r2(predictions[..., c].ravel(), observed[..., c].ravel()) for c in range(len(targets))])
    return {"scores": scores, "layer_index": layer_index, "alpha": chosen_alpha, "inner_scores": grid,
            "predictions": predictions}


def synthetic_problem(n_stimuli=40, n_features=12, n_layers=2, n_targets=3, n_pre=6, n_bins=20, n_post=4,
                      planted_lag=3, noise=0.5, seed=0, n_after=0, spectrum=None, width=None):
    """Frame-level features and responses made by a known lag filter plus noise.

    Features: a nearly constant vector for silence (before onset and after the sound) and smoothed Gaussian noise
    while the sound plays (the first ``n_bins - n_post`` response bins). Layer 0 drives the responses through
    weights on lag ``planted_lag`` only; the other layers are independent noise. Every response also carries a
    mean time course common to all sounds. Folds: ``n_stimuli / 5`` sounds each.

    Returns
    -------
    dict with ``features`` (list of (n_stimuli, n_pre + n_bins, n_features) float32), ``frame_times``, ``times``
    (rate 25 Hz), ``index``, ``responses`` (n_stimuli, n_bins, n_targets), ``signal`` (the noise-free part),
    ``folds``, ``rate``.
    """
    rng = np.random.default_rng(seed)
    rate = 25.0
    n_frames = n_pre + n_bins
    sounding = np.zeros(n_frames, dtype=bool)
    sounding[n_pre:n_pre + n_bins - n_post] = True
    sounding = np.append(sounding, np.zeros(n_after, dtype=bool))
    n_frames += n_after
    features = []
    for _ in range(n_layers):
        silence = rng.standard_normal(n_features)
        x = np.empty((n_stimuli, n_frames, n_features))
        state = rng.standard_normal((n_stimuli, n_features))
        for f in range(n_frames):
            state = 0.6 * state + 0.8 * rng.standard_normal((n_stimuli, n_features))
            x[:, f] = np.where(sounding[f], silence + state, silence + 0.01 * rng.standard_normal((n_stimuli, 1)))
        if width is not None:  # mix into ``width`` features; ``spectrum`` scales the n_features latent directions
            mixing = np.linalg.qr(rng.standard_normal((width, n_features)))[0]  # (width, n_features)
            x = x @ (mixing * np.asarray(spectrum)).T + 0.01 * rng.standard_normal((n_stimuli, n_frames, width))
        features.append(x.astype(np.float32))
    index = np.arange(n_pre, n_pre + n_bins)
    weights = rng.standard_normal((features[0].shape[2], n_targets))
    signal = np.einsum("sbf,ft->sbt", features[0][:, index - planted_lag].astype(np.float64), weights)
    course = np.sin(np.linspace(0, 3, n_bins))[:, None] * 2.0 * signal.std() * np.ones(n_targets)
    responses = signal + course + noise * signal.std() * rng.standard_normal(signal.shape)
    frame_times = (np.arange(n_frames) - n_pre) / rate
    return {"features": features, "frame_times": frame_times, "times": frame_times[index], "index": index,
            "responses": responses, "signal": signal, "folds": np.arange(n_stimuli) % 5, "rate": rate}
