"""Protocol ``trf`` benchmark (issue 14): the batched engine against a literal scikit-learn loop, and problem sizes
up to the whole zoo.

One run measures, on the same folds and alpha grid:

* the engine (``brainlike.align.trf.run_trf``) on the whole problem, numpy float64 and torch float32 (CPU or CUDA),
  and the max abs score difference between the two;
* the literal implementation (``tests/core/trf_literal.py``: StandardScaler + PCA(full) per training set, explicit
  lagged design, one scikit-learn Ridge per target and alpha) on a SUBSET of layers, targets and alphas, and the engine
  on that same subset: the max abs score difference, and the literal loop's time extrapolated to the whole problem:
  (seconds per scaler/PCA/design preparation) x (preparations of the whole problem) + (seconds per Ridge fit) x
  (Ridge fits of the whole problem), both rates measured on the subset.

Data: ``--data real`` = the ecog-nh2022 components (15 x 75 bins at 25 Hz) and the cached frames of ``--model``
(extracted if missing); ``--data synthetic`` = random smooth frames with layers of the model's widths and responses made
by a lag filter on one layer (runs anywhere, e.g. on a GPU machine without the data). ``--size``: ``small`` (2 layers
of 64, 4 targets, quick), ``whisper`` (10 layers of 512 like whisper-base, 15 targets), ``zoo`` (the 111 frame layers
of the 12 zoo models twice, their real widths: the full zoo + twins, engine only).

    python benchmarks/bench_trf.py --data real --model whisper-base            # README / RESULTS figures (CPU)
    python benchmarks/bench_trf.py --data synthetic --size whisper --device cuda
    python benchmarks/bench_trf.py --data synthetic --size zoo --device cuda --no-literal --no-float64

Times are CPU seconds of the process (``time.process_time``, one thread by default: ``--threads``), which other jobs
on a shared machine do not inflate; wall seconds are printed beside them (``*_wall_s``). With ``--device cuda`` the
engine's seconds are wall seconds (after a synchronize).

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "core"))

ZOO_WIDTHS = {  # frame-layer widths of the 12 zoo models (each also scored as its random twin)
    "aisfx": [6144] * 8 + [512], "basic-pitch": [309, 2112, 2112, 264, 2816, 88, 2816, 88],
    "crepe-full": [131072, 8192, 4096, 2048, 2048, 2048, 360], "crepe-tiny": [16384, 1024, 512, 256, 256, 256, 360],
    "fcpe": [512] * 7 + [360], "pesto": [8760, 8760, 8760, 6570, 6570, 2190, 657, 384],
    "resemblyzer": [256, 256, 256], "silero-vad": [516, 512, 128, 64, 128, 128],
    "soundnet": [16, 32, 64, 128, 256, 512, 1024], "whisper-base": [80] + [512] * 9,
    "whisper-tiny.en": [80] + [384] * 7,
    "yamnet": [1024, 1024, 2048, 1024, 2048, 2048, 2048, 1024, 2048, 2048, 2048, 1024, 2048, 2048, 2048, 2048, 2048,
               2048, 2048, 2048, 2048, 2048, 2048, 1024, 2048, 2048, 2048, 1024, 521],
}
SIZES = {"small": {"widths": [64, 64], "targets": 4}, "whisper": {"widths": [80] + [512] * 9, "targets": 15},
         "zoo": {"widths": [w for ws in ZOO_WIDTHS.values() for w in ws] * 2, "targets": 15}}


def synthetic(widths: list[int], n_targets: int, seed: int = 0):
    """165 sounds, frames from -0.52 s to 3.0 s at 25 Hz (88 bins), 75 response bins; layer 0 drives the
    responses at a 120 ms lag. Layers are generated one at a time when accessed (the zoo size does not fit memory
    at once)."""
    rng = np.random.default_rng(seed)
    n_pre, n_bins = 13, 75
    frame_times = (np.arange(n_pre + n_bins) - n_pre) / 25.0

    class Layers:
        def __len__(self):
            return len(widths)

        def __getitem__(self, i):
            r = np.random.default_rng([seed, i])
            x = r.standard_normal((165, n_pre + n_bins, widths[i]), dtype=np.float32)
            x[:, 1:] += 0.8 * x[:, :-1]  # some temporal smoothness
            x[:, :n_pre] = x[0, 0]  # the same output for the silence before every sound
            return x

    layer0 = Layers()[0]
    weights = rng.standard_normal((widths[0], n_targets)) / np.sqrt(widths[0])
    signal = np.einsum("sbf,ft->sbt", layer0[:, n_pre - 3:n_pre - 3 + n_bins], weights)
    course = np.sin(np.linspace(0, 3, n_bins))[:, None] * signal.std()
    responses = signal + course + 2 * signal.std() * rng.standard_normal(signal.shape)
    return Layers(), frame_times, responses, frame_times[n_pre:], np.repeat(np.arange(5), 33)[rng.permutation(165)], \
        [f"layer{i}" for i in range(len(widths))]


def real(model: str):
    """ecog-nh2022 mean time courses and the model's frames (memory-mapped from the frame cache)."""
    from brainlike.align.trf import FrameLayers
    from brainlike.data.datasets import load_dataset
    from brainlike.data.stimuli import load_stimulus_set
    from brainlike.extract.frames import extract_frames

    stimuli = load_stimulus_set("natsound165")
    dataset = load_dataset("ecog-nh2022").align_to(stimuli.ids)
    frames = extract_frames(model, stimuli, rate=25.0, pre=0.5, stop=3.0, progress=False)
    return FrameLayers(frames), frames.bin_times, dataset.mean_time_courses(), dataset.times, stimuli.folds, \
        list(frames.layers)


