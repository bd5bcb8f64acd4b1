"""The run config (``RUN.json``, see ``docs/contracts.md``), parsed and validated (pure).

:func:`parse_config` turns the decoded JSON into frozen dataclasses, or raises a
:class:`~modelops.train.errors.ConfigError` whose message starts with the field path
(``config dataset.testSize: …``). Unknown keys are refused, so a typo never passes silently.
Defaults: ``format`` ``auto``, ``testSize`` 0.2, ``seed`` 42, ``preprocessing.scaleNumeric``
false, ``preprocessing.oneHotCategorical`` true, ``preprocessing.maxCategories`` 50,
``preprocessing.impute`` ``{"numeric": "auto", "categorical": "none", "fillValue": 0,
"fillCategory": "missing", "indicators": false}``, ``model`` ``"model"``; ``estimator.calibration``
absent (no calibration), its ``cv`` 5 when present.

``evaluation`` (fairness by sensitive features, feature importance) is validated by the API's own
model, :class:`modelops.api.trainingrun.EvaluationSpec`, so a run config and a TrainingRun accept
the same ``spec.evaluation``; what only the data can tell (does the column exist, how many groups)
is checked by the trainer before fitting (:mod:`modelops.train.fairness`).

S3 options are checked here too (:mod:`modelops.train.locations`): a region of AWS's form, an
endpoint the endpoint rule allows (with the allow-list of ``MODELOPS_S3_ENDPOINTS``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from modelops.api.trainingrun import EvaluationSpec
from modelops.logic import validation
from modelops.train import calibration, estimators, locations, sweep
from modelops.train.errors import ConfigError

FORMATS = ("auto", "csv", "parquet")
TASKS = ("classification", "regression")


@dataclass(frozen=True)
class S3Options:
    endpoint_url: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class DatasetConfig:
    uri: str
    target: str
    format: str = "auto"
    features: tuple[str, ...] | None = None
    categorical_features: tuple[str, ...] | None = None
    test_size: float = 0.2
    seed: int = 42
    s3: S3Options = field(default_factory=S3Options)


NUMERIC_IMPUTE = ("auto", "none", "mean", "median", "most_frequent", "constant")
CATEGORICAL_IMPUTE = ("none", "most_frequent", "constant")
COLUMN_IMPUTE = ("none", "mean", "median", "most_frequent", "constant")
DEFAULT_MAX_CATEGORIES = 50


@dataclass(frozen=True)
class Imputation:
    """How missing values are filled, per kind of column and per named column.

    ``numeric`` ``auto``: the median, for columns with missing values in the training split,
    when the estimator cannot take NaN itself; nothing otherwise. ``categorical`` ``none``: a
    missing value is a category of its own (one-hot encoded like the others).
    """

    numeric: str = "auto"
    categorical: str = "none"
    fill_value: float = 0.0
    fill_category: str = "missing"
    columns: tuple[tuple[str, str], ...] = ()
    indicators: bool = False


@dataclass(frozen=True)
class Preprocessing:
    scale_numeric: bool = False
    one_hot_categorical: bool = True
    max_categories: int = DEFAULT_MAX_CATEGORIES
    impute: Imputation = field(default_factory=Imputation)


@dataclass(frozen=True)
class CalibrationConfig:
    """``estimator.calibration``: wrap the final estimator in CalibratedClassifierCV (``train.calibration``)."""

    method: str
    cv: int = calibration.DEFAULT_FOLDS


@dataclass(frozen=True)
class EstimatorConfig:
    class_name: str
    params: dict[str, Any] = field(default_factory=dict)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    calibration: CalibrationConfig | None = None


@dataclass(frozen=True)
class SweepConfig:
    raw: dict[str, Any]
    trials: tuple[dict[str, Any], ...]
    metric: str | None
    goal: str


@dataclass(frozen=True)
class RunConfig:
    model: str
    task: str
    dataset: DatasetConfig
    estimator: EstimatorConfig
    run: dict[str, Any] = field(default_factory=dict)
    sweep: SweepConfig | None = None
    artifact_uri: str | None = None
    artifact_s3: S3Options = field(default_factory=S3Options)
    evaluation: EvaluationSpec = field(default_factory=EvaluationSpec)


def _obj(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(path, f"must be an object, got {type(value).__name__}")
    return value


def _keys(obj: Mapping[str, Any], path: str, allowed: set[str]) -> None:
    for key in obj:
        if key not in allowed:
            where = f"{path}.{key}" if path else key
            raise ConfigError(where, f"unknown field; expected one of {', '.join(sorted(allowed))}")


def _str(obj: Mapping[str, Any], key: str, path: str, default: str | None = None) -> str:
    value = obj.get(key, default)
    where = f"{path}.{key}" if path else key
    if value is None:
        raise ConfigError(where, "is required")
    if not isinstance(value, str) or not value:
        raise ConfigError(where, f"must be a non-empty string, got {value!r}")
    return value


def _opt_str(obj: Mapping[str, Any], key: str, path: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    return _str(obj, key, path)


def _names(obj: Mapping[str, Any], key: str, path: str) -> tuple[str, ...] | None:
    value = obj.get(key)
    if value is None:
        return None
    where = f"{path}.{key}"
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(where, "must be a list of column names")
    if not value:
        raise ConfigError(where, "must not be empty (leave it null for the default)")
    dupes = sorted({v for v in value if value.count(v) > 1})
    if dupes:
        raise ConfigError(where, f"lists {dupes[0]!r} more than once")
    return tuple(value)


def _bool(obj: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
    value = obj.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigError(f"{path}.{key}", f"must be true or false, got {value!r}")
    return value


def _s3_options(raw: Any, path: str) -> S3Options:
    if raw is None:
        return S3Options()
    obj = _obj(raw, path)
    _keys(obj, path, {"endpointUrl", "region"})
    endpoint, region = _opt_str(obj, "endpointUrl", path), _opt_str(obj, "region", path)
    try:
        if endpoint is not None:
            locations.check_endpoint(endpoint, locations.allowed_endpoints(), "")
    except locations.LocationError as exc:
        raise ConfigError(f"{path}.endpointUrl", str(exc).strip()) from None
    try:
        if region is not None:
            locations.check_region(region, "")
    except locations.LocationError as exc:
        raise ConfigError(f"{path}.region", str(exc).strip()) from None
    return S3Options(endpoint, region)


def _dataset(raw: Any) -> DatasetConfig:
    obj = _obj(raw, "dataset")
    _keys(obj, "dataset", {"uri", "format", "target", "features", "categoricalFeatures", "testSize", "seed", "s3"})
    fmt = obj.get("format") or "auto"
    if fmt not in FORMATS:
        raise ConfigError("dataset.format", f"must be one of {', '.join(FORMATS)}, got {fmt!r}")
    test_size = obj.get("testSize", 0.2)
    if test_size is None:
        test_size = 0.2
    if (
        not isinstance(test_size, int | float)
        or isinstance(test_size, bool)
        or not math.isfinite(test_size)
        or not 0 < test_size < 1
    ):
        raise ConfigError("dataset.testSize", f"must be a number between 0 and 1 (exclusive), got {test_size!r}")
    seed = obj.get("seed", 42)
    if seed is None:
        seed = 42
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise ConfigError("dataset.seed", f"must be an integer in [0, 2**32), got {seed!r}")
    s3 = _s3_options(obj.get("s3"), "dataset.s3")
    features = _names(obj, "features", "dataset")
    categorical = _names(obj, "categoricalFeatures", "dataset")
    target = _str(obj, "target", "dataset")
    if features is not None and target in features:
        raise ConfigError("dataset.features", f"lists the target column {target!r}")
    if features is not None and categorical is not None:
        extra = [c for c in categorical if c not in features]
        if extra:
            raise ConfigError("dataset.categoricalFeatures", f"{extra[0]!r} is not in dataset.features")
    return DatasetConfig(
        uri=_str(obj, "uri", "dataset"),
        target=target,
        format=fmt,
        features=features,
        categorical_features=categorical,
        test_size=float(test_size),
        seed=seed,
        s3=s3,
    )


def _estimator(raw: Any) -> EstimatorConfig:
    obj = _obj(raw, "estimator")
    _keys(obj, "estimator", {"className", "params", "preprocessing", "calibration"})
    class_name = _str(obj, "className", "estimator")
    estimators.check_class_name(class_name)
    params = obj.get("params") or {}
    params = dict(_obj(params, "estimator.params"))
    pre = Preprocessing()
    if obj.get("preprocessing") is not None:
        path = "estimator.preprocessing"
        pobj = _obj(obj["preprocessing"], path)
        _keys(pobj, path, {"scaleNumeric", "oneHotCategorical", "maxCategories", "impute"})
        max_categories = pobj.get("maxCategories", DEFAULT_MAX_CATEGORIES)
        if max_categories is None:
            max_categories = DEFAULT_MAX_CATEGORIES
        if not isinstance(max_categories, int) or isinstance(max_categories, bool) or not 2 <= max_categories <= 1000:
            raise ConfigError(f"{path}.maxCategories", f"must be an integer in [2, 1000], got {max_categories!r}")
        pre = Preprocessing(
            scale_numeric=_bool(pobj, "scaleNumeric", path, False),
            one_hot_categorical=_bool(pobj, "oneHotCategorical", path, True),
            max_categories=max_categories,
            impute=_imputation(pobj.get("impute"), f"{path}.impute"),
        )
    return EstimatorConfig(
        class_name=class_name, params=params, preprocessing=pre, calibration=_calibration(obj.get("calibration"))
    )


def _calibration(raw: Any) -> CalibrationConfig | None:
    if raw is None:
        return None
    path = "estimator.calibration"
    obj = _obj(raw, path)
    _keys(obj, path, {"method", "cv"})
    if obj.get("method") is None:
        raise ConfigError(f"{path}.method", f"is required: one of {', '.join(calibration.METHODS)}")
    method = _choice(obj, "method", path, calibration.METHODS, calibration.METHODS[0])
    folds = obj.get("cv", calibration.DEFAULT_FOLDS)
    if folds is None:
        folds = calibration.DEFAULT_FOLDS
    if not isinstance(folds, int) or isinstance(folds, bool) or not 2 <= folds <= 20:
        raise ConfigError(f"{path}.cv", f"must be an integer in [2, 20], got {folds!r}")
    return CalibrationConfig(method, folds)


def _choice(obj: Mapping[str, Any], key: str, path: str, choices: tuple[str, ...], default: str) -> str:
    value = obj.get(key, default)
    if value is None:
        return default
    if value not in choices:
        raise ConfigError(f"{path}.{key}", f"must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _imputation(raw: Any, path: str) -> Imputation:
    if raw is None:
        return Imputation()
    obj = _obj(raw, path)
    _keys(obj, path, {"numeric", "categorical", "fillValue", "fillCategory", "columns", "indicators"})
    fill = obj.get("fillValue", 0)
    if fill is None:
        fill = 0
    if not isinstance(fill, int | float) or isinstance(fill, bool) or not math.isfinite(fill):
        raise ConfigError(f"{path}.fillValue", f"must be a finite number, got {fill!r}")
    category = obj.get("fillCategory", "missing")
    if category is None:
        category = "missing"
    if not isinstance(category, str) or not category:
        raise ConfigError(f"{path}.fillCategory", f"must be a non-empty string, got {category!r}")
    columns_raw = obj.get("columns") or {}
    columns = _obj(columns_raw, f"{path}.columns")
    for name, strategy in columns.items():
        if strategy not in COLUMN_IMPUTE:
            raise ConfigError(
                f"{path}.columns.{name}", f"must be one of {', '.join(COLUMN_IMPUTE)}, got {strategy!r}"
            )
    return Imputation(
        numeric=_choice(obj, "numeric", path, NUMERIC_IMPUTE, "auto"),
        categorical=_choice(obj, "categorical", path, CATEGORICAL_IMPUTE, "none"),
        fill_value=float(fill),
        fill_category=category,
        columns=tuple(sorted((str(k), str(v)) for k, v in columns.items())),
        indicators=_bool(obj, "indicators", path, False),
    )


def _sweep(raw: Any) -> SweepConfig:
    obj = _obj(raw, "sweep")
    _keys(obj, "sweep", {"strategy", "parameters", "trials", "seed", "parallelism", "metric", "goal"})
    try:
        trials = sweep.expand_sweep(obj)
    except sweep.SweepError as exc:
        path, _, problem = str(exc).partition(": ")
        raise ConfigError(path, problem) from None
    metric = _opt_str(obj, "metric", "sweep")
    goal = obj.get("goal") or "maximize"
    if goal not in ("maximize", "minimize"):
        raise ConfigError("sweep.goal", f"must be 'maximize' or 'minimize', got {goal!r}")
    return SweepConfig(raw=dict(obj), trials=tuple(trials), metric=metric, goal=goal)


def _evaluation(raw: Any, dataset: DatasetConfig) -> EvaluationSpec:
    """``evaluation`` by the TrainingRun's own rules, plus the dataset rules a config can break alone."""
    obj = _obj(raw, "evaluation")
    try:
        evaluation = EvaluationSpec.model_validate(obj)
    except ValidationError as exc:
        invalid = validation.describe(exc, root="evaluation")
        raise ConfigError(invalid.field, invalid.problems[0].removeprefix(f"{invalid.field}: ")) from None
    mismatch = evaluation_problem(evaluation, dataset.target, dataset.features)
    if mismatch is not None:
        raise ConfigError(f"evaluation.{mismatch[0]}", mismatch[1])
    return evaluation


