"""A spec change is handled at once, even while a reconcile waits to look again later."""

from __future__ import annotations

from typing import Any

import pytest
from kopf.testing import KopfRunner

from kubeemu.client import KubeClient
from operatorkit import NAMESPACE, until

API = "modelops.io/v1alpha1"


def policy(deployment: str) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "DriftPolicy", "metadata": {"name": "inputs", "namespace": NAMESPACE},
            "spec": {"deployment": deployment}}  # fmt: skip


def test_a_spec_change_is_not_held_back_by_a_pending_requeue(
    cluster: KubeClient, operator_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelops.controller import handlers

    monkeypatch.setenv("MODELOPS_WAIT_RETRY_SECONDS", "600")  # the next look is ten minutes away
    args = ["run", "--standalone", "--all-namespaces", "--verbose"]
    with KopfRunner(args, registry=handlers.registry(), timeout=60) as runner:
        cluster.create(policy("nowhere"))
        first = cluster.wait_for(API, "DriftPolicy", NAMESPACE, "inputs",
                                 lambda o: (o.get("status") or {}).get("observedGeneration") == 1, timeout=15)
        assert first is not None
        cluster.patch(API, "DriftPolicy", NAMESPACE, "inputs", {"spec": {"deployment": "elsewhere"}})
        second = cluster.wait_for(API, "DriftPolicy", NAMESPACE, "inputs",
                                  lambda o: (o.get("status") or {}).get("observedGeneration") == 2, timeout=15)
        assert second is not None
        ready = next(c for c in second["status"]["conditions"] if c["type"] == "Ready")
        assert "elsewhere" in ready["message"]
    assert runner.exception is None, runner.exception


def test_a_deleted_objects_pending_look_goes_with_it(
    cluster: KubeClient, operator_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import kopf

    from modelops.controller import handlers, runtime

    monkeypatch.setenv("MODELOPS_WAIT_RETRY_SECONDS", "600")  # the look would otherwise wait ten minutes
    registry = handlers.registry()
    memos: list[kopf.Memo] = []
    kopf.on.startup(registry=registry, id="test-memo")(lambda memo, **_: memos.append(memo))
    args = ["run", "--standalone", "--all-namespaces", "--verbose"]
    key = ("DriftPolicy", NAMESPACE, "inputs")
    with KopfRunner(args, registry=registry, timeout=60) as runner:
        cluster.create(policy("nowhere"))
        assert cluster.wait_for(API, "DriftPolicy", NAMESPACE, "inputs",
                                lambda o: (o.get("status") or {}).get("observedGeneration") == 1, timeout=15)
        state = runtime.of(memos[0])
        assert until(lambda: key in state.pending, 15), "the reconcile scheduled no look"
        look = state.pending[key]
        cluster.delete(API, "DriftPolicy", NAMESPACE, "inputs")
        assert until(lambda: key not in state.pending and look.done(), 15), "the deleted object's look is kept"
        assert look.cancelled()
    assert runner.exception is None, runner.exception
