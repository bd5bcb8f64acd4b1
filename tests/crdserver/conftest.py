"""Fixtures for the tier that runs against the real ``apiextensions-apiserver``.

The server is built and started by ``../shared/tools/crd-apiserver`` (``.ci/run`` does
both); its kubeconfig is at ``$CRD_APISERVER_KUBECONFIG`` or
``/tmp/crd-apiserver/kubeconfig``. Without it, every test here skips with that reason.
"""

from __future__ import annotations

import uuid

import pytest
import yaml

from realapi import KUBECONFIG, REPO, RealServer, reachable


@pytest.fixture(scope="session")
def real_server() -> RealServer:
    import urllib3

    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    problem = reachable(KUBECONFIG)
    if problem:
        pytest.skip(problem)
    server = RealServer(KUBECONFIG)
    for path in sorted((REPO / "crds").glob("*.yaml")):
        server.apply_crd(yaml.safe_load(path.read_text()))
    return server


@pytest.fixture
def namespace() -> str:
    """A fresh namespace name per test (the server has no Namespace API to create one)."""
    return f"t-{uuid.uuid4().hex[:10]}"
