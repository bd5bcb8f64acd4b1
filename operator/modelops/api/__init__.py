"""The operator's API: pydantic models of each kind, and what the CRDs need to know of them.

``KINDS`` lists the four kinds with their names, printer columns and models; the CRD
generator (``modelops.crdgen``) and the handlers both read it, so a kind is described in
exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel

from modelops.api.common import API_VERSION, CATEGORY, GROUP, VERSION
from modelops.api.driftpolicy import DriftPolicySpec, DriftPolicyStatus
from modelops.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from modelops.api.modelversion import ModelVersionSpec, ModelVersionStatus
from modelops.api.trainingrun import TrainingRunSpec, TrainingRunStatus

__all__ = [
    "API_VERSION",
    "CATEGORY",
    "GROUP",
    "KINDS",
    "VERSION",
    "KindInfo",
    "PrinterColumn",
    "kind_info",
]

_READY = '.status.conditions[?(@.type=="Ready")]'


@dataclass(frozen=True)
class PrinterColumn:
    """One ``kubectl get`` column."""

    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0
    format: str | None = None


def _ready_columns() -> list[PrinterColumn]:
    return [
        PrinterColumn("Ready", f"{_READY}.status", description="Whether the object is ready."),
        PrinterColumn("Message", f"{_READY}.message", description="Why it is or is not ready."),
        PrinterColumn("Age", ".metadata.creationTimestamp", type="date", description="Time since creation."),
    ]


@dataclass(frozen=True)
class KindInfo:
    """Everything the CRD and the handlers need to know of one kind."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    columns: list[PrinterColumn] = field(default_factory=list)

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


KINDS: tuple[KindInfo, ...] = (
    KindInfo(
        kind="TrainingRun",
        plural="trainingruns",
        singular="trainingrun",
        short_names=("tr",),
        spec=TrainingRunSpec,
        status=TrainingRunStatus,
        description=(
            "A TrainingRun trains a scikit-learn model (or a sweep of trials) as a Kubernetes Job and, on "
            "success, registers the result as a ModelVersion."
        ),
        columns=[
            PrinterColumn("Model", ".spec.model", description="The model family."),
            PrinterColumn("Phase", ".status.phase", description="Pending, Running, Succeeded or Failed."),
            PrinterColumn("Progress", ".status.progress", description="Finished trials out of all."),
            PrinterColumn("Version", ".status.modelVersion", description="The registered ModelVersion."),
            *_ready_columns(),
        ],
    ),
    KindInfo(
        kind="ModelVersion",
        plural="modelversions",
        singular="modelversion",
        short_names=("mv",),
        spec=ModelVersionSpec,
        status=ModelVersionStatus,
        description=(
            "A ModelVersion is a governed registry entry for one trained artifact: its evidence (metrics, "
            "lineage, signature), the stage asked for, and the stage granted after gates and approvals."
        ),
        columns=[
            PrinterColumn("Model", ".spec.model", description="The model family."),
            PrinterColumn("Version", ".spec.version", type="integer", description="The version number."),
            PrinterColumn("Stage", ".status.stage", description="The stage granted."),
            PrinterColumn("Requested", ".spec.stage", description="The stage asked for.", priority=1),
            PrinterColumn(
                "Estimate",
                '.status.conditions[?(@.type=="EstimateTrusted")].reason',
                description="Whether quality estimated before labels can be trusted (the training's calibration).",
                priority=1,
            ),
            *_ready_columns(),
        ],
    ),
    KindInfo(
        kind="ModelDeployment",
        plural="modeldeployments",
        singular="modeldeployment",
        short_names=("mdep",),
        spec=ModelDeploymentSpec,
        status=ModelDeploymentStatus,
        description=(
            "A ModelDeployment serves a ModelVersion with the Open Inference Protocol and rolls new versions "
            "out as canaries that Prometheus metrics promote or roll back."
        ),
        columns=[
            PrinterColumn("Model", ".spec.model", description="The model family."),
            PrinterColumn("Serving", ".status.servingVersion", description="The version taking most traffic."),
            PrinterColumn("Canary", ".status.canaryVersion", description="The canary version."),
            PrinterColumn("Weight", ".status.canaryWeight", type="integer", description="Canary traffic %."),
            PrinterColumn("Phase", ".status.phase", description="The rollout phase."),
            *_ready_columns(),
        ],
    ),
    KindInfo(
        kind="DriftPolicy",
        plural="driftpolicies",
        singular="driftpolicy",
        short_names=("dp",),
        spec=DriftPolicySpec,
        status=DriftPolicyStatus,
        description=(
            "A DriftPolicy compares a ModelDeployment's live inputs with its version's training data, raises "
            "PrometheusRule alerts on drift, and can retrain."
        ),
        columns=[
            PrinterColumn("Deployment", ".spec.deployment", description="The watched ModelDeployment."),
            PrinterColumn("Method", ".spec.method", description="The drift statistic."),
            PrinterColumn("Version", ".status.modelVersion", description="The serving version evaluated."),
            PrinterColumn("Samples", ".status.samples", type="integer", description="Live inputs in the window."),
            PrinterColumn("Drifted", ".status.drifted", type="boolean", description="Whether drift was found."),
            PrinterColumn(
                "Evaluated", ".status.lastEvaluation", type="date", description="Time since the last evaluation."
            ),
            *_ready_columns(),
        ],
    ),
)


def kind_info(kind: str) -> KindInfo:
    """The KindInfo of a kind by its name, e.g. ``ModelVersion``."""
    for info in KINDS:
        if info.kind == kind:
            return info
    raise KeyError(kind)