def evaluation_problem(
    evaluation: EvaluationSpec, target: str, features: tuple[str, ...] | list[str] | None
) -> tuple[str, str] | None:
    """What is wrong between ``evaluation`` and the dataset's target and features (pure): (field, problem).

    Shared with the operator's check before a pod starts (:func:`modelops.logic.training.check`).
    """
    for index, feature in enumerate(evaluation.sensitive_features or ()):
        where = f"sensitiveFeatures[{index}].name"
        if feature.name == target:
            return where, f"{feature.name!r} is the target column; evaluate by another column"
        if not feature.use_as_input and features is not None and feature.name in features:
            return where, (
                f"{feature.name!r} has useAsInput: false but dataset.features lists it; remove it from one of them"
            )
    return None


def parse_config(raw: Any) -> RunConfig:
    """Validate a decoded ``RUN.json``; raise :class:`ConfigError` naming the field path.

    Parameter *names* are checked here; parameter values need scikit-learn and are checked
    when the estimator is built (:func:`modelops.train.estimators.build_estimator`).
    """
    obj = _obj(raw, "")
    _keys(obj, "", {"run", "model", "task", "dataset", "estimator", "sweep", "artifactUri", "artifactStore",
                    "evaluation"})  # fmt: skip
    for key in ("dataset", "estimator"):
        if obj.get(key) is None:
            raise ConfigError(key, "is required")
    dataset = _dataset(obj["dataset"])
    estimator = _estimator(obj["estimator"])
    kind = estimators.ALLOWED_ESTIMATORS[estimator.class_name]
    task = obj.get("task")
    if task is None:
        task = kind
    elif task not in TASKS:
        raise ConfigError("task", f"must be one of {', '.join(TASKS)}, got {task!r}")
    elif task != kind:
        raise ConfigError("task", f"{task!r} does not match {estimator.class_name}, a {kind} estimator")
    if estimator.calibration is not None and kind != "classification":
        message = f"{estimator.class_name} is a regressor; only classifiers are calibrated"
        raise ConfigError("estimator.calibration", message)
    run = obj.get("run") or {}
    run = dict(_obj(run, "run"))
    model = _str(obj, "model", "", default="model")
    artifact_uri = _opt_str(obj, "artifactUri", "")
    artifact_s3 = S3Options()
    if obj.get("artifactStore") is not None:
        store = _obj(obj["artifactStore"], "artifactStore")
        _keys(store, "artifactStore", {"s3"})
        artifact_s3 = _s3_options(store.get("s3"), "artifactStore.s3")
    sweep_cfg = _sweep(obj["sweep"]) if obj.get("sweep") is not None else None
    return RunConfig(
        model=model,
        task=task,
        dataset=dataset,
        estimator=estimator,
        run=run,
        sweep=sweep_cfg,
        artifact_uri=artifact_uri.rstrip("/") if artifact_uri else None,
        artifact_s3=artifact_s3,
        evaluation=_evaluation(obj["evaluation"], dataset) if obj.get("evaluation") is not None else EvaluationSpec(),
    )
