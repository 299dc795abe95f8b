"""Voxel scale: tuckute2023 on synthetic voxels with known answers, bring-your-own files, statistics."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from sklearn.linear_model import RidgeCV

from brainlike.align.backend import NumpyBackend, TorchBackend
from brainlike.align.ridge import gram_matrix
from brainlike.align.stats import bootstrap_ci, paired_wilcoxon, permutation_null
from brainlike.align.tuckute2023 import LooSolver, run_tuckute2023, spearman_brown
from brainlike.data.custom import load_dataset_file, validate_file
from brainlike.errors import DataError
from near_ties import assert_picks_near_best


def test_spearman_brown_hand_worked():
    # r = 0.5 between single repetitions: reliability of the mean of 3 = 1.5 / 2 = 0.75
    assert spearman_brown(np.array(0.5)) == pytest.approx(0.75)
    assert spearman_brown(np.array(0.2), k=2) == pytest.approx(0.4 / 1.2)


def _ridgecv_choice_and_loo_errors(x, y, alphas):
    """scikit-learn's RidgeCV (alpha per target): chosen alpha index and LOO mean squared errors (targets, alphas)."""
    try:
        ridge = RidgeCV(alphas=alphas, alpha_per_target=True, store_cv_results=True).fit(x, y)
        errors = ridge.cv_results_
    except TypeError:  # scikit-learn < 1.5 names it cv_values
        ridge = RidgeCV(alphas=alphas, alpha_per_target=True, store_cv_values=True).fit(x, y)
        errors = ridge.cv_values_
    return np.searchsorted(alphas, ridge.alpha_), errors.mean(axis=0)


@pytest.mark.numerics
@pytest.mark.parametrize("width", [15, 120])
def test_loo_alpha_choice_equals_sklearn_ridgecv(width):
    """Alphas chosen by leave-one-out error, against scikit-learn's RidgeCV (float64, the same LOO/GCV errors).

    The float64 engine agrees with RidgeCV's errors to ~1e-10, the float32 torch engine to ~1e-6 (measured here:
    5e-11 and 4e-7), so each must pick an alpha whose RidgeCV error is within 1e-8 / 1e-5 of the best, and the same
    alpha as RidgeCV wherever the best wins by more. Width 120 > 83 stimuli has a near tie (target 6: alphas 1e-4 and
    1e-3 within 2e-7) that float32 resolves either way depending on the CPU's BLAS.
    """
    rng = np.random.default_rng(width)
    x = rng.standard_normal((83, width))
    y = x[:, :4] @ rng.standard_normal((4, 12)) + rng.standard_normal((83, 12)) * rng.uniform(0.3, 6, 12)
    alphas = 10.0 ** np.arange(-4, 5)
    reference, loo_mse = _ridgecv_choice_and_loo_errors(x, y, alphas)
    for backend, rtol in ((NumpyBackend(), 1e-8), (TorchBackend(), 1e-5)):
        chosen = LooSolver(gram_matrix(x), np.arange(83), backend).best_alphas(backend.asarray(y), alphas)
        assert np.isin(chosen, alphas).all()
        assert_picks_near_best(np.searchsorted(alphas, chosen), reference, loo_mse, rtol, max_near_ties=1)


