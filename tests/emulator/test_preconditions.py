"""resourceVersion and uid preconditions on patch, replace and delete, as the real API server answers them.

The table is in ``emulator/preconditions.py``; ``tests/crdserver/test_preconditions.py`` runs the
same table against the real ``apiextensions-apiserver``. Built-in kinds differ from custom
resources in one rule, checked here only (the real CRD-only server has no built-in kinds): their
strategies allow an unconditional update, so a PUT without a resourceVersion is accepted.
"""
from __future__ import annotations

from typing import Any

import pytest

from emulator import preconditions
from kubeemu import Emulator
from kubeemu.client import ApiError, KubeClient


@pytest.fixture
def probes(emulator: Emulator) -> Emulator:
    emulator.register_crds([preconditions.PROBE_CRD])
    return emulator


@pytest.mark.parametrize('case', preconditions.CASES, ids=[c.id for c in preconditions.CASES])
def test_a_write_is_answered_as_the_real_server_answers_it(
        kube: KubeClient, probes: Emulator, case: preconditions.Case) -> None:
    preconditions.check(kube, case)


def configmap(kube: KubeClient) -> dict[str, Any]:
    kube.create({'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'c'}, 'data': {'k': 'v'}})
    return kube.patch('v1', 'ConfigMap', 'default', 'c', {'data': {'k': 'w'}})


def test_a_built_in_kind_takes_a_put_or_a_blanked_patch_without_a_resource_version(kube: KubeClient) -> None:
    current = configmap(kube)
    body = dict(current, data={'k': 'put'})
    body['metadata'] = {k: v for k, v in current['metadata'].items() if k != 'resourceVersion'}
    replaced = kube.replace(body)
    assert replaced['data'] == {'k': 'put'}
    assert int(replaced['metadata']['resourceVersion']) > int(current['metadata']['resourceVersion'])
    patched = kube.patch('v1', 'ConfigMap', 'default', 'c', {'metadata': {'resourceVersion': ''}, 'data': {'k': 'x'}})
    assert patched['data'] == {'k': 'x'}


def test_a_built_in_kind_still_refuses_a_stale_resource_version(kube: KubeClient) -> None:
    stale = kube.create({'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'c'}, 'data': {'k': 'v'}})
    kube.patch('v1', 'ConfigMap', 'default', 'c', {'data': {'k': 'w'}})
    with pytest.raises(ApiError) as error:
        kube.patch('v1', 'ConfigMap', 'default', 'c',
                   {'metadata': {'resourceVersion': stale['metadata']['resourceVersion']}, 'data': {'k': 'x'}})
    assert error.value.status == 409
    assert kube.get('v1', 'ConfigMap', 'default', 'c')['data'] == {'k': 'w'}
