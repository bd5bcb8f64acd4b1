"""The ModelDeployment kind: serves a ModelVersion, with canary rollouts and rollback."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from modelops.api.common import (
    DNS_SUBDOMAIN,
    OBJECT_DEFAULT,
    ApiModel,
    Condition,
    Duration,
    ModelName,
    PodOptions,
    PrometheusSpec,
    StatusModel,
    conditions_field,
    kopf_field,
    observed_generation_field,
    parse_duration,
    with_rules,
)

RolloutPhase = Literal["Progressing", "Paused", "Healthy", "Degraded", "RolledBack"]


class PauseStep(ApiModel):
    """Wait: for a duration, or until promoted by hand when no duration is given."""

    duration: Duration | None = Field(default=None, description="How long to wait; empty waits for a promote.")


class AnalysisStep(ApiModel):
    """Run the analysis now and move on only if it passes."""

    duration: Duration | None = Field(
        default=None, description="How long to keep analysing; default: one analysis interval."
    )


class ShadowStep(ApiModel):
    """Mirror a share of live traffic to the canary (Gateway API only); its answers are discarded."""

    percent: int = Field(ge=1, le=100, description="Share of requests mirrored to the canary.")
    duration: Duration | None = Field(default=None, description="How long to mirror and analyse.")


class CanaryStep(ApiModel):
    """One step of a canary: exactly one of setWeight, pause, analysis or shadow."""

    set_weight: int | None = Field(default=None, ge=0, le=100, description="Send this percentage to the canary.")
    pause: PauseStep | None = Field(default=None, description="Wait for a duration or for a promote.")
    analysis: AnalysisStep | None = Field(default=None, description="Analyse the canary before moving on.")
    shadow: ShadowStep | None = Field(default=None, description="Mirror traffic to the canary.")

    model_config = with_rules(
        {
            "rule": (
                "(has(self.setWeight) ? 1 : 0) + (has(self.pause) ? 1 : 0) + "
                "(has(self.analysis) ? 1 : 0) + (has(self.shadow) ? 1 : 0) == 1"
            ),
            "message": "a canary step sets exactly one of setWeight, pause, analysis or shadow",
        }
    )

    @model_validator(mode="after")
    def _one_action(self) -> CanaryStep:
        actions = [self.set_weight, self.pause, self.analysis, self.shadow]
        if sum(action is not None for action in actions) != 1:
            raise ValueError("a canary step sets exactly one of setWeight, pause, analysis or shadow")
        return self


class RolloutSpec(ApiModel):
    """How a new version replaces the served one."""

    strategy: Literal["Canary", "Recreate"] = Field(
        default="Canary", description="Canary (step by step, analysed) or Recreate (all at once)."
    )
    steps: list[CanaryStep] | None = Field(
        default=None,
        max_length=50,
        description="Canary steps; default: 20% → analysis → 50% → analysis → 100%.",
    )
    rollback_window: int = Field(
        default=1,
        ge=0,
        le=10,
        description=(
            "Rolling back to one of the last N stable versions skips the canary analysis, as a return to "
            "a known-good version."
        ),
    )


class GatewayAPIRouting(ApiModel):
    """Split traffic by Gateway API HTTPRoute weights."""

    parent_refs: list[dict[str, Any]] = Field(
        min_length=1,
        description="The HTTPRoute's parentRefs (the Gateway(s) to attach to).",
        json_schema_extra={"items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    )
    hostnames: list[str] | None = Field(default=None, description="Hostnames of the route.")
    path: str = Field(default="/", description="Path prefix the route matches.")


class TrafficRouting(ApiModel):
    """How traffic is split between stable and canary; default: by replica ratio behind one Service."""

    gateway_api: GatewayAPIRouting | None = Field(
        default=None, alias="gatewayAPI", description="Use an HTTPRoute's weights (Gateway API)."
    )


class ErrorRateCheck(ApiModel):
    """The canary's share of 5xx answers."""

    max_ratio: float = Field(default=0.05, ge=0, le=1, description="Fail above this share of errors.")
    max_increase_over_stable: float | None = Field(
        default=None, ge=0, le=1, description="Fail when the canary's share exceeds the stable's by this much."
    )


