"""The DriftPolicy's decisions: what to query, how to score it, when to retrain, what to create.

The operator's own evaluation does not depend on the generated rules being loaded anywhere:
it asks Prometheus for the raw bucket and category increases over the window
(:func:`bucket_query`, :func:`category_query`), turns the cumulative ``le`` buckets into
per-bin counts (:func:`numeric_counts`, matching ``le`` values to the reference edges as
numbers, so any spelling of the bound works) and scores them with the drift library's
``compare_binned`` -- every method, not only the PSI the rules compute.

Retraining (:func:`retrain_decision`) happens on a fresh evaluation that found drift, at most
one run in flight per policy, not within the cooldown of the last one, and not beyond
``maxPerDay`` runs in the last 24 hours. The runs are labelled with the policy but NOT owned
by it: deleting a policy keeps the runs and the versions they registered (like a TrainingRun
keeps its ModelVersion). The history that cooldown and budget are judged on is the union of
``status.retrains`` and the labelled runs that exist, so neither a lost status write nor a
deleted run lets a retrain through early.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from modelops.api.common import API_VERSION
from modelops.api.driftpolicy import DriftPolicySpec, RetrainAction
from modelops.drift import bins as binning
from modelops.drift import comparison
from modelops.drift.methods import DRIFTED_WHEN, METHOD_KINDS
from modelops.logic.analysis import parse_duration
from modelops.logic.conditions import Reason, parse_time
from modelops.logic.driftrules import FEATURE_BUCKET, FEATURE_CATEGORY, POLICY_LABEL, Target, series_selector

JsonDict = dict[str, Any]

# Condition types and reasons of DriftPolicy.
RULE_SYNCED: Final = "RuleSynced"
DRIFT_DETECTED: Final = "DriftDetected"
RETRAIN_TRIGGERED: Final = "RetrainTriggered"

REASON_DRIFT: Final = Reason.DRIFT_DETECTED
REASON_NO_DRIFT: Final = Reason.NO_DRIFT
REASON_TOO_FEW: Final = Reason.TOO_FEW_SAMPLES
REASON_PROM_UNREACHABLE: Final = Reason.PROMETHEUS_UNREACHABLE
REASON_NO_PROMETHEUS: Final = Reason.NO_PROMETHEUS
REASON_NOT_EVALUATED: Final = Reason.NOT_EVALUATED

TERMINAL_PHASES: Final = frozenset({"Succeeded", "Failed", "Deleted"})
REASON_ANNOTATION: Final = "modelops.io/retrain-reason"
FROM_VERSION_ANNOTATION: Final = "modelops.io/retrained-from"
KEEP_RECORDS: Final = 20
DAY: Final = datetime.timedelta(days=1)


# --- queries and counts --------------------------------------------------------------------------


def bucket_query(target: Target, window: str) -> str:
    return f"sum by (feature, le) (increase({FEATURE_BUCKET}{series_selector(target)}[{window}]))"


def category_query(target: Target, window: str) -> str:
    return f"sum by (feature, category) (increase({FEATURE_CATEGORY}{series_selector(target)}[{window}]))"


def _le(text: str) -> float | None:
    try:
        return float(text)  # float() reads '+Inf', '1e+06', '1.0' alike
    except ValueError:
        return None


def numeric_counts(feature: binning.NumericBins, buckets: Mapping[str, float]) -> tuple[list[float] | None, str | None]:
    """Per-bin counts from one feature's cumulative buckets (``le`` text → increase), or why not."""
    by_bound: dict[float, float] = {}
    for le, value in buckets.items():
        bound = _le(le)
        if bound is not None and math.isfinite(value):
            by_bound[bound] = value
    total = by_bound.get(math.inf)
    if total is None:
        return None, "no live series (le=+Inf) in the window"
    cumulative = []
    for edge in (float(e) for e in feature.interior):
        found = [v for b, v in by_bound.items() if math.isfinite(b) and math.isclose(b, edge, rel_tol=1e-9)]
        if not found:
            return None, f"the served buckets do not match the reference edges (no le={edge!r})"
        cumulative.append(found[0])
    cumulative.append(total)
    counts = []
    previous = 0.0
    for value in cumulative:
        # increase() extrapolates each bucket on its own; a tiny negative difference is zero.
        counts.append(max(value - previous, 0.0))
        previous = max(previous, value)
    return counts, None


