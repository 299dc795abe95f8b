"""``brainlike score``, ``extract``, ``models``, ``datasets``, ``cache``: the core commands."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("score", help="score models against a neural dataset, layer by layer")
    p.add_argument("models", nargs="+", metavar="MODEL", help="model spec(s): NAME, NAME@random, FAMILY:PATH")
    p.add_argument("--dataset", default="nh2015-components", help="dataset name or file (default nh2015-components)")
    p.add_argument("--metric", default="all", choices=["all", "regression", "rsa"])
    p.add_argument("--protocol", default="pepino2025",
                   help="regression protocol: pepino2025 (default), tuckute2023 (`brainlike protocols` lists all)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (ridge engine)")
    p.add_argument("--backend", default=None, choices=["numpy", "torch"], help="default: numpy on cpu, torch on cuda")
    p.add_argument("--json", action="store_true", help="print only a JSON list of records on stdout")
    p.add_argument("--out", default=None, help="write a results folder here")
    p.add_argument("--no-cache", action="store_true", help="recompute activations, do not write the cache")
    p.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="bootstrap CIs (over stimuli and subjects) for the overall regression score")
    p.add_argument("--permutations", type=int, default=0, metavar="N",
                   help="permutation null (shuffled stimulus labels) for the overall regression score")
    p.add_argument("--control", action="append", default=None, metavar="CONTROL",
                   help="variance partitioning against a control: a model spec or features:PATH.npz; repeat for "
                        "one control with several bands (records get part and control)")
    p.set_defaults(handler=_score)

    p = subparsers.add_parser("compare", help="paired Wilcoxon test across subjects between two models")
    p.add_argument("results", help="results folder or records.jsonl with per-subject records")
    p.add_argument("model_a")
    p.add_argument("model_b")
    p.add_argument("--metric", default="regression", choices=["regression", "rsa"])
    p.add_argument("--selection", default=None, help="layer selection (default: the metric's main one)")
    p.set_defaults(handler=_compare)

    p = subparsers.add_parser("extract", help="extract and cache a model's activations for a stimulus set")
    p.add_argument("models", nargs="+", metavar="MODEL")
    p.add_argument("--stimuli", default="natsound165")
    p.set_defaults(handler=_extract)

    p = subparsers.add_parser("models", help="list models and whether they can run here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_models)

    p = subparsers.add_parser("datasets", help="list neural datasets and whether they are available here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_datasets)

    p = subparsers.add_parser("protocols", help="list the registered regression protocols")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_protocols)

    p = subparsers.add_parser("cache", help="inspect the cache")
    p.add_argument("action", choices=["verify", "path"])
    p.set_defaults(handler=_cache)


def _score(args: argparse.Namespace) -> int:
    from brainlike import progress
    from brainlike.api import score

    records = score(args.models, dataset=args.dataset, metric=args.metric, protocol=args.protocol, out=args.out,
                    device=args.device, backend=args.backend, cache=not args.no_cache, progress=progress.enabled(),
                    bootstrap=args.bootstrap, permutations=args.permutations, controls=args.control)
    if args.json:
        json.dump(records, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        from brainlike.report.tables import print_records

        print_records(records)
        if args.out:
            print(f"results written to {args.out}", file=sys.stderr)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from brainlike.api import compare

    print(json.dumps(compare(args.results, args.model_a, args.model_b, metric=args.metric,
                             selection=args.selection)))
    return 0


def _extract(args: argparse.Namespace) -> int:
    from brainlike import progress
    from brainlike.api import extract

    for spec in args.models:
        activations = extract(spec, args.stimuli, progress=progress.enabled())
        shapes = ", ".join(f"{layer} {activations.arrays[layer].shape[1]}" for layer in activations.layers)
        state = "cached" if activations.from_cache else "extracted"
        print(f"{spec}: {state} {len(activations.stimulus_ids)} stimuli; layers: {shapes}")
    return 0


def _models(args: argparse.Namespace) -> int:
    from brainlike.models.registry import list_models

    rows = list_models()
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        return 0
    from brainlike.report.tables import print_rows

    print_rows(rows, ["name", "family", "available", "description", "reason"], title="brainlike models")
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from brainlike.data.neural import list_datasets

    rows = list_datasets()
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        return 0
    from brainlike.report.tables import print_rows

    print_rows(rows, ["name", "available", "description", "reason"], title="brainlike datasets")
    return 0


def _protocols(args: argparse.Namespace) -> int:
    from brainlike.align.protocols import list_protocols

    rows = [{"name": p.name, "selection": p.selection, "time_resolved": p.time_resolved,
             "options": ", ".join(p.options), "description": p.description} for p in list_protocols()]
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        return 0
    from brainlike.report.tables import print_rows

    print_rows(rows, ["name", "selection", "options", "description"], title="brainlike protocols")
    return 0


def _cache(args: argparse.Namespace) -> int:
    from brainlike.config import cache_root
    from brainlike.extract.cache import ArrayCache

    if args.action == "path":
        print(cache_root())
        return 0
    bad = 0
    for kind in ("activations", "embeddings"):
        for row in ArrayCache(kind).verify():
            if row["status"] != "ok":
                bad += 1
                print(f"{kind}/{row['key'][:16]}: {row['status']} ({row['detail']})")
    print(f"cache verify: {bad} bad entr{'y' if bad == 1 else 'ies'}")
    return 1 if bad else 0
