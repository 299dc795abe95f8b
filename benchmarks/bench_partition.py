"""Ridge engines against himalaya on a B2021-sized problem, in one run, printing JSON (issue 15).

Problem: 165 stimuli x N targets (default 26,792), a 13-layer model of width 768 and a one-layer control of width
512 (random features; responses driven by layer 6 and the control), the 5 pepino2025 folds.

* ``single``: the single-band pepino2025 engine with himalaya's selection score (mean over inner folds of Pearson r,
  no edge extension) against himalaya 0.4 KernelRidgeCV (same splits, alphas, intercept; best layer per target by
  its cv score), himalaya on its torch backend and on its numpy backend (float32 inputs, its fastest; optional
  float64), brainlike on torch float32 (and numpy float64 for reference).
* ``banded``: two bands (the model's layer chosen per target and fold by the single-band run, and the control):
  brainlike's banded ridge against himalaya MultipleKernelRidgeCV (solver random_search) with the same candidates,
  the product grid of band alphas (8 x 8, relative to each band's kernel scale), called once per direction of the
  grid (its kernel weights as ``n_iter``, that direction's alphas), the best direction per target by its cv_scores_.
* ``profile``: where brainlike's single-band time goes (cProfile of one run, grouped by engine step).

Engines are timed alternately (brainlike, himalaya, brainlike, ...; ``--repeats``) in the same process, so that
load from other jobs on a shared machine hits both; ratios are of medians. Scores are compared per target.

    python benchmarks/bench_partition.py [--targets 26792] [--device cpu|cuda] [--repeats 2] [--parts single,banded,profile]
        [--himalaya-backends torch,numpy] [--himalaya-threads default,1] [--banded-targets N]

brainlike's engines run on one host thread (their default ``threads=1``); ``--himalaya-threads`` times himalaya with
torch's default threads and/or with torch and BLAS limited to N threads (rows ``_Nthread``).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ridge import make_problem, run_himalaya  # noqa: E402


def machine(device: str) -> dict:
    import torch

    info = {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "brainlike_engine_threads": "1 (run_pepino2025 / run_banded default threads=1: BLAS and torch limited "
                                        "inside the engine)", "cpus_usable": len(os.sched_getaffinity(0)),
            "cpu": _cpu_model(), "load_average_1min": os.getloadavg()[0]}
    try:
        import himalaya

        info["himalaya"] = himalaya.__version__
    except ImportError:
        info["himalaya"] = None
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def with_threads(run, threads: str):
    """``run`` with torch and BLAS on ``threads`` threads (``default``: as set), for himalaya's configurations."""
    if threads == "default":
        return run

    def limited():
        import torch
        from threadpoolctl import threadpool_limits

        before = torch.get_num_threads()
        torch.set_num_threads(int(threads))
        try:
            with threadpool_limits(limits=int(threads), user_api="blas"):
                return run()
        finally:
            torch.set_num_threads(before)
    return limited


def himalaya_name(backend: str, threads: str) -> str:
    return f"himalaya_{backend}_float32" + ("" if threads == "default" else f"_{threads}thread")


def brainlike_backend(device: str, dtype: str):
    from brainlike.align.backend import NumpyBackend, TorchBackend

    return NumpyBackend() if dtype == "float64" and device == "cpu" else TorchBackend(device, dtype)


def run_single(layers, responses, folds, backend):
    """brainlike pepino2025 with himalaya's selection score and no edge extension: (seconds, scores, layers)."""
    from brainlike.align.pepino2025 import ALPHAS, run_pepino2025
    from brainlike.align.ridge import gram_matrix

    _sync(backend)
    start = time.perf_counter()
    grams = [gram_matrix(x) for x in layers]
    result = run_pepino2025(grams, responses, folds, backend, limits=(ALPHAS.min(), ALPHAS.max()),
                            inner_score="fold-mean-r")
    _sync(backend)
    return time.perf_counter() - start, result.scores, result.layer_index


def run_banded_brainlike(layers, control, responses, folds, layer_index, backend):
    from brainlike.align.banded import run_banded
    from brainlike.align.ridge import gram_matrix

    _sync(backend)
    start = time.perf_counter()
    result = run_banded([[gram_matrix(x) for x in layers], [gram_matrix(control)]],
                        [layer_index, np.zeros_like(layer_index)], responses, folds, backend,
                        inner_score="fold-mean-r")
    _sync(backend)
    return time.perf_counter() - start, result.scores


