"""Representational similarity analysis (methods.md section 4).

RDM = 1 - Pearson correlation between stimuli, after z-scoring every feature (unit, voxel) across stimuli.
RDMs are compared with Spearman's rho over the upper triangle (k = 1). Layers are chosen either by the maximum
over layers (``layer-max``, optimistic) or by cross-validation over pairs of stimulus folds (``cv``, the paper's
procedure; a symmetric variant is available as ``cv_layer_rsa(..., scheme="symmetric")``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import rankdata

from brainlike.errors import ProtocolError

__all__ = ["RDMs", "zscore_features", "rdm", "spearman_upper", "layer_rhos", "cv_layer_rsa",
           "leave_one_subject_out_ceiling"]


@dataclass
class RDMs:
    """A stack of RDMs with descriptors (after rsatoolbox's ``RDMs``).

    Attributes
    ----------
    matrices : ndarray (n_rdms, n_stimuli, n_stimuli)
    descriptors : dict
        Per-RDM labels, e.g. ``{"layer": [...]}`` or ``{"subject": [...]}``.
    stimulus_ids : list of str
    """

    matrices: np.ndarray
    descriptors: dict[str, list] = field(default_factory=dict)
    stimulus_ids: list[str] = field(default_factory=list)

    def upper(self) -> np.ndarray:
        """Upper-triangle vectors (n_rdms, n_pairs), k = 1."""
        i, j = np.triu_indices(self.matrices.shape[1], k=1)
        return self.matrices[:, i, j]


def zscore_features(features: np.ndarray) -> np.ndarray:
    """z-score each column across rows (float64); constant columns become 0."""
    x = np.asarray(features, dtype=np.float64)
    x = x - x.mean(axis=0)
    std = x.std(axis=0)
    return np.divide(x, std, out=np.zeros_like(x), where=std > 0)


def rdm(features: np.ndarray) -> np.ndarray:
    """1 - Pearson correlation between rows of z-scored features, (n, n) float64, zero diagonal."""
    z = zscore_features(features)
    z = z - z.mean(axis=1, keepdims=True)
    norms = np.sqrt(np.einsum("ij,ij->i", z, z))
    if np.any(norms == 0):
        raise ProtocolError("a stimulus has identical values on every feature: its correlations are undefined")
    z = z / norms[:, None]
    matrix = 1.0 - z @ z.T
    matrix = (matrix + matrix.T) / 2
    np.fill_diagonal(matrix, 0.0)
    return matrix


def spearman_upper(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Spearman rho between the upper triangles (k = 1) of two RDMs, optionally restricted to ``mask`` cells."""
    i, j = np.triu_indices(a.shape[0], k=1)
    if mask is not None:
        keep = mask[i, j]
        i, j = i[keep], j[keep]
    return _pearson(rankdata(a[i, j]), rankdata(b[i, j]))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean()
    y = y - y.mean()
    den = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / den) if den > 0 else 0.0


def layer_rhos(model_rdms: list[np.ndarray], brain_rdm: np.ndarray) -> np.ndarray:
    """rho of every layer's RDM with one brain RDM."""
    return np.array([spearman_upper(m, brain_rdm) for m in model_rdms])


CV_SCHEMES = ("paper", "symmetric")


def cv_layer_rsa(model_rdms: list[np.ndarray], brain_rdm: np.ndarray, folds: np.ndarray,
                 scheme: str = "paper") -> tuple[float, list[int]]:
    """Cross-validated layer choice over pairs of stimulus folds; the assembled RDM is scored once.

    ``scheme="paper"`` (selection ``cv``) is braindnn's ``rsa_layer_select`` (methods.md section 4): for each pair
    of folds (i, j), i <= j in order, the layer with the highest Spearman rho on the training cells (upper
    triangle), those whose ROW lies outside fold i AND whose COLUMN lies outside fold j, fills every other cell
    (row in fold i OR column in fold j) of the assembled RDM; later pairs overwrite earlier ones. The training
    cells are not symmetric: cell (r, c) may train pair (i, j) while (c, r) is filled by it.
    ``scheme="symmetric"``: train on cells whose row and column both lie outside folds i and j, fill only the
    cells with one index in fold i and the other in fold j (no stimulus of a filled cell is seen in training;
    not the paper's numbers).

    Returns
    -------
    rho : float
    chosen : list of int
        Layer chosen for each fold pair, in (i, j) order.
    """
    if scheme not in CV_SCHEMES:
        raise ProtocolError(f"unknown cross-validated RSA scheme {scheme!r}; choose from {', '.join(CV_SCHEMES)}")
    folds = np.asarray(folds)
    values = np.unique(folds)
    if len(values) < 3:
        raise ProtocolError("cross-validated RSA needs at least 3 folds")
    assembled = np.zeros_like(brain_rdm)
    chosen = []
    for a, fi in enumerate(values):
        for fj in values[a:]:
            in_i, in_j = folds == fi, folds == fj
            if scheme == "paper":
                train = (~in_i)[:, None] & (~in_j)[None, :]
                fill = ~train
            else:
                outside = ~(in_i | in_j)
                train = outside[:, None] & outside[None, :]
                fill = (in_i[:, None] & in_j[None, :]) | (in_j[:, None] & in_i[None, :])
            best = int(np.argmax([spearman_upper(m, brain_rdm, train) for m in model_rdms]))
            chosen.append(best)
            assembled[fill] = model_rdms[best][fill]
    return spearman_upper(assembled, brain_rdm), chosen


def leave_one_subject_out_ceiling(subject_rdms: list[np.ndarray], rank_first: bool = False) -> np.ndarray:
    """Noise ceiling ("topline"): rho between each subject's RDM and the mean RDM of the other subjects.

    With ``rank_first`` the other subjects' RDMs are rank-transformed before averaging (rsatoolbox's
    ``boot_noise_ceiling(method="spearman")`` lower bound); the default averages the RDMs themselves (methods.md).
    """
    if len(subject_rdms) < 2:
        raise ProtocolError("a leave-one-subject-out ceiling needs at least 2 subjects")
    stack = np.stack(subject_rdms)
    if rank_first:
        n = stack.shape[1]
        i, j = np.triu_indices(n, k=1)
        ranked = np.zeros_like(stack)
        for s in range(len(stack)):
            ranked[s][i, j] = rankdata(stack[s][i, j])
            ranked[s] = ranked[s] + ranked[s].T
        total = ranked.sum(axis=0)
        return np.array([spearman_upper(stack[s], (total - ranked[s]) / (len(stack) - 1))
                         for s in range(len(stack))])
    total = stack.sum(axis=0)
    return np.array([spearman_upper(stack[s], (total - stack[s]) / (len(stack) - 1)) for s in range(len(stack))])
