"""Representational geometry between feature sets: layers of models, or a neural dataset (methods.md section 11).

Every metric compares two feature sets X (n x p) and Y (n x q) over the same n sounds, matched by NAME:

``cka``
    Linear CKA (Kornblith et al. 2019) of the column-centred features: ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F).
``cka-debiased``
    The same ratio with the unbiased HSIC estimator of Song et al. 2012 on the linear Gram matrices, computed as
    the inner product of U-centred Grams (diagonal zeroed; row, column and grand means removed with the factors
    1 / (n - 2) and 1 / ((n - 1)(n - 2))), which equals Song et al.'s estimator up to the factor n (n - 3).
``procrustes``
    Angular Procrustes shape distance (Williams et al. 2021), radians in [0, pi/2]:
    arccos(||X^T Y||_* / (||X||_F ||Y||_F)), with optional partial whitening ``whiten`` = w in [0, 1]: each set is
    mapped to X ((1 - w) I + w s (X^T X)^(-1/2)) with the pseudo-inverse square root and s^2 the mean non-zero
    eigenvalue of X^T X (so the map, and the distance, are scale invariant); w = 0 is plain Procrustes, w = 1 full
    whitening (CCA-like; refused when a set has n - 1 or more features, where it makes every pair identical).
    netrep's ``alpha`` is 1 - w.
``procrustes-cv``
    Cross-validated: over the stimulus folds, the centring, whitening and rotation are fitted on the training sounds
    and applied to the held-out sounds; distance = arccos(sum_f <X_f Q_f, Y_f> / sqrt(sum_f ||X_f||^2 sum_f
    ||Y_f||^2)) over the held-out blocks. Q is the orthogonal polar factor of X_train^T Y_train on its non-zero
    singular values (equal to scipy's ``orthogonal_procrustes`` where that is unique).
``rsa``
    Spearman rho between the upper triangles of the two RDMs (section 4: z-scored features, 1 - Pearson).

With more features than sounds (p > n) every metric but ``rsa`` is invariant to orthogonal maps of the feature space,
so each layer is first reduced, exactly, to n x r coordinates C with C C^T = X X^T (r = rank <= n): the work per pair
is then on n x n matrices whatever the width, and all pairs of two models are one batched matrix product plus one
batched SVD.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import xarray as xr

from brainlike.align import aggregate as agg
from brainlike.errors import DataError, ProtocolError

METRICS = ("cka", "cka-debiased", "procrustes", "procrustes-cv", "rsa")
DISTANCES = ("procrustes", "procrustes-cv")
"""Metrics that are distances (0 = same shape); the others are similarities (1 = same)."""

RANK_TOLERANCE = 10.0
"""Singular values below RANK_TOLERANCE * n * eps * max are treated as zero."""


@dataclass
class FeatureSet:
    """Features of one model (one array per layer) or of a neural dataset (one "layer"), rows named by stimulus.

    Attributes
    ----------
    name : str
        Model spec or dataset name.
    layers : list of str or None
        Layer names; ``[None]`` for a neural dataset.
    arrays : list of ndarray (n_stimuli, features)
    stimulus_ids : list of str
        Row names of every array.
    kind : str
        ``model`` or ``dataset``.
    """

    name: str
    layers: list[str | None]
    arrays: list[np.ndarray]
    stimulus_ids: list[str]
    kind: str = "model"

    @classmethod
    def from_activations(cls, activations) -> "FeatureSet":
        return cls(activations.model, list(activations.layers), [activations.arrays[l] for l in activations.layers],
                   list(activations.stimulus_ids))

    @classmethod
    def from_dataset(cls, dataset) -> "FeatureSet":
        """A neural dataset as one feature set: its responses (mean over repetitions), sounds x targets."""
        return cls(dataset.name, [None], [dataset.mean_responses()], dataset.stimulus_ids, kind="dataset")

    def select(self, layers: Sequence[str]) -> "FeatureSet":
        """Only the named layers, in the given order."""
        missing = [l for l in layers if l not in self.layers]
        if missing:
            raise DataError(f"{self.name} has no layer(s) {missing} (layers: {', '.join(map(str, self.layers))})")
        index = [self.layers.index(l) for l in layers]
        return FeatureSet(self.name, list(layers), [self.arrays[i] for i in index], self.stimulus_ids, self.kind)

    def aligned_to(self, stimulus_ids: Sequence[str], reference: str) -> "FeatureSet":
        """Rows reordered to ``stimulus_ids`` by name; the two must name the same stimuli."""
        own = list(self.stimulus_ids)
        if len(set(own)) != len(own):
            raise DataError(f"{self.name}: duplicated stimulus names")
        if own == list(stimulus_ids):
            return self
        missing = [s for s in stimulus_ids if s not in set(own)]
        extra = [s for s in own if s not in set(stimulus_ids)]
        if missing or extra:
            raise DataError(f"{self.name} and {reference} cover different stimuli: {len(missing)} of {reference}'s "
                            f"missing from {self.name} (e.g. {missing[:3]}), {len(extra)} not in {reference} "
                            f"(e.g. {extra[:3]})")
        order = {s: i for i, s in enumerate(own)}
        rows = np.array([order[s] for s in stimulus_ids])
        return FeatureSet(self.name, self.layers, [a[rows] for a in self.arrays], list(stimulus_ids), self.kind)

    def label(self, i: int) -> str:
        layer = self.layers[i]
        return self.name if layer is None else f"{self.name}/{layer}"


def check_features(features: FeatureSet) -> None:
    """Refuse NaN/Inf features and layers that are constant over the stimuli (one line naming the layer)."""
    for layer, array in zip(features.layers, features.arrays):
        where = f"{features.name}" + (f" layer {layer!r}" if layer is not None else "")
        array = np.asarray(array)
        if array.ndim != 2 or array.shape[0] != len(features.stimulus_ids):
            raise DataError(f"{where}: features must be (stimuli, features) with {len(features.stimulus_ids)} rows; "
                            f"got {array.shape}")
        if not np.all(np.isfinite(array)):
            raise DataError(f"{where} has NaN or Inf features")
        if array.shape[1] == 0 or np.all(np.ptp(array, axis=0) == 0):
            raise DataError(f"{where} is constant across stimuli: its geometry is undefined")


# ---------------------------------------------------------------------------------------------------------------
# exact reduction to n x r coordinates


def reduced_coordinates(features: np.ndarray) -> np.ndarray:
    """Column-centred features in an orthonormal basis of their row space: C (n, r) with C C^T = X_c X_c^T.

    For p <= n the centred features themselves (no change of basis); for p > n the eigenvectors of the centred
    Gram matrix scaled by the square roots of its non-zero eigenvalues.
    """
    from brainlike.align.ridge import gram_matrix

    x = np.asarray(features)
    if x.shape[1] <= x.shape[0]:
        x = np.asarray(x, dtype=np.float64)
        return x - x.mean(axis=0)
    values, vectors = np.linalg.eigh(gram_matrix(x))
    keep = values > RANK_TOLERANCE * len(values) * np.finfo(np.float64).eps * max(values.max(), 0.0)
    return vectors[:, keep] * np.sqrt(values[keep])


def whitened(coords: np.ndarray, whiten: float) -> np.ndarray:
    """Partially whitened coordinates, up to an orthogonal map of the features: U ((1 - w) S + w s) (see module)."""
    if whiten == 0:
        return coords
    u, s, _ = np.linalg.svd(coords, full_matrices=False)
    keep = s > RANK_TOLERANCE * max(coords.shape) * np.finfo(np.float64).eps * s.max()
    u, s = u[:, keep], s[keep]
    return u * ((1 - whiten) * s + whiten * np.sqrt(np.mean(s ** 2)))


def _check_whiten(whiten: float, sets: Sequence[FeatureSet]) -> None:
    if not 0 <= whiten <= 1:
        raise ProtocolError(f"whiten must be in [0, 1]; got {whiten}")
    if whiten == 1:
        for features in sets:
            for layer, array in zip(features.layers, features.arrays):
                if array.shape[1] >= array.shape[0] - 1:
                    raise ProtocolError(f"full whitening (whiten=1) is undefined for {features.name} "
                                        f"{'' if layer is None else f'layer {layer!r} '}({array.shape[1]} features "
                                        f"for {array.shape[0]} sounds): use whiten < 1")


def _stacked(coords: Sequence[np.ndarray]) -> np.ndarray:
    """(L, n, r_max) with zero columns padding narrower layers (zeros change no singular value)."""
    width = max(c.shape[1] for c in coords)
    out = np.zeros((len(coords), coords[0].shape[0], width))
    for i, c in enumerate(coords):
        out[i, :, :c.shape[1]] = c
    return out


# ---------------------------------------------------------------------------------------------------------------
# metrics on lists of layers: (La, Lb) matrices


def cka_matrix(a: Sequence[np.ndarray], b: Sequence[np.ndarray], debiased: bool = False) -> np.ndarray:
    """Linear (or debiased linear) CKA between every layer of ``a`` and every layer of ``b``."""
    ga = np.stack([_gram(x, debiased).ravel() for x in a])  # (La, n*n)
    gb = ga if b is a else np.stack([_gram(x, debiased).ravel() for x in b])
    cross = ga @ gb.T
    norm_a, norm_b = np.einsum("ij,ij->i", ga, ga), np.einsum("ij,ij->i", gb, gb)
    with np.errstate(invalid="ignore", divide="ignore"):
        den = np.sqrt(np.outer(norm_a, norm_b))
        return np.where((norm_a[:, None] > 0) & (norm_b[None, :] > 0), cross / np.where(den > 0, den, 1), np.nan)


def _gram(features: np.ndarray, debiased: bool) -> np.ndarray:
    c = reduced_coordinates(features)
    gram = c @ c.T
    return u_centred(gram) if debiased else gram


def u_centred(gram: np.ndarray) -> np.ndarray:
    """U-centring of a Gram matrix (Szekely & Rizzo 2014): <U(K), U(L)> / (n (n - 3)) is Song et al.'s unbiased
    HSIC."""
    n = gram.shape[0]
    if n < 4:
        raise ProtocolError(f"debiased CKA needs at least 4 stimuli; got {n}")
    k = np.array(gram, dtype=np.float64)
    np.fill_diagonal(k, 0.0)
    rows = k.sum(axis=1)
    out = k - rows[:, None] / (n - 2) - rows[None, :] / (n - 2) + rows.sum() / ((n - 1) * (n - 2))
    np.fill_diagonal(out, 0.0)
    return out


def procrustes_matrix(a: Sequence[np.ndarray], b: Sequence[np.ndarray], whiten: float = 0.0) -> np.ndarray:
    """Angular Procrustes distance (radians) between every layer of ``a`` and every layer of ``b``.

    All pairs at once: reduced coordinates per layer, one batched product for every cross matrix C_a^T C_b and one
    batched SVD (singular values only) for their nuclear norms.
    """
    ca = [whitened(reduced_coordinates(x), whiten) for x in a]
    cb = ca if b is a else [whitened(reduced_coordinates(x), whiten) for x in b]
    sa, sb = _stacked(ca), _stacked(cb)  # (La, n, ra), (Lb, n, rb)
    cross = np.matmul(sa.transpose(0, 2, 1)[:, None], sb[None])  # (La, Lb, ra, rb)
    nuclear = np.linalg.svd(cross, compute_uv=False).sum(axis=-1)
    norms = np.sqrt(np.einsum("lnr,lnr->l", sa, sa)), np.sqrt(np.einsum("lnr,lnr->l", sb, sb))
    return _angle(nuclear / np.outer(*norms))


def _angle(cosine: np.ndarray) -> np.ndarray:
    return np.arccos(np.clip(cosine, -1.0, 1.0))


def procrustes_cv_matrix(a: Sequence[np.ndarray], b: Sequence[np.ndarray], folds: np.ndarray,
                         whiten: float = 0.0) -> np.ndarray:
    """Cross-validated angular Procrustes distance (radians) between every layer of ``a`` and of ``b``."""
    folds = np.asarray(folds)
    n = len(folds)
    if len(np.unique(folds)) < 2:
        raise ProtocolError("cross-validated Procrustes needs at least 2 stimulus folds")
    ca = [reduced_coordinates(x) for x in a]
    cb = ca if b is a else [reduced_coordinates(x) for x in b]
    if any(c.shape[0] != n for c in list(ca) + list(cb)):
        raise ProtocolError(f"{n} fold labels for feature sets of another number of stimuli")
    num = np.zeros((len(ca), len(cb)))
    den_a, den_b = np.zeros(len(ca)), np.zeros(len(cb))
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        fa = [_fold_transform(c, train, test, whiten) for c in ca]
        fb = fa if b is a else [_fold_transform(c, train, test, whiten) for c in cb]
        den_a += [np.sum(te ** 2) for _, te in fa]
        den_b += [np.sum(te ** 2) for _, te in fb]
        for i, (tr_a, te_a) in enumerate(fa):
            for j, (tr_b, te_b) in enumerate(fb):
                num[i, j] += np.sum((te_a @ polar_factor(tr_a.T @ tr_b)) * te_b)
    return _angle(num / np.sqrt(np.outer(den_a, den_b)))


def _fold_transform(coords: np.ndarray, train: np.ndarray, test: np.ndarray,
                    whiten: float) -> tuple[np.ndarray, np.ndarray]:
    """Training and held-out rows centred with the training means and partially whitened with the training
    covariance (pseudo-inverse square root; see module)."""
    mean = coords[train].mean(axis=0)
    tr, te = coords[train] - mean, coords[test] - mean
    if whiten == 0:
        return tr, te
    _, s, vt = np.linalg.svd(tr, full_matrices=False)
    keep = s > RANK_TOLERANCE * max(tr.shape) * np.finfo(np.float64).eps * s.max()
    s, vt = s[keep], vt[keep]
    scale = np.sqrt(np.mean(s ** 2))
    transform = (1 - whiten) * np.eye(tr.shape[1]) + whiten * scale * (vt.T / s) @ vt
    return tr @ transform, te @ transform


def polar_factor(m: np.ndarray) -> np.ndarray:
    """U V^T of the SVD of ``m`` over its non-zero singular values (the orthogonal Procrustes rotation)."""
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    keep = s > RANK_TOLERANCE * max(m.shape) * np.finfo(np.float64).eps * max(s.max(initial=0.0), 0.0)
    return u[:, keep] @ vt[keep]


def rsa_matrix(a: Sequence[np.ndarray], b: Sequence[np.ndarray], labels_a: Sequence[str] | None = None,
               labels_b: Sequence[str] | None = None) -> np.ndarray:
    """Spearman rho between the RDMs of every layer of ``a`` and of ``b`` (upper triangles, k = 1); the labels
    name a layer whose RDM is undefined in the error."""
    ra = _ranked_rdms(a, labels_a)
    rb = ra if b is a else _ranked_rdms(b, labels_b)
    return ra @ rb.T


def _ranked_rdms(arrays: Sequence[np.ndarray], labels: Sequence[str] | None) -> np.ndarray:
    """Upper-triangle RDM vectors, rank-transformed, centred and scaled to unit norm: (L, n_pairs)."""
    from scipy.stats import rankdata

    from brainlike.align.rsa import rdm

    n = arrays[0].shape[0]
    i, j = np.triu_indices(n, k=1)
    vectors = []
    for k, x in enumerate(arrays):
        try:
            vectors.append(rdm(x)[i, j])
        except ProtocolError as exc:
            raise DataError(f"{labels[k] if labels else f'feature set {k}'}: {exc}") from None
    ranks = rankdata(np.stack(vectors), axis=1)
    ranks -= ranks.mean(axis=1, keepdims=True)
    return ranks / np.linalg.norm(ranks, axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------------------------
# feature sets -> matrix, records, netCDF


@dataclass
class Similarity:
    """A matrix of one metric between the layers of feature sets.

    Attributes
    ----------
    metric : str
    matrix : ndarray (n_rows, n_columns)
    rows, columns : list of (str, str or None)
        (feature set name, layer) of each row and column.
    whiten : float
        Partial whitening of the Procrustes metrics (0 otherwise).
    stimulus_set : str
    n_stimuli : int
    """

    metric: str
    matrix: np.ndarray
    rows: list[tuple[str, str | None]]
    columns: list[tuple[str, str | None]]
    whiten: float
    stimulus_set: str
    n_stimuli: int

    @property
    def is_distance(self) -> bool:
        return self.metric in DISTANCES

    def records(self) -> list[dict[str, Any]]:
        """One record per cell (contracts.md section 7): ``model_a/layer_a`` the row, ``model_b/layer_b`` the
        column; ``model`` and ``layer`` repeat the row's."""
        extra = {"whiten": self.whiten} if self.metric in DISTANCES else {}
        out = []
        for (i, (model_a, layer_a)), (j, (model_b, layer_b)) in ((r, c) for r in enumerate(self.rows)
                                                                 for c in enumerate(self.columns)):
            out.append(agg.clean(dict(
                model=model_a, dataset=self.stimulus_set, metric=self.metric, protocol=None, selection=None,
                target=None, score=float(self.matrix[i, j]), sem=None, layer=layer_a, model_a=model_a,
                layer_a=layer_a, model_b=model_b, layer_b=layer_b, n_stimuli=self.n_stimuli, **extra)))
        return out

    def to_dataset(self) -> xr.Dataset:
        """The matrix as a labelled array (dims ``row``, ``column``; model and layer coordinates)."""
        def coords(items, dim):
            return {f"{dim}_model": (dim, [m for m, _ in items]),
                    f"{dim}_layer": (dim, ["" if l is None else l for _, l in items])}

        return xr.Dataset(
            {"similarity": (("row", "column"), self.matrix)},
            coords={"row": [label(m, l) for m, l in self.rows], "column": [label(m, l) for m, l in self.columns],
                    **coords(self.rows, "row"), **coords(self.columns, "column")},
            attrs={"metric": self.metric, "whiten": self.whiten, "stimulus_set": self.stimulus_set,
                   "n_stimuli": self.n_stimuli, "kind": "distance (radians)" if self.is_distance else "similarity"})


