"""One training run, end to end: config -> dataset -> fitted Pipeline -> result files.

:func:`train` is the whole run the CLI wraps; it raises
:class:`~modelops.train.errors.TrainError` for every problem with the input, before any
result is in place (see :mod:`modelops.train.output` for the atomic writes). It checks
everything that can be checked without data (estimator, params, sweep, trial index) before
fetching the dataset, and everything that can be checked without fitting (columns, NaNs,
target) before fitting.

Determinism: ``random_state`` is set to ``dataset.seed`` when the estimator has one and the
user did not set it; the split uses the same seed (stratified for classification when every
class has enough rows, else a plain shuffle split). The same config and data therefore give
a byte-identical ``model.joblib``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.train import estimators, metrics, output, refstats
from modelops.train.config import RunConfig
from modelops.train.datasets import Dataset, load
from modelops.train.errors import TrainError, one_line, preview

if TYPE_CHECKING:
    import pandas as pd

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def resolve_trial(config: RunConfig, flag: int | None, env: str | None) -> int | None:
    """The trial index to run (pure): ``--trial-index``, else ``$JOB_COMPLETION_INDEX``."""
    if config.sweep is None:
        if flag is not None:
            raise TrainError("--trial-index was given but the config has no sweep")
        return None
    count = len(config.sweep.trials)
    if flag is None and env not in (None, ""):
        try:
            flag = int(str(env))
        except ValueError:
            raise TrainError(f"JOB_COMPLETION_INDEX must be an integer, got {env!r}") from None
    if flag is None:
        raise TrainError(
            f"the config has a sweep of {count} trials; pass --trial-index 0..{count - 1} (or set JOB_COMPLETION_INDEX)"
        )
    if not 0 <= flag < count:
        raise TrainError(f"trial index {flag} is out of range; the sweep has {count} trials (0..{count - 1})")
    return flag


def _columns(dataset: Dataset, config: RunConfig) -> tuple[list[str], list[str], list[str]]:
    """(features, numeric, categorical) after checking every named column exists."""
    import pandas as pd

    frame, cfg = dataset.frame, config.dataset
    columns = list(frame.columns)
    if cfg.target not in frame.columns:
        raise TrainError(
            f"target column {cfg.target!r} not found in dataset {cfg.uri}; columns are: {preview(columns)}"
        )
    if cfg.features is not None:
        features = list(cfg.features)
    elif dataset.default_features is not None:
        features = [c for c in dataset.default_features if c != cfg.target]
    else:
        features = [c for c in columns if c != cfg.target]
    missing = [c for c in features if c not in frame.columns]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise TrainError(
            f"feature column{plural} {', '.join(repr(c) for c in missing)} not found in dataset {cfg.uri}; "
            f"columns are: {preview(columns)}"
        )
    if not features:
        raise TrainError(f"dataset {cfg.uri} has no feature columns besides the target {cfg.target!r}")

    def numeric(name: str) -> bool:
        dtype = frame[name].dtype
        return bool(pd.api.types.is_numeric_dtype(dtype)) and not pd.api.types.is_bool_dtype(dtype)

    if cfg.categorical_features is not None:
        missing = [c for c in cfg.categorical_features if c not in frame.columns]
        if missing:
            raise TrainError(f"categorical feature column {missing[0]!r} not found in dataset {cfg.uri}")
        categorical = [c for c in features if c in cfg.categorical_features]
        odd = [c for c in features if c not in categorical and not numeric(c)]
        if odd:
            raise TrainError(
                f"feature column {odd[0]!r} is not numeric (dtype {frame[odd[0]].dtype}); "
                "list it in dataset.categoricalFeatures"
            )
    else:
        categorical = []
        for name in features:
            if numeric(name):
                continue
            dtype = frame[name].dtype
            if not (
                pd.api.types.is_object_dtype(dtype)
                or pd.api.types.is_bool_dtype(dtype)
                or pd.api.types.is_string_dtype(dtype)
                or isinstance(dtype, pd.CategoricalDtype)
            ):
                raise TrainError(f"feature column {name!r} has unsupported dtype {dtype}")
            categorical.append(name)
    numeric_cols = [c for c in features if c not in categorical]
    return features, numeric_cols, categorical


def _check_target(target: pd.Series, config: RunConfig) -> None:
    import pandas as pd

    name, missing = config.dataset.target, int(target.isna().sum())
    if missing:
        raise TrainError(f"target column {name!r} has {missing} missing values (NaN); drop those rows")
    if config.task == "regression":
        if not pd.api.types.is_numeric_dtype(target.dtype) or pd.api.types.is_bool_dtype(target.dtype):
            raise TrainError(f"target column {name!r} is not numeric (dtype {target.dtype}) but the task is regression")
        return
    if pd.api.types.is_float_dtype(target.dtype) and not (target == target.round()).all():
        raise TrainError(
            f"target column {name!r} has non-integer float values, not class labels, "
            f"but {config.estimator.class_name} is a classifier; use a regressor"
        )
    if target.nunique() < 2:
        raise TrainError(f"target column {name!r} has a single class; a classifier needs at least two")


def _check_nans(frame: pd.DataFrame, numeric: list[str], estimator: Any, class_name: str) -> None:
    from sklearn.utils import get_tags

    if not numeric or get_tags(estimator).input_tags.allow_nan:
        return
    counts = frame[numeric].isna().sum()
    bad = [str(c) for c, n in counts.items() if n]
    if bad:
        raise TrainError(
            f"columns with missing values (NaN) that {class_name.rsplit('.', 1)[1]} cannot take: "
            f"{preview(bad)}; impute or drop them, or use an estimator that accepts NaN "
            "(e.g. HistGradientBoostingClassifier/Regressor, RandomForest*, DecisionTree*)"
        )


def _split(x: pd.DataFrame, y: pd.Series, config: RunConfig) -> tuple[Any, Any, Any, Any, bool]:
    from sklearn.model_selection import train_test_split

    cfg = config.dataset
    if config.task == "classification":
        try:
            return (*train_test_split(x, y, test_size=cfg.test_size, random_state=cfg.seed, stratify=y), True)
        except ValueError:
            pass  # a class too small to stratify: fall back to a plain shuffle split
    try:
        return (*train_test_split(x, y, test_size=cfg.test_size, random_state=cfg.seed), False)
    except ValueError as exc:
        raise TrainError(
            f"cannot split dataset {cfg.uri} ({len(x)} rows) with testSize {cfg.test_size}: {one_line(str(exc))}"
        ) from None


def _pipeline(estimator: Any, numeric: list[str], categorical: list[str], config: RunConfig) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = config.estimator.preprocessing
    if not categorical:
        # All numeric: plain steps (no column selection by name), so a server can call them on a
        # matrix in signature order without building a DataFrame per request.
        steps: list[tuple[str, Any]] = [("scale", StandardScaler())] if pre.scale_numeric else []
        return Pipeline([*steps, ("estimator", estimator)])
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        parts.append(("numeric", StandardScaler() if pre.scale_numeric else "passthrough", numeric))
    if categorical:
        if not pre.one_hot_categorical:
            raise TrainError(
                f"categorical feature columns {preview(categorical, 3)} need "
                "estimator.preprocessing.oneHotCategorical: true"
            )
        parts.append(("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical))
    transformer = ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)
    return Pipeline([("preprocess", transformer), ("estimator", estimator)])


def _artifact_base(config: RunConfig, out_dir: Path, trial: int | None) -> str:
    if config.artifact_uri:
        return config.artifact_uri + (f"/trial-{trial}" if trial is not None else "")
    return out_dir.resolve().as_uri()


def upload(path: Path, uri: str, config: RunConfig) -> None:
    """PUT a finished file to ``s3://bucket/key``, signed with the pod's AWS credentials."""
    import requests

    from modelops.train import s3

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body = path.read_bytes()
    digest = output.sha256_file(path)
    url, headers = s3.signed_request(
        "PUT", bucket, key, config.artifact_s3.endpoint_url, config.artifact_s3.region, payload_sha256=digest
    )
    try:
        response = requests.put(url, data=body, headers=headers, timeout=300)
    except requests.RequestException as exc:
        raise TrainError(f"cannot upload {uri}: {one_line(str(exc), 300)}") from None
    if response.status_code not in (200, 201, 204):
        code = (
            response.text[response.text.find("<Code>") + 6 : response.text.find("</Code>")]
            if "<Code>" in response.text
            else ""
        )
        raise TrainError(f"PUT {uri} answered HTTP {response.status_code} {code or response.reason or ''}".rstrip())


