"""Wall time of one small study on each executor, every run from a cold activation cache.

    python studies/executors_benchmark.py [--models random-features melspec] [--workers 2]

Runs the study (the models on nh2015-components, regression and RSA) three times, each with its own empty
``BRAINLIKE_CACHE`` and results folder: local executor in this process (1 worker), local executor with
``--workers`` processes, and Ray with a local head of ``--workers`` CPUs (its start-up included). Prints one line per
run and checks that the records agree (rounding aside). Needs ``BRAINLIKE_DATA`` and, for Ray, ``pip install ray``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def run(kind: str, workers: int, models: list[str], root: Path) -> tuple[float, list[dict]]:
    from brainlike.study import Study, run_study

    os.environ["BRAINLIKE_CACHE"] = str(root / f"cache-{kind}-{workers}")
    study = Study("bench", models, ["nh2015-components"], out=root / f"out-{kind}-{workers}")
    t0 = time.perf_counter()
    result = run_study(study, executor=kind, workers=workers, progress=False)
    return time.perf_counter() - t0, result.records


def max_difference(a: list[dict], b: list[dict]) -> float:
    assert [(r["model"], r["metric"], r["selection"], r["target"], r["layer"]) for r in a] == \
           [(r["model"], r["metric"], r["selection"], r["target"], r["layer"]) for r in b]
    return float(np.max(np.abs([x["score"] - y["score"] for x, y in zip(a, b)])))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["random-features", "melspec"])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if "ray" not in sys.modules:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    with tempfile.TemporaryDirectory(prefix="brainlike-bench-") as tmp:
        root = Path(tmp)
        rows = [("local, 1 worker (in process)", *run("local", 1, args.models, root)),
                (f"local, {args.workers} processes", *run("local", args.workers, args.models, root)),
                (f"ray, local head with {args.workers} CPUs", *run("ray", args.workers, args.models, root))]
    reference = rows[0][2]
    for name, seconds, records in rows:
        print(f"{name:40s} {seconds:7.1f} s   max |score - in-process| = {max_difference(records, reference):.1e}")
    print(json.dumps({name: round(seconds, 1) for name, seconds, _ in rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
