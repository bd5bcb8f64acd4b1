"""The integration tier: fixtures come from tests/operatorkit.py (registered in tests/conftest.py)."""

from __future__ import annotations

import pytest

from operatorkit import NAMESPACE, REPO

__all__ = ["NAMESPACE", "REPO"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.timeout(120))
