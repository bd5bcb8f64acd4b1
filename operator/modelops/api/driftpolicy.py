"""The DriftPolicy kind: watch a ModelDeployment's live inputs for drift, alert, retrain."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from modelops.api.common import (
    DNS_SUBDOMAIN,
    OBJECT_DEFAULT,
    ApiModel,
    Condition,
    Duration,
    PrometheusSpec,
    StatusModel,
    conditions_field,
    kopf_field,
    observed_generation_field,
    with_rules,
)
from modelops.api.trainingrun import DatasetSpec, TrainingRunSpec

DriftMethod = Literal["psi", "ks", "jsd", "wasserstein", "chi2"]


class AlertAction(ApiModel):
    """PrometheusRule alerts on drift."""

    enabled: bool = Field(default=True, description="Generate alerting rules.")
    severity: Literal["info", "warning", "critical"] = Field(default="warning", description="The alerts' severity.")
    for_: Duration = Field(default="10m", alias="for", description="How long drift must last before firing.")
    labels: dict[str, str] | None = Field(default=None, description="Extra labels on the alerts.")


class TrainingRunTemplate(ApiModel):
    """A TrainingRun to create on drift, instead of one from the serving version's lineage."""

    labels: dict[str, str] | None = Field(default=None, description="Labels of the created TrainingRuns.")
    spec: TrainingRunSpec = Field(description="The TrainingRun's spec.")


class RetrainAction(ApiModel):
    """Retrain on drift."""

    enabled: bool = Field(default=False, description="Create a TrainingRun when drift is detected.")
    cooldown: Duration = Field(default="24h", description="At least this long between two retrains.")
    max_per_day: int | None = Field(default=None, ge=1, le=100, description="At most this many retrains a day.")
    dataset: DatasetSpec | None = Field(
        default=None, description="Train on this dataset (e.g. fresher data) instead of the lineage's."
    )
    template: TrainingRunTemplate | None = Field(
        default=None, description="A full TrainingRun template; default: from the serving version's lineage."
    )
    promote_to: Literal["Staging"] | None = Field(
        default=None,
        description="Ask for this stage for the new version; Production still needs gates and approvals.",
    )


class DriftActions(ApiModel):
    """What happens on drift."""

    alert: AlertAction = Field(
        default_factory=AlertAction, json_schema_extra=OBJECT_DEFAULT, description="Alerting rules."
    )
    retrain: RetrainAction = Field(
        default_factory=RetrainAction, json_schema_extra=OBJECT_DEFAULT, description="Retraining."
    )


QualityPolicyMetric = Literal[
    "accuracy", "macroF1", "precision", "recall", "f1", "mae", "rmse", "estimatedAccuracy", "estimatedMacroF1",
    "estimatedPrecision", "estimatedRecall", "estimatedF1",
]
# Error metrics: higher is worse. The metrics a version's training metrics can anchor a maxDrop to (precision,
# recall and f1 of a binary classifier's positive class, which training measures as classes[1]'s).
LOWER_IS_BETTER = ("mae", "rmse")
TRAINING_METRIC = {
    "accuracy": "accuracy", "mae": "mae", "rmse": "rmse", "estimatedAccuracy": "accuracy",
    "precision": "precision", "recall": "recall", "f1": "f1",
    "estimatedPrecision": "precision", "estimatedRecall": "recall", "estimatedF1": "f1",
}  # fmt: skip
# Metrics of one class: positiveClass, or a binary version's classes[1].
PER_CLASS = ("precision", "recall", "f1", "estimatedPrecision", "estimatedRecall", "estimatedF1")
_MAX_DROP_MESSAGE = (
    "maxDrop applies to accuracy, mae, rmse, precision, recall, f1 and their estimates (a training metric to "
    "drop from)"
)


class QualityThreshold(ApiModel):
    """When one metric of the serving version counts as degraded: past an absolute limit, or more than
    maxDrop worse than the version's own training metric."""

    metric: QualityPolicyMetric = Field(
        description=(
            "accuracy, macroF1, precision, recall, f1, mae or rmse from labels sent back; estimatedAccuracy, "
            "estimatedMacroF1, estimatedPrecision, estimatedRecall or estimatedF1 from the predicted "
            "probabilities (no labels needed). precision, recall and F1 are of positiveClass."
        )
    )
    positive_class: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description=(
            "precision, recall, f1 and their estimates: the class, as predict names it (e.g. '1'). Default: "
            "a binary version's second class (classes[1], the positive class of its training metrics); a "
            "multiclass version needs it named."
        ),
    )
    threshold: float | None = Field(
        default=None, description="Degraded below this (above it for mae and rmse)."
    )
    max_drop: float | None = Field(
        default=None,
        ge=0,
        description=(
            "Degraded when more than this worse than the version's training metric (accuracy, mae, rmse; "
            "precision, recall, f1 of a binary version's positive class; an estimate against the metric it "
            "estimates)."
        ),
    )

    model_config = with_rules(
        {
            "rule": "has(self.threshold) || has(self.maxDrop)",
            "message": "a quality threshold sets threshold or maxDrop",
        },
        {
            "rule": "!has(self.maxDrop) || self.metric in " + str(list(TRAINING_METRIC)),
            "message": _MAX_DROP_MESSAGE,
        },
        {
            "rule": "!has(self.positiveClass) || self.metric in " + str(list(PER_CLASS)),
            "message": "positiveClass applies to precision, recall, f1 and their estimates",
        },
    )

    @model_validator(mode="after")
    def _something(self) -> QualityThreshold:
        if self.threshold is None and self.max_drop is None:
            raise ValueError("a quality threshold sets threshold or maxDrop")
        if self.max_drop is not None and self.metric not in TRAINING_METRIC:
            raise ValueError(_MAX_DROP_MESSAGE)
        if self.positive_class is not None and self.metric not in PER_CLASS:
            raise ValueError("positiveClass applies to precision, recall, f1 and their estimates")
        return self


