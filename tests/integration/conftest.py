"""Fixtures for integration tests against a real local S3 endpoint (Swift + s3api).

- ``s3_server`` (session): starts ``scripts/s3-server.sh`` (installing Swift when
  root + apt-get allow it) and yields ``{"endpoint_url", "access_key", "secret_key",
  "region"}``. If the server cannot be started the tests are skipped, or fail when
  ``CI=true``. The server is stopped at the end only if this session started it;
  set ``DNNBENCH_S3_KEEP=1`` to leave it running for faster reruns.
- ``s3_client`` (session): boto3 client for it (path-style, SigV4, us-east-1).
- ``s3_bucket`` (function): a fresh, uniquely named, empty bucket; emptied and
  deleted afterwards.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
PROJECT_ROOT = _HERE.parents[1]

if str(_HERE) not in sys.path:  # works whatever pytest's import mode is
    sys.path.insert(0, str(_HERE))

from s3server import (  # noqa: E402
    S3ServerUnavailable,
    delete_bucket,
    ensure_server,
    make_s3_client,
    server_running,
    stop_server,
)


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@pytest.fixture(scope="session")
def s3_server():
    was_running = server_running(PROJECT_ROOT)
    try:
        info = ensure_server(PROJECT_ROOT)
    except S3ServerUnavailable as exc:
        message = f"local S3 server (Swift + s3api) unavailable: {exc.reason}"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    try:
        yield info
    finally:
        # Under pytest-xdist each worker has its own session: a worker must not
        # stop a server its siblings still use, so workers leave it running.
        if not was_running and not _truthy("DNNBENCH_S3_KEEP") and "PYTEST_XDIST_WORKER" not in os.environ:
            stop_server(PROJECT_ROOT)


@pytest.fixture(scope="session")
def s3_client(s3_server):
    return make_s3_client(s3_server)


@pytest.fixture
def s3_bucket(s3_server, s3_client):
    """Name of a new, empty bucket; it and its objects are deleted afterwards."""
    bucket = f"dnnbench-test-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=bucket)
    try:
        yield bucket
    finally:
        from botocore.exceptions import ClientError

        try:
            delete_bucket(s3_client, bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchBucket":
                raise
