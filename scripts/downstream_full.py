"""Driver of the full downstream evaluation: every model, every task, the standard clip sets, both probes.

Models are processed one by one in ``--workers`` processes (one torch / BLAS / onnxruntime thread each). For each
model and probe the results land in ``<out>/<model>/`` (``downstream.jsonl`` / ``.csv``, provenance with the
per-audio-set embedding CPU time) as soon as they are done, so the folder can be committed while the run goes on.
Restarting skips (model, probe) pairs already written; embeddings come from the cache, and an embedding stopped
part-way resumes from its checkpoint (``brainlike.extract.embed_clips``).

    OMP_NUM_THREADS=1 nice -n 10 python scripts/downstream_full.py run --probes linear --workers 2 \\
        --out docs/results/downstream/full
    python scripts/downstream_full.py summary --out docs/results/downstream/full     # throughput.csv, scores.csv
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

def all_models() -> list[str]:
    """Baselines, then trained zoo models, then their random twins (registry order within each group)."""
    from brainlike.models.registry import list_models

    rows = [m for m in list_models() if m["available"] and ":" not in m["name"]]
    baselines = [m["name"] for m in rows if m["family"] == "baseline"]
    zoo = [m["name"] for m in rows if m["family"] == "zoo"]
    twins = [m["name"] + "@random" for m in rows if m["family"] == "zoo" and m["random_twin"]]
    return baselines + zoo + twins


def slug(spec: str) -> str:
    return spec.replace("@", "_").replace(":", "_").replace("/", "_")


def done_probes(folder: Path) -> set[str]:
    """Probes whose records are in ``folder/downstream.jsonl``."""
    path = folder / "downstream.jsonl"
    if not path.is_file():
        return set()
    return {json.loads(line)["probe"] for line in path.read_text().splitlines() if line.strip()}


def run_one(spec: str, probe: str, out: str, set_sizes: dict[str, int], tasks: list[str]) -> dict:
    """Embed (cached, resumable) and probe one model; merge its records into ``out/<model>/``."""
    import torch

    from brainlike import progress
    from brainlike.downstream.evaluate import run_downstream
    from brainlike.results import Results

    torch.set_num_threads(1)
    progress.set_enabled(False)
    run = run_downstream([spec], tasks, probe, set_sizes=set_sizes, progress=False)
    folder = Path(out) / slug(spec)
    records = [r for r in run.records if r.get("task") != "global"]  # the global score needs every model
    old_records, old_prov = [], {}
    if (folder / "downstream.jsonl").is_file():
        previous = Results.load(folder, require="downstream")
        old_records = [r for r in previous.downstream if r.get("probe") != probe]
        old_prov = previous.downstream_provenance or {}
    provenance = {"kind": "downstream", "model": spec, "set_sizes": set_sizes,
                  "runs": {**old_prov.get("runs", {}), probe: {**run.provenance, "command": sys.argv}}}
    Results(downstream=old_records + records, downstream_provenance=provenance).save(folder)
    return {"model": spec, "probe": probe, **run.timings[spec]}


def _worker_init() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"


def cmd_run(args: argparse.Namespace) -> int:
    from brainlike.downstream.tasks import parse_set_sizes, resolve_tasks

    sizes = parse_set_sizes(args.set_sizes)
    tasks = resolve_tasks(args.task)
    models = args.models or all_models()
    out = Path(args.out)
    todo = [(m, p) for p in args.probes for m in models if p not in done_probes(out / slug(m))]
    print(f"{len(todo)} (model, probe) pairs to run", file=sys.stderr, flush=True)
    log = out / "driver_log.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    busy: set[str] = set()
    pending = list(todo)
    with ProcessPoolExecutor(args.workers, initializer=_worker_init, max_tasks_per_child=1) as pool:
        running = {}
        while pending or running:
            # a model's second probe waits for its first (they would embed the same clips twice)
            for item in [i for i in pending if i[0] not in busy][: max(0, args.workers - len(running))]:
                pending.remove(item)
                busy.add(item[0])
                running[pool.submit(run_one, item[0], item[1], str(out), sizes, tasks)] = item
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                spec, probe = running.pop(future)
                busy.discard(spec)
                try:
                    row = future.result()
                except Exception as exc:  # keep going: one broken model must not stop the others
                    row = {"model": spec, "probe": probe, "error": f"{type(exc).__name__}: {exc}"}
                row["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                with log.open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
                print(json.dumps(row), file=sys.stderr, flush=True)
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    """``throughput.csv`` (per model and audio set: clips, CPU s, clips/s; first computed run only) and
    ``probe_times.csv`` from the per-model provenance files."""
    import pandas as pd

    from brainlike.results import Results

    out = Path(args.out)
    rows, probe_rows = [], []
    for folder in sorted(p for p in out.iterdir() if (p / "downstream.jsonl").is_file()):
        prov = Results.load(folder, require="downstream").downstream_provenance or {}
        for probe, run in prov.get("runs", {}).items():
            for spec, timing in run.get("timings", {}).items():
                probe_rows.append({"model": spec, "probe": probe, "probe_cpu_s": timing.get("probe_cpu_s"),
                                   "probe_wall_s": timing.get("probe_s")})
                for audio_set, t in timing.get("sets", {}).items():
                    if t["cache"] != "cached":
                        rows.append({"model": spec, "audio_set": audio_set, **t})
    frame = pd.DataFrame(rows).drop_duplicates(["model", "audio_set"], keep="first")
    frame.to_csv(out / "throughput.csv", index=False, lineterminator="\n")
    pd.DataFrame(probe_rows).to_csv(out / "probe_times.csv", index=False, lineterminator="\n")
    total = frame["cpu_s"].sum()
    print(f"{frame['model'].nunique()} models, embedding {total / 3600:.2f} CPU-h", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run")
    p.add_argument("models", nargs="*")
    p.add_argument("--probes", nargs="+", default=["linear"], choices=["linear", "pepino2025"])
    p.add_argument("--task", nargs="+", default=["all"])
    p.add_argument("--set-sizes", nargs="+", default=["standard"])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", required=True)
    p.set_defaults(handler=cmd_run)
    p = sub.add_parser("summary")
    p.add_argument("--out", required=True)
    p.set_defaults(handler=cmd_summary)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
