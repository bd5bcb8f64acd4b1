"""Two real Kopf operators in one process: what their handlers call finds each its own run's state."""

from __future__ import annotations

import threading
from contextlib import ExitStack
from typing import Any

import kopf
import pytest
from kopf.testing import KopfRunner

from kubeemu.client import KubeClient
from modelops.api import GROUP, VERSION
from operatorkit import NAMESPACE, until

API = "modelops.io/v1alpha1"


def test_each_of_two_operators_in_one_process_sees_its_own_run(
    cluster: KubeClient, operator_env: dict[str, str]
) -> None:
    from modelops.controller import runtime, settings

    lock = threading.Lock()
    seen: dict[str, list[tuple[str, bool]]] = {"a": [], "b": []}

    def registry_for(label: str) -> kopf.OperatorRegistry:
        registry = kopf.OperatorRegistry()
        runtime.register(registry)
        settings.register(registry)

        async def on_event(memo: kopf.Memo, **_: Any) -> None:
            found = runtime.current()  # a helper's way: no memo at hand
            with lock:
                seen[label].append(("event", found is runtime.of(memo)))

        def on_timer(memo: kopf.Memo, **_: Any) -> None:  # a plain function: Kopf runs it in a thread
            found = runtime.current()
            with lock:
                seen[label].append(("timer", found is runtime.of(memo)))

        kopf.on.event(GROUP, VERSION, "driftpolicies", id="look", registry=registry)(
            runtime.bound(on_event)
        )
        kopf.on.timer(GROUP, VERSION, "driftpolicies", id="tick", interval=0.3, registry=registry)(
            runtime.bound(on_timer)
        )
        return registry

    args = ["run", "--standalone", "--all-namespaces"]
    with ExitStack() as stack:
        runners = {label: stack.enter_context(KopfRunner(args, registry=registry_for(label), timeout=60))
                   for label in seen}  # fmt: skip
        cluster.create({"apiVersion": API, "kind": "DriftPolicy", "metadata": {"name": "p", "namespace": NAMESPACE},
                        "spec": {"deployment": "nowhere"}})  # fmt: skip

        def both(kind: str) -> bool:
            with lock:
                return all(any(k == kind for k, _ in calls) for calls in seen.values())

        assert until(lambda: both("event") and both("timer"), 30), seen
    for label, runner in runners.items():
        assert runner.exception is None, (label, runner.exception)
    with lock:
        assert all(same for calls in seen.values() for _, same in calls), seen
    # Outside any handler, nobody's run is current.
    with pytest.raises(RuntimeError, match="no Kopf handler"):
        runtime.current()
