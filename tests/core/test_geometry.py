"""Representational geometry (methods.md section 11): invariances, independent references (slow loops, scipy,
rsatoolbox), known answers, bad input and the ``brainlike similarity`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes, subspace_angles
from scipy.stats import ortho_group

from brainlike.align import geometry as g
from brainlike.errors import DataError, ProtocolError

TOL_ZERO = 1e-6
"""Procrustes distances of equal shapes: arccos near 1 amplifies rounding (methods.md: ~1e-6)."""


def spectrum_features(rng, n: int, p: int, decay: float = 20.0) -> np.ndarray:
    """Features with a decaying spectrum and offsets (a hard case for rounding)."""
    return rng.standard_normal((n, p)) @ np.diag(np.exp(-np.arange(p) / decay)) + rng.normal(0, 3, p)


@pytest.mark.numerics
@pytest.mark.parametrize("p", [12, 150])  # fewer and more features than the 60 sounds
def test_invariances(p):
    rng = np.random.default_rng(p)
    x = spectrum_features(rng, 60, p)
    q = ortho_group.rvs(p, random_state=p)
    assert g.linear_cka(x, x @ q) == pytest.approx(1.0, abs=1e-10)
    assert g.linear_cka(x, 7.5 * x + 2.0) == pytest.approx(1.0, abs=1e-10)
    assert g.debiased_cka(x, 0.1 * x @ q) == pytest.approx(1.0, abs=1e-10)
    assert g.procrustes_distance(x, x @ q) < TOL_ZERO
    assert g.procrustes_distance(x, 3.0 * x @ q + 1.0) < TOL_ZERO
    assert g.procrustes_distance(x, 3.0 * x @ q, whiten=0.5) < TOL_ZERO
    folds = np.arange(60) % 5
    if p < 48:  # the rotation is identifiable from 48 training sounds: the held-out shapes agree
        assert g.procrustes_cv_matrix([x], [x @ q], folds)[0, 0] < TOL_ZERO


def test_cka_matches_the_feature_space_formula():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((40, 7)), rng.standard_normal((40, 9)) + rng.standard_normal((40, 1))
    xc, yc = x - x.mean(0), y - y.mean(0)
    expected = np.linalg.norm(yc.T @ xc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))
    assert g.linear_cka(x, y) == pytest.approx(expected, rel=1e-12)


def song_hsic(k: np.ndarray, l: np.ndarray) -> float:
    """The unbiased HSIC estimator of Song et al. 2012, written term by term."""
    n = k.shape[0]
    kt, lt = k.copy(), l.copy()
    np.fill_diagonal(kt, 0)
    np.fill_diagonal(lt, 0)
    ones = np.ones(n)
    value = (np.trace(kt @ lt) + (ones @ kt @ ones) * (ones @ lt @ ones) / ((n - 1) * (n - 2))
             - 2 / (n - 2) * ones @ kt @ lt @ ones)
    return value / (n * (n - 3))


@pytest.mark.numerics
def test_debiased_cka_matches_song_et_al():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((30, 50))
    y = x[:, :20] @ rng.standard_normal((20, 8)) + rng.standard_normal((30, 8))
    kx, ky = x @ x.T, y @ y.T  # uncentred: the estimator removes row and column effects itself
    expected = song_hsic(kx, ky) / np.sqrt(song_hsic(kx, kx) * song_hsic(ky, ky))
    assert g.debiased_cka(x, y) == pytest.approx(expected, rel=1e-10)


def test_debiased_cka_is_near_zero_for_independent_wide_features():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((100, 2000)), rng.standard_normal((100, 2000))
    assert g.linear_cka(x, y) > 0.4  # the biased estimator is pulled up by the width
    assert abs(g.debiased_cka(x, y)) < 0.02


@pytest.mark.numerics
def test_procrustes_matches_scipy_orthogonal_procrustes():
    rng = np.random.default_rng(4)
    for p, q in ((10, 10), (6, 11)):
        x = rng.standard_normal((50, p))
        y = np.hstack([x, np.zeros((50, q - p))]) @ ortho_group.rvs(q, random_state=p) + rng.standard_normal((50, q))
        xc, yc = x - x.mean(0), y - y.mean(0)
        width = max(p, q)  # netrep / Williams et al.: pad the narrower set with zero features
        xp, yp = np.pad(xc, ((0, 0), (0, width - p))), np.pad(yc, ((0, 0), (0, width - q)))
        rotation, _ = orthogonal_procrustes(xp, yp)
        expected = np.arccos(np.sum((xp @ rotation) * yp) / (np.linalg.norm(xp) * np.linalg.norm(yp)))
        assert g.procrustes_distance(x, y) == pytest.approx(expected, abs=1e-10)


def feature_space_whitening(x: np.ndarray, w: float) -> np.ndarray:
    """X ((1 - w) I + w s (X^T X)^(-1/2)) computed in feature space (p < n)."""
    xc = x - x.mean(0)
    values, vectors = np.linalg.eigh(xc.T @ xc)
    scale = np.sqrt(values.mean())
    return xc @ ((1 - w) * np.eye(x.shape[1]) + w * scale * (vectors / np.sqrt(values)) @ vectors.T)


@pytest.mark.numerics
@pytest.mark.parametrize("w", [0.3, 0.8])
def test_partial_whitening_matches_feature_space_reference(w):
    rng = np.random.default_rng(5)
    x, y = spectrum_features(rng, 80, 10, 3.0), spectrum_features(rng, 80, 10, 3.0)
    xw, yw = feature_space_whitening(x, w), feature_space_whitening(y, w)
    nuclear = np.linalg.svd(xw.T @ yw, compute_uv=False).sum()
    expected = np.arccos(nuclear / (np.linalg.norm(xw) * np.linalg.norm(yw)))
    assert g.procrustes_distance(x, y, whiten=w) == pytest.approx(expected, abs=1e-10)


@pytest.mark.numerics
def test_full_whitening_is_the_mean_canonical_correlation_and_refused_when_wide():
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((80, 6)), rng.standard_normal((80, 6)) + 0.5 * rng.standard_normal((80, 1))
    canonical = np.cos(subspace_angles(x - x.mean(0), y - y.mean(0)))
    assert g.procrustes_distance(x, y, whiten=1.0) == pytest.approx(np.arccos(canonical.mean()), abs=1e-10)
    with pytest.raises(ProtocolError, match="full whitening"):
        g.similarity([g.FeatureSet("a", ["l"], [rng.standard_normal((20, 40))], [str(i) for i in range(20)]),
                      g.FeatureSet("b", ["l"], [rng.standard_normal((20, 3))], [str(i) for i in range(20)])],
                     "procrustes", whiten=1.0)


def slow_cv_procrustes(x: np.ndarray, y: np.ndarray, folds: np.ndarray, w: float = 0.0) -> float:
    """Per fold: centre and whiten with the training sounds, scipy's rotation, pooled held-out inner products."""
    num = den_x = den_y = 0.0
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        pieces = []
        for z in (x, y):
            mean = z[train].mean(0)
            tr, te = z[train] - mean, z[test] - mean
            values, vectors = np.linalg.eigh(tr.T @ tr)
            transform = (1 - w) * np.eye(z.shape[1]) + w * np.sqrt(values.mean()) * (
                vectors / np.sqrt(values)) @ vectors.T
            pieces.append((tr @ transform, te @ transform))
        (xtr, xte), (ytr, yte) = pieces
        rotation, _ = orthogonal_procrustes(xtr, ytr)
        num += np.sum((xte @ rotation) * yte)
        den_x += np.sum(xte ** 2)
        den_y += np.sum(yte ** 2)
    return float(np.arccos(num / np.sqrt(den_x * den_y)))


