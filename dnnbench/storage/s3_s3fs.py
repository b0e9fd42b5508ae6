"""S3 through s3fs (fsspec on aiobotocore).

Reads whole objects with ``cat_file`` and ``max_concurrency=1``: one GET per
object. (``open()`` sends a HEAD before the GET, and ``cat_file`` with the
default concurrency sends a HEAD to learn the size, doubling the server's work.)
A shard is streamed: one GetObject through s3fs's ``_call_s3`` (what its own
``open_async`` streamed file does, without the HEAD of ``open()`` or the ranged
GET per block of its buffered file), the body read a chunk at a time.
Listing records one request per ListObjectsV2 page, timed by the
``before-call`` / ``after-call`` events of each page's API call.

Every HTTP request aiobotocore sends is counted by event hooks on the session
(``before-send.s3`` per attempt, ``response-received.s3.GetObject`` for the
first-byte time), attributed to the call that caused it through a context
variable: retries go into the request row, and any request other than the GET
(a HEAD, say) is recorded as its own row, so requests.csv shows what the
library really did. s3fs's own retry loop is set to one attempt: retries are
botocore's, as configured in ``storage.s3``.
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass, field
from typing import Any

import aiobotocore
import aiobotocore.session
import fsspec
import s3fs
from fsspec.asyn import sync

from dnnbench.recording.requests import get_recorder
from dnnbench.storage.base import ObjectInfo
from dnnbench.storage.s3_botocore import botocore_error
from dnnbench.storage.s3common import ChunkStream, S3Storage, note_page, note_retries

_CHUNK = 1 << 20  # most bytes one read of a streamed body asks for (aiohttp returns what it has)


@dataclass
class _Tally:
    """The HTTP requests of one dnnbench call: ``sends`` [operation, sent at, response at], one
    per attempt; ``calls`` [operation, started, ended, retries, ok], one per API call (a page)."""

    sends: list[list[Any]] = field(default_factory=list)
    calls: list[list[Any]] = field(default_factory=list)

    def count(self, op: str) -> int:
        return sum(1 for s in self.sends if s[0] == op)

    def last_response(self, op: str) -> float | None:
        times = [s[2] for s in self.sends if s[0] == op and s[2] is not None]
        return times[-1] if times else None


_sessions: dict[str | None, Any] = {}  # per profile; a session holds no connection, clients are per process
_current: contextvars.ContextVar[_Tally | None] = contextvars.ContextVar("dnnbench_s3fs_tally", default=None)


def _on_send(event_name: str, **_: Any) -> None:
    tally = _current.get()
    if tally is not None:
        tally.sends.append([event_name.rsplit(".", 1)[-1], time.perf_counter(), None])


def _on_response(event_name: str, **_: Any) -> None:
    tally = _current.get()
    if tally is not None:
        op = event_name.rsplit(".", 1)[-1]
        for s in reversed(tally.sends):
            if s[0] == op and s[2] is None:
                s[2] = time.perf_counter()
                break


def _on_call(event_name: str, **_: Any) -> None:
    tally = _current.get()
    if tally is not None:
        tally.calls.append([event_name.rsplit(".", 1)[-1], time.perf_counter(), None, 0, False])


def _end_call(event_name: str, ok: bool, retries: int) -> None:
    tally = _current.get()
    if tally is not None:
        op = event_name.rsplit(".", 1)[-1]
        for c in reversed(tally.calls):
            if c[0] == op and c[2] is None:
                c[2], c[3], c[4] = time.perf_counter(), retries, ok
                break


def _on_call_done(event_name: str, http_response: Any = None, parsed: Any = None, **_: Any) -> None:
    retries = (parsed or {}).get("ResponseMetadata", {}).get("RetryAttempts", 0)
    _end_call(event_name, http_response is not None and http_response.status_code < 300, retries)


def _on_call_error(event_name: str, **_: Any) -> None:
    _end_call(event_name, False, 0)


async def _tallied(tally: _Tally, coro_fn: Any, *args: Any, **kwargs: Any) -> Any:
    _current.set(tally)  # this task's context: every hook of this call sees it
    return await coro_fn(*args, **kwargs)


async def _collect(agen: Any) -> list[dict]:
    return [item async for item in agen]


class S3FSStorage(S3Storage):
    """S3 via s3fs: whole-object ``cat_file`` (no HEAD), every request counted."""

    library = "s3fs"
    ttfb_how = "aiobotocore's response-received event of the GET: headers parsed, body not yet read"
    request_counting = ("every HTTP request aiobotocore sends is counted by event hooks; a GET is one "
                        "cat_file(max_concurrency=1) = one request, a streamed shard one get_object; a listing "
                        "one row per ListObjectsV2 page; any other request appears as its own row")

    def library_version(self) -> str:
        return f"s3fs {s3fs.__version__}, aiobotocore {aiobotocore.__version__}, fsspec {fsspec.__version__}"

    def _connect(self) -> Any:
        s = self.settings
        session = _sessions.get(s.profile)
        if session is None:  # kept at module level: a forked loader worker reuses its loaded models
            session = _sessions[s.profile] = aiobotocore.session.AioSession(profile=s.profile)
            session.register("before-send.s3", _on_send)
            session.register("response-received.s3", _on_response)
            session.register("before-call.s3", _on_call)
            session.register("after-call.s3", _on_call_done)
            session.register("after-call-error.s3", _on_call_error)
        config: dict[str, Any] = {
            "signature_version": "s3v4", "s3": {"addressing_style": s.addressing_style},
            "retries": {"mode": s.retry_mode, "total_max_attempts": s.max_attempts},
            "max_pool_connections": s.max_pool_connections, "connect_timeout": s.connect_timeout_s,
            "read_timeout": s.read_timeout_s}
        if s.endpoint_url:
            config.update(request_checksum_calculation="when_required", response_checksum_validation="when_required")
        fs = s3fs.S3FileSystem(
            key=s.access_key, secret=s.secret_key, token=s.session_token, endpoint_url=s.endpoint_url,
            client_kwargs={"region_name": s.region, "verify": s.verify}, config_kwargs=config, session=session,
            skip_instance_cache=True, use_listings_cache=False, max_concurrency=1)
        fs.retries = 1  # one s3fs-level attempt: botocore does the retrying
        return fs

    def _call(self, op: str, key: str | None, coro_fn: Any, *args: Any, _tally: _Tally | None = None,
              **kwargs: Any) -> tuple[Any, _Tally]:
        """Run an s3fs coroutine on its loop, counting the requests it sends (into ``_tally``
        when given, so a caller still sees them when the call fails)."""
        fs = self.client
        tally = _Tally() if _tally is None else _tally
        with self._mapped(op, key, retries=lambda: max(0, len(tally.sends) - 1)):
            result = sync(fs.loop, _tallied, tally, coro_fn, *args, **kwargs)
        return result, tally

    def _error(self, e: BaseException, op: str, key: str | None) -> BaseException:
        return botocore_error(e, op, key, self.settings)

    def _record_extra(self, key: str, tally: _Tally, main_op: str) -> int:
        """Record requests other than ``main_op`` as their own rows; return main_op's retries."""
        rec = get_recorder(self.recorder_spec)
        if rec is not None:
            for op, sent, answered in tally.sends:
                if op != main_op:
                    rec.add(op.lower(), key, sent, None, answered or sent, 0)
        return max(0, tally.count(main_op) - 1)

    # -- primitives ---------------------------------------------------------------------
    def _get(self, key: str) -> tuple[bytes, float | None]:
        data, tally = self._call("get", key, self.client._cat_file, f"{self.bucket}/{key}", max_concurrency=1)
        note_retries(self._record_extra(key, tally, "GetObject"))
        return data, tally.last_response("GetObject")

    def _get_range(self, key: str, start: int, length: int) -> tuple[bytes, float | None]:
        data, tally = self._call("get_range", key, self.client._cat_file, f"{self.bucket}/{key}",
                                 start=start, end=start + length)
        note_retries(self._record_extra(key, tally, "GetObject"))
        return data, tally.last_response("GetObject")

    def _open(self, key: str) -> tuple[ChunkStream, float | None]:
        """One GET whose body is read a chunk at a time (memory: one chunk, never the object)."""
        fs = self.client
        resp, tally = self._call("get", key, fs._call_s3, "get_object", Bucket=self.bucket, Key=key)
        note_retries(self._record_extra(key, tally, "GetObject"))
        body = resp["Body"]
        loop = fs.loop

        def chunks() -> Any:
            while True:
                chunk = sync(loop, body.read, _CHUNK)
                if not chunk:
                    return
                yield chunk

        def release() -> None:
            try:
                sync(loop, body.aclose)
            except Exception:  # noqa: BLE001 - closing a finished body must not fail the read
                pass

        return (ChunkStream(chunks(), lambda e: self._error(e, "get", key), release=release),
                tally.last_response("GetObject"))

    def _list_raw(self, prefix: str, delimiter: bool) -> tuple[list[ObjectInfo], list[str]]:
        fs = self.client
        tally = _Tally()
        try:
            items, _ = self._call("list", prefix, _collect,
                                  fs._iterdir(self.bucket, delimiter="/" if delimiter else "", prefix=prefix),
                                  _tally=tally)
        finally:  # the pages that came back, even when a later one failed
            for op, started, ended, retries, ok in tally.calls:
                if op == "ListObjectsV2" and ok:
                    note_page(started, ended, retries)
            self._record_extra(prefix, tally, "ListObjectsV2")
        cut = len(self.bucket) + 1  # names are "bucket/key"
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        for c in items:
            name = c["name"][cut:]
            if c["type"] == "directory":
                prefixes.append(name.rstrip("/"))
            elif not name.endswith("/"):
                objects.append(ObjectInfo(name, int(c["size"])))
        objects.sort(key=lambda o: o.key)
        note_retries(0)
        return objects, sorted(prefixes)

    def _probe(self) -> None:
        self._call("check", None, self.client._call_s3, "list_objects_v2", Bucket=self.bucket, MaxKeys=1)

    def _create_bucket(self) -> None:
        s = self.settings
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if s.is_aws and s.region and s.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": s.region}
        try:
            self._call("create_bucket", None, self.client._call_s3, "create_bucket", **kwargs)
        except FileExistsError:  # BucketAlreadyOwnedByYou, as s3fs translates it
            pass

    def _put(self, key: str, data: bytes) -> None:
        self._call("put", key, self.client._pipe_file, f"{self.bucket}/{key}", data)

    def _delete(self, key: str) -> None:
        self._call("delete", key, self.client._rm_file, f"{self.bucket}/{key}")
