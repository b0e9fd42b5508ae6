"""What every S3 client shares: settings from ``storage.s3``, error mapping, and
the :class:`S3Storage` base that the per-library modules (``s3_boto3``,
``s3_minio``, ``s3_s3fs``, ``s3_torchconnector``) build on.

This module imports no client library. A client module says once how its library's
failures map (its ``_error``: a neutral ``(code, status, message)`` to :func:`s3_error`,
anything else to :func:`foreign`) and runs every request inside
:meth:`S3Storage._mapped`, so callers only ever see builtin exceptions (``FileNotFoundError`` for a missing
key or an empty prefix) or :class:`~dnnbench.errors.BenchError` subclasses with a
reference and a hint. Credentials live in :class:`S3Settings` only; ``describe``,
``label`` and every message leave them out.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator
from urllib.parse import urlparse

from dnnbench.errors import EXIT_BAD_INPUT, BenchError, ConfigError, DataError, StorageError
from dnnbench.recording.requests import get_recorder
from dnnbench.storage.base import ObjectInfo, SizeMismatch, Storage, _short
from dnnbench.storage.keys import list_prefix

_client_lock = threading.Lock()
_tls = threading.local()  # per-thread facts about the last request (module level: never pickled)
_orphans: list[Any] = []  # clients a forked child inherited: kept alive, unused (loader workers end by os._exit)


class S3AccessError(StorageError):
    """The endpoint answered but refused us: bad credentials, no permission, TLS or region
    mismatch. Bad input, so exit code 2."""

    exit_code = EXIT_BAD_INPUT


class S3Unreachable(StorageError):
    """No answer from the endpoint (refused, DNS, timeout) after the configured attempts."""


class S3BucketMissing(DataError):
    """The bucket does not exist (exit code 2)."""


@dataclass(frozen=True)
class S3Settings:
    """Resolved ``storage.s3`` (picklable, no live objects)."""

    bucket: str
    endpoint_url: str | None
    region: str | None
    profile: str | None
    access_key: str | None = field(repr=False)
    secret_key: str | None = field(repr=False)
    session_token: str | None = field(repr=False)
    addressing_style: str  # path | virtual
    verify_tls: bool
    ca_bundle: str | None
    max_pool_connections: int
    connect_timeout_s: float
    read_timeout_s: float
    retry_mode: str
    max_attempts: int

    @property
    def is_aws(self) -> bool:
        return self.endpoint_url is None

    @property
    def where(self) -> str:
        """The endpoint for messages: URL, or AWS and the region."""
        return self.endpoint_url or f"AWS S3 ({self.region or 'region from the AWS config'})"

    @property
    def verify(self) -> bool | str:
        """botocore's ``verify``: False, True, or a CA bundle path."""
        return self.ca_bundle or self.verify_tls

    def credential_source(self) -> str:
        if self.access_key:
            return "storage.s3.access_key/secret_key (values redacted)"
        if self.profile:
            return f"AWS profile {self.profile!r}"
        return "AWS credential chain (environment, ~/.aws, instance role)"


def settings_from(config: Any) -> S3Settings:
    """Resolve ``config.s3`` into :class:`S3Settings`.

    Raises:
        ConfigError: no ``storage.s3`` section, or the CA bundle file is missing.
    """
    s3 = getattr(config, "s3", None)
    if s3 is None:
        raise ConfigError(f"client {config.client!r} reads S3 and needs storage.s3 (at least bucket)",
                          reference="storage.s3", hint="see config/s3-local.yaml for an example")
    if s3.ca_bundle and not os.path.isfile(os.path.expanduser(s3.ca_bundle)):
        raise ConfigError(f"CA bundle {s3.ca_bundle} not found", reference="storage.s3.ca_bundle",
                          hint="give the path of a PEM file with the CA certificates of your endpoint")
    style = s3.addressing_style or "auto"
    if style == "auto":
        style = "path" if s3.endpoint_url else "virtual"
    region = s3.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region is None and s3.endpoint_url:
        region = "us-east-1"  # what S3-compatible servers sign with unless configured otherwise
    return S3Settings(
        bucket=s3.bucket, endpoint_url=s3.endpoint_url, region=region, profile=s3.profile,
        access_key=s3.access_key, secret_key=s3.secret_key, session_token=s3.session_token,
        addressing_style=style, verify_tls=s3.verify_tls,
        ca_bundle=os.path.expanduser(s3.ca_bundle) if s3.ca_bundle else None,
        max_pool_connections=s3.max_pool_connections, connect_timeout_s=s3.connect_timeout_s,
        read_timeout_s=s3.read_timeout_s, retry_mode=s3.retry_mode, max_attempts=s3.max_attempts)


