"""The packaging tier: the Helm chart rendered offline (helm-python-sdk), the plain install, GitOps files.

No cluster and no helm binary: ``helm_python`` wraps the Helm SDK in a shared library. Its
render leaves ``crds/`` out, so the tests read those files themselves.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

# The helpers beside this file (chartkit, render_install) are imported by name; the folder is not
# a package, so that it never shadows the PyPI `packaging` library.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chartkit import CHART_DIR, NAMESPACE, Objects, Render


@pytest.fixture(scope="session")
def chart() -> Iterator[helm_python.Chart]:
    with helm_python.Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def render(chart: helm_python.Chart) -> Render:
    """Render the chart with some values → its objects (NOTES.txt left out), as an install would."""

    cache: dict[str, Objects] = {}

    def _render(values: dict[str, Any] | None = None, namespace: str = NAMESPACE) -> Objects:
        # Each render makes RSA keys for the webhook CA: render each combination once per session.
        key = json.dumps([values or {}, namespace], sort_keys=True)
        if key not in cache:
            rendered = chart.render(values or {}, name="modelops", namespace=namespace, is_install=True)
            cache[key] = [
                doc
                for template, text in sorted(rendered.items())
                if template.endswith(".yaml")
                for doc in yaml.safe_load_all(text)
                if doc
            ]
        return copy.deepcopy(cache[key])

    return _render
