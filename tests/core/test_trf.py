"""The trf engine (methods.md section 9) against a literal scikit-learn implementation and known answers."""

from __future__ import annotations

import numpy as np
import pytest

from brainlike.align import trf
from brainlike.align.backend import NumpyBackend, TorchBackend
from brainlike.errors import ProtocolError
from trf_literal import literal_trf, synthetic_problem

ALPHAS = np.logspace(-1, 5, 5)


def run(problem, lags=range(5), pca=5, alphas=ALPHAS, **kwargs):
    return trf.run_trf(problem["features"], problem["frame_times"], problem["responses"], problem["times"],
                       problem["folds"], lags=np.asarray(list(lags)), rate=problem["rate"], pca=pca, alphas=alphas,
                       **kwargs)


@pytest.mark.parametrize("pca", [5, 0, 64])
def test_engine_equals_literal_sklearn_implementation(pca):
    """Explicit lagged design, StandardScaler + PCA(full) per training set, one Ridge per target and alpha:
    the engine gives the same selection grid, choices, predictions and scores (pca 64 > 12 features: the engine
    skips the rotation, the literal one applies it)."""
    problem = synthetic_problem(n_stimuli=25, n_features=12, n_layers=2, n_targets=2, seed=1)
    result = run(problem, pca=pca)
    literal = literal_trf(problem["features"], problem["index"], problem["responses"], problem["folds"], range(5),
                          pca, ALPHAS)
    assert np.abs(result.inner_scores - literal["inner_scores"]).max() < 1e-6
    np.testing.assert_array_equal(result.layer_index, literal["layer_index"])
    np.testing.assert_array_equal(result.alpha, literal["alpha"])
    assert np.abs(result.predictions - literal["predictions"]).max() < 1e-6 * np.abs(literal["predictions"]).max()
    assert np.abs(result.scores - literal["scores"]).max() < 1e-6


def test_primal_and_kernel_forms_agree():
    problem = synthetic_problem(n_stimuli=20, n_features=40, n_layers=1, n_targets=2, n_bins=6, n_post=1, seed=2)
    # pca off: 5 lags x 40 features = 200 columns; inner fits have 12 x 6 = 72 rows (kernel is the smaller form)
    primal = run(problem, pca=0, form="primal")
    kernel = run(problem, pca=0, form="kernel")
    auto = run(problem, pca=0)
    assert primal.form == "primal" and kernel.form == "kernel" and auto.form == "kernel"
    scale = np.abs(primal.layer_predictions).max()
    assert np.abs(primal.layer_predictions - kernel.layer_predictions).max() < 1e-8 * scale
    assert np.abs(primal.inner_scores - kernel.inner_scores).max() < 1e-8
    assert np.abs(primal.lag_profiles - kernel.lag_profiles).max() < 1e-8 * np.abs(primal.lag_profiles).max()


def test_planted_lag_filter_is_recovered():
    """Responses = a filter at lag 3 bins on layer 0 + noise of known size: R2 reaches the ceiling set by the
    noise, layer 0 is chosen and its lag profile peaks at the planted lag (120 ms at 25 Hz)."""
    problem = synthetic_problem(n_stimuli=100, n_features=10, n_layers=3, n_targets=4, planted_lag=3,
                                noise=0.5, seed=3)
    result = run(problem, lags=range(7), pca=0, alphas=np.logspace(-1, 9, 21))
    signal, responses = problem["signal"], problem["responses"]
    ceiling = np.array([np.corrcoef((signal - signal.mean(0))[..., t].ravel(),
                                    (responses - responses.mean(0))[..., t].ravel())[0, 1] ** 2
                        for t in range(signal.shape[2])])
    # 70 weights from 1,600 training rows: the out-of-sample loss is a few percent of the ceiling
    assert np.all(result.scores > 0.92 * ceiling), (result.scores, ceiling)
    assert np.all(result.scores < ceiling + 0.02)
    assert np.all(result.layer_index == 0)
    latency = trf.latencies(result.lag_profiles, result.lag_seconds)
    np.testing.assert_allclose(latency[0], 3 / 25.0)
    # the mean time course common to all sounds is modelled separately: raw R2 >= the baseline alone
    assert np.all(result.baseline_raw > 0.2)
    assert np.all(result.score_raw > result.baseline_raw)


def test_shuffled_sounds_score_near_zero():
    problem = synthetic_problem(n_stimuli=100, n_features=10, n_layers=2, n_targets=4, noise=0.5, seed=4)
    order = np.random.default_rng(0).permutation(100)
    problem["responses"] = problem["responses"][order]
    result = run(problem, lags=range(7), pca=0, alphas=np.logspace(-1, 9, 21))
    assert np.all(result.scores < 0.02), result.scores
    # and the observed r(b) lies within the shuffled-sound null band at most bins
    curves = trf.time_curves(result.predictions, result.observed)
    low, high = trf.null_band(result.predictions, result.observed, n_shuffles=300, seed=0)
    inside = (curves >= low) & (curves <= high)
    assert inside.mean() > 0.85


