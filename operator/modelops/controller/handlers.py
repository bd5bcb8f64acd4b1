"""The operator's Kopf registry: settings, login, cleanup and the four kinds' reconciles.

``registry()`` builds a Kopf registry with everything the operator does; nothing is
registered at import time, so several operators (tests) can run in one process. Each
kind's reconcile lives in its own module.
"""

from __future__ import annotations

import kopf

from modelops.controller import common, driftpolicies, modeldeployments, modelversions, settings, trainingruns


def registry() -> kopf.OperatorRegistry:
    """A registry with the operator's settings, login, cleanup and every kind's handlers."""
    result = kopf.OperatorRegistry()
    settings.register(result)
    kopf.on.cleanup(registry=result)(common.close_client)
    for module in (trainingruns, modelversions, modeldeployments, driftpolicies):
        module.setup(result)
    return result
