"""S3 through the MinIO Python SDK (urllib3 underneath): AWS or any S3-compatible endpoint.

Time to first byte is the moment ``get_object`` returns: the SDK asks urllib3 not
to preload the body, so the headers have arrived and the body is unread. Retries
are urllib3's (``Retry(total=max_attempts - 1)`` on connection errors and 5xx),
counted from the response's retry history. One GET per object, no HEAD; a shard
is one GET whose body is streamed (``preload_content=False``), never read whole.
Listing records one request per ListObjectsV2 page. The region is always passed
for custom endpoints, so the SDK sends no GetBucketLocation first (on AWS without
a region it sends one per process).
"""

from __future__ import annotations

import contextlib
import io
import time
from typing import Any, Iterator
from urllib.parse import urlparse

import certifi
import minio
import urllib3
from minio import Minio
from minio.credentials import (AWSConfigProvider, ChainedProvider, EnvAWSProvider, EnvMinioProvider,
                               IamAwsProvider)
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

from dnnbench.errors import ConfigError, StorageError
from dnnbench.storage.base import ObjectInfo
from dnnbench.storage.s3common import (MappedStream, S3Storage, fill, foreign, note_page, note_retries, s3_error,
                                       tls_error, unreachable)


class _PagedMinio(Minio):
    """The SDK's client, noting each ListObjectsV2 request it sends: ``list_objects`` follows
    continuation tokens inside one generator, so pages are seen where the HTTP request is made."""

    def _url_open(self, method: str, region: str, *args: Any, **kwargs: Any) -> Any:
        asked = time.perf_counter()
        resp = super()._url_open(method, region, *args, **kwargs)
        if method == "GET" and "list-type" in (kwargs.get("query_params") or {}):
            retries = getattr(resp, "retries", None)
            note_page(asked, retries=len(retries.history) if retries is not None else 0)
        return resp


