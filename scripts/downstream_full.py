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
    # the full evaluation timed on cached embeddings (never embeds), then checked against the committed records
    OMP_NUM_THREADS=1 python scripts/downstream_full.py run --probes linear pepino2025 --workers 2 --cached-only \
        --out /tmp/fulleval --timing docs/results/downstream/full_evaluation_timing.json
    python scripts/downstream_full.py compare docs/results/downstream/models /tmp/fulleval
    python scripts/downstream_full.py brain --scores SCORES --brain docs/results/downstream/brain  # gather records
    python scripts/downstream_full.py link --out docs/results/downstream/models --brain docs/results/downstream/brain \
        --link-out docs/results/downstream/link       # the link three ways, tables, plots, the paper side by side
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


def run_one(spec: str, probe: str, out: str, set_sizes: dict[str, int], tasks: list[str],
            cached_only: bool = False) -> dict:
    """Embed (cached, resumable) and probe one model; merge its records into ``out/<model>/``. With
    ``cached_only`` a model whose embeddings are not all in the cache fails instead of embedding."""
    import torch

    from brainlike import progress
    from brainlike.downstream.evaluate import run_downstream
    from brainlike.results import Results

    torch.set_num_threads(1)
    progress.set_enabled(False)
    run = run_downstream([spec], tasks, probe, set_sizes=set_sizes, progress=False, cached_only=cached_only)
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
    started, wall0 = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), time.perf_counter()
    rows = []

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
                running[pool.submit(run_one, item[0], item[1], str(out), sizes, tasks, args.cached_only)] = item
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
                rows.append(row)
                with log.open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
                print(json.dumps(row), file=sys.stderr, flush=True)
    if args.timing:
        write_run_timing(Path(args.timing), rows, args, started, time.perf_counter() - wall0)
    return 0


def write_run_timing(path: Path, rows: list[dict], args: argparse.Namespace, started: str, wall_s: float) -> None:
    """The timing of this invocation of ``run``: wall time, CPU time of every worker process (getrusage of the
    children: imports, model loading, embedding, probing), the part spent embedding and probing, and whether every
    embedding came from the cache."""
    import platform
    import resource

    ok = [r for r in rows if "error" not in r]
    caches = [t["cache"] for r in ok for t in r.get("sets", {}).values()]
    timing = {"started": started, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "wall_s": round(wall_s, 1), "workers": args.workers, "probes": args.probes,
              "cached_only": args.cached_only, "pairs": len(rows), "errors": len(rows) - len(ok),
              "models": len({r["model"] for r in ok}),
              "workers_cpu_s": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
                                     + resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime, 1),
              "embed_cpu_s": round(sum(r["embed_cpu_s"] for r in ok), 1),
              "probe_cpu_s": round(sum(r["probe_cpu_s"] for r in ok), 1),
              "probe_cpu_s_by_probe": {p: round(sum(r["probe_cpu_s"] for r in ok if r["probe"] == p), 1)
                                       for p in args.probes},
              "all_embeddings_cached": bool(caches) and all(c == "cached" for c in caches),
              "cpu": platform.processor() or platform.machine(), "os_cpu_count": os.cpu_count(),
              "command": sys.argv}
    path.write_text(json.dumps(timing, indent=1) + "\n")
    print(json.dumps({k: v for k, v in timing.items() if k != "command"}), file=sys.stderr, flush=True)


def cmd_compare(args: argparse.Namespace) -> int:
    """Per-fold scores of two ``run --out`` folders, model by model: how many agree, the largest difference."""
    from brainlike.results import Results

    def scores(root: Path) -> dict[tuple, float]:
        folders = [p for p in sorted(root.iterdir()) if (p / "downstream.jsonl").is_file()]
        return {(r["model"], r["probe"], r["task"], r["fold"]): r["score"]
                for f in folders for r in Results.load(f, require="downstream").downstream}

    a, b = scores(Path(args.a)), scores(Path(args.b))
    common = sorted(set(a) & set(b), key=str)
    diffs = {k: abs(a[k] - b[k]) for k in common}
    differing = sorted((k for k in common if diffs[k] > args.tol), key=str)
    report = {"common": len(common), "only_a": len(set(a) - set(b)), "only_b": len(set(b) - set(a)),
              "models": len({k[0] for k in common}), "max_abs_diff": max(diffs.values(), default=0.0),
              "differing": len(differing), "differing_models": sorted({k[0] for k in differing})}
    print(json.dumps(report))
    return 0 if common and not differing else 1


