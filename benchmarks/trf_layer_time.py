"""CPU seconds of the trf engine on real cached ecog-nh2022 frames, for some layers of one model (issue 14).

Reads the model's cached frames (``extract_frames``: nothing is extracted when they are cached), runs
``run_trf`` with the torch float32 CPU backend (one thread) on the chosen layers, prints one JSON line (engine CPU s =
user + system of the process during ``run_trf``, peak RSS) and saves the scores and predictions to ``--save`` (.npz)
so that two versions of the engine can be compared::

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/trf_layer_time.py crepe-tiny --layers conv1 --save /tmp/a.npz
"""

from __future__ import annotations

import argparse
import inspect
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--layers", nargs="*", default=None, help="layer names (default: all)")
    parser.add_argument("--save", default=None)
    parser.add_argument("--backend", choices=["torch", "numpy"], default="torch", help="torch float32 or numpy float64")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from bench_trf import real
    from brainlike.align import trf
    from brainlike.align.backend import NumpyBackend, TorchBackend

    layers, frame_times, responses, times, folds, names = real(args.model)
    if "decode" in inspect.signature(trf.FrameLayers).parameters:  # as protocol trf reads them
        layers = trf.FrameLayers(layers.frames, decode=False)
    chosen = [names.index(n) for n in args.layers] if args.layers else list(range(len(names)))

    class Chosen:
        def __len__(self):
            return len(chosen)

        def __getitem__(self, i):
            return layers[chosen[i]]

    cpu0, wall0 = time.process_time(), time.perf_counter()
    backend = TorchBackend("cpu") if args.backend == "torch" else NumpyBackend()
    result = trf.run_trf(Chosen(), frame_times, responses, times, folds, lags=trf.lag_bins((0.0, 0.5), 25.0),
                         rate=25.0, backend=backend, layers=[names[i] for i in chosen])
    row = {"model": args.model, "layers": [names[i] for i in chosen],
           "engine_cpu_s": round(time.process_time() - cpu0, 2),
           "engine_wall_s": round(time.perf_counter() - wall0, 2),
           "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "widths": [int(layers[i].shape[2]) for i in chosen], "pca_solver": result.pca_solver}
    if args.save:
        np.savez(args.save, scores=result.scores, inner_scores=result.inner_scores,
                 layer_predictions=result.layer_predictions, predictions=result.predictions)
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