def test_loo_alpha_ties_go_to_the_smaller_alpha():
    """Alphas far below every eigenvalue (least squares) or far above (the training mean) give identical LOO errors:
    the smallest alpha of the tie is chosen, also when the tie is not at the start of the grid."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 10))
    signal = x @ rng.standard_normal(10) + 0.1 * rng.standard_normal(40)  # best fitted by least squares
    noise = rng.standard_normal(40)  # best predicted by the training mean
    alphas = np.array([1e-30, 1e-20, 1e-12, 1.0, 1e20, 1e30, 1e40])
    solver = LooSolver(gram_matrix(x), np.arange(40), NumpyBackend())
    np.testing.assert_array_equal(solver.best_alphas(np.stack([signal, noise], 1), alphas), [1e-30, 1e20])


def _planted(seed=0, n_vox=60, reliability=0.6):
    rng = np.random.default_rng(seed)
    # model-like features: a decaying spectrum (as real activations have), signal in its top 10 directions
    left, _ = np.linalg.qr(rng.standard_normal((165, 165)))
    right, _ = np.linalg.qr(rng.standard_normal((300, 165)))
    features = (left * (100.0 / np.arange(1, 166))) @ right.T
    directions = left[:, :10]  # a 10-dimensional subspace of the features
    signal = directions @ rng.standard_normal((10, n_vox))
    noise_sd = np.sqrt(signal.var(0) * (1 - reliability) / reliability)
    responses = signal[:, :, None] + rng.standard_normal((165, n_vox, 3)) * noise_sd[None, :, None]
    return features, responses


def test_noise_corrected_r2_near_one_for_true_features_and_zero_when_shuffled():
    features, responses = _planted()
    other = np.random.default_rng(9).standard_normal((165, 300))
    grams = [gram_matrix(other), gram_matrix(features)]
    result = run_tuckute2023(grams, responses, NumpyBackend())
    per_voxel = result["values"].mean(0)
    assert abs(np.median(per_voxel) - 1.0) < 0.05
    assert np.all(result["layers"] == 1)
    shuffled = run_tuckute2023(grams, responses[np.random.default_rng(1).permutation(165)], NumpyBackend())
    assert np.median(shuffled["values"].mean(0)) < 0.05


def test_bring_your_own_netcdf_and_npz(tmp_path, data_root):
    from brainlike.data.stimuli import load_natsound165

    ids = load_natsound165(data_root).ids
    rng = np.random.default_rng(0)
    values = rng.standard_normal((165, 4, 2))
    array = xr.DataArray(values[::-1], dims=("stimulus", "target", "repetition"),
                         coords={"stimulus": ids[::-1], "target": list("abcd"),
                                 "subject": ("target", ["s1", "s1", "s2", "s2"])}, name="responses")
    nc = tmp_path / "mine.nc"
    array.to_dataset().to_netcdf(nc, engine="h5netcdf")
    dataset = load_dataset_file(nc).align_to(ids)
    np.testing.assert_allclose(dataset.responses.values, values)  # aligned by name, not position
    assert validate_file(nc, ids) == []
    npz = tmp_path / "mine.npz"
    np.savez(npz, responses=values, stimulus=np.array(ids), target=np.array(list("abcd")))
    assert load_dataset_file(npz).align_to(ids).n_targets == 4
    np.savez(tmp_path / "dup.npz", responses=values, stimulus=np.array(ids[:-1] + ids[:1]))
    with pytest.raises(DataError, match="duplicated stimulus IDs"):
        load_dataset_file(tmp_path / "dup.npz")
    bad = values.copy()
    bad[3, 1, :] = np.inf
    np.savez(tmp_path / "inf.npz", responses=bad, stimulus=np.array(ids))
    assert "Inf" in validate_file(tmp_path / "inf.npz", ids)[0]
    const = values.copy()
    const[:, 2, :] = 1.0
    np.savez(tmp_path / "const.npz", responses=const, stimulus=np.array(ids))
    assert "constant target" in validate_file(tmp_path / "const.npz", ids)[0]


def test_statistics_against_scipy_and_known_nulls():
    a = {f"s{i}": v for i, v in enumerate([0.5, 0.6, 0.55, 0.7, 0.65, 0.62, 0.58, 0.61])}
    b = {k: v - 0.05 for k, v in a.items()}
    b["s0"] += 0.02
    result = paired_wilcoxon(a, b)
    assert result["p"] < 0.05 and result["mean_difference"] > 0
    low, high = bootstrap_ci(np.array(list(a.values())))
    assert low < np.mean(list(a.values())) < high
    rng = np.random.default_rng(0)
    x = rng.standard_normal(100)
    y = x + 0.5 * rng.standard_normal(100)
    score = lambda order: np.corrcoef(x, y[order])[0, 1]
    null = permutation_null(score, 100, score(np.arange(100)), n_perm=200)
    assert null["p"] < 0.01 and abs(null["null_mean"]) < 0.05


def test_simulated_voxels_records_subjects_rois_ceilings_and_uncertainty(tmp_path, data_root):
    from brainlike.api import score
    from brainlike.data.simulate import write_simulation

    path = write_simulation(tmp_path / "sim.nc", n_voxels=240, n_subjects=4, reliability=0.6, seed=1)
    records = score("melspec", dataset=str(path), metric="all", progress=False, bootstrap=100, permutations=2)
    regression = [r for r in records if r["metric"] == "regression"]
    overall = next(r for r in regression if r["target"] == "all" and "subject" not in r and "roi" not in r)
    subjects = [r for r in regression if r.get("subject")]
    assert len(subjects) == 4 and overall["sem"] is not None
    assert overall["score"] == pytest.approx(np.mean([r["score"] for r in subjects]))
    assert overall["ci_low"] <= overall["score"] <= overall["ci_high"]
    assert overall["ci_subjects_low"] <= overall["score"] <= overall["ci_subjects_high"]
    assert overall["null_mean"] < overall["score"]
    rsa_rows = [r for r in records if r["metric"] == "rsa" and "subject" not in r and "roi" not in r]
    assert {r["selection"] for r in rsa_rows} == {"layer-max", "cv"}
    for r in rsa_rows:
        assert 0 < r["ceiling"] <= 1 and r["score_over_ceiling"] == pytest.approx(r["score"] / r["ceiling"])
    assert {r["roi"] for r in records if r.get("roi")} <= {"lowfreq", "highfreq", "envsounds", "pitch", "speech",
                                                         "music"}
