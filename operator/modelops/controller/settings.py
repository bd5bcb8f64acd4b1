"""The project's Kopf settings, applied at the operator's startup.

Kopf's finalizer and bookkeeping live under ``modelops.io`` names and in ``status.kopf``
(never ``kopf.zalando.org`` annotations, and never in annotations users keep in Git, which
a GitOps tool would fight the operator over); Events are posted from INFO up.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from modelops.controller import credentials

FINALIZER = "modelops.io/finalizer"
PEERING_NAME = "modelops-operator"


def configure(settings: kopf.OperatorSettings, *, posting_level: int = logging.INFO) -> None:
    """Apply the project's Kopf settings (also used by the tests' KopfRunner)."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field="status.kopf.lastHandledConfiguration")
    settings.posting.enabled = True
    settings.posting.level = posting_level
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60


def _startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    configure(settings)


def _login(logger: logging.Logger | logging.LoggerAdapter[Any], **_: Any) -> kopf.ConnectionInfo:
    """Kopf logs in with the same credentials as the operator's own client."""
    try:
        creds = credentials.load()
    except Exception as error:
        # The operator checked its credentials before starting; lost since (a kubeconfig edited, a token
        # file gone), Kopf tries again in a minute: one line each time, not a traceback.
        raise kopf.TemporaryError(f"cannot log in: {credentials.explain(error)}", delay=60) from None
    logger.debug("Logging in to %s", creds.server)
    return kopf.ConnectionInfo(
        server=creds.server,
        token=creds.token,
        scheme="Bearer" if creds.token else None,
        ca_path=creds.ca_path,
        insecure=creds.insecure,
        certificate_path=creds.certificate_path,
        private_key_path=creds.private_key_path,
        default_namespace=creds.namespace,
    )


def register(registry: kopf.OperatorRegistry) -> None:
    """Add the settings and the login to a registry."""
    kopf.on.startup(registry=registry)(_startup)
    kopf.on.login(registry=registry)(_login)
