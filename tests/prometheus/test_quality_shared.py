"""The live-quality timers of many deployments share their reads: one query per namespace, window and interval.

A real Prometheus records constant ``modelops_quality:*`` series for several deployments of two namespaces
(recording rules on ``vector()``); the timers of the deployments run together, as Kopf runs them, and
Prometheus's own request counter says how many queries reached it. Each deployment's status must be what
its own query (``qualityrules.status_query``, what every timer asked before) answers. An address that does
not resolve, or refuses the connection, is tried once per interval by all the timers together, and logged once.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kopf
import pytest
import requests
import yaml
from aiohttp import web

from modelops.controller import prometheus as prom
from modelops.controller import quality, runtime
from modelops.logic import qualityrules as q
from promkit import Prometheus, free_port

INTERVAL = 60.0

# (namespace, deployment, model, versions shown): the deployments whose series the rules record.
DEPLOYMENTS = [
    ("ml", "shop", "churn", {"v1": "stable", "v2": "canary"}),
    ("ml", "shop-eu", "churn", {"v1": "stable"}),
    ("ml", "shop-us", "churn", {"v3": "stable"}),
    ("ml", "fraud", "fraud", {"f1": "stable", "f2": "canary"}),
    ("ml", "fraud-b", "fraud", {"f1": "stable"}),
    ("ml", "quiet", "churn", {"v1": "stable"}),  # no series at all: entries without figures
    ("ml-2", "shop", "churn", {"v1": "stable"}),
    ("ml-2", "fraud", "fraud", {"f1": "stable"}),
]


class Clock:
    """Monotonic seconds the test moves on: a new interval without waiting one."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Log:
    """The timers' logger: what they warned."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, message: str) -> None:
        self.warnings.append(message)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    monkeypatch.setenv("MODELOPS_QUALITY_SECONDS", str(INTERVAL))
    return Clock()


@pytest.fixture
def memo(clock: Clock) -> kopf.Memo:
    """One operator run's memo, its shared reads on the test's clock."""
    memo = kopf.Memo()
    runtime.of(memo).kept("live-quality-reads", lambda: quality.Reads(clock=clock))
    return memo


def rules(path: Path) -> Path:
    """Constant series for the deployments: every status figure of window 1h, some of 5m, and a per-class
    F1 (not a status figure), with values that tell the series apart."""
    recorded: list[dict[str, Any]] = []
    for i, (namespace, deployment, model, versions) in enumerate(DEPLOYMENTS):
        if deployment == "quiet":
            continue
        for j, version in enumerate(sorted(versions)):
            for k, name in enumerate(q.STATUS_FIGURES):
                labels = {"namespace": namespace, "deployment": deployment, "model": model, "version": version}
                value = i + j / 10 + k / 100
                for window, offset in (("1h", 0.0), ("5m", 0.5)):
                    recorded.append({"record": name, "expr": f"vector({value + offset})",
                                     "labels": {**labels, "window": window}})  # fmt: skip
            recorded.append({"record": q.F1, "expr": "vector(0.25)",
                             "labels": {**labels, "window": "1h", "class": "1"}})  # fmt: skip
    # A series of "shop" of another model (its deployment's model changed): not shop's churn figures.
    recorded.append({"record": q.ACCURACY, "expr": "vector(0.01)", "labels": {
        "namespace": "ml", "deployment": "shop", "model": "old", "version": "v1", "window": "1h"}})  # fmt: skip
    path.write_text(yaml.safe_dump({"groups": [{"name": "quality", "rules": recorded}]}))
    return path


@pytest.fixture
def recorded(prometheus: Prometheus, tmp_path: Path) -> Prometheus:
    prometheus.set_rule_files([rules(tmp_path / "rules.yml")])
    total = len(list(yaml.safe_load((tmp_path / "rules.yml").read_text())["groups"][0]["rules"]))
    prometheus.wait(lambda: len(prometheus.query('{__name__=~"modelops_quality:.*"}')) == total, timeout=60,
                    what="every rule evaluated")  # fmt: skip
    return prometheus


def queries_answered(prometheus: Prometheus) -> float:
    """Prometheus's own count of the instant queries it answered (its /metrics)."""
    text = requests.get(f"{prometheus.url}/metrics", timeout=10).text
    pattern = r'^prometheus_http_requests_total\{code="200",handler="/api/v1/query"\} (\S+)$'
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def answered_since(prometheus: Prometheus, before: float, expected: int) -> float:
    """How many queries Prometheus answered since ``before``, once it counted ``expected`` (it counts a
    request after sending the answer) or 10 s have passed."""
    prometheus.wait(lambda: queries_answered(prometheus) - before >= expected, timeout=10,
                    what=f"{expected} queries counted")  # fmt: skip
    return queries_answered(prometheus) - before


