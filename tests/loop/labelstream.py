"""The whole loop closed on outcomes: serve → labels showing decay → QualityDegraded → one retrain → canary on labels.

The same parts as the drift loop (tests/loop/scenario.py), with the business sending labels back:

1-3. alice's iris-v1, granted Production by bob, served by a ModelDeployment whose canaries are also
   held to the stable's live accuracy (the builtin ``quality`` check, on labels);
4. every answer's prediction id comes back with the true labels; a DriftPolicy holds live accuracy to
   at most ``MAX_DROP`` below iris-v1's training accuracy, and the F1 of versicolor estimated from the
   probabilities (no labels) to at least ``MIN_ESTIMATED_F1``: within limits, nothing retrains;
5. the labels turn against the model (every prediction contradicted): ``QualityDegraded`` turns True
   with reason LiveQualityDegraded, an Event says so, and the policy creates exactly one TrainingRun;
   the estimate, blind to a change in what the labels mean, holds;
6. the labels are right again; the retrain gives iris-v2 (Staging by the policy), alice asks
   Production and bob approves, the canary is analysed — its live accuracy against the stable's, on
   labels both have — and promoted; the policy then judges iris-v2 within limits, still one retrain.
"""

from __future__ import annotations

from collections.abc import Callable

from loop.scenario import (
    API,
    DEPLOYMENT,
    NAMESPACE,
    Obj,
    Parts,
    Traffic,
    condition,
    created_by,
    first_version_in_production,
    model_deployment,
    retrain_governed_and_promoted,
    status,
    waiting,
)

QUALITY_POLICY = "iris-quality"
RUN_LABEL = f"modelops.io/drift-policy={QUALITY_POLICY}"
MAX_DROP = 0.15
MIN_ESTIMATED_F1 = 0.5


def deployment_judged_on_labels() -> Obj:
    body = model_deployment()
    # Pause while a version lacks minFeedback labels: at 3s an interval, 20 rounds wait a minute for them.
    body["spec"]["analysis"] = {
        "interval": "3s", "failureLimit": 20, "inconclusivePolicy": "Pause",
        "builtin": {"quality": {"metric": "accuracy", "maxDrop": 0.1, "minFeedback": 50, "window": "20s"}},
    }  # fmt: skip
    return body


def quality_policy() -> Obj:
    return {
        "apiVersion": API, "kind": "DriftPolicy",
        "metadata": {"name": QUALITY_POLICY, "namespace": NAMESPACE},
        "spec": {
            # Input drift is not what this loop is about: the window never holds minSamples inputs.
            "deployment": DEPLOYMENT, "window": "10s", "interval": "2s", "minSamples": 1000000,
            "quality": {"thresholds": [{"metric": "accuracy", "maxDrop": MAX_DROP},
                                       {"metric": "estimatedF1", "threshold": MIN_ESTIMATED_F1, "positiveClass": "1"}],
                        "window": "15s", "minFeedback": 100},
            "actions": {"retrain": {"enabled": True, "cooldown": "1h", "maxPerDay": 2, "promoteTo": "Staging"}},
        },
    }  # fmt: skip


def degraded_is(value: str, version: str) -> Callable[[Obj], bool]:
    """The policy judged ``version``'s quality and QualityDegraded is ``value``."""
    return lambda o: status(o).get("modelVersion") == version and condition(o, "QualityDegraded").get("status") == value


def label_stream_loop(loop: Parts) -> None:
    """The scenario of the module docstring, step by step."""
    kube, alice, operator = loop.kube, loop.alice, loop.operator
    v1, features = first_version_in_production(loop, deployment_judged_on_labels())
    trained = v1["spec"]["metrics"]["accuracy"]

    with Traffic(loop, features, labels=True) as traffic:
        # --- 4. the true labels come back: quality within limits, nothing retrains.
        alice.create(quality_policy())
        holding = waiting(loop, "DriftPolicy", QUALITY_POLICY, degraded_is("False", "iris-v1"), 60,
                          "QualityDegraded False on true labels")  # fmt: skip
        state = condition(holding, "QualityDegraded")
        assert state["reason"] == "QualityWithinLimits", state
        live, estimate = status(holding)["quality"]
        assert live["limit"] == trained - MAX_DROP, live
        assert live["value"] > trained - MAX_DROP, live
        assert live["evidence"] >= 100, live
        # The estimate of one class, read from the probabilities of the rows served (its evidence).
        assert (estimate["metric"], estimate["positiveClass"]) == ("estimatedF1", "1"), estimate
        assert estimate["value"] > MIN_ESTIMATED_F1, estimate
        assert estimate["evidence"] >= 100, estimate
        assert kube.list(API, "TrainingRun", NAMESPACE, label_selector=RUN_LABEL) == []

        # --- 5. the labels turn against the model: decay, one Event, one retrain.
        traffic.wrong = True
        degraded = waiting(loop, "DriftPolicy", QUALITY_POLICY, degraded_is("True", "iris-v1"), 60,
                           "QualityDegraded True on contradicting labels")  # fmt: skip
        state = condition(degraded, "QualityDegraded")
        assert state["reason"] == "LiveQualityDegraded", state
        assert "live quality degraded over the last 15s: accuracy" in state["message"], state
        assert f"(training accuracy {trained:.4g} - maxDrop {MAX_DROP:g})" in state["message"], state
        estimate = status(degraded)["quality"][1]
        assert estimate["degraded"] is False, estimate  # the probabilities cannot see what the labels say
        retrained = waiting(loop, "DriftPolicy", QUALITY_POLICY, lambda o: bool(status(o).get("retrains")), 30,
                            "the policy started a retrain on decay")  # fmt: skip
        traffic.wrong = False
        runs = kube.list(API, "TrainingRun", NAMESPACE, label_selector=RUN_LABEL)
        assert [r["metadata"]["name"] for r in runs] == [status(retrained)["retrains"][0]["name"]], runs
        retrain = runs[0]
        assert created_by(retrain) == operator
        assert retrain["spec"]["estimator"]["params"] == v1["spec"]["lineage"]["params"]
        events = [e for e in kube.list("v1", "Event", NAMESPACE)
                  if e.get("involvedObject", {}).get("name") == QUALITY_POLICY and e.get("reason") == "QualityDegraded"]
        assert events, "no QualityDegraded Event"  # fmt: skip

        # --- 6. the retrain through governance and a canary judged on labels.
        promoted = retrain_governed_and_promoted(loop, QUALITY_POLICY, retrain, traffic)
        analysis = {r["name"]: r for r in status(promoted).get("analysis") or []}
        assert analysis["quality"]["phase"] == "Successful", analysis
        assert "labels)" in analysis["quality"]["message"], analysis["quality"]
        assert analysis["error-rate"]["phase"] == "Successful", analysis

        # The loop closes on the new version: within limits on its own labels, and no second retrain.
        recovered = waiting(loop, "DriftPolicy", QUALITY_POLICY, degraded_is("False", "iris-v2"), 60,
                            "QualityDegraded False for iris-v2")  # fmt: skip
        assert len(status(recovered)["retrains"]) == 1, status(recovered)["retrains"]
        assert len(kube.list(API, "TrainingRun", NAMESPACE, label_selector=RUN_LABEL)) == 1
    assert traffic.counted > 0
    assert set(traffic.feedback) == {200}, f"feedback refused: {traffic.feedback}"
