"""``kubectl modelops card`` shows a version's fairness record and feature importance as tables,
and a fairness gate's insufficient evidence beside its verdict."""

from __future__ import annotations

from typing import Any

from modelops.plugin import card as cardpage
from modelops.plugin import views

FAIRNESS: dict[str, Any] = {
    "library": "fairlearn 0.15.0", "rows": 400, "minGroupSize": 30, "positiveClass": "approved",
    "features": [
        {"name": "age", "kind": "binned", "bins": [30, 50], "usedAsInput": False,
         "metrics": {"demographicParityDifference": 0.21, "equalizedOddsDifference": 0.05},
         "groups": [{"group": "<30", "count": 120, "insufficient": False, "selectionRate": 0.2, "recall": 0.61},
                    {"group": "[30, 50)", "count": 270, "insufficient": False, "selectionRate": 0.41},
                    {"group": ">=50", "count": 10, "insufficient": True, "selectionRate": 0.3}]},
        {"name": "region", "kind": "categorical", "usedAsInput": True, "metrics": {},
         "groups": [{"group": "north", "count": 400, "insufficient": False,
                     "selectionRateByClass": {"a": 0.25, "b": 0.75}}]},
    ],
}  # fmt: skip
IMPORTANCE = {"method": "permutation", "scoring": "accuracy", "baseline": 0.91, "rows": 400, "repeats": 5, "seed": 42,
              "features": [{"feature": "income", "mean": 0.12, "std": 0.01},
                           {"feature": "region", "mean": 0.003, "std": 0.002}]}  # fmt: skip


def section(markdown: str, title: str) -> str:
    return markdown.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def card(**spec: Any) -> str:
    gate = {"stage": "Production", "metric": "fairness.age.groups.>=50.selectionRate", "op": ">=", "threshold": 0.1,
            "value": 0.3, "passed": False, "source": "policy",
            "insufficientEvidence": "group >=50 (10 held-out rows, fewer than 30)"}  # fmt: skip
    body = {"metadata": {"name": "loans-v1"}, "spec": {"model": "loans", "version": 1, **spec},
            "status": {"gates": [gate]}}  # fmt: skip
    data = views.model_card(body, "ml", [], [])
    assert data["fairness"] == spec.get("fairness")
    assert data["featureImportance"] == spec.get("featureImportance")
    return cardpage.to_markdown(data)


def test_the_card_has_a_table_per_sensitive_feature() -> None:
    fairness = section(card(fairness=FAIRNESS), "Fairness")
    assert "On 400 held-out rows (fairlearn 0.15.0); selection: positive class `approved`" in fairness
    assert "### age (binned at 30, 50; not an input)" in fairness
    assert "demographicParityDifference **0.21**, equalizedOddsDifference **0.05**" in fairness
    assert "| group | rows | selectionRate | recall | evidence |" in fairness
    assert "| <30 | 120 | 0.2 | 0.61 | ok |" in fairness
    assert "| [30, 50) | 270 | 0.41 | — | ok |" in fairness
    assert "| >=50 | 10 | 0.3 | — | insufficient |" in fairness
    assert "### region (categorical; an input)" in fairness
    assert "_no gap is defined_" in fairness
    assert "| north | 400 | a: 0.25, b: 0.75 | ok |" in fairness


def test_the_card_lists_importance_most_important_first() -> None:
    importance = section(card(featureImportance=IMPORTANCE), "Feature importance")
    assert "Drop of accuracy (baseline 0.91) when a column is shuffled: 5 shuffles each, 400 held-out" in importance
    assert importance.index("| income | 0.12 | 0.01 |") < importance.index("| region | 0.003 | 0.002 |")


def test_a_gate_on_too_few_rows_says_so_and_versions_without_records_say_that() -> None:
    markdown = card()
    assert "FAIL (insufficient evidence: group >=50 (10 held-out rows, fewer than 30))" in section(markdown, "Gates")
    assert "_not measured (spec.evaluation.sensitiveFeatures of the TrainingRun)_" in section(markdown, "Fairness")
    assert "_not recorded_" in section(markdown, "Feature importance")