class LatencyCheck(ApiModel):
    """The canary's p99 latency."""

    max_seconds: float = Field(default=0.5, gt=0, description="Fail above this p99 latency.")
    max_ratio_to_stable: float | None = Field(
        default=None, gt=0, description="Fail when the canary's p99 exceeds the stable's times this."
    )


class PredictionShiftCheck(ApiModel):
    """The distance between the canary's and the stable's prediction distributions."""

    max_psi: float = Field(default=0.25, gt=0, description="Fail above this PSI.")


QualityMetric = Literal[
    "accuracy", "macroF1", "precision", "recall", "f1", "mae", "rmse", "estimatedAccuracy", "estimatedMacroF1",
    "estimatedPrecision", "estimatedRecall", "estimatedF1",
]
# Metrics of one class (positiveClass): live from labels, or estimated (CBPE) from the probabilities.
PER_CLASS_METRICS = ("precision", "recall", "f1", "estimatedPrecision", "estimatedRecall", "estimatedF1")
PER_CLASS_MESSAGE = "quality metrics precision, recall, f1 and their estimates need positiveClass"
ERROR_METRICS = ("mae", "rmse")


class QualityCheck(ApiModel):
    """Live quality from labels sent back (docs/quality.md): the canary's against the stable's."""

    metric: QualityMetric = Field(
        default="accuracy",
        description=(
            "accuracy, macroF1, precision/recall/f1 of positiveClass (classifiers), or mae/rmse (regressors) "
            "from labels; estimatedAccuracy, estimatedMacroF1, or estimatedPrecision/estimatedRecall/estimatedF1 "
            "of positiveClass from the probabilities, before labels."
        ),
    )
    positive_class: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="The class whose precision, recall or F1 is compared, as predict names it (e.g. '1').",
    )
    max_drop: float = Field(
        default=0.02,
        ge=0,
        description=(
            "Fail when the canary's metric is more than this below the stable's (for mae and rmse: above it)."
        ),
    )
    min_feedback: int = Field(
        default=100,
        ge=1,
        description=(
            "Labels (served rows, for an estimated metric) each version needs in the window before it is judged; "
            "fewer is inconclusive."
        ),
    )
    window: Duration = Field(default="1h", description="The window over which labels are counted.")

    model_config = with_rules(
        {
            "rule": "!(self.metric in " + str(list(PER_CLASS_METRICS)) + ") || has(self.positiveClass)",
            "message": PER_CLASS_MESSAGE,
        }
    )

    @model_validator(mode="after")
    def _class_when_per_class(self) -> QualityCheck:
        if self.metric in PER_CLASS_METRICS and self.positive_class is None:
            raise ValueError(PER_CLASS_MESSAGE)
        return self


class FairnessCheck(ApiModel):
    """Live demographic parity (docs/fairness.md, In production): the canary's against the stable's."""

    feature: str = Field(
        min_length=1,
        max_length=253,
        description=(
            "A sensitive feature both versions' fairness records name and the model takes as an input "
            "(a useAsInput: false column is never in requests, so it cannot be watched live)."
        ),
    )
    max_increase: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Fail when the canary's demographic parity difference is more than this above the stable's.",
    )
    min_group_rows: int = Field(
        default=30,
        ge=1,
        description=(
            "Rows every group that served any in the window needs, in each version, before it is judged; "
            "fewer is inconclusive."
        ),
    )
    window: Duration = Field(default="1h", description="The window over which predictions are counted.")


class BuiltinChecks(ApiModel):
    """Checks every canary gets unless turned off."""

    error_rate: ErrorRateCheck | None = Field(
        default_factory=ErrorRateCheck, json_schema_extra=OBJECT_DEFAULT, description="Error rate."
    )
    latency: LatencyCheck | None = Field(
        default_factory=LatencyCheck, json_schema_extra=OBJECT_DEFAULT, description="p99 latency."
    )
    prediction_shift: PredictionShiftCheck | None = Field(
        default=None, description="Prediction distribution shift vs stable (off unless set)."
    )
    quality: QualityCheck | None = Field(
        default=None, description="Live quality from labels vs stable (off unless set)."
    )
    fairness: FairnessCheck | None = Field(
        default=None, description="Live demographic parity of a sensitive input vs stable (off unless set)."
    )


