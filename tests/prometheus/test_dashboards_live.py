"""Every query of the chart's Grafana dashboards returns data from a real Prometheus under test traffic.

The world: real ``modelops serve`` processes scraped with the operator's ServiceMonitor relabelling
(``logic.serving.SCRAPE_RELABELINGS``) — a classifier deployment ``clf`` serving a stable version 1
and a canary version 2 side by side, and a regression deployment ``reg`` — with held-out rows
predicted, one malformed request refused (400) each, and every true label sent back. Prometheus
evaluates the recording rules the operator generates for them: each deployment's quality group
(``serving.desired_children``, window 1h) and a DriftPolicy ``inputs`` on ``clf`` (method ks, so its
statistic and critical value are recorded beside the PSI). The operator's own /metrics (its default
registry, served as ``modelops operator`` serves it) holds ``clf``'s rollout as the operator records it
after a reconcile — canary 2 at 20% on step 1, its analysis measured (a status the CRD accepts) — and
is scraped with the chart's ServiceMonitor (``honorLabels``).

Each dashboard's template variables are resolved as Grafana resolves them (label_values() against the
Prometheus API, in order; a multi-value variable as Grafana's ``(a|b)`` of every value found), then
every panel query runs with them substituted. A variable with no values, or a query that returns no
series, fails the test. Queries on regression series (MAE, RMSE, live or at training) are run for
``reg``, every other for ``clf``, whose canary is in progress. The operator's registry also holds each
served version's training metrics (``modelops_version_training_metric``), the trainer's figures on
the held-out split, as the ModelVersion reconcile records them.
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import yaml
from prometheus_client import REGISTRY, start_http_server
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, mean_squared_error

import dashboardkit
from modelops.api.driftpolicy import DriftPolicySpec
from modelops.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from modelops.controller import metrics
from modelops.drift import bins as binning
from modelops.logic import driftrules, serving
from promkit import BINARY, Prometheus, free_port, pod_target, service_monitor_relabelling
from serve import modelkit
from serve.conftest import Server
from serve.test_feedback_parts import one_key_dir

NAMESPACE = "ml"
POLICY = "inputs"
# clf's status while its canary is analysed: the fields the operator's rollout series come from.
CANARY_STATUS = {
    "phase": "Progressing", "stableVersion": "1", "canaryVersion": "2", "canaryWeight": 20, "step": 1,
    "analysis": [
        {"name": "error-rate", "phase": "Successful", "value": 0.0, "at": "2026-12-04T21:00:00Z"},
        {"name": "latency-p99", "phase": "Successful", "value": 0.004, "at": "2026-12-04T21:00:00Z"},
        {"name": "quality", "phase": "Inconclusive", "at": "2026-12-04T21:00:00Z", "inconclusive": 1},
    ],
}  # fmt: skip


@dataclass
class Deployment:
    name: str
    model: modelkit.ModelDir
    truth: Any
    servers: dict[str, Server]  # version → its server


def _quality_rules(deployment: Deployment) -> list[dict[str, Any]]:
    """The quality group of the PrometheusRule the operator writes for this deployment."""
    spec = ModelDeploymentSpec.model_validate(
        {"model": deployment.model.name, "modelVersion": "1", "quality": {"windows": ["1h"]}}
    )
    owner = serving.Owner(deployment.name, NAMESPACE, f"uid-{deployment.name}")
    children = serving.desired_children(spec, owner, serving.Traffic("1", None), stable=None, canary=None,
                                        image="modelops:dev")  # fmt: skip
    rule = next(c for c in children.keep if c["kind"] == "PrometheusRule")
    return [g for g in rule["spec"]["groups"] if g["name"].startswith("modelops-quality-")]


def _drift_rules(deployment: Deployment) -> list[dict[str, Any]]:
    """The groups of the PrometheusRule the operator writes for a ks DriftPolicy on version 1's features."""
    spec = DriftPolicySpec.model_validate({"deployment": deployment.name, "method": "ks", "window": "1h",
                                           "minSamples": 10})  # fmt: skip
    target = driftrules.Target(POLICY, NAMESPACE, deployment.name, deployment.model.name, "1")
    reference = binning.parse_reference_stats(deployment.model.stats)
    rule = driftrules.prometheus_rule(spec, target, reference, list(reference), {})
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


