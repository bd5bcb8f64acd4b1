"""The estimator allow-list and estimator-spec validation.

Only the scikit-learn estimators listed in :data:`ALLOWED_ESTIMATORS` can be trained, by
their full class path; nothing else is ever imported. The constant is plain data so that
the operator's API can document and validate it without importing scikit-learn;
:func:`validate_estimator_spec` imports only the one class it checks.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import re
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, Literal

from modelops.train.errors import ConfigError, TrainError, one_line, preview

Task = Literal["classification", "regression"]

#: class path -> the task it solves. The trainer refuses every other class path.
ALLOWED_ESTIMATORS: dict[str, Task] = {
    # classification
    "sklearn.linear_model.LogisticRegression": "classification",
    "sklearn.linear_model.RidgeClassifier": "classification",
    "sklearn.linear_model.SGDClassifier": "classification",
    "sklearn.linear_model.Perceptron": "classification",
    "sklearn.ensemble.RandomForestClassifier": "classification",
    "sklearn.ensemble.ExtraTreesClassifier": "classification",
    "sklearn.ensemble.GradientBoostingClassifier": "classification",
    "sklearn.ensemble.HistGradientBoostingClassifier": "classification",
    "sklearn.ensemble.AdaBoostClassifier": "classification",
    "sklearn.tree.DecisionTreeClassifier": "classification",
    "sklearn.tree.ExtraTreeClassifier": "classification",
    "sklearn.neighbors.KNeighborsClassifier": "classification",
    "sklearn.svm.SVC": "classification",
    "sklearn.svm.NuSVC": "classification",
    "sklearn.svm.LinearSVC": "classification",
    "sklearn.naive_bayes.GaussianNB": "classification",
    "sklearn.naive_bayes.BernoulliNB": "classification",
    "sklearn.neural_network.MLPClassifier": "classification",
    "sklearn.discriminant_analysis.LinearDiscriminantAnalysis": "classification",
    "sklearn.discriminant_analysis.QuadraticDiscriminantAnalysis": "classification",
    "sklearn.dummy.DummyClassifier": "classification",
    # regression
    "sklearn.linear_model.LinearRegression": "regression",
    "sklearn.linear_model.Ridge": "regression",
    "sklearn.linear_model.Lasso": "regression",
    "sklearn.linear_model.ElasticNet": "regression",
    "sklearn.linear_model.SGDRegressor": "regression",
    "sklearn.linear_model.HuberRegressor": "regression",
    "sklearn.linear_model.BayesianRidge": "regression",
    "sklearn.ensemble.RandomForestRegressor": "regression",
    "sklearn.ensemble.ExtraTreesRegressor": "regression",
    "sklearn.ensemble.GradientBoostingRegressor": "regression",
    "sklearn.ensemble.HistGradientBoostingRegressor": "regression",
    "sklearn.ensemble.AdaBoostRegressor": "regression",
    "sklearn.tree.DecisionTreeRegressor": "regression",
    "sklearn.neighbors.KNeighborsRegressor": "regression",
    "sklearn.svm.SVR": "regression",
    "sklearn.svm.NuSVR": "regression",
    "sklearn.svm.LinearSVR": "regression",
    "sklearn.neural_network.MLPRegressor": "regression",
    "sklearn.kernel_ridge.KernelRidge": "regression",
    "sklearn.dummy.DummyRegressor": "regression",
}


def _short_names() -> dict[str, str]:
    return {path.rsplit(".", 1)[1]: path for path in ALLOWED_ESTIMATORS}


def check_class_name(class_name: str, path: str = "estimator.className") -> Task:
    """The task of an allow-listed class path; a :class:`ConfigError` otherwise (pure)."""
    task = ALLOWED_ESTIMATORS.get(class_name)
    if task is not None:
        return task
    short = _short_names()
    bare = class_name.rsplit(".", 1)[-1]
    if bare in short:
        hint = f"did you mean {short[bare]}?"
    else:
        close = difflib.get_close_matches(bare, list(short), n=3, cutoff=0.6)
        hint = "allowed are e.g. " + preview(
            [short[c] for c in close]
            or [
                "sklearn.ensemble.RandomForestClassifier",
                "sklearn.linear_model.LogisticRegression",
                "sklearn.ensemble.HistGradientBoostingRegressor",
                "sklearn.linear_model.Ridge",
            ]
        )
        hint += f" ({len(ALLOWED_ESTIMATORS)} in modelops.train.estimators.ALLOWED_ESTIMATORS)"
    raise ConfigError(path, f"estimator {class_name!r} is not in the allow-list; {hint}")


def load_class(class_name: str) -> type[Any]:
    """Import an allow-listed estimator class; refuses anything not on the list."""
    check_class_name(class_name)
    module_name, _, attr = class_name.rpartition(".")
    cls: type[Any] = getattr(importlib.import_module(module_name), attr)
    return cls


def valid_params(class_name: str) -> list[str]:
    """The sorted parameter names that ``class_name`` accepts (its ``get_params()`` keys)."""
    return sorted(load_class(class_name)().get_params(deep=False))


def check_params(class_name: str, params: Mapping[str, Any], path: str = "estimator.params") -> None:
    """Raise a :class:`ConfigError` naming the first unknown parameter and the valid ones."""
    names = valid_params(class_name)
    for key in params:
        if key not in names:
            bare = class_name.rsplit(".", 1)[1]
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{path}.{key}",
                f"unknown parameter {key!r} for {bare}{hint}; valid parameters are: {', '.join(names)}",
            )


def build_estimator(class_name: str, params: Mapping[str, Any], path: str = "estimator.params") -> Any:
    """An unfitted estimator with ``params`` set and checked by scikit-learn's own rules."""
    check_params(class_name, params, path)
    estimator = load_class(class_name)(**dict(params))
    # scikit-learn checks types and ranges at fit time; ask now so a bad value fails fast.
    validate = getattr(estimator, "_validate_params", None)
    if callable(validate):
        try:
            validate()
        except (ValueError, TypeError) as exc:
            raise ConfigError(path, str(exc)) from None
    return estimator