class MetricCheck(ApiModel):
    """A user PromQL query with a success condition."""

    name: str = Field(min_length=1, max_length=63, description="Name of the check.")
    query: str = Field(
        min_length=1,
        description=(
            "PromQL returning one value; {{canary}} and {{stable}} (the versions' names), {{namespace}} and "
            "{{deployment}} (this ModelDeployment's name: the server series' deployment label) are substituted."
        ),
    )
    success_condition: str = Field(
        min_length=1,
        pattern=r"^\s*result\s*(<|<=|>|>=|==|!=)\s*-?[0-9.eE+-]+\s*$",
        description="A comparison of the result with a number, e.g. 'result < 0.05'.",
    )


class AnalysisSpec(ApiModel):
    """How a canary is judged."""

    interval: Duration = Field(default="1m", description="How often the checks run.")
    failure_limit: int = Field(
        default=3,
        ge=1,
        le=100,
        description=(
            "Failed measurements of a check that trigger a rollback; under inconclusivePolicy Pause, also the "
            "inconclusive measurements after which holding turns into a failure."
        ),
    )
    inconclusive_policy: Literal["Pause", "Pass", "Fail"] = Field(
        default="Pause",
        description=(
            "What to do when Prometheus is unreachable or has no data: Pause (hold; fail once failureLimit "
            "inconclusive measurements are reached), Pass or Fail."
        ),
    )
    builtin: BuiltinChecks = Field(
        default_factory=BuiltinChecks, json_schema_extra=OBJECT_DEFAULT, description="Built-in checks."
    )
    metrics: list[MetricCheck] | None = Field(default=None, description="Extra PromQL checks.")
    prometheus: PrometheusSpec | None = Field(default=None, description="The Prometheus to query.")


class AutoscalingSpec(ApiModel):
    """A HorizontalPodAutoscaler for the stable Deployment."""

    min_replicas: int = Field(default=1, ge=1, description="Fewest replicas.")
    max_replicas: int = Field(ge=1, le=1000, description="Most replicas.")
    target_cpu_utilization: int = Field(default=70, ge=1, le=100, description="Target CPU utilisation in percent.")


MIN_QUALITY_WINDOW_SECONDS = 60.0


class QualitySpec(ApiModel):
    """Live quality of the served versions, recorded by the generated PrometheusRule (docs/quality.md)."""

    windows: list[Duration] = Field(
        default_factory=lambda: ["1h", "24h"],
        min_length=1,
        max_length=4,
        json_schema_extra={"default": ["1h", "24h"], "x-kubernetes-list-type": "set"},
        description=(
            "Windows over which live and estimated quality (accuracy, precision, recall, F1, macro F1, MAE, "
            "RMSE) are recorded per version, each as the label window of the modelops_quality:* series."
        ),
    )

    @field_validator("windows")
    @classmethod
    def _distinct(cls, windows: list[str]) -> list[str]:
        if len(set(windows)) != len(windows):
            raise ValueError("quality.windows: each window once")
        for window in windows:
            # Shorter than a few scrapes (the ServiceMonitor's 15 s), increase() has nothing to compare.
            if parse_duration(window) < MIN_QUALITY_WINDOW_SECONDS:
                raise ValueError(f"quality.windows: {window!r} is shorter than 1m")
        return windows


