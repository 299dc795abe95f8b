"""``brainlike validate-data`` and ``brainlike simulate``: bring-your-own neural data."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("validate-data", help="report what is wrong with a neural dataset file")
    p.add_argument("file")
    p.add_argument("--stimuli", default="natsound165", help="stimulus set the file should cover")
    p.set_defaults(handler=_validate)

    p = subparsers.add_parser("simulate", help="write a synthetic voxel dataset (netCDF) from the real components")
    p.add_argument("out", help="output .nc file")
    p.add_argument("--voxels", type=int, default=None, help="number of voxels (default: all 11,065)")
    p.add_argument("--subjects", type=int, default=8, help="pseudo-subjects")
    p.add_argument("--reliability", type=float, default=0.5, help="single-repetition reliability (0-1)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=_simulate)


def _validate(args: argparse.Namespace) -> int:
    from brainlike.data.custom import validate_file
    from brainlike.data.stimuli import load_stimulus_set

    problems = validate_file(args.file, load_stimulus_set(args.stimuli).ids)
    errors = [p for p in problems if not p.startswith("note:")]
    for problem in problems:
        print(f"{args.file}: {problem}")
    if not errors:
        print(f"{args.file}: valid")
    return 1 if errors else 0


def _simulate(args: argparse.Namespace) -> int:
    from brainlike.data.simulate import write_simulation

    path = write_simulation(args.out, n_voxels=args.voxels, n_subjects=args.subjects, reliability=args.reliability,
                            n_reps=args.reps, seed=args.seed)
    print(f"synthetic voxel dataset written to {path}")
    return 0
