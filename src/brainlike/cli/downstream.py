"""``brainlike downstream``, ``brainlike tasks build|list`` and ``brainlike link``."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("downstream", help="probe models on downstream audio tasks (HEAR-style)")
    p.add_argument("models", nargs="+", metavar="MODEL", help="model spec(s): NAME, NAME@random, FAMILY:PATH")
    p.add_argument("--task", nargs="+", default=["all"], metavar="NAME", help="task names or 'all' (default all)")
    p.add_argument("--probe", default="linear", choices=["linear", "pepino2025"], help="default linear")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-clips", type=int, default=None, metavar="N",
                   help="evaluate each task on its fixed balanced subset of at most N clips (default: all clips)")
    p.add_argument("--set-sizes", nargs="+", default=None, metavar="SET=N",
                   help="clips per audio set (one fixed balanced subset shared by the set's tasks), e.g. "
                        "fsdd=1000 ravdess=600; 'standard' = the sizes of the published results")
    p.add_argument("--json", action="store_true", help="print only a JSON list of records on stdout")
    p.add_argument("--out", default=None, help="write downstream.jsonl/.csv and provenance into this folder")
    p.set_defaults(handler=_downstream)

    p = subparsers.add_parser("tasks", help="list downstream tasks, or render the synthetic ones")
    p.add_argument("action", choices=["list", "build"])
    p.add_argument("names", nargs="*", metavar="NAME", help="tasks to build (default all rendered tasks)")
    p.add_argument("--soundfont", default=None, help="General MIDI soundfont (.sf2/.sf3) to render with")
    p.add_argument("--force", action="store_true", help="render again even when the manifest is up to date")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_tasks)

    p = subparsers.add_parser("link", help="correlate brain scores with downstream scores across models")
    p.add_argument("results", nargs="+", metavar="RESULTS", help="results folders or .jsonl files")
    p.add_argument("--probe", default=None, help="downstream probe to use (default: the most frequent)")
    p.add_argument("--bootstrap", type=int, default=2000,
                   help="bootstrap resamples over models and over model families (default 2000)")
    p.add_argument("--subsets", nargs="+", default=["all"], choices=["all", "trained", "twins"],
                   help="model subsets: all models; trained (no twins, baselines, random-features); twins "
                        "(default all); the global score is recomputed within each")
    p.add_argument("--no-plots", action="store_true", help="with --out, skip the scatter plots")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print only a JSON list of rows on stdout")
    p.add_argument("--out", default=None, help="write link.jsonl/.csv, link_table.md and scatter plots here")
    p.set_defaults(handler=_link)


def _downstream(args: argparse.Namespace) -> int:
    from brainlike import progress
    from brainlike.api import downstream
    from brainlike.downstream.evaluate import summary_table

    from brainlike.downstream.tasks import parse_set_sizes

    sizes = parse_set_sizes(args.set_sizes) if args.set_sizes else None
    results = downstream(args.models, tasks=args.task, probe=args.probe, seed=args.seed, max_clips=args.max_clips,
                         set_sizes=sizes, out=args.out, progress=progress.enabled())
    if args.json:
        json.dump(results.downstream, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    print(summary_table(results.downstream).round(4).to_string())
    for model, timing in results.downstream_provenance.get("timings", {}).items():
        print(f"{model}: embedding {timing['embed_s']:.1f} s, probes {timing['probe_s']:.1f} s", file=sys.stderr)
    if args.out:
        print(f"results written to {args.out}", file=sys.stderr)
    return 0


def _tasks(args: argparse.Namespace) -> int:
    from brainlike.downstream.tasks import build_rendered, list_tasks

    if args.action == "build":
        for path in build_rendered(args.names or None, soundfont=args.soundfont, force=args.force):
            manifest = json.loads(path.read_text())
            print(f"{manifest['set']}: {manifest['n_clips']} clips, checksum {manifest['checksum'][:16]}, "
                  f"soundfont {manifest['soundfont']} -> {path.parent}")
        return 0
    rows = list_tasks()
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    for row in rows:
        state = "ready" if row["available"] else ("run `brainlike tasks build`" if row["source"] == "rendered"
                                                  else "data missing")
        print(f"{row['task']:<18} {row['metric']:<15} {state:<28} {row['description']}")
    return 0


def _link(args: argparse.Namespace) -> int:
    from brainlike.api import link
    from brainlike.downstream.link import table1

    rows = link(*args.results, probe=args.probe, n_bootstrap=args.bootstrap, seed=args.seed, subsets=args.subsets,
                out=args.out, plots=not args.no_plots)
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    print(table1(rows))
    if args.out:
        print(f"link written to {args.out}", file=sys.stderr)
    return 0
