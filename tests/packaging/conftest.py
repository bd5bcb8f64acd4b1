"""The packaging tier: the Helm chart rendered offline (helm-python-sdk), the plain install, GitOps files.

No cluster and no helm binary: ``helm_python`` wraps the Helm SDK in a shared library. Its
render leaves ``crds/`` out, so the tests read those files themselves.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import helm_python
import pytest

# The helpers beside this file (chartkit, render_install) are imported by name; the folder is not
# a package, so that it never shadows the PyPI `packaging` library.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chartkit import CHART_DIR, Render

import helmchart


@pytest.fixture(scope="session")
def chart() -> Iterator[helm_python.Chart]:
    with helm_python.Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def render() -> Render:
    """Render the chart with some values → its objects (NOTES.txt left out), as an install would."""
    # Each render makes RSA keys for the webhook CA: helmchart renders each combination once per session.
    return helmchart.render
