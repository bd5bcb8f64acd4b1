"""The whole loop in one operator: train → govern → serve → watch drift → retrain → govern → canary → promote.

The scenario is written once against :class:`Parts` and run by two tiers: tests/loop (the operator
in-process, training pods and servers as host processes) and tests/image (the operator from the
chart and every pod as a container from the image). Given the real operator with its admission
webhooks (called by the emulator with each caller's identity), a real Prometheus, and training
pods and model servers that really run:

1. alice's TrainingRun trains an iris tree; the operator registers ``iris-v1`` with referenceStats;
2. alice asks Production; it is held for an approval; alice may not approve (four eyes: she created
   its TrainingRun); bob approves → Production, by bob;
3. a ModelDeployment tracking Production serves ``iris-v1`` from the artifact the training pod wrote;
4. a DriftPolicy watches it: traffic like the training data → no drift; two features shifted →
   drift on exactly those two, and the policy creates one TrainingRun;
5. that run trains → ``iris-v2``, asked for Staging by the policy and granted;
6. alice asks Production for ``iris-v2``, bob approves → ``iris-v1`` archived; the deployment runs
   ``iris-v2`` as a canary, analyses it against Prometheus and promotes it.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import pytest
import requests
from sklearn.datasets import load_iris

from kubeemu.client import ApiError, KubeClient
from modelops.logic import governance as gov
from promkit import Prometheus

API = "modelops.io/v1alpha1"
NAMESPACE = "ml"
MODEL = "iris"
DEPLOYMENT = "iris"
POLICY = "iris-inputs"
SHIFTED = ["petal length (cm)", "sepal width (cm)"]
Obj = dict[str, Any]


class Parts(Protocol):
    """What the scenario drives and watches, as each tier provides it."""

    kube: KubeClient  # the tests' own client (system:admin)
    alice: KubeClient
    bob: KubeClient
    prometheus: Prometheus
    operator: str  # the operator's identity on the API (admission userInfo.username)
    patience: float  # deadlines are multiplied by it (containers start slower than processes)

    def run_training_pods(self, run: str) -> None:
        """Whatever makes the run's Job pods run (nothing where a kubelet does it)."""

    def server_versions(self) -> dict[str, str]:
        """Model-server Deployment → the version its running pods serve (``a,b`` while they differ)."""

    def server_urls(self) -> list[str]:
        """Base URLs of the model-server pods that take requests."""


# --- reading objects ------------------------------------------------------------------------------


def status(obj: Obj | None) -> Obj:
    return dict((obj or {}).get("status") or {})


def condition(obj: Obj | None, type_: str) -> Obj:
    for item in status(obj).get("conditions") or []:
        if item["type"] == type_:
            return dict(item)
    return {}


def created_by(obj: Obj) -> str:
    return str(json.loads(obj["metadata"]["annotations"][gov.CREATED_BY])["user"])


def history(obj: Obj | None) -> list[tuple[str, str, str]]:
    return [(h["from"], h["to"], h["by"]) for h in status(obj).get("history") or []]


def waiting(loop: Parts, kind: str, name: str, check: Callable[[Obj], bool], timeout: float, what: str) -> Obj:
    """Wait for ``check`` on the object; on timeout fail naming ``what`` and showing the object's status."""
    try:
        found = loop.kube.wait_for(API, kind, NAMESPACE, name, lambda o: o is not None and check(o),
                                   timeout=timeout * loop.patience)  # fmt: skip
    except AssertionError as error:
        raise AssertionError(f"step failed: {what}\n{error}") from None
    assert found is not None
    return found


def is_ready(obj: Obj) -> bool:
    return condition(obj, "Ready").get("status") == "True"


def phase_is(phase: str) -> Callable[[Obj], bool]:
    return lambda o: status(o).get("phase") == phase


# --- one TrainingRun, trained ------------------------------------------------------------------------


def train(loop: Parts, run: str) -> Obj:
    """The job controller and kubelet run the run's Job to completion; the Succeeded run."""
    loop.run_training_pods(run)
    return waiting(loop, "TrainingRun", run, phase_is("Succeeded"), 30, f"TrainingRun {run} Succeeded")


# --- clients of the model Service ------------------------------------------------------------------