# -- error mapping ------------------------------------------------------------
_CREDENTIAL_CODES = {"SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidClientTokenId", "ExpiredToken",
                     "InvalidToken", "TokenRefreshRequired", "MissingSecurityHeader", "AuthFailure",
                     "NoCredentials"}
_DENIED_CODES = {"AccessDenied", "AllAccessDisabled", "Forbidden", "AccountProblem"}
_REGION_CODES = {"AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException",
                 "AuthorizationQueryParametersError"}
CREDENTIALS_HINT = ("check the keys: storage.s3.access_key/secret_key (or the ${ENV} variables they name), "
                    "or, when they are absent, the AWS credential chain (AWS_ACCESS_KEY_ID / "
                    "AWS_SECRET_ACCESS_KEY, ~/.aws/credentials, storage.s3.profile)")


def s3_error(code: str | None, status: int | None, message: str | None, *, op: str, key: str | None,
             settings: S3Settings) -> BaseException:
    """The exception to raise for an S3 error response (never a library type).

    Args:
        code: S3 error code (``NoSuchKey``...), or None when the response had no body.
        status: HTTP status.
        message: the server's message (credentials never appear in it).
        op: what we were doing: get, list, put, delete, check, create_bucket.
        key: object key or prefix concerned.
    """
    b = settings.bucket
    detail = f"{code or 'HTTP ' + str(status)}" + (f": {message}" if message else "")
    if code == "NoSuchKey" or (status == 404 and op in ("get", "get_range", "head", "delete") and
                               code != "NoSuchBucket"):
        return FileNotFoundError(f"s3://{b}/{key}" if key else f"s3://{b}")
    if code == "NoSuchBucket" or (status == 404 and op in ("check", "list")):
        return S3BucketMissing(f"bucket {b!r} does not exist at {settings.where}", reference="storage.s3.bucket",
                         hint="check the bucket name and endpoint, or create it with `python3 benchmark.py "
                              "prepare --config FILE --set storage.create_bucket=true`")
    if code == "BucketAlreadyOwnedByYou":
        return FileExistsError(f"s3://{b}")
    if code == "BucketAlreadyExists":
        return S3AccessError(f"bucket name {b!r} is taken by another account", reference="storage.s3.bucket",
                             hint="bucket names are global on AWS: choose another name")
    if code == "InvalidBucketName":
        return DataError(f"invalid bucket name {b!r} ({detail})", reference="storage.s3.bucket",
                         hint="S3 bucket names are 3-63 lowercase letters, digits, dots and hyphens")
    if code in _CREDENTIAL_CODES:
        return S3AccessError(f"{settings.where} rejected the credentials ({detail})",
                             reference="storage.s3.access_key/secret_key", hint=CREDENTIALS_HINT)
    if code in _REGION_CODES or status == 301:
        return S3AccessError(f"bucket {b!r} is in another region than {settings.region!r} ({detail})",
                             reference="storage.s3.region", hint="set storage.s3.region to the bucket's region")
    if code in _DENIED_CODES or status == 403:
        what = {"put": "write to", "create_bucket": "create", "delete": "delete from"}.get(op, "read")
        return S3AccessError(f"access denied: these credentials may not {what} bucket {b!r} at "
                             f"{settings.where} ({detail})", reference="storage.s3.bucket",
                             hint="use credentials with s3:ListBucket and s3:GetObject on the bucket "
                                  "(s3:PutObject and s3:CreateBucket for prepare), or grant them")
    if code in ("SlowDown", "ServiceUnavailable", "RequestLimitExceeded") or status in (429, 503):
        return StorageError(f"{settings.where} is throttling ({detail}) after {settings.max_attempts} "
                            f"attempt(s)", reference="storage.s3",
                            hint="lower the concurrency (num_workers) or raise storage.s3.max_attempts")
    where = f" {key!r}" if key else ""
    return StorageError(f"S3 {op}{where} in bucket {b!r} failed: {detail}", reference=settings.where,
                        hint=f"the server's answer after {settings.max_attempts} attempt(s); see its logs, "
                             "or raise storage.s3.max_attempts for transient errors")