def validate_estimator_spec(
    class_name: str,
    params: Mapping[str, Any] | None = None,
    task: str | None = None,
) -> Task:
    """Check an estimator spec without training; return its task.

    Raises :class:`modelops.train.errors.ConfigError` (a ``ValueError``-like one-line message
    with the field path) for a class outside the allow-list, an unknown parameter, a value
    scikit-learn rejects, or a ``task`` that does not match the estimator.
    """
    kind = check_class_name(class_name)
    if task is not None and task != kind:
        raise ConfigError("task", f"{task!r} does not match {class_name}, a {kind} estimator")
    build_estimator(class_name, params or {})
    return kind


def _raised_by(estimator: Any, tb: TracebackType | None) -> bool:
    """Whether a method of an estimator of ``estimator``'s type is on the traceback (the estimator
    itself failed, not a preprocessing step; a clone counts, as ``CalibratedClassifierCV`` fits one)."""
    kind = type(estimator)
    while tb is not None:
        if type(tb.tb_frame.f_locals.get("self")) is kind:
            return True
        tb = tb.tb_next
    return False


def _mentioned(message: str, names: list[str]) -> list[str]:
    """The parameter names ``message`` uses as words: scikit-learn's way of saying which parameter is at fault.

    Names of one or two letters (``C``) only as written; longer ones in any case ("Solver lbfgs …").
    """
    found = []
    for name in names:
        flags = 0 if len(name) <= 2 else re.IGNORECASE
        if re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", message, flags):
            found.append(name)
    return found


def fit_failure(
    exc: BaseException,
    estimator: Any,
    class_name: str,
    params: Mapping[str, Any],
    trial_params: Mapping[str, Any],
    doing: str = "fit",
) -> TrainError:
    """One line for an exception out of fitting (or first predicting with) a pipeline (pure).

    When the estimator itself raised, the line names it and every parameter scikit-learn's message
    names, with its value and where it was set (``estimator.params.X``, ``sweep.parameters.X``, or
    the default): a combination such as ``LinearDiscriminantAnalysis(shrinkage="auto")`` with the
    default ``solver="svd"`` is only found out by ``fit``.
    """
    text = one_line(str(exc), 500) or "(no message)"
    if type(exc) not in (ValueError, TypeError, NotImplementedError):
        text = f"{type(exc).__name__}: {text}"
    if not _raised_by(estimator, exc.__traceback__):
        return TrainError(f"{doing} failed: {text}")
    bare = class_name.rsplit(".", 1)[-1]
    values = estimator.get_params(deep=False)
    names = sorted(values, key=lambda n: (n not in params, n))  # the ones the run set first
    named = []
    for name in _mentioned(str(exc), names):
        if name in trial_params:
            named.append(f"sweep.parameters.{name}={trial_params[name]!r}")
        elif name in params:
            named.append(f"estimator.params.{name}={params[name]!r}")
        else:
            named.append(f"{name}={values[name]!r} (default)")
    if not named:
        return TrainError(f"{doing} failed: {bare}: {text}")
    return TrainError(f"{doing} failed: {bare} cannot work with these parameters ({', '.join(named)}): {text}")


@contextlib.contextmanager
def failures_named(
    estimator: Any, class_name: str, params: Mapping[str, Any], trial_params: Mapping[str, Any], doing: str
) -> Iterator[None]:
    """Turn any exception of the block (a fit, a first predict) into :func:`fit_failure`'s :class:`TrainError`.

    ``MemoryError`` passes (the CLI names it); a ``TrainError`` raised inside passes as it is.
    """
    try:
        yield
    except (MemoryError, TrainError):
        raise
    except Exception as exc:
        raise fit_failure(exc, estimator, class_name, params, trial_params, doing) from None
