"""Command-line interface: ``brainlike <command> ...``.

Each module in this package adds its sub-commands with ``register(subparsers)`` and handles them in functions that
parse nothing themselves: they call the library (data, models, extract, align, downstream, pretrain, report).
Errors a user can fix (:class:`brainlike.errors.BrainlikeError`) become one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from brainlike import __version__
from brainlike.errors import BrainlikeError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="brainlike", description="How brain-like is this audio model, layer by layer?"
    )
    parser.add_argument("--version", action="version", version=f"brainlike {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or info logs")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs (cache hits, timings)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    import brainlike.cli as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"brainlike.cli.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else (logging.ERROR if args.quiet else logging.WARNING),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from brainlike import progress

    progress.set_enabled(not args.quiet)
    try:
        return int(args.handler(args) or 0)
    except BrainlikeError as exc:
        print(f"brainlike: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("brainlike: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
