"""S3 through AWS's s3torchconnector (Mountpoint's Rust client on the AWS CRT).

The CRT client takes credentials from the environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``), a profile, or the instance
role; keys configured inline in ``storage.s3`` are therefore exported into this
process's environment when its client is built. S3-compatible endpoints need
path-style addressing (``force_path_style``), which ``addressing_style: path``
(the default with ``endpoint_url``) sets.

Time to first byte is when the first body part arrives from the stream. The CRT
chooses its own requests (one ranged GET per object below its 8 MiB part size)
and retries, which Python cannot see: one request per read is recorded and
``retries`` stays 0; listing records one request per ListObjectsV2 page (the list
stream yields one result per page). A shard is streamed from the CRT's
GetObjectStream one body part at a time. (The CRT fetches parts ahead of the
reader into its own native buffers, outside Python's control.) Timeouts, pool size
and TLS options are the CRT's own.
"""

from __future__ import annotations

import io
import os
import re
import time
from typing import Any, Iterator

import s3torchconnector
from s3torchconnector import S3ClientConfig
from s3torchconnector._s3client import S3Client
from s3torchconnector._user_agent import UserAgent
from s3torchconnectorclient._mountpoint_s3_client import S3Exception

from dnnbench.errors import ConfigError, StorageError
from dnnbench.storage.base import ObjectInfo, SizeMismatch
from dnnbench.storage.s3common import ChunkStream, S3Storage, foreign, note_page, s3_error, unreachable

_MESSAGES = [  # CRT / Mountpoint error text -> S3 error code
    (re.compile(r"key does not exist|NoSuchKey", re.I), "NoSuchKey"),
    (re.compile(r"bucket does not exist|NoSuchBucket", re.I), "NoSuchBucket"),
    (re.compile(r"signature|InvalidAccessKeyId|does not exist in our records|security token", re.I),
     "SignatureDoesNotMatch"),
    (re.compile(r"no signing credentials|credentials provider|NoCredentials", re.I), "NoCredentials"),
    (re.compile(r"Forbidden|Access Denied|AccessDenied", re.I), "AccessDenied"),
    (re.compile(r"PermanentRedirect|wrong region|incorrect region", re.I), "PermanentRedirect"),
    (re.compile(r"SlowDown|Throttl", re.I), "SlowDown"),
]
_UNREACHABLE = re.compile(r"SOCKET|CONNECTION_REFUSED|DNS|HOST|TIMEOUT|aws-c-io|connect", re.I)
#: the answer to the CRT's first ranged GET of a whole object when that object is empty (Swift, AWS)
_EMPTY = re.compile(r"InvalidRange|response_status: 416")


