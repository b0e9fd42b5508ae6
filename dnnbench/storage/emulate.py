"""Latency emulation in user space (this kernel has no netem): a wrapper that adds a
per-request delay (with jitter) and caps each request's transfer rate, around any
backend. "What if this were a remote HDD store?" runs anywhere; the run says it was
emulated (the ``emulated`` column, environment.json) so it is never mistaken for a real one.
"""

from __future__ import annotations

import random
import time
from typing import Any

from dnnbench.storage.base import ObjectInfo, Storage


class EmulatedStorage(Storage):
    """Wraps ``inner``: every request waits ``latency_ms`` ± ``jitter_ms`` before its first
    byte, and each request's bytes flow at most at ``bandwidth_MBps`` (10^6 bytes/s)."""

    def __init__(self, inner: Storage, emulate: Any, recorder: Any = None):
        super().__init__(inner.config, recorder if recorder is not None else inner.recorder_spec, inner.options)
        self.inner = inner
        self.latency_s = (emulate.latency_ms or 0.0) / 1e3
        self.jitter_s = (emulate.jitter_ms or 0.0) / 1e3
        self.rate = (emulate.bandwidth_MBps or 0.0) * 1e6
        self.ttfb_supported = inner.ttfb_supported
        self.ttfb_reason = inner.ttfb_reason
        self._rng = random.Random()

    def _delay(self) -> None:
        d = self.latency_s
        if self.jitter_s:
            d += self._rng.uniform(-self.jitter_s, self.jitter_s)
        if d > 0:
            time.sleep(d)

    def _pace(self, nbytes: int, since: float) -> None:
        if self.rate > 0:
            wait = nbytes / self.rate - (time.perf_counter() - since)
            if wait > 0:
                time.sleep(wait)

    def _list(self, prefix: str, delimiter: bool) -> tuple[list[ObjectInfo], list[str]]:
        self._delay()
        return self.inner._list(prefix, delimiter)

    def list(self, prefix: str = "", delimiter: bool = False) -> tuple[list[ObjectInfo], list[str]]:
        """The inner backend records its own list requests (one row per page for S3);
        the emulated latency applies once per call."""
        self._delay()
        return self.inner.list(prefix, delimiter)

    def _get(self, key: str) -> tuple[bytes, float | None]:
        self._delay()
        t = time.perf_counter()
        data, ttfb = self.inner._get(key)
        self._pace(len(data), t)
        return data, ttfb if ttfb is not None and ttfb > t else t

    def _get_into(self, key: str, buffer: memoryview) -> tuple[int, float | None]:
        self._delay()
        t = time.perf_counter()
        n, ttfb = self.inner._get_into(key, buffer)
        self._pace(n, t)
        return n, ttfb if ttfb is not None and ttfb > t else t

    def _get_range(self, key: str, start: int, length: int) -> tuple[bytes, float | None]:
        self._delay()
        t = time.perf_counter()
        data, ttfb = self.inner._get_range(key, start, length)
        self._pace(len(data), t)
        return data, t

    def _open(self, key: str) -> tuple[Any, float | None]:
        self._delay()
        raw, _ = self.inner._open(key)
        return _PacedStream(raw, self.rate), time.perf_counter()

    def _put(self, key: str, data: bytes) -> None:
        self._delay()
        t = time.perf_counter()
        self.inner._put(key, data)
        self._pace(len(data), t)

    def _delete(self, key: str) -> None:
        self._delay()
        self.inner._delete(key)

    def _retries(self) -> int:
        return self.inner._retries()

    def list_requests(self) -> int:
        return self.inner.list_requests()

    def check(self) -> None:
        self.inner.check()

    @property
    def ensure_bucket(self) -> Any:
        return getattr(self.inner, "ensure_bucket", None)

    def exists(self, prefix: str = "") -> bool:
        return self.inner.exists(prefix)

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "emulated": {"latency_ms": self.latency_s * 1e3,
                                                      "jitter_ms": self.jitter_s * 1e3,
                                                      "bandwidth_MBps": self.rate / 1e6 or None}}

    def label(self) -> str:
        return f"{self.inner.label()} (emulated)"

    def local_path(self, key: str) -> str | None:
        return None  # the emulated store is "remote": page-cache state is not its cache state


class _PacedStream:
    def __init__(self, raw: Any, rate: float):
        self.raw, self.rate = raw, rate
        self.t0 = time.perf_counter()
        self.n = 0

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer) if hasattr(self.raw, "readinto") else _read_into(self.raw, buffer)
        self.n += n or 0
        if self.rate > 0 and n:
            wait = self.n / self.rate - (time.perf_counter() - self.t0)
            if wait > 0:
                time.sleep(wait)
        return n

    def close(self) -> None:
        self.raw.close()


def _read_into(raw: Any, buffer: Any) -> int:
    chunk = raw.read(len(buffer))
    buffer[: len(chunk)] = chunk
    return len(chunk)
