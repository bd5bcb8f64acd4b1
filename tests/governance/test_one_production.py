"""One Production version per model, even when several are granted Production at once."""

from __future__ import annotations

from typing import Any

import pytest
from kopf.testing import KopfRunner

from kubeemu.client import KubeClient
from modelops.controller import handlers
from modelops.logic import policy as policies
from operatorkit import NAMESPACE

pytestmark = pytest.mark.timeout(90)
API = "modelops.io/v1alpha1"
# Production needs nothing here, so every version asking for it is granted at once.
OPEN = policies.parse({"stages": {"Production": {"approvals": 0, "fourEyes": False}}})


def version(number: int) -> dict[str, Any]:
    return {
        "apiVersion": API, "kind": "ModelVersion",
        "metadata": {"name": f"iris-v{number}", "namespace": NAMESPACE},
        "spec": {"model": "iris", "version": number, "stage": "Production",
                 "artifact": {"uri": f"s3://models/iris/v{number}/model.joblib", "sha256": f"{number:x}" * 64}},
    }  # fmt: skip


def test_versions_asking_for_production_together_end_with_one(
    cluster: KubeClient, operator_env: dict[str, str]
) -> None:
    args = ["run", "--standalone", "--all-namespaces", "--verbose"]
    with KopfRunner(args, registry=handlers.registry(policy=OPEN), timeout=60) as runner:
        for number in range(1, 7):  # all at once: the operator handles them concurrently
            cluster.create(version(number))

        def settled(_: Any) -> bool:
            versions = cluster.list(API, "ModelVersion", NAMESPACE)
            stages = [(v.get("status") or {}).get("stage") for v in versions]
            reconciled = all((v.get("status") or {}).get("observedGeneration") == 1 for v in versions)
            return reconciled and "None" not in stages and None not in stages

        cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v1", settled, timeout=60)
        versions = {v["metadata"]["name"]: v["status"] for v in cluster.list(API, "ModelVersion", NAMESPACE)}
        production = [name for name, status in versions.items() if status["stage"] == "Production"]
        assert len(production) == 1, {name: status["stage"] for name, status in versions.items()}
        for name, status in versions.items():
            if name in production:
                continue
            # Each archived version was Production once, and its history says who replaced it.
            assert status["stage"] == "Archived"
            assert [(h["from"], h["to"]) for h in status["history"]][-1] == ("Production", "Archived")
    assert runner.exception is None, runner.exception
