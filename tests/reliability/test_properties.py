"""Invariance properties (hypothesis): what must not change a score."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from brainlike.align.pepino2025 import run_pepino2025
from brainlike.align.ridge import gram_matrix
from brainlike.align.rsa import cv_layer_rsa, layer_rhos, rdm

N, FOLDS = 25, np.repeat(np.arange(5), 5)
SETTINGS = settings(max_examples=12, deadline=None)


def _problem(seed: int):
    rng = np.random.default_rng(seed)
    layers = [rng.standard_normal((N, w)) for w in (4, 12)]
    y = layers[0] @ rng.standard_normal((4, 3)) + rng.standard_normal((N, 3))
    return layers, y


def _scores(layers, y, folds=FOLDS):
    return run_pepino2025([gram_matrix(x) for x in layers], y, folds).scores


@SETTINGS
@given(seed=st.integers(0, 10_000), perm_seed=st.integers(0, 10_000))
def test_regression_invariant_to_consistent_stimulus_permutation(seed, perm_seed):
    layers, y = _problem(seed)
    order = np.random.default_rng(perm_seed).permutation(N)
    permuted = _scores([x[order] for x in layers], y[order], FOLDS[order])
    np.testing.assert_allclose(permuted, _scores(layers, y), atol=1e-9)


@SETTINGS
@given(seed=st.integers(0, 10_000), scale=st.floats(1e-3, 1e3), shift=st.floats(-1e3, 1e3),
       feature_shift=st.floats(-100, 100))
def test_regression_invariant_to_response_scale_and_shift_and_feature_shift(seed, scale, shift, feature_shift):
    layers, y = _problem(seed)
    reference = _scores(layers, y)
    np.testing.assert_allclose(_scores(layers, y * scale + shift), reference, atol=1e-7)
    np.testing.assert_allclose(_scores([x + feature_shift for x in layers], y), reference, atol=1e-7)


@SETTINGS
@given(seed=st.integers(0, 10_000), scales=st.lists(st.floats(0.01, 100), min_size=12, max_size=12),
       shift=st.floats(-100, 100), perm_seed=st.integers(0, 10_000))
@example(seed=0, scales=[1.0] * 12, shift=0.0, perm_seed=0)  # fold pair (1, 2) picks the 2nd layer, the rest the 1st
def test_rsa_invariances_and_rdm_shape(seed, scales, shift, perm_seed):
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((N, 12))
    brain = rdm(features[:, :6] + rng.standard_normal((N, 6)))
    model = rdm(features)
    # a second, noisier layer that fits the brain too: fold pairs sometimes prefer it, so blocks of both are assembled
    other = rdm(features[:, :6] + 1.5 * rng.standard_normal((N, 6)))
    assert np.allclose(model, model.T) and np.all(np.diag(model) == 0)
    scaled = rdm(features * np.array(scales) + shift)
    np.testing.assert_allclose(scaled, model, atol=1e-9)
    order = np.random.default_rng(perm_seed).permutation(N)
    permuted = rdm(features[order])
    np.testing.assert_allclose(layer_rhos([permuted], brain[np.ix_(order, order)]), layer_rhos([model], brain),
                               atol=1e-12)
    # cross-validated layer choice: relabelling the stimuli (RDMs and folds alike) changes neither the choices nor
    # the score; the same two layers are used on both sides
    rho, chosen = cv_layer_rsa([model, other], brain, FOLDS)
    swap = np.ix_(order, order)
    rho_p, chosen_p = cv_layer_rsa([permuted, other[swap]], brain[swap], FOLDS[order])
    assert chosen_p == chosen
    assert rho_p == pytest.approx(rho, abs=1e-12)
    if set(chosen) == {0}:  # one layer chosen for every fold pair: its assembled RDM is that layer's own
        assert rho == pytest.approx(layer_rhos([model], brain)[0], abs=1e-12)
