"""The chart passes the fairness knobs of the governance policy to the operator, and its values
schema refuses nonsense in them."""

from __future__ import annotations

from typing import Any

import helm_python
import pytest
import yaml
from chartkit import NAMESPACE, Render, one

from modelops.logic import policy as policy_logic

FAIR = {"governance": {"stages": {"Production": {
    "minGroupSize": 100, "allowInsufficientEvidence": False,
    "gates": [{"metric": "fairness.sex.demographicParityDifference", "op": "<=", "threshold": 0.1}],
}, "Staging": {"allowInsufficientEvidence": True}}}}  # fmt: skip


def test_fairness_knobs_reach_the_operators_policy(render: Render) -> None:
    text = one(render(FAIR), "ConfigMap", "modelops-operator-policy")["data"]["policy.yaml"]
    policy = policy_logic.parse(yaml.safe_load(text))
    production = policy.stage("Production")
    assert (production.min_group_size, production.allow_insufficient_evidence) == (100, False)
    assert production.gates[0].metric == "fairness.sex.demographicParityDifference"
    assert policy.stage("Staging").allow_insufficient_evidence is True


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"governance": {"stages": {"Production": {"minGroupSize": -5}}}},
         "/governance/stages/Production/minGroupSize"),
        ({"governance": {"stages": {"Staging": {"allowInsufficientEvidence": "yes"}}}},
         "/governance/stages/Staging/allowInsufficientEvidence"),
    ],
)  # fmt: skip
def test_the_schema_refuses_nonsense_in_them(chart: helm_python.Chart, values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as caught:
        chart.render(values, name="modelops", namespace=NAMESPACE, is_install=True)
    assert message in str(caught.value)