def unreachable(settings: S3Settings, detail: str) -> S3Unreachable:
    what = settings.endpoint_url or "AWS S3"
    return S3Unreachable(f"cannot connect to {what}: {detail}", reference="storage.s3.endpoint_url",
                         hint="is the server running and the URL right (scheme, host, port)? "
                              "`scripts/s3-server.sh start` starts the local test server"
                         if settings.endpoint_url else "check the network, proxy and region settings")


def tls_error(settings: S3Settings, detail: str) -> S3AccessError:
    return S3AccessError(f"TLS handshake with {settings.where} failed: {detail}", reference="storage.s3.ca_bundle",
                         hint="set storage.s3.ca_bundle to the PEM file of your endpoint's CA, or "
                              "verify_tls: false for a test server with a self-signed certificate")


def foreign(e: BaseException, op: str, key: str | None) -> BaseException:
    """Builtin and dnnbench exceptions (``SizeMismatch`` too) pass; a library's own type becomes a
    ConnectionError."""
    if type(e).__module__ == "builtins" or isinstance(e, BenchError) or type(e).__module__.startswith("dnnbench."):
        return e
    return ConnectionError(f"S3 {op} {key!r}: {type(e).__name__}: {e}")


def note_retries(n: int) -> None:
    """Remember how many retries this thread's last request needed (see :meth:`S3Storage._retries`)."""
    _tls.retries = n


def note_page(start: float, end: float | None = None, retries: int = 0) -> None:
    """Note one listing request (a ListObjectsV2 page) of the calling thread's current
    ``_list`` call: asked for at ``start``, answered at ``end`` (default: now). Each noted
    page becomes its own "list" row in requests.csv. Outside ``_list`` (``exists``, the
    probe) nothing is noted."""
    pages = getattr(_tls, "pages", None)
    if pages is not None:
        pages.append((start, time.perf_counter() if end is None else end, retries))


def fill(body: Any, buffer: memoryview, key: str, size: int) -> None:
    """Read a response ``body`` of ``size`` bytes straight into ``buffer`` (the object's place in
    a batch buffer, as large as listing said).

    Raises:
        SizeMismatch: the object's size is not the listed one (the body is closed unread), or
            the body ended early.
    """
    if size != len(buffer):
        body.close()
        raise SizeMismatch(key, len(buffer), size)
    done = 0
    while done < size:
        n = body.readinto(buffer[done:])
        if not n:
            raise SizeMismatch(key, size, done)
        done += n


class MappedStream(io.RawIOBase):
    """A client library's response body as a plain stream (for ``Storage._open``): its
    failures surface as dnnbench / builtin exceptions, like every other request's."""

    def __init__(self, body: Any, on_error: Any, release: Any = None):
        super().__init__()
        self._body, self._on_error, self._release = body, on_error, release

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            return self._body.readinto(buffer) or 0
        except Exception as e:  # noqa: BLE001 - mapped like any request failure
            raise self._on_error(e) from None

    def close(self) -> None:
        if not self.closed:
            try:
                (self._release or self._body.close)()
            finally:
                super().close()


