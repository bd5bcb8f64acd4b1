"""The operator's Kopf registry: settings, login, cleanup, the four kinds' reconciles, admission.

``registry()`` builds a Kopf registry with everything the operator does; nothing is
registered at import time, so several operators (tests) can run in one process. Each
kind's reconcile lives in its own module; the admission webhooks in ``webhooks`` are added
only when a webhook server is configured (Kopf refuses admission handlers without one).
"""

from __future__ import annotations

import os

import kopf

from modelops.controller import (
    driftpolicies,
    modeldeployments,
    modelversions,
    runtime,
    settings,
    trainingruns,
    webhooks,
)
from modelops.logic import policy as policies


def registry(
    *, policy: policies.Policy | None = None, webhook: webhooks.WebhookOptions | None = None
) -> kopf.OperatorRegistry:
    """A registry with the operator's settings, login, cleanup and every kind's handlers.

    ``policy`` defaults to the file named by ``MODELOPS_POLICY_FILE`` (or the built-in defaults);
    ``webhook`` adds the admission handlers and their HTTPS server.
    """
    governance = policy if policy is not None else policies.load(os.environ.get("MODELOPS_POLICY_FILE"))
    result = kopf.OperatorRegistry()
    settings.register(result)
    runtime.register(result)
    for module in (trainingruns, driftpolicies):
        module.setup(result)
    modeldeployments.setup(result, policy=governance)
    modelversions.setup(result, policy=governance)
    if webhook is not None:
        webhooks.setup(result, policy=governance, options=webhook)
    return result
