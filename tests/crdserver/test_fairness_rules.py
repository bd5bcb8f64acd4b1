"""Fairness and feature importance on the real apiextensions-apiserver: the CEL rules of
``spec.evaluation`` refuse bad sensitive features before the operator sees them, and a version's
``spec.fairness`` and ``spec.featureImportance`` are immutable once set, like its metrics."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from crdserver.test_real_apiserver import _create, _example, assert_immutable
from realapi import RealServer

pytestmark = pytest.mark.crdserver

RECORD = {
    "library": "fairlearn 0.15.0", "rows": 114, "minGroupSize": 30, "positiveClass": "1",
    "features": [{"name": "sex", "kind": "categorical", "usedAsInput": False,
                  "metrics": {"demographicParityDifference": 0.2},
                  "groups": [{"group": "F", "count": 60, "insufficient": False, "selectionRate": 0.5},
                             {"group": "M", "count": 54, "insufficient": False, "selectionRate": 0.7}]}],
}  # fmt: skip
IMPORTANCE = {"method": "permutation", "scoring": "accuracy", "baseline": 0.95, "rows": 114, "repeats": 5, "seed": 42,
              "features": [{"feature": "mean radius", "mean": 0.02, "std": 0.004}]}  # fmt: skip


@pytest.mark.parametrize(
    ("evaluation", "message"),
    [
        ({"sensitiveFeatures": [{"name": "sex"}, {"name": "sex"}]},
         "spec.evaluation.sensitiveFeatures: each column may be listed once"),
        ({"sensitiveFeatures": [{"name": "sex"}], "intersections": [["sex", "race"]]},
         "spec.evaluation.intersections: each pair names two different sensitiveFeatures"),
        ({"sensitiveFeatures": [{"name": "sex"}], "intersections": [["sex", "sex"]]},
         "spec.evaluation.intersections: each pair names two different sensitiveFeatures"),
        ({"sensitiveFeatures": [{"name": "age", "labels": ["young", "old"]}]},
         "labels needs bins, and one label more than bins"),
        ({"sensitiveFeatures": [{"name": "age", "bins": [40], "labels": ["young"]}]},
         "labels needs bins, and one label more than bins"),
        ({"sensitiveFeatures": [{"name": "age", "bins": [20, 40, 60]}], "maxGroups": 3},
         "spec.evaluation.sensitiveFeatures: bins make more groups than spec.evaluation.maxGroups"),
    ],
)  # fmt: skip
def test_evaluation_rules_refuse_bad_sensitive_features(
    real_server: RealServer, namespace: str, evaluation: dict[str, Any], message: str
) -> None:
    obj = copy.deepcopy(_example("TrainingRun"))
    obj["spec"]["evaluation"] = evaluation
    response = _create(real_server, obj, namespace)
    assert response.status_code == 422, response.text
    assert message in response.json()["message"]


def test_a_good_evaluation_is_stored_with_its_defaults(real_server: RealServer, namespace: str) -> None:
    obj = copy.deepcopy(_example("TrainingRun"))
    obj["spec"]["evaluation"] = {
        "sensitiveFeatures": [{"name": "sex", "useAsInput": False}, {"name": "age", "bins": [30, 50]}],
        "intersections": [["sex", "age"]],
    }
    response = _create(real_server, obj, namespace)
    assert response.status_code == 201, response.text
    stored = response.json()["spec"]["evaluation"]
    assert (stored["minGroupSize"], stored["maxGroups"]) == (30, 50)
    assert stored["sensitiveFeatures"][1] == {"name": "age", "bins": [30, 50], "useAsInput": True}


@pytest.mark.parametrize(
    ("field", "value", "change"),
    [
        ("fairness", RECORD, lambda spec: spec["fairness"]["features"][0]["groups"][0].update(selectionRate=0.7)),
        ("fairness", RECORD, lambda spec: spec.pop("fairness")),
        ("featureImportance", IMPORTANCE, lambda spec: spec["featureImportance"].update(repeats=2)),
        ("featureImportance", IMPORTANCE, lambda spec: spec.pop("featureImportance")),
    ],
)
def test_the_records_are_immutable_once_set(
    real_server: RealServer, namespace: str, field: str, value: dict[str, Any], change: Any
) -> None:
    obj = copy.deepcopy(_example("ModelVersion"))
    obj["spec"][field] = value
    created = _create(real_server, obj, namespace)
    assert created.status_code == 201, created.text
    stored = created.json()
    assert stored["spec"][field] == value  # stored as written, nothing pruned
    assert_immutable(real_server, namespace, stored, change, field)