def test_time_curves_null_band_and_categories():
    problem = synthetic_problem(n_stimuli=100, n_features=10, n_layers=1, n_targets=2, noise=0.5, seed=5)
    result = run(problem, lags=range(7), pca=0, alphas=np.logspace(-1, 9, 21))
    curves = trf.time_curves(result.predictions, result.observed)
    low, high = trf.null_band(result.predictions, result.observed, n_shuffles=300, seed=0)
    assert np.all(low < 0) and np.all(high > 0) and np.all(high < 0.35)
    # bins driven by the sound (lagged reads of sounding frames) beat the null band
    driven = slice(3, 16)
    assert np.all(curves[driven] > high[driven])
    # r(b) equals a direct per-bin correlation across sounds
    b, t = 7, 1
    direct = np.corrcoef(result.predictions[:, b, t], result.observed[:, b, t])[0, 1]
    assert abs(curves[b, t] - direct) < 1e-12
    names, per_category = trf.category_curves(result.predictions, result.observed, np.arange(100) % 4 == 0)
    assert per_category.shape == (2, 20, 2) and names == ["True", "False"]
    inside = np.arange(100) % 4 == 0
    direct = np.corrcoef(result.predictions[inside, b, t], result.observed[inside, b, t])[0, 1]
    assert abs(per_category[0, b, t] - direct) < 1e-12


def test_negative_lags_read_frames_after_the_bin():
    """A non-causal dependence (response at b driven by the frame at b + 2) peaks at lag -2."""
    problem = synthetic_problem(n_stimuli=60, n_features=8, n_layers=1, n_targets=2, planted_lag=-2, n_after=3,
                                seed=6)
    result = run(problem, lags=range(-3, 4), pca=0, alphas=np.logspace(-1, 9, 21))
    assert trf.latencies(result.lag_profiles, result.lag_seconds)[0].tolist() == [-2 / 25] * 2
    assert np.all(result.scores > 0.5)


@pytest.mark.numerics
def test_float32_torch_backend_matches_float64():
    """float32 (torch, CPU) within 1e-3 of the float64 reference, except at near-tie selections (the float64 inner
    scores of the two choices within 1e-3)."""
    problem = synthetic_problem(n_stimuli=40, n_features=20, n_layers=2, n_targets=6, n_bins=15, noise=1.0, seed=7)
    kwargs = dict(lags=range(5), pca=10, alphas=np.logspace(-1, 9, 21))
    reference = run(problem, backend=NumpyBackend(), **kwargs)
    single = run(problem, backend=TorchBackend("cpu"), **kwargs)
    n_layers = len(reference.layers)
    for t in range(problem["responses"].shape[2]):
        same = np.array_equal(reference.layer_index[:, t], single.layer_index[:, t]) and \
            np.array_equal(reference.alpha[:, t], single.alpha[:, t])
        if same:
            assert abs(reference.scores[t] - single.scores[t]) < 1e-3
            continue
        for o in range(reference.alpha.shape[0]):  # every differing choice is a near tie in float64
            grid = reference.inner_scores[o, :, :, t].reshape(-1)
            alpha_index = int(np.flatnonzero(np.isclose(kwargs["alphas"], single.alpha[o, t]))[0])
            other = alpha_index * n_layers + single.layer_index[o, t]
            assert grid.max() - grid[other] < 1e-3
    assert np.abs(reference.inner_scores - single.inner_scores).max() < 1e-3


def test_float32_eigensolver_failure_falls_back_to_float64(monkeypatch):
    """torch's float32 eigh can fail to converge on an ill-conditioned Gram (silero-vad@random on ecog-nh2022): the
    engine then decomposes that matrix in float64 and the run ends with the same results as a converging one."""
    import torch

    problem = synthetic_problem(n_stimuli=40, n_features=20, n_layers=2, n_targets=3, n_bins=15, noise=1.0, seed=3)
    kwargs = dict(lags=range(5), pca=10, alphas=np.logspace(-1, 9, 21))
    expected = run(problem, backend=TorchBackend("cpu"), **kwargs)
    real_eigh, calls = torch.linalg.eigh, []

    def flaky(matrix, *args, **kw):
        calls.append(matrix.dtype)
        if matrix.dtype == torch.float32:
            raise torch.linalg.LinAlgError("linalg.eigh: The algorithm failed to converge")
        return real_eigh(matrix, *args, **kw)

    monkeypatch.setattr(torch.linalg, "eigh", flaky)
    fallback = run(problem, backend=TorchBackend("cpu"), **kwargs)
    assert torch.float64 in calls
    assert np.abs(fallback.scores - expected.scores).max() < 1e-4
    assert np.abs(fallback.inner_scores - expected.inner_scores).max() < 1e-3