@pytest.mark.numerics
@pytest.mark.parametrize("w", [0.0, 0.5])
def test_cross_validated_procrustes_matches_a_slow_loop(w):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((75, 8))
    y = x @ ortho_group.rvs(8, random_state=1) + 0.8 * rng.standard_normal((75, 8))
    folds = np.arange(75) % 5
    assert g.procrustes_cv_matrix([x], [y], folds, w)[0, 0] == pytest.approx(slow_cv_procrustes(x, y, folds, w),
                                                                              abs=1e-10)


def test_cross_validation_removes_the_fit_to_noise():
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((100, 30)), rng.standard_normal((100, 30))  # independent: no shared shape
    folds = np.arange(100) % 5
    plain = g.procrustes_distance(x, y)
    cv = g.procrustes_cv_matrix([x], [y], folds)[0, 0]
    assert plain < 1.2 and cv > 1.5  # the fitted rotation aligns noise in-sample, not out of sample (pi/2 ~ 1.571)


def test_rsa_matches_rsatoolbox():
    rsatoolbox = pytest.importorskip("rsatoolbox")
    rng = np.random.default_rng(9)
    x = rng.standard_normal((25, 40)) * rng.uniform(0.5, 4, 40)
    y = x[:, :10] @ rng.standard_normal((10, 15)) + rng.standard_normal((25, 15))

    def rdms(z):
        zs = (z - z.mean(0)) / z.std(0)
        return rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(zs), method="correlation")

    expected = rsatoolbox.rdm.compare(rdms(x), rdms(y), method="spearman")[0, 0]
    assert g.rsa_matrix([x], [y])[0, 0] == pytest.approx(expected, abs=1e-10)


