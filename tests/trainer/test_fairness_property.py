"""Fairness on tables we did not design: the messy churn export, and generated degenerate ones.

Given the churn export with its gaps (5 % of ``region`` missing, ``age`` with gaps) and text
labels ``yes``/``no``, when a run evaluates by ``region`` (kept out of the inputs) and by ``age``
in bins, then the missing values are a group of their own and the positive class is ``yes``.
And for any small table -- one group, one row per group, every prediction the same class, a
label absent from a group -- the trainer's record has fairlearn's own numbers, counts that add
up, and never raises or warns (warnings are errors in this suite).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import demographic_parity_difference, demographic_parity_ratio, equalized_odds_difference
from hypothesis import HealthCheck, given, settings

import messytables
from modelops.api.trainingrun import EvaluationSpec
from modelops.train import fairness
from trainer.conftest import config_for, run_in_process


def test_the_churn_export_is_evaluated_by_its_gappy_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = messytables.write_csv(messytables.customers(rows=2000), tmp_path / "customers.csv")
    cfg = config_for(
        str(path), target="churned", dataset={"features": ["age", "income", "tenure_months", "num_products", "plan"]},
        evaluation={"sensitiveFeatures": [{"name": "region", "useAsInput": False},
                                          {"name": "age", "bins": [30, 60], "labels": ["young", "middle", "old"]}]},
    )  # fmt: skip
    run = run_in_process(cfg, tmp_path, capsys)
    assert run.returncode == 0, run.stderr
    record = run.result()["fairness"]
    assert record["positiveClass"] == "yes"
    region, age = record["features"]
    assert region["groups"][-1]["group"] == "(missing)"
    assert region["groups"][-1]["count"] > 0
    assert [g["group"] for g in age["groups"]] == ["young", "middle", "old", "(missing)"]
    assert sum(g["count"] for g in age["groups"]) == record["rows"] == sum(g["count"] for g in region["groups"])
    assert set(region["metrics"]) == {"demographicParityDifference", "demographicParityRatio",
                                      "equalizedOddsDifference"}  # fmt: skip


@st.composite
def tables(draw: Any) -> tuple[pd.DataFrame, list[str]]:
    rows = draw(st.integers(1, 40))
    groups = draw(st.lists(st.sampled_from(["a", "b", "c", None]), min_size=rows, max_size=rows))
    labels = draw(st.sampled_from([["no", "yes"], ["0", "1"]]))
    y_true = draw(st.lists(st.sampled_from(labels), min_size=rows, max_size=rows))
    y_pred = draw(st.lists(st.sampled_from(labels), min_size=rows, max_size=rows))
    frame = pd.DataFrame({"g": pd.Series(groups, dtype=object), "y": y_true, "p": y_pred})
    return frame, labels


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=tables(), min_group=st.integers(1, 10))
def test_any_small_table_gets_fairlearns_numbers_and_counts_that_add_up(
    data: tuple[pd.DataFrame, list[str]], min_group: int
) -> None:
    frame, classes = data
    evaluation = EvaluationSpec.model_validate({"sensitiveFeatures": [{"name": "g"}], "minGroupSize": min_group})
    groupings = fairness.groupings(frame, evaluation, [], "generated")
    record = fairness.evaluate(groupings, frame.index, frame["y"], frame["p"], "classification", classes, evaluation)
    feature = record["features"][0]
    labels = frame["g"].where(frame["g"].notna(), fairness.MISSING).astype(object)
    present = set(labels)
    assert [g["group"] for g in feature["groups"]] == sorted(present - {fairness.MISSING}) + (
        [fairness.MISSING] if fairness.MISSING in present else []
    )
    assert sum(g["count"] for g in feature["groups"]) == len(frame)
    for group in feature["groups"]:
        assert group["insufficient"] == (group["count"] < min_group)
        assert group["positives"] + group["negatives"] == group["count"]
    truth, predicted = (frame["y"] == classes[1]).to_numpy(), (frame["p"] == classes[1]).to_numpy()
    expected = {
        "demographicParityDifference": demographic_parity_difference(truth, predicted, sensitive_features=labels),
        "demographicParityRatio": demographic_parity_ratio(truth, predicted, sensitive_features=labels),
    }
    if truth.any() and not truth.all():
        expected["equalizedOddsDifference"] = equalized_odds_difference(truth, predicted, sensitive_features=labels)
    assert feature["metrics"] == pytest.approx({k: v for k, v in expected.items() if np.isfinite(v)})
