"""Fixtures for the attack tier: one model dir per session; each test starts its own server with lowered limits."""

from __future__ import annotations

import pytest

from serve import modelkit


@pytest.fixture(scope="session")
def iris(tmp_path_factory: pytest.TempPathFactory) -> modelkit.ModelDir:
    return modelkit.iris(tmp_path_factory.mktemp("models") / "iris")
