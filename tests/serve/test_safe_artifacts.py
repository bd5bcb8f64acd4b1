"""Artifacts that cannot run code: what an attacker who can register a ModelVersion gets to load.

The attacker chooses both the bytes and their sha256, so the digest check passes; what must hold
is that nothing from the file runs. Each payload writes a marker file when any of its code runs
(a pickle's ``__reduce__``; a module imported by name, its function or its ``__setstate__``), and
a control test shows each payload really does write it when loaded the naive way — so the marker
staying absent under ``modelops serve`` means the server refused before running anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import skops.io
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from modelops.serve import loading, trusted
from modelops.serve.artifact import ArtifactError
from serve import modelkit
from serve.conftest import Server

MARKER_ENV = "MODELOPS_TEST_MARKER"

EVIL_MODULE = '''
"""An attacker's module: importing it, calling its function or restoring its object writes the marker."""
import os
from pathlib import Path


def _mark(how):
    path = os.environ.get("MODELOPS_TEST_MARKER")
    if path:
        Path(path).write_text(how)


_mark("imported")


def write_marker(x):
    _mark("called")
    return x


class Evil:
    def __getstate__(self):
        return {"x": 1}

    def __setstate__(self, state):
        _mark("restored")

    def transform(self, x):
        _mark("called")
        return x
