"""The emulator's table of resourceVersion and uid preconditions, answered by the real apiextensions-apiserver.

``tests/emulator/test_preconditions.py`` runs the same table (``emulator/preconditions.py``) against
the emulator: a case that passes there and fails here means the emulator has drifted from the
real server.
"""

from __future__ import annotations

import pytest

from emulator import preconditions
from kubeemu.client import KubeClient
from realapi import KUBECONFIG, RealServer


@pytest.fixture(scope="module")
def client(real_server: RealServer) -> KubeClient:
    real_server.apply_crd(preconditions.PROBE_CRD)
    client = KubeClient.from_kubeconfig(KUBECONFIG)
    client.session.trust_env = False  # REQUESTS_CA_BUNDLE would override the kubeconfig's insecure-skip-tls-verify
    return client


@pytest.mark.parametrize("case", preconditions.CASES, ids=[c.id for c in preconditions.CASES])
def test_the_real_server_answers_the_table(client: KubeClient, case: preconditions.Case) -> None:
    preconditions.check(client, case)
