"""An analysis step's first measurement waits one interval after the canary became available.

Before the fix, the step's clock started when its weight was set, so a canary whose pods took
longer than one interval to become ready was measured the moment they were: over a window
holding none of its traffic ("no requests to the canary in the window"), which is always
inconclusive, and with inconclusivePolicy Pause counts towards failureLimit (with failureLimit 1,
such a canary was rolled back without ever being judged).
"""

from __future__ import annotations

import datetime

from modelops.api.modeldeployment import ModelDeploymentSpec
from modelops.logic import rollout
from modelops.logic.analysis import Verdict
from modelops.logic.rolloutstate import AnalysisResult
from modelops.logic.serving import Availability

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
SPEC = ModelDeploymentSpec.model_validate({
    "model": "iris", "modelVersion": "iris-v2", "replicas": 2,
    "rollout": {"steps": [{"setWeight": 50}, {"analysis": {}}]},
    "analysis": {"interval": "10s", "failureLimit": 1},
})  # fmt: skip
STABLE_UP = Availability("iris-stable", True, 1, 1, "Deployment iris-stable: 1/1 available")
CANARY_DOWN = Availability("iris-canary", False, 0, 1, "Deployment iris-canary: 0/1 replicas of x available")
CANARY_UP = Availability("iris-canary", True, 1, 1, "Deployment iris-canary: 1/1 available")
MEASURED = "2026-01-01T12:00:00Z"
PASS = Verdict("Successful", (AnalysisResult("error-rate", "Successful", MEASURED, value=0.0),), None)


def decide(
    status: dict[str, object], seconds: float, canary: Availability | None, verdict: Verdict | None = None
) -> rollout.Decision:
    now = T0 + datetime.timedelta(seconds=seconds)
    inputs = rollout.Inputs(spec=SPEC, namespace="ml", name="iris", status=status, desired="iris-v2", now=now,
                            stable=STABLE_UP, canary=canary, verdict=verdict)  # fmt: skip
    return rollout.decide(inputs)


def test_the_first_measurement_comes_one_interval_after_the_canary_is_available() -> None:
    started = decide({"stableVersion": "iris-v1", "phase": "Healthy"}, 0, None)
    assert (started.status["canaryVersion"], started.status["step"]) == ("iris-v2", 1)
    assert started.measure is None
    assert started.summary.reason == "CanaryUnavailable"  # its Deployment is only being resized
    # The pods take 25 s (2.5 intervals) to become ready: held, not measured, the step's clock not running.
    slow = decide(started.status, 25, CANARY_DOWN)
    assert slow.measure is None
    assert (slow.summary.reason, slow.status["stepStartedAt"]) == ("CanaryUnavailable", None)
    # Available at 26 s: the step starts now; nothing is measured over a window without its traffic.
    ready = decide(slow.status, 26, CANARY_UP)
    assert ready.measure is None
    assert ready.status["stepStartedAt"] == "2026-01-01T12:00:26Z"
    assert ready.requeue_after == 10
    assert decide(ready.status, 35, CANARY_UP).measure is None
    due = decide(ready.status, 36, CANARY_UP)
    assert due.measure is not None
    # A canary that was available all along is measured one interval after its step started.
    promptly = decide({**started.status, "stepStartedAt": "2026-01-01T12:00:00Z"}, 10, CANARY_UP)
    assert promptly.measure is not None
    # Its verdict is what the step waited for: passing promotes.
    assert decide(ready.status, 36, CANARY_UP, PASS).status["stableVersion"] == "iris-v2"
