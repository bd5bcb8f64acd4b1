"""The predictor's fast paths give exactly the pipeline's own answers (``modelops.serve.predictor``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from modelops.serve import artifact, predictor
from serve import modelkit


def load(model: modelkit.ModelDir, path: Path | None = None) -> predictor.Predictor:
    d = path or model.path
    contract = predictor.load_contract(d)
    return predictor.load(d, contract, model.sha256)


@pytest.mark.parametrize(
    ("key", "path"),
    [("breast_cancer", "compiled"), ("iris", "compiled"), ("diabetes", "compiled"), ("iris_tree", "steps"),
     ("mixed", "frame")],
)  # fmt: skip
def test_paths_and_equality_with_the_pipeline(models: dict[str, modelkit.ModelDir], key: str, path: str) -> None:
    m = models[key]
    p = load(m)
    assert p.path == path
    x = m.test_x
    numeric = x[[c for c in x.columns if c not in m.categorical]].to_numpy(dtype=np.float64)
    categorical = [x[c].tolist() for c in m.categorical]
    classifier = m.classes is not None
    got = p.predict_batch(numeric, categorical, want_proba=classifier)
    expected_input = x if hasattr(m.pipeline, "feature_names_in_") else x.to_numpy()
    if classifier:
        np.testing.assert_array_equal(got.predict, m.pipeline.predict(expected_input))
        np.testing.assert_allclose(got.proba, m.pipeline.predict_proba(expected_input), rtol=1e-9, atol=1e-12)
        assert got.class_index is not None
        np.testing.assert_array_equal(np.asarray(m.classes)[got.class_index], got.predict)
    else:
        np.testing.assert_allclose(got.predict, m.pipeline.predict(expected_input), rtol=1e-9)


def test_signature_order_differs_from_fitted_order(models: dict[str, modelkit.ModelDir], tmp_path: Path) -> None:
    m = models["breast_cancer"]
    d = tmp_path / "shuffled"
    shutil.copytree(m.path, d)
    doc = json.loads((d / "result.json").read_text())
    doc["signature"]["inputs"].reverse()
    (d / "result.json").write_text(json.dumps(doc))
    p = load(m, d)
    assert p.path == "compiled"
    reversed_x = m.test_x[m.test_x.columns[::-1]].to_numpy()
    got = p.predict_batch(reversed_x, [], want_proba=True)
    np.testing.assert_array_equal(got.predict, m.pipeline.predict(m.test_x))
    np.testing.assert_allclose(got.proba, m.pipeline.predict_proba(m.test_x), rtol=1e-9, atol=1e-12)


def test_tampered_artifact_is_refused_before_unpickling(models: dict[str, modelkit.ModelDir], tmp_path: Path) -> None:
    m = models["iris"]
    d = tmp_path / "tampered"
    shutil.copytree(m.path, d)
    with (d / "model.skops").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(artifact.ArtifactError, match="sha256 mismatch"):
        load(m, d)


def test_signature_not_matching_the_model(models: dict[str, modelkit.ModelDir], tmp_path: Path) -> None:
    m = models["breast_cancer"]
    d = tmp_path / "renamed"
    shutil.copytree(m.path, d)
    doc = json.loads((d / "result.json").read_text())
    doc["signature"]["inputs"][0]["name"] = "something else"
    doc["referenceStats"]["features"][0]["name"] = "something else"
    (d / "result.json").write_text(json.dumps(doc))
    with pytest.raises(predictor.LoadError, match="fitted on columns"):
        load(m, d)


def test_fetch_file_uri_into_cache(models: dict[str, modelkit.ModelDir], tmp_path: Path) -> None:
    m = models["iris"]
    target = tmp_path / "cache" / "model.skops"
    artifact.fetch(f"file://{m.path / 'model.skops'}", target, m.sha256)
    assert artifact.sha256_of(target) == m.sha256
    with pytest.raises(artifact.ArtifactError, match="sha256 mismatch"):
        artifact.fetch(f"file://{m.path / 'result.json'}", tmp_path / "other" / "model.skops", m.sha256)
    assert not (tmp_path / "other" / "model.skops").exists()
