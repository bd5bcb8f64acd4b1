"""The generated drift rules, run by the real promtool on series whose drift is known.

The rules and the promtool unit-test file come from the same Python: the live counts per
bin are chosen here, written as cumulative ``le`` buckets (spelled as ``modelops serve``
spells them) and category counters, and the PSI promtool must record is the drift
library's own ``psi`` on the same counts.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelops.api.driftpolicy import DriftPolicySpec
from modelops.drift import bins as binning
from modelops.drift import compare_binned
from modelops.drift.methods import psi
from modelops.logic import driftrules as r
from modelops.logic.driftrules import Target
from promkit import PROMTOOL, promtool_test

pytestmark = pytest.mark.skipif(not Path(PROMTOOL).exists(), reason="promtool is not installed")

# x: four even bins. big: edges that exercise le spellings (1e+06 forms, an integer, a tiny one).
REFERENCE: dict[str, Any] = {
    "sampleSize": 100,
    "features": [
        {"name": "x", "kind": "numeric", "edges": [0.0, 1.0, 2.0, 3.0, 4.0], "counts": [25, 25, 25, 25]},
        {"name": "big value (cm)", "kind": "numeric", "edges": [0.0, 0.00012, 5.0, 1234567.5, 2e6],
         "counts": [10, 40, 40, 10]},
        {"name": "colour", "kind": "categorical", "categories": ["red", "blue", "__other__"], "counts": [50, 30, 20]},
    ],
}  # fmt: skip
TARGET = Target(policy="inputs", namespace="ml", deployment="iris", model="iris", version="iris-v3", uid="u-1")
# Live counts per bin added each minute: x as in training, the other two shifted.
PER_MINUTE = {"x": [10, 10, 10, 10], "big value (cm)": [1, 2, 10, 27], "colour": {"red": 5, "blue": 5, "__other__": 30}}


def policy(**changes: Any) -> DriftPolicySpec:
    raw: dict[str, Any] = {
        "deployment": "iris", "window": "5m", "threshold": 0.2, "minSamples": 100,
        "actions": {"alert": {"for": "2m", "severity": "critical", "labels": {"team": "ml"}}},
    }  # fmt: skip
    raw.update(changes)
    return DriftPolicySpec.model_validate(raw)


def input_series() -> list[dict[str, str]]:
    series = []
    base = 'deployment="iris", model="iris", version="iris-v3"'
    reference = binning.parse_reference_stats(REFERENCE)
    for name in ("x", "big value (cm)"):
        feature = reference[name]
        assert isinstance(feature, binning.NumericBins)
        cumulative = np.cumsum(PER_MINUTE[name])
        bounds = [r.client_float(float(e)) for e in feature.interior] + ["+Inf"]
        for le, step in zip(bounds, cumulative, strict=True):
            series.append({"series": f'modelops_feature_bucket{{{base}, feature="{name}", le="{le}"}}',
                           "values": f"0+{int(step)}x20"})  # fmt: skip
    for category, step in PER_MINUTE["colour"].items():  # type: ignore[union-attr]
        series.append({"series": f'modelops_feature_category_total{{{base}, feature="colour", category="{category}"}}',
                       "values": f"0+{step}x20"})  # fmt: skip
    # Another version's series must not count, nor another deployment's of the same version.
    series.append({"series": 'modelops_feature_bucket{deployment="iris", model="iris", version="iris-v2", feature="x", '
                             'le="+Inf"}', "values": "0+1000x20"})  # fmt: skip
    series.append({"series": 'modelops_feature_bucket{deployment="iris-eu", model="iris", version="iris-v3", '
                             'feature="x", le="+Inf"}', "values": "0+1000x20"})  # fmt: skip
    return series


def expected_psi(name: str) -> float:
    reference = binning.parse_reference_stats(REFERENCE)[name]
    live = PER_MINUTE[name]
    counts = np.array(list(live.values()) if isinstance(live, dict) else live, dtype=float)
    return psi(reference.counts, counts)


def run_promtool(
    tmp_path: Path, spec: DriftPolicySpec, tests: list[dict[str, Any]]
) -> subprocess.CompletedProcess[str]:
    reference = binning.parse_reference_stats(REFERENCE)
    rule = r.prometheus_rule(spec, TARGET, reference, list(reference), {"release": "kps"})
    return promtool_test(tmp_path, rule["spec"]["groups"], tests)


def labels(feature: str) -> dict[str, str]:
    return {"model": "iris", "version": "iris-v3", "feature": feature, "drift_policy": "ml/inputs",
            "deployment": "iris"}  # fmt: skip


def alert(feature: str, value: float) -> dict[str, Any]:
    return {
        "exp_labels": {**labels(feature), "severity": "critical", "method": "psi", "team": "ml"},
        "exp_annotations": {
            "summary": f"Model input drift on {feature} of iris iris-v3",
            "description": f"PSI of feature {feature} over the last 5m is {value:.3f} (threshold 0.2) for deployment "
            "iris, version iris-v3 (DriftPolicy ml/inputs).",
        },
    }


def test_expected_values_are_what_the_scenario_says() -> None:
    assert expected_psi("x") == pytest.approx(0.0, abs=1e-12)
    assert expected_psi("big value (cm)") > 0.2
    assert expected_psi("colour") > 0.2
    # The library's binned comparison agrees with the kernel used here.
    report = compare_binned(REFERENCE, dict(PER_MINUTE.items()), method="psi")  # type: ignore[misc]
    assert report.drifted_features == ["big value (cm)", "colour"]


def test_recorded_psi_equals_the_library_and_alerts_fire_on_the_shifted_features(tmp_path: Path) -> None:
    samples_at_10m = 40 * 5  # +Inf grows by 40 a minute; increase over 5m
    tests = [{
        "interval": "1m",
        "input_series": input_series(),
        "promql_expr_test": [
            # Equal to the library's PSI within 1e-9 (summation order may differ in the last bit).
            *({"expr": f'abs({r.PSI}{{feature="{name}"}} - {expected_psi(name)!r}) < bool 1e-9', "eval_time": "10m",
               "exp_samples": [{"labels": "{" + ", ".join(f'{k}="{v}"' for k, v in labels(name).items()) + "}",
                                "value": 1}]}
              for name in ("x", "big value (cm)", "colour")),
            {"expr": r.SAMPLES, "eval_time": "10m",
             "exp_samples": [{"labels": r.SAMPLES + '{model="iris", version="iris-v3", drift_policy="ml/inputs", '
                                        'deployment="iris"}', "value": samples_at_10m}]},
        ],
        "alert_rule_test": [
            # Drift since minute 1, but `for: 2m` has not passed at minute 2: pending, not firing.
            {"eval_time": "2m", "alertname": r.ALERT, "exp_alerts": []},
            {"eval_time": "10m", "alertname": r.ALERT,
             "exp_alerts": [alert("big value (cm)", expected_psi("big value (cm)")),
                            alert("colour", expected_psi("colour"))]},
        ],
    }]  # fmt: skip
    result = run_promtool(tmp_path, policy(), tests)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_fails_when_the_unshifted_feature_is_expected_to_alert(tmp_path: Path) -> None:
    """The harness can fail: claiming x drifts is refused by promtool."""
    tests = [{"interval": "1m", "input_series": input_series(),
              "alert_rule_test": [{"eval_time": "10m", "alertname": r.ALERT,
                                   "exp_alerts": [alert("x", 0.0),
                                                  alert("big value (cm)", expected_psi("big value (cm)")),
                                                  alert("colour", expected_psi("colour"))]}]}]  # fmt: skip
    result = run_promtool(tmp_path, policy(), tests)
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


def test_too_few_samples_and_a_higher_threshold_keep_alerts_quiet(tmp_path: Path) -> None:
    tests = [{"interval": "1m", "input_series": input_series(),
              "alert_rule_test": [{"eval_time": "10m", "alertname": r.ALERT, "exp_alerts": []}]}]  # fmt: skip
    assert run_promtool(tmp_path, policy(minSamples=201), tests).returncode == 0
    # Just above colour's PSI, below big value's: only one alert.
    threshold = round(expected_psi("colour") + 0.01, 3)
    assert expected_psi("big value (cm)") > threshold
    high = policy(threshold=threshold)
    expected = alert("big value (cm)", expected_psi("big value (cm)"))
    expected["exp_annotations"]["description"] = expected["exp_annotations"]["description"].replace(
        "(threshold 0.2)", f"(threshold {threshold:g})"
    )
    tests = [{"interval": "1m", "input_series": input_series(),
              "alert_rule_test": [{"eval_time": "10m", "alertname": r.ALERT, "exp_alerts": [expected]}]}]  # fmt: skip
    result = run_promtool(tmp_path, high, tests)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("method", ["psi", "jsd", "chi2", "ks", "wasserstein"])
def test_every_method_records_psi_and_alerts_on_its_own_score(method: str) -> None:
    reference = binning.parse_reference_stats(REFERENCE)
    features = ["x", "big value (cm)"] if method in {"ks", "wasserstein"} else list(reference)
    groups = r.rule_groups(policy(method=method, threshold=None), TARGET, reference, features)
    alerts = [rule for rule in groups[0]["rules"] if "alert" in rule]
    assert [a["labels"]["method"] for a in alerts] == [method]
    assert any(rule.get("record") == r.PSI for rule in groups[0]["rules"])
    assert r.alerts_note(policy(method=method)) is None


def test_disabled_alerts_are_said_so() -> None:
    reference = binning.parse_reference_stats(REFERENCE)
    quiet = policy(actions={"alert": {"enabled": False}})
    assert "disabled" in (r.alerts_note(quiet) or "")
    rules = r.rule_groups(quiet, TARGET, reference, list(reference))[0]["rules"]
    assert not [rule for rule in rules if "alert" in rule]


def test_the_rule_object_carries_labels_owner_and_version() -> None:
    reference = binning.parse_reference_stats(REFERENCE)
    rule = r.prometheus_rule(policy(), TARGET, reference, ["x"], {"release": "kps"})
    meta = rule["metadata"]
    assert (rule["apiVersion"], rule["kind"], meta["name"], meta["namespace"]) == (
        "monitoring.coreos.com/v1",
        "PrometheusRule",
        "inputs-drift",
        "ml",
    )
    assert meta["labels"]["release"] == "kps"
    assert meta["labels"][r.POLICY_LABEL] == "inputs"
    assert meta["ownerReferences"][0]["uid"] == "u-1"
    assert meta["annotations"]["modelops.io/model-version"] == "iris-v3"
    exprs = " ".join(rule_["expr"] for rule_ in rule["spec"]["groups"][0]["rules"])
    assert "colour" not in exprs  # only the selected feature


@pytest.mark.parametrize(
    ("edge", "spellings"),
    [(1.0, ["1.0", "1"]), (0.1, ["0.1"]), (1234567.5, ["1.2345675e+06", "1234567.5"]),
     (123456789.0, ["1.23456789e+08", "123456789.0", "123456789"]), (1e-05, ["1e-05"]), (1e21, ["1e+21"])],
)  # fmt: skip
def test_le_spellings_cover_the_client_and_prometheus_forms(edge: float, spellings: list[str]) -> None:
    from prometheus_client.utils import floatToGoString

    assert r.le_spellings(edge) == spellings
    assert floatToGoString(edge) in r.le_spellings(edge)


@pytest.mark.parametrize(("text", "expected"), [("10m", "600s"), ("1.5m", "90s"), ("500ms", "500ms"), ("1h", "3600s")])
def test_durations_become_prometheus_durations(text: str, expected: str) -> None:
    assert r.prom_duration(text) == expected


def test_unknown_features_are_named() -> None:
    reference = binning.parse_reference_stats(REFERENCE)
    with pytest.raises(ValueError, match=r"spec\.features: 'nope' not in"):
        r.select_features(policy(features=["x", "nope"]), reference)
    assert r.select_features(policy(features=["colour", "x"]), reference) == ["x", "colour"]
