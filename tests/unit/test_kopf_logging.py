"""Kopf's routine success lines go to DEBUG; everything else keeps its level."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import kopf
import pytest

from modelops.controller import settings


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def objects() -> Iterator[tuple[logging.Logger, Kept]]:
    """A logger standing for Kopf's object logger, with the filter and a handler keeping what passes."""
    logger = logging.getLogger("modelops.tests.kopf-objects")
    kept = Kept()
    logger.addHandler(kept)
    logger.addFilter(settings.RoutineSuccesses())
    logger.propagate = False
    try:
        yield logger, kept
    finally:
        logger.removeHandler(kept)
        logger.filters.clear()
        logger.setLevel(logging.NOTSET)


DEBUG, INFO, WARNING, ERROR = logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR
# (level logged at, message, level it reaches the handlers at: logger at INFO, logger at DEBUG; None: dropped)
LINES = [
    (INFO, "Timer 'recheck-runs' succeeded.", None, DEBUG),
    (INFO, "Handler 'reconcile' succeeded.", None, DEBUG),
    (INFO, "Handler 'reconcile/sub-step' succeeded.", None, DEBUG),
    (INFO, "Activity 'runtime-start' succeeded.", None, DEBUG),
    (ERROR, "Timer 'recheck-runs' failed with an exception and will try again in 60 seconds: boom", ERROR, ERROR),
    (WARNING, "feedback keys: a Secret of that name exists and is not the operator's", WARNING, WARNING),
    (INFO, "Creation is processed: 1 succeeded; 0 failed.", INFO, INFO),
    (INFO, "Deployed iris-v2: Handler 'x' succeeded.", INFO, INFO),  # our own words, only ending like Kopf's
    (WARNING, "Timer 'x' succeeded.", WARNING, WARNING),  # not Kopf's INFO line
    (DEBUG, "Timer 'recheck-runs' is invoked.", None, DEBUG),
]


@pytest.mark.parametrize("level", [INFO, DEBUG])
def test_only_the_success_lines_go_to_debug(objects: tuple[logging.Logger, Kept], level: int) -> None:
    logger, kept = objects
    logger.setLevel(level)
    for logged_at, message, _, _ in LINES:
        logger.log(logged_at, message)
    expected = [(message, at_info if level == INFO else at_debug) for _, message, at_info, at_debug in LINES]
    assert [(r.getMessage(), r.levelno) for r in kept.records] == [(m, lv) for m, lv in expected if lv is not None]
    assert all(r.levelname == logging.getLevelName(r.levelno) for r in kept.records)


def test_the_settings_put_the_filter_on_kopfs_object_logger_once_and_post_no_log_lines() -> None:
    kopf_objects = logging.getLogger(settings.KOPF_OBJECTS_LOGGER)
    first, second = kopf.OperatorSettings(), kopf.OperatorSettings()
    first.posting.loggers = True
    settings.configure(first)
    settings.configure(second)  # a second operator in the process
    assert sum(isinstance(f, settings.RoutineSuccesses) for f in kopf_objects.filters) == 1
    assert (first.posting.loggers, first.posting.level) == (False, logging.INFO)