def train(
    config: RunConfig,
    output_dir: Path,
    trial_flag: int | None = None,
    trial_env: str | None = None,
    log: Log = _quiet,
) -> dict[str, Any]:
    """Run one training (or one sweep trial); return the termination message as a dict."""
    started = time.monotonic()
    class_name = config.estimator.class_name
    estimator = estimators.build_estimator(class_name, config.estimator.params)
    if config.sweep is not None:
        # Every trial, not only this one: a bad value fails all pods at once, not 1 in N.
        for overrides in config.sweep.trials:
            estimators.check_params(class_name, overrides, "sweep.parameters")
            estimators.build_estimator(class_name, {**config.estimator.params, **overrides}, "sweep.parameters")
    trial = resolve_trial(config, trial_flag, trial_env)
    trial_params: dict[str, Any] = dict(config.sweep.trials[trial]) if config.sweep and trial is not None else {}
    params = {**config.estimator.params, **trial_params}
    if trial_params:
        estimator = estimators.build_estimator(class_name, params, "sweep.parameters")
    if "random_state" in estimator.get_params(deep=False) and "random_state" not in params:
        params["random_state"] = config.dataset.seed
        estimator.set_params(random_state=config.dataset.seed)
    out_dir = output_dir / f"trial-{trial}" if trial is not None else output_dir

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrainError(f"cannot use output directory {out_dir}: {exc.strerror or exc}") from None
    with output.atomic_output(out_dir) as staged:
        result = _train_into(config, estimator, params, trial, trial_params, out_dir, staged, log)
    if config.artifact_uri and config.artifact_uri.startswith("s3://"):
        # The model first, then result.json: a result in the store always has its model beside it.
        base = _artifact_base(config, out_dir, trial)
        for name in (output.MODEL_FILE, output.RESULT_FILE):
            upload(out_dir / name, f"{base}/{name}", config)
            log(f"uploaded {base}/{name}")
    log(f"done in {time.monotonic() - started:.1f}s: {out_dir / output.RESULT_FILE}")
    return result


