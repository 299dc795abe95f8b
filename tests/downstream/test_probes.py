"""Probes: known answers on synthetic data (separable -> ~100 %, shuffled labels -> chance, informative layer)."""

from __future__ import annotations

import numpy as np
import pytest

from brainlike.downstream import probes
from brainlike.downstream.tasks import fold_split

N_CLASSES = 4


def _blobs(n_per_class: int = 60, dim: int = 20, separation: float = 6.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(N_CLASSES, dim)) * separation
    y = np.repeat(np.arange(N_CLASSES), n_per_class)
    x = centres[y] + rng.normal(size=(len(y), dim))
    folds = np.tile(np.arange(1, 6), len(y) // 5 + 1)[: len(y)].astype(str)
    return x.astype(np.float32), y, folds


def _splits(folds):
    order = [str(i) for i in range(1, 6)]
    return [fold_split(folds, order, i) for i in range(5)]


def test_linear_probe_separable_data_is_near_perfect():
    x, y, folds = _blobs()
    noise = np.random.default_rng(1).normal(size=(len(y), 50)).astype(np.float32)
    scores = [probes.accuracy(probes.linear_probe([x, noise], y, s).test_pred, y[s.test]) for s in _splits(folds)]
    assert np.mean(scores) >= 0.98


def test_linear_probe_shuffled_labels_is_at_chance():
    x, y, folds = _blobs(n_per_class=100)
    y_shuffled = np.random.default_rng(2).permutation(y)
    scores = [probes.accuracy(probes.linear_probe([x], y_shuffled, s).test_pred, y_shuffled[s.test])
              for s in _splits(folds)]
    assert abs(np.mean(scores) - 1 / N_CLASSES) < 0.08


def test_linear_probe_picks_c_on_validation_and_reports_it():
    x, y, folds = _blobs()
    result = probes.linear_probe([x], y, _splits(folds)[0])
    assert result.params["C"] in probes.LINEAR_CS
    assert result.valid_score >= 0.98
    assert result.params["n_features"] == x.shape[1]  # 20 columns < the PCA cap: kept whole


def test_linear_features_cap_dimensions_and_use_training_statistics_only():
    rng = np.random.default_rng(3)
    layers = [rng.normal(size=(800, 300)).astype(np.float32) for _ in range(3)]
    split = fold_split(np.tile(np.arange(1, 6), 160).astype(str), [str(i) for i in range(1, 6)], 0)
    tr, va, te = probes.linear_features(layers, split)
    assert tr.shape == (len(split.train), probes.LINEAR_PCA_TOTAL)
    assert va.shape[1] == te.shape[1] == probes.LINEAR_PCA_TOTAL
    np.testing.assert_allclose(tr.mean(axis=0), 0, atol=1e-4)  # centred on the training clips


def test_standardise_uses_training_mean_and_std():
    train = np.array([[1.0, 5.0], [3.0, 5.0]])
    test = np.array([[5.0, 6.0]])
    z_train, z_test = probes.standardise(train, test)
    np.testing.assert_allclose(z_train, [[-1, 0], [1, 0]])
    np.testing.assert_allclose(z_test, [[3, 1]])  # constant column: centred, not scaled


def test_pepino_configs_are_the_16_of_the_paper():
    configs = probes.pepino_configs()
    assert len(configs) == 16
    assert {tuple(c["hidden"]) for c in configs} == {(1024,), (1024, 1024)}
    assert {c["lr"] for c in configs} == {3.2e-3, 1e-3, 3.2e-4, 1e-4}
    assert {c["init"] for c in configs} == {"xavier_uniform", "xavier_normal"}


def test_pepino_weighted_sum_learns_the_informative_layer():
    x, y, folds = _blobs(n_per_class=80, dim=16, separation=1.5)
    rng = np.random.default_rng(4)
    layers = [rng.normal(size=x.shape).astype(np.float32) * 3, x, rng.normal(size=x.shape).astype(np.float32) * 3]
    split = _splits(folds)[0]
    inputs = probes.pepino_inputs(layers, split)
    config = {"hidden": [32], "lr": 1e-2, "init": "xavier_uniform"}
    result = probes.train_weighted_mlp(inputs, y, split, config, n_classes=N_CLASSES, max_epochs=150, patience=30)
    weights = np.array(result.extra["layer_weights"])
    assert weights.sum() == pytest.approx(1.0, abs=1e-5)
    assert weights[1] > 0.5 and weights[1] > 2 * max(weights[0], weights[2])
    assert probes.accuracy(result.test_pred, y[split.test]) >= 0.9


def test_pepino_probe_searches_on_first_split_and_runs_every_split():
    x, y, folds = _blobs(n_per_class=40, dim=8)
    configs = [{"hidden": [16], "lr": 1e-5, "init": "xavier_normal"},  # too slow to learn in 30 epochs
               {"hidden": [16], "lr": 1e-2, "init": "xavier_uniform"}]
    splits = _splits(folds)
    results = probes.pepino_probe([x, x * 2], y, splits, n_classes=N_CLASSES, configs=configs, max_epochs=30,
                                  patience=10)
    assert len(results) == 5
    assert all(r.params["lr"] == 1e-2 for r in results)
    assert np.mean([probes.accuracy(r.test_pred, y[s.test]) for r, s in zip(results, splits)]) >= 0.95


def test_unknown_probe_is_a_one_line_error():
    from brainlike.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="choose from linear, pepino2025"):
        probes.check_probe("svm")