class ServerSpec(ApiModel):
    """The model server."""

    image: str | None = Field(default=None, description="Model server image; default: the operator's image.")
    workers: int | None = Field(default=None, ge=1, le=64, description="Worker processes per pod; default: cores.")
    port: int = Field(default=8080, ge=1024, le=65535, description="Port of the v2 REST API and /metrics.")
    # What a client may cost a worker (docs/serve-limits.md); unset: the server's own defaults.
    max_body_bytes: int | None = Field(
        default=None, ge=1, le=1 << 30, description="Largest request body, bytes (413 beyond); default 16 MiB."
    )
    max_header_bytes: int | None = Field(
        default=None, ge=256, le=1 << 20, description="Largest request head, bytes (431 beyond); default 32 KiB."
    )
    max_url_bytes: int | None = Field(
        default=None, ge=16, le=1 << 20, description="Longest request target, bytes (414 beyond); default 8 KiB."
    )
    max_connections: int | None = Field(
        default=None, ge=1, le=100000, description="Connections per worker (503 beyond; idle ones reclaimed first)."
    )
    header_timeout_seconds: float | None = Field(
        default=None, gt=0, le=3600, description="Seconds a client has to send a request head (408); default 10."
    )
    body_timeout_seconds: float | None = Field(
        default=None, gt=0, le=3600, description="Seconds a client has to send a request body (408); default 60."
    )
    send_timeout_seconds: float | None = Field(
        default=None, gt=0, le=3600, description="Seconds a response may wait on a client that does not read it."
    )
    keepalive_seconds: float | None = Field(
        default=None, gt=0, le=3600, description="Seconds an idle keep-alive connection stays open; default 75."
    )
    explain_max_rows: int | None = Field(
        default=None,
        ge=0,
        le=10000,
        description="Most rows one /explain request may hold; 0 turns explanations off; default 32.",
    )


class ModelDeploymentSpec(ApiModel):
    """What to serve and how to roll it out."""

    model: ModelName
    model_version: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="Pin a ModelVersion by name (e.g. iris-v3). Exactly one of modelVersion and track.",
    )
    track: Literal["Staging", "Production"] | None = Field(
        default=None, description="Follow the registry: serve the model's version granted this stage."
    )
    replicas: int = Field(default=2, ge=0, le=1000, description="Replicas at full weight.")
    rollout: RolloutSpec = Field(
        default_factory=RolloutSpec, json_schema_extra=OBJECT_DEFAULT, description="How new versions roll out."
    )
    traffic_routing: TrafficRouting | None = Field(default=None, description="How traffic is split.")
    analysis: AnalysisSpec = Field(
        default_factory=AnalysisSpec, json_schema_extra=OBJECT_DEFAULT, description="How a canary is judged."
    )
    autoscaling: AutoscalingSpec | None = Field(default=None, description="An HPA for the stable Deployment.")
    min_available: int | None = Field(default=None, ge=0, description="A PodDisruptionBudget's minAvailable.")
    server: ServerSpec = Field(
        default_factory=ServerSpec, json_schema_extra=OBJECT_DEFAULT, description="The model server."
    )
    quality: QualitySpec = Field(
        default_factory=QualitySpec,
        json_schema_extra=OBJECT_DEFAULT,
        description="Live quality recording rules (windows).",
    )
    pod: PodOptions | None = Field(default=None, description="Resources, scheduling and env of the server pods.")

    model_config = with_rules(
        {
            "rule": "has(self.modelVersion) != has(self.track)",
            "message": "exactly one of spec.modelVersion and spec.track must be set",
        }
    )

    @model_validator(mode="after")
    def _one_source(self) -> ModelDeploymentSpec:
        if (self.model_version is None) == (self.track is None):
            raise ValueError("exactly one of spec.modelVersion and spec.track must be set")
        return self


class AnalysisResult(StatusModel):
    """The latest measurement of one check."""

    name: str = Field(description="The check.")
    phase: Literal["Successful", "Failed", "Inconclusive", "Running"] = Field(description="The verdict.")
    value: float | None = Field(default=None, description="The measured value.")
    message: str | None = Field(default=None, description="Details.")
    at: str = Field(json_schema_extra={"format": "date-time"}, description="When it was measured.")
    failures: int = Field(default=0, ge=0, description="Failed measurements so far in this step.")
    inconclusive: int = Field(default=0, ge=0, description="Inconclusive measurements so far in this step.")


class RolloutRecord(StatusModel):
    """How one rollout ended."""

    version: str = Field(description="The version rolled out.")
    from_version: str | None = Field(default=None, description="The stable version before.")
    result: Literal["Deployed", "Promoted", "RolledBack", "Aborted", "Replaced", "Cancelled"] = Field(
        description="Deployed (first version), Promoted, RolledBack, Aborted, Replaced (Recreate or rollback "
        "window) or Cancelled (superseded)."
    )
    at: str = Field(json_schema_extra={"format": "date-time"}, description="When it ended.")
    message: str | None = Field(default=None, description="Details, e.g. the failing metric.")


