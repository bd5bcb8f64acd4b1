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
a byte-identical ``model.skops`` (see :mod:`modelops.train.output`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.api.trainingrun import FeatureImportanceSpec
from modelops.train import (
    calibration,
    estimators,
    fairness,
    importance,
    metrics,
    output,
    progress,
    reference,
    refstats,
    signature,
)
from modelops.train import columns as columns_mod
from modelops.train import sweep as sweep_mod
from modelops.train.config import RunConfig
from modelops.train.datasets import Dataset, load
from modelops.train.errors import TrainError, one_line, preview

if TYPE_CHECKING:
    import pandas as pd

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def resolve_trial(config: RunConfig, flag: int | None, env: str | None) -> int | None:
    """The trial index to run (pure): ``--trial-index``, else ``$JOB_COMPLETION_INDEX``; None for a
    sweep given neither, whose trials then all run here, one after another."""
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
        return None  # every trial, one after another (train_sweep)
    if not 0 <= flag < count:
        raise TrainError(f"trial index {flag} is out of range; the sweep has {count} trials (0..{count - 1})")
    return flag


def _columns(dataset: Dataset, config: RunConfig) -> tuple[list[str], list[str], list[str]]:
    """(features, numeric, categorical) after checking every named column exists."""
    import pandas as pd

    frame, cfg = dataset.frame, config.dataset
    columns = list(frame.columns)
    if cfg.target not in frame.columns:
        # Counted, not listed: until the target is found, the "header" may be any file's first line.
        raise TrainError(
            f"target column {cfg.target!r} not found among the {len(columns)} columns of dataset {cfg.uri}"
        )
    # Sensitive columns kept out of the inputs (useAsInput: false) are still read for evaluation.
    held_out = {f.name for f in config.evaluation.sensitive_features or () if not f.use_as_input}
    if cfg.features is not None:
        features = list(cfg.features)
    elif dataset.default_features is not None:
        features = [c for c in dataset.default_features if c != cfg.target and c not in held_out]
    else:
        features = [c for c in columns if c != cfg.target and c not in held_out]
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
    try:
        url, headers = s3.signed_request(
            "PUT", bucket, key, config.artifact_s3.endpoint_url, config.artifact_s3.region, payload_sha256=digest,
            checked=True,
        )  # fmt: skip
    except ValueError as exc:  # the endpoint or region rule (modelops.train.locations)
        raise TrainError(f"artifactStore.s3: {exc}") from None
    try:
        response = requests.put(url, data=body, headers=headers, timeout=300)
    except requests.RequestException as exc:
        raise TrainError(f"cannot upload {uri}: {type(exc).__name__}") from None
    if response.status_code not in (200, 201, 204):
        code = s3.error_code(response.text[:4096])
        raise TrainError(f"PUT {uri} answered HTTP {response.status_code} {_plain_word(code)}".rstrip())


def _plain_word(text: str) -> str:
    """An S3 error code as it is, only when it is one (a short word), never other text of a reply."""
    return text if len(text) <= 64 and text.isalnum() else ""


def train(
    config: RunConfig,
    output_dir: Path,
    trial_flag: int | None = None,
    trial_env: str | None = None,
    log: Log = _quiet,
) -> dict[str, Any]:
    """Run one training, one sweep trial, or (a sweep without a trial index) every trial in turn;
    return the termination message as a dict."""
    started = time.monotonic()
    class_name = config.estimator.class_name
    estimators.build_estimator(class_name, config.estimator.params)
    if config.sweep is not None:
        # Every trial, not only this one: a bad value fails all pods at once, not 1 in N.
        for overrides in config.sweep.trials:
            estimators.check_params(class_name, overrides, "sweep.parameters")
            estimators.build_estimator(class_name, {**config.estimator.params, **overrides}, "sweep.parameters")
    trial = resolve_trial(config, trial_flag, trial_env)
    if config.sweep is not None and trial is None:
        return train_sweep(config, output_dir, log)
    return _train_trial(config, output_dir, trial, log, started, _Loader(config))


class _Loader:
    """The dataset, loaded on first use and kept: a local sweep reads it once for every trial."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.dataset: Dataset | None = None

    def __call__(self, log: Log) -> Dataset:
        if self.dataset is None:
            self.dataset = load(self.config.dataset)
            log(f"loaded {self.config.dataset.uri}: {len(self.dataset.frame)} rows, sha256 {self.dataset.sha256}")
        return self.dataset


def _train_trial(
    config: RunConfig, output_dir: Path, trial: int | None, log: Log, started: float, loader: _Loader
) -> dict[str, Any]:
    class_name = config.estimator.class_name
    estimator = estimators.build_estimator(class_name, config.estimator.params)
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
        result = _train_into(config, estimator, params, trial, trial_params, out_dir, staged, log, loader)
    if config.artifact_uri and config.artifact_uri.startswith("s3://"):
        # The model first, then result.json: a result in the store always has its model beside it.
        base = _artifact_base(config, out_dir, trial)
        for name in (output.MODEL_FILE, output.RESULT_FILE):
            upload(out_dir / name, f"{base}/{name}", config)
            log(f"uploaded {base}/{name}")
    log(f"done in {progress.elapsed(time.monotonic() - started)}: {out_dir / output.RESULT_FILE}")
    return result


def sweep_metric(config: RunConfig) -> tuple[str, str]:
    """The metric and goal that pick a sweep's best trial (the task's default when none is named)."""
    assert config.sweep is not None
    if config.sweep.metric:
        return config.sweep.metric, config.sweep.goal
    return sweep_mod.DEFAULT_METRIC[config.task]


def train_sweep(config: RunConfig, output_dir: Path, log: Log = _quiet) -> dict[str, Any]:
    """Every trial of the sweep here, one after another (each into ``DIR/trial-<i>``); the best one's message.

    A failed trial is reported and the next one runs; the message of the best trial (by the
    sweep's metric) comes back with ``sweep`` (one row per trial) added, and a summary table is
    logged. :class:`TrainError` when no trial succeeds.
    """
    assert config.sweep is not None
    started = time.monotonic()
    loader = _Loader(config)
    count = len(config.sweep.trials)
    rows: list[dict[str, Any]] = []
    messages: list[dict[str, Any] | None] = []
    for index, overrides in enumerate(config.sweep.trials):
        label = ", ".join(f"{k}={v}" for k, v in overrides.items())
        so_far = progress.elapsed(time.monotonic() - started)
        log(f"trial {index + 1} of {count} (index {index}): {label}; {so_far} elapsed")
        trial_started = time.monotonic()
        try:
            message = _train_trial(config, output_dir, index, log, trial_started, loader)
        except TrainError as exc:
            log(f"trial {index + 1} of {count} failed: {exc.message}")
            messages.append(None)
            rows.append({"index": index, "params": overrides, "error": exc.message,
                         "seconds": time.monotonic() - trial_started})  # fmt: skip
            continue
        messages.append(message)
        rows.append({"index": index, "params": overrides, "metrics": message.get("metrics") or {},
                     "seconds": time.monotonic() - trial_started})  # fmt: skip
    metric, goal = sweep_metric(config)
    best = sweep_mod.best_trial(messages, metric, goal)
    for line in summary_table(rows, metric, best).splitlines():
        log(line)
    if best is None:
        failed = [r for r in rows if "error" in r]
        first = failed[0]["error"] if failed else f"no trial reported {metric}"
        raise TrainError(f"no trial of the sweep succeeded ({len(failed)} of {count} failed); the first: {first}")
    log(f"best: trial index {best} by {metric} ({goal}); {progress.elapsed(time.monotonic() - started)} in all")
    chosen = dict(messages[best] or {})
    chosen["sweep"] = {"metric": metric, "goal": goal, "best": best,
                       "trials": [{k: v for k, v in r.items() if k != "seconds"} for r in rows]}  # fmt: skip
    return chosen


def summary_table(rows: list[dict[str, Any]], metric: str, best: int | None) -> str:
    """One line per trial: index, params, the sweep metric, time, and which one is best (pure)."""
    header = ("trial", "params", metric, "time", "")
    lines: list[tuple[str, ...]] = [header]
    for row in rows:
        value = (row.get("metrics") or {}).get(metric)
        shown = f"{value:.4g}" if isinstance(value, int | float) else ("failed" if "error" in row else "-")
        params = ", ".join(f"{k}={v}" for k, v in row["params"].items()) or "-"
        mark = "best" if row["index"] == best else ""
        lines.append((str(row["index"]), params, shown, progress.elapsed(float(row.get("seconds", 0.0))), mark))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def _train_into(
    config: RunConfig,
    estimator: Any,
    params: dict[str, Any],
    trial: int | None,
    trial_params: dict[str, Any],
    out_dir: Path,
    staged: output.AtomicDir,
    log: Log,
    loader: _Loader,
) -> dict[str, Any]:
    import numpy as np
    import sklearn

    cfg = config.dataset
    evaluation = config.evaluation
    if evaluation.sensitive_features:
        fairness.require()
    dataset = loader(log)
    features, numeric, categorical = _columns(dataset, config)
    frame, dataset_sha = dataset.frame, dataset.sha256
    if not frame.index.is_unique:  # a Parquet file may carry any index; rows are matched by it below
        frame = frame.reset_index(drop=True)
    groups = fairness.groupings(frame, evaluation, features, cfg.uri) if evaluation.sensitive_features else []
    x, y = frame[features], frame[cfg.target]
    _check_target(y, config)
    if groups and config.task == "classification":
        fairness.positive_class(list(np.unique(y.to_numpy())), evaluation.positive_class)
    del dataset, frame  # the split holds the rows it needs (a local sweep's loader keeps the table)
    x_train, x_test, y_train, y_test, _ = _split(x, y, config)
    del x, y
    from sklearn.utils import get_tags

    preprocessing = config.estimator.preprocessing
    plans = columns_mod.plan_columns(
        x_train, numeric, categorical, cfg.categorical_features or (), preprocessing,
        bool(get_tags(estimator).input_tags.allow_nan), config.estimator.class_name,
    )  # fmt: skip
    imputed = [p.name for p in plans if p.impute != "none"]
    if imputed:
        log(f"imputing missing values in {len(imputed)} columns: {preview(imputed)}")
    calibrate = config.estimator.calibration
    configured = estimator  # the one the run's parameters are for (calibration wraps it)
    if calibrate is not None:
        estimator = calibration.wrap(estimator, calibrate.method, calibrate.cv)
        log(f"calibrating {config.estimator.class_name}'s probabilities: {calibrate.method}, {calibrate.cv} folds")
    pipeline = columns_mod.build_pipeline(estimator, plans, preprocessing)
    trial_label = f" (trial {trial + 1} of {len(config.sweep.trials)})" if config.sweep and trial is not None else ""
    with (
        progress.Heartbeat(log, f"fitting {config.estimator.class_name} on {len(x_train)} rows, "
                                f"{len(features)} features{trial_label}"),  # fmt: skip
        estimators.failures_named(configured, config.estimator.class_name, params, trial_params, "fit"),
    ):
        pipeline.fit(x_train, y_train)
    reference.attach(pipeline, x_train)  # what a per-row explanation is measured from (serve/explain)

    with estimators.failures_named(configured, config.estimator.class_name, params, trial_params, "predict"):
        y_pred = pipeline.predict(x_test)
        if config.task == "classification":
            # ECE and the calibration record only for a classifier with probabilities; one without
            # (a Perceptron, an SVC without probability=True) gets its ROC AUC from decision_function.
            proba = pipeline.predict_proba(x_test) if hasattr(pipeline, "predict_proba") else None
            decision = (
                pipeline.decision_function(x_test) if proba is None and hasattr(pipeline, "decision_function") else None
            )
            scores = metrics.classification_metrics(y_test, y_pred, pipeline.classes_, proba, decision)
            classes = list(pipeline.classes_)
        else:
            scores = metrics.regression_metrics(y_test, y_pred)
            classes = None

    fairness_record = (
        fairness.evaluate(groups, x_test.index, y_test, y_pred, config.task, classes, evaluation) if groups else None
    )
    if fairness_record is not None:
        gaps = "; ".join(
            f"{f['name']}: " + ", ".join(f"{k}={v:.3g}" for k, v in f["metrics"].items())
            for f in fairness_record["features"]
        )
        log(f"fairness on {len(x_test)} held-out rows: {gaps}")
    importance_record = _importance(pipeline, x_test, y_test, config, log)

    model_path = staged.stage(output.MODEL_FILE)
    output.write_model(pipeline, model_path)
    model_sha = output.sha256_file(model_path)
    size = model_path.stat().st_size

    base = _artifact_base(config, out_dir, trial)
    dataset_uri = cfg.uri
    model_signature = refstats.signature(x_train, config.task, classes, np.asarray(y_pred).dtype)
    signature.annotate(model_signature["inputs"], x_train, categorical, pipeline)
    result: dict[str, Any] = {
        "resultVersion": 1,
        "model": config.model,
        "task": config.task,
        "artifact": {
            "uri": f"{base}/{output.MODEL_FILE}",
            "path": output.MODEL_FILE,
            "sha256": model_sha,
            "sizeBytes": size,
            "format": output.MODEL_FORMAT,
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
        "signature": model_signature,
        "referenceStats": refstats.reference_stats(x_train, numeric, categorical),
        "preprocessing": {**_preprocessing_config(config), "columns": [p.record() for p in plans]},
        "lineage": {"run": config.run, "params": params},
    }
    if fairness_record is not None:
        result["fairness"] = fairness_record
    if importance_record is not None:
        result["featureImportance"] = importance_record
    if "ece" in scores:
        result["calibration"] = {
            "method": calibrate.method if calibrate is not None else "none", "bins": calibration.BINS,
            "rows": len(x_test), **({"cv": calibrate.cv} if calibrate is not None else {}),
        }  # fmt: skip
    result_path = staged.stage(output.RESULT_FILE)
    result_bytes = (output.dumps(result) + "\n").encode("utf-8")
    result_path.write_bytes(result_bytes)
    staged.commit()
    log(f"metrics: {', '.join(f'{k}={v:.4g}' for k, v in scores.items())}; model sha256 {model_sha}")
    message: dict[str, Any] = {
        "ok": True,
        "model": config.model,
        "metrics": scores,
        "artifact": {"uri": result["artifact"]["uri"], "sha256": model_sha, "sizeBytes": size,
                     "format": output.MODEL_FORMAT},
        "dataset": {"uri": dataset_uri, "sha256": dataset_sha},
        "resultFile": f"{base}/{output.RESULT_FILE}",
        # Whoever reads the full result elsewhere (the store, the pod's log) checks it against this.
        "resultSha256": hashlib.sha256(result_bytes).hexdigest(),
        "trial": result["trial"],
        # What the operator registers with the version; dropped first (biggest first) when the
        # message would not fit in 4 KiB, the full record staying in result.json.
        "task": config.task,
        "framework": result["framework"],
        "params": params,
        "rows": result["dataset"]["rows"],
        "signature": result["signature"],
        "columns": result["preprocessing"]["columns"],
        "referenceStats": result["referenceStats"],
        **({"calibration": result["calibration"]} if "calibration" in result else {}),
    }
    for key in ("fairness", "featureImportance"):
        if key in result:
            message[key] = result[key]
    return message


def _importance(pipeline: Any, x_test: Any, y_test: Any, config: RunConfig, log: Log) -> dict[str, Any] | None:
    """Permutation importance per source column (:mod:`modelops.train.importance`), unless turned off."""
    settings = config.evaluation.feature_importance or FeatureImportanceSpec()
    if not settings.enabled:
        return None
    started = time.monotonic()
    record = importance.permutation(pipeline, x_test, y_test, config.task, settings, config.dataset.seed)
    if record is None:
        log("feature importance: not recorded (the held-out split has too few rows, or a constant target)")
        return None
    top = ", ".join(f"{e['feature']}={e['mean']:.3g}" for e in record["features"][:5])
    log(f"feature importance ({record['scoring']} drop, {len(record['features'])} columns x {record['repeats']} "
        f"repeats on {record['rows']} rows, {progress.elapsed(time.monotonic() - started)}): {top}")  # fmt: skip
    return record


def _preprocessing_config(config: RunConfig) -> dict[str, Any]:
    """The preprocessing settings the run used, defaults filled in, as the run config spells them."""
    pre = config.estimator.preprocessing
    impute = pre.impute
    return {
        "scaleNumeric": pre.scale_numeric,
        "oneHotCategorical": pre.one_hot_categorical,
        "maxCategories": pre.max_categories,
        "impute": {
            "numeric": impute.numeric, "categorical": impute.categorical, "fillValue": impute.fill_value,
            "fillCategory": impute.fill_category, "columns": dict(impute.columns), "indicators": impute.indicators,
        },
    }  # fmt: skip
