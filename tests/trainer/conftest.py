"""Fixtures for the trainer's tests: running ``modelops train`` and serving datasets locally.

Everything here is real: the trainer runs as a subprocess (``python -m modelops``), HTTP
datasets come from a ``ThreadingHTTPServer`` on 127.0.0.1, S3 datasets from moto's S3 server
on 127.0.0.1. Servers bind port 0 and are ready when their constructor returns, so no test
waits by sleeping.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from modelops.logic.training import decode_termination

REPO = Path(__file__).resolve().parents[2]
SOURCE_ROOT = REPO / "operator"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    output: Path
    termination: dict[str, Any] | None
    termination_raw: str | None

    def result(self, trial: int | None = None) -> dict[str, Any]:
        directory = self.output / f"trial-{trial}" if trial is not None else self.output
        loaded: dict[str, Any] = json.loads((directory / "result.json").read_text())
        return loaded


def trainer_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "JOB_COMPLETION_INDEX"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE_ROOT), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


def run_trainer(
    config: dict[str, Any] | str,
    tmp_path: Path,
    *extra_args: str,
    env: dict[str, str] | None = None,
    name: str = "run",
) -> Run:
    """Write ``config`` to a file and run ``python -m modelops train`` on it."""
    work = tmp_path / name
    work.mkdir(parents=True, exist_ok=True)
    config_path = work / "run.json"
    config_path.write_text(config if isinstance(config, str) else json.dumps(config))
    output = work / "out"
    termination = work / "termination-log"
    proc = subprocess.run(
        [sys.executable, "-m", "modelops", "train", "--config", str(config_path), "--output", str(output),
         "--termination-log", str(termination), *extra_args],
        capture_output=True,
        text=True,
        env=trainer_env({"MODELOPS_FILE_ROOTS": str(tmp_path), **(env or {})}),
        timeout=240,
        check=False,
    )
    raw = termination.read_text() if termination.exists() else None
    return Run(proc.returncode, proc.stdout, proc.stderr, output, decode_termination(raw) if raw else None, raw)


def config_for(uri: str, target: str = "target", **overrides: Any) -> dict[str, Any]:
    """A small run config; ``overrides`` replace top-level keys, ``dataset``/``estimator`` merge."""
    config: dict[str, Any] = {
        "model": "test-model",
        "dataset": {"uri": uri, "target": target, "testSize": 0.25, "seed": 7},
        "estimator": {
            "className": "sklearn.linear_model.LogisticRegression",
            "params": {"max_iter": 500},
            "preprocessing": {"scaleNumeric": True, "oneHotCategorical": True},
        },
    }
    for key, value in overrides.items():
        if key in ("dataset", "estimator") and isinstance(value, dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def assert_no_result(run: Run) -> None:
    """A failed run leaves nothing that looks like a result."""
    if run.output.exists():
        leftovers = sorted(p.name for p in run.output.rglob("*") if p.is_file())
        assert leftovers == [], leftovers


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on 127.0.0.1: (directory, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 API server on 127.0.0.1 (a real HTTP S3 implementation)."""
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def run_in_process(
    config: dict[str, Any] | str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    *extra_args: str,
    name: str = "run",
) -> Run:
    """The same as :func:`run_trainer`, but calling ``modelops.train.cli.main`` in this process.

    For the many bad-input cases: the code path is the real one (no mocks), without paying
    scikit-learn's import for every case.
    """
    from modelops.train import cli

    work = tmp_path / name
    work.mkdir(parents=True, exist_ok=True)
    config_path = work / "run.json"
    config_path.write_text(config if isinstance(config, str) else json.dumps(config))
    output = work / "out"
    termination = work / "termination-log"
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as patch:
        # The test's own directory is where its data files are; the trainer reads nowhere else.
        patch.setenv("MODELOPS_FILE_ROOTS", str(tmp_path))
        code = cli.main(["--config", str(config_path), "--output", str(output),
                         "--termination-log", str(termination), *extra_args])
    captured = capsys.readouterr()
    raw = termination.read_text() if termination.exists() else None
    return Run(code, captured.out, captured.err, output, decode_termination(raw) if raw else None, raw)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the trainer's default run fast: ``slow`` tests run only when selected.

    ``-m slow`` (or any ``-m`` expression naming ``slow``) or ``MODELOPS_RUN_SLOW=1`` runs them.
    """
    if "slow" in (config.getoption("markexpr") or "") or os.environ.get("MODELOPS_RUN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: select with -m slow or MODELOPS_RUN_SLOW=1")
    for item in items:
        if "slow" in item.keywords and "tests/trainer/" in item.nodeid.replace("\\", "/"):
            item.add_marker(skip)