'''


class _Payload:
    """A pickle that opens (so creates) the marker file when it is loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


@pytest.fixture
def evil(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The attacker's module, importable here (without a marker set) and in the server (with one)."""
    folder = tmp_path / "attacker"
    folder.mkdir()
    (folder / "evilmod.py").write_text(textwrap.dedent(EVIL_MODULE))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delenv(MARKER_ENV, raising=False)
    import importlib

    sys.modules.pop("evilmod", None)
    module = importlib.import_module("evilmod")
    yield module
    sys.modules.pop("evilmod", None)


def _model_dir(
    path: Path, template: modelkit.ModelDir, data: bytes, artifact_format: str, name: str | None = None
) -> Path:
    """A copy of ``template``'s model dir whose artifact is ``data``, with its (matching) sha256."""
    shutil.copytree(template.path, path)
    for old in path.glob("model.*"):
        old.unlink()
    name = name or f"model.{artifact_format}"
    (path / name).write_bytes(data)
    doc = json.loads((path / "result.json").read_text())
    doc["artifact"].update(
        path=name, format=artifact_format, sha256=hashlib.sha256(data).hexdigest(), sizeBytes=len(data)
    )
    (path / "result.json").write_text(json.dumps(doc))
    return path


def _refused(model_dir: Path, marker: Path, *extra: str, env: dict[str, str] | None = None) -> str:
    """Start ``modelops serve`` on ``model_dir``; assert it exits 1 with one line and the marker absent."""
    server = Server(model_dir, *extra, extra_env={MARKER_ENV: str(marker), **(env or {})})
    try:
        assert server.wait_exit(timeout=120) == 1
    finally:
        server.close()
    lines = server.stderr.strip().splitlines()
    assert len(lines) == 1, server.stderr
    assert not marker.exists(), f"the artifact's code ran ({marker.read_text()!r}): {server.stderr}"
    return lines[0]


def _naive_load(data: bytes, how: str, marker: Path, pythonpath: str | None = None) -> None:
    """The control: load ``data`` in a fresh process the trusting way, and call the model."""
    code = (
        "import io, sys, joblib, numpy, skops.io\n"
        "data = sys.stdin.buffer.read()\n"
        "if sys.argv[1] == 'joblib':\n"
        "    joblib.load(io.BytesIO(data))\n"
        "else:\n"
        "    model = skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))\n"
        "    model.predict(numpy.zeros((1, 4)))\n"
    )
    env = {**os.environ, MARKER_ENV: str(marker), "PYTHONPATH": pythonpath or ""}
    command = [sys.executable, "-c", code, how]
    subprocess.run(command, input=data, env=env, capture_output=True, timeout=120, check=False)


# --- pickles --------------------------------------------------------------------------------------


def test_a_pickle_is_refused_without_allow_pickle(models: dict[str, modelkit.ModelDir], tmp_path: Path) -> None:
    marker = tmp_path / "pickle-ran"
    data = _pickled(_Payload(marker))
    d = _model_dir(tmp_path / "m", models["iris"], data, "joblib")
    line = _refused(d, marker)
    assert line.startswith("modelops serve: ")
    assert "is a joblib pickle, which runs code when it is loaded; refusing it" in line
    # The control: the same bytes, loaded the trusting way, do run.
    _naive_load(data, "joblib", marker)
    assert marker.exists()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_pickle_declared_as_skops_is_refused(
    models: dict[str, modelkit.ModelDir], tmp_path: Path, workers: str
) -> None:
    marker = tmp_path / "pickle-ran"
    d = _model_dir(tmp_path / "m", models["iris"], _pickled(_Payload(marker)), "skops")
    line = _refused(d, marker, "--workers", workers)
    assert "is not a skops archive (it looks like a pickle: its format is joblib, not skops); refusing it" in line


def test_allow_pickle_loads_and_serves_a_real_joblib_model(
    models: dict[str, modelkit.ModelDir], tmp_path: Path
) -> None:
    source = models["iris"]
    m = modelkit.write_model_dir(
        tmp_path / "joblib", name="iris", pipeline=source.pipeline, train_x=source.test_x, test_x=source.test_x,
        task="classification", artifact_format="joblib",
    )  # fmt: skip
    assert (m.path / "model.joblib").is_file()
    refused = Server(m.path)
    try:
        assert refused.wait_exit(timeout=120) == 1
    finally:
        refused.close()
    assert "is a joblib pickle" in refused.stderr
    server = Server(m.path, "--allow-pickle").wait_ready(deadline_s=120)
    try:
        x = m.test_x.to_numpy()[:3]
        response = server.post("/v2/models/iris/infer", json=modelkit_request(x))
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["data"] == m.pipeline.predict(x).tolist()
    finally:
        assert server.terminate() == 0


def modelkit_request(x: np.ndarray) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP64", "data": x.ravel().tolist()}]}


def _pickled(obj: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    return buffer.getvalue()


# --- skops archives naming what the server does not trust ------------------------------------------


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("payload", ["function", "type"])
def test_a_skops_archive_naming_an_untrusted_function_or_type_is_refused(
    models: dict[str, modelkit.ModelDir], tmp_path: Path, evil: Any, payload: str, workers: str
) -> None:
    fitted: Pipeline = models["iris"].pipeline
    step = FunctionTransformer(func=evil.write_marker) if payload == "function" else evil.Evil()
    attack = Pipeline([("evil", step), *fitted.steps])
    data = skops.io.dumps(attack)
    named = "evilmod.write_marker" if payload == "function" else "evilmod.Evil"
    assert named in skops.io.get_untrusted_types(data=data)
    marker = tmp_path / "skops-ran"
    d = _model_dir(tmp_path / "m", models["iris"], data, "skops")
    folder = str(Path(evil.__file__).parent)
    line = _refused(d, marker, "--workers", workers, env={"PYTHONPATH": folder})
    assert f"holds types the model server does not trust: {named}" in line
    assert "refusing to load it" in line
    # The control: skops trusting what the file names imports the module and runs its code.
    _naive_load(data, "skops", marker, pythonpath=folder)
    assert marker.exists()


def test_trusted_is_narrower_than_skops_defaults(models: dict[str, modelkit.ModelDir]) -> None:
    """skops trusts every scikit-learn estimator; the server only the allow-listed pipelines' types."""
    m = models["diabetes"]
    model = TransformedTargetRegressor(regressor=Ridge(), func=np.log1p, inverse_func=np.expm1)
    model.fit(m.test_x.to_numpy(), np.abs(m.pipeline.predict(m.test_x)))
    data = skops.io.dumps(model)
    assert skops.io.get_untrusted_types(data=data) == []  # skops alone would load it
    with pytest.raises(ArtifactError, match=r"does not trust: .*sklearn\.compose\._target\.TransformedTargetRegressor"):
        loading.load_model(data, "skops", "model.skops", allow_pickle=False)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "is not a skops archive; refusing it"),
        (b"PK\x03\x04 not really a zip", "is not a readable skops archive"),
        (b"\x80\x04K\x01.", "it looks like a pickle"),
    ],
)
def test_bytes_that_are_no_skops_archive(data: bytes, message: str) -> None:
    with pytest.raises(ArtifactError, match=message):
        loading.load_model(data, "skops", "model.skops", allow_pickle=True)


def _archive(schema: dict[str, Any], files: dict[str, bytes] | None = None, compress: bool = False) -> bytes:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        z.writestr("schema.json", json.dumps(schema))
        for name, content in (files or {}).items():
            z.writestr(name, content)
    return out.getvalue()


def test_hand_written_schemas_are_audited_before_anything_is_built() -> None:
    bad_protocol = {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode", "content": {},
                    "key_types": [], "protocol": 1}  # fmt: skip
    with pytest.raises(ArtifactError, match="uses skops protocol 1"):
        loading.load_model(_archive(bad_protocol), "skops", "m", allow_pickle=False)
    # A loader the trainer's artifacts never use (here: an operator.methodcaller calling os.system).
    sneaky = {"__class__": "methodcaller", "__module__": "operator", "__loader__": "OperatorFuncNode",
              "attrs": {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode", "content": '"x"'},
              "protocol": 2}  # fmt: skip
    with pytest.raises(ArtifactError, match=r"operator\.methodcaller \(loader OperatorFuncNode\)"):
        loading.load_model(_archive(sneaky), "skops", "m", allow_pickle=False)
    bomb = _archive({"protocol": 2, "padding": "0" * 10_000_000}, compress=True)
    with pytest.raises(ArtifactError, match="would expand"):
        loading.load_model(bomb, "skops", "m", allow_pickle=False)


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ArtifactError, match="unknown artifact format 'onnx'"):
        loading.load_model(b"", "onnx", "m", allow_pickle=True)


# --- trusted types with untrustworthy contents ---------------------------------------------------


def _iris_xy(models: dict[str, modelkit.ModelDir]) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)  # all 150 rows: enough for every tree to split at its root
    return np.asarray(x), np.asarray(y)


def _tampered_tree(model: DecisionTreeClassifier, field: str, value: int) -> None:
    from sklearn.tree._tree import Tree

    state = model.tree_.__getstate__()
    nodes = state["nodes"].copy()
    nodes[field][0] = value
    tree = Tree(model.n_features_in_, np.asarray(model.n_classes_, dtype=np.intp).reshape(-1), model.n_outputs_)
    tree.__setstate__({**state, "nodes": nodes})
    model.tree_ = tree


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("left_child", 10**6, "left child index points outside the tree"),
        ("right_child", 0, "right child index points outside the tree"),  # a loop back to the root
        ("feature", 4096, "splits on a feature index outside its input"),
    ],
)
def test_a_decision_tree_with_out_of_range_indices_is_refused_before_it_predicts(
    models: dict[str, modelkit.ModelDir], tmp_path: Path, field: str, value: int, message: str
) -> None:
    x, y = _iris_xy(models)
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, y)
    _tampered_tree(tree, field, value)
    data = skops.io.dumps(Pipeline([("scale", StandardScaler().fit(x)), ("clf", tree)]))
    marker = tmp_path / "unused"
    d = _model_dir(tmp_path / "m", models["iris_tree"], data, "skops")
    line = _refused(d, marker)
    assert f"is malformed: a decision tree: a {message}" in line or message in line
    assert "refusing to load it" in line


def test_boosted_and_neighbour_trees_with_out_of_range_indices_are_refused(
    models: dict[str, modelkit.ModelDir],
) -> None:
    x, y = _iris_xy(models)
    boosted = HistGradientBoostingClassifier(max_iter=3, random_state=0).fit(x, y)
    boosted._predictors[0][0].nodes["left"][0] = 10**6
    with pytest.raises(ArtifactError, match="a boosted tree: a left child index points outside the tree"):
        loading.load_model(skops.io.dumps(boosted), "skops", "m", allow_pickle=False)
    boosted = HistGradientBoostingClassifier(max_iter=3, random_state=0).fit(x, y)
    split = int(np.flatnonzero(boosted._predictors[0][0].nodes["is_leaf"] == 0)[0])
    boosted._predictors[0][0].nodes["feature_idx"][split] = 99
    with pytest.raises(ArtifactError, match="a boosted tree splits on a feature index outside its input"):
        loading.load_model(skops.io.dumps(boosted), "skops", "m", allow_pickle=False)
    neighbours = KNeighborsClassifier(algorithm="kd_tree").fit(x, y)
    state = list(neighbours._tree.__getstate__())
    state[1] = state[1].copy()
    state[1][0] = 10**6  # idx_array
    neighbours._tree.__setstate__(tuple(state))
    with pytest.raises(ArtifactError, match="a neighbours tree indexes samples it does not hold"):
        loading.load_model(skops.io.dumps(neighbours), "skops", "m", allow_pickle=False)


def test_an_intact_model_of_each_checked_kind_loads(models: dict[str, modelkit.ModelDir]) -> None:
    x, y = _iris_xy(models)
    for model in (
        DecisionTreeClassifier(random_state=0).fit(x, y),
        HistGradientBoostingClassifier(max_iter=3, random_state=0).fit(x, y),
        KNeighborsClassifier(algorithm="ball_tree").fit(x, y),
        LogisticRegression(max_iter=500).fit(x, y),
    ):
        loaded = loading.load_model(skops.io.dumps(model), "skops", "m", allow_pickle=False)
        np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_the_schema_walk_sees_every_node_type(models: dict[str, modelkit.ModelDir]) -> None:
    data = (models["mixed"].path / "model.skops").read_bytes()
    schema = trusted.read_schema(data)
    found = {name for _, name in trusted.walk_nodes(schema)}
    assert {
        "sklearn.pipeline.Pipeline",
        "sklearn.compose._column_transformer.ColumnTransformer",
        "sklearn.preprocessing._encoders.OneHotEncoder",
        "sklearn.linear_model._logistic.LogisticRegression",
    } <= found
    assert trusted.untrusted(schema) == []