class MinioStorage(S3Storage):
    """S3 via the MinIO SDK: AWS or an S3-compatible endpoint (MinIO, DSS, Ceph, Swift s3api)."""

    library = "minio"

    def library_version(self) -> str:
        return f"minio {minio.__version__}, urllib3 {urllib3.__version__}"

    def _connect(self) -> Any:
        s = self.settings
        if s.endpoint_url:
            url = urlparse(s.endpoint_url)
            if url.path not in ("", "/"):
                raise ConfigError(f"the MinIO SDK takes no path in the endpoint URL ({url.path!r})",
                                  reference="storage.s3.endpoint_url", hint="use scheme://host:port only")
            host, secure = url.netloc, url.scheme == "https"
        else:
            host, secure = "s3.amazonaws.com", True
        if not s.verify_tls:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=s.connect_timeout_s, read=s.read_timeout_s),
            maxsize=s.max_pool_connections, cert_reqs="CERT_REQUIRED" if s.verify_tls else "CERT_NONE",
            ca_certs=s.ca_bundle or certifi.where(),
            retries=urllib3.Retry(total=s.max_attempts - 1, backoff_factor=0.2,
                                  status_forcelist=[500, 502, 503, 504]))
        credentials = None
        if not s.access_key:
            providers = [AWSConfigProvider(profile=s.profile)] if s.profile else [
                EnvAWSProvider(), EnvMinioProvider(), AWSConfigProvider(), IamAwsProvider()]
            credentials = ChainedProvider(providers)
        client = _PagedMinio(host, access_key=s.access_key, secret_key=s.secret_key, session_token=s.session_token,
                       secure=secure, region=s.region, http_client=http, credentials=credentials,
                       cert_check=s.verify_tls)
        if s.addressing_style == "path":
            client.disable_virtual_style_endpoint()
        else:
            client.enable_virtual_style_endpoint()
        return client

    # -- error mapping ----------------------------------------------------------------
    def _error(self, e: BaseException, op: str, key: str | None) -> BaseException:
        if isinstance(e, S3Error):
            status = getattr(e.response, "status", None)
            return s3_error(e.code, status, e.message, op=op, key=key, settings=self.settings)
        if isinstance(e, ServerError):
            return s3_error(None, e.status_code, str(e), op=op, key=key, settings=self.settings)
        if isinstance(e, InvalidResponseError):
            return StorageError(f"S3 {op} {key!r}: {e}", reference=self.settings.where)
        if isinstance(e, urllib3.exceptions.MaxRetryError):
            reason = e.reason
            if isinstance(reason, urllib3.exceptions.SSLError):
                return tls_error(self.settings, str(reason))
            if isinstance(reason, urllib3.exceptions.ResponseError):  # 5xx after every retry
                return s3_error(None, 503, str(reason), op=op, key=key, settings=self.settings)
            return unreachable(self.settings, f"{type(reason).__name__}: {reason}")
        if isinstance(e, urllib3.exceptions.ReadTimeoutError):
            return TimeoutError(f"S3 {op} {key!r}: no data for {self.settings.read_timeout_s} s")
        if isinstance(e, (urllib3.exceptions.HTTPError, MinioException)):
            return ConnectionError(f"S3 {op} {key!r}: {type(e).__name__}: {e}")
        if isinstance(e, ValueError) and "credentials" in str(e).lower():
            return s3_error("NoCredentials", None, str(e), op=op, key=key, settings=self.settings)
        return foreign(e, op, key)

    @staticmethod
    def _retries_of(resp: Any) -> int:
        retries = getattr(resp, "retries", None)
        return len(retries.history) if retries is not None else 0

    @contextlib.contextmanager
    def _response(self, key: str, **kwargs: Any) -> Iterator[Any]:
        """A GetObject response whose connection goes back to the pool when the block ends."""
        resp = self.client.get_object(self.bucket, key, **kwargs)
        try:
            yield resp
        finally:
            resp.close()
            resp.release_conn()

    # -- primitives ---------------------------------------------------------------------
    def _get(self, key: str) -> tuple[bytes, float]:
        with self._mapped("get", key), self._response(key) as resp:
            ttfb = time.perf_counter()
            data = resp.read()
        note_retries(self._retries_of(resp))
        return data, ttfb

    def _get_into(self, key: str, buffer: memoryview) -> tuple[int, float]:
        with self._mapped("get", key), self._response(key) as resp:
            ttfb = time.perf_counter()
            fill(resp, buffer, key, int(resp.headers.get("content-length", -1)))
        note_retries(self._retries_of(resp))
        return len(buffer), ttfb

    def _open(self, key: str) -> tuple[MappedStream, float]:
        with self._mapped("get", key):
            resp = self.client.get_object(self.bucket, key)
        ttfb = time.perf_counter()
        note_retries(self._retries_of(resp))

        def release() -> None:
            resp.close()
            resp.release_conn()

        return MappedStream(resp, lambda e: self._error(e, "get", key), release), ttfb

    def _get_range(self, key: str, start: int, length: int) -> tuple[bytes, float]:
        with self._mapped("get_range", key), self._response(key, offset=start, length=length) as resp:
            ttfb = time.perf_counter()
            data = resp.read()
        return data, ttfb

    def _list_raw(self, prefix: str, delimiter: bool) -> tuple[list[ObjectInfo], list[str]]:
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        with self._mapped("list", prefix):  # ListObjectsV2, every page (the SDK follows continuation tokens)
            for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=not delimiter):
                if o.is_dir:
                    prefixes.append(o.object_name.rstrip("/"))
                elif not o.object_name.endswith("/"):
                    objects.append(ObjectInfo(o.object_name, o.size))
        return objects, prefixes

    def _probe(self) -> None:
        with self._mapped("check", None):
            next(iter(self.client.list_objects(self.bucket)), None)

    def _create_bucket(self) -> None:
        s = self.settings
        location = s.region if s.is_aws and s.region and s.region != "us-east-1" else None
        with contextlib.suppress(FileExistsError), self._mapped("create_bucket", None):
            self.client.make_bucket(self.bucket, location=location)  # BucketAlreadyOwnedByYou: fine

    def _put(self, key: str, data: bytes) -> None:
        with self._mapped("put", key):
            self.client.put_object(self.bucket, key, io.BytesIO(data), len(data))

    def _delete(self, key: str) -> None:
        with self._mapped("delete", key):
            self.client.remove_object(self.bucket, key)
