"""The canary analysis's builtin ``fairness`` check: its decision, and its queries run by the real promtool.

The queries are held to fairlearn's demographic parity difference and to the smallest group's
rows on counters whose rows are known (the same rows as the recording rules' test); the decision
is checked case by case, and through ``decide`` with each inconclusivePolicy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fairlearn.metrics import demographic_parity_difference
from pydantic import ValidationError

from modelops.api.modeldeployment import AnalysisSpec, FairnessCheck, ModelDeploymentSpec
from modelops.logic import analysis
from modelops.logic.analysis import FairnessReading
from promkit import PROMTOOL, promtool_test
from unit.test_fairnessrules import series, window_rows
from unit.test_qualityrules import close

CHECK = FairnessCheck.model_validate({"feature": "sex", "maxIncrease": 0.05, "minGroupRows": 30, "window": "5m"})
TARGET = analysis.AnalysisTarget("ml", "shop", "churn", "churn-v1", "churn-v2")


@pytest.mark.parametrize(
    ("canary", "stable", "phase", "words"),
    [
        (FairnessReading(0.10, 40), FairnessReading(0.08, 40), "Successful", "within maxIncrease 0.05"),
        (FairnessReading(0.13, 40), FairnessReading(0.08, 40), "Successful", "within"),  # exactly maxIncrease
        (FairnessReading(0.14, 40), FairnessReading(0.08, 40), "Failed", "0.06 above the stable's 0.08"),
        (FairnessReading(0.02, 40), FairnessReading(0.30, 40), "Successful", "within"),  # fairer than the stable
        (FairnessReading(0.50, 29), FairnessReading(0.08, 40), "Inconclusive", "canary's smallest group of sex has 29"),
        (FairnessReading(0.50, 40), FairnessReading(0.08, 3), "Inconclusive", "stable's smallest group of sex has 3"),
        (FairnessReading(None, None), FairnessReading(0.08, 40), "Inconclusive", "canary served no row"),
        (FairnessReading(0.1, 40), None, "Inconclusive", "stable served no row"),
    ],
)
def test_the_decision(canary: FairnessReading, stable: FairnessReading | None, phase: str, words: str) -> None:
    measured = analysis.judge_fairness(CHECK, canary, stable)
    assert (measured.name, measured.phase) == ("fairness", phase), measured.message
    assert words in measured.message
    assert measured.value == canary.value


def test_without_a_stable_it_is_skipped() -> None:
    measured = analysis.judge_fairness(CHECK, FairnessReading(None, None), None, has_stable=False)
    assert measured.phase == "Successful"
    assert "skipped" in measured.message


@pytest.mark.parametrize(
    ("policy", "limit", "phase"), [("Pass", 1, "Successful"), ("Fail", 1, "Failed"), ("Pause", 2, "Inconclusive")]
)
def test_too_few_rows_follows_the_inconclusive_policy(policy: str, limit: int, phase: str) -> None:
    """A gap of 0.9 on 5 rows is no evidence of unfairness: it is whatever the policy says of no evidence."""
    measured = analysis.judge_fairness(CHECK, FairnessReading(0.9, 5), FairnessReading(0.0, 100))
    verdict = analysis.decide([measured], failure_limit=limit, inconclusive_policy=policy,  # type: ignore[arg-type]
                              previous=None, now="2026-01-01T00:00:00Z")  # fmt: skip
    assert verdict.phase == phase


def test_the_spec_names_it_and_refuses_bad_bounds() -> None:
    spec = AnalysisSpec.model_validate({"builtin": {"fairness": {"feature": "sex"}}})
    assert analysis.check_names(spec)[-1] == "fairness"
    assert spec.builtin.fairness is not None
    assert spec.builtin.fairness.max_increase == 0.05
    for bad in ({}, {"feature": ""}, {"feature": "sex", "maxIncrease": -0.1}, {"feature": "sex", "minGroupRows": 0}):
        with pytest.raises(ValidationError):
            FairnessCheck.model_validate(bad)
    ModelDeploymentSpec.model_validate(
        {"model": "churn", "modelVersion": "v1", "analysis": {"builtin": {"fairness": {"feature": "sex"}}}}
    )


@pytest.mark.skipif(not Path(PROMTOOL).exists(), reason="promtool is not installed")
def test_the_queries_give_fairlearns_gap_and_the_smallest_group(tmp_path: Path) -> None:
    """churn-v1 (two classes) is the stable, churn-v2 (three) the canary: per version, the query is
    fairlearn's gap over the known groups (worst class), and the evidence the smallest such group."""
    seeds = [1, 2]
    input_series = []
    tests = []
    for version, classes in (("churn-v1", 2), ("churn-v2", 3)):
        for i, seed in enumerate(seeds):
            input_series += series(f"p-{i}", version, seed, classes, "sex")
        input_series += series("p-0", version, 4, classes, "age")  # another feature: not read
        group, predicted = window_rows(seeds, classes)
        known = group != "__other__"
        gap = max(
            demographic_parity_difference(hit, hit, sensitive_features=group[known])
            for hit in ((predicted[known] == c).astype(int) for c in range(classes))
        )
        rows = min(int(np.sum(group == g)) for g in ("A", "B", "C"))
        tests += [
            close(analysis.fairness_query(CHECK, TARGET, version), float(gap), {}),
            close(analysis.fairness_evidence_query(CHECK, TARGET, version), float(rows), {}),
        ]
    result = promtool_test(tmp_path, [{"name": "none", "rules": []}],
                           [{"interval": "1m", "input_series": input_series, "promql_expr_test": tests}])  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_check_on_equalized_odds_reads_labels_by_group_and_says_so() -> None:
    odds = CHECK.model_copy(update={"metric": "equalizedOddsDifference"})
    failed = analysis.judge_fairness(odds, FairnessReading(0.30, 40), FairnessReading(0.10, 40))
    assert failed.phase == "Failed"
    assert failed.message.startswith("equalized odds difference on sex 0.3 is 0.2 above the stable's 0.1")
    few = analysis.judge_fairness(odds, FairnessReading(0.30, 12), FairnessReading(0.10, 40))
    assert "canary's smallest group of sex has 12 labels" in few.message
    none = analysis.judge_fairness(odds, FairnessReading(None, None), FairnessReading(0.10, 40))
    assert "the canary has no labels of a group of sex" in none.message
    # Its queries are the equalized odds ones (held to fairlearn in unit.test_fairnessrules).
    assert analysis.fairness_query(odds, TARGET, "churn-v2") == analysis.equalized_odds_query(odds, TARGET, "churn-v2")
    assert "modelops_feedback_group_labels_total" in analysis.fairness_evidence_query(odds, TARGET, "churn-v2")
    assert "modelops_group_predictions_total" in analysis.fairness_query(CHECK, TARGET, "churn-v2")
    with pytest.raises(ValidationError):
        FairnessCheck.model_validate({"feature": "sex", "metric": "recall"})
