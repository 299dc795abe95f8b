"""tuckute2023 as the original code computes it: a literal per-voxel reference and one test per behaviour.

Behaviours (methods.md section 3): ties among huge alphas go to the largest (prediction = training mean, r = 0);
correlations with a constant per-repetition prediction are NaN and skipped by the median; the split-half layer
choice draws a new 5/5 assignment per layer and voxel and breaks ties at random, both medians clipped at 1; a
reliability median below -0.5 (Spearman-Brown's pole) is counted and warned about.
"""

from __future__ import annotations

import numpy as np
import pytest
import tuckute_literal as literal
import xarray as xr

from brainlike.align.backend import NumpyBackend, TorchBackend
from brainlike.align.ridge import gram_matrix
from brainlike.align.tuckute2023 import make_splits, run_tuckute2023, split_half_selection, split_scores


def _features(rng, n=165, p=10):
    return rng.standard_normal((n, p)) * np.linspace(1, 4, p)


def _fittable_removed(rng, x_train_centred: np.ndarray, offset: float = 3.0) -> np.ndarray:
    """Training values with nothing a ridge model of these features can fit: noise orthogonal to [1, X]."""
    basis = np.linalg.qr(np.column_stack([np.ones(len(x_train_centred)), x_train_centred]))[0]
    noise = rng.standard_normal(len(x_train_centred))
    return offset + noise - basis @ (basis.T @ noise)


def test_no_signal_voxel_tied_at_the_top_of_the_grid_scores_zero():
    # Training values: almost nothing the features fit, so every finite alpha has a larger leave-one-out error than
    # the intercept-only limit and the original (RidgeCV from 1e49 down) keeps 1e49. The test values follow the
    # direction the prediction takes as alpha grows (before it becomes the mean): keeping a merely large alpha
    # (1e16) would score r ~ 1 there; the original's training mean scores r = 0.
    rng = np.random.default_rng(0)
    x = _features(rng)
    mask = make_splits(165)[0]
    train, test = np.flatnonzero(mask), np.flatnonzero(~mask)
    xc = x[train] - x[train].mean(0)
    y = np.zeros(165)
    y[train] = _fittable_removed(rng, xc) + 0.05 * xc @ rng.standard_normal(10) / np.sqrt(len(train))
    direction = (x[test] - x[train].mean(0)) @ (xc.T @ (y[train] - y[train].mean()))
    y[test] = 3.0 + direction / direction.std() + 0.1 * rng.standard_normal(len(test))
    _, alpha, constant = literal.ridge_split(x, y, train, test)
    assert alpha == 1e49 and constant  # the original's pick
    for backend in (NumpyBackend(), TorchBackend()):
        raw, corrected = split_scores([gram_matrix(x)], y[:, None, None], mask, backend)
        assert raw[0, 0] == 0.0 and corrected[0, 0] == 0.0
    from brainlike.align.tuckute2023 import fit_split

    assert fit_split([gram_matrix(x)], y[:, None, None], mask, NumpyBackend()).alpha[0, 0] == 1e49


def test_constant_repetition_prediction_is_skipped_by_the_median():
    # Repetition 2 has nothing to fit on the training sounds: its model predicts the training mean, a constant,
    # whose correlations with the other repetitions' predictions are NaN and skipped (nanmedian), leaving the
    # (0, 1) pair alone in the prediction reliability.
    rng = np.random.default_rng(1)
    x = _features(rng)
    mask = make_splits(165)[0]
    train = np.flatnonzero(mask)
    reps = (x @ rng.standard_normal(10))[:, None] + 2 * rng.standard_normal((165, 3))
    reps[train, 2] = _fittable_removed(rng, x[train] - x[train].mean(0), offset=1.0)
    raw, corrected = split_scores([gram_matrix(x)], reps[:, None, :], mask, NumpyBackend())
    reference = literal.voxel_split(x, reps, mask)
    preds = [literal.ridge_split(x, reps[:, k], train, np.flatnonzero(~mask)) for k in range(3)]
    assert preds[2][2] and not preds[0][2] and not preds[1][2]  # only repetition 2's prediction is constant
    assert reference["rv_hat_median"] == pytest.approx(np.corrcoef(preds[0][0], preds[1][0])[0, 1], abs=1e-12)
    assert raw[0, 0] == pytest.approx(reference["raw"], abs=1e-9)
    assert corrected[0, 0] == pytest.approx(reference["corrected"], abs=1e-9)


