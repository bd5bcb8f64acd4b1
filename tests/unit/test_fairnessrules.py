"""The generated live-fairness rules, run by the real promtool on counters whose rows are known.

Rows (group and predicted class) are drawn here, split over two pods and counted per minute as
``modelops serve`` counts them (``modelops_group_predictions_total``); what promtool records must
be fairlearn's selection rates and demographic parity difference on the rows of the window.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)

from modelops.api.modeldeployment import FairnessCheck
from modelops.logic import analysis
from modelops.logic import fairnessrules as f
from modelops.logic.analysis import AnalysisTarget
from promkit import PROMTOOL, promtool_test
from unit.test_qualityrules import BASE, WINDOW_MINUTES, close, counter, owner_rule, version_labels

pytestmark = pytest.mark.skipif(not Path(PROMTOOL).exists(), reason="promtool is not installed")

GROUPS = ["A", "B", "C", "__other__"]
CLASSES = ["no", "yes", "maybe"]


def per_minute_rows(seed: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One minute's rows of one pod: group and predicted class (indices); group C never serves in pod 1."""
    rng = np.random.default_rng(seed)
    n = 60
    group = rng.choice(4, size=n, p=[0.5, 0.3, 0.1, 0.1] if seed != 2 else [0.6, 0.3, 0.0, 0.1])
    bias = np.array([0.2, 0.5, 0.35, 0.9])[group]
    predicted = np.where(rng.random(n) < bias, 1, 0)
    if classes == 3:
        predicted = np.where(rng.random(n) < 0.2, 2, predicted)
    return group, predicted


def series(pod: str, version: str, seed: int, classes: int, feature: str, base: str = BASE) -> list[dict[str, str]]:
    group, predicted = per_minute_rows(seed, classes)
    out = []
    where = f'{base}, version="{version}", pod="{pod}", feature="{feature}"'
    for g, name in enumerate(GROUPS):
        for c in range(classes):
            labels = f'{where}, group="{name}", class="{CLASSES[c]}"'
            rows = int(np.sum((group == g) & (predicted == c)))
            out.append(counter("modelops_group_predictions_total", labels, rows))
    return out


def window_rows(seeds: list[int], classes: int) -> tuple[np.ndarray, np.ndarray]:
    parts = [per_minute_rows(seed, classes) for seed in seeds]
    group = np.concatenate([p[0] for p in parts] * WINDOW_MINUTES)
    predicted = np.concatenate([p[1] for p in parts] * WINDOW_MINUTES)
    return np.array(GROUPS)[group], predicted


def cases() -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    seeds = [1, 2]
    input_series: list[dict[str, str]] = []
    tests: list[dict[str, Any]] = []
    for version, classes in (("churn-v1", 2), ("churn-v2", 3)):
        for i, seed in enumerate(seeds):
            input_series += series(f"p-{i}", version, seed, classes, "sex")
        # Another deployment's counters of the same model and version must not count.
        input_series += series("p-9", version, 5, classes, "sex", BASE.replace('"shop"', '"other"'))
        group, predicted = window_rows(seeds, classes)
        labels = {**version_labels(version), "feature": "sex"}
        known = group != "__other__"
        gaps = []
        for c in range(classes):
            hit = (predicted == c).astype(int)
            rates = MetricFrame(metrics=selection_rate, y_true=hit, y_pred=hit, sensitive_features=group).by_group
            for name, rate in rates.items():
                at = f"{f.SELECTION_RATE}{{version='{version}', group='{name}', class='{CLASSES[c]}', window='5m'}}"
                tests.append(close(at, float(rate), {**labels, "group": str(name), "class": CLASSES[c]}))
            gap = demographic_parity_difference(hit[known], hit[known], sensitive_features=group[known])
            gaps.append(gap)
            at = f"{f.CLASS_DP_DIFFERENCE}{{version='{version}', class='{CLASSES[c]}', window='5m'}}"
            tests.append(close(at, float(gap), {**labels, "class": CLASSES[c]}))
        tests.append(close(f"{f.DP_DIFFERENCE}{{version='{version}', window='5m'}}", float(max(gaps)), labels))
        if classes == 2:  # the gap of either class: training's demographicParityDifference of the positive class
            assert gaps[0] == pytest.approx(gaps[1], abs=1e-12)
        counts = {g: int(np.sum(group == g)) for g in ("A", "B", "C")}
        tests.append(close(f"{f.MIN_GROUP_ROWS}{{version='{version}', window='5m'}}", float(min(counts.values())),
                           labels))  # fmt: skip
        tests.append(close(f"{f.GROUP_ROWS}{{version='{version}', group='__other__', window='5m'}}",
                           float(np.sum(~known)), {**labels, "group": "__other__"}))  # fmt: skip
    return input_series, tests


def run_cases(tmp_path: Path, input_series: list[dict[str, str]], tests: list[dict[str, Any]]) -> None:
    """The owner's rules (windows 5m and 1h) run by promtool on ``input_series``: every case must pass."""
    rule = owner_rule(["5m", "1h"])
    result = promtool_test(tmp_path, rule["spec"]["groups"], [{"interval": "1m", "input_series": input_series,
                                                               "promql_expr_test": tests}])  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_recorded_selection_rates_and_parity_are_fairlearns_on_the_windows_rows(tmp_path: Path) -> None:
    run_cases(tmp_path, *cases())


