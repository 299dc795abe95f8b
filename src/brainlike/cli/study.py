"""``brainlike run STUDY.toml``: run or resume a whole study (see :mod:`brainlike.study`)."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run", help="run or resume a study file (models x datasets x metrics x tasks)",
        description="Run a study file; finished units are stored under OUT/units and never recomputed, so a rerun "
                    "resumes an interrupted study and computes only units added since.")
    parser.add_argument("study", help="study TOML file")
    parser.add_argument("--out", help="results folder (default: the study's `out`)")
    parser.add_argument("--executor", choices=["local", "ray"], help="where units run (default: the study's, else local)")
    parser.add_argument("--address", help="Ray cluster address (HOST:PORT or auto); default starts a local Ray")
    parser.add_argument("--workers", type=int, help="parallel local processes, or CPUs of a local Ray instance")
    parser.add_argument("--force", action="store_true", help="recompute every unit")
    parser.add_argument("--dry-run", action="store_true", help="list the units and whether they are stored; run nothing")
    parser.add_argument("--report", action="store_true", help="write the HTML report (OUT/report) after the run")
    parser.set_defaults(handler=handle_run)


def handle_run(args: argparse.Namespace) -> int:
    from brainlike import progress
    from brainlike.study import load_study, pending_units, run_study

    study = load_study(args.study)
    if args.dry_run:
        pending, _ = pending_units(study, args.out)
        for unit in study.units():
            print(f"{'todo' if unit in pending else 'done'}  {unit.label}")
        return 0
    run = run_study(study, out=args.out, executor=args.executor, workers=args.workers, address=args.address,
                    force=args.force, progress=progress.enabled(), argv=["brainlike", *sys.argv[1:]])
    print(summary_table(run.records), end="")
    if run.downstream:
        from brainlike.downstream.evaluate import global_scores
        from brainlike.downstream.evaluate import summary_table as task_table

        print(task_table(run.downstream + global_scores(run.downstream)).to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"{len(run.computed)} units computed, {len(run.reused)} reused, {run.seconds:.1f} s; results in {run.out}",
          file=sys.stderr)
    if args.report:
        from brainlike.report import make_report

        print(f"report: {make_report(run.out).html}", file=sys.stderr)
    return 0


def summary_table(records: list[dict]) -> str:
    """Aggregate (``target == "all"``) scores as a text table: one row per model, one column per dataset/metric."""
    import pandas as pd

    rows = [r for r in records if r.get("target") == "all"]
    if not rows:
        return ""
    frame = pd.DataFrame(rows)
    frame["column"] = frame["dataset"] + " " + frame["metric"] + "/" + frame["selection"].fillna("")
    table = frame.pivot_table(index="model", columns="column", values="score", aggfunc="first", sort=False)
    table = table.rename_axis(None, axis=1)
    return table.to_string(float_format=lambda v: f"{v:.3f}") + "\n"
