"""Fixtures for the emulator's own fidelity tests: the kubeemu plugin plus test CRDs with schemas."""
from __future__ import annotations

from typing import Any

import pytest

from emulator.widgets import GADGET_CRD, WIDGET_CRD, WIDGETS, WidgetFactory
from kubeemu import Emulator


@pytest.fixture
def widgets(emulator: Emulator) -> Emulator:
    """The emulator with the Widget and Gadget CRDs registered."""
    emulator.register_crds([WIDGET_CRD, GADGET_CRD])
    return emulator


@pytest.fixture
def make_widget() -> WidgetFactory:
    def factory(name: str = 'w1', namespace: str = 'default', **spec: Any) -> dict[str, Any]:
        body_spec: dict[str, Any] = {'dataset': {'uri': 'sklearn://iris'}}
        body_spec.update(spec)
        return {'apiVersion': WIDGETS, 'kind': 'Widget', 'metadata': {'name': name, 'namespace': namespace},
                'spec': body_spec}
    return factory
