"""``brainlike report RESULTS_DIR``: one self-contained HTML page plus PNG/SVG figures and CSV/parquet tables."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="HTML report (figures, tables, provenance) of one or more results folders",
        description="Write RESULTS_DIR/report/report.html (figures embedded, no network needed) with the figures as "
                    "PNG and SVG under figures/ and the tables as CSV and parquet under tables/.")
    parser.add_argument("results", nargs="+", help="results folder(s) written by `score --out`, `run` or `downstream`")
    parser.add_argument("--out", help="output folder (default: FIRST_RESULTS_DIR/report)")
    parser.add_argument("--title", help="page title")
    parser.set_defaults(handler=handle_report)


def handle_report(args: argparse.Namespace) -> int:
    from brainlike.report import make_report

    report = make_report(*args.results, out=args.out, title=args.title)
    print(report.html)
    return 0