def run_banded_himalaya(layers, control, responses, folds, layer_index, backend_name: str, dtype):
    """The same banded problem with himalaya's MultipleKernelRidgeCV, one call per (fold, layer group, direction)."""
    from himalaya.backend import set_backend
    from himalaya.kernel_ridge import MultipleKernelRidgeCV
    from himalaya.scoring import correlation_score

    from brainlike.align.banded import BAND_ALPHAS, CandidateGrid, kernel_scale
    from brainlike.align.ridge import gram_matrix

    backend = set_backend(backend_name, on_error="raise")
    grid = CandidateGrid.from_grids([BAND_ALPHAS, BAND_ALPHAS])
    start = time.perf_counter()
    kernels = []
    for x in list(layers) + [control]:
        gram = gram_matrix(x)
        kernels.append(gram / kernel_scale(gram))
    preds = np.zeros_like(responses)
    for o, outer in enumerate(np.unique(folds)):
        train, test = np.flatnonzero(folds != outer), np.flatnonzero(folds == outer)
        inner = folds[train]
        cv = [(np.flatnonzero(inner != f), np.flatnonzero(inner == f)) for f in np.unique(inner)]
        for layer in np.unique(layer_index[o]):
            cols = np.flatnonzero(layer_index[o] == layer)
            ks = np.stack([kernels[layer], kernels[-1]]).astype(dtype)
            y = responses[np.ix_(train, cols)].astype(dtype)
            best = np.full(len(cols), -np.inf)
            for d, w in enumerate(grid.directions):
                params = dict(n_iter=(w / w.sum())[None], alphas=np.sort(grid.alpha[grid.kernel == d]) / w.sum(),
                              score_func=correlation_score, local_alpha=True, progress_bar=False,
                              n_targets_batch=8192)
                model = MultipleKernelRidgeCV(kernels="precomputed", solver="random_search", fit_intercept=True,
                                              cv=cv, solver_params=params)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.fit(ks[:, train][:, :, train], y)
                score = np.asarray(backend.to_numpy(model.cv_scores_), dtype=np.float64).reshape(-1)
                better = score > best
                best[better] = score[better]
                pred = np.asarray(backend.to_numpy(model.predict(ks[:, test][:, :, train])), dtype=np.float64)
                preds[np.ix_(test, cols[better])] = pred[:, better]
    elapsed = time.perf_counter() - start
    return elapsed, _r2(preds, responses)


def _r2(preds, responses):
    p, y = preds - preds.mean(0), responses - responses.mean(0)
    r = (p * y).sum(0) / np.sqrt((p * p).sum(0) * (y * y).sum(0))
    return np.maximum(r, 0) ** 2


def _sync(backend):
    if getattr(backend, "name", "") == "torch" and str(backend.device).startswith("cuda"):
        backend.torch.cuda.synchronize()


def alternate(runs: dict, repeats: int) -> dict:
    """Run each named callable ``repeats`` times, interleaved; keep times and the last scores."""
    times = {name: [] for name in runs}
    scores = {}
    for _ in range(repeats):
        for name, run in runs.items():
            out = run()
            times[name].append(round(out[0], 3))
            scores[name] = out[1]
    return {"times_s": times, "median_s": {k: float(np.median(v)) for k, v in times.items()}, "scores": scores}


def single_band(layers, responses, folds, args) -> tuple[dict, np.ndarray]:
    device = args.device
    h_backends = [b for b in args.himalaya_backends.split(",") if b]
    if device.startswith("cuda"):
        h_backends = ["torch_cuda"]
    runs = {"brainlike_torch_float32": lambda: run_single(layers, responses, folds,
                                                          brainlike_backend(device, "float32"))}
    for name in h_backends:
        for threads in args.himalaya_threads.split(","):
            runs[himalaya_name(name, threads)] = with_threads(
                lambda n=name: run_himalaya(layers, responses, folds, device, n, np.float32), threads)
    if args.float64:
        runs["brainlike_numpy_float64"] = lambda: run_single(layers, responses, folds, brainlike_backend("cpu",
                                                                                                         "float64"))
        runs["himalaya_numpy_float64"] = lambda: run_himalaya(layers, responses, folds, "cpu", "numpy", np.float64)
    layer_index = run_single(layers, responses, folds, brainlike_backend(device, "float32"))[2]  # warm-up too
    out = alternate(runs, args.repeats)
    ours = out["median_s"]["brainlike_torch_float32"]
    himalaya = {k: v for k, v in out["median_s"].items() if k.startswith("himalaya") and "float32" in k}
    best_name = min(himalaya, key=himalaya.get) if himalaya else None
    result = {"what": "pepino2025 engine with himalaya's selection score (fold-mean r), no edge extension, "
                      "vs himalaya KernelRidgeCV per layer", **{k: out[k] for k in ("times_s", "median_s")},
              "ratios_himalaya_over_brainlike_torch_float32": {k: round(v / ours, 2) for k, v in himalaya.items()},
              "himalaya_best_backend": best_name,
              "ratio_vs_himalaya_best": round(himalaya[best_name] / ours, 2) if best_name else None}
    diffs = {}
    for name, scores in out["scores"].items():
        if name != "brainlike_torch_float32":
            diffs[name] = float(np.abs(scores - out["scores"]["brainlike_torch_float32"]).max())
    result["max_abs_score_diff_vs_brainlike_torch_float32"] = diffs
    return result, layer_index


