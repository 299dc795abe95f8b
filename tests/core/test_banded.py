"""Banded ridge and variance partitioning against a literal scikit-learn loop, himalaya's MultipleKernelRidgeCV and
known answers (methods.md section 10)."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
from scipy.stats import pearsonr
from sklearn.linear_model import Ridge

from brainlike.align.backend import NumpyBackend, TorchBackend
from brainlike.align.banded import CandidateGrid, kernel_scale, run_banded
from brainlike.align.partition import PARTS, derive_parts, run_partition
from brainlike.align.ridge import gram_matrix
from brainlike.errors import ProtocolError


def _problem(seed: int, n: int = 40, widths=(5, 12), n_targets: int = 3):
    rng = np.random.default_rng(seed)
    folds = np.repeat(np.arange(5), n // 5)
    rng.shuffle(folds)
    bands = [rng.standard_normal((n, w)) * rng.uniform(0.5, 3.0) + rng.uniform(-2, 2, w) for w in widths]
    y = sum(x @ rng.standard_normal((x.shape[1], n_targets)) * s for x, s in zip(bands, (0.6, 0.3, 0.2)))
    y = y + rng.standard_normal((n, n_targets)) + 5.0
    return bands, y, folds


def _literal_banded(bands, y, folds, grids):
    """One scikit-learn Ridge(alpha=1) per candidate tuple, split and target on features scaled by
    1 / sqrt(alpha_b * scale_b) (the banded penalty), pooled inner max(r, 0)^2, first best in product order."""
    scales = [np.sum((x - x.mean(0)) ** 2) / len(x) for x in bands]
    tuples = [np.array(t) for t in np.array(np.meshgrid(*grids, indexing="ij")).reshape(len(grids), -1).T]

    def design(alphas):
        return [x / np.sqrt(a * s) for x, a, s in zip(bands, alphas, scales)]

    preds = np.zeros_like(y)
    terms = np.zeros((len(bands),) + y.shape)
    chosen = np.zeros((5, len(bands), y.shape[1]))
    for o, outer in enumerate(np.unique(folds)):
        tr, te = folds != outer, folds == outer
        for j in range(y.shape[1]):
            def inner(alphas):
                x = np.hstack(design(alphas))
                pooled, truth = [], []
                for f in np.unique(folds[tr]):
                    itr, ite = tr & (folds != f), tr & (folds == f)
                    pooled.append(Ridge(alpha=1.0).fit(x[itr], y[itr, j]).predict(x[ite]))
                    truth.append(y[ite, j])
                return max(pearsonr(np.concatenate(pooled), np.concatenate(truth))[0], 0) ** 2

            best = tuples[int(np.argmax([inner(t) for t in tuples]))]
            chosen[o, :, j] = best
            parts = design(best)
            model = Ridge(alpha=1.0).fit(np.hstack(parts)[tr], y[tr, j])
            preds[te, j] = model.predict(np.hstack(parts)[te])
            start = 0
            for b, x in enumerate(parts):
                coef = model.coef_[start:start + x.shape[1]]
                terms[b, te, j] = (x[te] - x[tr].mean(0)) @ coef
                start += x.shape[1]
    return preds, terms, chosen


@pytest.mark.parametrize("widths,grids", [
    ((5, 12), [np.array([0.01, 1.0, 100.0]), np.array([0.1, 10.0])]),
    ((4, 9, 15), [np.array([0.1, 10.0])] * 3),
])
def test_banded_equals_literal_sklearn_loop(widths, grids):
    bands, y, folds = _problem(3, widths=widths)
    result = run_banded([[gram_matrix(x)] for x in bands], [np.zeros((5, y.shape[1]), int)] * len(bands), y,
                        folds, NumpyBackend(), grids=grids)
    preds, terms, chosen = _literal_banded(bands, y, folds, grids)
    assert np.abs(result.predictions - preds).max() <= 1e-6
    assert np.abs(result.band_predictions - terms).max() <= 1e-6
    np.testing.assert_allclose(result.alphas, chosen)
    r = np.array([pearsonr(preds[:, j], y[:, j])[0] for j in range(y.shape[1])])
    assert np.abs(result.scores - np.maximum(r, 0) ** 2).max() <= 1e-9


def test_candidate_grid_maps_every_tuple_to_its_kernel():
    """(M_w + c I) / c equals sum_b K_b / alpha_b + I for every tuple of the product grid."""
    rng = np.random.default_rng(0)
    kernels = [(lambda a: a @ a.T)(rng.standard_normal((6, 4))) for _ in range(3)]
    grids = [np.array([1e-2, 0.3, 7.0]), np.array([0.05, 2.0]), np.array([1e-3, 1.0, 1e3])]
    grid = CandidateGrid.from_grids(grids)
    assert len(grid.tuples) == 18
    for t, alphas in enumerate(grid.tuples):
        w, c = grid.directions[grid.kernel[t]], grid.alpha[t]
        mixed = sum(wb * k for wb, k in zip(w, kernels))
        reference = sum(k / a for k, a in zip(kernels, alphas)) + np.eye(6)
        np.testing.assert_allclose((mixed + c * np.eye(6)) / c, reference, rtol=1e-12)
    regular = CandidateGrid.from_grids([10.0 ** np.arange(-2, 6)] * 2)  # log-regular grids share directions
    assert (len(regular.tuples), len(regular.directions)) == (64, 15)


def _himalaya_banded(bands, y, folds, grids):
    """himalaya MultipleKernelRidgeCV (random_search over the given kernel weights, correlation_score, intercept)
    called once per direction of the product grid with that direction's candidates; per target, the direction with
    the best cv_scores_ (its selection score: the mean over inner folds of Pearson r)."""
    from himalaya.kernel_ridge import MultipleKernelRidgeCV
    from himalaya.scoring import correlation_score

    grid = CandidateGrid.from_grids(grids)
    kernels = np.stack([gram_matrix(x) / kernel_scale(gram_matrix(x)) for x in bands])
    preds = np.zeros_like(y)
    chosen = np.zeros((5, len(bands), y.shape[1]))
    for o, outer in enumerate(np.unique(folds)):
        tr, te = np.flatnonzero(folds != outer), np.flatnonzero(folds == outer)
        inner = folds[tr]
        cv = [(np.flatnonzero(inner != f), np.flatnonzero(inner == f)) for f in np.unique(inner)]
        best = np.full(y.shape[1], -np.inf)
        for d, w in enumerate(grid.directions):
            gamma = w / w.sum()
            alphas = np.sort(grid.alpha[grid.kernel == d]) / w.sum()
            model = MultipleKernelRidgeCV(kernels="precomputed", solver="random_search", fit_intercept=True, cv=cv,
                                          solver_params=dict(n_iter=gamma[None], alphas=alphas, progress_bar=False,
                                                             score_func=correlation_score, local_alpha=True))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(kernels[:, tr][:, :, tr], y[tr])
            score = np.asarray(model.cv_scores_).reshape(-1)
            better = score > best
            best[better] = score[better]
            preds[np.ix_(te, np.flatnonzero(better))] = model.predict(kernels[:, te][:, :, tr])[:, better]
            chosen[o][:, better] = (1.0 / np.exp(np.asarray(model.deltas_)))[:, better]
    return preds, chosen


@pytest.mark.parametrize("widths", [(8, 20), (6, 10, 16)])
def test_banded_equals_himalaya_multiple_kernel_ridge_cv(widths):
    pytest.importorskip("himalaya")
    import himalaya.backend

    himalaya.backend.set_backend("numpy")
    bands, y, folds = _problem(11, n=80, widths=widths, n_targets=8)
    grids = [np.array([0.1, 1.0, 10.0])] * len(bands)
    ours = run_banded([[gram_matrix(x)] for x in bands], [np.zeros((5, y.shape[1]), int)] * len(bands), y, folds,
                      NumpyBackend(), grids=grids, inner_score="fold-mean-r")
    preds, chosen = _himalaya_banded(bands, y, folds, grids)
    np.testing.assert_allclose(ours.alphas, chosen, rtol=1e-9)
    assert np.abs(ours.predictions - preds).max() <= 1e-5


def test_split_r2_sums_to_r2_and_equals_himalaya_correlation_split():
    pytest.importorskip("himalaya")
    import himalaya.backend
    from himalaya.scoring import correlation_score_split

    himalaya.backend.set_backend("numpy")
    bands, y, folds = _problem(5, n=80, widths=(10, 20, 6), n_targets=6)
    result = run_banded([[gram_matrix(x)] for x in bands], [np.zeros((5, 6), int)] * 3, y, folds, NumpyBackend(),
                        grids=[np.array([0.1, 10.0])] * 3)
    means = result.predictions - result.band_predictions.sum(0)
    r_split = np.asarray(correlation_score_split(y, np.concatenate([result.band_predictions, means[None]])))
    np.testing.assert_allclose(r_split[:3] * result.r, np.where(result.r > 0, result.split_r2, 0), atol=1e-12)
    np.testing.assert_allclose(result.split_r2.sum(0) + result.split_r2_mean, result.scores, atol=1e-12)


@pytest.mark.numerics
def test_torch_float32_close_to_numpy_float64():
    bands, y, folds = _problem(2, n=80, widths=(30, 12), n_targets=10)
    args = ([[gram_matrix(x)] for x in bands], [np.zeros((5, 10), int)] * 2, y, folds)
    ref = run_banded(*args, NumpyBackend())
    got = run_banded(*args, TorchBackend("cpu", "float32"))
    assert np.abs(ref.scores - got.scores).max() < 1e-3


def test_engine_threads_are_restored_and_do_not_change_results():
    torch = pytest.importorskip("torch")
    from brainlike.align.backend import host_threads
    from brainlike.align.pepino2025 import run_pepino2025

    bands, y, folds = _problem(4, n=80, widths=(30, 12), n_targets=6)
    args = ([[gram_matrix(x)] for x in bands], [np.zeros((5, 6), int)] * 2, y, folds)
    before = torch.get_num_threads()
    one = run_banded(*args, NumpyBackend(), threads=1)
    assert torch.get_num_threads() == before
    untouched = run_banded(*args, NumpyBackend(), threads=None)
    np.testing.assert_allclose(one.predictions, untouched.predictions, rtol=0, atol=1e-10)
    single = run_pepino2025([gram_matrix(x) for x in bands], y, folds, TorchBackend("cpu", "float32"), threads=1)
    assert torch.get_num_threads() == before and single.scores.shape == (6,)
    with pytest.raises(RuntimeError), host_threads(TorchBackend("cpu", "float32"), 1):
        assert torch.get_num_threads() == 1
        raise RuntimeError("restored on errors too")
    assert torch.get_num_threads() == before


def _partition(model, control, y, folds, **kwargs):
    return run_partition([gram_matrix(x) for x in model], [[gram_matrix(x) for x in band] for band in control], y,
                         folds, **kwargs)


@pytest.fixture(scope="module")
def sounds():
    rng = np.random.default_rng(0)
    folds = np.repeat(np.arange(5), 33)
    rng.shuffle(folds)
    return rng, folds


def test_signal_in_the_model_only_is_unique_to_it(sounds):
    rng, folds = sounds
    a, b = rng.standard_normal((165, 60)), rng.standard_normal((165, 60))
    y = a @ rng.standard_normal((60, 20)) / 5 + rng.standard_normal((165, 20))
    parts = {k: np.median(v) for k, v in _partition([a], [[b]], y, folds).parts.items()}
    assert parts["model"] > 0.4 and parts["control"] < 0.02
    assert parts["unique_model"] == pytest.approx(parts["model"], abs=0.05)
    assert abs(parts["unique_control"]) < 0.03 and abs(parts["shared"]) < 0.03


def test_signal_in_a_shared_subspace_is_shared(sounds):
    rng, folds = sounds
    common = rng.standard_normal((165, 10))
    a = np.hstack([common, rng.standard_normal((165, 50))])
    b = np.hstack([common, rng.standard_normal((165, 50))])
    y = common @ rng.standard_normal((10, 20)) / 2 + rng.standard_normal((165, 20))
    result = _partition([a], [[b]], y, folds)
    parts = {k: np.median(v) for k, v in result.parts.items()}
    assert parts["joint"] > 0.4
    assert parts["shared"] == pytest.approx(parts["joint"], abs=0.06)
    assert abs(parts["unique_model"]) < 0.05 and abs(parts["unique_control"]) < 0.05


def test_shuffled_control_explains_nothing(sounds):
    """A control of the model's own features with the sounds shuffled carries nothing about the responses: the
    control's R2, its unique part and the shared part are ~0, and the model's unique part is its whole R2."""
    rng, folds = sounds
    a = rng.standard_normal((165, 60))
    y = a @ rng.standard_normal((60, 20)) / 5 + rng.standard_normal((165, 20))
    shuffled = a[rng.permutation(165)]
    parts = {k: np.median(v) for k, v in _partition([a], [[shuffled]], y, folds).parts.items()}
    assert parts["model"] > 0.4
    assert parts["control"] < 0.02 and abs(parts["unique_control"]) < 0.02 and abs(parts["shared"]) < 0.03
    assert parts["unique_model"] == pytest.approx(parts["model"], abs=0.03)


def test_control_equal_to_model_leaves_nothing_unique_and_warns(sounds, caplog):
    rng, folds = sounds
    a = rng.standard_normal((165, 60))
    y = a @ rng.standard_normal((60, 12)) / 5 + rng.standard_normal((165, 12))
    with caplog.at_level(logging.WARNING):
        result = _partition([a], [[2.0 * a]], y, folds)
    assert result.identical == [(0, 0)]
    assert "repeats the model" in caplog.text
    parts = result.parts  # per target, the joint's coarser fixed grid moves R2 by a few 0.01 at most
    for name in ("unique_model", "unique_control"):
        assert abs(np.median(parts[name])) < 0.01 and np.abs(parts[name]).max() < 0.05
    assert np.median(np.abs(parts["shared"] - parts["model"])) < 0.01


def test_three_bands_signal_in_two(sounds):
    rng, folds = sounds
    a, b, c = (rng.standard_normal((165, w)) for w in (50, 40, 30))
    y = a @ rng.standard_normal((50, 15)) / 4 + c @ rng.standard_normal((30, 15)) / 3 + rng.standard_normal((165, 15))
    result = _partition([a], [[b], [c]], y, folds)
    split = np.median(result.joint.split_r2, axis=1)
    assert split[0] > 0.1 and split[2] > 0.1 and abs(split[1]) < 0.02  # band b carries nothing
    parts = {k: np.median(v) for k, v in result.parts.items()}
    assert parts["unique_model"] > 0.1 and parts["unique_control"] > 0.1
    # independent signals: each fit alone treats the other's signal as noise, so the shared part (defined by the
    # identity) comes out negative here; it is reported as it is
    assert parts["shared"] < 0.02


def test_identities_hold_exactly(sounds):
    rng, folds = sounds
    a, b = rng.standard_normal((165, 30)), rng.standard_normal((165, 30))
    y = (a[:, :5] + b[:, :5]) @ rng.standard_normal((5, 8)) + rng.standard_normal((165, 8))
    result = _partition([a], [[b]], y, folds)
    p = result.parts
    assert set(p) == set(PARTS)
    np.testing.assert_array_equal(p["unique_model"], p["joint"] - p["control"])
    np.testing.assert_array_equal(p["unique_control"], p["joint"] - p["model"])
    np.testing.assert_array_equal(p["shared"], p["model"] + p["control"] - p["joint"])
    assert derive_parts({"model": 0.5, "control": 0.25, "joint": 0.625})["shared"] == 0.125


def test_bad_grids_are_refused():
    bands, y, folds = _problem(1)
    with pytest.raises(ProtocolError, match="positive"):
        run_banded([[gram_matrix(x)] for x in bands], [np.zeros((5, 3), int)] * 2, y, folds,
                   grids=[np.array([1.0, -1.0]), np.array([1.0])])


def test_bootstrap_counts_reproduce_resampled_correlations():
    """A resample as counts per stimulus (one matrix product) gives the R2 of the resampled rows themselves, with the
    same draws as stats.bootstrap_stimuli."""
    from brainlike.align.partition import bootstrap_parts, draw_counts, weighted_r2
    from brainlike.align.stats import bootstrap_stimuli

    rng = np.random.default_rng(4)
    y = rng.standard_normal((40, 5)) + 3.0
    p = y + rng.standard_normal((40, 5))
    counts = draw_counts(40, 30, seed=7)
    got = weighted_r2(counts, p, y)
    draws = np.random.default_rng(7)
    for b in range(30):
        idx = draws.integers(0, 40, 40)
        np.testing.assert_array_equal(counts[b], np.bincount(idx, minlength=40))
        ref = [max(pearsonr(p[idx, j], y[idx, j])[0], 0) ** 2 for j in range(5)]
        np.testing.assert_allclose(got[b], ref, atol=1e-12)
    # the aggregate CI of the model part equals bootstrap_stimuli's CI of the median R2
    ci = bootstrap_parts({"model": p, "control": y + 2 * rng.standard_normal((40, 5)), "joint": p}, y,
                         np.array(["s"] * 5), 200, seed=3)(np.ones(5, dtype=bool))
    median_r2 = lambda idx: float(np.median(weighted_r2(np.bincount(idx, minlength=40)[None].astype(float), p, y)))
    np.testing.assert_allclose(ci["model"], bootstrap_stimuli(median_r2, 40, n_boot=200, seed=3), atol=1e-12)