class Asked(list[str]):
    """The queries the operator sent; ``sent`` is set at the first."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = asyncio.Event()


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> Asked:
    """The queries the operator sent (the module's query function, counted)."""
    made = Asked()
    real = prom.query

    async def query(url: str, promql: str, **kwargs: Any) -> list[prom.Sample]:
        made.append(promql)
        made.sent.set()
        return await real(url, promql, **kwargs)

    monkeypatch.setattr(prom, "query", query)
    return made


def spec(model: str, address: str | None, window: str = "1h") -> dict[str, Any]:
    out: dict[str, Any] = {"model": model, "modelVersion": "1", "quality": {"windows": [window, "24h"]}}
    if address is not None:
        out["analysis"] = {"prometheus": {"address": address}}
    return out


def status_of(versions: dict[str, str]) -> dict[str, Any]:
    roles = {role: version for version, role in versions.items()}
    return {"stableVersion": roles["stable"], "canaryVersion": roles.get("canary")}


async def timers(
    memo: kopf.Memo, address: str, log: Log, which: Callable[[str], bool] = lambda namespace: True, window: str = "1h"
) -> dict[tuple[str, str], dict[str, Any]]:
    """Every deployment's timer at once (Kopf runs them concurrently): what each patched into status."""
    chosen = [d for d in DEPLOYMENTS if which(d[0])]
    patches = [kopf.Patch() for _ in chosen]
    await asyncio.gather(*(
        quality.refresh(name=deployment, namespace=namespace, spec=spec(model, address, window),
                        status=status_of(versions), patch=patch, logger=log, memo=memo)  # type: ignore[arg-type]
        for (namespace, deployment, model, versions), patch in zip(chosen, patches, strict=True)
    ))  # fmt: skip
    return {(d[0], d[1]): dict(patch.status) for d, patch in zip(chosen, patches, strict=True) if patch.status}


def own_queries(prometheus: Prometheus, window: str) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """What each deployment's timer wrote before the reads were shared: its own query's figures."""
    out = {}
    for namespace, deployment, model, versions in DEPLOYMENTS:
        result = prometheus.query(q.status_query(q.Scope(namespace, deployment, model), window))
        samples = ((sample["metric"], float(sample["value"][1])) for sample in result)
        out[namespace, deployment] = q.version_quality(samples, versions, window)
    return out


async def test_the_deployments_of_a_namespace_share_one_query_per_interval(
    recorded: Prometheus, memo: kopf.Memo, clock: Clock, asked: list[str]
) -> None:
    expected = own_queries(recorded, "1h")
    expected_5m = own_queries(recorded, "5m")
    assert expected["ml", "shop"][0]["accuracy"] == 0 + 0 / 10 + 1 / 100  # the rules' values, read back
    assert expected["ml", "shop"][1]["version"] == "v2"
    assert expected_5m["ml", "shop"][0]["accuracy"] == 0.51
    assert [set(entry) for entry in expected["ml", "quiet"]] == [{"version", "role", "window"}]

    log = Log()
    before = queries_answered(recorded)
    patched = await timers(memo, recorded.url, log, which=lambda namespace: namespace == "ml")
    assert asked == [q.namespace_status_query("ml", "1h")]  # six deployments, one query
    assert answered_since(recorded, before, 1) == 1  # as Prometheus counts them
    assert {key: value["quality"] for key, value in patched.items()} == {
        key: value for key, value in expected.items() if key[0] == "ml"
    }
    assert len({value["qualityMeasuredAt"] for value in patched.values()}) == 1  # when the one read was made
    assert log.warnings == []

    # The same interval: the other namespace has a query of its own; "ml" none more.
    before = queries_answered(recorded)
    again = await timers(memo, recorded.url, log)
    assert asked[1:] == [q.namespace_status_query("ml-2", "1h")]
    assert answered_since(recorded, before, 1) == 1
    assert {key: value["quality"] for key, value in again.items()} == expected

    # Another window is another query (each deployment's first window).
    five = await timers(memo, recorded.url, log, which=lambda namespace: namespace == "ml", window="5m")
    assert asked[2:] == [q.namespace_status_query("ml", "5m")]
    assert {key: value["quality"] for key, value in five.items()} == {
        key: value for key, value in expected_5m.items() if key[0] == "ml"
    }

    # The next interval: a new read, one per namespace again.
    clock.now += INTERVAL
    before = queries_answered(recorded)
    await timers(memo, recorded.url, log)
    assert sorted(asked[3:]) == [q.namespace_status_query("ml", "1h"), q.namespace_status_query("ml-2", "1h")]
    assert answered_since(recorded, before, 2) == 2
    assert log.warnings == []


async def test_a_timer_cancelled_while_it_waits_leaves_the_read_to_the_others(
    recorded: Prometheus, memo: kopf.Memo, asked: Asked
) -> None:
    log = Log()
    first = asyncio.ensure_future(timers(memo, recorded.url, log, which=lambda namespace: namespace == "ml"))
    await asyncio.wait_for(asked.sent.wait(), timeout=30)  # the first timers have asked, and wait for the answer
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    patched = await timers(memo, recorded.url, log, which=lambda namespace: namespace == "ml")
    assert len(asked) == 1  # the read in flight went on, and the later timers had it
    assert patched["ml", "shop"]["quality"] == own_queries(recorded, "1h")["ml", "shop"]


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every name lookup of ``*.invalid`` (which never resolves), counted where aiohttp's resolver makes it."""
    made: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".invalid"):
            made.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return made