def test_frame_layers_decode_small_cached_layers_once(monkeypatch):
    """A cached layer that fits IN_MEMORY_BYTES in float32 is decoded once into an array (the engine reads a layer
    several times per fit); a wider one stays memory-mapped; both give the same values."""
    from brainlike.extract.frames import MappedLayer

    rng = np.random.default_rng(0)
    values = rng.standard_normal((6, 10, 4)).astype(np.float16)
    offset = rng.standard_normal(4).astype(np.float32)

    class Arrays:
        def open(self, layer):
            return MappedLayer(values, offset)

    class Frames:
        layers, arrays = ["a"], Arrays()

    small = trf.FrameLayers(Frames())[0]
    assert isinstance(small, np.ndarray) and small.dtype == np.float32
    monkeypatch.setattr(trf, "IN_MEMORY_BYTES", values.size * 4 - 1)
    wide = trf.FrameLayers(Frames())[0]
    assert isinstance(wide, MappedLayer)
    np.testing.assert_array_equal(small, wide[:, :, :])


def test_randomized_pca_for_wide_layers_close_to_exact(monkeypatch):
    problem = synthetic_problem(n_stimuli=40, n_features=12, n_layers=1, n_targets=3, seed=8, width=60,
                                spectrum=0.7 ** np.arange(12))
    exact = run(problem, pca=8)
    monkeypatch.setattr(trf, "EXACT_PCA_MAX", 16)
    randomized = run(problem, pca=8)
    assert exact.pca_solver == {"layer0": "exact"} and randomized.pca_solver == {"layer0": "randomized"}
    assert np.abs(exact.scores - randomized.scores).max() < 1e-3


def test_feature_chunks_do_not_change_results(monkeypatch):
    problem = synthetic_problem(n_stimuli=30, n_features=12, n_layers=1, n_targets=2, seed=9)
    whole = run(problem, pca=5)
    monkeypatch.setattr(trf, "CHUNK_BYTES", 8 * 30 * 26 * 3)  # 3 features per chunk
    chunked = run(problem, pca=5)
    assert np.abs(whole.layer_predictions - chunked.layer_predictions).max() < 1e-10


def test_bad_inputs_one_line_errors():
    problem = synthetic_problem(n_stimuli=30, n_features=6, n_layers=1, n_targets=2, seed=10)
    with pytest.raises(ProtocolError, match="longer than the response"):
        run(problem, lags=range(0, 21))
    with pytest.raises(ProtocolError, match="need frames from"):
        run(problem, lags=range(0, 9))  # 6 bins of silence before onset
    with pytest.raises(ProtocolError, match="need frames up to"):
        run(problem, lags=range(-2, 3))
    with pytest.raises(ProtocolError, match="not at 20 Hz|not among"):
        trf.run_trf(problem["features"], problem["frame_times"], problem["responses"], problem["times"],
                    problem["folds"], lags=np.arange(3), rate=20.0)
    with pytest.raises(ProtocolError, match="at least 3 folds"):
        trf.run_trf(problem["features"], problem["frame_times"], problem["responses"], problem["times"],
                    np.arange(30) % 2, lags=np.arange(3), rate=25.0)
    with pytest.raises(ProtocolError, match="START:STOP"):
        trf.parse_lags("0.5:0")
    assert trf.lag_bins(trf.parse_lags("0:0.5"), 25.0).tolist() == list(range(13))
    assert trf.lag_bins(trf.parse_lags("-0.1:0.5"), 25.0).tolist() == list(range(-2, 13))


def test_time_resolved_rsa_matches_scipy():
    """rho(b) = Spearman between the upper triangles of the per-bin RDMs (1 - Pearson of z-scored features),
    computed independently with scipy; the time-averaged RDM variant; NaN where every sound gives the same
    pattern."""
    from scipy.spatial.distance import pdist
    from scipy.stats import spearmanr, zscore

    from brainlike.align.rsa_time import time_resolved_rsa

    problem = synthetic_problem(n_stimuli=20, n_features=6, n_layers=2, n_targets=4, n_bins=10, n_post=3, seed=12)
    rho, averaged = time_resolved_rsa(problem["features"], problem["frame_times"], problem["responses"],
                                      problem["times"], 25.0, window=(0.0, 0.2))

    def rdm(x):
        return pdist(zscore(np.asarray(x, dtype=np.float64), axis=0), "correlation")

    for layer in range(2):
        x = problem["features"][layer]
        mean_rdm = rdm(x[:, problem["index"][:5]].mean(axis=1))
        for b, frame in enumerate(problem["index"]):
            brain = rdm(problem["responses"][:, b])
            assert rho[layer, b] == pytest.approx(spearmanr(rdm(x[:, frame]), brain)[0], abs=1e-10)
            assert averaged[layer, b] == pytest.approx(spearmanr(mean_rdm, brain)[0], abs=1e-10)
    silent = [np.concatenate([x[:, :-3], np.repeat(x[:1, -3:], 20, axis=0)], axis=1) for x in problem["features"]]
    rho, _ = time_resolved_rsa(silent, problem["frame_times"], problem["responses"], problem["times"], 25.0,
                               window=(0.0, 0.2))
    assert np.isnan(rho[:, -3:]).all() and np.isfinite(rho[:, :-3]).all()
