"""A minimal client for the real ``apiextensions-apiserver`` of ``../shared/tools/crd-apiserver``."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import requests
import yaml

REPO = Path(__file__).resolve().parents[1]
KUBECONFIG = Path(os.environ.get("CRD_APISERVER_KUBECONFIG", "/tmp/crd-apiserver/kubeconfig"))


class RealServer:
    """A minimal REST client for the CRD-only server (it has no discovery root)."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        self.base = config["clusters"][0]["cluster"]["server"]
        user = config["users"][0]["user"]
        self.session = requests.Session()
        self.session.cert = (user["client-certificate"], user["client-key"])
        self.verify = False  # the server's serving certificate is self-signed

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.base + path, verify=self.verify, timeout=30, **kwargs)

    def apply_crd(self, crd: dict[str, Any]) -> None:
        path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        name = crd["metadata"]["name"]
        current = self.request("GET", f"{path}/{name}")
        if current.status_code == 200:
            crd = dict(
                crd, metadata=dict(crd["metadata"], resourceVersion=current.json()["metadata"]["resourceVersion"])
            )
            response = self.request("PUT", f"{path}/{name}", json=crd)
        else:
            response = self.request("POST", path, json=crd)
        assert response.status_code in (200, 201), response.text
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = self.request("GET", f"{path}/{name}").json().get("status") or {}
            conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
            if conditions.get("Established") == "True":
                return
            time.sleep(0.2)  # polling the server for a condition, bounded by the deadline
        raise AssertionError(f"CRD {name} not Established: {status}")


def reachable(kubeconfig: Path) -> str | None:
    if not kubeconfig.exists():
        return f"no kubeconfig at {kubeconfig}: build and start ../shared/tools/crd-apiserver (as .ci/run does)"
    try:
        RealServer(kubeconfig).request("GET", "/readyz")
    except requests.RequestException as error:
        return f"the apiextensions-apiserver of {kubeconfig} is not reachable: {error}"
    return None
