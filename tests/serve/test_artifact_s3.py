"""Artifacts fetched from a real S3 API (moto's server on 127.0.0.1), verified by digest."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelops.serve import artifact


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    try:
        yield endpoint
    finally:
        server.stop()


def _put(endpoint: str, bucket: str, key: str, data: bytes) -> None:
    boto3 = pytest.importorskip("boto3")
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key=key, Body=data)


def test_fetches_a_verified_copy_from_s3(s3_endpoint: str, tmp_path: Path) -> None:
    data = b"model bytes " * 1000
    _put(s3_endpoint, "models", "iris/v1/model.joblib", data)
    target = artifact.fetch("s3://models/iris/v1/model.joblib", tmp_path / "model.joblib",
                            hashlib.sha256(data).hexdigest())
    assert target.read_bytes() == data


def test_refuses_a_digest_mismatch_and_leaves_nothing(s3_endpoint: str, tmp_path: Path) -> None:
    _put(s3_endpoint, "models", "iris/v2/model.joblib", b"tampered")
    with pytest.raises(artifact.ArtifactError, match="sha256 mismatch"):
        artifact.fetch("s3://models/iris/v2/model.joblib", tmp_path / "model.joblib", "0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_missing_object_names_the_uri_and_status(s3_endpoint: str, tmp_path: Path) -> None:
    _put(s3_endpoint, "models", "present", b"x")
    with pytest.raises(artifact.ArtifactError, match=r"cannot fetch s3://models/absent: HTTP 404"):
        artifact.fetch("s3://models/absent", tmp_path / "model.joblib", "0" * 64)
