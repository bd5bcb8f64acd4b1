"""The estimate before labels follows the realised accuracy (issue 16, "the step beyond").

A world whose truth the test knows: two numeric features, the label drawn from a logistic model of
the first one only (``P(y=1 | x) = sigmoid(3 * x0)``), so a logistic regression trained on it by
the real trainer is calibrated by construction. A real ``modelops serve`` then answers three
populations, and the estimated accuracy it exports — ``modelops_expected_correct_total`` summed
over classes, over the rows it predicted: the mean top probability, CBPE's estimate — is compared
with the accuracy of its answers against labels drawn by the test and never sent to the server:

- the training population: both agree;
- a harmful shift (rows crowded around the decision boundary, where the truth is a coin flip): the
  realised accuracy falls by a third, and the estimate falls with it;
- a harmless shift (the second feature, which the truth ignores, moved far away): neither moves.

The tolerance is sampling error: 3,000 rows a phase put the realised accuracy's standard error
near 0.009; the test allows 0.04.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prometheus_client.parser import text_string_to_metric_families

from serve.conftest import Server
from trainer.conftest import config_for, run_trainer

ROWS = 3000
TOLERANCE = 0.04


def truth(x0: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (rng.random(len(x0)) < 1 / (1 + np.exp(-3 * x0))).astype(int)


def population(rng: np.random.Generator, *, x0_scale: float = 1.5, x1_shift: float = 0.0) -> pd.DataFrame:
    x0 = rng.normal(0, x0_scale, ROWS)
    x1 = rng.normal(x1_shift, 1.0, ROWS)
    return pd.DataFrame({"x0": x0, "x1": x1, "target": truth(x0, rng)})


def counters(server: Server) -> tuple[float, float]:
    """(expected correct, rows predicted) from /metrics, summed over classes."""
    correct = rows = 0.0
    for family in text_string_to_metric_families(server.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "modelops_expected_correct_total":
                correct += sample.value
            elif sample.name == "modelops_predictions_total":
                rows += sample.value
    return correct, rows


def phase(server: Server, frame: pd.DataFrame) -> tuple[float, float]:
    """(estimated accuracy, realised accuracy) of the server on ``frame``'s rows."""
    before = counters(server)
    x = frame[["x0", "x1"]].to_numpy(dtype=np.float64)
    predicted: list[Any] = []
    for start in range(0, len(x), 500):
        chunk = x[start : start + 500]
        tensor = {"name": "x", "shape": list(chunk.shape), "datatype": "FP64", "data": chunk.ravel().tolist()}
        body = {"inputs": [tensor]}
        r = server.post("/v2/models/test-model/infer", json=body)
        assert r.status_code == 200, r.text
        predicted += r.json()["outputs"][0]["data"]
    after = counters(server)
    assert after[1] - before[1] == len(x)  # every row counted once
    estimated = (after[0] - before[0]) / (after[1] - before[1])
    realised = float(np.mean(np.asarray(predicted, dtype=int) == frame["target"].to_numpy()))
    return estimated, realised


def test_the_estimate_follows_a_harmful_shift_and_ignores_a_harmless_one(tmp_path: Path) -> None:
    rng = np.random.default_rng(20261204)
    data = tmp_path / "world.csv"
    pd.concat([population(rng) for _ in range(2)]).to_csv(data, index=False)
    run = run_trainer(config_for(data.as_uri()), tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.result()["metrics"]["ece"] < 0.05  # calibrated, as the estimate assumes

    server = Server(run.output).wait_ready()
    try:
        base_est, base_real = phase(server, population(rng))
        harm_est, harm_real = phase(server, population(rng, x0_scale=0.3))
        flat_est, flat_real = phase(server, population(rng, x1_shift=4.0))
    finally:
        server.close()

    assert abs(base_est - base_real) < TOLERANCE, (base_est, base_real)
    # Rows near the boundary: the model is right about 60% of the time, and says so.
    assert harm_real < base_real - 0.15, (harm_real, base_real)
    assert abs(harm_est - harm_real) < TOLERANCE, (harm_est, harm_real)
    # A feature the truth ignores moved: neither the estimate nor the realised accuracy moves.
    assert abs(flat_est - base_est) < 0.02, (flat_est, base_est)
    assert abs(flat_real - base_real) < TOLERANCE, (flat_real, base_real)
