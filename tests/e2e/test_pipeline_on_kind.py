"""The example pipeline on a real kind cluster (`make kind-up`, then `make e2e`).

Skipped, with the reason, where no kind cluster is reachable: these machines have no Docker
engine, so CI runs the same scenarios against the emulator (tests/integration) instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeemu.client import ApiError, KubeClient

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
API = "modelops.io/v1alpha1"


def _kind_cluster() -> KubeClient | str:
    """A client for the current kind context, or why there is none."""
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return "no Docker engine on this machine: make kind-up needs one"
    config = Path(os.environ.get("KUBECONFIG", Path.home() / ".kube" / "config"))
    if not config.exists():
        return f"no kubeconfig at {config}: run make kind-up"
    context = (yaml.safe_load(config.read_text()) or {}).get("current-context", "")
    if not str(context).startswith("kind-"):
        return f"the current context {context!r} is not a kind cluster: run make kind-up"
    return KubeClient.from_kubeconfig(config)


@pytest.fixture(scope="module")
def kube() -> KubeClient:
    found = _kind_cluster()
    if isinstance(found, str):
        pytest.skip(found)
    return found


def _examples() -> list[dict[str, Any]]:
    return [doc for path in sorted((REPO / "manifests" / "examples").glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_every_example_is_reconciled(kube: KubeClient) -> None:
    for obj in _examples():
        try:
            kube.create(obj)
        except ApiError as error:
            if error.status != 409:
                raise
    for obj in _examples():
        meta = obj["metadata"]
        done = kube.wait_for(
            API, obj["kind"], meta["namespace"], meta["name"],
            lambda o: bool(o) and o["status"].get("observedGeneration") == o["metadata"]["generation"],
            timeout=120,
        )  # fmt: skip
        assert done is not None
        assert any(c["type"] == "Ready" for c in done["status"]["conditions"])