@dataclass
class Evaluation:
    """One evaluation's result, ready for status."""

    samples: float
    features: list[JsonDict]
    drifted_features: list[str]
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def drifted(self) -> bool:
        return bool(self.drifted_features)


def evaluate(
    spec: DriftPolicySpec,
    reference_stats: Mapping[str, Any],
    features: Sequence[str],
    buckets: Mapping[str, Mapping[str, float]],
    categories: Mapping[str, Mapping[str, float]],
) -> Evaluation:
    """Score the live counts (feature → le/category → increase) against the reference."""
    reference = binning.parse_reference_stats(reference_stats)
    current: dict[str, list[float] | dict[str, float]] = {}
    notes: dict[str, str] = {}
    totals: list[float] = []
    for name in features:
        bins = reference[name]
        if isinstance(bins, binning.NumericBins):
            counts, problem = numeric_counts(bins, buckets.get(name, {}))
            if counts is None:
                notes[name] = problem or "no data"
                counts = [0.0] * bins.counts.size
            current[name] = counts
            totals.append(sum(counts))
        else:
            observed = {k: v for k, v in categories.get(name, {}).items() if math.isfinite(v) and v >= 0}
            if not observed:
                notes[name] = "no live series in the window"
            current[name] = observed or [0.0] * bins.counts.size
            totals.append(sum(observed.values()))
    report = comparison.compare_binned(
        reference_stats, current, method=spec.method, features=list(features), threshold=spec.threshold,
        min_samples=1,
    )  # fmt: skip
    rows = []
    for result in report.features:
        row: JsonDict = {
            "name": result.name,
            "score": None if result.score is None else round(result.score, 6),
            "threshold": result.threshold,
            "drifted": result.drifted,
            "samples": result.current_size,
        }
        note = notes.get(result.name) or result.note
        if note and result.score is None:
            notes[result.name] = note
        rows.append(row)
    return Evaluation(max(totals, default=0.0), rows, report.drifted_features, notes)


def check_methods(spec: DriftPolicySpec, reference: Mapping[str, binning.FeatureBins], features: Sequence[str]) -> None:
    """ValueError naming spec.method when it does not apply to a watched feature's kind, or spec.threshold
    when it is no p-value for a test (ks, chi2)."""
    if DRIFTED_WHEN[spec.method] == "<" and spec.threshold is not None and not 0 < spec.threshold <= 1:
        raise ValueError(
            f"spec.threshold: {spec.method} is a test and its threshold a p-value in (0, 1] (drift when p is "
            f"below it), not {spec.threshold:g}"
        )
    allowed = METHOD_KINDS[spec.method]
    wrong = [name for name in features if reference[name].kind not in allowed]
    if wrong:
        raise ValueError(
            f"spec.method: {spec.method} applies to numeric features only; {', '.join(wrong)} "
            f"{'is' if len(wrong) == 1 else 'are'} categorical "
            "(use psi, jsd or chi2, or list the numeric ones in spec.features)"
        )


def drift_message(spec: DriftPolicySpec, evaluation: Evaluation) -> str:
    samples = round(evaluation.samples)
    if evaluation.drifted:
        return (
            f"{spec.method} drift in {', '.join(evaluation.drifted_features)} over the last {spec.window} "
            f"({samples} samples)"
        )
    unscored = [f"{name}: {note}" for name, note in evaluation.notes.items()]
    extra = f"; not scored: {'; '.join(unscored)}" if unscored else ""
    return f"no {spec.method} drift over the last {spec.window} ({samples} samples){extra}"


def too_few_message(spec: DriftPolicySpec, samples: float) -> str:
    return f"skipped: {round(samples)} samples in the last {spec.window}, fewer than minSamples {spec.min_samples}"


def drift_events(was_drifted: bool | None, evaluation: Evaluation, message: str) -> list[tuple[str, str, str]]:
    """An Event when drift starts or ends (not on every evaluation)."""
    if evaluation.drifted and was_drifted is not True:
        return [("Warning", Reason.DRIFT_STARTED, message)]
    if not evaluation.drifted and was_drifted is True:
        return [("Normal", Reason.DRIFT_ENDED, message)]
    return []


# --- time ---------------------------------------------------------------------------------------


