"""What may run beside a governed version: images against the policy's allow-list, and pods' environment.

Pure functions. Anyone who may edit a ModelDeployment or a TrainingRun could otherwise run any
image next to an approved version, or steer the operator's own image (``PYTHONPATH``,
``LD_PRELOAD``, ``PATH``), with the namespace's Secrets. Where the policy governs workloads
(``workloads.enforce``: production namespaces by default) the admission webhooks refuse:

- an image that no ``workloads.images`` entry allows (by registry/repository; pinned by one of
  the entry's digests when it lists any); leaving the image out runs the operator's own, always
  allowed;
- a TrainingRun's ``command``/``args`` unless the image's entry allows overriding its entrypoint;
- an env variable whose name matches none of ``workloads.envNames``, and a
  ``valueFrom.secretKeyRef`` to a Secret not in ``workloads.envSecrets``.

Image references are parsed as the container runtimes resolve them (the distribution reference
grammar): no registry means ``docker.io``, a single name ``docker.io/library/<name>``, and a
digest pins the content whatever the tag says. Each problem names the field and the rule.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelops.logic.policy import ImageRule, Policy, Workloads

_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?$")
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
DEFAULT_REGISTRY = "docker.io"
NAME_MAX = 255


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference."""

    registry: str
    path: str
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        return f"{self.registry}/{self.path}"


def parse_image(reference: str) -> ImageRef:
    """An image reference as a runtime resolves it; ValueError says what is wrong with it."""
    if not reference or reference != reference.strip():
        raise ValueError("empty, or spaces around it")
    rest, digest = reference, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.match(digest):
            raise ValueError(f"{digest!r} is not a digest (algorithm:hex)")
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:  # a colon after the last slash is a tag, not a registry port
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.match(tag):
            raise ValueError(f"{tag!r} is not a tag")
    if len(rest) > NAME_MAX:
        raise ValueError(f"the name is longer than {NAME_MAX} characters")
    parts = rest.split("/")
    first = parts[0]
    if len(parts) > 1 and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        if not _DOMAIN.match(first):
            raise ValueError(f"{first!r} is not a registry host")
        registry, components = first.lower(), parts[1:]
    else:
        registry, components = DEFAULT_REGISTRY, parts
    if registry == "index.docker.io":
        registry = DEFAULT_REGISTRY
    for component in components:
        if not _COMPONENT.match(component):
            raise ValueError(f"{component!r} is not a repository name component (lowercase letters, digits, . _ -)")
    if registry == DEFAULT_REGISTRY and len(components) == 1:
        components = ["library", *components]
    return ImageRef(registry=registry, path="/".join(components), tag=tag, digest=digest)


def _matches(rule: ImageRule, ref: ImageRef) -> bool:
    if rule.repository.endswith("/*"):
        return ref.repository.startswith(rule.repository[:-1])
    try:
        return parse_image(rule.repository).repository == ref.repository
    except ValueError:
        return False


def image_problems(
    field: str, reference: Any, workloads: Workloads, where: str, overrides: Sequence[str] = ()
) -> list[str]:
    """Why an image may not run here (none: it may); ``overrides`` names the fields that replace its
    entrypoint or arguments (a TrainingRun's command and args), allowed only if the entry says so."""
    if not isinstance(reference, str):
        return [f"{field}: an image reference is a string"]
    try:
        ref = parse_image(reference)
    except ValueError as error:
        return [f"{field}: {reference!r} is not an image reference: {error}"]
    rules = [rule for rule in workloads.images if _matches(rule, ref)]
    if not rules:
        return [
            f"{field}: {where}, and no entry of the governance policy's workloads.images allows repository "
            f"{ref.repository} ({reference}); leave {field} empty to run the operator's own image, or have the "
            "image allow-listed"
        ]
    pinned = [rule for rule in rules if not rule.digests or ref.digest in rule.digests]
    if not pinned:
        wanted = sorted({d for rule in rules for d in rule.digests})
        return [
            f"{field}: {where}, and workloads.images allows {ref.repository} only pinned by digest: "
            f"{ref.repository}@{' or @'.join(wanted)} ({reference} is "
            + (f"pinned by {ref.digest}" if ref.digest else "not pinned by a digest")
            + ")"
        ]
    if overrides and not any(rule.command for rule in pinned):
        return [
            f"{name}: {where}, and the workloads.images entry of {ref.repository} does not allow overriding its "
            "entrypoint (command: false): the image runs as it is built"
            for name in overrides
        ]
    return []


def env_problems(field: str, env: Any, workloads: Workloads, where: str) -> list[str]:
    """Why a pod's env may not be used here: names outside workloads.envNames, Secrets outside envSecrets."""
    if env is None:
        return []
    if not isinstance(env, list):
        return [f"{field}: a list of variables"]
    problems: list[str] = []
    allowed = ", ".join(workloads.env_names) or "none"
    for index, item in enumerate(env):
        at = f"{field}[{index}]"
        if not isinstance(item, Mapping):
            problems.append(f"{at}: a variable is an object")
            continue
        name = str(item.get("name"))
        if not any(fnmatch.fnmatchcase(name, pattern) for pattern in workloads.env_names):
            problems.append(
                f"{at}.name: {where}, and {name} is not one of the governance policy's workloads.envNames "
                f"({allowed}): a variable can change the code a pod runs"
            )
        source = item.get("valueFrom")
        secret = (source.get("secretKeyRef") or {}) if isinstance(source, Mapping) else {}
        if secret and str(secret.get("name")) not in workloads.env_secrets:
            problems.append(
                f"{at}.valueFrom.secretKeyRef: {where}, and Secret {secret.get('name')} is not in the governance "
                "policy's workloads.envSecrets"
            )
    return problems


def governed_where(policy: Policy, namespace: str, production_namespace: bool) -> str | None:
    """How to say where the workload rules hold, or None when they do not hold in this namespace."""
    if not policy.governs_workloads(production_namespace):
        return None
    if production_namespace:
        return f"namespace {namespace} is labelled as production"
    return f"the governance policy governs every namespace's workloads (workloads.enforce: All), {namespace} too"


def deployment_problems(spec: Mapping[str, Any], policy: Policy, where: str) -> list[str]:
    """A ModelDeployment's image and env against the workload rules."""
    problems: list[str] = []
    image = (spec.get("server") or {}).get("image")
    if image is not None:
        problems += image_problems("spec.server.image", image, policy.workloads, where)
    return problems + env_problems("spec.pod.env", (spec.get("pod") or {}).get("env"), policy.workloads, where)


def trainingrun_problems(spec: Mapping[str, Any], policy: Policy, where: str) -> list[str]:
    """A TrainingRun's image, command, args and env against the workload rules."""
    problems: list[str] = []
    image = spec.get("image")
    overrides = [f"spec.{key}" for key in ("command", "args") if spec.get(key)]
    if image is not None:
        problems += image_problems("spec.image", image, policy.workloads, where, overrides)
    return problems + env_problems("spec.pod.env", (spec.get("pod") or {}).get("env"), policy.workloads, where)
