"""What `modelops train` writes, `modelops serve` serves: the two halves of the contract together."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io

from serve.conftest import ROOT, Server


def train(tmp_path: Path, config: dict[str, Any]) -> Path:
    (tmp_path / "run.json").write_text(json.dumps(config))
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "modelops", "train", "--config", str(tmp_path / "run.json"), "--output", str(out)],
        env={**os.environ, "PYTHONPATH": str(ROOT / "operator")}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.parametrize(
    ("estimator", "preprocessing"),
    [("sklearn.ensemble.RandomForestClassifier", {}), ("sklearn.linear_model.LogisticRegression",
                                                        {"scaleNumeric": True})],
)  # fmt: skip
def test_a_trained_iris_model_is_served_with_its_own_predictions(
    tmp_path: Path, estimator: str, preprocessing: dict[str, Any]
) -> None:
    out = train(tmp_path, {
        "model": "iris",
        "dataset": {"uri": "sklearn://iris", "target": "target"},
        "estimator": {"className": estimator, "params": {"max_iter": 500} if "Logistic" in estimator else {},
                      "preprocessing": preprocessing},
    })  # fmt: skip
    result = json.loads((out / "result.json").read_text())
    names = [i["name"] for i in result["signature"]["inputs"]]
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]])
    server = Server(out, "--sha256", result["artifact"]["sha256"]).wait_ready()
    try:
        response = server.post("/v2/models/iris/infer", json={
            "inputs": [{"name": "x", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}],
            "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
        })  # fmt: skip
        assert response.status_code == 200, response.text
        outputs = {o["name"]: o for o in response.json()["outputs"]}
        model = skops.io.load(out / "model.skops", trusted=skops.io.get_untrusted_types(file=out / "model.skops"))
        frame = pd.DataFrame(rows, columns=names)
        assert outputs["predict"]["data"] == model.predict(frame).tolist()
        np.testing.assert_allclose(np.reshape(outputs["predict_proba"]["data"], (3, 3)), model.predict_proba(frame))
        metrics = server.get("/metrics").text
        assert 'modelops_feature_bucket{' in metrics
    finally:
        assert server.terminate() == 0
