"""Probes: classifiers trained on a model's time-averaged layer embeddings.

``linear``
    Every layer is standardised (training-set mean and std) and PCA-reduced to at most ``LINEAR_PCA_PER_LAYER``
    components; the layers are concatenated, scaled to unit mean variance and PCA-reduced again to at most
    ``LINEAR_PCA_TOTAL`` components; an L2-regularised multinomial logistic regression is fitted for every C in
    ``LINEAR_CS`` and the C with the best validation accuracy is kept (ties: the smaller C). Fast (seconds).
``pepino2025``
    Pepino et al. 2025 / HEAR: all layers (standardised, PCA-reduced to the smallest width when widths differ), a
    learned weighted sum of layers with weights ``|w| / sum |w|``, an MLP (Linear, BatchNorm, ReLU, dropout 0.1;
    hidden [1024] or [1024, 1024]), Adam, batch 1024, at most 200 epochs, early stopping with patience 20 on
    validation accuracy. The 16 configurations (2 depths x 4 learning rates x 2 Xavier inits) are searched on the
    first split; the best one is trained on every split.

Both return test-set predictions; preprocessing is always fitted on training clips only. Both run single-threaded
(BLAS and torch): their problems are small, and on a shared CPU multi-threaded BLAS/torch spin-waiting made them
30-60x slower in our measurements.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from brainlike.downstream.tasks import Split
from brainlike.errors import BrainlikeError, UnknownNameError

__all__ = ["PROBES", "LINEAR_PCA_PER_LAYER", "LINEAR_PCA_TOTAL", "LINEAR_CS", "LINEAR_MAX_ITER", "LINEAR_TOL",
           "PEPINO_HIDDEN", "PEPINO_LRS", "PEPINO_INITS", "PEPINO_BATCH", "PEPINO_MAX_EPOCHS", "PEPINO_PATIENCE",
           "PEPINO_DROPOUT", "ProbeResult", "accuracy", "check_probe", "single_threaded", "standardise", "pca_reduce",
           "linear_features", "linear_probe", "pepino_configs", "pepino_inputs", "train_weighted_mlp", "pepino_probe",
           "run_probe"]

PROBES = ("linear", "pepino2025")

LINEAR_PCA_PER_LAYER = 128
LINEAR_PCA_TOTAL = 256
LINEAR_CS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
LINEAR_MAX_ITER = 300
LINEAR_TOL = 1e-3

PEPINO_HIDDEN = ((1024,), (1024, 1024))
PEPINO_LRS = (3.2e-3, 1e-3, 3.2e-4, 1e-4)
PEPINO_INITS = ("xavier_uniform", "xavier_normal")
PEPINO_BATCH = 1024
PEPINO_MAX_EPOCHS = 200
PEPINO_PATIENCE = 20
PEPINO_DROPOUT = 0.1


@dataclass
class ProbeResult:
    """Outcome of a probe on one split.

    Attributes
    ----------
    test_pred : ndarray of int
        Predicted class codes of the test clips.
    valid_score : float
        Validation accuracy of the chosen hyper-parameters.
    params : dict
        The chosen hyper-parameters (JSON-serialisable).
    extra : dict
        Anything else worth keeping (e.g. learned layer weights).
    """

    test_pred: np.ndarray
    valid_score: float
    params: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


def accuracy(pred: np.ndarray, true: np.ndarray) -> float:
    """Fraction of correct predictions."""
    pred, true = np.asarray(pred), np.asarray(true)
    if pred.shape != true.shape or pred.size == 0:
        raise BrainlikeError(f"accuracy needs equal, non-empty shapes; got {pred.shape} and {true.shape}")
    return float(np.mean(pred == true))


def check_probe(name: str) -> str:
    """Return ``name`` if it is a probe, else raise :class:`UnknownNameError`."""
    if name not in PROBES:
        raise UnknownNameError(f"unknown probe {name!r}; choose from {', '.join(PROBES)}")
    return name


@contextmanager
def single_threaded() -> Iterator[None]:
    """Limit BLAS (threadpoolctl) and torch to one thread inside the block; restore afterwards."""
    import sys

    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    previous = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        if torch is not None and previous is not None:
            torch.set_num_threads(previous)


# --------------------------------------------------------------------------------------------------------------------
# Shared preprocessing


def standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """z-score columns with the training mean and std (constant columns are left centred, not scaled)."""
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std > 1e-8 * max(float(std.max(initial=0.0)), 1e-30), std, 1.0)
    return [((x - mean) / std).astype(np.float32) for x in (train, *others)]


def pca_reduce(train: np.ndarray, *others: np.ndarray, n_components: int, seed: int = 0) -> list[np.ndarray]:
    """Project on the top principal components of ``train`` (centred on the training mean); no whitening.

    When ``n_components`` is at least the number of columns, the (centred) data are returned unrotated.
    """
    n_components = int(min(n_components, train.shape[0] - 1, train.shape[1]))
    mean = train.mean(axis=0)
    if n_components >= train.shape[1]:
        return [(x - mean).astype(np.float32) for x in (train, *others)]
    from sklearn.decomposition import PCA

    pca = PCA(n_components=n_components, svd_solver="randomized" if n_components < 0.5 * min(train.shape) else "full",
              random_state=seed)
    pca.fit(train)
    return [pca.transform(x).astype(np.float32) for x in (train, *others)]


def _parts(layers: Sequence[np.ndarray], split: Split) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return [(x[split.train], x[split.valid], x[split.test]) for x in layers]


# --------------------------------------------------------------------------------------------------------------------
# Linear probe


def linear_features(layers: Sequence[np.ndarray], split: Split, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Train, validation and test features of the linear probe (see the module docstring)."""
    with single_threaded():
        return _linear_features(layers, split, seed)


