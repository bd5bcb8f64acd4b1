"""Parameters only ``fit`` finds wrong, and classifiers without probabilities, at training.

scikit-learn checks each parameter's type and range up front (the trainer asks before loading data),
but combinations -- ``LinearDiscriminantAnalysis(shrinkage="auto")`` with its default ``solver="svd"``,
``KNeighborsClassifier(n_neighbors=500)`` on 112 training rows -- fail inside ``fit`` or the first ``predict``, with any
exception type. Each is one line naming the estimator and the parameters scikit-learn's message
names, exit code 1, never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from modelops.train import estimators
from trainer.conftest import assert_no_result, config_for, run_in_process, run_trainer


def test_lda_shrinkage_with_the_svd_solver_is_one_line_naming_both(tmp_path: Path) -> None:
    config = config_for(
        "sklearn://iris",
        estimator={"className": "sklearn.discriminant_analysis.LinearDiscriminantAnalysis",
                   "params": {"shrinkage": "auto"}},
    )  # fmt: skip
    run = run_trainer(config, tmp_path)
    message = (
        "fit failed: LinearDiscriminantAnalysis cannot work with these parameters (estimator.params.shrinkage='auto', "
        "solver='svd' (default)): shrinkage not supported with 'svd' solver."
    )
    assert run.returncode == 1, run.stdout
    assert run.stderr == f"modelops train: error: {message}\n"
    assert "Traceback" not in run.stdout + run.stderr
    assert run.termination == {"ok": False, "error": message}
    assert_no_result(run)


CASES = {
    "more neighbours than training rows (found at predict)": (
        {"className": "sklearn.neighbors.KNeighborsClassifier", "params": {"n_neighbors": 500}},
        None,
        "predict failed: KNeighborsClassifier cannot work with these parameters (estimator.params.n_neighbors=500): "
        "Expected n_neighbors <= n_samples_fit, but n_neighbors = 500, n_samples_fit = 112, n_samples = 38",
    ),
    "a sweep trial's value": (
        {"className": "sklearn.discriminant_analysis.LinearDiscriminantAnalysis", "params": {}},
        {"parameters": {"shrinkage": [0.5]}},
        "fit failed: LinearDiscriminantAnalysis cannot work with these parameters (sweep.parameters.shrinkage=0.5, "
        "solver='svd' (default)): shrinkage not supported with 'svd' solver.",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_parameter_combinations_fit_refuses(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    estimator, sweep, message = CASES[case]
    overrides = {"estimator": estimator, **({"sweep": sweep} if sweep else {})}
    run = run_in_process(config_for("sklearn://iris", **overrides), tmp_path, capsys)
    if sweep:  # a local sweep runs every trial; its one trial failed
        assert run.returncode == 1
        assert message in run.stderr
        assert "\n" not in run.stderr.rstrip("\n")
        return
    assert run.returncode == 1, run.stdout
    assert run.stderr == f"modelops train: error: {message}\n"


def test_a_failure_outside_the_estimator_does_not_blame_its_parameters() -> None:
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    estimator = LinearDiscriminantAnalysis(solver="lsqr")
    error = estimators.fit_failure(
        ValueError("could not convert string to float: 'x'"), estimator,
        "sklearn.discriminant_analysis.LinearDiscriminantAnalysis", {"solver": "lsqr"}, {},
    )  # fmt: skip
    assert error.message == "fit failed: could not convert string to float: 'x'"


def test_an_odd_exception_type_is_named() -> None:
    from sklearn.linear_model import Ridge

    estimator = Ridge()
    try:
        estimator.fit([[1.0], [2.0]], [1.0])  # lengths differ: a ValueError from inside Ridge.fit
    except ValueError as exc:
        error = estimators.fit_failure(exc, estimator, "sklearn.linear_model.Ridge", {}, {})
    assert error.message.startswith("fit failed: Ridge: Found input variables with inconsistent numbers of samples")
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError as exc:
        error = estimators.fit_failure(exc, estimator, "sklearn.linear_model.Ridge", {}, {})
    assert error.message == "fit failed: ZeroDivisionError: division by zero"


@pytest.mark.parametrize(
    ("class_name", "params"),
    [("sklearn.linear_model.Perceptron", {}), ("sklearn.svm.LinearSVC", {}), ("sklearn.svm.SVC", {})],
)
def test_a_classifier_without_probabilities_trains_without_ece(
    class_name: str, params: dict[str, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No ECE or calibration record (they are about probabilities); ROC AUC from decision_function."""
    config = config_for("sklearn://breast_cancer", estimator={"className": class_name, "params": params})
    run = run_in_process(config, tmp_path, capsys)
    assert run.returncode == 0, run.stderr
    result = run.result()
    assert "ece" not in result["metrics"]
    assert "calibration" not in result
    assert 0.5 < result["metrics"]["roc_auc"] <= 1.0
    assert run.termination is not None
    assert "calibration" not in run.termination
