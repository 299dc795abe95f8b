"""``brainlike validate-model NAME`` (protocol checks) and ``brainlike hear-export NAME`` (HEAR module)."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``validate-model`` and ``hear-export`` commands."""
    val = subparsers.add_parser(
        "validate-model", help="check a model against the model protocol (rates, layers, shapes, determinism...)",
        description="Run a model on synthetic clips and check sample rate, layer names, (batch, time, features) "
                    "shapes, finiteness, determinism, shape stability and batch invariance. Exit 1 if a check fails.")
    val.add_argument("model", metavar="NAME", help="model spec (NAME, NAME@random, hf:..., hear:...)")
    val.add_argument("--seconds", type=float, default=2.0, help="length of the test clips (default 2)")
    val.add_argument("--clips", type=int, default=3, help="clips in the test batch (default 3)")
    val.add_argument("--batch-rtol", type=float, default=1e-3,
                     help="relative tolerance of batch == one clip at a time (default 1e-3)")
    val.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    val.set_defaults(handler=_validate)

    exp = subparsers.add_parser(
        "hear-export", help="write a HEAR API module serving one layer of a brainlike model",
        description="Write DIR/MODULE.py implementing the HEAR API (load_model, get_timestamp_embeddings, "
                    "get_scene_embeddings) for a brainlike model layer. Import it with DIR on PYTHONPATH, or score "
                    "it back with `hear:DIR/MODULE.py`.")
    exp.add_argument("model", metavar="NAME", help="model spec")
    exp.add_argument("--layer", default=None, help="layer to serve (default: the model's last layer)")
    exp.add_argument("--name", required=True, help="Python module name to write")
    exp.add_argument("--out", default=".", help="folder to write into (default: current folder)")
    exp.set_defaults(handler=_hear_export)


def _validate(args: argparse.Namespace) -> int:
    from brainlike.models.validate import validate_model

    report = validate_model(args.model, seconds=args.seconds, n_clips=args.clips, batch_rtol=args.batch_rtol)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.format())
    return 0 if report.ok else 1


def _hear_export(args: argparse.Namespace) -> int:
    from brainlike.hear_api import export_module

    path = export_module(args.model, args.out, args.name, layer=args.layer)
    print(path)
    print(f"HEAR module written; score it with `brainlike score hear:{path}` or import {args.name} with "
          f"{path.parent} on PYTHONPATH", file=sys.stderr)
    return 0
