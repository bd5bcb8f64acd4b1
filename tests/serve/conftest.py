"""Fixtures for the model-server tests: model dirs written once per session, and real server processes.

:class:`Server` starts ``python -m modelops serve`` as a subprocess on a free port and waits for
``/v2/health/ready`` with a deadline (polling, never a fixed sleep); it is stopped with SIGTERM
and its exit code and stderr are kept for assertions.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from serve import modelkit

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """One ``modelops serve`` process."""

    def __init__(
        self,
        model_dir: Path,
        *extra: str,
        port: int | None = None,
        nofile: int | None = None,
        extra_env: dict[str, str] | None = None,
        pythonpath: tuple[Path, ...] = (),
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        extra_env = extra_env or {}
        env = {**os.environ, **extra_env}
        paths = [*(str(p) for p in pythonpath), str(ROOT / "operator"), extra_env.get("PYTHONPATH")]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
        self.command = [
            sys.executable, "-m", "modelops", "serve", "--model-dir", str(model_dir), "--port", str(self.port),
            *extra,
        ]  # fmt: skip
        if "--workers" not in extra:
            self.command += ["--workers", "1"]

        def limit_descriptors() -> None:  # ``nofile``: the server's descriptor limit, soft and hard
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        # Its own process group, so that close() also ends the workers of a supervisor it kills.
        self.proc = subprocess.Popen(
            self.command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, start_new_session=True,
            preexec_fn=limit_descriptors if nofile is not None else None,
        )  # fmt: skip
        self.session = requests.Session()
        self.stderr = ""

    def wait_ready(self, deadline_s: float = 120.0) -> Server:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.close()
                raise AssertionError(f"server exited with {self.proc.returncode}: {self.stderr}")
            try:
                if self.session.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:  # not listening yet, or a worker still loading the model
                pass
            time.sleep(0.05)
        self.close()
        raise AssertionError(f"server not ready within {deadline_s} s: {self.stderr}")

    def wait_exit(self, timeout: float = 20.0) -> int:
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
            raise AssertionError("server did not exit in time") from None
        self.stderr = err.decode()
        return self.proc.returncode

    def terminate(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit()

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.session.get(self.url + path, timeout=10, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.session.post(self.url + path, timeout=10, **kw)

    def close(self) -> None:
        self.session.close()
        if self.proc.poll() is None:
            self.proc.kill()
        # A killed supervisor leaves its workers behind: end the rest of the group (none when it exited cleanly).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.stderr is not None and not self.proc.stderr.closed:
            _, err = self.proc.communicate()
            self.stderr = self.stderr or err.decode()


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, modelkit.ModelDir]:
    base = tmp_path_factory.mktemp("models")
    return {
        "breast_cancer": modelkit.breast_cancer(base / "breast_cancer"),
        "iris": modelkit.iris(base / "iris"),
        "iris_tree": modelkit.iris_tree(base / "iris_tree"),
        "diabetes": modelkit.diabetes(base / "diabetes"),
        "mixed": modelkit.categorical(base / "mixed"),
    }


@pytest.fixture(scope="module")
def bc_server(models: dict[str, modelkit.ModelDir]) -> Iterator[Server]:
    server = Server(models["breast_cancer"].path).wait_ready()
    yield server
    server.close()