class Traffic:
    """Batches of iris rows posted to every running server pod; ``shift`` adds to chosen features.

    With ``labels`` the business sends each batch's labels back by its prediction id, to the pod that
    answered: the truth, or — while ``wrong`` is set — a class other than the one predicted for every row.
    """

    def __init__(
        self, loop: Parts, features: list[str], *, batch: int = 10, pause: float = 0.1, labels: bool = False
    ) -> None:
        self.loop = loop
        self.features = features
        self.rows = load_iris().data.astype(np.float64)
        self.truth = load_iris().target
        self.batch = batch
        self.pause = pause
        self.labels = labels
        self.wrong = False
        self.shift: dict[str, float] = {}
        self.codes: dict[str, dict[int, int]] = {}  # pod URL → HTTP code → count
        self.feedback: dict[int, int] = {}  # feedback HTTP code → count
        self.counted = 0  # labels the servers counted
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._rng = np.random.default_rng(11)

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                for url in self.loop.server_urls():
                    picked = self._rng.integers(0, len(self.rows), self.batch)
                    rows = self.rows[picked].copy()
                    for feature, delta in dict(self.shift).items():
                        rows[:, self.features.index(feature)] += delta
                    body = {"inputs": [{"name": "x", "shape": list(rows.shape), "datatype": "FP64",
                                        "data": rows.ravel().tolist()}]}  # fmt: skip
                    # A pod starting or stopping refuses the connection: a client sees the same.
                    with contextlib.suppress(requests.RequestException):
                        answer = session.post(f"{url}/v2/models/{MODEL}/infer", json=body, timeout=5)
                        counts = self.codes.setdefault(url, {})
                        counts[answer.status_code] = counts.get(answer.status_code, 0) + 1
                        if self.labels and answer.status_code == 200:
                            self._label(session, url, answer.json(), self.truth[picked])
                self._stop.wait(self.pause)  # pacing the load, not synchronisation

    def _label(self, session: requests.Session, url: str, answer: Obj, truth: np.ndarray) -> None:
        predicted = np.asarray(answer["outputs"][0]["data"])
        actual = (predicted + 1) % 3 if self.wrong else truth
        back = session.post(f"{url}/v2/models/{MODEL}/feedback", json={"id": answer["id"], "actual": actual.tolist()},
                            timeout=5)  # fmt: skip
        self.feedback[back.status_code] = self.feedback.get(back.status_code, 0) + 1
        if back.status_code == 200:
            self.counted += int(back.json()["counted"])

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# --- the objects people write ---------------------------------------------------------------------


def training_run(name: str) -> Obj:
    return {
        "apiVersion": API, "kind": "TrainingRun",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "model": MODEL,
            "dataset": {"uri": "sklearn://iris", "target": "target"},
            "estimator": {"className": "sklearn.tree.DecisionTreeClassifier", "params": {"max_depth": 3}},
            "artifactStore": {"uri": "pvc://models/registry"},
        },
    }  # fmt: skip


def model_deployment() -> Obj:
    return {
        "apiVersion": API, "kind": "ModelDeployment",
        "metadata": {"name": DEPLOYMENT, "namespace": NAMESPACE},
        "spec": {
            "model": MODEL, "track": "Production", "replicas": 2,
            "rollout": {"steps": [{"setWeight": 50}, {"analysis": {}}]},
            # No Prometheus address: the operator's MODELOPS_PROMETHEUS_URL.
            "analysis": {"interval": "3s", "failureLimit": 2},
        },
    }  # fmt: skip


def drift_policy() -> Obj:
    return {
        "apiVersion": API, "kind": "DriftPolicy",
        "metadata": {"name": POLICY, "namespace": NAMESPACE},
        "spec": {
            "deployment": DEPLOYMENT, "method": "psi", "threshold": 0.2, "window": "10s", "interval": "2s",
            "minSamples": 200,
            "actions": {"retrain": {"enabled": True, "cooldown": "1h", "maxPerDay": 2, "promoteTo": "Staging"}},
        },
    }  # fmt: skip


def evaluated_after(previous: str | None, check: Callable[[Obj], bool]) -> Callable[[Obj], bool]:
    """A fresh evaluation (lastEvaluation moved on) whose status passes ``check``."""

    def predicate(obj: Obj) -> bool:
        last = status(obj).get("lastEvaluation")
        return bool(last) and last != previous and check(obj)

    return predicate


def drifted_features(obj: Obj) -> list[str]:
    return sorted(f["name"] for f in status(obj).get("features") or [] if f["drifted"])


APPROVE_PRODUCTION = {"metadata": {"annotations": {gov.APPROVE: "Production"}}}


