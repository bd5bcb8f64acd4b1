"""``modelops drift``: compare a current sample with a reference from the command line.

Exit status, like diff(1): 0 when no feature drifted, 1 when at least one did, 2 for a
usage error or unusable input (missing file, unknown feature or method, columns that do
not match), with one line on stderr naming the problem.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import NoReturn

from modelops.drift import bins, comparison, files, methods

EXIT_NO_DRIFT = 0
EXIT_DRIFT = 1
EXIT_ERROR = 2

_PROG = "modelops drift"


class _UsageError(Exception):
    """argparse's complaint, raised instead of printing the usage and exiting."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def _epilog() -> str:
    lines = ["methods (default threshold; what drifted means):"]
    for method in methods.METHODS:
        lines.append(f"  {method:<12} {methods.METHOD_DESCRIPTIONS[method]}")
    lines += [
        "",
        "REF and CUR are CSV (.csv, .csv.gz, .tsv) or Parquet (.parquet, .pq) files of samples, one",
        "column per feature. REF may instead be JSON/YAML holding referenceStats, a trainer result.json",
        "or a whole ModelVersion (spec.referenceStats); CUR is then samples counted into its bins, or",
        "JSON/YAML per-bin counts {feature: [counts]} (categorical: {feature: {category: count}}).",
        "",
        "exit status: 0 no drift, 1 drift found, 2 usage error or bad input.",
    ]
    return "\n".join(lines)


def _parser() -> _Parser:
    parser = _Parser(
        prog=_PROG,
        description="Compute drift statistics between a reference and a current sample.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--reference", required=True, metavar="REF", help="reference samples or referenceStats")
    parser.add_argument("--current", required=True, metavar="CUR", help="current samples or per-bin counts")
    parser.add_argument("--method", default="psi", help=f"one of {', '.join(methods.METHODS)} (default: psi)")
    parser.add_argument("--features", metavar="A,B,...", help="features to compare (default: every reference feature)")
    parser.add_argument("--threshold", type=float, help="drift threshold (default: the method's, see below)")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format (default: table)")
    parser.add_argument("--bins", type=int, default=bins.DEFAULT_BINS, help="quantile bins for raw numeric references")
    parser.add_argument("--categorical", metavar="A,B,...", help="treat these numeric-looking columns as categorical")
    parser.add_argument(
        "--min-samples",
        type=int,
        default=comparison.DEFAULT_MIN_SAMPLES,
        help="fewer values than this on a side and a feature is not scored (default: %(default)s)",
    )
    return parser


def _names(option: str | None) -> list[str] | None:
    if option is None:
        return None
    names = [name.strip() for name in option.split(",") if name.strip()]
    return names or None


def _run(args: argparse.Namespace) -> comparison.DriftReport:
    methods.check_method(args.method)
    features = _names(args.features)
    if files.is_document(args.reference):
        stats = files.load_document(args.reference, "reference")
        if files.is_document(args.current):
            counts = files.current_counts(files.load_document(args.current, "current"), args.current)
            return comparison.compare_binned(
                stats,
                counts,
                method=args.method,
                features=features,
                threshold=args.threshold,
                min_samples=args.min_samples,
            )
        return comparison.compare_to_reference(
            stats,
            files.load_table(args.current, "current"),
            method=args.method,
            features=features,
            threshold=args.threshold,
            min_samples=args.min_samples,
        )
    if files.is_document(args.current):
        raise files.InputError("per-bin current counts need a referenceStats reference (JSON/YAML)")
    reference = files.load_table(args.reference, "reference")
    current = files.load_table(args.current, "current")
    return comparison.compare(
        reference,
        current,
        method=args.method,
        features=features,
        threshold=args.threshold,
        bins=args.bins,
        categorical=_names(args.categorical) or (),
        min_samples=args.min_samples,
    )


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def format_table(report: comparison.DriftReport) -> str:
    """A fixed-width table, one row per feature, and a one-line summary."""
    header = ("feature", "kind", "score", "threshold", "drifted", "reference", "current", "note")
    rows = [
        (
            feature.name,
            feature.kind,
            _number(feature.score),
            _number(feature.threshold),
            "yes" if feature.drifted else "no",
            str(feature.reference_size),
            str(feature.current_size),
            feature.note or "",
        )
        for feature in report.features
    ]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    rule = methods.DRIFTED_WHEN[report.method]
    drifted = report.drifted_features
    lines.append("")
    lines.append(
        f"{report.method}: drift in {len(drifted)} of {len(report.features)} features "
        f"(drifted when score {rule} {report.threshold:g})" + (f": {', '.join(drifted)}" if drifted else "")
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``modelops drift``; returns the exit status (0 no drift, 1 drift, 2 error)."""
    parser = _parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        report = _run(args)
    except _UsageError as error:
        print(f"{_PROG}: error: {error} (see --help)", file=sys.stderr)
        return EXIT_ERROR
    except SystemExit as exit_:  # --help
        return int(exit_.code or 0) if isinstance(exit_.code, int | None) else EXIT_ERROR
    except ValueError as error:  # InputError and the library's validation errors
        print(f"{_PROG}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return EXIT_ERROR
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_table(report))
    return EXIT_DRIFT if report.drifted else EXIT_NO_DRIFT