class ChunkStream(io.RawIOBase):
    """An iterator of byte chunks (a client's response body) as a readable stream that
    holds one chunk at a time: memory is bounded by the chunk size, never the object.

    Args:
        chunks: yields the body's chunks in order; exhausted at the end of the object.
        on_error: maps a failure of ``next(chunks)`` to the exception to raise.
        first: a chunk already taken from ``chunks`` (to learn the first-byte time).
        release: called once on close (give the connection back).
    """

    def __init__(self, chunks: Iterator[bytes], on_error: Callable[[BaseException], BaseException],
                 first: bytes = b"", release: Callable[[], Any] | None = None):
        super().__init__()
        self._chunks: Iterator[bytes] | None = chunks
        self._on_error, self._release = on_error, release
        self._view, self._pos = memoryview(first), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self._pos >= len(self._view):
            if self._chunks is None:
                return 0
            self._view = memoryview(b"")  # let the spent chunk go before the next one arrives
            try:
                chunk = next(self._chunks, None)
            except Exception as e:  # noqa: BLE001 - mapped like any request failure
                self._chunks = None
                raise self._on_error(e) from None
            if chunk is None:
                self._chunks, self._view, self._pos = None, memoryview(b""), 0
                return 0
            self._view, self._pos = memoryview(chunk), 0
        n = min(len(buffer), len(self._view) - self._pos)
        buffer[:n] = self._view[self._pos:self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        if not self.closed:
            self._chunks, self._view = None, memoryview(b"")
            try:
                if self._release is not None:
                    self._release()
            finally:
                super().close()


# -- the shared backend ---------------------------------------------------------------
class S3Storage(Storage):
    """Base of the S3 clients. Subclasses set ``library`` and implement
    ``_connect``, ``_list_raw``, ``_probe``, ``_create_bucket``, ``_get``, ``_put``, ``_delete``."""

    library = "?"  # the Python package that does the work (for describe())
    ttfb_supported = True
    ttfb_reason = "no successful GET with a first-byte time was recorded"  # shown only when none was
    #: how this client's time to first byte is taken (environment.json)
    ttfb_how = "when the response headers have arrived, before the body is read"
    #: how honestly this client's requests are counted (environment.json)
    request_counting = "one GET per object; retries from the client's retry counter"

    def __init__(self, config: Any, recorder: Any = None, options: Any = None):
        super().__init__(config, recorder, options)
        self.settings = settings_from(config)
        self.bucket = self.settings.bucket

    @property
    def client(self) -> Any:
        """This process's client, created once even when several threads ask at the same time."""
        pid = os.getpid()
        if self._client is None or self._pid != pid:
            with _client_lock:
                if self._client is None or self._pid != pid:
                    if self._client is not None:  # inherited through fork: the parent's, never ours to
                        _orphans.append(self._client)  # use or to finalize (closing it here breaks the parent)
                    self._client = self._connect()
                    self._pid = pid
        return self._client

    # -- primitives of the client modules ------------------------------------------
    def _list_raw(self, prefix: str, delimiter: bool) -> tuple[list[ObjectInfo], list[str]]:
        """Every page of ListObjectsV2 under ``prefix`` (ends with '/' or is '');
        returns objects and common prefixes without their trailing '/'."""
        raise NotImplementedError

    def _probe(self) -> None:
        """One cheap authenticated request on the bucket (ListObjectsV2, max 1 key)."""
        raise NotImplementedError

    def _create_bucket(self) -> None:
        raise NotImplementedError

    def _retries(self) -> int:
        return getattr(_tls, "retries", 0)

    # -- error mapping: the one place ---------------------------------------------------
    def _error(self, e: BaseException, op: str, key: str | None) -> BaseException:
        """The builtin / dnnbench exception for this client library's failure ``e`` (a client
        module overrides it with its library's types, ending in :func:`foreign`)."""
        return foreign(e, op, key)

    @contextlib.contextmanager
    def _mapped(self, op: str, key: str | None, retries: Callable[[], int] | None = None) -> Iterator[None]:
        """Run one request: this thread's retry count starts at 0, and whatever the block raises
        leaves as :meth:`_error` maps it (``retries``: how many the failed request needed)."""
        note_retries(0)
        try:
            yield
        except Exception as e:  # noqa: BLE001 - mapped to builtin / BenchError types
            if retries is not None:
                note_retries(retries())
            raise self._error(e, op, key) from None

    # -- Storage interface -----------------------------------------------------------------
    def _list(self, prefix: str, delimiter: bool) -> tuple[list[ObjectInfo], list[str]]:
        _tls.pages, _tls.listed = [], False  # the client modules' _list_raw note each page (note_page)
        try:
            objects, prefixes = self._list_raw(f"{prefix}/" if prefix else "", delimiter)
        finally:
            _tls.last_pages, _tls.pages = _tls.pages, None
        _tls.listed = True
        if not objects and not prefixes:
            raise FileNotFoundError(f"s3://{self.bucket}/{prefix}" if prefix else f"s3://{self.bucket} (empty)")
        return objects, prefixes

    def list(self, prefix: str = "", delimiter: bool = False) -> tuple[list[ObjectInfo], list[str]]:
        """List ``prefix``, recording one "list" row per ListObjectsV2 page actually requested
        (a 1,005-object prefix is two requests), not one per call; a failed page is a failed row."""
        prefix = list_prefix(prefix)
        rec = get_recorder(self.recorder_spec)
        _tls.last_pages, _tls.listed = [], False
        start = time.perf_counter()
        try:
            result = self._list(prefix, delimiter)
        except Exception as e:
            self._record_pages(rec, prefix, start, e)
            raise
        self._record_pages(rec, prefix, start, None)
        return result

    def _record_pages(self, rec: Any, prefix: str, start: float, error: BaseException | None) -> None:
        rows = [[s, e, r, None] for s, e, r in getattr(_tls, "last_pages", None) or ()]
        if error is not None:
            if getattr(_tls, "listed", False) and rows:  # every page came back, the prefix is empty
                rows[-1][3] = _short(error)
            else:  # the request after the last good page failed
                rows.append([rows[-1][1] if rows else start, time.perf_counter(), self._retries(), _short(error)])
        elif not rows:
            rows.append([start, time.perf_counter(), self._retries(), None])
        if rec is not None:
            for s, e, r, err in rows:
                rec.add("list", prefix, s, None, e, 0, error=err, retries=r)

    def list_requests(self) -> int:
        """ListObjectsV2 requests (pages) the calling thread's last listing of a prefix sent."""
        return max(1, len(getattr(_tls, "last_pages", None) or ()))

    def exists(self, prefix: str = "") -> bool:
        """True when anything is stored under ``prefix`` (False when the bucket is missing)."""
        try:
            objects, prefixes = self._list_raw(f"{prefix}/" if prefix else "", True)
        except S3BucketMissing:
            return False
        return bool(objects or prefixes)

    def check(self) -> None:
        """The bucket exists and the credentials may list it.

        Raises:
            DataError: no such bucket.
            S3AccessError: credentials rejected, access denied, TLS or region problem.
            S3Unreachable: no answer from the endpoint.
        """
        self._probe()

    def ensure_bucket(self) -> bool:
        """Create the bucket when it is missing; True when it was created."""
        try:
            self._probe()
            return False
        except S3BucketMissing:
            pass
        self._create_bucket()
        return True

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {
            "client": self.client_name(), "library": self.library, "library_version": self.library_version(),
            "endpoint": s.endpoint_url or "AWS", "region": s.region, "bucket": s.bucket,
            "addressing_style": s.addressing_style, "verify_tls": s.verify_tls, "ca_bundle": s.ca_bundle,
            "auth": s.credential_source(), "max_pool_connections": s.max_pool_connections,
            "connect_timeout_s": s.connect_timeout_s, "read_timeout_s": s.read_timeout_s,
            "retry_mode": s.retry_mode, "max_attempts": s.max_attempts,
            "ttfb": self.ttfb_how,
            "request_counting": self.request_counting,
        }

    def client_name(self) -> str:
        return self.config.client

    def library_version(self) -> str:
        return "?"

    def label(self) -> str:
        if self.config.name:
            return self.config.name
        host = urlparse(self.settings.endpoint_url).netloc if self.settings.endpoint_url else "aws"
        return f"s3://{self.bucket}@{host}"