def label(model: str, layer: str | None) -> str:
    return model if layer is None else f"{model}/{layer}"


def similarity(sets: Sequence[FeatureSet], metric: str = "cka", *, folds: np.ndarray | None = None,
               whiten: float = 0.0, stimulus_set: str = "natsound165") -> Similarity:
    """A layer x layer matrix between feature sets.

    With two sets: rows are the layers of the first, columns those of the second (a set given twice compares a
    model with itself). With more: rows and columns are every layer of every set.

    Parameters
    ----------
    sets : sequence of FeatureSet
        Aligned to the first set's stimulus order by name (they must name the same stimuli).
    metric : {"cka", "cka-debiased", "procrustes", "procrustes-cv", "rsa"}
    folds : ndarray (n_stimuli,), optional
        Fold label per stimulus of the first set's order (``procrustes-cv``).
    whiten : float
        Partial whitening of the Procrustes metrics, in [0, 1].

    Raises
    ------
    DataError
        Different stimuli, NaN/Inf or constant features.
    ProtocolError
        Unknown metric, bad whitening, missing folds.
    """
    if metric not in METRICS:
        raise ProtocolError(f"unknown similarity metric {metric!r}; choose from {', '.join(METRICS)}")
    if len(sets) < 2:
        raise ProtocolError("similarity needs at least two feature sets (give one twice to compare it with itself)")
    reference = sets[0]
    sets = [reference] + [s.aligned_to(reference.stimulus_ids, reference.name) for s in sets[1:]]
    for features in sets:
        check_features(features)
    if metric in DISTANCES:
        _check_whiten(whiten, sets)
    if metric == "procrustes-cv" and folds is None:
        raise ProtocolError("procrustes-cv needs stimulus folds")
    row_sets, column_sets = ([sets[0]], [sets[1]]) if len(sets) == 2 else (list(sets), list(sets))
    a = [x for s in row_sets for x in s.arrays]
    same = len(sets) > 2 or sets[1] is sets[0]
    b = a if same else [x for s in column_sets for x in s.arrays]
    if metric == "rsa":
        matrix = rsa_matrix(a, b, [s.label(i) for s in row_sets for i in range(len(s.layers))],
                            [s.label(i) for s in column_sets for i in range(len(s.layers))])
    else:
        matrix = _matrix(metric, a, b, folds, whiten)
    rows = [(s.name, layer) for s in row_sets for layer in s.layers]
    columns = [(s.name, layer) for s in column_sets for layer in s.layers]
    return Similarity(metric, matrix, rows, columns, float(whiten if metric in DISTANCES else 0.0), stimulus_set,
                      len(reference.stimulus_ids))


def _matrix(metric: str, a: list[np.ndarray], b: list[np.ndarray], folds, whiten: float) -> np.ndarray:
    if metric in ("cka", "cka-debiased"):
        return cka_matrix(a, b, debiased=metric == "cka-debiased")
    if metric == "procrustes":
        return procrustes_matrix(a, b, whiten)
    return procrustes_cv_matrix(a, b, folds, whiten)


# single pairs (tests and quick use)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two feature arrays over the same rows."""
    return float(cka_matrix([x], [y])[0, 0])


def debiased_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Debiased linear CKA (unbiased HSIC) of two feature arrays over the same rows."""
    return float(cka_matrix([x], [y], debiased=True)[0, 0])


def procrustes_distance(x: np.ndarray, y: np.ndarray, whiten: float = 0.0) -> float:
    """Angular Procrustes distance (radians) of two feature arrays over the same rows."""
    return float(procrustes_matrix([x], [y], whiten)[0, 0])
