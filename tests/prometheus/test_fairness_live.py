"""Live fairness end to end: a real ``modelops serve``, scraped by a real Prometheus running the operator's rules.

The mixed model (a categorical colour and two numbers) is served with a fairness record naming
``colour`` (groups blue and red: green is ``__other__``) and ``x2`` binned at 4 and 6, two
workers in one pod. Held-out rows go through it in batches and one by one; then the
selection rates per group and the demographic parity difference per feature that the generated
recording rules write must be fairlearn's on the same rows and the model's own predictions, to
1e-9 (one pod: ``increase`` scales every counter of the window alike, so the ratios are exact).
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.datasets import load_diabetes
from sklearn.metrics import mean_absolute_error

from modelops.logic import fairnessrules
from prometheus.test_quality_live import DEPLOYMENT, quality_rules, scrape, value, wait_counted_and_evaluated
from promkit import Prometheus
from serve import modelkit
from serve.conftest import Server
from serve.test_feedback_parts import one_key_dir

BINS = ["<4", "[4, 6)", ">=6"]


def model_with_fairness(tmp_path: Path) -> modelkit.ModelDir:
    model = modelkit.categorical(tmp_path / "built")
    shutil.copytree(model.path, tmp_path / "served")
    model.path = tmp_path / "served"
    record_fairness(model.path)
    return model


def record_fairness(path: Path) -> None:
    """Give the mixed model's result.json the fairness record training would: colour and x2 binned at 4 and 6."""
    result = json.loads((path / "result.json").read_text())
    group = {"count": 40, "insufficient": False}
    result["fairness"] = {"rows": 80, "minGroupSize": 30, "features": [
        {"name": "colour", "kind": "categorical", "usedAsInput": True, "metrics": {},
         "groups": [{"group": g, **group} for g in ("blue", "red")]},
        {"name": "x2", "kind": "binned", "bins": [4, 6], "usedAsInput": True, "metrics": {},
         "groups": [{"group": g, **group} for g in BINS]},
    ]}  # fmt: skip
    (path / "result.json").write_text(json.dumps(result))


def test_recorded_selection_rates_and_parity_are_fairlearns(prometheus: Prometheus, tmp_path: Path) -> None:
    model = model_with_fairness(tmp_path)
    rows = pd.concat([model.test_x] * 3, ignore_index=True)  # enough rows for every group
    server = Server(model.path, "--workers", "2").wait_ready()
    try:
        prometheus.set_rule_files([quality_rules(tmp_path, model.name, "fairness")])
        scrape(prometheus, [server])
        for start in range(0, len(rows), 7):
            part = rows.iloc[start : start + 7]
            r = server.post(f"/v2/models/{model.name}/infer", json=modelkit.frame_body(part, model.categorical))
            assert r.status_code == 200, r.text
        where = f'namespace="ml",deployment="{DEPLOYMENT}",model="{model.name}",version="1"'
        raw = f'sum(modelops_group_predictions_total{{{where},feature="colour"}})'
        recorded = f'{where},window="1h"'
        wait_counted_and_evaluated(prometheus, raw, len(rows), f'{fairnessrules.GROUP_ROWS}{{{recorded},'
                                   'feature="colour",group="red"}', "prediction")  # fmt: skip
    finally:
        server.close()

    selected = (model.pipeline.predict(rows) == "yes").astype(int)
    features = {
        "colour": rows["colour"].where(rows["colour"].isin(["blue", "red"]), "__other__").to_numpy(),
        "x2": pd.cut(rows["x2"], [-np.inf, 4, 6, np.inf], right=False, labels=BINS).astype(str).to_numpy(),
    }
    assert "__other__" in set(features["colour"])  # green is not a recorded group
    for feature, groups in features.items():
        rates = MetricFrame(metrics=selection_rate, y_true=selected, y_pred=selected, sensitive_features=groups)
        for group, rate in rates.by_group.items():
            got = value(prometheus, f'{fairnessrules.SELECTION_RATE}{{{recorded},feature="{feature}",'
                                    f'group="{group}",class="yes"}}')  # fmt: skip
            assert got == pytest.approx(float(rate), abs=1e-9)
        known = groups != "__other__"
        gap = demographic_parity_difference(selected[known], selected[known], sensitive_features=groups[known])
        got = value(prometheus, f'{fairnessrules.DP_DIFFERENCE}{{{recorded},feature="{feature}"}}')
        assert got == pytest.approx(float(gap), abs=1e-9)
        assert gap > 0.01  # not trivially equal groups


