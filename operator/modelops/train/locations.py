"""Where training may read and send things: claim names, regions, endpoints and file roots (pure).

Every rule here is checked twice: by the operator before a pod starts (``modelops.logic.training``
turns a failure into ``Ready=False`` naming the field, and the CRD schema carries the same
patterns where a pattern can say it), and by the trainer itself, which must not trust a run
config it was handed.

- A ``pvc://`` claim name is a DNS-1123 subdomain, as Kubernetes names a PersistentVolumeClaim
  (at most 253 characters of ``a-z0-9-.``, starting and ending with a letter or digit), so ``..``
  or ``x/..`` can never become a directory.
- An S3 ``region`` has AWS's form, ``<area>-<place>-<digit(s)>`` (``us-east-1``,
  ``eu-central-2``, ``us-gov-west-1``): it becomes part of a host name when no endpoint is set.
- An S3 ``endpointUrl`` is an ``http(s)`` origin with an optional path and nothing else (no user
  info, query or fragment). It receives signed requests carrying the access key id, so: when the
  operator's allow-list (``MODELOPS_S3_ENDPOINTS``, comma-separated origins; the chart's
  ``s3.allowedEndpoints``) is set, the endpoint's origin must be on it, and plain ``http`` only
  where the list names it; when no list is set, only ``https`` is accepted, or ``http`` to a
  loopback address (a port-forward, a test).
- ``file://`` datasets (and plain absolute paths) must resolve, symlinks followed, inside one of
  the trainer's file roots: ``MODELOPS_FILE_ROOTS`` (a ``:``-separated list of directories), by
  default the PVC root (``MODELOPS_PVC_ROOT``, ``/mnt/pvc``) and the working directory. The
  operator sets it to the PVC root in training pods, so a run reads only the claims it mounts.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
MAX_CLAIM = 253
#: AWS's region names: two letters, one or more words, a number (us-east-1, us-gov-west-1, ap-southeast-5).
AWS_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[1-9][0-9]?$")
ENDPOINTS_ENV = "MODELOPS_S3_ENDPOINTS"
FILE_ROOTS_ENV = "MODELOPS_FILE_ROOTS"
PVC_ROOT_ENV = "MODELOPS_PVC_ROOT"
DEFAULT_PVC_ROOT = "/mnt/pvc"


class LocationError(ValueError):
    """A location the rules above refuse; the message says which rule, never what a file holds."""


def check_claim(claim: str, where: str = "claim") -> str:
    """``claim`` if it is a valid PersistentVolumeClaim name."""
    if not claim or len(claim) > MAX_CLAIM or not DNS_SUBDOMAIN.match(claim):
        raise LocationError(
            f"{where} {claim!r} is not a valid PersistentVolumeClaim name (a DNS-1123 subdomain: "
            "lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)"
        )
    return claim


def check_relative(path: str, where: str) -> str:
    """``path`` if it is relative and climbs nowhere (no ``..`` segment, not absolute)."""
    if path.startswith("/") or ".." in path.split("/"):
        raise LocationError(f"{where} {path!r} must be a relative path without '..'")
    return path


def check_region(region: str, where: str = "region") -> str:
    """``region`` if it has the form of an AWS region name."""
    if len(region) > 32 or not AWS_REGION.match(region):
        raise LocationError(f"{where} {region!r} is not an AWS region name (e.g. us-east-1, eu-central-2)")
    return region


def allowed_endpoints(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The allow-list of S3 endpoint origins from ``MODELOPS_S3_ENDPOINTS`` (empty: none set)."""
    raw = (os.environ if env is None else env).get(ENDPOINTS_ENV, "")
    return tuple(origin(item.strip()) for item in raw.split(",") if item.strip())


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL, lower-cased, default ports dropped."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if ":" in host:
        host = f"[{host}]"
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(url: str, allowed: Sequence[str] = (), where: str = "endpointUrl") -> str:
    """``url`` if signed S3 requests may go there (see the module doc for the rule)."""
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 -- a malformed port raises here
    except ValueError:
        raise LocationError(f"{where} {url!r} has an invalid port") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise LocationError(f"{where} {url!r} must be an http(s) URL with a host")
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise LocationError(f"{where} {url!r} must not carry user info, a query or a fragment")
    if allowed:
        if origin(url) not in allowed:
            raise LocationError(
                f"{where} {origin(url)!r} is not among the allowed S3 endpoints ({', '.join(allowed)}); "
                f"the operator's {ENDPOINTS_ENV} (chart value s3.allowedEndpoints) lists them"
            )
        return url
    if parts.scheme.lower() != "https" and not _loopback(parts.hostname):
        raise LocationError(
            f"{where} {url!r} must use https (plain http only to a loopback address, or to an endpoint "
            f"the operator's {ENDPOINTS_ENV} allows)"
        )
    return url


def pvc_root(env: Mapping[str, str] | None = None) -> Path:
    return Path((os.environ if env is None else env).get(PVC_ROOT_ENV) or DEFAULT_PVC_ROOT)


def file_roots(env: Mapping[str, str] | None = None, cwd: str | None = None) -> tuple[Path, ...]:
    """The directories ``file://`` datasets may be read from (see the module doc)."""
    environ = os.environ if env is None else env
    raw = environ.get(FILE_ROOTS_ENV)
    if raw is not None:
        return tuple(Path(item) for item in raw.split(os.pathsep) if item.strip())
    return (pvc_root(environ), Path(cwd if cwd is not None else os.getcwd()))


def confine(path: Path, roots: Sequence[Path], what: str) -> Path:
    """``path`` with symlinks resolved, if it lies inside one of ``roots``; else :class:`LocationError`."""
    resolved = path.resolve()
    for root in roots:
        if resolved.is_relative_to(root.resolve()):
            return resolved
    shown = ", ".join(str(r) for r in roots) or "none"
    raise LocationError(
        f"{what} is outside the directories the trainer may read ({shown}); "
        f"{FILE_ROOTS_ENV} (':'-separated) sets them"
    )
