"""``modelops drift``: compare a current sample with a reference from the command line.

Exit status, like diff(1): 0 when no feature drifted, 1 when at least one did, 2 for a
usage error or unusable input (missing file, a file without rows, unknown feature or method,
columns that do not match, no feature that could be scored), with one line on stderr naming
the problem. When the reader of the output goes away (``| head``), the rest of the output is
dropped and the status is still the verdict.

ks and wasserstein apply to numeric features only; asked for on a table with categorical
features, they score the numeric ones and hand the categorical ones to their nearest kin
(``CATEGORICAL_STAND_IN``: ks to chi2, a test with a p-value like it; wasserstein to jsd, a
distance), and the output says which method scored which feature.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from modelops.drift import bins, comparison, data, files, methods

EXIT_NO_DRIFT = 0
EXIT_DRIFT = 1
EXIT_ERROR = 2

_PROG = "modelops drift"

# The method that scores the categorical features when the asked-for one applies to numeric ones only.
CATEGORICAL_STAND_IN: dict[str, str] = {"ks": "chi2", "wasserstein": "jsd"}


class _UsageError(Exception):
    """argparse's complaint, raised instead of printing the usage and exiting."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def _epilog() -> str:
    lines = ["methods (default threshold; what drifted means):"]
    for method in methods.METHODS:
        lines.append(f"  {method:<12} {methods.METHOD_DESCRIPTIONS[method]}")
    stand_ins = ", ".join(f"{method} -> {other}" for method, other in CATEGORICAL_STAND_IN.items())
    lines += [
        "",
        "ks and wasserstein apply to numeric features only: on a table with categorical features the",
        f"categorical ones are scored by a stand-in ({stand_ins}), and the output names the method of",
        "every feature. A --threshold given for ks carries over to chi2 (both p-values); jsd keeps its own.",
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
    parser.add_argument(
        "--bins",
        type=int,
        default=bins.DEFAULT_BINS,
        help="quantile bins for raw numeric references (default: %(default)s)",
    )
    parser.add_argument(
        "--categorical",
        metavar="A,B,...",
        help="treat these numeric-looking columns as categorical (default: none; types decide)",
    )
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


@dataclass(frozen=True)
class Outcome:
    """The reports of one run: the asked-for method's, then the stand-in's for categorical features."""

    reports: list[comparison.DriftReport]
    order: list[str]  # every compared feature, in the reference's (or --features') order

    @property
    def features(self) -> list[comparison.FeatureDrift]:
        by_name = {feature.name: feature for report in self.reports for feature in report.features}
        return [by_name[name] for name in self.order if name in by_name]

    @property
    def drifted(self) -> list[str]:
        return [feature.name for feature in self.features if feature.drifted]

    def to_dict(self) -> dict[str, Any]:
        main = self.reports[0]
        result = {**main.to_dict(), "drifted": bool(self.drifted), "driftedFeatures": self.drifted,
                  "features": [feature.to_dict() for feature in self.features]}  # fmt: skip
        if len(self.reports) > 1:
            other = self.reports[1]
            result["standIn"] = {
                "method": other.method,
                "threshold": other.threshold,
                "features": [feature.name for feature in other.features],
                "reason": f"{main.method} applies to numeric features only",
            }
        return result


def _kinds(reference: Any, names: Sequence[str], forced: Sequence[str]) -> dict[str, str]:
    """Each known feature's kind, as the library will judge it (unknown names are the library's to refuse)."""
    if isinstance(reference, Mapping) and not isinstance(reference, files.Table):
        parsed = bins.parse_reference_stats(reference)
        return {name: parsed[name].kind for name in names if name in parsed}
    return {
        name: methods.CATEGORICAL if name in forced else data.column_kind(reference[name])
        for name in names
        if name in reference
    }


def _run(args: argparse.Namespace) -> Outcome:
    methods.check_method(args.method)
    features = _names(args.features)
    forced = _names(args.categorical) or []
    compare: Callable[[str, list[str], float | None], comparison.DriftReport]
    reference: Any
    if files.is_document(args.reference):
        reference = files.load_document(args.reference, "reference")
        stats = reference
        if files.is_document(args.current):
            counts = files.current_counts(files.load_document(args.current, "current"), args.current)

            def compare(method: str, names: list[str], threshold: float | None) -> comparison.DriftReport:
                return comparison.compare_binned(stats, counts, method=method, features=names, threshold=threshold,
                                                 min_samples=args.min_samples)  # fmt: skip
        else:
            current = files.load_table(args.current, "current")

            def compare(method: str, names: list[str], threshold: float | None) -> comparison.DriftReport:
                return comparison.compare_to_reference(stats, current, method=method, features=names,
                                                       threshold=threshold, min_samples=args.min_samples)  # fmt: skip
        every = [str(f.get("name")) for f in bins.unwrap_reference_stats(stats).get("features") or []]
    else:
        if files.is_document(args.current):
            raise files.InputError("per-bin current counts need a referenceStats reference (JSON/YAML)")
        reference = files.load_table(args.reference, "reference")
        table = files.load_table(args.current, "current")

        def compare(method: str, names: list[str], threshold: float | None) -> comparison.DriftReport:
            return comparison.compare(reference, table, method=method, features=names, threshold=threshold,
                                      bins=args.bins, categorical=forced, min_samples=args.min_samples)  # fmt: skip
        every = list(reference)
    names = list(dict.fromkeys(features)) if features else every
    stand_in = CATEGORICAL_STAND_IN.get(args.method)
    kinds = _kinds(reference, names, forced)
    others = [name for name in names if stand_in and kinds.get(name) == methods.CATEGORICAL]
    mine = [name for name in names if name not in others]
    reports = []
    if mine:
        reports.append(compare(args.method, mine, args.threshold))
    if others and stand_in is not None:
        # A p-value threshold means the same to another test; a distance's scale is the method's own.
        both_tests = methods.DRIFTED_WHEN[stand_in] == methods.DRIFTED_WHEN[args.method] == "<"
        other = compare(stand_in, others, args.threshold if both_tests else None)
        if not mine:  # only categorical features: say what was asked for, scored by the stand-in
            limit = methods.DEFAULT_THRESHOLDS[args.method] if args.threshold is None else args.threshold
            reports.append(comparison.DriftReport(args.method, limit, ()))
        reports.append(other)
    return Outcome(reports, names)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _summary(outcome: Outcome) -> str:
    drifted = outcome.drifted
    total = len(outcome.features)
    reports = [report for report in outcome.reports if report.features or len(outcome.reports) == 1]
    rules = ", ".join(
        f"{report.method} score {methods.DRIFTED_WHEN[report.method]} {report.threshold:g}" for report in reports
    )
    if len(outcome.reports) > 1:
        main, other = outcome.reports
        scope = (
            f"{main.method} on {len(main.features)} numeric, {other.method} on {len(other.features)} categorical "
            f"({main.method} applies to numeric features only): "
        )
        head = f"{scope}drift in {len(drifted)} of {total} features (drifted when {rules})"
    else:
        report = outcome.reports[0]
        rule = f"score {methods.DRIFTED_WHEN[report.method]} {report.threshold:g}"
        head = f"{report.method}: drift in {len(drifted)} of {total} features (drifted when {rule})"
    return head + (f": {', '.join(drifted)}" if drifted else "")


def format_table(outcome: Outcome | comparison.DriftReport) -> str:
    """A fixed-width table, one row per feature, and a one-line summary (a method column when two scored)."""
    if isinstance(outcome, comparison.DriftReport):
        outcome = Outcome([outcome], [feature.name for feature in outcome.features])
    mixed = len(outcome.reports) > 1
    header = ("feature", "kind", *(("method",) if mixed else ()), "score", "threshold", "drifted", "reference",
              "current", "note")  # fmt: skip
    rows = [
        (
            feature.name,
            feature.kind,
            *((feature.method,) if mixed else ()),
            _number(feature.score),
            _number(feature.threshold),
            "yes" if feature.drifted else "no",
            str(feature.reference_size),
            str(feature.current_size),
            feature.note or "",
        )
        for feature in outcome.features
    ]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    lines.append("")
    lines.append(_summary(outcome))
    return "\n".join(lines)


def _unscored(outcome: Outcome) -> str | None:
    """Why nothing could be scored, or None when some feature was."""
    features = outcome.features
    if any(feature.score is not None for feature in features):
        return None
    reasons = "; ".join(f"{feature.name}: {feature.note}" for feature in features[:3])
    more = f"; and {len(features) - 3} more" if len(features) > 3 else ""
    return f"no feature could be scored ({reasons}{more})"


def _error(message: str) -> int:
    print(f"{_PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``modelops drift``; returns the exit status (0 no drift, 1 drift, 2 error)."""
    parser = _parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        outcome = _run(args)
    except _UsageError as error:
        return _error(f"{error} (see --help)")
    except SystemExit as exit_:  # --help
        return int(exit_.code or 0) if isinstance(exit_.code, int | None) else EXIT_ERROR
    except ValueError as error:  # InputError and the library's validation errors
        return _error(str(error))
    problem = _unscored(outcome)
    if problem is not None:
        return _error(problem)
    status = EXIT_DRIFT if outcome.drifted else EXIT_NO_DRIFT
    try:
        if args.format == "json":
            print(json.dumps(outcome.to_dict(), indent=2))
        else:
            print(format_table(outcome))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader stopped reading (`| head -1`): the rest goes nowhere; the verdict stands.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return status