def _traffic(deployment: Deployment, rows: int) -> None:
    """Rows one by one through every version's server, a malformed request, and each row's true label."""
    x = deployment.model.test_x.to_numpy(dtype=np.float64)
    name = deployment.model.name
    for version, server in deployment.servers.items():
        count = rows // 2 if version == "2" else rows  # the canary gets less
        for i in range(count):
            body = {"inputs": [{"name": "x", "shape": [1, x.shape[1]], "datatype": "FP64", "data": x[i].tolist()}]}
            r = server.post(f"/v2/models/{name}/infer", json=body)
            assert r.status_code == 200, r.text
            actual = deployment.truth[i].item()
            feedback = server.post(f"/v2/models/{name}/feedback", json={"id": r.json()["id"], "actual": actual})
            assert feedback.status_code == 200, feedback.text
        refused = server.post(f"/v2/models/{name}/infer", json={"inputs": "not a list"})
        assert refused.status_code == 400, refused.text


def training_metrics(model: modelkit.ModelDir) -> dict[str, float]:
    """What the trainer records in a version's spec.metrics, on the held-out split it measures on."""
    frame = modelkit._split(*(load_breast_cancer if model.classes else load_diabetes)(as_frame=True, return_X_y=True))
    _, test_x, _, test_y = frame
    predicted = model.pipeline.predict(test_x)
    if model.classes:
        return {"accuracy": float(accuracy_score(test_y, predicted)), "f1": float(f1_score(test_y, predicted))}
    return {"mae": float(mean_absolute_error(test_y, predicted)),
            "rmse": float(np.sqrt(mean_squared_error(test_y, predicted)))}  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Prometheus, dict[str, Deployment]]]:
    if not Path(BINARY).exists():
        pytest.skip("Debian's prometheus is not installed (.ci/run installs it: apt-get install prometheus)")
    tmp = tmp_path_factory.mktemp("dashboards")
    keys = one_key_dir(tmp / "keys")
    clf_model = modelkit.breast_cancer(tmp / "clf")
    reg_model = modelkit.diabetes(tmp / "reg")
    clf_truth = modelkit._split(*load_breast_cancer(as_frame=True, return_X_y=True))[3]
    reg_truth = modelkit._split(*load_diabetes(as_frame=True, return_X_y=True))[3]
    started: list[Server] = []

    def server(model: modelkit.ModelDir, deployment: str, version: str) -> Server:
        started.append(Server(model.path, "--version", version, "--feedback-keys", str(keys),
                              "--feedback-scope", f"{NAMESPACE}/{deployment}"))  # fmt: skip
        return started[-1]

    prometheus = Prometheus(tmp / "prometheus")
    exposed = None
    try:
        deployments = {
            "clf": Deployment("clf", clf_model, clf_truth, {v: server(clf_model, "clf", v) for v in ("1", "2")}),
            # ModelVersion names are unique in a namespace: the regressor's version is r1.
            "reg": Deployment("reg", reg_model, reg_truth, {"r1": server(reg_model, "reg", "r1")}),
        }
        for s in started:
            s.wait_ready()
        rule_file = tmp / "rules.yml"
        groups = [*_quality_rules(deployments["clf"]), *_quality_rules(deployments["reg"]),
                  *_drift_rules(deployments["clf"])]  # fmt: skip
        rule_file.write_text(yaml.safe_dump({"groups": groups}))
        prometheus.rule_files = [rule_file]
        prometheus.relabel_configs = service_monitor_relabelling(copy.deepcopy(serving.SCRAPE_RELABELINGS))
        prometheus._write_config()
        prometheus.start()
        prometheus.set_targets([
            pod_target(f"127.0.0.1:{s.port}", namespace=NAMESPACE, service=d.name, pod=f"{d.name}-v{version}",
                       labels={"modelops.io/deployment": d.name, "modelops.io/version": version})
            for d in deployments.values() for version, s in d.servers.items()
        ])  # fmt: skip
        ModelDeploymentStatus.model_validate(CANARY_STATUS)
        metrics.ROLLOUTS.observe(NAMESPACE, "clf", CANARY_STATUS)
        for d in deployments.values():
            for version in d.servers:
                trained = {"model": d.model.name, "metrics": training_metrics(d.model)}
                metrics.VERSIONS.observe(NAMESPACE, version, trained)
        operator_port = free_port()
        exposed, _ = start_http_server(operator_port, addr="127.0.0.1", registry=REGISTRY)
        operator_pod = pod_target(f"127.0.0.1:{operator_port}", namespace="modelops-system",
                                  service="modelops-operator", pod="modelops-operator-0", labels={})  # fmt: skip
        prometheus.set_jobs([("operator", service_monitor_relabelling([]), [operator_pod])], honor_labels=["operator"])
        prometheus.wait_scraped(len(started) + 1)
        for deployment in deployments.values():
            _traffic(deployment, rows=40)
        yield prometheus, deployments
    finally:
        metrics.ROLLOUTS.forget(NAMESPACE, "clf")
        for version in ("1", "2", "r1"):
            metrics.VERSIONS.forget(NAMESPACE, version)
        if exposed is not None:
            exposed.shutdown()
            exposed.server_close()
        prometheus.stop()
        for s in started:
            s.close()