def test_a_group_without_rows_in_the_window_has_no_selection_rate(tmp_path: Path) -> None:
    """Group C only serves in pod 0 at minute 0..20; a pod-1-only world has no rate for it, not a made-up 0."""
    input_series = series("p-1", "churn-v1", 2, 2, "sex")
    tests = [{"expr": f"{f.SELECTION_RATE}{{group='C'}}", "eval_time": "10m", "exp_samples": []}]
    rule = owner_rule(["5m"])
    result = promtool_test(tmp_path, rule["spec"]["groups"], [{"interval": "1m", "input_series": input_series,
                                                               "promql_expr_test": tests}])  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


# -- labels fed back by group: recall, false positive rate and equalized odds -------------------------


def labelled_rows(seed: int, classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One minute's labelled rows of one pod: group, predicted and actual class (indices), groups erring unalike."""
    group, predicted = per_minute_rows(seed, classes)
    rng = np.random.default_rng(seed + 100)
    wrong = rng.random(len(group)) < np.array([0.1, 0.3, 0.2, 0.5])[group]
    actual = np.where(wrong, (predicted + rng.integers(1, classes, len(group))) % classes, predicted)
    return group, predicted, actual


def labelled_series(pod: str, version: str, seed: int, classes: int, base: str = BASE) -> list[dict[str, str]]:
    group, predicted, actual = labelled_rows(seed, classes)
    where = f'{base}, version="{version}", pod="{pod}", feature="sex"'
    out = []
    for g, name in enumerate(GROUPS):
        mine = group == g
        out.append(counter("modelops_feedback_group_labels_total", f'{where}, group="{name}"', int(mine.sum())))
        for c in range(classes):
            at = f'{where}, group="{name}", class="{CLASSES[c]}"'
            counts = {"correct": mine & (predicted == c) & (actual == c), "predicted": mine & (predicted == c),
                      "actual": mine & (actual == c)}  # fmt: skip
            for margin, hit in counts.items():
                out.append(counter(f"modelops_feedback_group_{margin}_total", at, int(hit.sum())))
    return out


def labelled_cases() -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    seeds = [1, 2]
    input_series: list[dict[str, str]] = []
    tests: list[dict[str, Any]] = []
    for version, classes in (("churn-v1", 2), ("churn-v2", 3)):
        for i, seed in enumerate(seeds):
            input_series += labelled_series(f"p-{i}", version, seed, classes)
        input_series += labelled_series("p-9", version, 5, classes, BASE.replace('"shop"', '"other"'))
        parts = [labelled_rows(seed, classes) for seed in seeds]
        group = np.array(GROUPS)[np.concatenate([p[0] for p in parts] * WINDOW_MINUTES)]
        predicted = np.concatenate([p[1] for p in parts] * WINDOW_MINUTES)
        actual = np.concatenate([p[2] for p in parts] * WINDOW_MINUTES)
        labels = {**version_labels(version), "feature": "sex"}
        known = group != "__other__"
        fewest = min(int(np.sum(group == g)) for g in ("A", "B", "C"))
        gaps = []
        for c in range(classes):
            truth, hit = actual == c, predicted == c
            frame = MetricFrame(metrics={"recall": true_positive_rate, "fpr": false_positive_rate}, y_true=truth,
                                y_pred=hit, sensitive_features=group).by_group  # fmt: skip
            for name, by in frame.iterrows():
                where = f"version='{version}', group='{name}', class='{CLASSES[c]}', window='5m'"
                at = {**labels, "group": str(name), "class": CLASSES[c]}
                tests.append(close(f"{f.RECALL}{{{where}}}", float(by["recall"]), at))
                tests.append(close(f"{f.FALSE_POSITIVE_RATE}{{{where}}}", float(by["fpr"]), at))
            gap = equalized_odds_difference(truth[known], hit[known], sensitive_features=group[known])
            gaps.append(gap)
            at = f"{f.CLASS_EO_DIFFERENCE}{{version='{version}', class='{CLASSES[c]}', window='5m'}}"
            tests.append(close(at, float(gap), {**labels, "class": CLASSES[c]}))
        assert max(gaps) > 0.05  # groups err unalike: a gap to find
        tests.append(close(f"{f.EO_DIFFERENCE}{{version='{version}', window='5m'}}", float(max(gaps)), labels))
        # The same figure straight from the counters over a window (DriftPolicy.spec.fairness, canary analysis).
        check = FairnessCheck.model_validate({"feature": "sex", "window": "5m"})
        target = AnalysisTarget(namespace="ml", deployment="shop", model="churn", stable_version=None,
                                canary_version=version)  # fmt: skip
        tests.append(close(analysis.equalized_odds_query(check, target, version), float(max(gaps)), {}))
        tests.append(close(analysis.equalized_odds_evidence_query(check, target, version), float(fewest), {}))
        if classes == 2:  # either class's: one's recall is one minus the other's false positive rate
            assert gaps[0] == pytest.approx(gaps[1], abs=1e-12)
        tests.append(close(f"{f.MIN_GROUP_LABELS}{{version='{version}', window='5m'}}", float(fewest), labels))
    return input_series, tests


def test_recorded_recall_and_equalized_odds_are_fairlearns_on_the_windows_labels(tmp_path: Path) -> None:
    run_cases(tmp_path, *labelled_cases())
