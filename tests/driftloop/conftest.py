"""The drift loop's parts: a model trained once by the real trainer, and real `modelops serve` processes.

``iris_model`` runs ``modelops train`` on the bundled iris data (a decision tree) once per
session: the model dir it writes is what the server loads, and its ``referenceStats`` (the
trainer's own quantile bins) are what the ModelVersion carries. :class:`Traffic` sends rows to
a server from a background thread -- drawn from the training data, optionally with chosen
features shifted -- until stopped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from sklearn.datasets import load_iris

from serve.conftest import ROOT, Server


@dataclass(frozen=True)
class TrainedModel:
    path: Path
    result: dict[str, Any]

    @property
    def features(self) -> list[str]:
        return [i["name"] for i in self.result["signature"]["inputs"]]


def train(work: Path, config: dict[str, Any]) -> TrainedModel:
    """``modelops train`` on ``config`` in ``work``: the model dir it wrote and its result."""
    (work / "run.json").write_text(json.dumps(config))
    out = work / "out"
    done = subprocess.run(
        [sys.executable, "-m", "modelops", "train", "--config", str(work / "run.json"), "--output", str(out)],
        env={**os.environ, "PYTHONPATH": str(ROOT / "operator")}, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return TrainedModel(out, json.loads((out / "result.json").read_text()))


@pytest.fixture(scope="session")
def iris_model(tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    return train(tmp_path_factory.mktemp("iris-train"), {
        "model": "iris",
        "dataset": {"uri": "sklearn://iris", "target": "target"},
        "estimator": {"className": "sklearn.tree.DecisionTreeClassifier", "params": {"max_depth": 3}},
    })  # fmt: skip


@pytest.fixture
def iris_server(iris_model: TrainedModel) -> Iterator[Server]:
    """``modelops serve`` for version iris-v1 of model iris (the labels the ModelVersion names)."""
    server = Server(iris_model.path, "--name", "iris", "--version", "iris-v1").wait_ready()
    yield server
    server.close()


class Traffic:
    """Batches of iris rows posted to a server every ``pause`` seconds; ``shift`` adds to chosen columns."""

    def __init__(self, server: Server, features: list[str], *, batch: int = 20, pause: float = 0.1) -> None:
        self.url = f"{server.url}/v2/models/iris/infer"
        self.features = features
        self.rows = load_iris().data.astype(np.float64)
        self.batch = batch
        self.pause = pause
        self.shift: dict[str, float] = {}
        self.sent = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._rng = np.random.default_rng(7)

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                rows = self.rows[self._rng.integers(0, len(self.rows), self.batch)].copy()
                for name, delta in dict(self.shift).items():
                    rows[:, self.features.index(name)] += delta
                body = {"inputs": [{"name": "x", "shape": list(rows.shape), "datatype": "FP64",
                                    "data": rows.ravel().tolist()}]}  # fmt: skip
                try:
                    response = session.post(self.url, json=body, timeout=5)
                    if response.status_code == 200:
                        self.sent += len(rows)
                    else:
                        self.errors.append(response.text[:200])
                except requests.RequestException as error:
                    self.errors.append(str(error))
                self._stop.wait(self.pause)  # pacing the load, not synchronisation

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
