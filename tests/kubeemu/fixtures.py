"""
Pytest fixtures for tests that need a Kubernetes API: ``emulator``, ``kube``, ``kubeconfig``.

Load with ``pytest_plugins = ["kubeemu.fixtures"]``. Each test gets its own
started emulator (with the shipped extra CRDs registered); at teardown the
fixture fails the test if the emulator hit an internal error (a 500).
"""
from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from kubeemu import Emulator
from kubeemu.client import KubeClient


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emu = Emulator()
    emu.start()
    try:
        emu.register_builtin_extras()
        yield emu
        assert not emu.internal_errors, f'the emulator failed internally: {emu.internal_errors!r}'
    finally:
        emu.stop()


@pytest.fixture
def kube(emulator: Emulator) -> KubeClient:
    return KubeClient(emulator.url)


@pytest.fixture
def kubeconfig(emulator: Emulator, tmp_path: pathlib.Path) -> pathlib.Path:
    return emulator.write_kubeconfig(tmp_path / 'kubeconfig')