def banded(layers, control, responses, folds, layer_index, args) -> dict:
    device = args.device
    h_backends = ["torch_cuda"] if device.startswith("cuda") else [b for b in args.himalaya_backends.split(",") if b]
    runs = {"brainlike_torch_float32": lambda: run_banded_brainlike(layers, control, responses, folds, layer_index,
                                                                    brainlike_backend(device, "float32"))}
    for name in h_backends:
        for threads in args.himalaya_threads.split(","):
            runs[himalaya_name(name, threads)] = with_threads(
                lambda n=name: run_banded_himalaya(layers, control, responses, folds, layer_index, n, np.float32),
                threads)
    out = alternate(runs, args.repeats)
    ours = out["median_s"]["brainlike_torch_float32"]
    result = {"what": "two bands (model layer per target and fold + control), 8 x 8 product grid of relative "
                      "alphas, fold-mean r selection; himalaya MultipleKernelRidgeCV random_search, one call per "
                      "direction of the grid", **{k: out[k] for k in ("times_s", "median_s")},
              "ratios_himalaya_over_brainlike_torch_float32": {
                  k: round(v / ours, 2) for k, v in out["median_s"].items() if k.startswith("himalaya")},
              "max_abs_score_diff_vs_brainlike_torch_float32": {
                  k: float(np.abs(v - out["scores"]["brainlike_torch_float32"]).max())
                  for k, v in out["scores"].items() if k != "brainlike_torch_float32"}}
    return result


PROFILE_GROUPS = {
    "inner grid matrix products (operator @ targets)": ("inner_cv.py", "grid_scores"),
    "per-split sums (fused multiply-adds)": ("inner_cv.py", "sum_over_rows"),
    "scores from sums": ("inner_cv.py", "inner_scores"),
    "stacked operators (float64 host)": ("inner_cv.py", "_operator"),
    "eigendecompositions": ("ridge.py", "eigh_small"),
    "centred split kernels": ("ridge.py", "centered_kernels"),
    "refit on outer training sets": ("pepino2025.py", "refit_predictions"),
    "selection (argmax) and bookkeeping": ("pepino2025.py", "search"),
    "Gram matrices": ("ridge.py", "gram_matrix"),
}


def profile(layers, responses, folds, args) -> dict:
    """Where the single-band time goes: cProfile of one run, cumulative seconds of each engine step."""
    profiler = cProfile.Profile()
    profiler.enable()
    elapsed = run_single(layers, responses, folds, brainlike_backend(args.device, "float32"))[0]
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    out = {}
    for label, (file, function) in PROFILE_GROUPS.items():
        out[label] = round(sum(v[3] for (f, _, fn), v in stats.items() if f.endswith(file) and fn == function), 3)
    # the grid's matrix products: grid_scores' own time plus torch's __matmul__ wrapper called from it
    matmul = sum(v[4].get(k, (0, 0, 0, 0))[3] for (f, _, fn), v in stats.items() if fn == "__matmul__"
                 for k in v[4] if k[0].endswith("inner_cv.py") and k[2] == "grid_scores")
    own = sum(v[2] for (f, _, fn), v in stats.items() if f.endswith("inner_cv.py") and fn == "grid_scores")
    out["inner grid matrix products (operator @ targets)"] = round(own + matmul, 3)
    return {"wall_s_under_profiler": round(elapsed, 3), "seconds_by_step": out,
            "note": "seconds under cProfile: the grid's matrix products are grid_scores' own time (with torch's "
                    "matmul wrapper); other steps are cumulative (they include the torch calls they make)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=26792)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--parts", default="single,banded,profile")
    parser.add_argument("--himalaya-backends", default="torch,numpy", help="himalaya CPU backends to time")
    parser.add_argument("--himalaya-threads", default="default",
                        help="comma list of himalaya's torch/BLAS thread counts: 'default' (torch's) and/or numbers")
    parser.add_argument("--banded-targets", type=int, default=None,
                        help="targets of the banded part (the first N; default: all)")
    parser.add_argument("--float64", action="store_true", help="also time both engines in float64 (numpy)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    parts = args.parts.split(",")
    layers, responses, folds = make_problem(args.targets)
    control = np.random.default_rng(1).standard_normal((165, 512)).astype(np.float32)
    responses = responses + control[:, :64] @ np.random.default_rng(2).standard_normal((64, args.targets)) / 8
    report = {"command": " ".join(sys.argv), "problem": {"stimuli": 165, "targets": args.targets, "layers": 13,
                                                        "width": 768, "control_width": 512, "folds": 5},
              "device": args.device, "machine": machine(args.device), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    layer_index = None
    if "single" in parts:
        report["single_band"], layer_index = single_band(layers, responses, folds, args)
    if "banded" in parts:
        if layer_index is None:
            layer_index = run_single(layers, responses, folds, brainlike_backend(args.device, "float32"))[2]
        m = args.banded_targets or args.targets
        report["banded"] = banded(layers, control, responses[:, :m], folds, layer_index[:, :m], args)
        report["banded"]["targets"] = m
    if "profile" in parts:
        report["profile"] = profile(layers, responses, folds, args)
    report["machine"]["load_average_1min_end"] = os.getloadavg()[0]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
