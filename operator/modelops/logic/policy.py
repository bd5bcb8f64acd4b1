"""The governance policy: what each stage needs, who may assert reviewers, which namespaces serve production.

The operator reads it from a YAML file (``--policy`` / ``MODELOPS_POLICY_FILE``; the chart mounts
it from a ConfigMap). Without a file the defaults apply: Staging needs nothing, Production needs
one approval by someone other than the version's creator. The schema is in docs/governance.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

Comparison = Literal[">=", ">", "<=", "<"]
GOVERNED_STAGES = ("Staging", "Production")


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


def _production_default() -> StagePolicy:
    return StagePolicy(approvals=1, four_eyes=True)


class Stages(_Model):
    staging: StagePolicy = Field(default_factory=StagePolicy, alias="Staging")
    production: StagePolicy = Field(default_factory=_production_default, alias="Production")


class Policy(_Model):
    """The whole policy file."""

    stages: Stages = Field(default_factory=Stages)
    trusted_appliers: tuple[str, ...] = ()
    production_namespace_label: str = "modelops.io/environment=production"
    operator_users: tuple[str, ...] = ()

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
