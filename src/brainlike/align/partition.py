"""Variance partitioning between a model and a control (methods.md section 10), on the pepino2025 folds.

Per target, on the same folds: R2_model and R2_control from the regression protocol alone (a control of several
bands is itself a banded ridge over its bands); R2_joint from banded ridge on [the model's layer, the control's
bands], each band's layer being its own inner choice. Then

    unique_model = R2_joint - R2_control,  unique_control = R2_joint - R2_model,
    shared = R2_model + R2_control - R2_joint,

all from pooled out-of-fold predictions. These parts are defined by the identities; they are not an additive
decomposition of r^2 in general and may be negative. :func:`derive_parts` applies the identities to any array of base
scores (per target, aggregated, or per bootstrap draw), so they hold exactly at every level they are reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from brainlike.align.banded import BandedResult, run_banded
from brainlike.align.pepino2025 import RegressionResult, run_pepino2025

__all__ = ["BASE_PARTS", "DERIVED_PARTS", "PARTS", "derive_parts", "PartitionResult", "run_partition",
           "identical_kernels", "DEFAULT_BOOTSTRAP", "draw_counts", "weighted_r2", "bootstrap_parts"]

log = logging.getLogger(__name__)

BASE_PARTS = ("model", "control", "joint")
DERIVED_PARTS = {"unique_model": {"joint": 1.0, "control": -1.0},
                 "unique_control": {"joint": 1.0, "model": -1.0},
                 "shared": {"model": 1.0, "control": 1.0, "joint": -1.0}}
PARTS = BASE_PARTS + tuple(DERIVED_PARTS)


def derive_parts(base: dict[str, object]) -> dict[str, object]:
    """All six parts from the three base scores (arrays or floats of any matching shape), by the identities."""
    out = {name: base[name] for name in BASE_PARTS}
    for name, terms in DERIVED_PARTS.items():
        out[name] = sum(weight * base[part] for part, weight in terms.items())
    return out


@dataclass
class PartitionResult:
    """Outcome of :func:`run_partition`.

    Attributes
    ----------
    model : RegressionResult
        The model alone (pepino2025).
    control : RegressionResult or BandedResult
        The control alone (pepino2025 for one band, banded ridge over its bands otherwise).
    control_bands : list of RegressionResult
        Each control band alone (its layer choice feeds the banded fits).
    joint : BandedResult
        Banded ridge on [model layer, control bands].
    identical : list of tuple
        (control band, model layer) pairs whose kernels are equal up to scale (the control repeats the model).
    """

    model: RegressionResult
    control: RegressionResult | BandedResult
    control_bands: list[RegressionResult]
    joint: BandedResult
    identical: list[tuple[int, int]]

    @property
    def base_scores(self) -> dict[str, np.ndarray]:
        return {"model": self.model.scores, "control": self.control.scores, "joint": self.joint.scores}

    @property
    def parts(self) -> dict[str, np.ndarray]:
        return derive_parts(self.base_scores)

    @property
    def predictions(self) -> dict[str, np.ndarray]:
        """Pooled out-of-fold predictions (n, t) of the three fits."""
        return {"model": self.model.predictions, "control": self.control.predictions,
                "joint": self.joint.predictions}


def run_partition(model_grams: list[np.ndarray], control_grams: list[list[np.ndarray]], responses: np.ndarray,
                  folds: np.ndarray, backend=None, grids: list[np.ndarray] | None = None,
                  inner_score: str = "pooled") -> PartitionResult:
    """Variance partitioning of a model (Gram matrix per layer) against a control (one list of layer Grams per band).

    Parameters
    ----------
    model_grams : list of ndarray (n, n)
    control_grams : list (bands) of list (layers) of ndarray (n, n)
    responses : ndarray (n, t)
    folds : ndarray (n,)
    backend : NumpyBackend or TorchBackend
    grids : list of ndarray, optional
        Relative alpha grid of each band of the joint fit ([model] + control bands); the control-alone fit of a
        several-band control uses the control's grids.
    inner_score : {"pooled", "fold-mean-r"}
    """
    identical = identical_kernels(model_grams, control_grams)
    for band in sorted({b for b, _ in identical}):
        layers = [layer for b, layer in identical if b == band]
        log.warning("control band %d has the same kernel as model layer(s) %s (up to scale): the control repeats "
                    "the model, so unique parts are ~0 and the shared part is everything", band + 1,
                    ", ".join(map(str, layers)))
    model = run_pepino2025(model_grams, responses, folds, backend, inner_score=inner_score)
    bands = [run_pepino2025(g, responses, folds, backend, inner_score=inner_score) for g in control_grams]
    control_layers = [b.layer_index for b in bands]
    if len(bands) == 1:
        control: RegressionResult | BandedResult = bands[0]
    else:
        control = run_banded(control_grams, control_layers, responses, folds, backend,
                             grids=None if grids is None else grids[1:], inner_score=inner_score)
    joint = run_banded([model_grams] + list(control_grams), [model.layer_index] + control_layers, responses, folds,
                       backend, grids=grids, inner_score=inner_score)
    return PartitionResult(model, control, bands, joint, identical)


def identical_kernels(model_grams: list[np.ndarray], control_grams: list[list[np.ndarray]],
                      tolerance: float = 1e-6) -> list[tuple[int, int]]:
    """(control band, model layer) pairs whose centred kernels are equal up to a positive scale."""
    def normalised(gram: np.ndarray) -> np.ndarray:
        centred = gram - gram.mean(0) - gram.mean(1)[:, None] + gram.mean()
        norm = np.linalg.norm(centred)
        return centred / norm if norm > 0 else centred

    model = [normalised(g) for g in model_grams]
    pairs = []
    for b, layers in enumerate(control_grams):
        for gram in layers:
            ctrl = normalised(gram)
            pairs += [(b, m) for m, g in enumerate(model) if np.linalg.norm(ctrl - g) <= tolerance]
    return sorted(set(pairs))


DEFAULT_BOOTSTRAP = 1000
"""Bootstrap resamples over stimuli for the CIs of every part when none are asked for."""


def draw_counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """How often each stimulus is drawn in each resample (n_boot, n): the same draws as
    :func:`brainlike.align.stats.bootstrap_stimuli` with this seed."""
    rng = np.random.default_rng(seed)
    return np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_boot)]).astype(np.float64)


def weighted_r2(counts: np.ndarray, predictions: np.ndarray, responses: np.ndarray) -> np.ndarray:
    """max(r, 0)^2 between predictions and responses (n, t) over each resample of stimuli (draws, t).

    A resample is a count per stimulus (rows of ``counts``), so every sum over the resampled stimuli is one matrix
    product; both sides are centred on their full-sample means first (r is shift-invariant) to avoid cancellation.
    """
    p = predictions - predictions.mean(0)
    y = responses - responses.mean(0)
    n = counts.sum(axis=1, keepdims=True)
    sp, sy = counts @ p, counts @ y
    cov = counts @ (p * y) - sp * sy / n
    var_p = counts @ (p * p) - sp * sp / n
    var_y = counts @ (y * y) - sy * sy / n
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where((var_p > 0) & (var_y > 0), cov / np.sqrt(np.maximum(var_p * var_y, 1e-300)), 0.0)
    return np.maximum(r, 0) ** 2


def bootstrap_parts(predictions: dict[str, np.ndarray], responses: np.ndarray, subjects: np.ndarray, n_boot: int,
                    seed: int, level: float = 0.95, draws_per_batch: int = 100):
    """``ci(columns) -> {part: (low, high)}``: percentile bootstrap CIs over stimuli of every part.

    For each resample of stimuli, the base scores of every target in ``columns`` are recomputed from the pooled
    out-of-fold predictions (which stay fixed), aggregated as the records are (median over targets within a
    subject, mean over subjects), and the other parts derived by the identities.
    """
    counts = draw_counts(len(responses), n_boot, seed)
    tail = (1 - level) / 2

    def ci(columns: np.ndarray) -> dict[str, tuple[float, float]]:
        cols = np.flatnonzero(columns)
        labels = subjects[cols]
        groups = [labels == s for s in dict.fromkeys(labels)]
        aggregated: dict[str, list[np.ndarray]] = {part: [] for part in BASE_PARTS}
        for start in range(0, n_boot, draws_per_batch):
            batch = counts[start:start + draws_per_batch]
            for part in BASE_PARTS:
                r2 = weighted_r2(batch, predictions[part][:, cols], responses[:, cols])
                aggregated[part].append(np.mean([np.median(r2[:, g], axis=1) for g in groups], axis=0))
        draws = derive_parts({part: np.concatenate(v) for part, v in aggregated.items()})
        return {part: (float(np.quantile(v, tail)), float(np.quantile(v, 1 - tail))) for part, v in draws.items()}

    return ci