class VersionBinding(StatusModel):
    """The exact ModelVersion a role serves: the object (uid) and the artifact (sha256) it was admitted with."""

    name: str = Field(description="The ModelVersion's name.")
    uid: str = Field(description="Its UID: another object under the same name is another version.")
    sha256: str = Field(description="The artifact digest the role serves.")


class VersionQuality(StatusModel):
    """One served version's live and estimated quality over a window, as the recording rules say."""

    version: str = Field(description="The ModelVersion that made the predictions.")
    role: Literal["stable", "canary"] = Field(description="Its role in this deployment.")
    window: str = Field(description="The window (the first of spec.quality.windows).")
    labels: float | None = Field(default=None, description="Labels behind the live figures in the window.")
    accuracy: float | None = Field(default=None, description="Live accuracy.")
    macro_f1: float | None = Field(default=None, alias="macroF1", description="Live macro F1.")
    mae: float | None = Field(default=None, description="Live mean absolute error.")
    rmse: float | None = Field(default=None, description="Live root mean squared error.")
    predictions: float | None = Field(default=None, description="Rows behind the estimate in the window.")
    estimated_accuracy: float | None = Field(default=None, description="Estimated accuracy (CBPE).")
    estimated_macro_f1: float | None = Field(
        default=None, alias="estimatedMacroF1", description="Estimated macro F1 (CBPE)."
    )


class ModelDeploymentStatus(StatusModel):
    """The rollout's state: all of it, so the operator can restart at any moment."""

    observed_generation: int = observed_generation_field()
    conditions: list[Condition] = conditions_field()
    phase: RolloutPhase | None = Field(default=None, description="Progressing, Paused, Healthy, Degraded, RolledBack.")
    message: str | None = Field(default=None, description="A one-line summary.")
    desired_version: str | None = Field(default=None, description="The version wanted (pinned or tracked).")
    serving_version: str | None = Field(default=None, description="The version that takes most traffic.")
    stable_version: str | None = Field(default=None, description="The stable version.")
    canary_version: str | None = Field(default=None, description="The canary version, while one runs.")
    canary_weight: int = Field(default=0, ge=0, le=100, description="Traffic percentage on the canary.")
    step: int | None = Field(default=None, ge=0, description="Index of the current canary step.")
    step_started_at: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="When the current step began."
    )
    analysis: list[AnalysisResult] | None = Field(default=None, description="Latest measurement of each check.")
    previous_stable_versions: list[str] | None = Field(
        default=None, description="Recently stable versions, newest first (the rollback window)."
    )
    url: str | None = Field(default=None, description="In-cluster URL of the v2 inference API.")
    failed_version: str | None = Field(
        default=None,
        description=(
            "The version whose canary was last rolled back or aborted; the rollout stays stalled while it is "
            "still desired, until a retry or a new version."
        ),
    )
    last_measured_at: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="When the canary was last measured."
    )
    last_action: str | None = Field(
        default=None, description="The last modelops.io/action annotation value acted on (each value acts once)."
    )
    history: list[RolloutRecord] | None = Field(
        default=None, description="The latest rollouts, newest first (at most 20)."
    )
    stable_binding: VersionBinding | None = Field(
        default=None, description="The exact version the stable serves (name, uid, digest), as it was promoted."
    )
    canary_binding: VersionBinding | None = Field(
        default=None, description="The exact version the canary runs, as it was admitted to the canary."
    )
    failed_binding: VersionBinding | None = Field(
        default=None, description="The exact version behind failedVersion."
    )
    previous_stable_bindings: list[VersionBinding] | None = Field(
        default=None, description="The exact versions behind previousStableVersions, in the same order."
    )
    quality: list[VersionQuality] | None = Field(
        default=None, description="Live and estimated quality of the stable and canary versions (from Prometheus)."
    )
    quality_measured_at: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="When quality was last read."
    )
    kopf: dict[str, Any] | None = kopf_field()
