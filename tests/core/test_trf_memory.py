"""The trf engine's in-memory layer path (issue 14 speed-up): the same mathematics as the streaming path (the
pre-change engine, still used for layers over the memory limit) and as a literal float64 randomized PCA."""

from __future__ import annotations

import numpy as np
import pytest

from brainlike.align import trf
from brainlike.align.backend import NumpyBackend, TorchBackend
from trf_literal import synthetic_problem

ALPHAS = np.logspace(-1, 5, 5)


def wide_problem(seed=21):
    """3,000 features mixing 12 latent directions of decaying strength (a planted low-rank signal) plus noise."""
    return synthetic_problem(n_stimuli=40, n_features=12, n_layers=1, n_targets=3, seed=seed, width=3000,
                             spectrum=3.0 * 0.7 ** np.arange(12))


def run(problem, **kwargs):
    return trf.run_trf(problem["features"], problem["frame_times"], problem["responses"], problem["times"],
                       problem["folds"], lags=np.arange(5), rate=problem["rate"], alphas=ALPHAS, **kwargs)


def reference_randomized(x, index, train, mean, scale, k, start, iterations):
    """Literal randomized subspace iteration in float64: index the training rows, z-score, iterate."""
    rows = np.asarray(x, dtype=np.float64)[train][:, index].reshape(-1, x.shape[2])
    z = (rows - mean) / scale
    sample = z @ start
    for _ in range(iterations):
        q = np.linalg.qr(sample)[0]
        sample = z @ (z.T @ q)
    q = np.linalg.qr(sample)[0]
    vt = np.linalg.svd(q.T @ z, full_matrices=False)[2]
    return vt[:k].T


def layer_fits(problem, backend, pca=8, seed=0):
    plan = trf._CVPlan(trf.check_folds(problem["folds"], len(problem["folds"]), "trf"), problem["responses"])
    return trf._LayerFits(problem["features"][0], problem["index"], np.arange(5), plan, pca, backend, seed, "auto")


@pytest.mark.numerics
@pytest.mark.parametrize("backend", [NumpyBackend(), TorchBackend("cpu")], ids=["numpy", "torch"])
def test_in_memory_randomized_pca_equals_float64_reference(backend):
    """First (cold) fit of a 3,000-wide layer: the in-memory products on pre-centred frames give the components of
    the literal float64 algorithm from the same seeded start (rng = default_rng([seed, *excluded])): the planted
    directions to float32 rounding, the whole k-subspace closely."""
    problem = wide_problem()
    layer = layer_fits(problem, backend)
    assert layer.frames is not None and layer.pca_solver == "randomized"
    excluded = (0, 1)
    train = layer._sounds(layer._ranges(layer._kept(excluded)))
    mean, scale, components = layer.basis(train, excluded)
    rng = np.random.default_rng([0, *excluded])
    width = layer.k + trf.RANDOMIZED_PCA["oversamples"]
    start = rng.standard_normal((3000, width)).astype(np.float32).astype(np.float64)
    reference = reference_randomized(problem["features"][0], problem["index"], train, mean, scale, layer.k, start,
                                     trf.RANDOMIZED_PCA["power_iterations"])
    planted = 5  # well-separated leading directions: each component to rounding, up to sign
    cosines = np.abs(np.sum(components[:, :planted] * reference[:, :planted], axis=0))
    assert np.all(cosines > 1 - 1e-6)
    # the whole k-subspace: projectors close
    difference = components @ components.T - reference @ reference.T
    assert np.linalg.norm(difference, 2) < 1e-3


@pytest.mark.numerics
@pytest.mark.parametrize("backend", [NumpyBackend(), TorchBackend("cpu")], ids=["numpy", "torch"])
def test_in_memory_run_equals_streaming_engine(monkeypatch, backend):
    """run_trf on a wide synthetic layer (randomized PCA, warm starts) with the layer in memory equals the
    streaming path (the pre-change engine, forced by a zero memory limit) within 1e-4."""
    problem = wide_problem()
    fast = run(problem, pca=8, backend=backend)
    monkeypatch.setattr(trf, "LAYER_MEMORY_BYTES", 0)
    slow = run(problem, pca=8, backend=backend)
    assert fast.pca_solver == slow.pca_solver == {"layer0": "randomized"}
    scale = np.abs(slow.layer_predictions).max()
    assert np.abs(fast.layer_predictions - slow.layer_predictions).max() < 1e-4 * scale
    assert np.abs(fast.predictions - slow.predictions).max() < 1e-4 * scale
    assert np.abs(fast.scores - slow.scores).max() < 1e-4
    assert np.abs(fast.inner_scores - slow.inner_scores).max() < 1e-4
    assert np.all(fast.scores > 0.3)


@pytest.mark.parametrize("pca", [0, 5])
def test_in_memory_exact_and_unrotated_layers_equal_streaming(monkeypatch, pca):
    """Narrow layers (no rotation, exact PCA), numpy float64: in memory equals streaming to float64 rounding."""
    problem = synthetic_problem(n_stimuli=30, n_features=12, n_layers=2, n_targets=2, seed=22)
    fast = run(problem, pca=pca)
    monkeypatch.setattr(trf, "LAYER_MEMORY_BYTES", 0)
    slow = run(problem, pca=pca)
    scale = np.abs(slow.layer_predictions).max()
    assert np.abs(fast.layer_predictions - slow.layer_predictions).max() < 1e-9 * scale
    assert np.abs(fast.inner_scores - slow.inner_scores).max() < 1e-9


def test_memory_limit_and_sorted_ranges(monkeypatch):
    """A layer is kept in memory up to min(LAYER_MEMORY_BYTES, fraction of available memory); folds map to
    consecutive sorted sounds; FrameLayers(decode=False) leaves cached layers mapped."""
    from brainlike.extract.frames import MappedLayer

    assert 0 < trf._memory_limit() <= trf.LAYER_MEMORY_BYTES
    problem = synthetic_problem(n_stimuli=30, n_features=6, n_layers=1, n_targets=2, seed=23)
    problem["folds"] = np.random.default_rng(0).permutation(30) % 5
    layer = layer_fits(problem, NumpyBackend(), pca=0)
    # lags 0..4: 4 frames before the 20 response bins, then the response bins, each span contiguous
    assert [part.shape for part in layer.frames] == [(30, 4, 6), (30, 20, 6)] and layer.body == 1
    assert all(part.flags.c_contiguous for part in layer.frames)
    for f, test in enumerate(layer.plan.outer_test):
        np.testing.assert_array_equal(layer._sounds(layer._ranges([f])), test)
    assert layer._ranges([0, 1, 3]) == [(0, 12), (18, 24)]
    monkeypatch.setattr(trf, "LAYER_MEMORY_BYTES", sum(part.nbytes for part in layer.frames) - 1)
    assert layer_fits(problem, NumpyBackend(), pca=0).frames is None

    values = np.zeros((6, 10, 4), dtype=np.float16)

    class Arrays:
        def open(self, name):
            return MappedLayer(values, np.zeros(4, dtype=np.float32))

    class Frames:
        layers, arrays = ["a"], Arrays()

    assert isinstance(trf.FrameLayers(Frames(), decode=False)[0], MappedLayer)
    assert isinstance(trf.FrameLayers(Frames())[0], np.ndarray)