def _train_into(
    config: RunConfig,
    estimator: Any,
    params: dict[str, Any],
    trial: int | None,
    trial_params: dict[str, Any],
    out_dir: Path,
    staged: output.AtomicDir,
    log: Log,
) -> dict[str, Any]:
    import joblib
    import numpy as np
    import sklearn

    cfg = config.dataset
    dataset = load(cfg)
    log(f"loaded {cfg.uri}: {len(dataset.frame)} rows, sha256 {dataset.sha256}")
    features, numeric, categorical = _columns(dataset, config)
    frame, dataset_sha = dataset.frame, dataset.sha256
    x, y = frame[features], frame[cfg.target]
    _check_target(y, config)
    _check_nans(x, numeric, estimator, config.estimator.class_name)
    del dataset, frame  # let the full table go once the split holds its rows
    x_train, x_test, y_train, y_test, _ = _split(x, y, config)
    del x, y
    pipeline = _pipeline(estimator, numeric, categorical, config)
    log(f"fitting {config.estimator.class_name} on {len(x_train)} rows, {len(features)} features")
    try:
        pipeline.fit(x_train, y_train)
    except (ValueError, TypeError) as exc:
        raise TrainError(f"fit failed: {one_line(str(exc), 500)}") from None

    y_pred = pipeline.predict(x_test)
    if config.task == "classification":
        proba = pipeline.predict_proba(x_test) if hasattr(pipeline, "predict_proba") else None
        decision = (
            pipeline.decision_function(x_test) if proba is None and hasattr(pipeline, "decision_function") else None
        )
        scores = metrics.classification_metrics(y_test, y_pred, pipeline.classes_, proba, decision)
        classes = list(pipeline.classes_)
    else:
        scores = metrics.regression_metrics(y_test, y_pred)
        classes = None

    model_path = staged.stage(output.MODEL_FILE)
    joblib.dump(pipeline, model_path)
    model_sha = output.sha256_file(model_path)
    size = model_path.stat().st_size

    base = _artifact_base(config, out_dir, trial)
    dataset_uri = cfg.uri
    result: dict[str, Any] = {
        "resultVersion": 1,
        "model": config.model,
        "task": config.task,
        "artifact": {
            "uri": f"{base}/{output.MODEL_FILE}",
            "path": output.MODEL_FILE,
            "sha256": model_sha,
            "sizeBytes": size,
            "format": "joblib",
        },
        "framework": {"name": "scikit-learn", "version": sklearn.__version__},
        "estimator": {"className": config.estimator.class_name, "params": params},
        "trial": {"index": trial, "params": trial_params} if trial is not None else None,
        "metrics": scores,
        "dataset": {
            "uri": dataset_uri,
            "sha256": dataset_sha,
            "rows": len(x_train) + len(x_test),
            "trainRows": len(x_train),
            "testRows": len(x_test),
        },
        "signature": refstats.signature(x_train, config.task, classes, np.asarray(y_pred).dtype),
        "referenceStats": refstats.reference_stats(x_train, numeric, categorical),
        "lineage": {"run": config.run, "params": params},
    }
    result_path = staged.stage(output.RESULT_FILE)
    result_path.write_text(output.dumps(result) + "\n", encoding="utf-8")
    staged.commit()
    log(f"metrics: {', '.join(f'{k}={v:.4g}' for k, v in scores.items())}; model sha256 {model_sha}")
    return {
        "ok": True,
        "model": config.model,
        "metrics": scores,
        "artifact": {"uri": result["artifact"]["uri"], "sha256": model_sha, "sizeBytes": size},
        "dataset": {"uri": dataset_uri, "sha256": dataset_sha},
        "resultFile": f"{base}/{output.RESULT_FILE}",
        "trial": result["trial"],
        # What the operator registers with the version; dropped first (biggest first) when the
        # message would not fit in 4 KiB, the full record staying in result.json.
        "task": config.task,
        "framework": result["framework"],
        "params": params,
        "rows": result["dataset"]["rows"],
        "signature": result["signature"],
        "referenceStats": result["referenceStats"],
    }
