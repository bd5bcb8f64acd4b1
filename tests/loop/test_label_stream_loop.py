"""The whole loop closed on labels, with the operator in-process and its pods as host processes
(the scenario and its steps: tests/loop/labelstream.py)."""

from __future__ import annotations

import pytest

from loop.conftest import Loop
from loop.labelstream import label_stream_loop

pytestmark = pytest.mark.timeout(300)


def test_serve_labels_decay_retrain_once_govern_canary_on_labels_promote(loop: Loop) -> None:
    label_stream_loop(loop)
