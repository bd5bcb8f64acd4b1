"""A version with every section of the model card filled, and the deployments and policy around it."""

from __future__ import annotations

import copy
from typing import Any

from modelops.plugin import views
from plugin.test_card_fairness import FAIRNESS, IMPORTANCE

SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

VERSION: dict[str, Any] = {
    "metadata": {"name": "loans-v2"},
    "spec": {
        "model": "loans", "version": 2, "stage": "Production", "task": "classification",
        "artifact": {"uri": "pvc://artifacts/loans/v2/model.skops", "sha256": SHA, "format": "skops"},
        "metrics": {"accuracy": 0.91, "ece": 0.08},
        "lineage": {
            "trainingRun": {"name": "loans-train"},
            "dataset": {"uri": "pvc://data/loans.csv", "rows": 2000, "target": "approved", "testSize": 0.2, "seed": 7},
            "estimator": "sklearn.linear_model.LogisticRegression", "params": {"C": 1.0},
            "calibration": {"method": "sigmoid", "cv": 5, "bins": 10, "rows": 400},
            "columns": [
                {"name": "income", "kind": "numeric", "missing": 12, "impute": "median", "indicator": True,
                 "scaled": True, "encoding": "none"},
                {"name": "region", "kind": "categorical", "missing": 0, "distinct": 4, "impute": "none",
                 "scaled": False, "encoding": "one-hot", "categories": 4},
            ],
        },
        "modelCard": {"description": "Scores loan applications.", "intendedUse": "Pre-screening, with a human.",
                      "limitations": "Trained on one region's 2024 applications.", "owners": ["risk@example.com"]},
        "fairness": FAIRNESS,
        "featureImportance": IMPORTANCE,
    },
    "status": {
        "stage": "Production",
        "gates": [{"stage": "Production", "metric": "accuracy", "op": ">=", "threshold": 0.9, "value": 0.91,
                   "passed": True, "source": "policy"},
                  {"stage": "Production", "metric": "fairness.age.demographicParityDifference", "op": "<=",
                   "threshold": 0.1, "value": 0.21, "passed": False, "source": "policy"}],
        "approvals": [{"stage": "Production", "user": "carol", "at": "2026-11-20T10:00:00Z"}],
        "history": [{"from": "None", "to": "Staging", "by": "op", "at": "2026-11-19T10:00:00Z", "reason": "asked"},
                    {"from": "Staging", "to": "Production", "by": "carol", "at": "2026-11-20T10:05:00Z",
                     "reason": "Production granted: approved by carol"}],
    },
}  # fmt: skip

DEPLOYMENT: dict[str, Any] = {
    "metadata": {"name": "loans"},
    "spec": {"model": "loans", "track": "Production"},
    "status": {
        "phase": "Healthy", "stableVersion": "loans-v2", "servingVersion": "loans-v2", "canaryWeight": 0,
        "analysis": [{"name": "error-rate", "phase": "Successful", "value": 0.001, "at": "2026-11-20T11:00:00Z"},
                     {"name": "accuracy", "phase": "Successful", "value": 0.9, "at": "2026-11-20T11:00:00Z",
                      "message": "live accuracy from 812 labels"}],
        "history": [{"version": "loans-v2", "fromVersion": "loans-v1", "result": "Promoted",
                     "at": "2026-11-20T11:00:00Z"},
                    {"version": "loans-v2", "fromVersion": "loans-v1", "result": "RolledBack",
                     "at": "2026-11-18T11:00:00Z", "message": "error-rate 0.2 > 0.05"}],
    },
}  # fmt: skip

POLICY: dict[str, Any] = {
    "metadata": {"name": "loans-drift"},
    "spec": {"deployment": "loans", "method": "psi"},
    "status": {"drifted": False, "lastEvaluation": "2026-11-21T00:00:00Z",
               "features": [{"name": "income", "score": 0.04, "threshold": 0.2, "drifted": False}]},
}  # fmt: skip


def card_view(version: dict[str, Any] | None = None) -> dict[str, Any]:
    """The card view of ``version`` (default: the full one) with the deployment and the policy."""
    body = copy.deepcopy(version if version is not None else VERSION)
    return views.model_card(body, "ml", [copy.deepcopy(DEPLOYMENT)], [copy.deepcopy(POLICY)])


#: The tables of the full card, by their data-table name.
TABLES = [
    "columns", "metrics", "fairness:age", "fairness:region", "importance", "gates", "approvals", "history",
    "rollouts", "rollout-history", "analysis", "drift:loans-drift",
]  # fmt: skip
#: Its charts and the bars each draws.
CHARTS = {"selection-rate:age": 3, "importance": len(IMPORTANCE["features"]), "drift:loans-drift": 1}
