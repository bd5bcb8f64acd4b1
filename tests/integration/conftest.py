"""The integration tier: fixtures come from tests/operatorkit.py (registered in tests/conftest.py),
plus a real S3 API for the training runs that use an s3:// store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from operatorkit import NAMESPACE, REPO

__all__ = ["NAMESPACE", "REPO"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.timeout(120))


@pytest.fixture
def s3_store() -> Iterator[str]:
    """moto's S3 API server on 127.0.0.1 with a bucket 'models' (a real HTTP S3 implementation)."""
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing-secret").create_bucket(Bucket="models")  # fmt: skip
    try:
        yield endpoint
    finally:
        server.stop()
