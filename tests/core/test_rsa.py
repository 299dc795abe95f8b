"""RSA against rsatoolbox and scipy, and on data with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from brainlike.align.rsa import cv_layer_rsa, leave_one_subject_out_ceiling, rdm, spearman_upper
from brainlike.errors import ProtocolError


def test_rdm_matches_rsatoolbox_correlation_rdm():
    rsatoolbox = pytest.importorskip("rsatoolbox")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 50)) * rng.uniform(0.5, 5, 50)
    z = (x - x.mean(0)) / x.std(0)
    data = rsatoolbox.data.Dataset(z)
    ref = rsatoolbox.rdm.calc_rdm(data, method="correlation").get_matrices()[0]
    np.testing.assert_allclose(rdm(x), ref, atol=1e-10)
    assert np.allclose(rdm(x), rdm(x).T) and np.all(np.diag(rdm(x)) == 0)


def test_spearman_upper_matches_scipy():
    rng = np.random.default_rng(1)
    a, b = rdm(rng.standard_normal((15, 8))), rdm(rng.standard_normal((15, 8)))
    i, j = np.triu_indices(15, 1)
    assert spearman_upper(a, b) == pytest.approx(spearmanr(a[i, j], b[i, j])[0], abs=1e-12)


def test_ceiling_matches_loop_and_rsatoolbox_lower_bound():
    rsatoolbox = pytest.importorskip("rsatoolbox")
    from rsatoolbox.inference.noise_ceiling import boot_noise_ceiling

    rng = np.random.default_rng(2)
    signal = rng.standard_normal((30, 40))
    subjects = [rdm(signal + 1.0 * rng.standard_normal((30, 40))) for _ in range(5)]
    ours = leave_one_subject_out_ceiling(subjects)
    for s in range(5):
        others = np.mean([subjects[k] for k in range(5) if k != s], axis=0)
        i, j = np.triu_indices(30, 1)
        assert ours[s] == pytest.approx(spearmanr(subjects[s][i, j], others[i, j])[0], abs=1e-12)
    assert 0.2 < ours.mean() < 1
    lower, _ = boot_noise_ceiling(rsatoolbox.rdm.RDMs(np.stack(subjects)), method="spearman")
    assert leave_one_subject_out_ceiling(subjects, rank_first=True).mean() == pytest.approx(lower, abs=1e-10)


def test_cv_rsa_picks_the_true_layer_and_noise_is_near_zero():
    rng = np.random.default_rng(3)
    n, folds = 60, np.repeat(np.arange(5), 12)
    true = rng.standard_normal((n, 30))
    brain = rdm(true + 0.5 * rng.standard_normal((n, 30)))
    layers = [rdm(rng.standard_normal((n, 30))), rdm(true), rdm(rng.standard_normal((n, 30)))]
    rho, chosen = cv_layer_rsa(layers, brain, folds)
    assert set(chosen) == {1} and len(chosen) == 15
    assert rho == pytest.approx(spearman_upper(layers[1], brain), abs=1e-12)
    rho_null, _ = cv_layer_rsa([layers[0], layers[2]], brain, folds)
    assert abs(rho_null) < 0.1


def _rsa_layer_select_literal(layer_rdms, brain_rdm, folds):
    """braindnn's rsa_layer_select (src/learning.py), transcribed: asymmetric training cells, later pairs overwrite."""
    unique_folds = np.unique(folds)
    test_rdm = np.zeros(brain_rdm.shape)
    for i in range(len(unique_folds)):
        for j in range(i, len(unique_folds)):
            mask_1, mask_2 = folds == unique_folds[i], folds == unique_folds[j]
            train_mask = ~mask_1[:, None] * ~mask_2[None, :]
            upper = np.triu_indices_from(brain_rdm, k=1)
            keep = train_mask[upper]
            cells = (upper[0][keep], upper[1][keep])
            train_r = [spearmanr(brain_rdm[cells], layer[cells])[0] for layer in layer_rdms]
            test_rdm[~train_mask] = layer_rdms[np.argmax(train_r)][~train_mask]
    upper = np.triu_indices_from(brain_rdm, k=1)
    return spearmanr(brain_rdm[upper], test_rdm[upper])[0]


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_cv_rsa_follows_the_papers_procedure_not_the_symmetric_one(seed):
    rng = np.random.default_rng(seed)
    n = 40
    folds = rng.permutation(np.repeat(np.arange(5), 8))
    shared = rng.standard_normal((n, 20))
    brain = rdm(shared + 1.5 * rng.standard_normal((n, 20)))
    layers = [rdm(shared + s * rng.standard_normal((n, 20))) for s in (1.2, 1.5, 1.8, 2.5)]
    rho, chosen = cv_layer_rsa(layers, brain, folds)
    assert rho == pytest.approx(_rsa_layer_select_literal(layers, brain, folds), abs=1e-12)
    assert len(chosen) == 15 and len(set(chosen)) > 1  # the layers compete: choices vary across fold pairs
    rho_symmetric, _ = cv_layer_rsa(layers, brain, folds, scheme="symmetric")
    assert abs(rho - rho_symmetric) > 1e-4
    with pytest.raises(ProtocolError, match="unknown cross-validated RSA scheme"):
        cv_layer_rsa(layers, brain, folds, scheme="diagonal")
