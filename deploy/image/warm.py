"""Runs the image's commands once in its build stage, so that Python writes their bytecode.

The root filesystem is read-only at run time: a module whose bytecode is not in the image is
compiled in memory at every start. Rather than compiling every module of every dependency (most
of which no command imports), this runs what the commands do — ``modelops train`` on a bundled
dataset, ``modelops serve`` answering a prediction, ``modelops drift`` on a file, the operator's
and the kubectl plugin's modules — and imports every estimator of the allow-list. A failure here
fails the build: the image's commands must work in the image.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from modelops import cli
from modelops.train.estimators import ALLOWED_ESTIMATORS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve_once(model_dir: Path) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "modelops", "serve", "--model-dir", str(model_dir), "--port", str(port), "--workers", "1"]
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"modelops serve did not become ready (exit code {server.poll()})") from None
                time.sleep(0.2)
        body = json.dumps(
            {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
        ).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v2/models/iris/infer", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200, answer.status
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            assert answer.status == 200, answer.status
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def main() -> None:
    for path in ALLOWED_ESTIMATORS:
        module, _, name = path.rpartition(".")
        getattr(importlib.import_module(module), name)
    for module in ("modelops.controller.run", "modelops.controller.handlers", "modelops.plugin.cli", "modelops.crdgen"):
        importlib.import_module(module)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = {
            "model": "iris",
            "dataset": {"uri": "sklearn://iris", "target": "target"},
            "estimator": {"className": "sklearn.ensemble.RandomForestClassifier", "params": {"n_estimators": 5}},
        }
        (work / "run.json").write_text(json.dumps(config))
        if cli.main(["train", "--config", str(work / "run.json"), "--output", str(work / "out")]) != 0:
            raise SystemExit("modelops train failed")
        _serve_once(work / "out")
        with (work / "current.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"])
            writer.writerows([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]] * 50)
        code = cli.main(["drift", "--reference", str(work / "out" / "result.json"), "--current", str(work / "current.csv")])
        if code not in (0, 1):  # 1: drift found, which this shifted sample may well show
            raise SystemExit(f"modelops drift failed with {code}")
        importlib.import_module("pyarrow.parquet")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