def _linear_features(layers: Sequence[np.ndarray], split: Split, seed: int) -> tuple[np.ndarray, ...]:
    blocks: list[list[np.ndarray]] = [[], [], []]
    for tr, va, te in _parts(layers, split):
        z = standardise(tr, va, te)
        for store, x in zip(blocks, pca_reduce(*z, n_components=LINEAR_PCA_PER_LAYER, seed=seed)):
            store.append(x)
    tr, va, te = (np.concatenate(b, axis=1) for b in blocks)
    scale = float(np.sqrt(np.mean(tr.var(axis=0)))) or 1.0
    tr, va, te = tr / scale, va / scale, te / scale
    if tr.shape[1] > LINEAR_PCA_TOTAL:
        tr, va, te = pca_reduce(tr, va, te, n_components=LINEAR_PCA_TOTAL, seed=seed)
    return tr, va, te


def linear_probe(layers: Sequence[np.ndarray], y: np.ndarray, split: Split, *, seed: int = 0,
                 cs: Sequence[float] = LINEAR_CS) -> ProbeResult:
    """Logistic regression on standardised, PCA-reduced layer embeddings; C chosen on the validation fold.

    Parameters
    ----------
    layers : list of ndarray, each (n_clips, features)
        Embeddings of every clip of the task, one array per layer.
    y : ndarray of int, shape (n_clips,)
        Class codes.
    split : Split
        Train / validation / test indices.
    """
    with single_threaded():
        return _linear_probe(layers, y, split, seed, cs)


def _linear_probe(layers, y, split, seed, cs) -> ProbeResult:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    tr, va, te = linear_features(layers, split, seed)
    clf = LogisticRegression(max_iter=LINEAR_MAX_ITER, tol=LINEAR_TOL, warm_start=True, random_state=seed)
    best: tuple[float, float, np.ndarray] | None = None
    for c in sorted(cs):
        clf.set_params(C=c)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(tr, y[split.train])
        score = accuracy(clf.predict(va), y[split.valid])
        if best is None or score > best[0]:
            best = (score, c, clf.predict(te))
    assert best is not None
    return ProbeResult(best[2], best[0], {"C": best[1], "n_features": int(tr.shape[1])})


# --------------------------------------------------------------------------------------------------------------------
# pepino2025 probe (torch)


def pepino_configs() -> list[dict[str, Any]]:
    """The 16 configurations in search order: depth, then learning rate, then init."""
    return [{"hidden": list(h), "lr": lr, "init": init}
            for h in PEPINO_HIDDEN for lr in PEPINO_LRS for init in PEPINO_INITS]


def pepino_inputs(layers: Sequence[np.ndarray], split: Split, seed: int = 0) -> list[tuple[np.ndarray, ...]]:
    """Per layer (train, valid, test): standardised; PCA to the smallest width when layer widths differ."""
    widths = {x.shape[1] for x in layers}
    out = []
    for tr, va, te in _parts(layers, split):
        z = standardise(tr, va, te)
        if len(widths) > 1:
            z = standardise(*pca_reduce(*z, n_components=min(widths), seed=seed))
        out.append(tuple(z))
    width = min(x[0].shape[1] for x in out)
    return [tuple(a[:, :width] for a in x) for x in out]  # PCA may keep fewer columns when clips are few


