"""A training run's whole result, when its termination message could not hold it (a wide table).

A pod's termination message holds 4 KiB; past about 64 features the trainer drops the reference
statistics (and more) from it and marks it ``truncated``, keeping the sha256 of the whole
``result.json`` in it. The operator then reads the whole result from, in order:

1. its own artifact store, when the run wrote to it: an ``s3://`` store in the bucket of
   ``MODELOPS_ARTIFACT_STORE`` at the operator's own endpoint (``AWS_ENDPOINT_URL``, or AWS).
   The result file is fetched with a GET signed with SigV4, as the trainer signs its uploads,
   with the operator's own ``AWS_*`` credentials. The operator never reads a Secret (its role
   has none), and never signs for a bucket or an endpoint a run chose: that would hand its
   access key id to whoever runs them;
2. the training pod's log (``pods/log``), whose last ``modelops-result`` line carries the same
   bytes, gzip-compressed and base64-encoded. This covers ``pvc://`` stores and every other
   ``s3://`` store: the operator cannot mount every claim, and a reader pod would have to be
   scheduled where a ReadWriteOnce claim can attach, pass quotas and admission, and report back
   through -- again -- a log. The log needs no credentials and no extra pod, only ``get`` on
   ``pods/log``, and lives as long as the pod (which a Job keeps until its TTL).

Whatever the source, the bytes count only if their sha256 is the one in the termination message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp

from modelops.api.trainingrun import TrainingRunSpec
from modelops.controller import common
from modelops.controller.common import kube
from modelops.controller.kube import KubeError
from modelops.logic import training
from modelops.train import locations, s3

MAX_RESULT_BYTES = 64 << 20
TIMEOUT = aiohttp.ClientTimeout(total=60)


class ResultUnavailableError(Exception):
    """No source gave the whole result; the message says what each one answered."""


def _own_store(spec: TrainingRunSpec, bucket: str) -> str | None:
    """Why the operator will not sign for this result itself, or None when it is its own store."""
    default = common.ARTIFACT_STORE or ""
    if not default.startswith("s3://") or default.removeprefix("s3://").partition("/")[0] != bucket:
        return f"bucket {bucket} is not the operator's own store ({default or 'none configured'})"
    options = spec.artifact_store.s3 if spec.artifact_store is not None else None
    mine = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
    theirs = (options.endpoint_url if options else None) or mine
    same = locations.origin(theirs) == locations.origin(mine) if theirs and mine else theirs == mine
    if not same:
        return f"endpoint {theirs} is not the operator's own ({mine or 'AWS'})"
    return None


async def from_store(spec: TrainingRunSpec, uri: str, expected: str | None) -> dict[str, Any]:
    """The whole result from the operator's own ``s3://`` store; :class:`ResultUnavailableError` saying why not."""
    parts = urlsplit(uri)
    bucket, key = parts.netloc, unquote(parts.path).lstrip("/")
    refusal = _own_store(spec, bucket)
    if refusal is not None:
        raise ResultUnavailableError(refusal)
    try:
        url, headers = s3.signed_request("GET", bucket, key, checked=True)
    except locations.LocationError as error:
        raise ResultUnavailableError(f"{uri}: {error}") from None
    try:
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT) as session,
            session.get(url, headers=headers, allow_redirects=False) as response,
        ):
            data = bytearray()
            async for chunk in response.content.iter_chunked(1 << 16):
                data += chunk
                if len(data) > MAX_RESULT_BYTES:
                    break
            if response.status != 200:
                code = s3.error_code(bytes(data[:4096]).decode(errors="replace"))
                shown = code if code.isalnum() else ""
                raise ResultUnavailableError(f"GET {uri} answered HTTP {response.status} {shown}".rstrip())
    except aiohttp.ClientError as error:
        raise ResultUnavailableError(f"GET {uri} failed: {type(error).__name__}") from None
    if len(data) > MAX_RESULT_BYTES:
        raise ResultUnavailableError(f"{uri} is larger than {MAX_RESULT_BYTES} bytes")
    try:
        return training.verified_result(bytes(data), expected)
    except ValueError as error:
        raise ResultUnavailableError(f"{uri}: {error}") from None


async def from_log(namespace: str, pods: Sequence[Mapping[str, Any]], trial: int) -> dict[str, Any]:
    """The whole result from the log of the pod that ran ``trial`` and succeeded."""
    pod = training.succeeded_pod(pods, trial)
    if pod is None:
        raise ResultUnavailableError(f"no succeeded pod of trial {trial} is left to read the log of")
    name = str(pod["metadata"]["name"])
    message = training.termination_of(pod) or {}
    try:
        log = await kube().pod_log(namespace, name, training.CONTAINER)
    except KubeError as error:
        raise ResultUnavailableError(f"the log of pod {name}: HTTP {error.status} {error.message}") from None
    try:
        return training.result_from_log(log, message.get("resultSha256"))
    except ValueError as error:
        raise ResultUnavailableError(f"the log of pod {name}: {error}") from None


async def whole_message(
    spec: TrainingRunSpec, namespace: str, message: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], trial: int
) -> dict[str, Any]:
    """``message`` completed from the whole result (see the module doc for where it comes from)."""
    problems: list[str] = []
    result_file = str(message.get("resultFile") or "")
    if result_file.startswith("s3://"):
        try:
            result = await from_store(spec, result_file, message.get("resultSha256"))
            return training.completed_message(message, result)
        except ResultUnavailableError as error:
            problems.append(f"store: {error}")
    try:
        return training.completed_message(message, await from_log(namespace, pods, trial))
    except ResultUnavailableError as error:
        problems.append(f"log: {error}")
    raise ResultUnavailableError("; ".join(problems))
