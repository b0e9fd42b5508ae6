"""The storage interface: a backend writes a few primitives, the base class
adds instrumentation and helpers.

Backends implement ``_list``, ``_get``, ``_put`` and ``_delete`` (and
``_get_range`` when they can do better than slicing) and raise builtin
exceptions (``FileNotFoundError(key)``, ``PermissionError``, ``ConnectionError``)
so callers never catch a library's type. Every public call is recorded with
start, first byte (where the client can tell), end, bytes and error. A backend
joins by its registration (:mod:`dnnbench.storage.backends`), and passes the
storage contract (``tests/storage_contract.py``) by being registered.

A Storage object holds configuration only: clients and recorders are created
lazily in the process that uses them and rebuilt when the pid changes, so the
object can be pickled into loader workers under any start method.
"""

from __future__ import annotations

import io
import os
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from dnnbench import failures
from dnnbench.errors import RecordingError
from dnnbench.recording.requests import RecorderSpec, get_recorder
from dnnbench.storage.inflight import in_order
from dnnbench.storage.keys import list_prefix


class SizeMismatch(OSError):
    """An object's size differs from the size listing reported."""

    def __init__(self, key: str, expected: int, actual: int):
        super().__init__(f"{key}: listed with {expected} bytes, now {actual} (changed since listing?)")
        self.key, self.expected, self.actual = key, expected, actual


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    #: why the entry cannot be read (a symlink loop...): listed so that dataset.on_error decides
    error: str | None = None