def cmd_summary(args: argparse.Namespace) -> int:
    """From ``driver_log.jsonl`` (and, for runs it lacks, the models' provenance): ``throughput.csv`` / ``.md``
    (per model and audio set: clips, CPU s, clips/s; the first run that computed the set), ``probe_times.csv``;
    and the score tables ``scores_<probe>.md``."""
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
    rows += provenance_embedding_rows(out)  # runs whose driver stopped before logging them
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


def provenance_embedding_rows(out: Path) -> list[dict]:
    """Per-set embedding timings recorded in each model's ``downstream_provenance.json`` (every run, in probe
    order), for the sets that were embedded rather than read from the cache."""
    rows = []
    for path in sorted(out.glob("*/downstream_provenance.json")):
        for run in json.loads(path.read_text()).get("runs", {}).values():
            for model, timing in run.get("timings", {}).items():
                rows += [{"model": model, "audio_set": audio_set, **t}
                         for audio_set, t in timing.get("sets", {}).items() if t["cache"] != "cached"]
    return rows


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
        models = sorted({r["model"] for r in rows}, key=lambda m: (-glob.get(m, -99), m))
        lines = ["| model | " + " | ".join(SHORT.get(t, t) for t in tasks) + " | global |",
                 "|---" * (len(tasks) + 2) + "|"]
        for m in models:
            cells = [f"{score[(m, t)]:.3f}".lstrip("0") if (m, t) in score else "" for t in tasks]
            g = f"{glob[m]:.2f}" if m in glob else ""
            lines.append(f"| {m} | " + " | ".join(cells) + f" | {g} |")
        chance = {r["task"]: r.get("chance") for r in rows}
        lines.append("| chance | " + " | ".join(f"{chance[t]:.3f}".lstrip("0") for t in tasks) + " |  |")
        (out / f"scores_{probe}.md").write_text("\n".join(lines) + "\n")


#: Pepino et al. 2025 (36 models, HEAR-style global score; methods.md section 5): Pearson r of the global score with
#: each brain score kind on NH2015 and B2021 voxels (their Table 1; their RSA is layer-max).
PAPER = {"regression": {"NH2015": 0.902, "B2021": 0.895}, "rsa layer-max": {"NH2015": 0.813, "B2021": 0.842}}
#: The brain scores of the link's summary plots and the side-by-side table: (dataset, metric, selection, label).
PRIMARY = (("nh2015-components", "regression", "nested-cv", "regression"),
           ("nh2015-components", "rsa", "cv", "rsa cv"),
           ("nh2015-components", "rsa", "layer-max", "rsa layer-max"),
           ("ecog-nh2022", "regression", "nested-cv", "regression"),
           ("ecog-nh2022", "rsa", "cv", "rsa cv"),
           ("ecog-nh2022", "rsa", "layer-max", "rsa layer-max"))


def is_primary(row: dict) -> bool:
    """A global-score row of an aggregate brain score listed in :data:`PRIMARY`."""
    return row["downstream"] == "global" and row.get("brain_target") in (None, "all") and any(
        (row["brain_dataset"], row["brain_metric"], row["brain_selection"]) == p[:3] for p in PRIMARY)


def cmd_brain(args: argparse.Namespace) -> int:
    """Gather the brain records of ``brainlike score MODEL --out DIR/<dataset>/<model>`` folders into one
    ``<dataset>.jsonl`` per dataset in ``--brain`` (what the link reads; small enough to commit)."""
    from brainlike.results import Results

    target = Path(args.brain)
    target.mkdir(parents=True, exist_ok=True)
    for dataset_dir in sorted(p for p in Path(args.scores).iterdir() if p.is_dir()):
        folders = sorted(p for p in dataset_dir.iterdir() if (p / "records.jsonl").is_file())
        records = [r for f in folders for r in Results.load(f, require="records")]
        lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        (target / f"{dataset_dir.name}.jsonl").write_text(lines)
        print(f"{dataset_dir.name}: {len(folders)} models, {len(records)} records", file=sys.stderr)
    return 0


