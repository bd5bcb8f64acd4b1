"""`modelops operator` as a real process: kubeconfig, liveness, metrics, peering, shutdown."""

from __future__ import annotations

import getpass
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from kubeemu import Emulator
from kubeemu.client import KubeClient
from operatorkit import free_port, operator_command

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "ml"
API = "modelops.io/v1alpha1"
MODEL_VERSION: dict[str, Any] = {
    "apiVersion": API,
    "kind": "ModelVersion",
    "metadata": {"name": "iris-v1", "namespace": NAMESPACE},
    "spec": {"model": "iris", "version": 1, "stage": "Staging",
             "artifact": {"uri": "pvc://models/iris/model.skops", "sha256": "a" * 64},
             "metrics": {"accuracy": 0.96, "f1": 0.955}},
}


def wait_until(check: Any, timeout: float, what: Any) -> Any:
    """Poll check() until it is truthy; on timeout, fail with what() (evaluated then)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what()}")
        time.sleep(0.1)  # polling interval; the deadline bounds the wait


class OperatorProcess:
    """One `python -m modelops operator` with its log in a file."""

    def __init__(self, kubeconfig: Path, log: Path, *extra: str) -> None:
        self.health_port, self.metrics_port = free_port(), free_port()
        self.log = log
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONPATH": str(REPO / "operator")}
        command = operator_command(
            "--namespace", NAMESPACE, *extra, health_port=self.health_port, metrics_port=self.metrics_port
        )
        self.handle = log.open("w")
        self.process = subprocess.Popen(command, env=env, stdout=self.handle, stderr=subprocess.STDOUT)

    def healthy(self) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def metrics(self) -> str:
        return requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.handle.close()
        return int(self.process.returncode)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[OperatorProcess]]:
    started: list[OperatorProcess] = []
    yield started
    for process in started:
        process.stop()


def reconciled(obj: dict[str, Any] | None) -> bool:
    return bool(obj) and obj["status"].get("observedGeneration") == obj["metadata"]["generation"]


def reconciles_a_version(cluster: KubeClient, operator: OperatorProcess) -> None:
    """The operator comes up healthy and grants a new version Staging."""
    wait_until(operator.healthy, 60, lambda: f"/healthz; log:\n{operator.output()}")
    cluster.create(MODEL_VERSION)
    mv = cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v1", reconciled, timeout=60)
    assert mv is not None
    assert mv["status"]["stage"] == "Staging"


def test_operator_process_reconciles_and_serves_health_and_metrics(
    cluster: KubeClient, kubeconfig: Path, tmp_path: Path, processes: list[OperatorProcess]
) -> None:
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log", "--standalone")
    processes.append(operator)
    reconciles_a_version(cluster, operator)
    metrics = operator.metrics()
    assert 'modelops_operator_reconciles_total{kind="ModelVersion",result="ok"} 1.0' in metrics
    assert 'modelops_operator_reconcile_duration_seconds_count{kind="ModelVersion"} 1.0' in metrics
    where = f'metric="accuracy",model="iris",namespace="{NAMESPACE}",version="iris-v1"'
    assert f"modelops_version_training_metric{{{where}}} 0.96" in metrics  # the quality dashboard's "training"
    assert operator.stop() == 0
    assert "Traceback" not in operator.output()


def test_routine_timer_runs_are_debug_lines_and_post_no_events(
    cluster: KubeClient, kubeconfig: Path, tmp_path: Path, processes: list[OperatorProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # Two timers on every ModelDeployment, each run every 0.3 s; a Secret of the feedback keys' name that
    # is not the operator's makes one of them warn on every run (our own message, which must stay WARNING).
    monkeypatch.setenv("MODELOPS_QUALITY_SECONDS", "0.3")
    monkeypatch.setenv("MODELOPS_FEEDBACK_KEY_CHECK_SECONDS", "0.3")
    cluster.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "modelops-feedback-keys",
                    "namespace": NAMESPACE}, "data": {}})  # fmt: skip
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log", "--standalone", "--verbose")
    processes.append(operator)
    wait_until(operator.healthy, 60, lambda: f"/healthz; log:\n{operator.output()}")
    names = ["iris", "wine", "digits"]
    for name in names:  # an invalid spec (no version to serve): the reconcile posts one Event, the timers run
        cluster.create({"apiVersion": API, "kind": "ModelDeployment",
                        "metadata": {"name": name, "namespace": NAMESPACE}, "spec": {"model": name, "replicas": 1}})

    def count(pattern: str) -> int:
        return len(re.findall(pattern, operator.output(), re.MULTILINE))

    def timer_runs() -> int:
        return min(count(r" DEBUG kopf\.objects: Timer 'live-quality' succeeded\.$"),
                   count(r" DEBUG kopf\.objects: Timer 'feedback-keys' succeeded\.$"),
                   count(r" WARNING kopf\.objects: feedback keys: "))  # fmt: skip

    def events() -> list[dict[str, Any]]:
        return cluster.list("v1", "Event", NAMESPACE)

    runs = len(names) * 4  # every object's timers ran several times
    wait_until(lambda: timer_runs() >= runs and len(events()) >= len(names), 90,
               lambda: f"{runs} runs of each timer and the reconciles' Events; log:\n{operator.output()[-5000:]}")
    posted = len(events())
    # As many runs again: the Events posted stay what the reconciles posted, whatever the timers log.
    wait_until(lambda: timer_runs() >= 2 * runs, 90, lambda: f"{2 * runs} runs of each timer")
    assert len(events()) == posted, [e["message"] for e in events()]
    assert {e["reason"] for e in events()} == {"InvalidSpec"}
    assert operator.stop() == 0
    text = operator.output()
    assert not re.findall(r" INFO kopf\.objects: \w+ '[^']*' succeeded\.$", text, re.MULTILINE)
    assert "Traceback" not in text


def test_only_the_highest_priority_replica_acts(
    cluster: KubeClient, emulator: Emulator, kubeconfig: Path, tmp_path: Path, processes: list[OperatorProcess]
) -> None:
    emulator.register_builtin_extras()
    cluster.create({"apiVersion": "kopf.dev/v1", "kind": "KopfPeering",
                    "metadata": {"name": "modelops-operator", "namespace": NAMESPACE}})
    low = OperatorProcess(kubeconfig, tmp_path / "low.log", "--priority", "10")
    high = OperatorProcess(kubeconfig, tmp_path / "high.log", "--priority", "20")
    processes.extend([low, high])
    # Every replica starts paused until it has read the peering object. The high-priority one
    # then resumes; the low-priority one stays paused (it logs "Pausing" only if it had seen
    # itself alone first, so its silence is what to check).
    wait_until(lambda: "Resuming operations after the pause" in high.output(), 60,
               lambda: f"the high-priority replica to become active; its log:\n{high.output()}")
    cluster.create(MODEL_VERSION)
    assert cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v1", reconciled, timeout=60)
    assert "Creation is processed" in high.output()
    assert "Creation is processed" not in low.output()
    assert "Resuming operations" not in low.output().split("Pausing operations")[-1]

    # When the active replica goes away, the other one takes over.
    resumed_before = low.output().count("Resuming operations after the pause")
    assert high.stop() == 0
    wait_until(lambda: low.output().count("Resuming operations after the pause") > resumed_before, 90,
               lambda: f"the low-priority replica to resume; its log:\n{low.output()}")
    cluster.patch(API, "ModelVersion", NAMESPACE, "iris-v1", {"spec": {"stage": "Archived"}})
    mv = cluster.wait_for(
        API, "ModelVersion", NAMESPACE, "iris-v1",
        lambda o: reconciled(o) and o["status"]["stage"] == "Archived", timeout=60,
    )
    assert mv is not None


def test_peering_identity_is_the_pod_name_and_needs_no_user_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenShift's restricted policy runs the pod as a uid /etc/passwd does not know: Kopf's own
    guess of the identity (getpass.getuser()) raises there; ours never asks when the pod is named."""
    from modelops.controller import run

    monkeypatch.delenv("POD_ID", raising=False)
    monkeypatch.setenv("POD_NAME", "modelops-operator-5d8f7-x2x9q")
    assert run.identity() == "modelops-operator-5d8f7-x2x9q"

    def unknown_uid() -> str:
        raise KeyError(f"getpwuid(): uid not found: {os.getuid()}")

    monkeypatch.delenv("POD_NAME")
    monkeypatch.setattr(getpass, "getuser", unknown_uid)
    assert run.identity().startswith(f"uid{os.getuid()}@{socket.gethostname()}/")


