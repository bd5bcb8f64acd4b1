"""An operator process killed mid-rollout resumes at the same step: the state is in status.

Given a canary paused on a timed step, when the operator process is killed (SIGKILL, no
goodbye) and a new one starts, then status.step and the weights are unchanged, the pause
ends at the time stepStartedAt set (not restarted), and the rollout continues to promotion.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from kubeemu.client import KubeClient
from rollout.kit import API, NAMESPACE, deployment, model_version, replicas, status_is

REPO = Path(__file__).resolve().parents[2]


def operator_process(kubeconfig: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONPATH": str(REPO / "operator")}
    command = [sys.executable, "-m", "modelops", "operator", "--namespace", NAMESPACE, "--standalone"]
    with log.open("w") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT)


def test_killed_operator_resumes_the_rollout_at_the_same_step(
    cluster: KubeClient, kubeconfig: Path, tmp_path: Path
) -> None:
    first = operator_process(kubeconfig, tmp_path / "first.log")
    try:
        cluster.create(model_version(1))
        cluster.create(model_version(2))
        steps = [{"setWeight": 25}, {"pause": {"duration": "6s"}}, {"setWeight": 50}, {"pause": {}}]
        cluster.create(deployment(modelVersion="iris-v1", rollout={"steps": steps}))
        cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", status_is(phase="Healthy"), timeout=60)
        cluster.patch(API, "ModelDeployment", NAMESPACE, "iris", {"spec": {"modelVersion": "iris-v2"}})
        paused = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", status_is(phase="Paused", step=1),
                                  timeout=60)
        assert paused is not None
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    before: dict[str, Any] = dict(cluster.get(API, "ModelDeployment", NAMESPACE, "iris")["status"])
    assert (before["step"], before["canaryWeight"], before["canaryVersion"]) == (1, 25, "iris-v2")
    started_at = before["stepStartedAt"]

    second = operator_process(kubeconfig, tmp_path / "second.log")
    try:
        # The new process picks the rollout up where it was: same step, same weights, same start.
        resumed = cluster.wait_for(
            API, "ModelDeployment", NAMESPACE, "iris",
            lambda o: bool(o) and (o["status"].get("step") != 1 or "Resum" in (tmp_path / "second.log").read_text()),
            timeout=60,
        )
        assert resumed is not None
        status = cluster.get(API, "ModelDeployment", NAMESPACE, "iris")["status"]
        if status["step"] == 1:
            assert status["stepStartedAt"] == started_at
            assert status["canaryWeight"] == 25
        assert replicas(cluster, "iris-canary") in (1, 2)
        # The timed pause ends and the canary moves on to 50%, then waits for a promote.
        moved = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris",
                                 status_is(phase="Paused", step=3, canaryWeight=50), timeout=60)
        assert moved is not None
        assert moved["status"]["canaryVersion"] == "iris-v2"
        assert moved["status"]["stableVersion"] == "iris-v1"
        assert [h["result"] for h in moved["status"]["history"]] == ["Deployed"]  # one rollout, not restarted
        cluster.wait_for("apps/v1", "Deployment", NAMESPACE, "iris-canary",
                         lambda o: o is not None and o["spec"]["replicas"] == 2, timeout=30)
        log = (tmp_path / "second.log").read_text()
        assert "Traceback" not in log
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(timeout=30)
        except subprocess.TimeoutExpired:
            second.kill()
            second.wait()