class Subset:
    """Some layers of a lazy layer sequence, materialised once (the literal loop reads them many times)."""

    def __init__(self, layers, positions):
        self.arrays = [np.asarray(layers[i], dtype=np.float32) for i in positions]

    def __len__(self):
        return len(self.arrays)

    def __getitem__(self, i):
        return self.arrays[i]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=["real", "synthetic"], default="synthetic")
    parser.add_argument("--model", default="whisper-base", help="--data real: the model whose frames are used")
    parser.add_argument("--size", choices=list(SIZES), default="whisper", help="--data synthetic: problem size")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--pca", type=int, default=128)
    parser.add_argument("--subset-layers", type=int, default=1)
    parser.add_argument("--subset-layer-index", type=int, nargs="+", default=None,
                        help="these layer positions as the subset (default: --subset-layers spread from the first "
                             "to the last); a representative wide layer makes the extrapolation fair")
    parser.add_argument("--subset-targets", type=int, default=1)
    parser.add_argument("--subset-alphas", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads of torch and the BLAS (default 1: CPU seconds then measure work, whatever "
                             "else the machine runs)")
    parser.add_argument("--no-literal", action="store_true", help="skip the literal loop (zoo size)")
    parser.add_argument("--no-float64", action="store_true", help="skip the numpy float64 engine run")
    args = parser.parse_args()
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)

    from brainlike.align.backend import NumpyBackend, TorchBackend
    from brainlike.align.trf import ALPHAS, lag_bins, parse_lags, run_trf

    if args.data == "real":
        layers, frame_times, responses, times, folds, names = real(args.model)
    else:
        size = SIZES[args.size]
        layers, frame_times, responses, times, folds, names = synthetic(size["widths"], size["targets"])
    lags = lag_bins(parse_lags("0:0.5"), 25.0)
    out = {"data": args.data, "model": args.model if args.data == "real" else None,
           "size": args.size if args.data == "synthetic" else None, "device": args.device, "pca": args.pca,
           "layers": len(names), "targets": responses.shape[2], "alphas": len(ALPHAS), "lags": len(lags),
           "threads": args.threads, "cpu_count": os.cpu_count(), "load_average_start": os.getloadavg(),
           "machine": platform.machine(), "versions": versions(),
           "times": "CPU seconds of this process (time.process_time) and wall seconds (_wall_s); ratios from CPU "
                    "seconds, which a loaded machine does not inflate"}
    if args.device.startswith("cuda"):
        import torch

        out["gpu"] = torch.cuda.get_device_name(0)

    def engine(backend, features=layers, targets=None, alphas=ALPHAS):
        y = responses if targets is None else responses[..., targets]
        start, wall = time.process_time(), time.perf_counter()
        result = run_trf(features, frame_times, y, times, folds, lags=lags, rate=25.0, pca=args.pca, alphas=alphas,
                         backend=backend, layers=names[:len(features)])
        if backend.name == "torch" and str(backend.device).startswith("cuda"):
            backend.torch.cuda.synchronize()
        seconds = time.perf_counter() - wall if args.device.startswith("cuda") else time.process_time() - start
        return seconds, result, time.perf_counter() - wall

    single, result32, wall = engine(TorchBackend(args.device))
    out["engine_float32_s"] = round(single, 2)
    out["engine_float32_wall_s"] = round(wall, 2)
    out["median_score_float32"] = float(np.median(result32.scores))
    if not args.no_float64:
        double, result64, wall = engine(NumpyBackend())
        out["engine_float64_s"] = round(double, 2)
        out["engine_float64_wall_s"] = round(wall, 2)
        out["median_score_float64"] = float(np.median(result64.scores))
        out["max_abs_score_diff_float32_float64"] = float(np.abs(result32.scores - result64.scores).max())
        out["same_choices_float32_float64"] = float(np.mean((result32.layer_index == result64.layer_index)
                                                            & (result32.alpha == result64.alpha)))
    if not args.no_literal:
        out.update(literal_comparison(args, layers, frame_times, responses, times, folds, lags, engine,
                                      out.get("engine_float64_s", out["engine_float32_s"])))
    out["load_average_end"] = os.getloadavg()
    print(json.dumps(out, indent=1))


