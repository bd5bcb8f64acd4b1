"""An operator process killed mid-rollout resumes at the same step: the state is in status.

Given a canary paused on an untimed step (it waits for a promote, so nothing may move on its
own), when the operator process is killed (SIGKILL, no goodbye) and a new one starts, then once
the new process has provably reconciled the object (an annotation it must handle, recorded by
Kopf in status.kopf.lastHandledConfiguration only after the reconcile succeeded) status.step,
stepStartedAt, the weights and the children are unchanged — not restarted — and a promote by
annotation continues that same rollout to promotion.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from kubeemu.client import KubeClient
from operatorkit import operator_command
from rollout.kit import API, NAMESPACE, available, deployment, events_for, model_version, replicas, status_is

REPO = Path(__file__).resolve().parents[2]


def operator_process(kubeconfig: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONPATH": str(REPO / "operator")}
    command = operator_command("--namespace", NAMESPACE, "--standalone")
    with log.open("w") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def handled(obj: dict[str, Any] | None, marker: str) -> bool:
    """Kopf has finished handling a version of the object that carries ``marker``."""
    kopf = ((obj or {}).get("status") or {}).get("kopf") or {}
    return marker in json.dumps(kopf.get("lastHandledConfiguration"))


def wait_until(predicate: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.05)  # polling interval; the deadline bounds the wait


def test_killed_operator_resumes_the_rollout_at_the_same_step(
    cluster: KubeClient, kubeconfig: Path, tmp_path: Path
) -> None:
    first = operator_process(kubeconfig, tmp_path / "first.log")
    try:
        cluster.create(model_version(1))
        cluster.create(model_version(2))
        steps = [{"setWeight": 25}, {"pause": {}}, {"setWeight": 75}]
        cluster.create(deployment(modelVersion="iris-v1", rollout={"steps": steps}))
        cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", status_is(phase="Healthy"), timeout=60)
        cluster.patch(API, "ModelDeployment", NAMESPACE, "iris", {"spec": {"modelVersion": "iris-v2"}})
        paused = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", status_is(phase="Paused", step=1),
                                  timeout=60)
        assert paused is not None
        # Children converged to the paused step: canary ceil(4 * 25%) = 1, stable ceil(4 * 75%) = 3.
        cluster.wait_for("apps/v1", "Deployment", NAMESPACE, "iris-canary",
                         lambda o: o is not None and o["spec"]["replicas"] == 1 and available(o), timeout=30)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    before: dict[str, Any] = dict(cluster.get(API, "ModelDeployment", NAMESPACE, "iris")["status"])
    assert (before["step"], before["canaryWeight"], before["canaryVersion"]) == (1, 25, "iris-v2")
    started_at = before["stepStartedAt"]
    # A step restarted by the new process would get a later stepStartedAt (to the second): let the
    # clock pass the recorded one first, so an unchanged value proves it was kept.
    recorded = datetime.datetime.fromisoformat(started_at.replace("Z", "+00:00"))
    wait_until(lambda: datetime.datetime.now(datetime.UTC) >= recorded + datetime.timedelta(seconds=1.5),
               "the clock to pass stepStartedAt")

    log = tmp_path / "second.log"
    second = operator_process(kubeconfig, log)
    try:
        # The clear signal: an annotation change only the new process can handle (the first one is
        # dead); Kopf stores it as handled once the reconcile has succeeded on this object.
        poke = "restart-check"
        cluster.patch(API, "ModelDeployment", NAMESPACE, "iris",
                      {"metadata": {"annotations": {"test.modelops.io/poke": poke}}})
        resumed = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", lambda o: handled(o, poke), timeout=60)
        assert resumed is not None
        status = resumed["status"]
        assert status["phase"] == "Paused"
        assert (status["step"], status["stepStartedAt"], status["canaryWeight"]) == (1, started_at, 25)
        assert (status["canaryVersion"], status["stableVersion"]) == ("iris-v2", "iris-v1")
        assert status.get("lastAction") is None
        assert (replicas(cluster, "iris-canary"), replicas(cluster, "iris-stable")) == (1, 3)
        assert [e["reason"] for e in events_for(cluster, "iris")].count("RolloutStarted") == 1

        # A promote continues this rollout (the one started before the restart) to the end.
        cluster.patch(API, "ModelDeployment", NAMESPACE, "iris",
                      {"metadata": {"annotations": {"modelops.io/action": "promote/after-restart"}}})
        done = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris",
                                status_is(phase="Healthy", stableVersion="iris-v2"), timeout=60)
        assert done is not None
        assert done["status"]["lastAction"] == "promote/after-restart"
        assert [h["result"] for h in done["status"]["history"]] == ["Promoted", "Deployed"]  # one rollout
        assert done["status"]["previousStableVersions"] == ["iris-v1"]
        cluster.wait_for("apps/v1", "Deployment", NAMESPACE, "iris-canary",
                         lambda o: o is not None and o["spec"]["replicas"] == 0, timeout=30)
        text = log.read_text()
        assert "Traceback" not in text
        assert "Resuming is processed" in text
    finally:
        stop(second)
