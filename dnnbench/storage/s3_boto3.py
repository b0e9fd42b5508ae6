"""S3 through boto3 (botocore): AWS or any S3-compatible endpoint.

Time to first byte is the moment ``get_object`` returns: botocore has parsed the
response headers and not yet read the body. Retries come from
``ResponseMetadata.RetryAttempts``. One GET per object, no HEAD; a shard is one
GET whose body is streamed (``StreamingBody.readinto``), never read whole. Listing
records one request per ListObjectsV2 page.
"""

from __future__ import annotations

import contextlib
import io
import time
from typing import Any

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import ProfileNotFound

from dnnbench.errors import ConfigError
from dnnbench.storage.base import ObjectInfo
from dnnbench.storage.s3_botocore import botocore_error
from dnnbench.storage.s3common import MappedStream, S3Storage, fill, note_page, note_retries


_sessions: dict[tuple, Any] = {}  # module level: never pickled; created under the base class's client lock


class Boto3Storage(S3Storage):
    """S3 via boto3: AWS (region, profile, credential chain) or an S3-compatible endpoint."""

    library = "boto3"

    def library_version(self) -> str:
        return f"boto3 {boto3.__version__}, botocore {botocore.__version__}"

    def _session(self) -> Any:
        """A boto3 session per credential set, kept at module level: after a fork a loader worker
        reuses the parent's (its service models already loaded: a client in ~5 ms, not ~70 ms).
        A session holds no connection; clients, which do, are made per process."""
        s = self.settings
        key = (s.access_key, s.secret_key, s.session_token, s.region, s.profile)
        session = _sessions.get(key)
        if session is None:
            try:
                session = boto3.session.Session(
                    aws_access_key_id=s.access_key, aws_secret_access_key=s.secret_key,
                    aws_session_token=s.session_token, region_name=s.region, profile_name=s.profile)
            except ProfileNotFound:
                raise ConfigError(f"AWS profile {s.profile!r} not found in ~/.aws/config or ~/.aws/credentials",
                                  reference="storage.s3.profile", hint="fix the name or remove it") from None
            _sessions[key] = session
        return session

    def _connect(self) -> Any:
        s = self.settings
        session = self._session()
        extra: dict[str, Any] = {}
        if s.endpoint_url:  # S3-compatible servers: checksums only where the API requires them
            extra = {"request_checksum_calculation": "when_required",
                     "response_checksum_validation": "when_required"}
        config = Config(signature_version="s3v4", s3={"addressing_style": s.addressing_style},
                        retries={"mode": s.retry_mode, "total_max_attempts": s.max_attempts},
                        max_pool_connections=s.max_pool_connections, connect_timeout=s.connect_timeout_s,
                        read_timeout=s.read_timeout_s, tcp_keepalive=True, **extra)
        return session.client("s3", endpoint_url=s.endpoint_url, verify=s.verify, config=config)

    def _error(self, e: BaseException, op: str, key: str | None) -> BaseException:
        return botocore_error(e, op, key, self.settings)

    # -- primitives ---------------------------------------------------------------------
    def _get(self, key: str) -> tuple[bytes, float]:
        with self._mapped("get", key):
            resp = self.client.get_object(Bucket=self.bucket, Key=key)
            ttfb = time.perf_counter()
            data = resp["Body"].read()
        note_retries(resp["ResponseMetadata"].get("RetryAttempts", 0))
        return data, ttfb

    def _get_into(self, key: str, buffer: memoryview) -> tuple[int, float]:
        with self._mapped("get", key):
            resp = self.client.get_object(Bucket=self.bucket, Key=key)
            ttfb = time.perf_counter()
            fill(resp["Body"], buffer, key, resp["ContentLength"])  # streamed straight into the batch buffer
        note_retries(resp["ResponseMetadata"].get("RetryAttempts", 0))
        return len(buffer), ttfb

    def _open(self, key: str) -> tuple[MappedStream, float]:
        with self._mapped("get", key):
            resp = self.client.get_object(Bucket=self.bucket, Key=key)
        ttfb = time.perf_counter()
        note_retries(resp["ResponseMetadata"].get("RetryAttempts", 0))
        return MappedStream(resp["Body"], lambda e: self._error(e, "get", key)), ttfb

    def _get_range(self, key: str, start: int, length: int) -> tuple[bytes, float]:
        with self._mapped("get_range", key):
            resp = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{start + length - 1}")
            ttfb = time.perf_counter()
            data = resp["Body"].read()
        note_retries(resp["ResponseMetadata"].get("RetryAttempts", 0))
        return data, ttfb

    def _list_raw(self, prefix: str, delimiter: bool) -> tuple[list[ObjectInfo], list[str]]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = "/"
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        retries = 0
        with self._mapped("list", prefix):
            pages = iter(self.client.get_paginator("list_objects_v2").paginate(**kwargs))
            while True:
                asked = time.perf_counter()  # the paginator sends the next request when asked for a page
                page = next(pages, None)
                if page is None:
                    break
                note_page(asked, retries=page["ResponseMetadata"].get("RetryAttempts", 0))
                retries += page["ResponseMetadata"].get("RetryAttempts", 0)
                for o in page.get("Contents", ()):
                    if not o["Key"].endswith("/"):  # skip "directory" marker objects
                        objects.append(ObjectInfo(o["Key"], o["Size"]))
                prefixes.extend(p["Prefix"].rstrip("/") for p in page.get("CommonPrefixes", ()))
        note_retries(retries)
        return objects, prefixes

    def _probe(self) -> None:
        with self._mapped("check", None):
            self.client.list_objects_v2(Bucket=self.bucket, MaxKeys=1)

    def _create_bucket(self) -> None:
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        region = self.settings.region
        if self.settings.is_aws and region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        with contextlib.suppress(FileExistsError), self._mapped("create_bucket", None):
            self.client.create_bucket(**kwargs)  # BucketAlreadyOwnedByYou: FileExistsError, fine

    #: objects from this size up (checkpoints) go up as a multipart upload
    multipart_threshold = 8 * 2**20

    def _put(self, key: str, data: bytes) -> None:
        with self._mapped("put", key):
            if len(data) >= self.multipart_threshold:
                from boto3.s3.transfer import TransferConfig

                config = TransferConfig(multipart_threshold=self.multipart_threshold,
                                        multipart_chunksize=self.multipart_threshold, max_concurrency=4)
                self.client.upload_fileobj(io.BytesIO(data), self.bucket, key, Config=config)
            else:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def _delete(self, key: str) -> None:
        with self._mapped("delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=key)
