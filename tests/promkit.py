"""A real Prometheus server (Debian's ``prometheus``) for the tests, on a free loopback port.

``prometheus`` (fixture) starts one per test with a 1 s scrape and rule-evaluation
interval; targets come from a file_sd file the test rewrites with :meth:`set_targets`, so
model servers started later are scraped within a second or two. :meth:`stop` kills it
(Prometheus unreachable), :meth:`start` brings it back on the same port and data.
Without the binary the fixture skips with the reason (``.ci/run`` installs it).

A ServiceMonitor's scrape, done by Prometheus itself: :func:`pod_target` gives a file_sd target
the meta labels Kubernetes discovery gives an endpoint backed by a pod, and
:func:`service_monitor_relabelling` the relabel_configs the Prometheus Operator generates from
a ServiceMonitor endpoint (its target labels namespace, service and pod, then the endpoint's own
``relabelings``), so the labels the operator's ServiceMonitor asks for are applied by real
relabelling, not written into the targets by the tests.

:func:`promtool_test` runs generated rule groups through ``promtool check rules`` and
``promtool test rules`` (the unit tests of the drift and quality rules).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

BINARY = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _label_name(text: str) -> str:
    """A Kubernetes label key as Prometheus' discovery spells it in a meta label."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", text)


def pod_target(address: str, *, namespace: str, service: str, pod: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """A file_sd group for one pod behind a Service, with Kubernetes discovery's meta labels."""
    meta = {
        "__meta_kubernetes_namespace": namespace,
        "__meta_kubernetes_service_name": service,
        "__meta_kubernetes_pod_name": pod,
    }
    for key, value in labels.items():
        meta[f"__meta_kubernetes_pod_label_{_label_name(key)}"] = value
        meta[f"__meta_kubernetes_pod_labelpresent_{_label_name(key)}"] = "true"
    return {"targets": [address], "labels": meta}


_RELABEL_KEYS = {"sourceLabels": "source_labels", "targetLabel": "target_label", "separator": "separator",
                 "regex": "regex", "modulus": "modulus", "replacement": "replacement", "action": "action"}  # fmt: skip


def service_monitor_relabelling(relabelings: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The Prometheus Operator's relabel_configs for a ServiceMonitor endpoint with these ``relabelings``."""
    configs: list[dict[str, Any]] = [
        {"source_labels": [f"__meta_kubernetes_{source}"], "target_label": target}
        for source, target in (("namespace", "namespace"), ("service_name", "service"), ("pod_name", "pod"))
    ]
    for item in relabelings:
        unknown = set(item) - set(_RELABEL_KEYS)
        assert not unknown, f"a relabeling field the Prometheus Operator does not have: {unknown}"
        config = {_RELABEL_KEYS[key]: value for key, value in item.items()}
        if "action" in config:
            config["action"] = str(config["action"]).lower()
        configs.append(config)
    return configs


class Prometheus:
    """One Prometheus process with file-based service discovery and optional rule files."""

    def __init__(
        self,
        workdir: Path,
        *,
        interval: str = "1s",
        rule_files: Sequence[Path] = (),
        relabel_configs: Sequence[Mapping[str, Any]] = (),
        host: str = "127.0.0.1",
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.host = host  # where it listens: loopback, or an address containers reach
        self.port = free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.targets_file = workdir / "targets.json"
        self.config_file = workdir / "prometheus.yml"
        self.rule_files = list(rule_files)
        self.relabel_configs = [dict(config) for config in relabel_configs]
        self.interval = interval
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / "prometheus.log"
        self.jobs: list[tuple[str, list[dict[str, Any]]]] = []  # (name, relabel_configs) of set_jobs
        self.honor_labels: set[str] = set()  # the jobs whose ServiceMonitor endpoint says honorLabels
        self.set_targets([])
        self._write_config()

    def _write_config(self) -> None:
        config: dict[str, Any] = {
            "global": {"scrape_interval": self.interval, "evaluation_interval": self.interval},
            "scrape_configs": [
                {
                    "job_name": "modelops",
                    "scrape_interval": self.interval,
                    "scrape_timeout": self.interval,
                    "file_sd_configs": [{"files": [str(self.targets_file)], "refresh_interval": "1s"}],
                    "relabel_configs": self.relabel_configs,
                }
            ]
            + [
                {
                    "job_name": name,
                    "scrape_interval": self.interval,
                    "scrape_timeout": self.interval,
                    "file_sd_configs": [{"files": [str(self._job_file(i))], "refresh_interval": "1s"}],
                    "relabel_configs": relabel_configs,
                    "honor_labels": name in self.honor_labels,
                }
                for i, (name, relabel_configs) in enumerate(self.jobs)
            ],
        }
        if self.rule_files:
            config["rule_files"] = [str(path) for path in self.rule_files]
        self.config_file.write_text(yaml.safe_dump(config))

    def set_targets(self, groups: Sequence[dict[str, Any]]) -> None:
        """Replace the scraped targets: [{"targets": ["127.0.0.1:8080"], "labels": {...}}, ...]."""
        tmp = self.targets_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(list(groups)))
        os.replace(tmp, self.targets_file)

    def _job_file(self, index: int) -> Path:
        return self.workdir / f"targets-job-{index}.json"

    def set_jobs(
        self,
        jobs: Sequence[tuple[str, Sequence[Mapping[str, Any]], Sequence[dict[str, Any]]]],
        honor_labels: Sequence[str] = (),
    ) -> None:
        """Scrape jobs of their own besides ``modelops``, as the Prometheus Operator makes one per
        ServiceMonitor endpoint: (name, relabel_configs, file_sd groups) each; the jobs named in
        ``honor_labels`` keep the labels the target exports. The configuration is reloaded only when
        the jobs' names or relabelling change; targets are file_sd files."""
        self.honor_labels = set(honor_labels)
        wanted = [(name, [dict(c) for c in configs]) for name, configs, _ in jobs]
        for i, (_, _, groups) in enumerate(jobs):
            tmp = self._job_file(i).with_suffix(".tmp")
            tmp.write_text(json.dumps(list(groups)))
            os.replace(tmp, self._job_file(i))
        if wanted != self.jobs:
            self.jobs = wanted
            self._reload()

    def set_rule_files(self, paths: Sequence[Path]) -> None:
        """Load other rule files (a config reload through the lifecycle API)."""
        self.rule_files = list(paths)
        self._reload()

    def set_relabel_configs(self, configs: Sequence[Mapping[str, Any]]) -> None:
        """Relabel the targets with other relabel_configs (a config reload through the lifecycle API)."""
        self.relabel_configs = [dict(config) for config in configs]
        self._reload()

    def _reload(self) -> None:
        """Write the configuration and, when running, have Prometheus read it (its lifecycle API)."""
        self._write_config()
        if self.process is not None:
            requests.post(f"{self.url}/-/reload", timeout=10).raise_for_status()

    def start(self, timeout: float = 30.0) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    BINARY,
                    f"--config.file={self.config_file}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address={self.host}:{self.port}",
                    "--web.enable-lifecycle",
                    "--storage.tsdb.retention.time=1h",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait(lambda: self._ready(), timeout=timeout, what="Prometheus ready")

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
        try:
            return requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        """Stop the server (it becomes unreachable); its data stays for a later start()."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None

    def query(self, promql: str) -> list[dict[str, Any]]:
        response = requests.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def active_targets(self) -> list[dict[str, Any]]:
        response = requests.get(f"{self.url}/api/v1/targets", timeout=10)
        response.raise_for_status()
        targets: list[dict[str, Any]] = response.json()["data"]["activeTargets"]
        return targets

    def alerts(self) -> list[dict[str, Any]]:
        response = requests.get(f"{self.url}/api/v1/alerts", timeout=10)
        response.raise_for_status()
        alerts: list[dict[str, Any]] = response.json()["data"]["alerts"]
        return alerts

    def wait_scraped(self, count: int, timeout: float = 30.0) -> None:
        """Wait until ``count`` targets are up (scraped successfully at least once) and queryable.

        A target's health turns "up" a moment before its scrape's samples can be queried, so both
        are waited for: the targets API, then an ``up`` sample for each.
        """

        def up() -> bool:
            healthy = sum(1 for t in self.active_targets() if t.get("health") == "up") >= count
            return healthy and len(self.query("up == 1")) >= count

        self.wait(up, timeout=timeout, what=f"{count} targets up")

    @staticmethod
    def wait(predicate: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.2) -> Any:
        """Poll ``predicate`` until it returns something truthy, or fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
            time.sleep(interval)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Prometheus]:
    """A running real Prometheus with no targets yet."""
    if not Path(BINARY).exists():
        pytest.skip("Debian's prometheus is not installed (.ci/run installs it: apt-get install prometheus)")
    server = Prometheus(tmp_path / "prometheus")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def promtool_test(
    tmp_path: Path, groups: Sequence[Mapping[str, Any]], tests: list[dict[str, Any]]
) -> subprocess.CompletedProcess[str]:
    """``promtool test rules`` of ``tests`` on the rule ``groups`` (which must pass ``promtool check rules``)."""
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [dict(g) for g in groups]}, sort_keys=False))
    check = subprocess.run([PROMTOOL, "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    test_file = tmp_path / "test.yml"
    test_file.write_text(yaml.safe_dump({"rule_files": [str(rules_file)], "evaluation_interval": "1m",
                                         "tests": tests}, sort_keys=False))  # fmt: skip
    return subprocess.run([PROMTOOL, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=60)