def versions() -> dict:
    import sklearn
    import torch

    return {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "scikit-learn": sklearn.__version__}


def literal_comparison(args, layers, frame_times, responses, times, folds, lags, engine, engine_full_s) -> dict:
    """The literal loop on a subset, the engine on the same subset, and the literal time extrapolated."""
    from brainlike.align.backend import NumpyBackend
    from brainlike.align.trf import ALPHAS, response_frames
    from trf_literal import literal_trf

    n_layers, n_targets, n_alpha = len(layers), responses.shape[2], len(ALPHAS)
    layer_subset = list(np.linspace(0, n_layers - 1, min(args.subset_layers, n_layers)).round().astype(int)) \
        if args.subset_layer_index is None else [int(i) for i in args.subset_layer_index]
    target_subset = list(range(min(args.subset_targets, n_targets)))
    alpha_subset = ALPHAS[np.linspace(0, n_alpha - 1, min(args.subset_alphas, n_alpha)).round().astype(int)]
    features = Subset(layers, layer_subset)
    index = response_frames(frame_times, times, 25.0, lags)
    timings: dict = {}
    start, wall = time.process_time(), time.perf_counter()
    literal = literal_trf(features, index, responses, folds, lags, args.pca, alpha_subset, targets=target_subset,
                          timings=timings, clock=time.process_time)
    literal_s, literal_wall = time.process_time() - start, time.perf_counter() - wall
    subset_s, subset, subset_wall = engine(NumpyBackend(), features=features, targets=target_subset,
                                           alphas=alpha_subset)
    n_folds = len(np.unique(folds))
    inner_fits = n_folds * (n_folds - 1)
    # the literal loop prepares (scaler, PCA, designs) once per inner fit and layer, and once per outer fold and
    # target; it fits one Ridge per inner fit, layer, alpha and target, and one per outer fold and target
    prep_subset = inner_fits * len(layer_subset) + n_folds * len(target_subset)
    fits_subset = inner_fits * len(layer_subset) * len(alpha_subset) * len(target_subset) + n_folds * len(target_subset)
    prep_full = inner_fits * n_layers + n_folds * n_targets
    fits_full = inner_fits * n_layers * n_alpha * n_targets + n_folds * n_targets
    extrapolated = timings["prepare"] / prep_subset * prep_full + timings["ridge"] / fits_subset * fits_full
    return {
        "subset": {"layers": [int(i) for i in layer_subset],
                   "layer_widths": [int(a.shape[2]) for a in features.arrays], "targets": target_subset,
                   "alphas": [float(a) for a in alpha_subset]},
        "literal_subset_s": round(literal_s, 2), "engine_subset_s": round(subset_s, 2),
        "literal_subset_wall_s": round(literal_wall, 2), "engine_subset_wall_s": round(subset_wall, 2),
        "subset_ratio": round(literal_s / subset_s, 1),
        "literal_seconds_per_preparation": timings["prepare"] / prep_subset,
        "literal_seconds_per_ridge_fit": timings["ridge"] / fits_subset,
        "literal_extrapolated_s": round(extrapolated, 1),
        "ratio_literal_extrapolated_over_engine": round(extrapolated / engine_full_s, 1),
        "max_abs_score_diff_subset": float(np.abs(subset.scores - literal["scores"]).max()),
        "same_choices_subset": bool(np.array_equal(subset.layer_index, literal["layer_index"])
                                    and np.array_equal(subset.alpha, literal["alpha"])),
    }


if __name__ == "__main__":
    main()
