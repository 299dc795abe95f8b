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
    p.add_argument("--window", default=None, metavar="A:B",
                   help="time-resolved dataset under a time-averaged protocol: average the bins starting in [A, B) "
                        "seconds from onset (default 0:2)")
    p.add_argument("--normalise", default=None, metavar="METHOD", choices=["spearman-brown", "ncsnr", "cc-max"],
                   help="also report regression scores divided by the dataset's noise ceiling (spearman-brown, "
                        "ncsnr or cc-max; needs repetitions): score_over_ceiling, never clipped")
    p.set_defaults(handler=_score)

    p = subparsers.add_parser("extract", help="extract and cache a model's activations for a stimulus set")
    p.add_argument("models", nargs="+", metavar="MODEL")
    p.add_argument("--stimuli", default="natsound165")
    p.add_argument("--frames", action="store_true",
                   help="frame-level activations on time bins (sounds padded with silence; float16 cache per layer)")
    p.add_argument("--rate", type=float, default=25.0, help="--frames: bins per second (default 25)")
    p.add_argument("--pre", type=float, default=0.5, help="--frames: seconds of bins before onset (default 0.5)")
    p.add_argument("--stop", type=float, default=3.0, help="--frames: end of the response window, s (default 3)")
    p.add_argument("--layers", default=None, help="--frames: comma-separated layers (default: all with a time axis)")
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
    import warnings

    from brainlike import progress
    from brainlike.align.ceilings import CeilingWarning
    from brainlike.api import score

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CeilingWarning)
        records = score(args.models, dataset=args.dataset, metric=args.metric, protocol=args.protocol, out=args.out,
                        device=args.device, backend=args.backend, cache=not args.no_cache,
                        progress=progress.enabled(), bootstrap=args.bootstrap, permutations=args.permutations,
                        window=args.window, normalise=args.normalise)
    for warning in caught:
        if issubclass(warning.category, CeilingWarning):
            print(f"brainlike: warning: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    if args.json:
        json.dump(records, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        from brainlike.report.tables import print_records

        print_records(records)
        if args.out:
            print(f"results written to {args.out}", file=sys.stderr)
    return 0


def _extract(args: argparse.Namespace) -> int:
    from brainlike import progress
    from brainlike.api import extract

    if args.frames:
        return _extract_frames(args)
    if args.layers is not None:
        from brainlike.errors import BrainlikeError

        raise BrainlikeError("--layers applies to --frames only")
    for spec in args.models:
        activations = extract(spec, args.stimuli, progress=progress.enabled())
        shapes = ", ".join(f"{layer} {activations.arrays[layer].shape[1]}" for layer in activations.layers)
        state = "cached" if activations.from_cache else "extracted"
        print(f"{spec}: {state} {len(activations.stimulus_ids)} stimuli; layers: {shapes}")
    return 0


def _extract_frames(args: argparse.Namespace) -> int:
    from brainlike import progress
    from brainlike.api import extract

    layers = [name.strip() for name in args.layers.split(",") if name.strip()] if args.layers else None
    for spec in args.models:
        frames = extract(spec, args.stimuli, progress=progress.enabled(), frames=True, rate=args.rate, pre=args.pre,
                         stop=args.stop, layers=layers)
        state = "cached" if frames.from_cache else "extracted"
        hops = frames.info.get("frame_hop_s", {})
        shapes = ", ".join(f"{layer} {frames.info['shape'][layer][-1]} ({_hop(hops.get(layer))})"
                           for layer in frames.layers)
        print(f"{spec}: {state} frames of {len(frames.stimulus_ids)} stimuli, {len(frames.bin_times)} bins at "
              f"{frames.rate:g} Hz from {frames.bin_times[0]:g} s, {'causal' if frames.causal else 'non-causal'}; "
              f"layers: {shapes}")
    return 0


def _hop(hop: float | None) -> str:
    return "frames every ? ms" if hop is None else f"frames every {hop * 1000:.3g} ms"


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
    from brainlike.extract.frames import FrameStore

    stores = [(kind, ArrayCache(kind)) for kind in ("activations", "embeddings")] + [("frames", FrameStore())]
    for kind, store in stores:
        for row in store.verify():
            if row["status"] != "ok":
                bad += 1
                print(f"{kind}/{row['key'][:16]}: {row['status']} ({row['detail']})")
    print(f"cache verify: {bad} bad entr{'y' if bad == 1 else 'ies'}")
    return 1 if bad else 0
