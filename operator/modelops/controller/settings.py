"""The project's Kopf settings, applied at the operator's startup.

Kopf's finalizer and bookkeeping live under ``modelops.io`` names and in ``status.kopf``
(never ``kopf.zalando.org`` annotations, and never in annotations users keep in Git, which
a GitOps tool would fight the operator over); Events are posted from INFO up.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from modelops import kubeauth
from modelops.controller import runtime

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
