"""Every drift method in PromQL: the generated rules, run by the real promtool, against the drift library.

For each method a DriftPolicy may ask for (psi, jsd, chi2, ks, wasserstein) the rule's recorded
numbers must be the library's own (``modelops.drift.compare_binned`` on the same counts) within
1e-9 (relative above 1), and its alert must fire on exactly the features the library calls
drifted. Two scenarios: a large reference (10,000 rows, so KS's effective sample size is past
the critical-value table and on the fitted polynomial) and a small one (100 rows: the table).
The features cover a numeric feature as in training, shifted ones, one whose CDFs cross
(Wasserstein's crossing term), one with a single bin, a shifted categorical and a two-valued
categorical (one degree of freedom: Yates' correction).
"""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from scipy import stats

from modelops.api.driftpolicy import DriftPolicySpec
from modelops.drift import bins as binning
from modelops.drift import compare_binned
from modelops.drift.methods import DEFAULT_THRESHOLDS, METHOD_KINDS
from modelops.logic import driftrules as r
from modelops.logic.driftrules import Target

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
TARGET = Target(policy="inputs", namespace="ml", deployment="iris", model="iris", version="iris-v3", uid="u-1")
WINDOW_MINUTES = 5
METHODS = ("psi", "jsd", "chi2", "ks", "wasserstein")


def reference(scale: float) -> dict[str, Any]:
    def counts(*values: int) -> list[int]:
        return [round(v * scale) for v in values]

    return {"sampleSize": round(10000 * scale), "features": [
        {"name": "x", "kind": "numeric", "edges": [0.0, 1.0, 2.0, 3.0, 4.0],
         "counts": counts(2500, 2500, 2500, 2500)},
        {"name": "big value (cm)", "kind": "numeric", "edges": [0.0, 0.00012, 5.0, 1234567.5, 2e6],
         "counts": counts(1000, 4000, 4000, 1000)},
        {"name": "mid", "kind": "numeric", "edges": [0.0, 1.0, 2.0, 3.0, 4.0],
         "counts": counts(2500, 2500, 2500, 2500)},
        {"name": "one bin", "kind": "numeric", "edges": [0.0, 1.0], "counts": counts(10000)},
        {"name": "colour", "kind": "categorical", "categories": ["red", "blue", "__other__"],
         "counts": counts(5000, 3000, 2000)},
        {"name": "flag", "kind": "categorical", "categories": ["yes", "no", "__other__"],
         "counts": counts(6000, 4000, 0)},
    ]}  # fmt: skip


# Live counts per bin added each minute: x as in training; big shifted up; mid concentrated in the
# middle with CDFs crossing; colour shifted to unseen categories; flag a little off its 60/40.
PER_MINUTE: dict[str, list[int] | dict[str, int]] = {
    "x": [10, 10, 10, 10], "big value (cm)": [1, 2, 10, 27], "mid": [8, 14, 12, 6], "one bin": [40],
    "colour": {"red": 5, "blue": 5, "__other__": 30}, "flag": {"yes": 5, "no": 5, "__other__": 0},
}  # fmt: skip
SCENARIOS = {"large": 1.0, "small": 0.01}


def features_for(method: str, document: dict[str, Any]) -> list[str]:
    return [f["name"] for f in document["features"] if f["kind"] in METHOD_KINDS[method]]


def window_counts(name: str) -> list[float] | dict[str, float]:
    live = PER_MINUTE[name]
    if isinstance(live, dict):
        return {k: float(v * WINDOW_MINUTES) for k, v in live.items()}
    return [float(v * WINDOW_MINUTES) for v in live]


def input_series(document: dict[str, Any]) -> list[dict[str, str]]:
    series = []
    base = 'deployment="iris", model="iris", version="iris-v3"'
    parsed = binning.parse_reference_stats(document)
    for name, feature in parsed.items():
        live = PER_MINUTE[name]
        if isinstance(feature, binning.NumericBins):
            assert isinstance(live, list)
            bounds = [r.client_float(float(e)) for e in feature.interior] + ["+Inf"]
            for le, step in zip(bounds, np.cumsum(live), strict=True):
                series.append({"series": f'modelops_feature_bucket{{{base}, feature="{name}", le="{le}"}}',
                               "values": f"0+{int(step)}x20"})  # fmt: skip
        else:
            assert isinstance(live, dict)
            for category, step in live.items():
                series.append({"series": f'modelops_feature_category_total{{{base}, feature="{name}", '
                                         f'category="{category}"}}', "values": f"0+{step}x20"})  # fmt: skip
    # Another deployment serving the same version, and another version: neither may count.
    for other in ('deployment="iris-eu", model="iris", version="iris-v3"',
                  'deployment="iris", model="iris", version="iris-v2"'):  # fmt: skip
        series.append({"series": f'modelops_feature_bucket{{{other}, feature="x", le="1.0"}}', "values": "0+900x20"})
        series.append({"series": f'modelops_feature_bucket{{{other}, feature="x", le="+Inf"}}', "values": "0+1000x20"})
        series.append({"series": f'modelops_feature_category_total{{{other}, feature="colour", category="red"}}',
                       "values": "0+1000x20"})  # fmt: skip
    return series