def predict_and_label(
    server: Server, name: str, truth: Any, sizes: tuple[int, ...], body: Callable[[int, int], dict[str, Any]]
) -> list[Any]:
    """Every row through the server in requests of ``sizes`` rows in turn (``body(first row, rows)``), each
    request's labels sent straight back with its id; every row's prediction, in order."""
    served: list[Any] = []
    start = 0
    for size in itertools.cycle(sizes):
        if start >= len(truth):
            return served
        r = server.post(f"/v2/models/{name}/infer", json=body(start, size))
        assert r.status_code == 200, r.text
        served += list(r.json()["outputs"][0]["data"])
        actual = truth[start : start + size].tolist()
        back = server.post(f"/v2/models/{name}/feedback",
                           json={"id": r.json()["id"], "actual": actual if len(actual) > 1 else actual[0]})  # fmt: skip
        assert back.status_code == 200, back.text
        assert back.json()["counted"] == len(actual), back.text
        start += size
    raise AssertionError("unreachable")


def test_recorded_recall_and_equalized_odds_are_fairlearns_on_labels_fed_back(
    prometheus: Prometheus, tmp_path: Path
) -> None:
    """Labels sent back with the ids the predictions came with: each id names its rows' groups, so
    the per-group recall and false positive rate, and the equalized odds difference per feature, that
    the rules record must be fairlearn's on the same rows, their labels and the model's predictions."""
    model = model_with_fairness(tmp_path)
    rows = pd.concat([model.test_x] * 3, ignore_index=True)
    predicted = model.pipeline.predict(rows)
    # The truth: the rule the data was made by, with a seeded fifth of it flipped, so every group has errors.
    truth = np.where(((rows["colour"] == "red") & (rows["x1"] > 0)) | (rows["x2"] > 6), "yes", "no")
    flip = np.random.default_rng(7).random(len(rows)) < 0.2
    truth = np.where(flip, np.where(truth == "yes", "no", "yes"), truth)
    keys_dir = one_key_dir(tmp_path / "keys")
    server = Server(model.path, "--workers", "2", "--feedback-keys", str(keys_dir), "--feedback-scope",
                    f"ml/{DEPLOYMENT}").wait_ready()  # fmt: skip
    try:
        prometheus.set_rule_files([quality_rules(tmp_path, model.name, "fairness")])
        scrape(prometheus, [server])
        # Batches, and batches of one row (whose ids are packed apart).
        served = predict_and_label(server, model.name, truth, (7, 1, 5),
                                   lambda at, size: modelkit.frame_body(rows.iloc[at : at + size], model.categorical))
        assert served == list(predicted)
        where = f'namespace="ml",deployment="{DEPLOYMENT}",model="{model.name}",version="1"'
        raw = f'sum(modelops_feedback_group_labels_total{{{where},feature="x2"}})'
        recorded = f'{where},window="1h"'
        wait_counted_and_evaluated(prometheus, raw, len(rows), f'{fairnessrules.EO_DIFFERENCE}{{{recorded},'
                                   'feature="x2"}', "label")  # fmt: skip
    finally:
        server.close()

    features = {
        "colour": rows["colour"].where(rows["colour"].isin(["blue", "red"]), "__other__").to_numpy(),
        "x2": pd.cut(rows["x2"], [-np.inf, 4, 6, np.inf], right=False, labels=BINS).astype(str).to_numpy(),
    }
    y_true, y_pred = truth == "yes", predicted == "yes"
    for feature, groups in features.items():
        frame = MetricFrame(metrics={"recall": true_positive_rate, "fpr": false_positive_rate}, y_true=y_true,
                            y_pred=y_pred, sensitive_features=groups)  # fmt: skip
        for group, by in frame.by_group.iterrows():
            at = f'{recorded},feature="{feature}",group="{group}",class="yes"'
            assert value(prometheus, f"{fairnessrules.RECALL}{{{at}}}") == pytest.approx(by["recall"], abs=1e-9)
            assert value(prometheus, f"{fairnessrules.FALSE_POSITIVE_RATE}{{{at}}}") == pytest.approx(
                by["fpr"], abs=1e-9
            )
            # increase() extrapolates counts (alike in one pod): a group's share of the labels is exact.
            share = (f'{fairnessrules.GROUP_LABELS}{{{recorded},feature="{feature}",group="{group}"}} / scalar('
                     f'sum({fairnessrules.GROUP_LABELS}{{{recorded},feature="{feature}"}}))')  # fmt: skip
            assert value(prometheus, share) == pytest.approx((groups == group).mean(), abs=1e-9)
        known = groups != "__other__"
        gap = equalized_odds_difference(y_true[known], y_pred[known], sensitive_features=groups[known])
        assert gap > 0.01  # not trivially equal groups
        for name, series in ((fairnessrules.EO_DIFFERENCE, 1), (fairnessrules.CLASS_EO_DIFFERENCE, 2)):
            found = prometheus.query(f'{name}{{{recorded},feature="{feature}"}}')
            assert len(found) == series, found  # per class: yes and no, equal for two classes
            for got in found:
                assert float(got["value"][1]) == pytest.approx(float(gap), abs=1e-9)
        fewest = min((groups == g).mean() for g in set(groups[known]))
        got = value(prometheus, f'{fairnessrules.MIN_GROUP_LABELS}{{{recorded},feature="{feature}"}} / scalar('
                                f'sum({fairnessrules.GROUP_LABELS}{{{recorded},feature="{feature}"}}))')  # fmt: skip
        assert got == pytest.approx(fewest, abs=1e-9)


