"""S3-compatible object reads: AWS Signature Version 4 (pure) and a streaming GET.

The trainer only ever reads one object, so instead of boto3 (a large import, and a
dependency whose ``python-dateutil<3`` pin fights the Kubernetes client's) it signs one GET
itself. :func:`sign_v4` is pure and checked against AWS's published example and botocore's
signer in the tests.

Addressing: with an explicit endpoint (``dataset.s3.endpointUrl`` or ``AWS_ENDPOINT_URL``,
e.g. MinIO) the request is path-style, ``<endpoint>/<bucket>/<key>``; without one it goes to
AWS, virtual-hosted style, ``https://<bucket>.s3.<region>.amazonaws.com/<key>``. Credentials
come from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``); with
none the request goes unsigned, for public buckets.

A region must have AWS's form before it goes into a host name, and the trainer asks for
``checked=True``: the endpoint must pass :func:`modelops.train.locations.check_endpoint`
before a signed request (which carries the access key id) is sent there.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from modelops.train import locations

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    session_token: str | None = None


@dataclass(frozen=True)
class ObjectRequest:
    url: str
    region: str


def object_request(bucket: str, key: str, endpoint_url: str | None, region: str) -> ObjectRequest:
    """The URL of ``s3://bucket/key`` for an endpoint (see the module doc for the style)."""
    quoted = quote(key, safe="/~")
    locations.check_region(region)
    if endpoint_url:
        return ObjectRequest(f"{endpoint_url.rstrip('/')}/{bucket}/{quoted}", region)
    return ObjectRequest(f"https://{bucket}.s3.{region}.amazonaws.com/{quoted}", region)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def sign_v4(
    method: str,
    url: str,
    headers: Mapping[str, str],
    credentials: Credentials,
    region: str,
    amz_date: str,
    service: str = "s3",
    payload_sha256: str = EMPTY_SHA256,
) -> dict[str, str]:
    """Headers for ``method url`` signed with AWS SigV4 (the ``Authorization`` header included).

    ``url``'s path must already be URI-encoded (S3 does not encode it twice) and its query
    string is not supported (the trainer needs none). ``amz_date`` is ``YYYYMMDDTHHMMSSZ``.
    """
    parts = urlsplit(url)
    if parts.query:
        raise ValueError("sign_v4: query strings are not supported")
    host = parts.netloc
    if (parts.scheme == "http" and host.endswith(":80")) or (parts.scheme == "https" and host.endswith(":443")):
        host = host.rsplit(":", 1)[0]
    out = dict(headers)
    out["host"] = host
    out["x-amz-date"] = amz_date
    out["x-amz-content-sha256"] = payload_sha256
    if credentials.session_token:
        out["x-amz-security-token"] = credentials.session_token
    canonical = {k.lower(): " ".join(v.strip().split()) for k, v in out.items()}
    signed = ";".join(sorted(canonical))
    canonical_request = "\n".join(
        [
            method,
            parts.path or "/",
            "",
            "".join(f"{k}:{canonical[k]}\n" for k in sorted(canonical)),
            signed,
            payload_sha256,
        ]
    )
    day = amz_date[:8]
    scope = f"{day}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()]
    )
    key = _hmac(("AWS4" + credentials.secret_key).encode("utf-8"), day)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    out["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
    del out["host"]  # the HTTP client sets Host itself, to the same value
    return out


def error_code(body: str) -> str:
    """The ``<Code>`` of an S3 error document ("" when there is none)."""
    start, end = body.find("<Code>"), body.find("</Code>")
    return body[start + 6 : end] if 0 <= start < end else ""


def signed_request(
    method: str,
    bucket: str,
    key: str,
    endpoint_url: str | None = None,
    region: str | None = None,
    payload_sha256: str = EMPTY_SHA256,
    *,
    checked: bool = False,
    environ: Mapping[str, str] | None = None,
) -> tuple[str, dict[str, str]]:
    """URL and headers of ``method`` on ``s3://bucket/key``, endpoint, region and credentials from the
    environment where not given (``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``, ``AWS_REGION``/
    ``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``);
    unsigned without credentials. ``checked``: refuse an endpoint the endpoint rule refuses
    (:class:`~modelops.train.locations.LocationError`), wherever it came from."""
    import datetime
    import os

    env = os.environ if environ is None else environ
    endpoint = endpoint_url or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    region = region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    if checked and endpoint:
        locations.check_endpoint(endpoint, locations.allowed_endpoints(env))
    request = object_request(bucket, key, endpoint, region)
    access, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if not (access and secret):
        return request.url, {}
    creds = Credentials(access, secret, env.get("AWS_SESSION_TOKEN") or None)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    return request.url, sign_v4(method, request.url, {}, creds, request.region, now, payload_sha256=payload_sha256)


def signed_get(
    bucket: str, key: str, endpoint_url: str | None = None, region: str | None = None, *, checked: bool = False
) -> tuple[str, dict[str, str]]:
    """URL and headers of a GET of ``s3://bucket/key`` (see :func:`signed_request`)."""
    return signed_request("GET", bucket, key, endpoint_url, region, checked=checked)
