"""One Production version per model under races: stale reconciles, many grants at once, two operators.

Given a policy under which every version asking for Production is granted at once (so grants
race as often as they can), when rounds of grants, deletions and re-creations under the same
names hit the operator — with a reconcile held for two seconds between reading a version and
writing it, and with two operators acting at once (what Kopf peering allows for a moment, see
docs/governance.md) — then after every round exactly one version of the model holds Production,
every other one that held it is Archived with the history saying why, and no reconcile ever wrote
over a newer state (each governed write is a compare-and-swap on the resourceVersion).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner

from kubeemu.client import ApiError, KubeClient
from modelops.controller import handlers, modelversions
from modelops.logic import conditions as cond
from modelops.logic import governance as gov
from modelops.logic import policy as policies
from operatorkit import NAMESPACE

pytestmark = pytest.mark.timeout(600)
API = "modelops.io/v1alpha1"
REPO = Path(__file__).resolve().parents[2]
OPEN_POLICY = {"stages": {"Production": {"approvals": 0, "fourEyes": False}}}
OPEN = policies.parse(OPEN_POLICY)
SETTLE = 90  # seconds a round may take to settle on a busy machine


def version(name: str, number: int, digest: str) -> dict[str, Any]:
    return {
        "apiVersion": API, "kind": "ModelVersion",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"model": "iris", "version": number, "stage": "Production",
                 "artifact": {"uri": f"s3://models/iris/{name}/{digest[:8]}.joblib", "sha256": digest}},
    }  # fmt: skip


def stages(cluster: KubeClient) -> dict[str, dict[str, Any]]:
    return {v["metadata"]["name"]: v for v in cluster.list(API, "ModelVersion", NAMESPACE)}


def settled(cluster: KubeClient) -> tuple[bool, dict[str, dict[str, Any]]]:
    """Every version reconciled at its generation with a stage granted, and at most one in Production."""
    found = stages(cluster)
    seen = [str((v.get("status") or {}).get("stage")) for v in found.values()]
    reconciled = all(
        (v.get("status") or {}).get("observedGeneration") == v["metadata"]["generation"] for v in found.values()
    )
    granted = all(stage in ("Production", "Archived") for stage in seen)
    return reconciled and granted and seen.count("Production") <= 1, found


def check_round(cluster: KubeClient, label: str) -> int:
    """Wait (bounded) for the round to settle, two versions left in Production never settle; how many hold it.

    None is possible: a version asking Production again (this policy needs no approval) may archive the
    others for its grant and be deleted by the next round before it writes its own.
    """
    limit = time.monotonic() + SETTLE
    ok, found = settled(cluster)
    while not ok:
        shown = {name: (v.get("status") or {}).get("stage") for name, v in found.items()}
        assert time.monotonic() < limit, f"{label}: not settled with one Production version: {shown}"
        time.sleep(0.1)  # polling interval; the deadline bounds the wait
        ok, found = settled(cluster)
    # In the same reading: every version archived was in Production, and its history says so last.
    for name, obj in found.items():
        history = obj["status"].get("history") or []
        if obj["status"]["stage"] == "Archived":
            assert (history[-1]["from"], history[-1]["to"]) == ("Production", "Archived"), (label, name, history)
        else:
            assert history[-1]["to"] == "Production", (label, name, history)
    return [obj["status"]["stage"] for obj in found.values()].count("Production")


def most_in_production_at_once(cluster: KubeClient, since: str) -> tuple[int, list[str]]:
    """Replay every ModelVersion event since ``since`` (the watch history, in resourceVersion order): the
    most versions holding Production in any one state of the namespace, and the first such state."""
    holding: dict[str, str] = {}  # uid → name, of the versions in Production
    worst: tuple[int, list[str]] = (0, [])
    for event in cluster.watch(API, "ModelVersion", NAMESPACE, resource_version=since, timeout_seconds=1):
        obj = event["object"]
        uid = obj["metadata"]["uid"]
        if event["type"] != "DELETED" and (obj.get("status") or {}).get("stage") == "Production":
            holding[uid] = obj["metadata"]["name"]
        else:
            holding.pop(uid, None)
        if len(holding) > worst[0]:
            worst = (len(holding), sorted(holding.values()))
    return worst


def rounds(cluster: KubeClient, count: int, seed: int) -> None:
    """Rounds of grants, deletions and re-creations under an existing name, each checked when settled."""
    rng = random.Random(seed)
    number = 0
    alive: list[str] = []
    holders: list[int] = []
    for index in range(count):
        doomed = rng.sample(alive, k=min(len(alive), 1))
        reborn = rng.sample([n for n in alive if n not in doomed], k=min(len(alive) - len(doomed), 1))
        for name in doomed + reborn:
            cluster.delete(API, "ModelVersion", NAMESPACE, name)
            alive.remove(name)
        for name in reborn:  # the same name, another artifact: a new object
            cluster.wait_for(API, "ModelVersion", NAMESPACE, name, lambda o: o is None, timeout=30)
            cluster.create(version(name, 1000 + index, f"{rng.getrandbits(256):064x}"))
            alive.append(name)
        for _ in range(3):  # three new versions ask for Production at once
            number += 1
            name = f"iris-v{number}"
            cluster.create(version(name, number, f"{rng.getrandbits(256):064x}"))
            alive.append(name)
        holders.append(check_round(cluster, f"round {index}"))
    # Not vacuous: the rounds did end with a version in Production (see check_round for none).
    assert holders.count(1) >= count // 2, holders


@contextlib.contextmanager
def operator() -> Iterator[KopfRunner]:
    """The operator in a thread of this process (where a test can hold its reconciles)."""
    args = ["run", "--standalone", "--all-namespaces", "--verbose"]
    with KopfRunner(args, registry=handlers.registry(policy=OPEN), timeout=60) as runner:
        yield runner
    assert runner.exception is None, runner.exception


@contextlib.contextmanager
def operator_processes(count: int, kubeconfig: Path, tmp_path: Path) -> Iterator[None]:
    """``count`` ``modelops operator`` processes acting at once (standalone: no peering between them)."""
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(yaml.safe_dump(OPEN_POLICY))
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONPATH": str(REPO / "operator")}
    command = [sys.executable, "-m", "modelops", "operator", "--namespace", NAMESPACE, "--standalone",
               "--policy", str(policy_file), "--webhook-port", "0", "--metrics-port", "0", "--liveness", ""]
    logs = [tmp_path / f"operator-{index}.log" for index in range(count)]
    processes = []
    for log in logs:
        with log.open("w") as handle:  # the child keeps its own copy of the descriptor
            processes.append(subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT))
    try:
        yield
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    for log in logs:
        text = log.read_text()
        at = text.find("Traceback")
        assert at < 0, text[max(0, at - 1500) : at + 3000]


@pytest.fixture
def slow_reconcile(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Hold every third reconcile of the in-process operator two seconds between reading and writing."""
    held: list[str] = []
    decide = modelversions.evaluate

    async def evaluate(spec: Any, body: Any, policy: Any, now: str) -> Any:
        name = body["metadata"]["name"]
        if len(held) % 3 == 0:
            held.append(name)
            await asyncio.sleep(2)
        else:
            held.append("")
        return await decide(spec, body, policy, now)

    monkeypatch.setattr(modelversions, "evaluate", evaluate)
    return held


