"""Fetching a model artifact into a local cache and verifying its sha256 before anything loads it.

URIs: ``file:///path``, a plain path, ``pvc://<claim>/<path>`` (mounted at ``/mnt/pvc/<claim>``,
overridable with env ``MODELOPS_PVC_ROOT``), ``https://`` and ``http://`` (requests), and
``s3://bucket/key`` (one SigV4-signed GET, as the trainer does; endpoint from env
``AWS_ENDPOINT_URL``, credentials from ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``).
Downloads stream into a temporary file beside the
target while hashing, and are renamed into place only when the hash matches, so a cache never
holds a file with the wrong content under the real name.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

_CHUNK = 1 << 20


class ArtifactError(Exception):
    """The artifact cannot be fetched, or its content is not the trusted one."""


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file's content."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, expected: str) -> None:
    """Raise :class:`ArtifactError` unless ``path``'s sha256 is ``expected``."""
    if not path.is_file():
        raise ArtifactError(f"artifact {path} does not exist")
    actual = sha256_of(path)
    if actual != expected.lower():
        raise ArtifactError(
            f"artifact sha256 mismatch for {path}: expected {expected.lower()}, got {actual}; refusing to load it"
        )


def verify_bytes(data: bytes, expected: str, where: str) -> None:
    """Raise :class:`ArtifactError` unless ``data``'s sha256 is ``expected``."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected.lower():
        raise ArtifactError(
            f"artifact sha256 mismatch for {where}: expected {expected.lower()}, got {actual}; refusing to load it"
        )


def _local_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme in {"", "file"}:
        return Path(unquote(parsed.path))
    if parsed.scheme == "pvc":
        root = Path(os.environ.get("MODELOPS_PVC_ROOT", "/mnt/pvc"))
        return root / parsed.netloc / unquote(parsed.path).lstrip("/")
    return None


def _http_chunks(uri: str, url: str | None = None, headers: dict[str, str] | None = None) -> Iterator[bytes]:
    import requests

    try:
        with requests.get(url or uri, headers=headers, stream=True, timeout=(10, 60)) as response:
            if response.status_code != 200:
                raise ArtifactError(f"cannot fetch {uri}: HTTP {response.status_code}")
            yield from response.iter_content(_CHUNK)
    except requests.RequestException as exc:
        raise ArtifactError(f"cannot fetch {uri}: {exc}") from None


def _s3_chunks(uri: str) -> Iterator[bytes]:
    from modelops.train import s3

    parsed = urlparse(uri)
    url, headers = s3.signed_get(parsed.netloc, unquote(parsed.path).lstrip("/"))
    return _http_chunks(uri, url, headers)


def fetch(uri: str, target: Path, expected_sha256: str) -> Path:
    """Make ``target`` a verified copy of the artifact at ``uri`` and return it.

    A ``target`` already holding the expected content is a cache hit: nothing is fetched.
    """
    if target.is_file() and sha256_of(target) == expected_sha256.lower():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    local = _local_path(uri)
    if local is not None:
        if not local.is_file():
            raise ArtifactError(f"cannot fetch {uri}: {local} does not exist")
        chunks: Iterator[bytes] = _file_chunks(local)
    elif uri.startswith(("https://", "http://")):
        chunks = _http_chunks(uri)
    elif uri.startswith("s3://"):
        chunks = _s3_chunks(uri)
    else:
        raise ArtifactError(f"cannot fetch {uri}: unsupported URI scheme")
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
        actual = digest.hexdigest()
        if actual != expected_sha256.lower():
            raise ArtifactError(
                f"artifact sha256 mismatch for {uri}: expected {expected_sha256.lower()}, got {actual}; "
                "refusing to load it"
            )
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            yield chunk


def fetch_text(uri: str, target: Path) -> Path:
    """Copy a small unverified companion file (``result.json``) next to the artifact."""
    local = _local_path(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    if local is not None:
        if not local.is_file():
            raise ArtifactError(f"cannot fetch {uri}: {local} does not exist")
        shutil.copyfile(local, target)
        return target
    if uri.startswith(("https://", "http://")):
        data = b"".join(_http_chunks(uri))
    elif uri.startswith("s3://"):
        data = b"".join(_s3_chunks(uri))
    else:
        raise ArtifactError(f"cannot fetch {uri}: unsupported URI scheme")
    target.write_bytes(data)
    return target


def sibling(uri: str, name: str) -> str:
    """The URI of ``name`` in the same folder as ``uri``."""
    head, _, _ = uri.rpartition("/")
    return f"{head}/{name}"