def first_version_in_production(loop: Parts, deployment: Obj) -> tuple[Obj, list[str]]:
    """Steps 1-3: iris-v1 trained, granted Production by four eyes, served by ``deployment``; the version
    and its input features."""
    alice, bob, operator = loop.alice, loop.bob, loop.operator

    # --- 1. alice trains; the operator registers iris-v1 with its reference statistics.
    alice.create(training_run("iris-tree"))
    run = train(loop, "iris-tree")
    assert created_by(run) == "alice"
    assert status(run)["modelVersion"] == "iris-v1", status(run)
    v1 = waiting(loop, "ModelVersion", "iris-v1", lambda o: status(o).get("stage") == "None", 30, "iris-v1 reconciled")
    assert created_by(v1) == operator
    assert v1["spec"]["lineage"]["trainingRun"]["name"] == "iris-tree"
    features = [f["name"] for f in v1["spec"]["referenceStats"]["features"]]
    assert sorted(features) == sorted(load_iris().feature_names), features
    assert v1["spec"]["metrics"]["accuracy"] >= 0.9, v1["spec"]["metrics"]

    # --- 2. alice asks Production: held for an approval, which alice may not give (four eyes); bob does.
    alice.patch(API, "ModelVersion", NAMESPACE, "iris-v1", {"spec": {"stage": "Production"}})
    held = waiting(loop, "ModelVersion", "iris-v1", lambda o: status(o).get("observedGeneration") == 2, 30,
                   "iris-v1 reconciled at generation 2")  # fmt: skip
    assert status(held)["stage"] == "None", status(held)
    assert condition(held, "Approved")["reason"] == "AwaitingApproval", condition(held, "Approved")
    with pytest.raises(ApiError) as four_eyes:
        alice.patch(API, "ModelVersion", NAMESPACE, "iris-v1", APPROVE_PRODUCTION)
    assert "four eyes: alice created the TrainingRun" in four_eyes.value.body["message"]
    bob.patch(API, "ModelVersion", NAMESPACE, "iris-v1", APPROVE_PRODUCTION)
    v1 = waiting(loop, "ModelVersion", "iris-v1",
                 lambda o: status(o).get("stage") == "Production", 30, "iris-v1 granted Production")  # fmt: skip
    assert history(v1)[-1] == ("None", "Production", "bob"), status(v1)["history"]
    assert condition(v1, "Ready")["status"] == "True"

    # --- 3. a deployment tracking Production serves iris-v1 from the training pod's artifact.
    alice.create(deployment)
    served = waiting(loop, "ModelDeployment", DEPLOYMENT,
                     lambda o: status(o).get("stableVersion") == "iris-v1" and is_ready(o),
                     60, "ModelDeployment serving iris-v1 and Ready")  # fmt: skip
    assert status(served)["phase"] == "Healthy", status(served)
    assert loop.server_versions() == {f"{DEPLOYMENT}-stable": "iris-v1"}
    loop.prometheus.wait_scraped(1)
    return v1, features


def whole_loop(loop: Parts) -> None:
    """The scenario of the module docstring, step by step."""
    kube, alice, operator = loop.kube, loop.alice, loop.operator
    v1, features = first_version_in_production(loop, model_deployment())

    with Traffic(loop, features) as traffic:
        # --- 4. a DriftPolicy: quiet on training-like traffic, drift on exactly the shifted features.
        alice.create(drift_policy())
        quiet = waiting(loop, "DriftPolicy", POLICY,
                        evaluated_after(None, lambda o: condition(o, "DriftDetected").get("reason") == "NoDrift"),
                        40, "no drift on training-like traffic")  # fmt: skip
        assert status(quiet)["modelVersion"] == "iris-v1"
        assert status(quiet)["drifted"] is False
        assert status(quiet)["samples"] >= 200
        assert kube.list(API, "TrainingRun", NAMESPACE, label_selector=f"modelops.io/drift-policy={POLICY}") == []

        traffic.shift = {SHIFTED[0]: 4.0, SHIFTED[1]: -1.5}
        previous = status(quiet)["lastEvaluation"]
        drifted = waiting(loop, "DriftPolicy", POLICY,
                          evaluated_after(previous, lambda o: drifted_features(o) == sorted(SHIFTED)),
                          40, f"drift on exactly {SHIFTED}")  # fmt: skip
        assert status(drifted)["drifted"] is True
        retrained = waiting(loop, "DriftPolicy", POLICY, lambda o: bool(status(o).get("retrains")), 30,
                            "the policy started a retrain")  # fmt: skip
        traffic.shift = {}
        runs = kube.list(API, "TrainingRun", NAMESPACE, label_selector=f"modelops.io/drift-policy={POLICY}")
        assert [r["metadata"]["name"] for r in runs] == [status(retrained)["retrains"][0]["name"]], runs
        retrain = runs[0]
        # Four eyes for what it registers: the run's creator is the operator, not a person.
        assert created_by(retrain) == operator
        assert retrain["spec"]["artifactStore"] == {"uri": "pvc://models/registry"}
        assert retrain["spec"]["estimator"]["params"] == v1["spec"]["lineage"]["params"]
        assert retrain["spec"]["estimator"]["params"]["max_depth"] == 3

        promoted = retrain_governed_and_promoted(loop, POLICY, retrain, traffic)
        analysis = {r["name"]: r for r in status(promoted).get("analysis") or []}
        assert analysis["error-rate"]["phase"] == "Successful", analysis
        assert analysis["error-rate"]["value"] == 0.0, analysis
        assert analysis["latency-p99"]["phase"] == "Successful", analysis


