"""Ridge engine benchmark on a B2021-sized problem (issue 3).

165 stimuli, N targets (default 26,792), a 13-layer model of width 768, random data. Measures in ONE run:

* brainlike pepino2025 (numpy float64, and torch float32 on CPU or CUDA),
* himalaya KernelRidgeCV on the same splits and alpha grid (no edge extension; the per-layer best chosen by its CV
  score, then refitted), for the same inner/outer structure,
* a per-voxel scikit-learn loop like the paper's code, timed on a subset of targets and scaled,

and prints the ratios and the max abs difference in scores. tuckute2023 is timed separately (``--tuckute``).

    python benchmarks/bench_ridge.py --targets 26792 [--device cuda] [--loop-targets 20] [--tuckute]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def make_problem(n_targets: int, n_layers: int = 13, width: int = 768, seed: int = 0):
    rng = np.random.default_rng(seed)
    layers = [rng.standard_normal((165, width)).astype(np.float32) for _ in range(n_layers)]
    weights = rng.standard_normal((width, n_targets)).astype(np.float32) / np.sqrt(width)
    responses = layers[6] @ weights + 2.0 * rng.standard_normal((165, n_targets)).astype(np.float32)
    folds = np.repeat(np.arange(5), 33)
    return layers, responses.astype(np.float64), folds


def run_brainlike(layers, responses, folds, backend, extend: bool, inner_score: str = "pooled"):
    from brainlike.align.pepino2025 import ALPHAS, run_pepino2025
    from brainlike.align.ridge import gram_matrix

    start = time.perf_counter()
    grams = [gram_matrix(x) for x in layers]
    limits = (1e-49, 1e50) if extend else (ALPHAS.min(), ALPHAS.max())
    result = run_pepino2025(grams, responses, folds, backend, limits=limits, inner_score=inner_score)
    return time.perf_counter() - start, result.scores


def run_himalaya(layers, responses, folds, device: str, backend_name: str | None = None, dtype=np.float64):
    """Same nested protocol with himalaya's KernelRidgeCV: inner CV per layer, best layer per target by CV score.

    ``backend_name``: himalaya backend (``numpy``, ``torch``, ``torch_cuda``; default numpy on cpu, torch_cuda on
    cuda); ``dtype``: of the features and targets it is given (it computes in that precision)."""
    from himalaya.backend import set_backend
    from himalaya.kernel_ridge import KernelRidgeCV
    from himalaya.scoring import correlation_score

    from brainlike.align.pepino2025 import ALPHAS

    backend_name = backend_name or ("torch_cuda" if device == "cuda" else "numpy")
    backend = set_backend(backend_name, on_error="raise")
    start = time.perf_counter()
    preds = np.zeros_like(responses)
    for outer in range(5):
        train, test = folds != outer, folds == outer
        inner = folds[train]
        cv = [(np.flatnonzero(inner != f), np.flatnonzero(inner == f)) for f in np.unique(inner)]
        best_score, best_pred = None, None
        for x in layers:
            model = KernelRidgeCV(alphas=ALPHAS, cv=cv, kernel="linear", fit_intercept=True,
                                  solver_params=dict(score_func=correlation_score, local_alpha=True,
                                                     n_targets_batch=8192))
            model.fit(x[train].astype(dtype), responses[train].astype(dtype))
            score = np.asarray(backend.to_numpy(model.cv_scores_), dtype=np.float64).reshape(-1)
            pred = np.asarray(backend.to_numpy(model.predict(x[test].astype(dtype))), dtype=np.float64)
            if best_score is None:
                best_score, best_pred = score, pred
            else:
                better = score > best_score
                best_score = np.where(better, score, best_score)
                best_pred[:, better] = pred[:, better]
        preds[test] = best_pred
    elapsed = time.perf_counter() - start
    r = [np.corrcoef(preds[:, j], responses[:, j])[0, 1] for j in range(responses.shape[1])]
    return elapsed, np.maximum(np.array(r), 0) ** 2


def run_sklearn_loop(layers, responses, folds, n_subset: int):
    """The paper's style: one Ridge per target, alpha, layer and fold (timed on a subset, scaled)."""
    from sklearn.linear_model import Ridge

    from brainlike.align.pepino2025 import ALPHAS

    start = time.perf_counter()
    for j in range(n_subset):
        for outer in range(5):
            train = folds != outer
            for alpha in ALPHAS:
                for x in layers:
                    for inner in range(5):
                        if inner == outer:
                            continue
                        itr, ite = train & (folds != inner), folds == inner
                        Ridge(alpha=alpha).fit(x[itr], responses[itr, j]).predict(x[ite])
    return (time.perf_counter() - start) / n_subset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=26792)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--loop-targets", type=int, default=3)
    parser.add_argument("--skip-himalaya", action="store_true")
    parser.add_argument("--tuckute", action="store_true", help="also time tuckute2023 (3 reps simulated)")
    args = parser.parse_args()

    from brainlike.align.backend import NumpyBackend, TorchBackend

    layers, responses, folds = make_problem(args.targets)
    print(f"problem: 165 stimuli x {args.targets} targets, 13 layers x 768 features, device {args.device}")
    t_np, s_np = run_brainlike(layers, responses, folds, NumpyBackend(), extend=False)
    print(f"brainlike numpy float64 (no edge extension): {t_np:.2f} s")
    t_t, s_t = run_brainlike(layers, responses, folds, TorchBackend(args.device, "float32"), extend=False)
    print(f"brainlike torch float32 {args.device} (no edge extension): {t_t:.2f} s;"
          f" max |score f32 - f64| = {np.abs(s_t - s_np).max():.2e}")
    t_ext, _ = run_brainlike(layers, responses, folds, TorchBackend(args.device, "float32"), extend=True)
    print(f"brainlike torch float32 {args.device} (full protocol, edge extension): {t_ext:.2f} s")
    best = min(t_np, t_t)
    if not args.skip_himalaya:
        # the same problem for both: selection by the mean over inner folds of Pearson r, no edge extension
        t_same, s_same = run_brainlike(layers, responses, folds, TorchBackend(args.device, "float32"), extend=False,
                                       inner_score="fold-mean-r")
        t_same64, s_same64 = run_brainlike(layers, responses, folds, NumpyBackend(), extend=False,
                                           inner_score="fold-mean-r")
        print(f"brainlike with himalaya's selection score: torch float32 {t_same:.2f} s, numpy float64 "
              f"{t_same64:.2f} s")
        t_h, s_h = run_himalaya(layers, responses, folds, args.device)
        diff = np.abs(s_h - s_same64)
        print(f"himalaya KernelRidgeCV ({'torch_cuda' if args.device == 'cuda' else 'numpy'}): {t_h:.2f} s;"
              f" ratio himalaya / brainlike = {t_h / min(t_same, t_same64):.1f}x; same problem: max |score diff| ="
              f" {diff.max():.2e}, targets differing by > 1e-6: {(diff > 1e-6).mean():.2%}")
    per_target = run_sklearn_loop(layers, responses, folds, args.loop_targets)
    loop_total = per_target * args.targets
    print(f"per-target scikit-learn loop: {per_target:.2f} s per target -> {loop_total / 3600:.1f} h for all;"
          f" ratio loop / brainlike = {loop_total / best:.0f}x")
    if args.tuckute:
        from brainlike.align.ridge import gram_matrix
        from brainlike.align.tuckute2023 import run_tuckute2023

        reps = responses[:, :, None] + np.random.default_rng(1).standard_normal(responses.shape + (3,))
        start = time.perf_counter()
        run_tuckute2023([gram_matrix(x) for x in layers], reps, TorchBackend(args.device, "float32"))
        print(f"brainlike tuckute2023 torch float32 {args.device}: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
