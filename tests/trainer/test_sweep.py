"""``expand_sweep`` and ``best_trial``: pure, deterministic, documented order; and a sweep
trained trial by trial through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modelops.train.sweep import DEFAULT_METRIC, SweepError, best_trial, expand_sweep
from trainer.conftest import config_for, run_in_process


def test_grid_is_sorted_cartesian_product_last_name_fastest() -> None:
    sweep = {"strategy": "grid", "parameters": {"b": [1, 2], "a": ["x", "y", None]}, "trials": 99}
    assert expand_sweep(sweep) == [
        {"a": "x", "b": 1}, {"a": "x", "b": 2},
        {"a": "y", "b": 1}, {"a": "y", "b": 2},
        {"a": None, "b": 1}, {"a": None, "b": 2},
    ]
    # Key order of the mapping does not matter (the API server may reorder JSON objects).
    assert expand_sweep({"parameters": {"a": ["x", "y", None], "b": [1, 2]}}) == expand_sweep(sweep)


def test_random_is_seeded_and_in_range() -> None:
    sweep: dict[str, Any] = {
        "strategy": "random", "trials": 50, "seed": 3,
        "parameters": {
            "lr": {"low": 1e-4, "high": 1e-1, "log": True},
            "depth": {"low": 2, "high": 5, "type": "int"},
            "leaves": {"low": 8, "high": 64, "type": "int", "log": True},
            "frac": {"low": 0.5, "high": 1.0},
            "kind": ["gini", "entropy"],
        },
    }
    trials = expand_sweep(sweep)
    assert trials == expand_sweep(json.loads(json.dumps(sweep)))
    assert trials != expand_sweep({**sweep, "seed": 4})
    assert len(trials) == 50
    for trial in trials:
        assert list(trial) == ["depth", "frac", "kind", "leaves", "lr"]
        assert 1e-4 <= trial["lr"] <= 1e-1
        assert isinstance(trial["depth"], int)
        assert 2 <= trial["depth"] <= 5
        assert isinstance(trial["leaves"], int)
        assert 8 <= trial["leaves"] <= 64
        assert 0.5 <= trial["frac"] <= 1.0
        assert trial["kind"] in ("gini", "entropy")
    assert {t["depth"] for t in trials} == {2, 3, 4, 5}
    # Pinned values: the draws must not change between releases (the operator and the
    # trainer may run different versions of the image).
    assert expand_sweep({"strategy": "random", "trials": 2, "seed": 0,
                         "parameters": {"a": [1, 2, 3], "b": {"low": 0, "high": 1}}}) == [
        {"a": 3, "b": 0.7579544029403025}, {"a": 2, "b": 0.25891675029296335},
    ]


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ({"strategy": "bayes", "parameters": {"a": [1]}}, "sweep.strategy: must be one of grid, random, got 'bayes'"),
        ({"parameters": {}}, "sweep.parameters: must be a non-empty object of parameter -> values"),
        ({"parameters": {"a": []}}, "sweep.parameters.a: must be a non-empty list"),
        ({"parameters": {"a": {"low": 0, "high": 1}}}, "sweep.parameters.a: must be a non-empty list"),
        ({"strategy": "random", "parameters": {"a": {"low": 2, "high": 1}}},
         "sweep.parameters.a: low (2) is greater than high (1)"),
        ({"strategy": "random", "parameters": {"a": {"low": 0, "high": 1, "log": True}}},
         "sweep.parameters.a: a log range needs low > 0, got 0"),
        ({"strategy": "random", "parameters": {"a": {"low": 0, "hi": 1}}},
         "sweep.parameters.a: unknown key 'hi'; a range has low, high, log, type"),
        ({"strategy": "random", "trials": 0, "parameters": {"a": [1]}},
         "sweep.trials: must be an integer in [1, 1000], got 0"),
        ({"parameters": {f"p{i}": list(range(10)) for i in range(4)}},
         "sweep.parameters: the grid has 10000 trials, more than 1000"),
    ],
)
def test_invalid_sweeps(sweep: dict[str, Any], message: str) -> None:
    with pytest.raises(SweepError) as raised:
        expand_sweep(sweep)
    assert str(raised.value) == message


def test_best_trial() -> None:
    trials: list[dict[str, Any] | None] = [
        {"metrics": {"f1": 0.8, "rmse": 3.0}},
        None,  # failed or still running
        {"metrics": {"f1": 0.9, "rmse": 2.0}},
        {"metrics": {"rmse": 1.0}},  # no f1
        {"metrics": {"f1": 0.9}},  # a tie: the lower index wins
        {"metrics": {"f1": float("nan")}},
    ]
    assert best_trial(trials, "f1", "maximize") == 2
    assert best_trial(trials, "rmse", "minimize") == 3
    assert best_trial(trials, "accuracy") is None
    assert best_trial([], "f1") is None
    # Explicit indices (a result.json's trial.index, or "index") win over positions.
    assert best_trial([{"trial": {"index": 7}, "metrics": {"f1": 1}}, {"index": 3, "metrics": {"f1": 0.5}}],
                      "f1", "minimize") == 3
    with pytest.raises(SweepError):
        best_trial(trials, "f1", "up")
    assert DEFAULT_METRIC["regression"] == ("rmse", "minimize")


def test_grid_sweep_in_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """All trials of a grid, trial by trial, then the best one (the operator's path)."""
    sweep = {"strategy": "grid", "parameters": {"max_depth": [1, None], "n_estimators": [2, 8]},
             "metric": "accuracy", "goal": "maximize"}
    config = config_for("sklearn://wine", sweep=sweep,
                        estimator={"className": "sklearn.ensemble.ExtraTreesClassifier", "params": {}})
    trials = expand_sweep(sweep)
    results = []
    for index in range(len(trials)):
        monkeypatch.setenv("JOB_COMPLETION_INDEX", str(index))
        run = run_in_process(config, tmp_path, capsys, name="sweep")
        assert run.returncode == 0, run.stderr
        result = run.result(index)
        assert result["trial"] == {"index": index, "params": trials[index]}
        assert run.termination is not None
        assert run.termination["trial"] == result["trial"]
        results.append(result)
    out = tmp_path / "sweep" / "out"
    assert sorted(p.name for p in out.iterdir()) == ["trial-0", "trial-1", "trial-2", "trial-3"]
    accuracies = [r["metrics"]["accuracy"] for r in results]
    assert best_trial(results, "accuracy", "maximize") == accuracies.index(max(accuracies))


def test_random_sweep_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = {"strategy": "random", "trials": 3, "seed": 5,
             "parameters": {"alpha": {"low": 0.001, "high": 10.0, "log": True}, "fit_intercept": [True, False]}}
    config = config_for("sklearn://diabetes", sweep=sweep,
                        estimator={"className": "sklearn.linear_model.Ridge", "params": {"alpha": 99.0}})
    trials = expand_sweep(sweep)
    messages = []
    for index in range(3):
        run = run_in_process(config, tmp_path, capsys, "--trial-index", str(index), name="random")
        assert run.returncode == 0, run.stderr
        assert run.result(index)["estimator"]["params"] == {**trials[index], "random_state": 7}
        messages.append(run.termination)
    rmse = [m["metrics"]["rmse"] for m in messages if m]
    assert best_trial(messages, "rmse", "minimize") == rmse.index(min(rmse))