def _build_net(n_layers: int, width: int, n_classes: int, hidden: Sequence[int], init: str):
    from brainlike.downstream.networks import WeightedSumMLP

    return WeightedSumMLP(n_layers, width, n_classes, hidden, init, PEPINO_DROPOUT)


def train_weighted_mlp(inputs: list[tuple[np.ndarray, ...]], y: np.ndarray, split: Split, config: dict[str, Any], *,
                       n_classes: int, seed: int = 0, max_epochs: int = PEPINO_MAX_EPOCHS,
                       patience: int = PEPINO_PATIENCE) -> ProbeResult:
    """Train one configuration with early stopping on validation accuracy; predict the test clips."""
    import torch  # noqa: F401  (imported first so that single_threaded() limits its threads)

    with single_threaded():
        return _train_weighted_mlp(inputs, y, split, config, n_classes, seed, max_epochs, patience)


def _train_weighted_mlp(inputs, y, split, config, n_classes, seed, max_epochs, patience) -> ProbeResult:
    import torch

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    xs = [torch.from_numpy(np.stack([layer[k] for layer in inputs], axis=1)) for k in range(3)]  # (n, L, F)
    y_tr = torch.from_numpy(np.asarray(y[split.train], dtype=np.int64))
    y_va = np.asarray(y[split.valid])
    net = _build_net(len(inputs), xs[0].shape[2], n_classes, config["hidden"], config["init"])
    optimiser = torch.optim.Adam(net.parameters(), lr=config["lr"])
    loss_fn = torch.nn.CrossEntropyLoss()
    best_score, best_state, best_epoch, waited = -1.0, None, 0, 0
    for epoch in range(max_epochs):
        net.train()
        order = torch.randperm(len(y_tr), generator=generator)
        for start in range(0, len(order), PEPINO_BATCH):
            idx = order[start:start + PEPINO_BATCH]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            optimiser.zero_grad()
            loss_fn(net(xs[0][idx]), y_tr[idx]).backward()
            optimiser.step()
        score = accuracy(_predict(net, xs[1]), y_va)
        if score > best_score:
            best_score, best_epoch, waited = score, epoch, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            waited += 1
            if waited >= patience:
                break
    net.load_state_dict(best_state)
    weights = net.normalised_weights().detach().numpy().round(6).tolist()
    return ProbeResult(_predict(net, xs[2]), best_score, {**config, "best_epoch": best_epoch},
                       {"layer_weights": weights})


def _predict(net, x) -> np.ndarray:
    import torch

    net.eval()
    with torch.no_grad():
        return net(x).argmax(dim=1).numpy()


def pepino_probe(layers: Sequence[np.ndarray], y: np.ndarray, splits: Sequence[Split], *, n_classes: int,
                 seed: int = 0, configs: Sequence[dict[str, Any]] | None = None, max_epochs: int = PEPINO_MAX_EPOCHS,
                 patience: int = PEPINO_PATIENCE) -> list[ProbeResult]:
    """Search the configurations on the first split (validation accuracy; ties: first in search order), then
    train the chosen one on every split. Returns one :class:`ProbeResult` per split."""
    configs = list(configs or pepino_configs())
    first = pepino_inputs(layers, splits[0], seed)
    scores = [train_weighted_mlp(first, y, splits[0], c, n_classes=n_classes, seed=seed, max_epochs=max_epochs,
                                 patience=patience).valid_score for c in configs]
    chosen = configs[int(np.argmax(scores))]
    results = []
    for split in splits:
        inputs = first if split is splits[0] else pepino_inputs(layers, split, seed)
        results.append(train_weighted_mlp(inputs, y, split, chosen, n_classes=n_classes, seed=seed,
                                          max_epochs=max_epochs, patience=patience))
    return results


def run_probe(name: str, layers: Sequence[np.ndarray], y: np.ndarray, splits: Sequence[Split], *, n_classes: int,
              seed: int = 0) -> list[ProbeResult]:
    """Run probe ``name`` on every split."""
    check_probe(name)
    if name == "linear":
        return [linear_probe(layers, y, s, seed=seed) for s in splits]
    return pepino_probe(layers, y, splits, n_classes=n_classes, seed=seed)
