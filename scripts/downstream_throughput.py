"""Measure each model's embedding throughput (clips per CPU-second) on a small fixed sample of every audio set.

Used to size the downstream task sets (docs/results/downstream/README.md, "How the set sizes were chosen").
CPU time (``resource.getrusage``, all threads of the process) is measured, not wall time: the machine is shared.
Each worker process runs one torch / BLAS / onnxruntime thread. Rows are appended to ``--out`` (CSV) as each
model finishes; models already in the file are skipped, so a killed run resumes.

    OMP_NUM_THREADS=1 nice -n 10 python scripts/downstream_throughput.py --clips 4 --workers 2 \
        --out docs/results/downstream/throughput_sample.csv
    python scripts/downstream_throughput.py --plan --budget-h 6 --out docs/results/downstream/throughput_sample.csv

``--plan`` picks the set sizes: one cap N on the clips of every audio set (sets with fewer clips are taken
whole), the largest N (a multiple of 10) for which the predicted embedding CPU time of all measured models,
sum over models and sets of min(N, set size) / (clips per CPU-second), stays within ``--budget-h``.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

AUDIO_SETS = {"esc10": "esc10", "fsdd": "fsdd", "ravdess": "ravdess", "nsynth": "nsynth-pitch",
              "music-style": "music-style"}
FIELDS = ["model", "audio_set", "n_clips", "audio_s", "cpu_s", "clips_per_cpu_s", "load_cpu_s"]


def cpu_seconds() -> float:
    """User + system CPU time of this process (every thread)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sample_clips(n: int) -> dict[str, tuple[list, int]]:
    """``{audio set: (clips, rate)}``: ``n`` clips of each set (its first task's balanced subset; the same for every model)."""
    from brainlike.downstream.tasks import load_task

    out = {}
    for audio_set, task_name in AUDIO_SETS.items():
        task = load_task(task_name).subset(n)
        out[audio_set] = (task.waveforms(), task.info.sample_rate)
    return out


def measure(model_name: str, n: int) -> list[dict]:
    import torch

    from brainlike import progress
    from brainlike.extract import embed_clips
    from brainlike.models.registry import load_model

    torch.set_num_threads(1)
    progress.set_enabled(False)
    clips = sample_clips(n)
    t0 = cpu_seconds()
    model = load_model(model_name)
    load_s = cpu_seconds() - t0
    first_clips, first_rate = clips["fsdd"]
    embed_clips(model, first_clips[:1], first_rate, progress=False)  # warm-up (first-call allocations)
    rows = []
    for audio_set, (waves, rate) in clips.items():
        t0 = cpu_seconds()
        embed_clips(model, waves, rate, progress=False)
        spent = cpu_seconds() - t0
        rows.append({"model": model_name, "audio_set": audio_set, "n_clips": len(waves),
                     "audio_s": round(sum(len(w) for w in waves) / rate, 3), "cpu_s": round(spent, 3),
                     "clips_per_cpu_s": round(len(waves) / spent, 4) if spent > 0 else None,
                     "load_cpu_s": round(load_s, 3)})
    return rows


def all_models() -> list[str]:
    from brainlike.models.registry import list_models

    rows = [m for m in list_models() if m["available"] and ":" not in m["name"]]
    names = [m["name"] for m in rows if m["family"] in ("baseline", "zoo")]
    return names + [m["name"] + "@random" for m in rows if m["family"] == "zoo" and m["random_twin"]]


FULL_SIZES = {"esc10": 400, "fsdd": 3000, "ravdess": 1440, "nsynth": 1760, "music-style": 600}


def predicted_cpu_s(rates, sizes: dict[str, int]) -> float:
    """Predicted embedding CPU seconds of every model in ``rates`` (frame: model, audio_set, clips_per_cpu_s)."""
    return float(sum(sizes[row.audio_set] / row.clips_per_cpu_s for row in rates.itertuples()))


def plan(path: Path, budget_h: float) -> dict[str, int]:
    """The largest common cap (multiple of 10) within the budget; prints the table of candidates."""
    import pandas as pd

    rates = pd.read_csv(path)
    full = predicted_cpu_s(rates, FULL_SIZES)
    print(f"{rates['model'].nunique()} models; full sets: {full / 3600:.2f} CPU-h")
    best = None
    for cap in range(10, max(FULL_SIZES.values()) + 10, 10):
        sizes = {k: min(v, cap) for k, v in FULL_SIZES.items()}
        if predicted_cpu_s(rates, sizes) <= budget_h * 3600:
            best = sizes
    assert best is not None
    for cap in sorted({best["fsdd"], 300, 400, 500, 600, 800, 1000}):
        sizes = {k: min(v, cap) for k, v in FULL_SIZES.items()}
        print(f"cap {cap}: {sizes}: {predicted_cpu_s(rates, sizes) / 3600:.2f} CPU-h")
    print(f"chosen: {best} ({predicted_cpu_s(rates, best) / 3600:.2f} CPU-h)")
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--plan", action="store_true", help="choose the set sizes from --out (no measuring)")
    parser.add_argument("--budget-h", type=float, default=6.0)
    parser.add_argument("models", nargs="*")
    args = parser.parse_args(argv)
    if args.plan:
        plan(args.out, args.budget_h)
        return 0
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    models = args.models or all_models()
    done = set()
    if args.out.is_file():
        with args.out.open() as handle:
            done = {row["model"] for row in csv.DictReader(handle)}
    todo = [m for m in models if m not in done]
    new = not args.out.is_file()
    with args.out.open("a", newline="") as handle, ProcessPoolExecutor(args.workers) as pool:
        writer = csv.DictWriter(handle, FIELDS)
        if new:
            writer.writeheader()
        futures = {m: pool.submit(measure, m, args.clips) for m in todo}
        for name, future in futures.items():
            t0 = time.time()
            rows = future.result()
            writer.writerows(rows)
            handle.flush()
            print(f"{name}: {sum(r['cpu_s'] for r in rows):.1f} CPU s ({time.time() - t0:.0f} s waited)",
                  file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
