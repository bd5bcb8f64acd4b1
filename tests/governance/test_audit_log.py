"""The audit log of a real ``modelops operator`` process: every governance transition as one JSON line.

Given the operator as a process with its webhooks registered in the emulator, when alice asks for
stages, bob approves, a second version supersedes the first and a canary's rejection withdraws
the second from Production, then the process's log holds one JSON record per request, approval,
grant, archive and rejection — no more, though the versions reconcile many times — with who, when
and the evidence; and ``kubectl modelops audit`` assembles the same trail from the objects.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from governance.admissionkit import NAMESPACE, POLICY_DATA, Webhooks, free_port, wait_until_serving
from kubeemu.client import ApiError, KubeClient
from modelops.logic import audit
from modelops.logic import governance as gov
from modelops.plugin import cli
from operatorkit import REPO, operator_command

pytestmark = pytest.mark.timeout(240)
API = "modelops.io/v1alpha1"


def version(number: int) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ModelVersion",
        "metadata": {"name": f"iris-v{number}", "namespace": NAMESPACE},
        "spec": {
            "model": "iris", "version": number, "stage": "Staging", "metrics": {"accuracy": 0.95},
            "artifact": {"uri": f"s3://models/iris/v{number}/model.skops", "sha256": f"{number:x}" * 64},
        },
    }  # fmt: skip


@pytest.fixture
def operator_process(
    cluster: KubeClient, kubeconfig: Path, certs: tuple[bytes, Path, Path], tmp_path: Path
) -> Iterator[tuple[Webhooks, Path]]:
    """``modelops operator`` as a process, with the governance policy and its webhooks; its log file."""
    ca_pem, ca_path, cert_dir = certs
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(POLICY_DATA))
    port = free_port()
    command = operator_command(
        "--namespace", NAMESPACE, "--standalone", "--policy", str(policy),
        "--webhook-port", str(port), "--webhook-cert-dir", str(cert_dir), "--webhook-host", "127.0.0.1",
    )  # fmt: skip
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONPATH": str(REPO / "operator")}
    log = tmp_path / "operator.log"
    with log.open("w") as handle:
        process = subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT)
        try:
            url = f"https://127.0.0.1:{port}"
            wait_until_serving(url, ca_path, timeout=120)
            yield Webhooks(url=url, ca_pem=ca_pem, ca_path=ca_path, runner=None), log
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def records(log: Path) -> list[dict[str, Any]]:
    """The audit records in the log: the lines that are JSON objects of the audit schema."""
    found = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            data = json.loads(line)  # an audit line is whole JSON, or this fails
            if data.get("audit") == audit.SCHEMA:
                found.append(data)
    return found


def stage_is(stage: str) -> Any:
    return lambda obj: ((obj or {}).get("status") or {}).get("stage") == stage


def observed(generation: int) -> Any:
    def check(obj: dict[str, Any] | None) -> bool:
        meta, status = (obj or {}).get("metadata") or {}, (obj or {}).get("status") or {}
        return meta.get("generation") == generation and status.get("observedGeneration") == generation

    return check


def test_every_transition_is_one_json_line_in_the_operators_log(
    operator_process: tuple[Webhooks, Path], cluster: KubeClient, approvers: KubeClient,
    users: dict[str, KubeClient], kubeconfig: Path, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    webhooks, log = operator_process
    webhooks.register_configurations(cluster)
    alice, bob = users["alice"], users["bob"]
    approve = {"metadata": {"annotations": {gov.APPROVE: "Production"}}}

    for number in (1, 2):
        name = f"iris-v{number}"
        alice.create(version(number))
        cluster.wait_for(API, "ModelVersion", NAMESPACE, name, stage_is("Staging"), timeout=60)
        alice.patch(API, "ModelVersion", NAMESPACE, name, {"spec": {"stage": "Production"}})
        cluster.wait_for(API, "ModelVersion", NAMESPACE, name, observed(2), timeout=60)
        bob.patch(API, "ModelVersion", NAMESPACE, name, approve)
        cluster.wait_for(API, "ModelVersion", NAMESPACE, name, stage_is("Production"), timeout=60)
    cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v1", stage_is("Archived"), timeout=60)

    # A canary of v2 failed: the rollout records it (as the operator, here by hand), and the grant goes.
    # Its time is after the grant's (which has whole seconds, as the one just made may be this second).
    v2 = cluster.get(API, "ModelVersion", NAMESPACE, "iris-v2")
    entered = datetime.datetime.fromisoformat(v2["status"]["history"][-1]["at"].replace("Z", "+00:00"))
    now = (max(entered, datetime.datetime.now(datetime.UTC)) + datetime.timedelta(seconds=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    rejection = {"deployment": f"{NAMESPACE}/iris", "metric": "error-rate", "value": 0.3, "at": now}
    cluster.patch_status(API, "ModelVersion", NAMESPACE, "iris-v2", {"status": {"rejected": rejection}})
    # The rollout then asks the version to reconcile in-process; from outside, a touch of its metadata does.
    cluster.patch(API, "ModelVersion", NAMESPACE, "iris-v2", {"metadata": {"annotations": {"example.com/nudge": now}}})
    cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v2", stage_is("Archived"), timeout=60)

    def trail_of(name: str) -> list[tuple[Any, ...]]:
        return [(r["event"], r["by"], r.get("stage") or r.get("to")) for r in records(log) if r["name"] == name]

    staging = [("requested", "alice", "Staging"), ("granted", "alice", "Staging")]
    production = [("requested", "alice", "Production"), ("approved", "bob", "Production"),
                  ("granted", "bob", "Production")]  # fmt: skip
    archived = [("archived", gov.OPERATOR_IDENTITY, "Archived")]
    # Each record is logged just after the write the waits above saw: wait for the log to catch up.
    expected = {"iris-v1": staging + production + archived,
                "iris-v2": staging + production + [("rejected", gov.OPERATOR_IDENTITY, "Archived")]}
    deadline = time.monotonic() + 60
    while any(trail_of(name) != trail for name, trail in expected.items()) and time.monotonic() < deadline:
        time.sleep(0.2)  # polling the log file; the deadline bounds the wait
    assert {name: trail_of(name) for name in expected} == expected

    every = records(log)
    assert len({r["id"] for r in every}) == len(every)
    v1_granted = next(
        r for r in every if r["name"] == "iris-v1" and r["event"] == "granted" and r["to"] == "Production"
    )
    assert v1_granted["evidence"]["gates"] == [
        {"metric": "accuracy", "op": ">=", "threshold": 0.9, "value": 0.95, "passed": True, "source": "policy"}
    ]
    assert [a["user"] for a in v1_granted["evidence"]["approvals"]] == ["bob"]
    assert (v1_granted["model"], v1_granted["version"], v1_granted["sha256"]) == ("iris", 1, "1" * 64)
    approved = next(r for r in every if r["name"] == "iris-v1" and r["event"] == "approved")
    assert approved["evidence"]["uid"] == "uid-bob"
    superseded = next(r for r in every if r["name"] == "iris-v1" and r["event"] == "archived")
    assert "superseded: iris-v2" in superseded["reason"]
    rejected = next(r for r in every if r["name"] == "iris-v2" and r["event"] == "rejected")
    assert rejected["evidence"]["rejection"]["metric"] == "error-rate"

    # The plugin assembles the same trail from the objects (the log's rollback aside: written by a deployment).
    assert cli.main(["--kubeconfig", str(kubeconfig), "-n", NAMESPACE, "-o", "json", "audit", "iris"]) == 0
    assembled = json.loads(capsys.readouterr().out)["events"]
    logged = [r for r in every if r["event"] != "requested"]
    # The same records (ids), ordered by time; within one second the log's order is the writes'.
    assert sorted(r["id"] for r in assembled if r["event"] not in ("requested", "rolledBack")) == sorted(
        r["id"] for r in logged
    )
    assert [r["at"] for r in assembled] == sorted(r["at"] for r in assembled)

    # v1 was in Production: deleting it needs the acknowledgement, and the delete is audited.
    with pytest.raises(ApiError) as refused:
        alice.delete(API, "ModelVersion", NAMESPACE, "iris-v1")
    assert "modelops.io/acknowledge-delete=iris-v1" in refused.value.body["message"]
    assert cluster.get(API, "ModelVersion", NAMESPACE, "iris-v1") is not None
    alice.patch(API, "ModelVersion", NAMESPACE, "iris-v1",
                {"metadata": {"annotations": {gov.ACKNOWLEDGE_DELETE: "iris-v1"}}})  # fmt: skip
    alice.delete(API, "ModelVersion", NAMESPACE, "iris-v1")
    cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v1", lambda obj: obj is None, timeout=60)
    deadline = time.monotonic() + 60
    while not [r for r in records(log) if r["event"] == "deleted"] and time.monotonic() < deadline:
        time.sleep(0.2)  # polling the log file; the deadline bounds the wait
    # The webhook may be asked twice for one delete (a client retrying under load): one fact, one id.
    deletes = [r for r in records(log) if r["event"] == "deleted"]
    assert len({r["id"] for r in deletes}) == 1, deletes
    deleted = deletes[0]
    assert (deleted["name"], deleted["by"], deleted["uid"]) == ("iris-v1", "alice", v1_granted["uid"])
    assert [h["to"] for h in deleted["evidence"]["history"]] == ["Staging", "Production", "Archived"]
    # The log still holds the whole trail of the deleted version; the objects no longer do.
    assert trail_of("iris-v1") == expected["iris-v1"] + [("deleted", "alice", None)]
