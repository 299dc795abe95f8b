"""A slow, literal per-voxel implementation of the tuckute2023 protocol, the reference for brainlike's batched engine.

Written from methods.md section 3 (the original: gretatuckute/auditory_brain_dnn, AUD_main.py and utils.py for the
regression, plot_utils_AUD.py ``select_r2_test_CV_splits_nit`` for the layer choice): one scikit-learn ``RidgeCV``
per voxel, split and response set (the mean over repetitions, then each repetition), features and targets demeaned
with training means, alphas 10^49 down to 10^-50 (``RidgeCV`` keeps the first minimum of the leave-one-out error).

The original sets r = 0 when ``np.std`` of the test prediction is exactly 0 and gets NaN from ``np.corrcoef`` of a
constant per-repetition prediction. Where the leave-one-out errors of the intercept-only limit tie at the top of the
grid, the chosen alpha is huge and the prediction is the training mean up to rounding; whether ``np.std`` of that
rounding is exactly 0 depends on the last bits (in float64 it often is not). This implementation treats every fit
whose chosen alpha is at least ``INTERCEPT_ONLY_ALPHA`` as that constant prediction, and checks that it is one: its
range must be below 1e-6 of the range of the training targets.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.linear_model import RidgeCV

DESCENDING_ALPHAS = [10.0 ** k for k in range(49, -51, -1)]
INTERCEPT_ONLY_ALPHA = 1e15
FLOOR_DATA, FLOOR_PRED = 0.182, 0.183


def ridge_split(features: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray
                ) -> tuple[np.ndarray, float, bool]:
    """Test prediction, chosen alpha and whether the prediction is constant, for one target and split."""
    x_mean, y_mean = features[train].mean(0), y[train].mean()
    model = RidgeCV(alphas=DESCENDING_ALPHAS).fit(features[train] - x_mean, (y[train] - y_mean)[:, None])
    pred = model.predict(features[test] - x_mean).ravel()
    alpha = float(model.alpha_)
    constant = bool(np.std(pred) == 0 or alpha >= INTERCEPT_ONLY_ALPHA)
    if alpha >= INTERCEPT_ONLY_ALPHA:
        assert np.ptp(pred) <= 1e-6 * np.ptp(y[train]), "a huge alpha whose prediction still varies"
    return pred, alpha, constant


def _corrcoef(a: np.ndarray, b: np.ndarray, constant: bool = False) -> float:
    return np.nan if constant or np.std(a) == 0 or np.std(b) == 0 else float(np.corrcoef(a, b)[1, 0])


def voxel_split(features: np.ndarray, voxel: np.ndarray, train_mask: np.ndarray) -> dict:
    """R2, corrected R2 and chosen alpha of one voxel (n, reps) on one split (no correction for one repetition)."""
    train, test = np.flatnonzero(train_mask), np.flatnonzero(~train_mask)
    mean = voxel.mean(axis=1)
    pred, alpha, constant = ridge_split(features, mean, train, test)
    r = 0.0 if constant else _corrcoef(pred, mean[test] - mean[train].mean())
    r2 = max(r, 0.0) ** 2
    out = {"raw": r2, "corrected": r2, "alpha": alpha, "alpha_min": alpha}
    if voxel.shape[1] == 1:
        return out
    fits = [ridge_split(features, voxel[:, k], train, test) for k in range(voxel.shape[1])]
    pairs = [(0, 1), (1, 2), (0, 2)]
    rvs = [_corrcoef(voxel[train, i], voxel[train, j]) for i, j in pairs]
    rv_hats = [_corrcoef(fits[i][0], fits[j][0], fits[i][2] or fits[j][2]) for i, j in pairs]
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmedian of all-NaN pairs: NaN, as in the original
        rv_med, rv_hat_med = np.nanmedian(rvs), np.nanmedian(rv_hats)
        rv = np.nanmax([3 * rv_med / (1 + 2 * rv_med), FLOOR_DATA])
        rv_hat = np.nanmax([3 * rv_hat_med / (1 + 2 * rv_hat_med), FLOOR_PRED])
    out.update(corrected=r2 / (rv * rv_hat), rv_median=rv_med, rv_hat_median=rv_hat_med,
               alpha_min=min([alpha] + [fit[1] for fit in fits]))
    return out


def run_literal(layers: list[np.ndarray], responses: np.ndarray, masks: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Every split, layer and voxel: raw, corrected, alpha (of the model of the mean) and alpha_min (smallest alpha
    over the models of the mean and of each repetition), arrays (n_splits, n_layers, n_voxels)."""
    shape = (len(masks), len(layers), responses.shape[1])
    out = {key: np.zeros(shape) for key in ("raw", "corrected", "alpha", "alpha_min")}
    for s, mask in enumerate(masks):
        for layer, features in enumerate(layers):
            for v in range(responses.shape[1]):
                fit = voxel_split(np.asarray(features, dtype=np.float64), responses[:, v, :], mask)
                for key in out:
                    out[key][s, layer, v] = fit[key]
    return out


def split_half(scores: np.ndarray, n_iterations: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """select_r2_test_CV_splits_nit on scores (n_splits, n_layers, n_voxels): values and layers (n_it, n_voxels).

    Uses numpy's global legacy generator as the original does (its state is restored afterwards).
    """
    state = np.random.get_state()
    try:
        n_splits, n_layers, n_voxels = scores.shape
        values, layers = [], []
        for i in range(n_iterations):
            np.random.seed(i)
            selection, readout = [], []
            for layer in range(n_layers):
                ds_val = scores[:, layer, :].T  # voxels x splits
                m = np.zeros(ds_val.shape)
                for n_vox in range(m.shape[0]):
                    m[n_vox] = np.tile([0, 1], reps=n_splits // 2)
                    np.random.shuffle(m[n_vox])
                pick, held = ds_val.copy(), ds_val.copy()
                pick[m == 0] = np.nan
                held[m == 1] = np.nan
                selection.append(np.nanmedian(pick, axis=1).clip(max=1))
                readout.append(np.nanmedian(held, axis=1).clip(max=1))
            selection, readout = np.array(selection), np.array(readout)  # layers x voxels
            np.random.seed(0)
            best = np.array([np.random.choice(np.flatnonzero(column == column.max())) for column in selection.T])
            values.append(readout[best, np.arange(n_voxels)])
            layers.append(best)
        return np.array(values), np.array(layers)
    finally:
        np.random.set_state(state)


def aggregate(values: np.ndarray, subjects: np.ndarray) -> float:
    """Median over voxels within each subject and iteration, mean over iterations, mean over subjects."""
    return float(np.mean([np.median(values[:, subjects == s], axis=1).mean() for s in dict.fromkeys(subjects)]))
