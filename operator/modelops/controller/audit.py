"""The operator's audit log: governance records (``logic.audit``) as one JSON line each.

The records go to the logger ``modelops.audit``. ``modelops operator`` gives it a handler of its
own that writes the bare JSON line to stderr (no time or level prefix: the record has its own
``at``), so a log pipeline can parse every line of that logger as JSON; elsewhere (Kopf run in
a test's thread) the records reach the root logger like any message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

from modelops.logic import audit

LOGGER = "modelops.audit"
log = logging.getLogger(LOGGER)


def configure(stream: TextIO) -> None:
    """Write the audit records to ``stream`` as bare JSON lines, and only there."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False


def write(records: Iterable[Mapping[str, Any]]) -> None:
    for record in records:
        log.info("%s", audit.line(record))


def status_written(body: Mapping[str, Any], before: Mapping[str, Any] | None, patch: Mapping[str, Any]) -> None:
    """Log what a successful status write of ``patch`` over ``before`` did to the version ``body``."""
    write(audit.version_events(body, before, {**(before or {}), **patch}))