def seconds_until_due(last_evaluation: str | None, interval: str, now: datetime.datetime) -> float:
    """How long until the next evaluation is due (0 or less: due now)."""
    last = parse_time(last_evaluation)
    if last is None:
        return 0.0
    return (last - now).total_seconds() + parse_duration(interval)


# --- retraining ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """Whether to retrain now, and the RetrainTriggered condition that explains it."""

    create: bool
    status: bool
    reason: str
    message: str


def in_flight(records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    for record in records:
        if record.get("phase") not in TERMINAL_PHASES:
            return record
    return None


def retrain_decision(
    action: RetrainAction,
    *,
    drifted_now: bool | None,
    records: Sequence[Mapping[str, Any]],
    now: datetime.datetime,
    cause: str = "drift",
) -> Decision:
    """``drifted_now`` is the fresh evaluation's verdict, None when nothing was evaluated now; ``cause``
    names what it found (drift, or quality decay) in the messages."""
    running = in_flight(records)
    if running is not None:
        phase = running.get("phase") or "Pending"
        return Decision(False, True, Reason.IN_FLIGHT, f"TrainingRun {running['name']} is {phase}")
    if not action.enabled:
        return Decision(False, False, Reason.DISABLED, "retraining is disabled (spec.actions.retrain.enabled)")
    if drifted_now is not True:
        last = records[-1] if records else None
        if last is not None:
            message = f"TrainingRun {last['name']} is {last.get('phase')}; no drift to retrain on now"
            return Decision(False, False, Reason.FINISHED, message)
        return Decision(False, False, Reason.NO_DRIFT, "no drift to retrain on")
    times = [t for t in (parse_time(r.get("at")) for r in records) if t is not None]
    if times:
        ready_at = max(times) + datetime.timedelta(seconds=parse_duration(action.cooldown))
        if now < ready_at:
            return Decision(False, False, Reason.COOLING_DOWN,
                            f"{cause} persists; no retrain before {ready_at:%Y-%m-%dT%H:%M:%SZ} "
                            f"(cooldown {action.cooldown})")  # fmt: skip
    if action.max_per_day is not None:
        today = [t for t in times if now - t < DAY]
        if len(today) >= action.max_per_day:
            return Decision(False, False, Reason.BUDGET_USED,
                            f"{cause} persists; {len(today)} retrains in the last 24h, maxPerDay is "
                            f"{action.max_per_day}")  # fmt: skip
    return Decision(True, True, Reason.RETRAIN_STARTED, f"{cause} detected: retraining")


def run_name(policy: str, now: datetime.datetime) -> str:
    """A DNS label short enough for the run's Job ('<run>-train', at most 63 characters)."""
    return f"{policy[:30].rstrip('-.')}-retrain-{now:%y%m%d%H%M%S}"


class RetrainError(ValueError):
    """The retrain cannot be built; the message names the field to fix."""


# The fields of a version's lineage.dataset that say how to read the data again.
LINEAGE_DATASET_KEYS = ("uri", "format", "target", "features", "categoricalFeatures", "testSize", "seed")


def retrain_spec(
    action: RetrainAction, model: str, version: Mapping[str, Any], original_run: Mapping[str, Any] | None
) -> JsonDict:
    """The new TrainingRun's spec: the template, else the serving version's lineage.

    From the lineage: the estimator's class, params and preprocessing; the dataset from
    ``actions.retrain.dataset``, else the original run's dataset (for its target, features
    and split) at the lineage's uri, else the lineage's own record of how the data was read
    (uri, target, features, split), else the lineage's uri with target ``target`` for the
    bundled ``sklearn://`` datasets. The preprocessing, task, artifact store, pod options and
    model card are copied from the original run when it still exists; its evaluation (sensitive
    features, feature importance) from the run, else from the lineage.
    """
    dataset = action.dataset.model_dump(by_alias=True, exclude_none=True) if action.dataset else None
    if action.template is not None:
        spec = action.template.spec.model_dump(by_alias=True, exclude_none=True)
        spec["model"] = model
        if dataset is not None:
            spec["dataset"] = dataset
        return spec
    vspec = version.get("spec") or {}
    name = (version.get("metadata") or {}).get("name")
    lineage = vspec.get("lineage") or {}
    estimator = lineage.get("estimator")
    if not estimator:
        raise RetrainError(
            f"spec.actions.retrain: the serving version {name} has no lineage.estimator to retrain from; "
            "give spec.actions.retrain.template"
        )
    run_spec = (original_run or {}).get("spec") or {}
    if dataset is None:
        uri = (lineage.get("dataset") or {}).get("uri")
        recorded = {k: v for k, v in (lineage.get("dataset") or {}).items() if k in LINEAGE_DATASET_KEYS}
        if run_spec.get("dataset"):
            dataset = {**run_spec["dataset"], **({"uri": uri} if uri else {})}
        elif uri and recorded.get("target"):  # the lineage says how the data was read
            dataset = recorded
        elif uri and str(uri).startswith("sklearn://"):
            dataset = {"uri": uri, "target": "target"}
        else:
            raise RetrainError(
                f"spec.actions.retrain.dataset: the serving version {name}'s lineage has no dataset target "
                "(and its TrainingRun is gone); say which data to train on"
            )
    run_estimator = dict(run_spec.get("estimator") or {})
    preprocessing = run_estimator.get("preprocessing") or lineage.get("preprocessing")
    spec = {
        "model": model,
        "dataset": dataset,
        "estimator": {
            **({"preprocessing": preprocessing} if preprocessing else {}),
            "className": estimator,
            "params": dict(lineage.get("params") or {}),
        },
    }
    for key in ("task", "artifactStore", "pod", "backoffLimit", "activeDeadlineSeconds",
                "ttlSecondsAfterFinished", "modelCard"):  # fmt: skip
        if run_spec.get(key) is not None:
            spec[key] = run_spec[key]
    if vspec.get("task") and "task" not in spec:
        spec["task"] = vspec["task"]
    # A retrain measures what its predecessor was measured by: its fairness gates need the same record.
    evaluation = run_spec.get("evaluation") or lineage.get("evaluation")
    if evaluation:
        spec["evaluation"] = evaluation
    return spec


def retrain_run(
    target: Target, action: RetrainAction, spec: JsonDict, reason: str, now: datetime.datetime, at: str
) -> JsonDict:
    """The TrainingRun object: labelled with the policy, not owned by it (deleting the policy keeps it)."""
    labels = {
        **((action.template.labels or {}) if action.template else {}),
        "app.kubernetes.io/managed-by": "modelops-operator",
        POLICY_LABEL: target.policy,
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainingRun",
        "metadata": {
            "name": run_name(target.policy, now),
            "namespace": target.namespace,
            "labels": labels,
            "annotations": {
                REASON_ANNOTATION: reason[:1000],
                FROM_VERSION_ANNOTATION: target.version,
                "modelops.io/retrain-at": at,
            },
        },
        "spec": spec,
    }


def merge_records(previous: Sequence[Mapping[str, Any]] | None, runs: Sequence[Mapping[str, Any]]) -> list[JsonDict]:
    """status.retrains from the last status and the labelled runs that exist now, oldest first."""
    by_name: dict[str, JsonDict] = {}
    for record in previous or ():
        if record.get("name"):
            by_name[str(record["name"])] = dict(record)
    seen = set()
    for run in runs:
        meta = run.get("metadata") or {}
        name = str(meta.get("name"))
        seen.add(name)
        annotations = meta.get("annotations") or {}
        status = run.get("status") or {}
        record = by_name.get(name, {"name": name})
        record["at"] = record.get("at") or annotations.get("modelops.io/retrain-at") or meta.get("creationTimestamp")
        if annotations.get(REASON_ANNOTATION) and not record.get("reason"):
            record["reason"] = annotations[REASON_ANNOTATION]
        record["phase"] = status.get("phase") or "Pending"
        if status.get("modelVersion"):
            record["modelVersion"] = status["modelVersion"]
        by_name[name] = record
    for name, record in by_name.items():
        if name not in seen and record.get("phase") not in TERMINAL_PHASES:
            record["phase"] = "Deleted"
    records = [r for r in by_name.values() if r.get("at")]
    records.sort(key=lambda r: (str(r["at"]), str(r["name"])))
    return records[-KEEP_RECORDS:]


def to_promote(records: Sequence[Mapping[str, Any]], action: RetrainAction) -> list[Mapping[str, Any]]:
    """Registered versions of finished retrains whose stage the operator has not asked for yet."""
    if action.promote_to is None:
        return []
    return [
        r for r in records
        if r.get("phase") == "Succeeded" and r.get("modelVersion") and not r.get("stageRequested")
    ]  # fmt: skip