def test_kubeconfig_and_context_flags_choose_the_credentials(
    cluster: KubeClient, kubeconfig: Path, tmp_path: Path, processes: list[OperatorProcess]
) -> None:
    """`--kubeconfig F --context C`: that file alone and that context, over $KUBECONFIG and the file's
    own current context (both point at nothing here), as kubectl reads them."""
    import yaml

    config = yaml.safe_load(kubeconfig.read_text())
    good = config["contexts"][0]
    config["clusters"].append({"name": "nowhere", "cluster": {"server": "http://127.0.0.1:1"}})
    config["contexts"] = [
        {"name": "chosen", "context": dict(good["context"])},
        {"name": "broken", "context": {**good["context"], "cluster": "nowhere"}},
    ]
    config["current-context"] = "broken"
    chosen = tmp_path / "chosen"
    chosen.write_text(yaml.safe_dump(config))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text(yaml.safe_dump({**config, "contexts": config["contexts"][1:]}))

    operator = OperatorProcess(elsewhere, tmp_path / "operator.log", "--standalone",
                               "--kubeconfig", str(chosen), "--context", "chosen")  # fmt: skip
    processes.append(operator)
    reconciles_a_version(cluster, operator)
    assert "127.0.0.1:1" not in operator.output()

    # A context the file does not have: one line, exit 1, before Kopf starts.
    missing = subprocess.run(
        operator_command("--standalone", "--kubeconfig", str(chosen), "--context", "nope"),
        env={**os.environ, "PYTHONPATH": str(REPO / "operator")}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert missing.returncode == 1, missing.stderr
    assert f"kubeconfig {chosen} has no context 'nope'" in missing.stderr
    assert "Traceback" not in missing.stderr