@pytest.mark.numerics
@pytest.mark.parametrize("metric", g.METRICS)
def test_batched_matrix_equals_pair_by_pair(metric):
    rng = np.random.default_rng(10)
    ids = [f"s{i}" for i in range(40)]
    a = g.FeatureSet("a", ["l1", "l2", "l3"], [rng.standard_normal((40, p)) for p in (5, 60, 20)], ids)
    b = g.FeatureSet("b", ["m1", "m2"], [rng.standard_normal((40, p)) + a.arrays[0][:, :1] for p in (70, 8)], ids)
    folds = np.arange(40) % 5
    matrix = g.similarity([a, b], metric, folds=folds).matrix
    for i, x in enumerate(a.arrays):
        for j, y in enumerate(b.arrays):
            single = g.similarity([g.FeatureSet("a", ["x"], [x], ids), g.FeatureSet("b", ["y"], [y], ids)], metric,
                                  folds=folds).matrix[0, 0]
            assert matrix[i, j] == pytest.approx(single, abs=1e-10)
    self_matrix = g.similarity([a, a], metric, folds=folds).matrix
    diagonal = 0.0 if metric in g.DISTANCES else 1.0
    if metric != "procrustes-cv":
        np.testing.assert_allclose(np.diag(self_matrix), diagonal, atol=TOL_ZERO)
    np.testing.assert_allclose(self_matrix, self_matrix.T, atol=1e-10)


def test_three_sets_give_a_square_matrix_with_records_and_netcdf():
    rng = np.random.default_rng(11)
    ids = [f"s{i}" for i in range(30)]
    sets = [g.FeatureSet(n, ["l"], [rng.standard_normal((30, 6))], ids) for n in "abc"]
    result = g.similarity(sets, "cka")
    assert result.matrix.shape == (3, 3)
    records = result.records()
    assert len(records) == 9 and {r["metric"] for r in records} == {"cka"}
    assert {"model_a", "layer_a", "model_b", "layer_b", "score", "model", "dataset", "target"} <= set(records[0])
    ds = result.to_dataset()
    assert list(ds["row_model"].values) == ["a", "b", "c"] and ds.attrs["kind"] == "similarity"


# ---------------------------------------------------------------------------------------------------------------
# bad input


