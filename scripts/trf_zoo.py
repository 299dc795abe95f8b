"""Driver of the protocol ``trf`` runs on ``ecog-nh2022`` (issue 14): frames, then the score, timed apart.

For each model spec, in the order given: ``brainlike extract SPEC --frames --rate 25`` (frame-level activations into
the cache), then ``brainlike score SPEC --dataset ecog-nh2022 --protocol trf --backend torch --metric regression
--out OUT/SPEC`` (which reads the cached frames). Each step runs in its own process, so its CPU seconds (user +
system, from ``os.wait4``), wall seconds and peak RSS are those of that step alone; they are appended to
``OUT/timings.jsonl`` with the load average, so that "the whole zoo once frames are cached" is the sum of the score
steps. Models whose ``OUT/SPEC/records.jsonl`` exists are skipped (restartable).

Run it one model at a time on a shared machine, one thread per process::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n 5 python scripts/trf_zoo.py --out docs/results/trf-ecog \\
        tempocnn-cnn tempocnn-cnn@random soundnet ...

``--extract-only`` / ``--score-only`` run one of the two steps.

``--workers N`` runs N score processes at once (extractions stay one at a time, all of them first), longest predicted
first (a static order: 4.5 + 4.6 x layers + 7 x thousand features CPU s, widths from a done twin's provenance,
``bench_trf.ZOO_WIDTHS`` or the registry's layer count at 512 wide); each model's output goes to
``OUT/logs/SPEC.log``; still one row per model in ``timings.jsonl``, then one summary row
(``{"summary": "score batch", "wall_s": ...}``: wall seconds from the start of the first score to the end of the
last, the sum of their CPU seconds) so that "the whole zoo in under 60 min" is one measured figure::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n 5 python scripts/trf_zoo.py --score-only --workers 2 \
        --out docs/results/trf-ecog aisfx aisfx@random ...
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def timed(command: list[str], log: Path) -> dict:
    """Run ``command`` (stdout and stderr appended to ``log``); its exit status, CPU and wall seconds, peak RSS."""
    with log.open("a") as handle:
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
    return {"rc": os.waitstatus_to_exitcode(status), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "wall_s": round(wall, 2), "max_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--out", default="docs/results/trf-ecog")
    parser.add_argument("--extract-only", action="store_true")
    parser.add_argument("--score-only", action="store_true")
    parser.add_argument("--workers", type=int, default=1, help="score processes at once (default 1: in order)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "run.log"
    if args.workers > 1 and not args.extract_only:
        return parallel(args, out, log)
    for spec in args.models:
        folder = out / spec
        if (folder / "records.jsonl").is_file() and not args.extract_only:
            print(f"{spec}: done, skipped", flush=True)
            continue
        row = {"model": spec, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "threads": os.environ.get("OMP_NUM_THREADS"), "load_average_start": os.getloadavg()}
        if not args.score_only and not extracted(spec, row, out, log):
            continue
        if not args.extract_only:
            row["score"] = timed(score_command(spec, folder), log)
        row["load_average_end"] = os.getloadavg()
        _append(out, row)
        print(json.dumps(row), flush=True)


def score_command(spec: str, folder: Path) -> list[str]:
    return ["brainlike", "-q", "score", spec, "--dataset", "ecog-nh2022", "--protocol", "trf", "--backend", "torch",
            "--metric", "regression", "--out", str(folder)]


def layer_widths(spec: str, out: Path) -> list[int] | None:
    """Layer widths of a model: from its (or its twin's) results folder, else ``bench_trf``'s ZOO_WIDTHS, else None."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_trf import ZOO_WIDTHS
    from trf_table import _widths

    base = spec.split("@")[0]
    return _widths(out / base) or _widths(out / (base + "@random")) or ZOO_WIDTHS.get(base)


def predicted_cost(spec: str, out: Path) -> float:
    """Static score CPU s estimate used only to order the batch (longest first)."""
    from trf_table import REGISTRY_LAYERS  # importable once layer_widths has set the path

    widths = layer_widths(spec, out) or [512] * REGISTRY_LAYERS.get(spec.split("@")[0], 8)
    return 4.5 + 4.6 * len(widths) + 7.0 * sum(widths) / 1000


HEAVY_BYTES = 3 * 2 ** 30
"""A model whose widest layer's frame window (165 sounds x ~90 bins x width, float32) exceeds this is memory-heavy."""


def memory_heavy(spec: str, out: Path) -> bool:
    """Whether the engine's in-memory copy of the model's widest layer exceeds :data:`HEAVY_BYTES`."""
    return 165 * 90 * 4 * max(layer_widths(spec, out) or [0]) > HEAVY_BYTES


def parallel(args, out: Path, log: Path) -> None:
    """Extract one at a time (unless --score-only), then score ``--workers`` models at once, longest first."""
    pending, rows = [], {}
    for spec in args.models:
        if (out / spec / "records.jsonl").is_file():
            print(f"{spec}: done, skipped", flush=True)
            continue
        row = {"model": spec, "threads": os.environ.get("OMP_NUM_THREADS"), "workers": args.workers}
        if not args.score_only and not extracted(spec, row, out, log):
            continue
        rows[spec] = row
        pending.append(spec)
    pending.sort(key=lambda spec: -predicted_cost(spec, out))
    (out / "logs").mkdir(exist_ok=True)
    lock = threading.Lock()

    def score(spec: str) -> dict:
        row = rows[spec]
        row["started"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        row["load_average_start"] = os.getloadavg()
        start = time.time()
        row["score"] = timed(score_command(spec, out / spec), out / "logs" / f"{spec}.log")
        row["score"]["start_unix"], row["score"]["end_unix"] = round(start, 2), round(time.time(), 2)
        row["load_average_end"] = os.getloadavg()
        with lock:
            _append(out, row)
            print(json.dumps(row), flush=True)
        return row

    if not pending:
        return
    heavy = {spec for spec in pending if memory_heavy(spec, out)}
    queue, running_heavy, cond = list(pending), [0], threading.Condition()

    def worker() -> list[dict]:
        """Take the longest pending model; a memory-heavy one only while no other heavy one runs (two crepe-full
        conv1 copies of 7 GiB each would not fit beside each other in 24 GB)."""
        finished = []
        while True:
            with cond:
                while True:
                    if not queue:
                        return finished
                    pick = next((m for m in queue if m not in heavy or running_heavy[0] == 0), None)
                    if pick is not None:
                        break
                    cond.wait()
                queue.remove(pick)
                running_heavy[0] += pick in heavy
            try:
                finished.append(score(pick))
            finally:
                with cond:
                    running_heavy[0] -= pick in heavy
                    cond.notify_all()

    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        done = [row for rows_ in pool.map(lambda _: worker(), range(args.workers)) for row in rows_]
    first = min(r["score"]["start_unix"] for r in done)
    last = max(r["score"]["end_unix"] for r in done)
    summary = {"summary": "score batch", "workers": args.workers, "models": [r["model"] for r in done],
               "failed": [r["model"] for r in done if r["score"]["rc"] != 0],
               "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(first)),
               "wall_s": round(last - first, 2), "cpu_s": round(sum(r["score"]["cpu_s"] for r in done), 2),
               "max_rss_mb": max(r["score"]["max_rss_mb"] for r in done), "threads": os.environ.get("OMP_NUM_THREADS")}
    _append(out, summary)
    print(json.dumps(summary), flush=True)


def extracted(spec: str, row: dict, out: Path, log: Path) -> bool:
    """Extract the model's frames (timed into ``row``); False (and the row logged) when extraction failed."""
    row["extract"] = timed(["brainlike", "-q", "extract", spec, "--frames", "--rate", "25"], log)
    if row["extract"]["rc"] != 0:
        print(f"{spec}: extraction failed ({row['extract']})", flush=True)
        _append(out, row)
        return False
    return True


def _append(out: Path, row: dict) -> None:
    with (out / "timings.jsonl").open("a") as handle:
        handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    sys.exit(main())