async def test_an_address_that_does_not_resolve_is_looked_up_once_per_interval(
    memo: kopf.Memo, clock: Clock, lookups: list[str]
) -> None:
    log = Log()
    address = "http://prometheus.example.invalid:9090"
    assert await timers(memo, address, log) == {}  # eight deployments in two namespaces: no status written
    assert lookups == ["prometheus.example.invalid"]
    assert len(log.warnings) == 1, log.warnings
    assert "prometheus.example.invalid" in log.warnings[0]

    clock.now += INTERVAL / 2  # the same interval: nobody asks
    assert await timers(memo, address, log) == {}
    assert len(lookups) == 1
    assert len(log.warnings) == 1

    clock.now += INTERVAL / 2  # the next: one more lookup, one more warning
    assert await timers(memo, address, log) == {}
    assert len(lookups) == 2
    assert len(log.warnings) == 2


async def test_a_refused_connection_is_tried_once_per_interval(memo: kopf.Memo, clock: Clock, asked: list[str]) -> None:
    log = Log()
    address = f"http://127.0.0.1:{free_port()}"  # nothing listens
    assert await timers(memo, address, log) == {}
    assert len(asked) == 1
    assert len(log.warnings) == 1, log.warnings
    assert "ClientConnectorError" in log.warnings[0]
    clock.now += INTERVAL
    assert await timers(memo, address, log) == {}
    assert len(asked) == 2
    assert len(log.warnings) == 2


async def test_a_rejected_query_is_logged_once_and_leaves_the_address_to_other_namespaces(
    memo: kopf.Memo, clock: Clock
) -> None:
    """A Prometheus that answers, but with an error: each namespace's read fails once per interval (one
    warning each); the address is not taken for down, since it answered."""
    requests_seen: list[str] = []

    async def reject(request: web.Request) -> web.Response:
        requests_seen.append((await request.post())["query"])  # type: ignore[arg-type]
        return web.json_response({"status": "error", "errorType": "bad_data", "error": "too many samples"}, status=422)

    app = web.Application()
    app.router.add_post("/api/v1/query", reject)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()  # a free port, which the server itself picks
    port = runner.addresses[0][1]
    try:
        log = Log()
        assert await timers(memo, f"http://127.0.0.1:{port}", log) == {}
        assert sorted(requests_seen) == [q.namespace_status_query("ml", "1h"), q.namespace_status_query("ml-2", "1h")]
        assert len(log.warnings) == 2, log.warnings
        assert all("too many samples" in warning for warning in log.warnings)
        assert not quality.shared_reads(memo).down(f"http://127.0.0.1:{port}")
        assert await timers(memo, f"http://127.0.0.1:{port}", log) == {}  # the same interval: nobody asks
        assert len(requests_seen) == 2
        assert len(log.warnings) == 2
    finally:
        await runner.cleanup()