def test_stimuli_are_aligned_by_name_and_different_sets_refused():
    rng = np.random.default_rng(12)
    ids = [f"s{i}" for i in range(30)]
    x, y = rng.standard_normal((30, 5)), rng.standard_normal((30, 6))
    order = rng.permutation(30)
    a = g.FeatureSet("a", ["l"], [x], ids)
    shuffled = g.FeatureSet("b", ["l"], [y[order]], [ids[i] for i in order])
    same = g.FeatureSet("b", ["l"], [y], ids)
    assert g.similarity([a, shuffled], "cka").matrix[0, 0] == pytest.approx(g.similarity([a, same], "cka").matrix[0, 0])
    other = g.FeatureSet("c", ["l"], [y], ids[:-1] + ["elsewhere"])
    with pytest.raises(DataError, match="c and a cover different stimuli: 1 of a's missing from c"):
        g.similarity([a, other], "cka")


@pytest.mark.parametrize("metric", g.METRICS)
def test_nan_and_constant_features_are_refused(metric):
    rng = np.random.default_rng(13)
    ids = [f"s{i}" for i in range(20)]
    good = g.FeatureSet("good", ["l"], [rng.standard_normal((20, 4))], ids)
    nan = rng.standard_normal((20, 4))
    nan[3, 1] = np.nan
    with pytest.raises(DataError, match="bad layer 'x' has NaN or Inf features"):
        g.similarity([good, g.FeatureSet("bad", ["x"], [nan], ids)], metric, folds=np.arange(20) % 5)
    with pytest.raises(DataError, match="flat layer 'x' is constant across stimuli"):
        g.similarity([good, g.FeatureSet("flat", ["x"], [np.ones((20, 4))], ids)], metric, folds=np.arange(20) % 5)


def test_unknown_metric_and_bad_whitening():
    ids = [f"s{i}" for i in range(10)]
    a = g.FeatureSet("a", ["l"], [np.random.default_rng(0).standard_normal((10, 3))], ids)
    with pytest.raises(ProtocolError, match="unknown similarity metric"):
        g.similarity([a, a], "cosine")
    with pytest.raises(ProtocolError, match="whiten must be in"):
        g.similarity([a, a], "procrustes", whiten=1.5)


# ---------------------------------------------------------------------------------------------------------------
# the command


def test_cli_similarity_model_vs_itself_and_vs_the_dataset(data_root, tmp_path, capsys):
    import xarray as xr

    from brainlike.cli import main

    out = tmp_path / "sim"
    assert main(["-q", "similarity", "melspec", "melspec", "--metric", "cka", "--out", str(out), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 9 and all(r["model_a"] == r["model_b"] == "melspec" for r in records)
    assert all(r["score"] == pytest.approx(1.0) for r in records if r["layer_a"] == r["layer_b"])
    assert (out / "similarity-cka.png").stat().st_size > 1000
    with xr.open_dataset(out / "detail-similarity.nc", engine="h5netcdf") as ds:
        assert ds["similarity"].shape == (3, 3)
    from brainlike.report import make_report

    report = make_report(out)
    assert any(slug.startswith("similarity") for slug in report.slugs)
    assert "Representational similarity" in report.html.read_text()
    assert not any(slug.startswith("ranking") for slug in report.slugs)  # similarity records are not scores
    assert main(["-q", "similarity", "melspec", "nh2015-components", "--metric", "rsa", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 3 and all(r["model_b"] == "nh2015-components" and r["layer_b"] is None for r in records)
    assert all(0.1 < r["score"] < 0.6 for r in records)


def test_cli_similarity_refuses_a_dataset_of_other_stimuli(data_root, tmp_path, capsys):
    from brainlike.cli import main
    from brainlike.data.neural import load_nh2015_components

    components = load_nh2015_components()
    path = tmp_path / "partial.nc"
    components.responses.isel(stimulus=slice(0, 150)).to_dataset(name="responses").to_netcdf(path, engine="h5netcdf")
    assert main(["-q", "similarity", "melspec", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cover different stimuli" in err[0]
