"""What a gate naming a fairness metric reads from a version's ``spec.fairness`` (pure).

A gate's metric is either a name in ``spec.metrics`` or, with the prefix ``fairness.``, a number in
the fairness record the trainer wrote (``docs/fairness.md``):

- ``fairness.<feature>.<gap>``: a gap between the groups of a sensitive feature (or of an
  intersection, named ``a&b``): ``demographicParityDifference``, ``demographicParityRatio``,
  ``equalizedOddsDifference``; for regression ``maeDifference``, ``meanPredictionDifference``;
- ``fairness.<feature>.groups.<group>.<metric>``: one group's ``selectionRate``, ``accuracy``,
  ``precision``, ``recall``, ``falsePositiveRate``, ``mae`` or ``meanPrediction``.

Feature and group names may hold dots: they are matched against the names the record has.

A reading carries its evidence: a gap is only as good as its smallest group, so a gate on a gap
whose feature has a group with fewer held-out rows than the larger of the record's
``minGroupSize`` and the policy's, or a gate on such a group, has *insufficient evidence*. So has
an equalized-odds gate when a group lacks positive or negative labels (its rates are undefined;
fairlearn counts them as 0). The gate then fails unless the policy allows insufficient evidence
for the stage, in which case it is judged on its value and the evidence is still recorded.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PREFIX = "fairness."
GAPS = (
    "demographicParityDifference",
    "demographicParityRatio",
    "equalizedOddsDifference",
    "maeDifference",
    "meanPredictionDifference",
)
GROUP_METRICS = ("selectionRate", "accuracy", "precision", "recall", "falsePositiveRate", "mae", "meanPrediction")
#: Gates whose groups must hold both labels: their rates are undefined otherwise.
NEEDS_BOTH_LABELS = ("equalizedOddsDifference", "recall", "falsePositiveRate")


def names_fairness(metric: str) -> bool:
    """Whether a gate's metric is read from ``spec.fairness`` rather than ``spec.metrics``."""
    return metric.startswith(PREFIX)


@dataclass(frozen=True)
class Reading:
    """A fairness gate's value, and why its evidence is insufficient (None: it suffices)."""

    value: float | None
    insufficient: str | None = None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None


def _small(groups: Sequence[Mapping[str, Any]], minimum: int, both_labels: bool) -> list[str]:
    """Why each group that is too small to judge by is so."""
    found: list[str] = []
    for group in groups:
        count = int(group.get("count") or 0)
        name = str(group.get("group"))
        if count < minimum:
            found.append(f"{name} ({count} held-out rows, fewer than {minimum})")
        elif both_labels and (group.get("positives") == 0 or group.get("negatives") == 0):
            which = "positive" if group.get("positives") == 0 else "negative"
            found.append(f"{name} (no {which} label in the held-out split)")
    return found


def _evidence(small: list[str]) -> str | None:
    if not small:
        return None
    return ("group " if len(small) == 1 else "groups ") + ", ".join(small)


def read(metric: str, record: Mapping[str, Any] | None, min_group_size: int = 0) -> Reading:
    """The value a fairness gate compares, and its evidence (see the module doc); value None when absent."""
    if not record:
        return Reading(None)
    rest = metric.removeprefix(PREFIX)
    minimum = max(int(record.get("minGroupSize") or 1), min_group_size)
    features = [f for f in record.get("features") or [] if isinstance(f, Mapping) and isinstance(f.get("name"), str)]
    for feature in sorted(features, key=lambda f: -len(str(f["name"]))):
        name = str(feature["name"])
        if not rest.startswith(name + "."):
            continue
        tail = rest[len(name) + 1 :]
        groups = [g for g in feature.get("groups") or [] if isinstance(g, Mapping)]
        if tail in GAPS:
            small = _small(groups, minimum, tail in NEEDS_BOTH_LABELS)
            return Reading(_number((feature.get("metrics") or {}).get(tail)), _evidence(small))
        head, _, measure = tail.rpartition(".")
        if head.startswith("groups.") and measure in GROUP_METRICS:
            wanted = head.removeprefix("groups.")
            for group in groups:
                if str(group.get("group")) == wanted:
                    small = _small([group], minimum, measure in NEEDS_BOTH_LABELS)
                    return Reading(_number(group.get(measure)), _evidence(small))
    return Reading(None)


def judge(gate: dict[str, Any], reading: Reading, allow_insufficient: bool) -> None:
    """Record a fairness gate's evidence on its result; insufficient evidence fails it unless allowed."""
    if reading.insufficient is None:
        return
    gate["insufficientEvidence"] = reading.insufficient + (" (allowed by the policy)" if allow_insufficient else "")
    if not allow_insufficient:
        gate["passed"] = False


_COMPARE = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


def problem(gate: Mapping[str, Any]) -> str:
    """Why a failing fairness gate fails, in one clause: its value, its evidence, or both."""
    want = f"{gate['op']} {gate['threshold']:g}"
    if gate.get("value") is None:
        return (
            f"{gate['metric']} is missing from spec.fairness (needs {want}; train with "
            "spec.evaluation.sensitiveFeatures, and see docs/fairness.md for the names)"
        )
    evidence = gate.get("insufficientEvidence")
    if _COMPARE[str(gate["op"])](float(gate["value"]), float(gate["threshold"])):
        return f"{gate['metric']} {gate['value']:g}: insufficient evidence, {evidence}"
    return f"{gate['metric']} {gate['value']:g} is not {want}" + (f" (and insufficient evidence, {evidence})"
                                                                  if evidence else "")


def summary(record: Mapping[str, Any] | None) -> dict[str, dict[str, float]]:
    """Each feature's gaps: a trial's line in a TrainingRun's status."""
    out: dict[str, dict[str, float]] = {}
    for feature in (record or {}).get("features") or []:
        if isinstance(feature, Mapping) and isinstance(feature.get("name"), str):
            gaps = {k: n for k, v in (feature.get("metrics") or {}).items() if (n := _number(v)) is not None}
            out[str(feature["name"])] = gaps
    return out
