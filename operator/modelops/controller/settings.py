"""The project's Kopf settings, applied at the operator's startup.

Kopf's finalizer and bookkeeping live under ``modelops.io`` names and in ``status.kopf``
(never ``kopf.zalando.org`` annotations, and never in annotations users keep in Git, which
a GitOps tool would fight the operator over); Events are posted from INFO up.

Kopf logs each successful run of a handler at INFO ("Timer 'recheck-runs' succeeded.", "Handler
'reconcile' succeeded."): with a timer per object, a line per object per interval.
:class:`RoutineSuccesses` makes exactly those lines DEBUG (shown only with ``--verbose``); failures,
warnings and our own messages keep their level. Log lines are not posted as Events
(``posting.loggers`` off, pinned here): only what the handlers post with ``kopf.event``/``kopf.warn``
is; were it on, a timer's success line, which Kopf logs on the object's posting logger, would be an
Event API request per object per run.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import kopf

from modelops import kubeauth
from modelops.controller import runtime

FINALIZER = "modelops.io/finalizer"
PEERING_NAME = "modelops-operator"
# Kopf's logger for what happens to an object (its handlers' `logger` too): the Event poster is on it.
KOPF_OBJECTS_LOGGER = "kopf.objects"


class RoutineSuccesses(logging.Filter):
    """Kopf's "<Handler|Timer|Daemon|Activity|Webhook> '<id>' succeeded." lines, demoted from INFO to DEBUG.

    On a logger, a filter runs before its handlers (Kopf's Event poster among them, which posts only
    from ``settings.posting.level`` up) and after the level check: a demoted line goes on only where
    the logger is enabled for DEBUG."""

    LINE = re.compile(r"(?:Handler|Timer|Daemon|Activity|Webhook) '.*' succeeded\.", re.DOTALL)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not self.LINE.fullmatch(str(record.msg)):
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def quiet_routine_successes() -> None:
    """Put :class:`RoutineSuccesses` on Kopf's object logger (once per process)."""
    kopf_objects = logging.getLogger(KOPF_OBJECTS_LOGGER)
    if not any(isinstance(found, RoutineSuccesses) for found in kopf_objects.filters):
        kopf_objects.addFilter(RoutineSuccesses())


def configure(settings: kopf.OperatorSettings, *, posting_level: int = logging.INFO) -> None:
    """Apply the project's Kopf settings (also used by the tests' KopfRunner)."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field="status.kopf.lastHandledConfiguration")
    settings.posting.enabled = True
    settings.posting.loggers = False  # log lines stay logs (Kopf's default): Events only from kopf.event & co.
    settings.posting.level = posting_level
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    quiet_routine_successes()


def _startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    configure(settings)


async def _login(
    memo: kopf.Memo, logger: logging.Logger | logging.LoggerAdapter[Any], **_: Any
) -> kopf.ConnectionInfo:
    """Kopf logs in with this run's credentials, the ones the operator's own client uses.

    Kopf's ``login_via_client`` reads the library's defaults too, but knows no context namespace, no
    expiry of an exec plugin's answer, and only the first ``current-context`` rule of the library.
    Kopf asks again when its credentials expire or the API server refuses them: then they are loaded
    anew (an exec plugin run again, a rotated token read)."""
    try:
        state = runtime.of(memo)
        again = state.creds is not None
        creds = await asyncio.to_thread(state.credentials)
        conn = await asyncio.to_thread(creds.renew if again else creds.connection)
    except kubeauth.CredentialsError as error:
        # The operator checked its credentials before starting; lost since (a kubeconfig edited, a token
        # file gone), Kopf tries again in a minute: one line each time, not a traceback.
        raise kopf.TemporaryError(f"cannot log in: {error}", delay=60) from None
    logger.debug("Logging in to %s as %s", conn.server, creds.source)
    scheme, token = conn.scheme_and_token
    return kopf.ConnectionInfo(
        server=conn.server,
        scheme=scheme,
        token=token,
        ca_path=conn.ca_path,
        insecure=conn.insecure,
        certificate_path=conn.certificate_path,
        private_key_path=conn.private_key_path,
        default_namespace=creds.namespace,
        expiration=conn.expiration,
        proxy_url=conn.proxy,
    )


def register(registry: kopf.OperatorRegistry) -> None:
    """Add the settings and the login to a registry."""
    kopf.on.startup(registry=registry)(runtime.bound(_startup))
    kopf.on.login(registry=registry)(runtime.bound(_login))