def cmd_link(args: argparse.Namespace) -> int:
    """The link three ways (all / trained / twins) on every model with both brain and downstream results: link
    tables (``brainlike.api.link``), the scatter plots of the primary brain scores, the paper side by side."""
    from brainlike.api import link
    from brainlike.downstream.link import SUBSETS, scatter_plots, subset_models
    from brainlike.results import Results

    out = Path(args.out)
    brain = sorted(Path(args.brain).glob("*.jsonl"))
    folders = sorted(p for p in out.iterdir() if (p / "downstream.jsonl").is_file())
    models = [Results.load(f, require="downstream").downstream[0]["model"] for f in folders]
    subsets = [name for name in SUBSETS if len(subset_models(models, name)) >= 3]
    t0, c0 = time.perf_counter(), os.times()
    rows = link(*brain, *folders, probe=args.probe, subsets=subsets, n_bootstrap=args.bootstrap,
                out=args.link_out, plots=False)
    scatter_plots([r for r in rows if is_primary(r)], args.link_out)
    Path(args.link_out, "paper_side_by_side.md").write_text(side_by_side(rows, args.probe) + "\n")
    cpu = sum(os.times()[:2]) - sum(c0[:2])
    print(f"link: {len(rows)} rows, {time.perf_counter() - t0:.0f} s wall, {cpu:.0f} CPU s", file=sys.stderr)
    return 0


def side_by_side(rows: list[dict], probe: str = "linear") -> str:
    """Markdown: per primary brain score, the paper's Pearson r (global score, NH2015 / B2021 voxels) beside ours
    (per model subset: r [CI over models] [CI over families], Spearman rho, models and families)."""
    from brainlike.downstream.link import _ci

    lines = ["| our brain data | brain score | paper: NH2015 voxels | paper: B2021 voxels | ours: all models "
             "| ours: trained only | ours: twins only |", "|---" * 7 + "|"]
    for dataset, metric, selection, label in PRIMARY:
        cells = []
        for subset in ("all", "trained", "twins"):
            match = [r for r in rows if is_primary(r) and r.get("subset") == subset and r["brain_dataset"] == dataset
                     and r["brain_metric"] == metric and r["brain_selection"] == selection]
            r = match[0] if match else None
            cells.append("n/a" if r is None or r["pearson_r"] is None else
                         f"{r['pearson_r']:.2f} {_ci(r, 'pearson')} {_ci(r, 'pearson_family')}; "
                         f"rho {r['spearman_rho']:.2f} (n = {r['n_models']}, {r['n_families']} families)")
        paper = PAPER.get(label, {}) if dataset.startswith("nh2015") else {}
        lines.append(f"| {dataset} | {label} | {paper.get('NH2015', 'n/a')} | {paper.get('B2021', 'n/a')} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + (f"\n\nOurs: Pearson r of the global downstream score ({probe} probe, z-scores "
                              "within the subset) [95% bootstrap CI over models] [over families]; Spearman rho.")


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
    p.add_argument("--cached-only", action="store_true",
                   help="never embed: a model whose embeddings are not all cached fails (times the evaluation)")
    p.add_argument("--timing", default=None, help="write this invocation's timing (JSON) here")
    p.add_argument("--out", required=True)
    p.set_defaults(handler=cmd_run)
    p = sub.add_parser("compare", help="per-fold scores of two run folders: do they agree?")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--tol", type=float, default=0.0)
    p.set_defaults(handler=cmd_compare)
    p = sub.add_parser("summary")
    p.add_argument("--out", required=True)
    p.set_defaults(handler=cmd_summary)
    p = sub.add_parser("brain")
    p.add_argument("--scores", required=True, help="folder of <dataset>/<model>/ results folders of brainlike score")
    p.add_argument("--brain", required=True, help="write one <dataset>.jsonl here")
    p.set_defaults(handler=cmd_brain)
    p = sub.add_parser("link")
    p.add_argument("--out", required=True, help="the per-model downstream folders (run's --out)")
    p.add_argument("--brain", required=True, help="folder of brain records, one .jsonl per dataset")
    p.add_argument("--link-out", required=True)
    p.add_argument("--probe", default="linear")
    p.add_argument("--bootstrap", type=int, default=2000)
    p.set_defaults(handler=cmd_link)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
