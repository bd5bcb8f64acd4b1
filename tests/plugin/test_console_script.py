"""The installed console script `kubectl-modelops`, as kubectl runs it: a process, no kubectl needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from plugin.pluginkit import NS, Seeded

SCRIPT = Path(sys.executable).parent / "kubectl-modelops"


def run_script(*args: str, kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    # PATH holds only the venv's bin: the plugin must not shell out to kubectl (or anything else)
    env = {"PATH": str(SCRIPT.parent), "KUBECONFIG": str(kubeconfig), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_the_console_script_reads_the_pipeline_and_acts(seeded: Seeded) -> None:
    assert SCRIPT.exists(), f"the console script is not installed at {SCRIPT}"

    status = run_script("status", "iris", "-n", NS, "-o", "json", kubeconfig=seeded.kubeconfig)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert [d["servingVersion"] for d in data["modelDeployments"]] == ["iris-v2"]

    abort = run_script("-n", NS, "abort", "iris", kubeconfig=seeded.kubeconfig)
    assert abort.returncode == 0, abort.stderr
    annotations = seeded.kube.get("modelops.io/v1alpha1", "ModelDeployment", NS, "iris")["metadata"]["annotations"]
    assert (
        abort.stdout
        == f"modeldeployment iris: abort requested (modelops.io/action={annotations['modelops.io/action']})\n"
    )

    missing = run_script("card", "iris-v9", "-n", NS, kubeconfig=seeded.kubeconfig)
    assert (missing.returncode, missing.stderr) == (
        1,
        "error: no modelversion or model named iris-v9 in namespace ml\n",
    )

    usage = run_script("promote", kubeconfig=seeded.kubeconfig)
    assert usage.returncode == 2
    assert usage.stderr == (
        "kubectl modelops promote: error: the following arguments are required: VERSION|DEPLOYMENT\n"
        "hint: run 'kubectl modelops promote --help' for usage\n"
    )