def label_values(prometheus: Prometheus, query: str) -> list[str]:
    """What Grafana's label_values(selector, label) variable lists, from the same Prometheus API."""
    selector, label = dashboardkit.label_values_query(query)
    params = {"match[]": selector} if selector else {}
    response = requests.get(f"{prometheus.url}/api/v1/label/{label}/values", params=params, timeout=10)
    response.raise_for_status()
    return sorted(response.json()["data"])


def resolve(prometheus: Prometheus, dashboard: dict[str, Any], deployment: str) -> dict[str, str] | str:
    """The dashboard's variables for ``deployment``, or why one cannot be resolved (it has no values yet)."""
    chosen = {"namespace": NAMESPACE, "deployment": deployment, "policy": f"{NAMESPACE}/{POLICY}", "window": "1h"}
    values: dict[str, str] = {}
    for variable in dashboard["templating"]["list"]:
        name = variable["name"]
        if variable["type"] == "datasource":
            continue
        query = dashboardkit.substitute(dashboardkit.variable_query(variable), values)
        found = label_values(prometheus, query)
        if not found:
            return f"variable {name}: {query} lists nothing"
        if variable.get("multi"):
            # Grafana's regex formatting of a multi-value variable; the values here need no escaping.
            assert all(re.fullmatch(r"[\w .-]+", v) for v in found), found
            values[name] = "(" + "|".join(found) + ")"
        else:
            # The ones the test picks; any other (the model) must have one value for this deployment.
            want = chosen.get(name, found[0] if len(found) == 1 else repr(found))
            if want not in found:
                return f"variable {name}: {query} lists {found}, not {want!r}"
            values[name] = want
    return values


def _deployment_for(expr: str) -> str:
    return "reg" if re.search(r"modelops_quality:(mae|rmse)\b|metric=~\"mae\|rmse\"", expr) else "clf"


@pytest.mark.parametrize("name", sorted(dashboardkit.load()))
def test_every_panel_query_returns_data(world: tuple[Prometheus, dict[str, Deployment]], name: str) -> None:
    prometheus, _ = world
    dashboard = dashboardkit.load()[name]
    queries = dashboardkit.queries(dashboard)
    assert queries

    def empty() -> list[str]:
        """The queries (with their variables) that return no series yet; [] when every one has data."""
        missing: list[str] = []
        resolved = {d: resolve(prometheus, dashboard, d) for d in {_deployment_for(q) for _, _, q in queries}}
        for title, ref, expr in queries:
            values = resolved[_deployment_for(expr)]
            if isinstance(values, str):
                missing.append(f"{title} {ref}: {values}")
            elif not prometheus.query(dashboardkit.substitute(expr, values)):
                missing.append(f"{title} {ref}: {dashboardkit.substitute(expr, values)}")
        return missing

    # The rules need a few evaluations after the traffic (and rate() two scrapes): wait for every panel,
    # then say which ones stayed empty.
    with contextlib.suppress(AssertionError):
        prometheus.wait(lambda: not empty(), timeout=120, what=f"every query of the {name} dashboard")
    assert empty() == []


def test_a_query_on_nothing_fails_the_check(world: tuple[Prometheus, dict[str, Deployment]]) -> None:
    """The check above can fail: the serving dashboard's queries for a deployment that serves nothing."""
    prometheus, _ = world
    dashboard = dashboardkit.load()["serving"]
    assert isinstance(resolve(prometheus, dashboard, "nobody"), str)
    values = {"namespace": NAMESPACE, "deployment": "nobody", "version": "(1)"}
    title, _, expr = dashboardkit.queries(dashboard)[0]
    assert prometheus.query(dashboardkit.substitute(expr, values)) == [], title
