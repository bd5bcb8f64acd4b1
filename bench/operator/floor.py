"""The floor: a Kopf operator that does nothing but create one Job per TrainingRun.

Run as ``kopf run --standalone -n NAMESPACE bench/operator/floor.py`` with ``KUBECONFIG`` naming a
kubeconfig with a server and a bearer token (the bench writes one). It shares nothing with the
modelops operator but Kopf and aiohttp: one aiohttp session, one POST per run, a 409 taken as done.
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp
import kopf
import yaml

_session: aiohttp.ClientSession | None = None


def _target() -> tuple[str, dict[str, str]]:
    with open(os.environ["KUBECONFIG"]) as handle:
        config = yaml.safe_load(handle)
    server = config["clusters"][0]["cluster"]["server"].rstrip("/")
    token = config["users"][0]["user"].get("token")
    return server, ({"Authorization": f"Bearer {token}"} if token else {})


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    server, headers = _target()
    return kopf.ConnectionInfo(server=server, scheme="Bearer" if headers else None,
                               token=headers.get("Authorization", " ").split(" ", 1)[1] or None)  # fmt: skip


@kopf.on.create("modelops.io", "v1alpha1", "trainingruns")
async def create_job(body: kopf.Body, name: str, namespace: str, **_: Any) -> None:
    global _session  # one session for the operator's life
    server, headers = _target()
    if _session is None:
        _session = aiohttp.ClientSession(headers=headers)
    job: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"{name}-train", "namespace": namespace},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "train", "image": "busybox", "command": ["true"]}]}}},
    }  # fmt: skip
    kopf.adopt(job, owner=body)
    async with _session.post(f"{server}/apis/batch/v1/namespaces/{namespace}/jobs", json=job) as response:
        if response.status not in (201, 409):
            raise kopf.TemporaryError(f"creating the Job: {response.status} {await response.text()}", delay=1)


@kopf.on.cleanup()
async def close(**_: Any) -> None:
    if _session is not None:
        await _session.close()
