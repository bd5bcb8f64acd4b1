"""``modelops serve``'s command line: a usage error is one line and exit code 2, before anything loads;
a failure to serve is one line and exit code 1; ``--help`` shows every default."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from serve import modelkit
from serve.conftest import ROOT


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--port", "99999"], "argument --port: 99999 is out of range: must be from 0 to 65535"),
        (["--port", "8080", "--workers", "-3"], "argument --workers: -3 is out of range: must be from 1 to 1024"),
        (["--port", "8080", "--workers", "0"], "argument --workers: 0 is out of range"),
        (["--port", "http"], "argument --port: 'http' is not an integer"),
        (["--port", "1", "--header-timeout", "0"], "argument --header-timeout: 0 is out of range"),
        (["--port", "1", "--max-url-bytes", "9000", "--max-header-bytes", "4096"],
         "--max-url-bytes 9000 is over --max-header-bytes 4096"),
        ([], "the following arguments are required: --port"),
    ],
)  # fmt: skip
def test_bad_usage_is_one_line_and_exit_2(tmp_path: Path, flags: list[str], needle: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "modelops", "serve", "--model-dir", str(tmp_path), *flags],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env={"PYTHONPATH": str(ROOT / "operator")},
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("modelops serve: ")
    assert needle in lines[0]


def test_help_shows_every_default() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "modelops", "serve", "--help"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "operator"), "COLUMNS": "400"},
    )  # fmt: skip
    assert done.returncode == 0
    options: list[str] = []  # each option's invocation and help, joined (help may start on the next line)
    for line in done.stdout.splitlines():
        if line.startswith("  --"):
            options.append(line.strip())
        elif line.startswith("   ") and options:
            options[-1] += " " + line.strip()
    assert len(options) >= 18
    for line in options:
        assert "(default: " in line or "(required)" in line, line
    assert any(line.startswith("--max-header-bytes") and "(default: 32768)" in line for line in options)


def test_an_address_in_use_is_one_line_and_exit_1(models: dict[str, modelkit.ModelDir]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "modelops", "serve", "--model-dir", str(models["iris"].path), "--port", str(port),
             "--workers", "2"],
            capture_output=True, text=True, timeout=120, cwd=ROOT, env={"PYTHONPATH": str(ROOT / "operator")},
        )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"modelops serve: cannot listen on 127.0.0.1:{port}: Address already in use"]
