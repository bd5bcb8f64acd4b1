"""Where pickled (joblib) artifacts may be served: the governance policy's ``allowPickle`` applied.

The decision itself is pure (``Policy.artifact_refusal``/``Policy.pickle_allowed``); this module
reads what it needs — the namespace's labels — and is called from three places: the ModelVersion
admission webhook (a pickle registered where it may not be served is denied at creation), the
ModelDeployment reconcile (a wanted version that is a pickle is refused with ``Ready=False``
naming the field and the rule, also when the namespace became production later), and the
rendering of the server's args (``--allow-pickle`` only where the policy allows pickles).
A namespace whose labels cannot be read counts as a production one: the stricter rule.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from modelops.controller import common
from modelops.controller.kube import KubeError
from modelops.logic import serving
from modelops.logic.policy import Policy

log = logging.getLogger(__name__)


async def production_namespace(policy: Policy, namespace: str) -> bool:
    """Whether ``namespace`` is a production one by the policy's label (True when it cannot be read)."""
    try:
        ns = await common.kube().call("GET", f"/api/v1/namespaces/{namespace}")
    except KubeError as error:
        log.warning("cannot read namespace %s, treating it as production: %s", namespace, error.message)
        return True
    return policy.is_production_namespace((ns.get("metadata") or {}).get("labels"))


async def refusal(policy: Policy, namespace: str, version: Mapping[str, Any]) -> str | None:
    """Why ``version``'s artifact may not be served in ``namespace``, or None."""
    artifact_format = serving.artifact_format_of(version)
    if artifact_format != serving.PICKLE_FORMAT or policy.allow_pickle == "always":
        return None  # nothing to look up
    production = await production_namespace(policy, namespace)
    return policy.artifact_refusal(artifact_format, namespace, production)


async def pickle_allowed(policy: Policy, namespace: str, versions: Iterable[Mapping[str, Any]]) -> bool:
    """Whether the servers of ``versions`` in ``namespace`` get ``--allow-pickle`` (only if one is a pickle)."""
    if policy.allow_pickle == "never":
        return False
    if not any(serving.artifact_format_of(v) == serving.PICKLE_FORMAT for v in versions):
        return False
    return policy.pickle_allowed(await production_namespace(policy, namespace))


async def admit_version(policy: Policy, operation: str, body: Mapping[str, Any]) -> None:
    """Deny creating a ModelVersion whose artifact is a pickle the policy does not allow here."""
    if operation != "CREATE":
        return  # the artifact is immutable; updates (approvals, stage moves) stay possible
    namespace = str((body.get("metadata") or {}).get("namespace") or "")
    problem = await refusal(policy, namespace, body)
    if problem is not None:
        raise kopf.AdmissionError(problem, code=403)
