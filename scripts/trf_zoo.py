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
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
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
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "run.log"
    for spec in args.models:
        folder = out / spec
        if (folder / "records.jsonl").is_file() and not args.extract_only:
            print(f"{spec}: done, skipped", flush=True)
            continue
        row = {"model": spec, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "threads": os.environ.get("OMP_NUM_THREADS"), "load_average_start": os.getloadavg()}
        if not args.score_only:
            row["extract"] = timed(["brainlike", "-q", "extract", spec, "--frames", "--rate", "25"], log)
            if row["extract"]["rc"] != 0:
                print(f"{spec}: extraction failed ({row['extract']})", flush=True)
                _append(out, row)
                continue
        if not args.extract_only:
            row["score"] = timed(["brainlike", "-q", "score", spec, "--dataset", "ecog-nh2022", "--protocol", "trf",
                                  "--backend", "torch", "--metric", "regression", "--out", str(folder)], log)
        row["load_average_end"] = os.getloadavg()
        _append(out, row)
        print(json.dumps(row), flush=True)


def _append(out: Path, row: dict) -> None:
    with (out / "timings.jsonl").open("a") as handle:
        handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    sys.exit(main())
