"""Driver of the full downstream evaluation: every model, every task, the standard clip sets, both probes.

Models are processed one by one in ``--workers`` processes (one torch / BLAS / onnxruntime thread each). For each
model and probe the results land in ``<out>/<model>/`` (``downstream.jsonl`` / ``.csv``, provenance with the
per-audio-set embedding CPU time) as soon as they are done, so the folder can be committed while the run goes on.
Restarting skips (model, probe) pairs already written; embeddings come from the cache, and an embedding stopped
part-way resumes from its checkpoint (``brainlike.extract.embed_clips``).

    OMP_NUM_THREADS=1 nice -n 10 python scripts/downstream_full.py run --probes linear --workers 2 \\
        --out docs/results/downstream/models
    OMP_NUM_THREADS=1 nice -n 10 python scripts/downstream_full.py run --probes pepino2025 --after linear \\
        --workers 1 --out docs/results/downstream/models       # follows the first driver on cached embeddings
    python scripts/downstream_full.py summary --out docs/results/downstream/models     # throughput, score tables
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

    def ready(item: tuple[str, str]) -> bool:
        """Not running already; with --after, only once the other driver wrote that probe (embeddings cached)."""
        return item[0] not in busy and (args.after is None or args.after in done_probes(out / slug(item[0])))

    with ProcessPoolExecutor(args.workers, initializer=_worker_init, max_tasks_per_child=1) as pool:
        running = {}
        while pending or running:
            # a model's second probe waits for its first (they would embed the same clips twice)
            for item in [i for i in pending if ready(i)][: max(0, args.workers - len(running))]:
                pending.remove(item)
                busy.add(item[0])
                running[pool.submit(run_one, item[0], item[1], str(out), sizes, tasks)] = item
            if not running:
                time.sleep(60)  # --after: waiting for the other driver
                continue
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
    """From ``driver_log.jsonl``: ``throughput.csv`` / ``.md`` (per model and audio set: clips, CPU s, clips/s;
    the first run that computed the set), ``probe_times.csv``; and the score tables ``scores_<probe>.md``."""
    import pandas as pd

    out = Path(args.out)
    rows, probe_rows = [], []
    log = out / "driver_log.jsonl"
    for line in (log.read_text().splitlines() if log.is_file() else []):
        entry = json.loads(line)
        if "error" in entry:
            continue
        probe_rows.append({"model": entry["model"], "probe": entry["probe"], "probe_cpu_s": entry["probe_cpu_s"],
                           "probe_wall_s": entry["probe_s"], "finished": entry["finished"]})
        for audio_set, t in entry.get("sets", {}).items():
            if t["cache"] != "cached":
                rows.append({"model": entry["model"], "audio_set": audio_set, **t})
    pd.DataFrame(probe_rows).to_csv(out / "probe_times.csv", index=False, lineterminator="\n")
    write_score_tables(out)
    if not rows:
        return 0
    frame = pd.DataFrame(rows).drop_duplicates(["model", "audio_set"], keep="first")
    frame.to_csv(out / "throughput.csv", index=False, lineterminator="\n")
    total = frame["cpu_s"].sum()
    write_throughput_table(frame, out / "throughput.md")
    print(f"{frame['model'].nunique()} models, embedding {total / 3600:.2f} CPU-h", file=sys.stderr)
    return 0


def write_throughput_table(frame, path: Path) -> None:
    """Markdown: per model, clips per CPU-second on each audio set and the embedding CPU time of all sets."""
    sets = list(dict.fromkeys(frame["audio_set"]))
    lines = ["| model | " + " | ".join(sets) + " | CPU s (all sets) | wall s |", "|---" * (len(sets) + 3) + "|"]
    order = frame.groupby("model")["cpu_s"].sum().sort_values(ascending=False).index
    for model in order:
        rows = frame[frame["model"] == model].set_index("audio_set")
        cells = [f"{rows.loc[s, 'clips_per_cpu_s']:.2f}" if s in rows.index else "" for s in sets]
        resumed = " (resumed)" if (rows["cache"] == "partial").any() else ""
        lines.append(f"| {model}{resumed} | " + " | ".join(cells) + f" | {rows['cpu_s'].sum():.0f} | "
                     f"{rows['wall_s'].sum():.0f} |")
    lines.append(f"\n{frame['model'].nunique()} models, {frame['cpu_s'].sum() / 3600:.2f} CPU-h of embedding "
                 f"({frame['wall_s'].sum() / 3600:.1f} h of wall time, two models at a time on a shared 2-core CPU).")
    path.write_text("\n".join(lines) + "\n")


SHORT = {"fsdd-speaker": "fsdd-spk", "nsynth-pitch": "nsynth-pitch", "nsynth-instrument": "nsynth-instr"}


def write_score_tables(out: Path) -> None:
    """``scores_<probe>.md``: models x tasks (fold means) and the global score over every model present."""
    from brainlike.downstream.evaluate import global_scores, task_means
    from brainlike.downstream.tasks import task_names
    from brainlike.results import Results

    folders = sorted(p for p in out.iterdir() if (p / "downstream.jsonl").is_file())
    records = [r for f in folders for r in Results.load(f, require="downstream").downstream]
    means = task_means(records)
    for probe in sorted({r["probe"] for r in means}):
        rows = [r for r in means if r["probe"] == probe]
        score = {(r["model"], r["task"]): r["score"] for r in rows}
        glob = {g["model"]: g["score"] for g in global_scores(rows, probe)}
        tasks = [t for t in task_names() if any(k[1] == t for k in score)]
        models = sorted({r["model"] for r in rows}, key=lambda m: -glob.get(m, -99))
        lines = ["| model | " + " | ".join(SHORT.get(t, t) for t in tasks) + " | global |",
                 "|---" * (len(tasks) + 2) + "|"]
        for m in models:
            cells = [f"{score[(m, t)]:.3f}".lstrip("0") if (m, t) in score else "" for t in tasks]
            g = f"{glob[m]:.2f}" if m in glob else ""
            lines.append(f"| {m} | " + " | ".join(cells) + f" | {g} |")
        chance = {r["task"]: r.get("chance") for r in rows}
        lines.append("| chance | " + " | ".join(f"{chance[t]:.3f}".lstrip("0") for t in tasks) + " |  |")
        (out / f"scores_{probe}.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run")
    p.add_argument("models", nargs="*")
    p.add_argument("--probes", nargs="+", default=["linear"], choices=["linear", "pepino2025"])
    p.add_argument("--task", nargs="+", default=["all"])
    p.add_argument("--set-sizes", nargs="+", default=["standard"])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--after", default=None, choices=["linear", "pepino2025"],
                   help="run a model only once this probe's results are written (by another driver running now)")
    p.add_argument("--out", required=True)
    p.set_defaults(handler=cmd_run)
    p = sub.add_parser("summary")
    p.add_argument("--out", required=True)
    p.set_defaults(handler=cmd_summary)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
