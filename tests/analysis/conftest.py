"""Live canary analysis: a real Prometheus scraping real ``modelops serve`` processes under real load.

Once per module, an iris classifier is trained with scikit-learn and written as model dirs for
five ModelVersions of the model ``iris`` in the namespace ``ml``: a stable (``iris-v1``), a
healthy canary (``iris-v2``) and three bad canaries from :mod:`analysis.canary_estimators` — one
whose predict raises (the server answers 500), one that sleeps in predict, one that always
predicts the same class. Each is served by its own ``modelops serve`` process with
``--version`` set to the ModelVersion's name, as the operator's Deployments do, as a pod of the
ModelDeployment ``iris``. A second ModelDeployment, ``iris-eu``, serves the same version
``iris-v2`` in the same namespace, but from a broken artifact: its evidence must never count
for ``iris``. One Prometheus scrapes every pod each second through file_sd, relabelled as the
operator's ServiceMonitor asks (``promkit.service_monitor_relabelling``: namespace, service, pod
and the pod's ModelDeployment as ``deployment``), and one thread per server keeps posting v2
infer requests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from sklearn.base import BaseEstimator
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from analysis import canary_estimators
from modelops.logic import serving
from promkit import BINARY, Prometheus, pod_target, service_monitor_relabelling
from serve import modelkit
from serve.conftest import Server, free_port

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "ml"
MODEL = "iris"
STABLE = "iris-v1"
HEALTHY = "iris-v2"
BROKEN = "iris-v3"
SLOW = "iris-v4"
CONSTANT = "iris-v5"
OTHER = "iris-eu"  # a second ModelDeployment of the model, serving HEALTHY's version broken
OTHER_POD = f"{OTHER}/{HEALTHY}"  # its server's key in Fleet.servers and Load.codes
SLOW_SECONDS = 0.3
WINDOW = "5s"


class VersionServer(Server):
    """``modelops serve`` for one ModelVersion, with ``tests/`` importable for the pickled test estimators."""

    def __init__(self, model_dir: Path, version: str, deployment: str = MODEL) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.version = version
        self.deployment = deployment
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "operator"), str(ROOT / "tests")])}
        self.command = [
            sys.executable, "-m", "modelops", "serve", "--model-dir", str(model_dir), "--port", str(self.port),
            "--version", version, "--workers", "1", "--allow-pickle",
        ]  # fmt: skip
        self.proc = subprocess.Popen(self.command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
        self.session = requests.Session()
        self.stderr = ""


def interleaved_by_class(rows: list[list[float]], labels: list[Any]) -> list[list[float]]:
    """The rows in round-robin order of their classes, so that any run of consecutive requests
    has nearly the training mix: two healthy servers answering at different rates over a short
    window still see the same class distribution (prediction shift near 0, not sampling noise)."""
    by_class: dict[Any, list[list[float]]] = {}
    for row, label in zip(rows, labels, strict=True):
        by_class.setdefault(label, []).append(row)
    queues = [list(group) for _, group in sorted(by_class.items())]
    ordered: list[list[float]] = []
    while any(queues):
        for queue in queues:
            if queue:
                ordered.append(queue.pop(0))
    return ordered


class Load:
    """One thread per server posting one-row v2 infer requests from the iris test split."""

    def __init__(self, servers: dict[str, VersionServer], rows: list[list[float]]) -> None:
        self.stop_event = threading.Event()
        self.codes: dict[str, dict[int, int]] = {key: {} for key in servers}
        self.threads = [
            threading.Thread(target=self._run, args=(key, server.url, rows), daemon=True)
            for key, server in servers.items()
        ]
        for thread in self.threads:
            thread.start()

    def _run(self, key: str, url: str, rows: list[list[float]]) -> None:
        session = requests.Session()
        i = 0
        while not self.stop_event.is_set():
            row = rows[i % len(rows)]
            i += 1
            body = {"inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": row}]}
            try:
                code = session.post(f"{url}/v2/models/{MODEL}/infer", json=body, timeout=10).status_code
            except requests.RequestException:
                code = 0
            self.codes[key][code] = self.codes[key].get(code, 0) + 1
            # Pacing, not synchronisation: about 20 requests a second per server on shared cores.
            self.stop_event.wait(0.05)
        session.close()

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=15)


@dataclass
class Fleet:
    """The servers, the load on them, and the Prometheus scraping them."""

    servers: dict[str, VersionServer]
    load: Load
    prometheus: Prometheus

    def wait_for_traffic(self, timeout: float = 30.0) -> None:
        """Wait until Prometheus has a request rate over the analysis window for every server."""
        wanted = {(server.deployment, server.version) for server in self.servers.values()}

        def seen() -> bool:
            result = self.prometheus.query(
                f"sum by (deployment, version) "
                f'(rate(modelops_requests_total{{namespace="{NAMESPACE}"}}[{WINDOW}])) > 0'
            )
            return {(item["metric"].get("deployment"), item["metric"]["version"]) for item in result} >= wanted

        self.prometheus.wait(seen, timeout=timeout, what=f"request rates of {sorted(wanted)} in Prometheus")


def _fit(final: Any) -> Pipeline:
    data = load_iris(as_frame=True)
    train_x, _, train_y, _ = modelkit._split(data.data, data.target)
    return Pipeline([("scale", StandardScaler()), ("clf", final)]).fit(train_x.to_numpy(), train_y)


def _write(path: Path, final: BaseEstimator) -> Path:
    data = load_iris(as_frame=True)
    train_x, test_x, _, _ = modelkit._split(data.data, data.target)
    # The bad canaries are our own code (canary_estimators), which only a pickle can carry: these
    # artifacts are joblib on purpose, and every server of this tier runs with --allow-pickle.
    modelkit.write_model_dir(
        path, name=MODEL, pipeline=_fit(final), train_x=train_x, test_x=test_x, task="classification",
        artifact_format="joblib",
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    if not Path(BINARY).exists():
        pytest.skip("Debian's prometheus is not installed (.ci/run installs it: apt-get install prometheus)")
    base = tmp_path_factory.mktemp("analysis")
    dirs = {
        STABLE: _write(base / STABLE, LogisticRegression(max_iter=2000)),
        HEALTHY: _write(base / HEALTHY, LogisticRegression(max_iter=2000, C=0.5)),
        BROKEN: _write(base / BROKEN, canary_estimators.Broken()),
        SLOW: _write(base / SLOW, canary_estimators.Slow(SLOW_SECONDS)),
        CONSTANT: _write(base / CONSTANT, canary_estimators.Constant()),
    }
    servers = {version: VersionServer(path, version) for version, path in dirs.items()}
    servers[OTHER_POD] = VersionServer(dirs[BROKEN], HEALTHY, deployment=OTHER)
    relabelling = service_monitor_relabelling(serving.SCRAPE_RELABELINGS)
    prometheus = Prometheus(base / "prometheus", relabel_configs=relabelling)
    load: Load | None = None
    try:
        for server in servers.values():
            server.wait_ready(deadline_s=120)  # five servers and Prometheus start at once on a busy machine
        prometheus.set_targets(
            [
                pod_target(
                    f"127.0.0.1:{server.port}",
                    namespace=NAMESPACE,
                    service=server.deployment,
                    pod=f"{server.deployment}-{server.version}-0",
                    labels={serving.DEPLOYMENT_LABEL: server.deployment, serving.VERSION_LABEL: server.version},
                )
                for server in servers.values()
            ]
        )
        prometheus.start()
        data = load_iris(as_frame=True)
        _, test_x, _, test_y = modelkit._split(data.data, data.target)
        load = Load(servers, interleaved_by_class(test_x.to_numpy().tolist(), test_y.tolist()))
        prometheus.wait_scraped(len(servers))
        yield Fleet(servers, load, prometheus)
    finally:
        if load is not None:
            load.stop()
        prometheus.stop()
        for server in servers.values():
            server.close()