def retrain_governed_and_promoted(loop: Parts, policy: str, retrain: Obj, traffic: Traffic) -> Obj:
    """Steps 5-6: the policy's retrain trained to iris-v2, Staging, Production by four eyes, a canary
    analysed and promoted while ``traffic`` flows; the deployment once promoted."""
    kube, alice, bob, operator = loop.kube, loop.alice, loop.bob, loop.operator
    # --- 5. the retrain trains → iris-v2, which the policy asks Staging for, and gets it.
    done = train(loop, retrain["metadata"]["name"])
    assert status(done)["modelVersion"] == "iris-v2", status(done)
    v2 = waiting(loop, "ModelVersion", "iris-v2", lambda o: status(o).get("stage") == "Staging", 30,
                 "iris-v2 granted Staging (promoteTo)")  # fmt: skip
    assert v2["spec"]["stage"] == "Staging"
    assert created_by(v2) == operator
    # The policy asked for Staging, through the operator's own identity; no approval was needed.
    assert history(v2) == [("None", "Staging", operator)], status(v2)
    assert f"asked by {operator}" in status(v2)["history"][0]["reason"]
    record = waiting(loop, "DriftPolicy", policy,
                     lambda o: (status(o).get("retrains") or [{}])[0].get("stageRequested") == "Staging",
                     30, "the policy recorded its Staging request")["status"]["retrains"][0]  # fmt: skip
    assert record["modelVersion"] == "iris-v2"

    # --- 6. alice asks Production, bob approves → iris-v1 archived; canary, analysis, promotion.
    alice.patch(API, "ModelVersion", NAMESPACE, "iris-v2", {"spec": {"stage": "Production"}})
    waiting(loop, "ModelVersion", "iris-v2", lambda o: condition(o, "Approved").get("reason") == "AwaitingApproval",
            30, "iris-v2 held for approval")  # fmt: skip
    # v2 was trained by the operator, retraining alice's iris-v1: four eyes still keeps alice out.
    with pytest.raises(ApiError) as retrained_four_eyes:
        alice.patch(API, "ModelVersion", NAMESPACE, "iris-v2", APPROVE_PRODUCTION)
    assert "four eyes: alice created the TrainingRun" in retrained_four_eyes.value.body["message"]
    assert "retrained from" in retrained_four_eyes.value.body["message"]
    bob.patch(API, "ModelVersion", NAMESPACE, "iris-v2", APPROVE_PRODUCTION)
    v2 = waiting(loop, "ModelVersion", "iris-v2",
                 lambda o: status(o).get("stage") == "Production", 30, "iris-v2 granted Production")  # fmt: skip
    assert history(v2)[-1] == ("Staging", "Production", "bob")
    assert "archived iris-v1" in status(v2)["history"][-1]["reason"]
    v1 = kube.get(API, "ModelVersion", NAMESPACE, "iris-v1")
    assert status(v1)["stage"] == "Archived", status(v1)

    canary = waiting(loop, "ModelDeployment", DEPLOYMENT,
                     lambda o: status(o).get("canaryVersion") == "iris-v2", 30, "a canary of iris-v2")  # fmt: skip
    assert status(canary)["stableVersion"] == "iris-v1"
    Prometheus.wait(lambda: loop.server_versions().get(f"{DEPLOYMENT}-canary") == "iris-v2",
                    timeout=30 * loop.patience,
                    what="the canary pod running iris-v2")  # fmt: skip
    ended = waiting(loop, "ModelDeployment", DEPLOYMENT,
                    lambda o: phase_is("RolledBack")(o) or (status(o).get("stableVersion") == "iris-v2"
                                                             and phase_is("Healthy")(o)),
                    90, "the canary of iris-v2 promoted or rolled back")  # fmt: skip
    assert status(ended)["phase"] == "Healthy", f"the canary was not promoted: {status(ended)['message']}"
    promoted = ended
    rollouts = [(h["version"], h.get("fromVersion"), h["result"]) for h in status(promoted)["history"]]
    assert rollouts == [("iris-v2", "iris-v1", "Promoted"), ("iris-v1", None, "Deployed")], rollouts  # newest first
    Prometheus.wait(lambda: loop.server_versions() == {f"{DEPLOYMENT}-stable": "iris-v2"},
                    timeout=30 * loop.patience,
                    what="only the stable pod, on iris-v2, left running")  # fmt: skip
    failing = {url: codes for url, codes in traffic.codes.items() if set(codes) - {200}}
    assert failing == {}, f"non-200 answers from the servers: {traffic.codes}"
    return promoted
