"""Unfairness end to end: predictions and labels by group → Prometheus → the operator → FairnessDegraded,
an alert, a retrain.

A real ``modelops serve`` serves the mixed model with a fairness record naming ``colour`` and ``x2``
(binned), with feedback keys; a real Prometheus scrapes it; the real operator watches a DriftPolicy
whose ``fairness`` holds the live demographic parity difference on colour and the equalized odds
difference on x2 (from labels sent back) each to a max. Before any traffic the verdict is Unknown
(too few in the groups); after rows and their labels, the gaps in ``status.fairness`` are
fairlearn's on the same rows to 1e-9, the one above its max makes FairnessDegraded True with the
metric in its reason and the value and max in its message, the generated ModelFairnessDegraded
alert fires in Prometheus, an Event is posted and exactly one TrainingRun is created.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
from kopf.testing import KopfRunner

from driftloop.test_loop import API, NAMESPACE, condition, loop_env  # noqa: F401 (a fixture)
from kubeemu.client import KubeClient
from modelops.logic import serving
from prometheus.test_fairness_live import BINS, model_with_fairness
from promkit import Prometheus, pod_target, service_monitor_relabelling
from serve import modelkit
from serve.conftest import Server
from serve.test_feedback_parts import one_key_dir

POLICY = "mixed-fairness"
RUN_LABEL = f"modelops.io/drift-policy={POLICY}"


@pytest.fixture
def fair_model(tmp_path: Path) -> modelkit.ModelDir:
    return model_with_fairness(tmp_path)


@pytest.fixture
def server(fair_model: modelkit.ModelDir, tmp_path: Path) -> Iterator[Server]:
    keys = one_key_dir(tmp_path / "keys")
    served = Server(fair_model.path, "--name", "mixed", "--version", "mixed-v1", "--feedback-keys", str(keys),
                    "--feedback-scope", f"{NAMESPACE}/mixed").wait_ready()  # fmt: skip
    yield served
    served.close()


def serving_mixed_v1(cluster: KubeClient, model: modelkit.ModelDir) -> None:
    """ModelVersion mixed-v1 (no reference statistics: fairness alone is watched) and the deployment serving it."""
    result = yaml.safe_load((model.path / "result.json").read_text())
    cluster.create({
        "apiVersion": API, "kind": "ModelVersion", "metadata": {"name": "mixed-v1", "namespace": NAMESPACE},
        "spec": {
            "model": "mixed", "version": 1, "task": "classification",
            "artifact": {"uri": result["artifact"]["uri"], "sha256": result["artifact"]["sha256"],
                         "format": result["artifact"]["format"]},
            "metrics": {"accuracy": 0.9}, "signature": result["signature"],
            "lineage": {"dataset": {"uri": "file:///data/mixed.csv", "sha256": "0" * 64, "target": "y"},
                        "estimator": "sklearn.linear_model.LogisticRegression", "params": {}},
        },
    })  # fmt: skip
    cluster.create({"apiVersion": API, "kind": "ModelDeployment", "metadata": {"name": "mixed", "namespace": NAMESPACE},
                    "spec": {"model": "mixed", "track": "Production"}})  # fmt: skip
    cluster.patch_status(API, "ModelDeployment", NAMESPACE, "mixed", {"status": {"servingVersion": "mixed-v1"}})


def policy(dp_max: float, eo_max: float) -> dict[str, Any]:
    return {
        "apiVersion": API, "kind": "DriftPolicy", "metadata": {"name": POLICY, "namespace": NAMESPACE},
        "spec": {
            "deployment": "mixed", "window": "10s", "interval": "2s", "minSamples": 1000000,
            "fairness": {"thresholds": [
                {"feature": "colour", "metric": "demographicParityDifference", "max": dp_max},
                {"feature": "x2", "metric": "equalizedOddsDifference", "max": eo_max},
            ], "window": "1h", "minGroupCount": 10},
            "actions": {"alert": {"for": "1s", "severity": "warning", "labels": {"team": "ml"}},
                        "retrain": {"enabled": True, "cooldown": "1h"}},
        },
    }  # fmt: skip


def test_a_gap_above_its_max_degrades_alerts_and_retrains_once(
    loop_env: Prometheus, cluster: KubeClient, operator: KopfRunner, fair_model: modelkit.ModelDir,  # noqa: F811
    server: Server, tmp_path: Path,
) -> None:  # fmt: skip
    prometheus = loop_env
    prometheus.set_relabel_configs(service_monitor_relabelling(serving.SCRAPE_RELABELINGS))
    prometheus.set_targets([pod_target(server.url.removeprefix("http://"), namespace=NAMESPACE, service="mixed",
                                       pod="mixed-stable-0", labels={serving.DEPLOYMENT_LABEL: "mixed"})])  # fmt: skip
    prometheus.wait_scraped(1)

    rows = pd.concat([fair_model.test_x] * 3, ignore_index=True)
    predicted = fair_model.pipeline.predict(rows)
    truth = np.where(((rows["colour"] == "red") & (rows["x1"] > 0)) | (rows["x2"] > 6), "yes", "no")
    flip = np.random.default_rng(7).random(len(rows)) < 0.2
    truth = np.where(flip, np.where(truth == "yes", "no", "yes"), truth)
    colour = rows["colour"].to_numpy()
    x2 = pd.cut(rows["x2"], [-np.inf, 4, 6, np.inf], right=False, labels=BINS).astype(str).to_numpy()
    known = np.isin(colour, ["blue", "red"])
    selected = predicted[known] == "yes"
    dp = demographic_parity_difference(selected, selected, sensitive_features=colour[known])
    eo = equalized_odds_difference(truth == "yes", predicted == "yes", sensitive_features=x2)
    assert eo > 0.02

    # Held: DP under its max; crossed: EO above half of itself.
    serving_mixed_v1(cluster, fair_model)
    cluster.create(policy(dp_max=round(dp + 0.1, 3), eo_max=round(eo / 2, 4)))
    waiting = cluster.wait_for(API, "DriftPolicy", NAMESPACE, POLICY,
                               lambda o: condition(o, "FairnessDegraded").get("reason") == "TooFewInGroups",
                               timeout=60)  # fmt: skip
    assert waiting is not None
    assert condition(waiting, "FairnessDegraded")["status"] == "Unknown"
    assert "no rows of a group of colour in the last 1h" in condition(waiting, "FairnessDegraded")["message"]
    assert cluster.list(API, "TrainingRun", NAMESPACE, label_selector=RUN_LABEL) == []
    rule = cluster.get("monitoring.coreos.com/v1", "PrometheusRule", NAMESPACE, f"{POLICY}-drift")
    alerts = [r for r in rule["spec"]["groups"][0]["rules"] if r.get("alert") == "ModelFairnessDegraded"]
    assert [(a["labels"]["feature"], a["labels"]["metric"]) for a in alerts] == [
        ("colour", "demographicParityDifference"), ("x2", "equalizedOddsDifference")]
    rule_file = tmp_path / "fairness-rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    prometheus.set_rule_files([rule_file])

    # --- rows and their labels, by batches and single rows.
    start = 0
    for size in itertools.cycle((7, 1, 5)):
        if start >= len(rows):
            break
        part = rows.iloc[start : start + size]
        r = server.post("/v2/models/mixed/infer", json=modelkit.frame_body(part, fair_model.categorical))
        assert r.status_code == 200, r.text
        actual = truth[start : start + size].tolist()
        back = server.post("/v2/models/mixed/feedback", json={"id": r.json()["id"], "actual": actual})
        assert back.status_code == 200, back.text
        start += size

    def read_all_rows(o: dict[str, Any] | None) -> bool:
        """Once every row and label is scraped and evaluated, the gaps are fairlearn's (until then they move)."""
        found = {r["metric"]: r.get("value") for r in ((o or {}).get("status") or {}).get("fairness") or []}
        return all(found.get(metric) is not None and abs(found[metric] - gap) < 1e-9
                   for metric, gap in (("demographicParityDifference", dp), ("equalizedOddsDifference", eo)))

    degraded = cluster.wait_for(API, "DriftPolicy", NAMESPACE, POLICY, read_all_rows, timeout=90)
    assert degraded is not None
    state = condition(degraded, "FairnessDegraded")
    assert state["reason"] == "EqualizedOddsDifferenceAboveMax"
    assert f"equalizedOddsDifference on x2 {eo:.4g} is above max {round(eo / 2, 4):.4g}" in state["message"]
    by_metric = {r["metric"]: r for r in degraded["status"]["fairness"]}
    assert by_metric["demographicParityDifference"]["degraded"] is False
    assert by_metric["equalizedOddsDifference"]["degraded"] is True
    assert degraded["status"]["fairnessDegraded"] is True

    def firing() -> bool:
        return any(a["labels"].get("alertname") == "ModelFairnessDegraded" and a["state"] == "firing"
                   for a in prometheus.alerts())  # fmt: skip

    prometheus.wait(firing, timeout=60, what="ModelFairnessDegraded firing")
    fired = [a for a in prometheus.alerts() if a["labels"].get("alertname") == "ModelFairnessDegraded"]
    assert [(a["labels"]["feature"], a["labels"]["team"], a["labels"]["version"]) for a in fired] == [
        ("x2", "ml", "mixed-v1")]

    retrained = cluster.wait_for(API, "DriftPolicy", NAMESPACE, POLICY,
                                 lambda o: bool((o or {})["status"].get("retrains")), timeout=60)  # fmt: skip
    assert retrained is not None, condition(cluster.get(API, "DriftPolicy", NAMESPACE, POLICY), "RetrainTriggered")
    assert "equalizedOddsDifference on x2" in retrained["status"]["retrains"][0]["reason"]
    assert len(cluster.list(API, "TrainingRun", NAMESPACE, label_selector=RUN_LABEL)) == 1
    events = {e["reason"] for e in cluster.list("v1", "Event", NAMESPACE) if e["involvedObject"]["name"] == POLICY}
    assert {"FairnessDegraded", "RetrainStarted"} <= events
