"""The whole loop in one operator, with the operator in-process and its pods as host processes
(the scenario and its steps: tests/loop/scenario.py; the same scenario in containers: tests/image)."""

from __future__ import annotations

import pytest

from loop.conftest import Loop
from loop.scenario import whole_loop

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]  # the whole loop with every real part


def test_train_govern_serve_drift_retrain_govern_canary_promote(loop: Loop) -> None:
    whole_loop(loop)
