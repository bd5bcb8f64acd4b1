"""Building blocks shared by the four kinds' API models.

Every model here is the single source of truth for a piece of a CRD schema: field
descriptions become ``kubectl explain`` text, and the constraints (enums, ranges,
patterns) become OpenAPI validation that the API server enforces before the operator
ever sees an object. Field names are camelCase on the wire, snake_case in Python.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "modelops.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "modelops"

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DURATION = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
SHA256 = r"^[a-f0-9]{64}$"
CONDITION_TYPE = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
REASON = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"

# Marks a field whose value is free-form JSON: the CRD keeps it as written.
FREE_FORM: dict[str, Any] = {"x-kubernetes-preserve-unknown-fields": True}
# Marks an object field whose own fields have defaults: the API server fills them in even
# when the user leaves the whole object out, so `kubectl get -o yaml` shows what applies.
OBJECT_DEFAULT: dict[str, Any] = {"default": {}}


class ApiModel(BaseModel):
    """Base of every API model: camelCase aliases, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=False,
    )


def with_rules(*rules: dict[str, Any]) -> ConfigDict:
    """The ApiModel config plus CEL ``x-kubernetes-validations`` for the object's schema."""
    config = ConfigDict(**ApiModel.model_config)
    config["json_schema_extra"] = {"x-kubernetes-validations": [dict(rule) for rule in rules]}
    return config


class StatusModel(ApiModel):
    """Base of status models: tolerant of fields written by newer operator versions."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
    )


ModelName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=48,
        pattern=DNS_LABEL,
        description=(
            "The model family: a DNS label (lowercase letters, digits and '-', at most 48 characters). "
            "Versions of the model are named '<model>-v<N>'."
        ),
    ),
]

Duration = Annotated[
    str,
    Field(
        pattern=DURATION,
        description="A duration such as '30s', '5m', '1h30m' or '500ms'.",
    ),
]

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Duration such as '30s', '1h30m', '500ms' or '1.5m'; ValueError for anything else."""
    text = text.strip()
    pos = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"not a duration: {text!r} (expected e.g. '30s', '5m', '1h30m', '500ms')")
    return total


Quantity = Annotated[
    int | str,
    Field(
        json_schema_extra={"x-kubernetes-int-or-string": True},
        description="A Kubernetes quantity, e.g. '500m', '2', '1Gi'.",
    ),
]


class Condition(StatusModel):
    """One condition in the standard Kubernetes shape (metav1.Condition)."""

    type: str = Field(
        max_length=316,
        pattern=CONDITION_TYPE,
        description="Type of the condition in CamelCase, e.g. Ready, Reconciling, Stalled.",
    )
    status: Literal["True", "False", "Unknown"] = Field(description="Status of the condition.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=REASON,
        description="A CamelCase machine-readable reason for the condition's last transition.",
    )
    message: str = Field(
        default="",
        max_length=32768,
        description="A human-readable message with details about the transition.",
    )
    last_transition_time: str = Field(
        json_schema_extra={"format": "date-time"},
        description="When the condition last changed its status.",
    )
    observed_generation: int = Field(
        default=0,
        ge=0,
        description="The metadata.generation the condition was set for.",
    )


def conditions_field(more: str = "") -> Any:
    """A ``conditions`` list keyed by ``type``, as kstatus, Argo CD and Flux read it; ``more`` describes the
    kind's own condition types."""
    return Field(
        default_factory=list,
        description=(
            "The latest observations of the object's state. 'Ready' summarises them; 'Reconciling' and "
            "'Stalled' appear only while true." + (f" {more}" if more else "")
        ),
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )


def observed_generation_field() -> Any:
    return Field(
        default=-1,
        description=(
            "The metadata.generation the operator last reconciled. -1 until the operator has seen the "
            "object, so a new object never looks current."
        ),
    )


def kopf_field() -> Any:
    return Field(
        default=None,
        description="The operator framework's own bookkeeping (handler progress). Not for users.",
        json_schema_extra=FREE_FORM,
    )


class LocalObjectReference(ApiModel):
    """A reference to an object in the same namespace, by name."""

    name: str = Field(min_length=1, max_length=253, description="Name of the referenced object.")


class SecretKeySelector(ApiModel):
    """A key of a Secret in the same namespace."""

    name: str = Field(min_length=1, max_length=253, description="Name of the Secret.")
    key: str = Field(min_length=1, max_length=253, description="Key in the Secret's data.")


class ConfigMapKeySelector(ApiModel):
    """A key of a ConfigMap in the same namespace."""

    name: str = Field(min_length=1, max_length=253, description="Name of the ConfigMap.")
    key: str = Field(min_length=1, max_length=253, description="Key in the ConfigMap's data.")


class EnvVarSource(ApiModel):
    """Where an environment variable's value comes from."""

    secret_key_ref: SecretKeySelector | None = Field(default=None, description="A key of a Secret.")
    config_map_key_ref: ConfigMapKeySelector | None = Field(default=None, description="A key of a ConfigMap.")


class EnvVar(ApiModel):
    """An environment variable for the operator-made containers."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$",
        description="Name of the variable.",
    )
    value: str | None = Field(default=None, description="A literal value.")
    value_from: EnvVarSource | None = Field(default=None, description="A value from a Secret or ConfigMap.")


class ResourceRequirements(ApiModel):
    """Compute resources of a container, as in a Pod spec."""

    requests: dict[str, Quantity] | None = Field(
        default=None, description="Minimum resources, e.g. {cpu: 500m, memory: 1Gi}."
    )
    limits: dict[str, Quantity] | None = Field(default=None, description="Maximum resources.")


class Toleration(ApiModel):
    """A Pod toleration, as in a Pod spec."""

    key: str | None = Field(default=None, description="The taint key the toleration applies to.")
    operator: Literal["Exists", "Equal"] | None = Field(default=None, description="Exists or Equal (default Equal).")
    value: str | None = Field(default=None, description="The taint value, with operator Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="The taint effect to match; empty matches all."
    )
    toleration_seconds: int | None = Field(
        default=None, description="For NoExecute: how long the pod stays bound after the taint appears."
    )


class PodOptions(ApiModel):
    """Scheduling and identity knobs for the Pods the operator creates."""

    resources: ResourceRequirements | None = Field(default=None, description="Container resources.")
    node_selector: dict[str, str] | None = Field(default=None, description="Node labels the Pods must match.")
    tolerations: list[Toleration] | None = Field(default=None, description="Taints the Pods tolerate.")
    service_account_name: str | None = Field(
        default=None, max_length=253, pattern=DNS_SUBDOMAIN, description="ServiceAccount the Pods run as."
    )
    env: list[EnvVar] | None = Field(default=None, description="Extra environment variables.")


class PrometheusSpec(ApiModel):
    """Where the operator queries Prometheus (the HTTP API)."""

    address: str | None = Field(
        default=None,
        pattern=r"^https?://.+",
        description=(
            "Base URL of the Prometheus HTTP API, e.g. http://prometheus.monitoring:9090. Defaults to the "
            "operator's configured address."
        ),
    )
