"""The operator's Kopf registry: settings, login, cleanup and the four kinds' reconciles.

``registry()`` builds a Kopf registry with everything the operator does; nothing is
registered at import time, so several operators (tests) can run in one process. Each
kind's reconcile lives in its own module.
"""

from __future__ import annotations

import kopf

from modelops.api import kind_info
from modelops.controller import common, settings
from modelops.controller.driftpolicies import reconcile_driftpolicy
from modelops.controller.framework import register
from modelops.controller.modeldeployments import reconcile_modeldeployment
from modelops.controller.modelversions import reconcile_modelversion
from modelops.controller.trainingruns import reconcile_trainingrun


def registry() -> kopf.OperatorRegistry:
    """A registry with the operator's settings, login, cleanup and the four kinds' handlers."""
    result = kopf.OperatorRegistry()
    settings.register(result)
    kopf.on.cleanup(registry=result)(common.close_client)
    register(result, kind_info("TrainingRun"), reconcile_trainingrun)
    register(result, kind_info("ModelVersion"), reconcile_modelversion)
    register(result, kind_info("ModelDeployment"), reconcile_modeldeployment)
    register(result, kind_info("DriftPolicy"), reconcile_driftpolicy)
    return result
