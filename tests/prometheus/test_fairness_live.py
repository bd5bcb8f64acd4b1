"""Live fairness end to end: a real ``modelops serve``, scraped by a real Prometheus running the operator's rules.

The mixed model (a categorical colour and two numbers) is served with a fairness record naming
``colour`` (groups blue and red: green is ``__other__``) and ``x2`` binned at 4 and 6, two
workers in one pod. Held-out rows go through it in batches and one by one; then the
selection rates per group and the demographic parity difference per feature that the generated
recording rules write must be fairlearn's on the same rows and the model's own predictions, to
1e-9 (one pod: ``increase`` scales every counter of the window alike, so the ratios are exact).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, demographic_parity_difference, selection_rate

from modelops.logic import fairnessrules
from prometheus.test_quality_live import DEPLOYMENT, quality_rules, scrape, value
from promkit import Prometheus
from serve import modelkit
from serve.conftest import Server

BINS = ["<4", "[4, 6)", ">=6"]


def model_with_fairness(tmp_path: Path) -> modelkit.ModelDir:
    model = modelkit.categorical(tmp_path / "built")
    shutil.copytree(model.path, tmp_path / "served")
    model.path = tmp_path / "served"
    result = json.loads((model.path / "result.json").read_text())
    group = {"count": 40, "insufficient": False}
    result["fairness"] = {"rows": 80, "minGroupSize": 30, "features": [
        {"name": "colour", "kind": "categorical", "usedAsInput": True, "metrics": {},
         "groups": [{"group": g, **group} for g in ("blue", "red")]},
        {"name": "x2", "kind": "binned", "bins": [4, 6], "usedAsInput": True, "metrics": {},
         "groups": [{"group": g, **group} for g in BINS]},
    ]}  # fmt: skip
    (model.path / "result.json").write_text(json.dumps(result))
    return model


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
        prometheus.wait(lambda: prometheus.query(raw) and value(prometheus, raw) == len(rows), timeout=60,
                        what="every prediction scraped")  # fmt: skip
        complete_at = time.time()
        recorded = f'{where},window="1h"'
        evaluated = f"timestamp({fairnessrules.GROUP_ROWS}{{{recorded},feature=\"colour\",group=\"red\"}})"
        prometheus.wait(lambda: prometheus.query(evaluated) and value(prometheus, evaluated) > complete_at + 1,
                        timeout=60, what="the rules evaluated on every prediction")  # fmt: skip
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
