"""A seekable, read-only file over one stored object: every read that misses its buffer is one
ranged GET (:meth:`dnnbench.storage.base.Storage.get_range`, recorded with its bytes and latency).

Formats locate their samples through it (a zip's central directory, an npy header, HDF5's
metadata), the way h5py, zipfile and pyarrow read a file object: small reads, some of them
backwards. A miss fetches at least ``block`` bytes, ahead of the position, or ending at the end
of the object when the read is near it (footers and central directories sit there), so a
handful of GETs locate the samples of a file.
"""

from __future__ import annotations

from typing import Any

from dnnbench.formats.base import SeekableFile

#: the least a miss fetches: one GET covers a header, a footer or a zip's central directory
BLOCK = 64 * 1024


class RangeFile(SeekableFile):
    """``storage`` object ``key`` of ``size`` bytes (as listed) as a read-only binary file."""

    def __init__(self, storage: Any, key: str, size: int, block: int = BLOCK):
        super().__init__()
        self.storage, self.key, self.size, self.block = storage, key, int(size), max(1, int(block))
        self.pos = 0
        self._start = 0
        self._buf = b""
        #: ranged GETs sent and the bytes they returned
        self.requests = 0
        self.nbytes = 0

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self.size - self.pos))
        if n == 0:
            return 0
        if not (self._start <= self.pos and self.pos + n <= self._start + len(self._buf)):
            self._fetch(self.pos, n)
        at = self.pos - self._start
        view[:n] = self._buf[at:at + n]
        self.pos += n
        return n

    def _fetch(self, pos: int, n: int) -> None:
        """Fill the buffer with at least [pos, pos + n): ``block`` bytes from ``pos``, or the
        object's last ``block`` bytes when that range would run past its end."""
        length = max(n, self.block)
        start = pos if pos + length <= self.size else max(0, min(pos, self.size - length))
        length = min(length, self.size - start)
        data = self.storage.get_range(self.key, start, length)
        self.requests += 1
        self.nbytes += len(data)
        if len(data) != length:
            raise OSError(f"{self.key}: asked for bytes {start}-{start + length - 1}, got {len(data)} bytes "
                          f"(listed with {self.size}: changed since listing?)")
        self._start, self._buf = start, data