def _scores_with_ties(rng, n_splits=10, n_layers=4, n_targets=60):
    scores = rng.uniform(0.0, 1.6, (n_splits, n_layers, n_targets))  # medians above 1 tie once clipped
    scores[:, 2, :20] = scores[:, 1, :20]  # identical layers: exact ties
    return scores


def test_split_half_draws_and_ties_follow_the_original():
    rng = np.random.default_rng(2)
    scores = _scores_with_ties(rng)
    values, layers = split_half_selection(scores)
    ref_values, ref_layers = literal.split_half(scores)
    np.testing.assert_array_equal(layers, ref_layers)
    np.testing.assert_array_equal(values, ref_values)
    assert values.max() <= 1.0
    # one assignment per iteration, layer and target: the original's np.random.seed(i) + shuffle, in that order
    from brainlike.align.tuckute2023 import split_half_assignments

    assignments = split_half_assignments(4, 60)
    np.random.seed(3)
    rows = np.zeros((4 * 60, 10))
    for row in rows:
        row[:] = np.tile([0, 1], reps=5)
        np.random.shuffle(row)
    np.testing.assert_array_equal(assignments[3].reshape(-1, 10), rows == 1)
    assert np.all(assignments.sum(-1) == 5)
    assert not np.array_equal(assignments[0, 0], assignments[0, 1])  # layers do not share the draw


def test_layer_ties_are_broken_as_the_original():
    # np.random.seed(0), then one np.random.choice over the tied layers for EVERY target in row order (a single
    # candidate draws too); half of the targets tie between layers 0, 2 and 3, the others have one best layer.
    from brainlike.align.tuckute2023 import _argmax_random_ties

    rng = np.random.default_rng(5)
    medians = rng.uniform(0.0, 0.9, (4, 50))
    medians[[0, 2, 3], ::2] = 1.0
    state = np.random.get_state()
    try:
        np.random.seed(0)
        expected = [np.random.choice(np.flatnonzero(column == column.max())) for column in medians.T]
    finally:
        np.random.set_state(state)
    chosen = _argmax_random_ties(medians)
    np.testing.assert_array_equal(chosen, expected)
    assert np.all(chosen[1::2] == medians[:, 1::2].argmax(0))
    assert set(chosen[::2]) == {0, 2, 3}  # not the first of the tied layers every time


def _pole_voxels(rng, n=165, n_voxels=4):
    x = _features(rng)
    signal = x @ rng.standard_normal(10)
    reps = signal[:, None, None] + 0.5 * signal.std() * rng.standard_normal((n, n_voxels, 3))
    # voxel 0: repetitions anti-correlated (pairs about -0.9, -0.6, +0.6: median below -0.5)
    reps[:, 0, 1] = -signal + 0.3 * signal.std() * rng.standard_normal(n)
    reps[:, 0, 2] = -0.7 * signal + 0.6 * signal.std() * rng.standard_normal(n)
    return x, reps


def test_spearman_brown_pole_is_kept_counted_and_warned():
    x, reps = _pole_voxels(np.random.default_rng(3))
    with pytest.warns(UserWarning, match="Spearman-Brown pole"):
        result = run_tuckute2023([gram_matrix(x)], reps, NumpyBackend())
    assert result["pole"][:, 0, 0].all() and not result["pole"][:, 0, 1:].any()
    masks = make_splits(165)
    for s in (0, 5):
        reference = literal.voxel_split(x, reps[:, 0, :], masks[s])
        assert reference["rv_median"] < -0.5 and 3 * reference["rv_median"] / (1 + 2 * reference["rv_median"]) > 1
        assert result["corrected"][s, 0, 0] == pytest.approx(reference["corrected"], abs=1e-9)
        assert result["corrected"][s, 0, 0] < result["raw"][s, 0, 0]  # shrunk, not inflated