def labels(feature: str) -> str:
    pairs = {"deployment": "iris", "drift_policy": "ml/inputs", "feature": feature, "model": "iris",
             "version": "iris-v3"}  # fmt: skip
    return "{" + ", ".join(f'{k}="{v}"' for k, v in pairs.items()) + "}"


def close_to(series: str, feature: str, expected: float) -> dict[str, Any]:
    """A promtool check that ``series`` of ``feature`` is within 1e-9 of ``expected`` (relative above 1)."""
    tolerance = 1e-9 * max(1.0, abs(expected))
    return {"expr": f'abs({series}{{feature="{feature}"}} - {expected!r}) <= bool {tolerance!r}', "eval_time": "10m",
            "exp_samples": [{"labels": labels(feature), "value": 1}]}  # fmt: skip


def policy(method: str, **changes: Any) -> DriftPolicySpec:
    raw: dict[str, Any] = {
        "deployment": "iris", "method": method, "window": f"{WINDOW_MINUTES}m", "minSamples": 100,
        "actions": {"alert": {"for": "2m", "severity": "critical"}},
    }  # fmt: skip
    raw.update(changes)
    return DriftPolicySpec.model_validate(raw)


def run_promtool(
    tmp_path: Path, spec: DriftPolicySpec, document: dict[str, Any], features: list[str], tests: list[dict[str, Any]]
) -> subprocess.CompletedProcess[str]:
    parsed = binning.parse_reference_stats(document)
    rule = r.prometheus_rule(spec, TARGET, parsed, features, {})
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    check = subprocess.run([PROMTOOL, "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "FAILED" not in check.stdout + check.stderr, check.stdout + check.stderr
    test_file = tmp_path / "test.yml"
    test_file.write_text(yaml.safe_dump({"rule_files": [str(rules_file)], "evaluation_interval": "1m",
                                         "tests": tests}, sort_keys=False))  # fmt: skip
    return subprocess.run([PROMTOOL, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=120)


def occupied_bins(document: dict[str, Any], name: str) -> int:
    feature = binning.parse_reference_stats(document)[name]
    live = window_counts(name)
    counts = list(live.values()) if isinstance(live, dict) else live
    return sum(1 for ref, cur in zip(feature.counts, counts, strict=True) if ref + cur > 0)


def effective_samples(document: dict[str, Any], name: str) -> float:
    """What ks_2samp hands kstwo: round(n1 n2 / (n1 + n2)) (numpy rounds half to even), at least 1."""
    n1 = float(binning.parse_reference_stats(document)[name].counts.sum())
    n2 = float(sum(window_counts(name)))  # type: ignore[arg-type]
    return max(1.0, float(np.round(n1 * n2 / (n1 + n2))))


def checks(method: str, document: dict[str, Any], features: list[str]) -> list[dict[str, Any]]:
    report = compare_binned(document, {n: window_counts(n) for n in features}, method=method, features=features,
                            min_samples=1)  # fmt: skip
    alpha = DEFAULT_THRESHOLDS[method]
    out = []
    for feature in report.features:
        assert feature.score is not None, feature
        if method in {"psi", "jsd", "wasserstein"}:
            series = {"psi": r.PSI, "jsd": r.JSD, "wasserstein": r.WASSERSTEIN}[method]
            out.append(close_to(series, feature.name, feature.score))
        elif method == "chi2":
            assert feature.statistic is not None
            dof = occupied_bins(document, feature.name) - 1
            out.append(close_to(r.CHI2_STATISTIC, feature.name, feature.statistic))
            out.append(close_to(r.CHI2_DOF, feature.name, float(dof)))
            if dof > 0:
                out.append(close_to(r.CHI2_CRITICAL, feature.name, float(stats.chi2.isf(alpha, dof))))
        else:
            assert feature.statistic is not None
            en = effective_samples(document, feature.name)
            out.append(close_to(r.KS_STATISTIC, feature.name, feature.statistic))
            out.append(close_to(r.KS_EN, feature.name, en))
            out.append(close_to(r.KS_CRITICAL, feature.name, float(stats.kstwo.isf(alpha, int(en)))))
    return out


# What each method's alert says its value is; for the tests, p-value methods show their statistic.
SAYS = {"psi": "PSI", "jsd": "The Jensen-Shannon distance",
        "wasserstein": "The Wasserstein distance (in reference standard deviations)", "ks": "The KS statistic",
        "chi2": "The chi-squared statistic"}  # fmt: skip


def expected_alerts(
    method: str, document: dict[str, Any], features: list[str], threshold: float | None = None
) -> list[dict[str, Any]]:
    report = compare_binned(document, {n: window_counts(n) for n in features}, method=method, features=features,
                            min_samples=1, threshold=threshold)  # fmt: skip
    alerts = []
    for feature in report.features:
        if not feature.drifted:
            continue
        shown = feature.statistic if method in {"ks", "chi2"} else feature.score
        assert shown is not None
        limit = (f": p-value below {report.threshold:g}" if method in {"ks", "chi2"}
                 else f" (threshold {report.threshold:g})")  # fmt: skip
        alerts.append({
            "exp_labels": {"deployment": "iris", "drift_policy": "ml/inputs", "feature": feature.name, "model": "iris",
                           "version": "iris-v3", "severity": "critical", "method": method},
            "exp_annotations": {
                "summary": f"Model input drift on {feature.name} of iris iris-v3",
                "description": f"{SAYS[method]} of feature {feature.name} over the last {WINDOW_MINUTES}m is "
                               f"{shown:.3f}{limit} for deployment iris, version iris-v3 (DriftPolicy ml/inputs).",
            },
        })  # fmt: skip
    return alerts


@pytest.mark.skipif(not Path(PROMTOOL).exists(), reason="promtool is not installed")
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("method", METHODS)
def test_recorded_numbers_and_alerts_are_the_librarys(tmp_path: Path, method: str, scenario: str) -> None:
    document = reference(SCENARIOS[scenario])
    features = features_for(method, document)
    report = compare_binned(document, {n: window_counts(n) for n in features}, method=method, features=features,
                            min_samples=1)  # fmt: skip
    # The scenario decides something: some features drift, some do not.
    assert report.drifted_features, report.to_dict()
    assert len(report.drifted_features) < len(features), report.to_dict()
    if method == "ks":
        ens = {effective_samples(document, name) for name in features}
        assert all(en < r.KS_TABLE_BELOW for en in ens) if scenario == "small" else all(
            en >= r.KS_TABLE_BELOW for en in ens)  # fmt: skip
    tests = [{
        "interval": "1m",
        "input_series": input_series(document),
        "promql_expr_test": checks(method, document, features),
        "alert_rule_test": [
            {"eval_time": "2m", "alertname": r.ALERT, "exp_alerts": []},  # `for: 2m` has not passed
            {"eval_time": "10m", "alertname": r.ALERT, "exp_alerts": expected_alerts(method, document, features)},
        ],
    }]  # fmt: skip
    result = run_promtool(tmp_path, policy(method), document, features, tests)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(not Path(PROMTOOL).exists(), reason="promtool is not installed")
def test_the_harness_fails_on_a_wrong_number(tmp_path: Path) -> None:
    document = reference(1.0)
    features = features_for("jsd", document)
    wrong = [close_to(r.JSD, "big value (cm)", 0.5)]
    tests = [{"interval": "1m", "input_series": input_series(document), "promql_expr_test": wrong}]
    result = run_promtool(tmp_path, policy("jsd"), document, features, tests)
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


@pytest.mark.skipif(not Path(PROMTOOL).exists(), reason="promtool is not installed")
def test_a_lower_p_value_threshold_keeps_a_weak_chi2_drift_quiet(tmp_path: Path) -> None:
    document = reference(1.0)
    features = features_for("chi2", document)
    counts = {n: window_counts(n) for n in features}
    p_values = {f.name: f.score for f in compare_binned(document, counts, method="chi2", features=features).features}
    drifted = sorted(name for name, p in p_values.items() if p is not None and p < 0.05)
    # A threshold between the drifted features' p-values: only the more extreme ones alert.
    ordered = sorted(p for name, p in p_values.items() if name in drifted and p is not None)
    assert len(ordered) >= 2
    assert ordered[0] < ordered[-1]
    threshold = math.sqrt(max(ordered[0], 1e-300) * ordered[-1]) if ordered[0] > 0 else ordered[-1] / 2
    report = compare_binned(document, counts, method="chi2", features=features, threshold=threshold)
    assert 0 < len(report.drifted_features) < len(drifted)
    alerts = expected_alerts("chi2", document, features, threshold)
    assert [a["exp_labels"]["feature"] for a in alerts] == report.drifted_features
    tests = [{"interval": "1m", "input_series": input_series(document), "alert_rule_test": [
        {"eval_time": "10m", "alertname": r.ALERT, "exp_alerts": alerts}]}]  # fmt: skip
    result = run_promtool(tmp_path, policy("chi2", threshold=threshold), document, features, tests)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("alpha", [0.001, 0.05, 0.2])
def test_ks_critical_values_are_scipys_within_1e_9(alpha: float) -> None:
    # Every n of the table and around where scipy changes its formulas, then a sweep to 5e7.
    ns = np.unique(np.concatenate([np.arange(1, 400), np.geomspace(400, 5e7, 120).astype(np.int64)]))
    exact = stats.kstwo.isf(alpha, ns)
    ours = np.array([r.ks_critical(alpha, int(n)) for n in ns])
    assert np.max(np.abs(ours - exact) / exact) < 1e-9


def test_chi2_degrees_of_freedom_cover_unseen_bins() -> None:
    parsed = binning.parse_reference_stats(reference(1.0))
    # flag has 2 occupied bins of 3 (dof 1, or 2 once an unseen value arrives); the others all occupied.
    assert r.chi2_dofs([parsed["flag"]]) == [1, 2]
    assert r.chi2_dofs([parsed["x"], parsed["colour"]]) == [2, 3]
    assert r.chi2_dofs([parsed["one bin"]]) == []