def test_a_stale_reconcile_never_writes_over_a_newer_grant(
    cluster: KubeClient, operator_env: dict[str, str], slow_reconcile: list[str]
) -> None:
    since = cluster.list_object(API, "ModelVersion", NAMESPACE)["metadata"]["resourceVersion"]
    with operator():
        rounds(cluster, count=4, seed=12)
    assert any(slow_reconcile), "no reconcile was held: the test did not race"
    # One operator archives before it grants, and writes nothing it decided on a stale read:
    # no state of the namespace ever had two versions in Production, not even for a moment.
    most, names = most_in_production_at_once(cluster, since)
    assert most == 1, names


def test_two_operators_one_with_held_reconciles_end_every_round_with_one_production(
    cluster: KubeClient, operator_env: dict[str, str], kubeconfig: Path, tmp_path: Path, slow_reconcile: list[str]
) -> None:
    with operator_processes(1, kubeconfig, tmp_path), operator():
        rounds(cluster, count=6, seed=3)
    assert any(slow_reconcile), "no reconcile was held: the test did not race"


def test_two_operator_processes_end_every_round_with_one_production(
    cluster: KubeClient, kubeconfig: Path, tmp_path: Path
) -> None:
    with operator_processes(2, kubeconfig, tmp_path):
        rounds(cluster, count=8, seed=21)