def test_pole_count_reaches_records_and_detail(tmp_path, data_root):
    from brainlike.api import score
    from brainlike.data.stimuli import load_natsound165
    from brainlike.results import Results

    ids = load_natsound165(data_root).ids
    _, reps = _pole_voxels(np.random.default_rng(4))
    path = tmp_path / "pole.nc"
    data = xr.DataArray(reps, dims=("stimulus", "target", "repetition"),
                        coords={"stimulus": ids, "target": ["v0", "v1", "v2", "v3"]}, name="responses").to_dataset()
    data.attrs["kind"] = "voxels"
    data.to_netcdf(path, engine="h5netcdf")
    with pytest.warns(UserWarning, match="Spearman-Brown pole"):
        results = score("melspec", dataset=str(path), metric="regression", protocol="tuckute2023",
                        out=tmp_path / "out", progress=False)
    for loaded in (results, Results.load(tmp_path / "out")):
        overall = next(r for r in loaded if r["target"] == "all" and r["metric"] == "regression")
        assert overall["n_targets_sb_pole"] == 1
        cells = loaded.detail["sb_pole_cells"].squeeze()
        assert int(cells.sel(target="v0")) > 0 and int(cells.sel(target=["v1", "v2", "v3"]).sum()) == 0
        assert set(loaded.detail["alpha"].dims) >= {"split", "layer", "target"}


@pytest.mark.numerics
@pytest.mark.filterwarnings("ignore:tuckute2023")
@pytest.mark.parametrize("n_voxels", [8, pytest.param(60, marks=pytest.mark.slow)])
def test_batched_engine_equals_literal_implementation_on_simulated_voxels(data_root, n_voxels):
    from brainlike.api import extract
    from brainlike.data.simulate import simulate_voxels

    simulated = simulate_voxels(n_voxels=n_voxels, n_subjects=2, n_reps=3, seed=0)
    responses = simulated["responses"].values
    subjects = simulated["subject"].values.astype(str)
    activations = extract("melspec", progress=False)
    layers = [activations.arrays[name] for name in activations.layers]
    result = run_tuckute2023([gram_matrix(f) for f in layers], responses, NumpyBackend())
    reference = literal.run_literal(layers, responses, make_splits(165))
    # scikit-learn's float64 leave-one-out errors lose their meaning below about n eps max(s) (1e-8 here: they
    # jump 20-fold between neighbouring alphas); cells where one of its fits chose such an alpha are not compared.
    decidable = reference["alpha_min"] >= 1e-8
    assert decidable.mean() > 0.97
    finite = decidable & (reference["alpha"] < literal.INTERCEPT_ONLY_ALPHA)
    tied = reference["alpha"] >= literal.INTERCEPT_ONLY_ALPHA
    assert finite.sum() > 20 * n_voxels and tied.sum() >= 3  # both regimes are exercised
    np.testing.assert_allclose(result["corrected"][finite], reference["corrected"][finite], rtol=0, atol=1e-9)
    np.testing.assert_allclose(result["raw"][finite], reference["raw"][finite], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(result["alpha"][finite], reference["alpha"][finite])
    assert np.all(result["raw"][tied] == 0) and np.all(reference["raw"][tied] == 0)
    assert np.all(result["alpha"][tied] == 1e49)
    # aggregate over the voxels whose every cell is decidable (the selection draws depend on the voxel count)
    keep = decidable.all(axis=(0, 1))
    kept = run_tuckute2023([gram_matrix(f) for f in layers], responses[:, keep], NumpyBackend())
    values, chosen = literal.split_half(reference["corrected"][:, :, keep])
    np.testing.assert_array_equal(kept["layers"], chosen)
    assert literal.aggregate(kept["values"], subjects[keep]) == pytest.approx(
        literal.aggregate(values, subjects[keep]), abs=1e-9)