class Storage(ABC):
    """Base class of storage backends."""

    #: whether ``_get`` can report time to first byte, and why not if it cannot
    ttfb_supported: bool = False
    ttfb_reason: str = "the client does not expose the moment the first byte arrives"

    def __init__(self, config: Any, recorder: RecorderSpec | None = None, options: Any = None):
        self.config = config
        self.recorder_spec = recorder
        #: the validated ``storage.options`` (the model the backend declared), None without one
        self.options = options
        self._pid: int | None = None
        self._client: Any = None

    # -- pickling: configuration only ---------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_client"] = None
        state["_pid"] = None
        return state

    @property
    def client(self) -> Any:
        """The live client of this process, created on first use after a fork."""
        pid = os.getpid()
        if self._client is None or self._pid != pid:
            self._client = self._connect()
            self._pid = pid
        return self._client

    def _connect(self) -> Any:
        return None

    # -- primitives -------------------------------------------------------
    @abstractmethod
    def _list(self, prefix: str, delimiter: bool) -> tuple[list[ObjectInfo], list[str]]:
        """Objects under ``prefix``; with ``delimiter`` only direct children plus sub-prefixes."""

    @abstractmethod
    def _get(self, key: str) -> tuple[bytes, float | None]:
        """Whole object and the perf_counter time its first byte arrived (None if unknown)."""

    def _get_range(self, key: str, start: int, length: int) -> tuple[bytes, float | None]:
        data, ttfb = self._get(key)
        return data[start:start + length], ttfb

    def _get_into(self, key: str, buffer: memoryview) -> tuple[int, float | None]:
        """Read a whole object into ``buffer``; return its size and first-byte time.

        Raises:
            SizeMismatch: the object does not have ``len(buffer)`` bytes (it changed since listing).
        """
        data, ttfb = self._get(key)
        if len(data) != len(buffer):
            raise SizeMismatch(key, len(buffer), len(data))
        buffer[:] = data
        return len(data), ttfb

    def _open(self, key: str) -> tuple[Any, float | None]:
        """A readable binary stream of the whole object and its first-byte time.

        The default reads the object whole; backends that can stream override it.
        """
        data, ttfb = self._get(key)
        return io.BytesIO(data), ttfb

    def _retries(self) -> int:
        """Retries the calling thread's last request needed (0 where the client cannot tell)."""
        return 0

    @abstractmethod
    def _put(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def _delete(self, key: str) -> None: ...

    # -- instrumented public API ---------------------------------------
    def _request(self, op: str, key: str, call, *args: Any) -> tuple[Any, Any, float]:
        """Run one primitive, recording it as a failed request if it raises.

        Returns (the primitive's result, this process's recorder or None, start time).
        """
        rec = get_recorder(self.recorder_spec)
        start = time.perf_counter()
        try:
            result = call(*args)
        except Exception as e:
            if rec is not None:
                rec.add(op, key, start, None, time.perf_counter(), 0, error=_short(e), retries=self._retries())
            raise
        return result, rec, start

    def get(self, key: str) -> tuple[bytes, list | None]:
        """Read a whole object. Returns the bytes and the request's record row (or None)."""
        (data, ttfb), rec, start = self._request("get", key, self._get, key)
        if rec is None:
            return data, None
        return data, rec.add("get", key, start, ttfb, time.perf_counter(), len(data), retries=self._retries())

    def get_into(self, key: str, buffer: memoryview) -> tuple[int, list | None]:
        """Read a whole object of known size straight into ``buffer`` (no extra copy)."""
        (n, ttfb), rec, start = self._request("get", key, self._get_into, key, buffer)
        if rec is None:
            return n, None
        return n, rec.add("get", key, start, ttfb, time.perf_counter(), n, retries=self._retries())

    def get_many_into(self, keys: list[str], sizes: list[int], buffer: memoryview, in_flight: int = 1,
                      rows: list | None = None) -> tuple[list[int], list[tuple[str, str]]]:
        """Read objects of known sizes back to back into ``buffer``: one recorded GET each
        (the loop of :meth:`get_into`, with the per-call overhead paid once per batch).

        Args:
            in_flight: GETs kept outstanding (``dataset.requests_in_flight``); each object is
                read straight into its place, the buffer closed up after a failed one.
            rows: when a list, the request row (or None) of each object read is appended to it.

        Returns the end offset in ``buffer`` of each object read, and ``(key, reason)`` for
        each that failed (skipped: the next object starts where it would have; reasons as in
        :mod:`dnnbench.failures`). After a failure that ends the run (the store stopped
        answering) the rest of the batch is not read: each would wait out the retries again.
        """
        rec = get_recorder(self.recorder_spec)
        if in_flight > 1 and len(keys) > 1:
            return self._get_many_pooled(rec, keys, sizes, buffer, in_flight, rows)
        ends: list[int] = []
        failed: list[tuple[str, str]] = []
        pos = 0
        for key, size in zip(keys, sizes):
            n, row, reason = self._read_into(rec, key, buffer[pos:pos + size])
            if reason:
                failed.append((key, reason))
                if failures.is_fatal(reason):
                    break
                continue
            pos += n
            ends.append(pos)
            if rows is not None:
                rows.append(row)
        return ends, failed

    def _get_many_pooled(self, rec: Any, keys: list[str], sizes: list[int], buffer: memoryview, k: int,
                         rows: list | None) -> tuple[list[int], list[tuple[str, str]]]:
        """:meth:`get_many_into` with ``k`` GETs outstanding (see :mod:`.inflight`)."""
        places = [0]
        for size in sizes:
            places.append(places[-1] + size)

        def one(j: int) -> tuple[int, int, list | None, str]:
            return (j, *self._read_into(rec, keys[j], buffer[places[j]:places[j + 1]]))

        ends: list[int] = []
        failed: list[tuple[str, str]] = []
        pos = 0
        results = in_order(one, range(len(keys)), k)
        try:
            for j, n, row, reason in results:
                if reason:
                    failed.append((keys[j], reason))
                    if failures.is_fatal(reason):
                        break
                    continue
                if pos != places[j]:  # close the gap a failed object left (objects before j are done)
                    buffer[pos:pos + n] = bytes(buffer[places[j]:places[j] + n])
                pos += n
                ends.append(pos)
                if rows is not None:
                    rows.append(row)
        finally:
            results.close()
        return ends, failed

    def _read_into(self, rec: Any, key: str, view: memoryview) -> tuple[int, list | None, str]:
        """One recorded GET into ``view``: (bytes, the request row or None, "" or the failure reason)."""
        start = time.perf_counter()
        try:
            n, ttfb = self._get_into(key, view)
            row = None if rec is None else rec.add("get", key, start, ttfb, time.perf_counter(), n,
                                                  retries=self._retries())
        except Exception as e:  # noqa: BLE001 - the caller names the key
            return 0, None, self._failed_read(rec, key, start, e)
        return n, row, ""

    def _failed_read(self, rec: Any, key: str, start: float, e: BaseException) -> str:
        """Record a failed GET; returns its reason (see :mod:`dnnbench.failures`)."""
        if rec is None or isinstance(e, RecordingError):
            return failures.read_failure(e)
        try:
            rec.add("get", key, start, None, time.perf_counter(), 0, error=_short(e), retries=self._retries())
        except RecordingError as lost:
            return failures.read_failure(lost)
        return failures.read_failure(e)

    def open_stream(self, key: str) -> "RecordedStream":
        """Stream an object (tar shards): one request row, written when the stream ends."""
        (raw, ttfb), rec, start = self._request("get", key, self._open, key)
        return RecordedStream(raw, key, rec, start, ttfb, self._retries())

    def get_range(self, key: str, start_byte: int, length: int) -> bytes:
        """Read ``length`` bytes of an object from ``start_byte`` (fewer at its end): one recorded request."""
        return self.get_range_row(key, start_byte, length)[0]

    def get_range_row(self, key: str, start_byte: int, length: int) -> tuple[bytes, list | None]:
        """:meth:`get_range`, with the request's record row (or None) as :meth:`get` returns it."""
        (data, ttfb), rec, start = self._request("get_range", key, self._get_range, key, start_byte, length)
        if rec is None:
            return data, None
        return data, rec.add("get_range", key, start, ttfb, time.perf_counter(), len(data), retries=self._retries())

    def list(self, prefix: str = "", delimiter: bool = False) -> tuple[list[ObjectInfo], list[str]]:
        prefix = list_prefix(prefix)
        (objects, prefixes), rec, start = self._request("list", prefix, self._list, prefix, delimiter)
        if rec is not None:
            rec.add("list", prefix, start, None, time.perf_counter(), 0, retries=self._retries())
        return objects, prefixes

    def put(self, key: str, data: bytes) -> None:
        _, rec, start = self._request("put", key, self._put, key, data)
        if rec is not None:
            rec.add("put", key, start, None, time.perf_counter(), len(data), retries=self._retries())

    def delete(self, key: str) -> None:
        self._delete(key)

    def list_requests(self) -> int:
        """Requests the calling thread's last :meth:`list` sent (S3: one per ListObjectsV2 page)."""
        return 1

    # -- helpers ------------------------------------------------------------
    def exists(self, prefix: str = "") -> bool:
        """True when anything is stored under ``prefix``."""
        objects, prefixes = self._list(prefix, True)
        return bool(objects or prefixes)

    def check(self) -> None:
        """Raise a :class:`StorageError` with a hint when the storage cannot be used."""

    def describe(self) -> dict[str, Any]:
        """What environment.json says about this storage (never credentials)."""
        return {"client": type(self).__name__}

    def label(self) -> str:
        return getattr(self.config, "name", None) or type(self).__name__

    def local_path(self, key: str) -> str | None:
        """A local file path for ``key`` when the backend has one (page-cache checks)."""
        return None


class RecordedStream(io.RawIOBase):
    """A counting, recording wrapper around a backend's object stream."""

    def __init__(self, raw: Any, key: str, rec: Any, start: float, ttfb: float | None, retries: int):
        super().__init__()
        self.raw, self.key, self.rec, self.start, self.ttfb, self.retries = raw, key, rec, start, ttfb, retries
        self.nbytes = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            if hasattr(self.raw, "readinto"):
                n = self.raw.readinto(buffer)
            else:
                chunk = self.raw.read(len(buffer))
                n = len(chunk)
                buffer[:n] = chunk
        except Exception as e:
            self._finish(_short(e))
            raise
        if self.ttfb is None and n:
            self.ttfb = time.perf_counter()
        self.nbytes += n or 0
        if not n:
            self._finish(None)
        return n or 0

    def drain(self) -> int:
        """Read to the end (trailing bytes count as returned by storage); returns bytes drained."""
        before = self.nbytes
        buf = bytearray(1 << 16)
        while self.readinto(memoryview(buf)):
            pass
        return self.nbytes - before

    def _finish(self, error: str | None) -> None:
        if self._done:
            return
        self._done = True
        if self.rec is not None:
            self.rec.add("get", self.key, self.start, self.ttfb, time.perf_counter(), self.nbytes, error=error,
                         retries=self.retries)

    def close(self) -> None:
        if not self.closed:
            self._finish(None)
            try:
                self.raw.close()
            except Exception:  # noqa: BLE001 - closing a finished stream must not fail the read
                pass
        super().close()


def _short(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}"
    return text if len(text) <= 200 else text[:197] + "..."