def approved(obj: dict[str, Any], *users: str) -> dict[str, Any]:
    """``obj`` with Production approvals by ``users`` recorded now (as the mutating webhook would)."""
    records = [{"stage": "Production", "user": user, "at": cond.now_iso()} for user in users]
    obj["metadata"].setdefault("annotations", {})[gov.APPROVALS] = json.dumps(records)
    return obj


def test_a_reconcile_held_across_another_grant_does_not_bring_its_version_back(
    cluster: KubeClient, operator_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race of issue 12, made certain: v1's reconcile reads v1 in Production, then waits while v2 is
    granted and archives v1; what v1's reconcile decided is stale and must not be written."""
    release = threading.Event()
    held: list[str] = []
    decide = modelversions.evaluate

    async def evaluate(spec: Any, body: Any, policy: Any, now: str) -> Any:
        annotations = body["metadata"].get("annotations") or {}
        if body["metadata"]["name"] == "iris-v1" and "carol" in annotations.get(gov.APPROVALS, ""):
            held.append(body["metadata"]["resourceVersion"])
            await asyncio.to_thread(release.wait, SETTLE)  # the test releases it; the timeout bounds the hold
        return await decide(spec, body, policy, now)

    monkeypatch.setattr(modelversions, "evaluate", evaluate)
    one_approval = policies.parse({"stages": {"Production": {"approvals": 1, "fourEyes": False}}})
    since = cluster.list_object(API, "ModelVersion", NAMESPACE)["metadata"]["resourceVersion"]
    args = ["run", "--standalone", "--all-namespaces", "--verbose"]
    with KopfRunner(args, registry=handlers.registry(policy=one_approval), timeout=60) as runner:
        cluster.create(approved(version("iris-v1", 1, "a" * 64), "bob"))
        assert check_round(cluster, "v1 granted") == 1
        v1 = cluster.get(API, "ModelVersion", NAMESPACE, "iris-v1")
        cluster.patch(API, "ModelVersion", NAMESPACE, "iris-v1",
                      {"metadata": {"annotations": approved(v1, "bob", "carol")["metadata"]["annotations"]}})
        cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v1", lambda _: bool(held), timeout=SETTLE)
        cluster.create(approved(version("iris-v2", 2, "b" * 64), "bob"))
        cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v1",
                         lambda o: (o or {}).get("status", {}).get("stage") == "Archived", timeout=SETTLE)
        release.set()
        assert check_round(cluster, "v2 granted while v1's reconcile was held") == 1
    assert runner.exception is None, runner.exception
    versions = stages(cluster)
    assert versions["iris-v1"]["status"]["stage"] == "Archived"
    assert versions["iris-v2"]["status"]["stage"] == "Production"
    # The held reconcile decided again on what it read after its 409: the approvals it brought are
    # older than the archive, so they do not bring v1 back.
    assert "AwaitingApproval" in json.dumps(versions["iris-v1"]["status"]["conditions"])
    most, names = most_in_production_at_once(cluster, since)
    assert most == 1, names


def test_a_grant_checks_what_it_read(cluster: KubeClient, operator_env: dict[str, str]) -> None:
    """The status write carries the resourceVersion read: a hand-made stale write is refused too."""
    with operator():
        cluster.create(version("iris-v1", 1, "a" * 64))
        assert check_round(cluster, "first grant") == 1
        stale = cluster.get(API, "ModelVersion", NAMESPACE, "iris-v1")
        cluster.create(version("iris-v2", 2, "b" * 64))
        assert check_round(cluster, "second grant") == 1
        with pytest.raises(ApiError) as conflict:
            cluster.patch_status(API, "ModelVersion", NAMESPACE, "iris-v1", {
                "metadata": {"resourceVersion": stale["metadata"]["resourceVersion"]},
                "status": {"stage": "Production"},
            })  # fmt: skip
        assert conflict.value.status == 409
    assert stages(cluster)["iris-v1"]["status"]["stage"] == "Archived"
