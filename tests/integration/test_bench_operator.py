"""bench/operator/run.py in miniature, so the bench does not rot: 20 runs, 5 deployments, seconds at rest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
def test_the_operator_bench_runs_both_operators_and_reports_every_measure(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    command = [sys.executable, str(REPO / "bench" / "operator" / "run.py"), "--runs", "20", "--deployments", "5",
               "--rest", "0.05", "--window", "3", "--samples", "2", "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=230, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    for which in ("floor", "modelops"):
        result = report[which]
        assert result["exit_code"] == 0
        assert result["log_tracebacks"] == 0
        assert result["trainingruns"]["objects"] == 20
        assert result["trainingruns"]["requests_per_object"] >= 2  # a Job and the run's own bookkeeping at least
        assert result["memory"]["peak_rss_mib"] > 20
        assert result["latency"]["trainingrun_to_job"]["n"] == 2
        assert result["rest"]["minutes"] > 0
    assert report["modelops"]["modeldeployments"]["objects"] == 5
    assert report["modelops"]["latency"]["modeldeployment_to_deployment"]["n"] == 2
    assert set(report["summary"]["goals"]) == {"converge_within_60s", "converge_within_1_5x_floor", "rss_at_most_300mb"}
