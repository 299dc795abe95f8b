"""``brainlike features``: feature files usable as models and controls (``features:PATH.npz``)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("features", help="feature files (features:PATH.npz) for scores and --control")
    sub = p.add_subparsers(dest="features_command", metavar="ACTION", required=True)
    c = sub.add_parser("convert-ecog-acoustics",
                       help="ECoG repository acoustic_features.mat -> a named feature file (natsound165 order)")
    c.add_argument("out", metavar="OUT.npz")
    c.add_argument("--source", default=None,
                   help="acoustic_features.mat (default: ecog_nh2022/acoustic_features.mat in the data folder)")
    c.add_argument("--array", action="append", choices=["cochleagram", "modulation"], default=None,
                   help="which features to write (repeatable; default both: cochleagram 6 bands, modulation 7x9)")
    c.set_defaults(handler=_convert_ecog)
    i = sub.add_parser("info", help="list a feature file's arrays and stimuli")
    i.add_argument("path")
    i.set_defaults(handler=_info)


def _convert_ecog(args: argparse.Namespace) -> int:
    from pathlib import Path

    from brainlike.config import data_root
    from brainlike.integrity import read_sums, verify_file
    from brainlike.data.stimuli import load_stimulus_set, stimulus_number
    from brainlike.errors import DataError
    from brainlike.extract.features import ecog_acoustic_features, write_feature_file

    folder = data_root() / "ecog_nh2022"
    source = Path(args.source) if args.source else folder / "acoustic_features.mat"
    if not source.is_file():
        raise DataError(f"{source} not found (fetch ecog-nh2022 or give --source)")
    if not args.source and (folder / "SHA256SUMS").is_file():
        verify_file(source, read_sums(folder / "SHA256SUMS")["acoustic_features.mat"])
    ids = sorted(load_stimulus_set("natsound165", verify=False).ids, key=stimulus_number)
    arrays = ecog_acoustic_features(source, ids, args.array or ("cochleagram", "modulation"))
    write_feature_file(args.out, ids, arrays)
    shapes = ", ".join(f"{k} {v.shape[1]}" for k, v in arrays.items())
    print(f"{args.out}: {len(ids)} stimuli (ascending stimulus ID); arrays: {shapes}; use --control features:{args.out}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from brainlike.extract.features import read_feature_file

    names, arrays, frame_times = read_feature_file(args.path)
    print(f"{args.path}: {len(names)} stimuli ({names[0]} ... {names[-1]})")
    for key, value in arrays.items():
        print(f"  {key}: {value.shape} {value.dtype}")
    if frame_times is not None:
        print(f"  frame_times: {len(frame_times)} from {frame_times[0]:.3f} s")
    return 0
