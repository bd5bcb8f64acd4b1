"""Test models for the model server: small scikit-learn pipelines written as a trainer would.

Each builder fits a pipeline on a dataset bundled with scikit-learn (or a small synthetic one for
the categorical case) and writes ``model.skops`` (with skops itself; or ``model.joblib`` when a
test asks for a pickle) and a ``result.json`` that follows
``docs/contracts.md``, with ``referenceStats`` computed by :func:`reference_stats` under the
contract's bin convention. The real trainer is not used on purpose: the server is tested against
the contract, not against another component's reading of it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
import skops.io
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

OTHER = "__other__"


def numeric_bins(values: np.ndarray, bins: int = 10) -> tuple[list[float], list[int]]:
    """Quantile edges (de-duplicated) and counts: bin i holds edges[i] < x <= edges[i+1], ends open."""
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))
    if len(edges) < 2:
        edges = np.array([edges[0], edges[0] + 1.0])
    index = np.searchsorted(edges[1:-1], values, side="left")
    counts = np.bincount(index, minlength=len(edges) - 1)
    return [float(e) for e in edges], [int(c) for c in counts]


def reference_stats(frame: pd.DataFrame, categorical: list[str], bins: int = 10) -> dict[str, Any]:
    features: list[dict[str, Any]] = []
    for name in frame.columns:
        column = frame[name]
        if name in categorical:
            top = column.astype(str).value_counts().head(50)
            cats = [str(c) for c in top.index]
            counts = [int(c) for c in top.values]
            features.append(
                {
                    "name": name,
                    "kind": "categorical",
                    "categories": [*cats, OTHER],
                    "counts": [*counts, int(len(column) - sum(counts))],
                }
            )
        else:
            edges, counts = numeric_bins(column.to_numpy(dtype=np.float64), bins)
            features.append({"name": name, "kind": "numeric", "edges": edges, "counts": counts})
    return {"sampleSize": len(frame), "features": features}


def frame_body(frame: pd.DataFrame, categorical: list[str]) -> dict[str, Any]:
    """A v2 infer request with one tensor per column of ``frame`` (BYTES for the categorical ones)."""
    return {"inputs": [
        {"name": c, "shape": [len(frame)], "datatype": "BYTES" if c in categorical else "FP64",
         "data": frame[c].tolist()}
        for c in frame.columns
    ]}  # fmt: skip


@dataclass
class ModelDir:
    """A written model dir and what the tests compare the server against."""

    path: Path
    name: str
    pipeline: Any
    features: list[str]
    categorical: list[str]
    test_x: pd.DataFrame
    stats: dict[str, Any]
    sha256: str
    classes: list[Any] | None


def write_model_dir(
    path: Path,
    *,
    name: str,
    pipeline: Any,
    train_x: pd.DataFrame,
    test_x: pd.DataFrame,
    task: str,
    categorical: list[str] | None = None,
    artifact_format: str = "skops",
) -> ModelDir:
    categorical = categorical or []
    path.mkdir(parents=True, exist_ok=True)
    artifact = path / f"model.{artifact_format}"
    if artifact_format == "skops":
        skops.io.dump(pipeline, artifact)
    else:
        joblib.dump(pipeline, artifact)
    data = artifact.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    classes = [c.item() if hasattr(c, "item") else c for c in pipeline.classes_] if task == "classification" else None
    kind = "FP64"
    if classes is not None:
        kind = "INT64" if all(isinstance(c, int) for c in classes) else "BYTES"
    stats = reference_stats(train_x, categorical)
    result = {
        "resultVersion": 1,
        "model": name,
        "task": task,
        "artifact": {
            "uri": f"file://{artifact}",
            "path": artifact.name,
            "sha256": sha,
            "sizeBytes": len(data),
            "format": artifact_format,
        },
        "framework": {"name": "scikit-learn", "version": sklearn.__version__},
        "estimator": {"className": type(pipeline[-1]).__name__, "params": {}},
        "trial": None,
        "metrics": {},
        "dataset": {
            "uri": "sklearn://test",
            "sha256": "0" * 64,
            "rows": len(train_x) + len(test_x),
            "trainRows": len(train_x),
            "testRows": len(test_x),
        },
        "signature": {
            "inputs": [{"name": c, "datatype": "BYTES" if c in categorical else "FP64"} for c in train_x.columns],
            "outputs": [{"name": "predict", "datatype": kind}],
            **({"classes": classes} if classes is not None else {}),
        },
        "referenceStats": stats,
        "lineage": {"run": {}, "params": {}},
    }
    (path / "result.json").write_text(json.dumps(result, indent=2))
    return ModelDir(path, name, pipeline, list(train_x.columns), categorical, test_x, stats, sha, classes)


def _split(x: pd.DataFrame, y: Any, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, Any, Any]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    cut = int(len(x) * 0.8)
    tr, te = order[:cut], order[cut:]
    y = np.asarray(y)
    return x.iloc[tr].reset_index(drop=True), x.iloc[te].reset_index(drop=True), y[tr], y[te]


def breast_cancer(path: Path) -> ModelDir:
    """StandardScaler + LogisticRegression on breast_cancer, fitted on a DataFrame (feature names)."""
    data = load_breast_cancer(as_frame=True)
    train_x, test_x, train_y, _ = _split(data.data, data.target)
    pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=5000))]).fit(train_x, train_y)
    return write_model_dir(
        path, name="breast-cancer", pipeline=pipe, train_x=train_x, test_x=test_x, task="classification"
    )


def iris(path: Path) -> ModelDir:
    """A three-class model fitted on a plain matrix (no feature names): StandardScaler + LogisticRegression."""
    data = load_iris(as_frame=True)
    train_x, test_x, train_y, _ = _split(data.data, data.target)
    pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=2000))])
    pipe.fit(train_x.to_numpy(), train_y)
    return write_model_dir(path, name="iris", pipeline=pipe, train_x=train_x, test_x=test_x, task="classification")


def iris_tree(path: Path) -> ModelDir:
    """A model the server cannot compile: StandardScaler + DecisionTree (the step-by-step path)."""
    data = load_iris(as_frame=True)
    train_x, test_x, train_y, _ = _split(data.data, data.target)
    pipe = Pipeline([("scale", StandardScaler()), ("clf", DecisionTreeClassifier(max_depth=3, random_state=0))])
    pipe.fit(train_x, train_y)
    return write_model_dir(path, name="iris-tree", pipeline=pipe, train_x=train_x, test_x=test_x, task="classification")


def diabetes(path: Path) -> ModelDir:
    """A regression: StandardScaler + Ridge on diabetes."""
    data = load_diabetes(as_frame=True)
    train_x, test_x, train_y, _ = _split(data.data, data.target)
    pipe = Pipeline([("scale", StandardScaler()), ("reg", Ridge(alpha=1.0))]).fit(train_x, train_y)
    return write_model_dir(path, name="diabetes", pipeline=pipe, train_x=train_x, test_x=test_x, task="regression")


def categorical(path: Path) -> ModelDir:
    """A mixed model: a categorical colour one-hot encoded next to two scaled numbers."""
    rng = np.random.default_rng(1)
    n = 400
    colour = rng.choice(["red", "blue", "green"], n, p=[0.5, 0.3, 0.2])
    x1 = rng.normal(0, 1, n)
    x2 = rng.normal(5, 2, n)
    y = np.where((colour == "red") & (x1 > 0) | (x2 > 6), "yes", "no")
    frame = pd.DataFrame({"colour": colour, "x1": x1, "x2": x2})
    train_x, test_x, train_y, _ = _split(frame, y)
    pre = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["colour"]), ("num", StandardScaler(), ["x1", "x2"])]
    )
    pipe = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=1000))]).fit(train_x, train_y)
    return write_model_dir(
        path, name="mixed", pipeline=pipe, train_x=train_x, test_x=test_x, task="classification", categorical=["colour"]
    )
