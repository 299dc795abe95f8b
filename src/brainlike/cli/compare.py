"""``brainlike compare``, ``similarity`` and ``ceiling``: comparing representations and bounding scores."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare", help="does model A beat model B? paired tests on out-of-fold predictions, every pair",
        description="For every pair of the models: the score difference per target and overall, a 95%% paired "
                    "bootstrap CI over sounds (and subjects), a permutation p-value (the two models' out-of-fold "
                    "predictions swapped per sound), Benjamini-Hochberg q across targets and pairs, and the paired "
                    "Wilcoxon test across subjects where there are several.")
    p.add_argument("results", help="results folder of `brainlike score ... --out` holding the models")
    p.add_argument("models", nargs="+", metavar="MODEL", help="two or more model specs as in the records")
    p.add_argument("--metric", default="regression", choices=["regression", "rsa"])
    p.add_argument("--dataset", default=None, help="dataset to compare on when the results hold several")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (default 1000)")
    p.add_argument("--permutations", type=int, default=1000, metavar="N", help="permutations (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--selection", default=None, help="rsa: layer selection to compare (default layer-max)")
    p.add_argument("--out", default=None, help="write the results folder with comparisons.jsonl here "
                                               "(may be RESULTS itself)")
    p.add_argument("--json", action="store_true", help="print only the comparison records as JSON")
    p.set_defaults(handler=_compare)

    p = subparsers.add_parser(
        "similarity", help="layer x layer CKA / Procrustes / RSA matrix between models or a neural dataset",
        description="Two feature sets: rows = layers of the first, columns = layers of the second (give a model "
                    "twice to compare it with itself). More: rows = columns = every layer of every set. A neural "
                    "dataset (registered name or .nc/.npz file) is one 'layer': its mean responses.")
    p.add_argument("sets", nargs="+", metavar="MODEL_OR_DATASET")
    p.add_argument("--metric", default="cka", choices=["cka", "cka-debiased", "procrustes", "procrustes-cv", "rsa"])
    p.add_argument("--whiten", type=float, default=0.0,
                   help="Procrustes partial whitening in [0, 1] (0 plain, 1 full; netrep alpha = 1 - whiten)")
    p.add_argument("--stimuli", default=None, help="stimulus set of the models (default natsound165)")
    p.add_argument("--layer", action="append", default=[], metavar="MODEL=LAYER[,LAYER]",
                   help="only these layers of a model (repeatable)")
    p.add_argument("--layers-from", default=None, metavar="RESULTS",
                   help="keep each model's best layer: its aggregate regression record's layer in RESULTS")
    p.add_argument("--out", default=None, help="write records, detail-similarity.nc and a heatmap PNG here")
    p.add_argument("--json", action="store_true", help="print only the records as JSON")
    p.set_defaults(handler=_similarity)

    p = subparsers.add_parser(
        "ceiling", help="noise ceilings of a dataset with repetitions (per target and summary)",
        description="spearman-brown (reliability of the mean of R repetitions, bounds R2), ncsnr (Allen et al. "
                    "2022, bounds R2), cc-max (Schoppe et al. 2016, bounds r), loso (leave one subject out, bounds "
                    "the RSA rho). Formulas: docs/protocols.md.")
    p.add_argument("dataset", help="dataset name or .nc/.npz file")
    p.add_argument("--method", default="ncsnr", choices=["spearman-brown", "ncsnr", "cc-max", "loso"])
    p.add_argument("--out", default=None, help="write records and detail-ceiling.nc here")
    p.add_argument("--json", action="store_true", help="print only the records as JSON")
    p.set_defaults(handler=_ceiling)


def _dump(rows: list[dict]) -> None:
    json.dump(rows, sys.stdout, indent=1)
    sys.stdout.write("\n")


def _compare(args: argparse.Namespace) -> int:
    from brainlike.api import compare
    from brainlike.errors import BrainlikeError

    if len(set(args.models)) < 2:
        raise BrainlikeError("compare needs at least two different models")
    results = compare(args.results, *args.models, metric=args.metric, dataset=args.dataset,
                      n_bootstrap=args.bootstrap, n_permutations=args.permutations, seed=args.seed,
                      selection=args.selection, out=args.out)
    if args.json:
        _dump(results.comparisons)
        return 0
    from brainlike.report import beats_table, comparison_view
    from brainlike.report.tables import print_rows

    view = comparison_view(beats_table(results.to_frame("comparisons")))
    print_rows(view.to_dict("records"), list(view.columns), title="Does A beat B?")
    if args.out:
        print(f"comparisons written to {args.out}", file=sys.stderr)
    return 0


def _similarity(args: argparse.Namespace) -> int:
    from brainlike import progress
    from brainlike.api import similarity
    from brainlike.errors import BrainlikeError

    layers = {}
    for item in args.layer:
        model, _, names = item.rpartition("=")
        if not model or not names:
            raise BrainlikeError(f"--layer takes MODEL=LAYER[,LAYER...], not {item!r}")
        layers[model] = names.split(",")
    results = similarity(*args.sets, metric=args.metric, stimuli=args.stimuli, layers=layers,
                         layers_from=args.layers_from, whiten=args.whiten, out=args.out,
                         progress=progress.enabled())
    if args.json:
        _dump(results.records)
        return 0
    _print_matrix(results.details["similarity"])
    if args.out:
        print(f"similarity written to {args.out}", file=sys.stderr)
    return 0


def _print_matrix(matrix) -> None:
    from brainlike.report.tables import print_rows

    values = matrix["similarity"].values
    columns = [str(c) for c in matrix["column"].values]
    rows = [{"": str(r), **{c: float(v) for c, v in zip(columns, values[i])}}
            for i, r in enumerate(matrix["row"].values)]
    print_rows(rows, [""] + columns, title=f"{matrix.attrs['metric']} ({matrix.attrs['kind']})")


def _ceiling(args: argparse.Namespace) -> int:
    from brainlike.api import ceiling

    results = ceiling(args.dataset, method=args.method, out=args.out)
    if args.json:
        _dump(results.records)
        return 0
    from brainlike.report.tables import print_rows

    columns = ["dataset", "method", "bounds", "target", "subject", "roi", "score", "sem", "n_reps", "n_targets",
               "n_defined"]
    used = [c for c in columns if any(r.get(c) is not None for r in results)]
    print_rows(results.records, used, title=f"noise ceilings ({args.method}; score = the bound on "
                                            f"{results.records[0]['bounds']})")
    if args.out:
        print(f"ceilings written to {args.out}", file=sys.stderr)
    return 0
