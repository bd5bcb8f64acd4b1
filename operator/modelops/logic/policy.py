"""The governance policy: what each stage needs, who may assert reviewers, which namespaces serve production.

It also says where pickled (joblib) artifacts may be served at all (``allowPickle``): loading a
pickle runs whatever code it holds, so by default only skops artifacts are served.

The operator reads it from a YAML file (``--policy`` / ``MODELOPS_POLICY_FILE``; the chart mounts
it from a ConfigMap). Without a file the defaults apply: Staging needs nothing, Production needs
one approval by someone other than the version's creator. The schema is in docs/governance.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

Comparison = Literal[">=", ">", "<=", "<"]
GOVERNED_STAGES = ("Staging", "Production")
PickleRule = Literal["never", "nonProduction", "always"]
PICKLE_FORMAT = "joblib"


class PolicyError(Exception):
    """The policy file cannot be read or does not follow the schema; the message names the field."""


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class PolicyGate(_Model):
    """A metric threshold that a stage requires."""

    metric: str = Field(min_length=1)
    op: Comparison = ">="
    threshold: float


class StagePolicy(_Model):
    """What granting one stage needs."""

    approvals: int = Field(default=0, ge=0)
    four_eyes: bool = False
    gates: tuple[PolicyGate, ...] = ()
    # Fairness gates (docs/fairness.md): a group needs this many held-out rows at least, whatever the
    # version's own minGroupSize says; and whether a gate on too few rows is judged anyway or fails.
    min_group_size: int = Field(default=0, ge=0)
    allow_insufficient_evidence: bool = False


def _production_default() -> StagePolicy:
    return StagePolicy(approvals=1, four_eyes=True)


class Stages(_Model):
    staging: StagePolicy = Field(default_factory=StagePolicy, alias="Staging")
    production: StagePolicy = Field(default_factory=_production_default, alias="Production")


Digest = Annotated[str, Field(pattern=r"^sha256:[a-f0-9]{64}$")]


class ImageRule(_Model):
    """An image the policy allows: a registry/repository, and optionally only some of its digests."""

    # registry/repository as in a pull (docker.io/library/python, ghcr.io/acme/server); a trailing
    # "/*" allows every repository below the prefix.
    repository: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9._:/-]*(/\*)?$")
    # When set, the reference must be pinned by one of these digests (repo@sha256:…): a tag can move.
    digests: tuple[Digest, ...] = ()
    # A TrainingRun may override this image's entrypoint and arguments (spec.command, spec.args);
    # off, it runs as the image says.
    command: bool = False


def _default_env_names() -> tuple[str, ...]:
    # Thread counts, the time zone and the locale: nothing that loads code or moves traffic.
    return ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "TZ", "LANG", "LC_*")


class Workloads(_Model):
    """What may run beside a governed version: images and environment of the pods the operator makes."""

    # Where the rules hold: Production (namespaces with productionNamespaceLabel), All, or None.
    enforce: Literal["Production", "All", "None"] = "Production"
    # Images a ModelDeployment (spec.server.image) or a TrainingRun (spec.image) may name; leaving
    # them out runs the operator's own image, always allowed.
    images: tuple[ImageRule, ...] = ()
    # Names (shell-style patterns) spec.pod.env may set; the default allows no code-loading variable.
    env_names: tuple[str, ...] = Field(default_factory=_default_env_names)
    # Secrets spec.pod.env may read with valueFrom.secretKeyRef (by name).
    env_secrets: tuple[str, ...] = ()


class Policy(_Model):
    """The whole policy file."""

    stages: Stages = Field(default_factory=Stages)
    trusted_appliers: tuple[str, ...] = ()
    production_namespace_label: str = "modelops.io/environment=production"
    operator_users: tuple[str, ...] = ()
    workloads: Workloads = Field(default_factory=Workloads)
    allow_pickle: PickleRule = "never"

    def pickle_allowed(self, production: bool) -> bool:
        """Whether a pickled artifact may be loaded in a namespace (production or not)."""
        return self.allow_pickle == "always" or (self.allow_pickle == "nonProduction" and not production)

    def artifact_refusal(self, artifact_format: str | None, namespace: str, production: bool) -> str | None:
        """Why a version's artifact may not be served in ``namespace`` (naming the field and the rule), or None."""
        if artifact_format != PICKLE_FORMAT or self.pickle_allowed(production):
            return None
        where = f"production namespace {namespace}" if production else f"namespace {namespace}"
        return (
            f"spec.artifact.format: {PICKLE_FORMAT} artifacts are pickles that run code when loaded, and the "
            f"governance policy (allowPickle: {self.allow_pickle}) does not allow them in {where}; "
            "register the model as a skops artifact"
        )

    def stage(self, name: str) -> StagePolicy:
        """The policy of a governed stage; None and Archived need nothing."""
        if name == "Production":
            return self.stages.production
        if name == "Staging":
            return self.stages.staging
        return StagePolicy()

    def production_label(self) -> tuple[str, str | None]:
        """The production namespace label as (key, value); a bare key matches any value."""
        key, sep, value = self.production_namespace_label.partition("=")
        return key.strip(), (value.strip() if sep else None)

    def is_production_namespace(self, labels: dict[str, str] | None) -> bool:
        key, value = self.production_label()
        labels = labels or {}
        if key not in labels:
            return False
        return value is None or labels[key] == value

    def governs_workloads(self, production_namespace: bool) -> bool:
        """Whether the workload rules (images, env) hold in a namespace."""
        enforce = self.workloads.enforce
        return enforce == "All" or (enforce == "Production" and production_namespace)


DEFAULT = Policy()


def parse(data: object) -> Policy:
    """A policy from parsed YAML; an empty document is the default policy."""
    if data is None:
        return DEFAULT
    try:
        return Policy.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise PolicyError(f"policy: {where}: {first['msg']}") from None


def load(path: str | Path | None) -> Policy:
    """The policy in a file, or the defaults when no file is named."""
    if not path:
        return DEFAULT
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise PolicyError(f"policy: cannot read {path}: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PolicyError(f"policy: {path} is not YAML: {error}") from None
    return parse(data)