class S3TorchConnectorStorage(S3Storage):
    """S3 via s3torchconnector's CRT client (credentials from the environment, path-style for endpoints)."""

    library = "s3torchconnector"
    ttfb_how = "when the first body part arrives from the CRT's stream"
    request_counting = ("the CRT chooses and retries its requests out of Python's sight: one request per read "
                        "is recorded (one ranged GET for objects under its 8 MiB part size), retries are 0")

    def __init__(self, config: Any, recorder: Any = None, options: Any = None):
        super().__init__(config, recorder, options)
        s = self.settings
        if not s.verify_tls or s.ca_bundle:
            raise ConfigError("s3torchconnector verifies TLS with the system trust store only",
                              reference="storage.s3.verify_tls" if not s.verify_tls else "storage.s3.ca_bundle",
                              hint="install the CA in the system store, or use client boto3, minio or s3fs")

    def library_version(self) -> str:
        return f"s3torchconnector {s3torchconnector.__version__}"

    def _connect(self) -> Any:
        s = self.settings
        if s.access_key:  # the CRT reads credentials from the environment only
            os.environ["AWS_ACCESS_KEY_ID"] = s.access_key
            os.environ["AWS_SECRET_ACCESS_KEY"] = s.secret_key or ""
            if s.session_token:
                os.environ["AWS_SESSION_TOKEN"] = s.session_token
            else:
                os.environ.pop("AWS_SESSION_TOKEN", None)
        config = S3ClientConfig(force_path_style=s.addressing_style == "path", max_attempts=s.max_attempts,
                                profile=s.profile)
        return S3Client(s.region or "us-east-1", endpoint=s.endpoint_url, user_agent=UserAgent(["dnnbench"]),
                        s3client_config=config)

    def _error(self, e: BaseException, op: str, key: str | None) -> BaseException:
        if isinstance(e, S3Exception):
            text = str(e)
            for pattern, code in _MESSAGES:
                if pattern.search(text):
                    return s3_error(code, None, text, op=op, key=key, settings=self.settings)
            if _UNREACHABLE.search(text):
                return unreachable(self.settings, text)
            return StorageError(f"S3 {op} {key!r} failed: {text}", reference=self.settings.where)
        return foreign(e, op, key)

    def _whole(self, key: str) -> Iterator[bytes]:
        """The body parts of a whole object. The CRT reads an object with ranged GETs of its part
        size; a server refuses a range of an empty object (416 InvalidRange), and the CRT passes
        that on: such an object has no parts."""
        try:
            stream = iter(self.client._get_object_stream(self.bucket, key))
            first = next(stream, None)
        except S3Exception as e:
            if _EMPTY.search(str(e)):
                return
            raise
        if first is not None:
            yield first
            del first  # the part is the reader's now: this frame holds none while the rest streams
            yield from stream

    # -- primitives ---------------------------------------------------------------------
    def _get(self, key: str) -> tuple[bytes, float | None]:
        with self._mapped("get", key):
            stream = self._whole(key)
            first = next(stream, b"")
            ttfb = time.perf_counter()
            second = next(stream, None)
            if second is None:  # one part: the chunk is the object, no copy
                return first, ttfb
            buf = io.BytesIO()  # grows in place; getvalue() hands its buffer over without a copy
            buf.write(first)
            buf.write(second)
            del first, second
            for chunk in stream:
                buf.write(chunk)
        return buf.getvalue(), ttfb

    def _open(self, key: str) -> tuple[ChunkStream, float]:
        """One GET streamed chunk by chunk. (s3torchconnector's own ``S3Reader`` keeps every byte
        read in a BytesIO so it can seek: a whole shard in memory; its GetObjectStream does not.)"""
        with self._mapped("get", key):
            stream = self._whole(key)
            first = next(stream, b"")  # the request's errors surface here, as for the other clients
        return ChunkStream(stream, lambda e: self._error(e, "get", key), first), time.perf_counter()

    def _get_into(self, key: str, buffer: memoryview) -> tuple[int, float | None]:
        size = len(buffer)
        done = 0
        ttfb = None
        with self._mapped("get", key):
            for chunk in self._whole(key):
                if ttfb is None:
                    ttfb = time.perf_counter()
                n = len(chunk)
                if done + n > size:
                    raise SizeMismatch(key, size, done + n)
                buffer[done:done + n] = chunk
                done += n
        if done != size:
            raise SizeMismatch(key, size, done)
        return size, ttfb

    def _get_range(self, key: str, start: int, length: int) -> tuple[bytes, float | None]:
        chunks = []
        ttfb = None
        with self._mapped("get_range", key):
            for chunk in self.client._get_object_stream(self.bucket, key, start, start + length):
                ttfb = ttfb or time.perf_counter()
                chunks.append(chunk)
        return b"".join(chunks), ttfb

    def _list_raw(self, prefix: str, delimiter: bool) -> tuple[list[ObjectInfo], list[str]]:
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        with self._mapped("list", prefix):  # ListObjectsV2: the stream yields one result per page
            pages = iter(self.client.list_objects(self.bucket, prefix, "/" if delimiter else "", 1000))
            while True:
                asked = time.perf_counter()
                page = next(pages, None)
                if page is None:
                    break
                note_page(asked)  # the CRT's retries are out of sight: 0
                objects.extend(ObjectInfo(o.key, o.size) for o in page.object_info if not o.key.endswith("/"))
                prefixes.extend(p.rstrip("/") for p in page.common_prefixes)
        return objects, prefixes

    def _probe(self) -> None:
        with self._mapped("check", None):
            next(iter(self.client.list_objects(self.bucket, "", "/", 1)), None)

    def _create_bucket(self) -> None:
        raise StorageError(f"s3torchconnector cannot create buckets; bucket {self.bucket!r} is missing",
                           reference="storage.create_bucket",
                           hint="create it with another client: `python3 benchmark.py prepare --config FILE "
                                "--set storage.client=boto3 --set storage.create_bucket=true`")

    def _put(self, key: str, data: bytes) -> None:
        with self._mapped("put", key):
            writer = self.client.put_object(self.bucket, key)
            writer.write(data)
            writer.close()

    def _delete(self, key: str) -> None:
        with self._mapped("delete", key):
            self.client.delete_object(self.bucket, key)