def test_a_regressions_mae_per_group_and_its_gap_are_fairlearns(prometheus: Prometheus, tmp_path: Path) -> None:
    """A regression: its ids name the rows' groups too, so the labels sent back give each group's mean
    absolute error and the gap between them (training's maeDifference), fairlearn's on the same rows."""
    model = modelkit.diabetes(tmp_path / "built")
    shutil.copytree(model.path, tmp_path / "served")
    model.path = tmp_path / "served"
    result = json.loads((model.path / "result.json").read_text())
    names = ["<-0.02", "[-0.02, 0.03)", ">=0.03"]
    result["fairness"] = {"rows": 80, "minGroupSize": 10, "features": [
        {"name": "bmi", "kind": "binned", "bins": [-0.02, 0.03], "binLabels": names, "usedAsInput": True,
         "metrics": {}, "groups": [{"group": g, "count": 30, "insufficient": False} for g in names]},
    ]}  # fmt: skip
    (model.path / "result.json").write_text(json.dumps(result))
    x = model.test_x.to_numpy(dtype=np.float64)
    truth = np.asarray(modelkit._split(*load_diabetes(return_X_y=True, as_frame=True))[3], dtype=np.float64)
    predicted = model.pipeline.predict(model.test_x)
    keys_dir = one_key_dir(tmp_path / "keys")
    server = Server(model.path, "--feedback-keys", str(keys_dir), "--feedback-scope", f"ml/{DEPLOYMENT}").wait_ready()
    try:
        prometheus.set_rule_files([quality_rules(tmp_path, model.name, "fairness")])
        scrape(prometheus, [server])
        def tensor(at: int, size: int) -> dict[str, Any]:
            rows = x[at : at + size]
            return {"inputs": [{"name": "x", "shape": list(rows.shape), "datatype": "FP64",
                                "data": rows.ravel().tolist()}]}  # fmt: skip

        predict_and_label(server, model.name, truth, (1, 6), tensor)  # single rows (the row path) and batches
        where = f'namespace="ml",deployment="{DEPLOYMENT}",model="{model.name}",version="1"'
        raw = f'sum(modelops_feedback_group_labels_total{{{where},feature="bmi"}})'
        recorded = f'{where},window="1h"'
        wait_counted_and_evaluated(prometheus, raw, len(x), f'{fairnessrules.MAE_DIFFERENCE}{{{recorded},'
                                   'feature="bmi"}', "label")  # fmt: skip
        served = value(prometheus, f'sum(modelops_group_predictions_total{{{where},feature="bmi"}})')
        assert served == len(x)
        # A regression has no selection rate: its counts carry no class, and no parity is recorded.
        assert prometheus.query(f'{fairnessrules.DP_DIFFERENCE}{{{recorded}}}') == []
    finally:
        server.close()

    groups = pd.cut(model.test_x["bmi"], [-np.inf, -0.02, 0.03, np.inf], right=False, labels=names).astype(str)
    frame = MetricFrame(metrics=mean_absolute_error, y_true=truth, y_pred=predicted, sensitive_features=groups)
    assert len(frame.by_group) == 3
    for group, mae in frame.by_group.items():
        got = value(prometheus, f'{fairnessrules.GROUP_MAE}{{{recorded},feature="bmi",group="{group}"}}')
        assert got == pytest.approx(float(mae), abs=1e-9)
    gap = value(prometheus, f'{fairnessrules.MAE_DIFFERENCE}{{{recorded},feature="bmi"}}')
    assert gap == pytest.approx(float(frame.difference(method="between_groups")), abs=1e-9)
    assert gap > 1.0
