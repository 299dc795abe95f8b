"""``brainlike fetch``: download data sets, verified by sha256."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("fetch", help="download data (natsound165, nh2015-components, ecog-nh2022, nh2015, b2021)")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--dest", default=None, help="data folder to fill (default: BRAINLIKE_DATA or the user data dir)")
    p.add_argument("--accept-sha256", default=None,
                   help="voxel archive (nh2015, b2021): the sha256 you accept; default: trust on first download")
    p.set_defaults(handler=_fetch)


def _fetch(args: argparse.Namespace) -> int:
    from brainlike import progress
    from brainlike.data.fetch import fetch

    for name in args.names:
        root = fetch(name, args.dest, show_progress=progress.enabled(), accept_sha256=args.accept_sha256)
        print(f"{name}: ready under {root}")
    return 0