class QualityPolicy(ApiModel):
    """Act on live (or estimated) quality decay of the serving version, as on drift."""

    thresholds: list[QualityThreshold] = Field(min_length=1, max_length=12, description="Any one degraded is decay.")
    window: Duration = Field(default="1h", description="The window over which labels (rows) are counted.")
    min_feedback: int = Field(
        default=100,
        ge=1,
        description=(
            "Judge a live metric only with this many labels in the window (an estimated one with this many "
            "served rows); fewer leaves QualityDegraded Unknown."
        ),
    )


class DriftPolicySpec(ApiModel):
    """Which deployment to watch, how to measure drift, and what to do about it."""

    deployment: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="The ModelDeployment (same namespace) whose served inputs are watched.",
    )
    features: list[str] | None = Field(default=None, description="Features to watch; default: all.")
    method: DriftMethod = Field(
        default="psi",
        description=(
            "psi (population stability index), ks (Kolmogorov-Smirnov), jsd (Jensen-Shannon distance), "
            "wasserstein, or chi2 (chi-squared test)."
        ),
    )
    threshold: float | None = Field(
        default=None,
        ge=0,
        description=(
            "For psi, jsd and wasserstein a distance: a score at or above it is drift. For ks and chi2 a p-value "
            "in (0, 1]: a p-value below it is drift. Default: the method's own (psi 0.2, jsd 0.1, wasserstein "
            "0.1, ks 0.05, chi2 0.05)."
        ),
    )
    window: Duration = Field(default="1h", description="The window of live traffic compared with the reference.")
    interval: Duration = Field(default="5m", description="How often the operator evaluates the policy.")
    min_samples: int = Field(
        default=100,
        ge=1,
        description=(
            "Skip the evaluation while the window holds fewer live inputs than this (rows: a batch request "
            "counts each of its rows)."
        ),
    )
    prometheus: PrometheusSpec | None = Field(default=None, description="The Prometheus to query.")
    actions: DriftActions = Field(
        default_factory=DriftActions, json_schema_extra=OBJECT_DEFAULT, description="Alerts and retraining."
    )
    quality: QualityPolicy | None = Field(
        default=None,
        description=(
            "Thresholds on live or estimated quality: QualityDegraded, the ModelQualityDegraded alert, an "
            "Event, and with actions.retrain the same retrain as drift."
        ),
    )


class FeatureDrift(StatusModel):
    """The latest drift score of one feature."""

    name: str = Field(description="The feature.")
    score: float | None = Field(default=None, description="The drift score; empty when not computable.")
    threshold: float | None = Field(default=None, description="The threshold used.")
    drifted: bool = Field(default=False, description="Whether the feature drifted.")
    samples: int | None = Field(default=None, ge=0, description="Live samples in the window.")


class RetrainRecord(StatusModel):
    """A retrain this policy started."""

    name: str = Field(description="The TrainingRun.")
    at: str = Field(json_schema_extra={"format": "date-time"}, description="When it was created.")
    reason: str | None = Field(default=None, description="The drift that caused it.")
    phase: str | None = Field(default=None, description="The run's last seen phase.")
    model_version: str | None = Field(default=None, description="The version it registered.")
    stage_requested: str | None = Field(
        default=None, description="The stage the operator asked for on that version (actions.retrain.promoteTo)."
    )


class QualityResult(StatusModel):
    """The latest reading of one quality threshold."""

    metric: str = Field(description="The metric.")
    positive_class: str | None = Field(default=None, description="precision, recall, f1: the class measured.")
    value: float | None = Field(default=None, description="Its value over the window; empty without evidence.")
    limit: float | None = Field(default=None, description="The limit: threshold, or training less maxDrop.")
    evidence: float | None = Field(default=None, description="Labels (rows, for an estimate) in the window.")
    degraded: bool = Field(default=False, description="Whether it is past the limit.")
    message: str | None = Field(default=None, description="Details.")


class DriftPolicyStatus(StatusModel):
    """The latest evaluation and what it caused."""

    observed_generation: int = observed_generation_field()
    conditions: list[Condition] = conditions_field()
    message: str | None = Field(default=None, description="A one-line summary.")
    model_version: str | None = Field(default=None, description="The serving version the evaluation used.")
    last_evaluation: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="When the policy was last evaluated."
    )
    samples: int | None = Field(default=None, ge=0, description="Live inputs (rows) in the last evaluated window.")
    drifted: bool | None = Field(default=None, description="Whether any watched feature drifted.")
    features: list[FeatureDrift] | None = Field(default=None, description="Per-feature scores.")
    retrains: list[RetrainRecord] | None = Field(default=None, description="Retrains started by this policy.")
    quality: list[QualityResult] | None = Field(default=None, description="Per quality threshold, the last reading.")
    quality_degraded: bool | None = Field(default=None, description="Whether any quality threshold was crossed.")
    kopf: dict[str, Any] | None = kopf_field()
