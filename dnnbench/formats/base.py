"""The contract of a data format (framework-neutral; imports numpy, never a framework).

A format says four things, each one method of :class:`Format`:

- **where the samples of a file are** (:meth:`Format.index`): how many the file holds and the
  byte range each one is read from, found by reading the file's header, footer or index
  through a seekable file object (over storage that is :class:`~dnnbench.formats.rangefile.RangeFile`:
  each read a recorded ranged GET). A sample that cannot be cut out of the file (compressed,
  strided) gets the whole file as its range;
- **how a whole file decodes** into its samples, in file order (:meth:`Format.read_file`, given a
  readable stream: sequential access reads each file once);
- **how one sample decodes** from the bytes of its range (:meth:`Format.read_sample`: random access
  reads one range per sample);
- **how a file is generated** (:meth:`Format.generate`: a seeded RNG and a :class:`FileSpec`
  in, the file's bytes out; ``prepare`` writes them, never inside a measured phase).

A sample is ``(payload, label)``: the payload a numpy array (or the stored bytes when decoding
is off), the label an int or None (None: the layout's label, see :mod:`dnnbench.data.layouts`).
Formats hold configuration only (their validated options), so they cross into loader workers.
:class:`FileFormat` gives the defaults a format can keep (one sample per file, read whole).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterator, Protocol, runtime_checkable

import numpy as np

#: what a format yields per sample: (array or bytes, label or None)
Sample = tuple[Any, "int | None"]


@dataclass(frozen=True)
class DecodeSpec:
    """How samples are decoded: ``dataset.decode`` (rgb | gray | none) and ``dataset.image_dimension``
    [height, width]. Image formats (jpeg, png, tar members) decode with OpenCV; array formats
    decode to the stored array whatever the mode."""

    mode: str = "none"
    size: tuple[int, int] = (32, 32)


@dataclass(frozen=True)
class FileSpec:
    """One file to generate: ``samples`` arrays of ``shape`` and ``dtype`` (a size model,
    :mod:`dnnbench.formats.sizes`, draws the shape of each file), and the label they carry
    where the format stores one."""

    samples: int
    shape: tuple[int, ...]
    dtype: str = "uint8"
    label: int = 0

    @property
    def sample_nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass
class FileIndex:
    """Where the samples of one file are.

    ``offsets[i]``, ``lengths[i]``: the byte range sample i is read from (the whole file,
    ``(0, size)``, for a sample that cannot be cut out of it). ``meta``: what
    :meth:`Format.read_sample` needs to decode a range (dtype, shape...), picklable.
    """

    offsets: np.ndarray
    lengths: np.ndarray
    meta: Any = None

    def __post_init__(self) -> None:
        self.offsets = np.asarray(self.offsets, dtype=np.int64)
        self.lengths = np.asarray(self.lengths, dtype=np.int64)
        if self.offsets.shape != self.lengths.shape or self.offsets.ndim != 1:
            raise ValueError("offsets and lengths must be 1-D arrays of the same length")

    @property
    def count(self) -> int:
        return len(self.offsets)

    @classmethod
    def whole(cls, count: int, size: int, meta: Any = None) -> "FileIndex":
        """``count`` samples, each read as the whole file of ``size`` bytes."""
        return cls(np.zeros(count, np.int64), np.full(count, size, np.int64), meta)

    @classmethod
    def strided(cls, count: int, start: int, stride: int, meta: Any = None) -> "FileIndex":
        """``count`` samples of ``stride`` bytes back to back from byte ``start``."""
        return cls(start + stride * np.arange(count, dtype=np.int64), np.full(count, stride, np.int64), meta)


@runtime_checkable
class Format(Protocol):
    """What a data format provides (see the module docstring). Built as ``cls(options=...)``
    with the validated ``dataset.format_options`` (the model its registration declared)."""

    def index(self, file: BinaryIO, size: int) -> FileIndex:
        """Locate the samples of a file of ``size`` bytes, reading only what that needs from
        ``file`` (seekable, read-only).

        Raises:
            ValueError: the file is not of this format (or is damaged).
        """

    def read_file(self, stream: BinaryIO, decode: DecodeSpec) -> Iterator[Sample]:
        """The samples of a whole file, in file order, read from ``stream``.

        Raises:
            ValueError: the file is not of this format (or is damaged).
        """

    def read_sample(self, data: bytes, meta: Any, item: int, decode: DecodeSpec) -> Sample:
        """Sample ``item`` decoded from ``data``: the bytes of its range in the file's index.

        Raises:
            ValueError: the bytes do not decode.
        """

    def generate(self, rng: np.random.Generator, spec: FileSpec) -> bytes:
        """A file's bytes: ``spec.samples`` samples drawn from ``rng`` (the same bytes for the same seed)."""

    def sidecars(self, key: str, data: bytes) -> list[tuple[str, bytes]]:
        """The objects a generated file ``key`` of bytes ``data`` needs beside it (a TFRecord's
        DALI index): (key, bytes) each, written after the file."""


class FileFormat:
    """Defaults of a format: one sample per file, read whole. Subclasses override what differs."""

    def __init__(self, options: Any = None):
        self.options = options

    def index(self, file: BinaryIO, size: int) -> FileIndex:
        return FileIndex.whole(1, size)

    def read_file(self, stream: BinaryIO, decode: DecodeSpec) -> Iterator[Sample]:
        yield self.read_sample(stream.read(), None, 0, decode)

    def read_sample(self, data: bytes, meta: Any, item: int, decode: DecodeSpec) -> Sample:
        return np.frombuffer(data, dtype=np.uint8), None

    def generate(self, rng: np.random.Generator, spec: FileSpec) -> bytes:
        return random_array(rng, (spec.samples, *spec.shape), spec.dtype).tobytes()

    def sidecars(self, key: str, data: bytes) -> list[tuple[str, bytes]]:
        return []


def random_array(rng: np.random.Generator, shape: tuple[int, ...], dtype: str = "uint8") -> np.ndarray:
    """Random contents of ``shape`` and ``dtype`` (uniform bytes, fast: no per-element draw)."""
    dt = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    if dt.kind == "f":  # finite values: random bytes could be NaN
        return rng.random(n, dtype=np.float64).astype(dt).reshape(shape)
    return np.frombuffer(rng.bytes(n * dt.itemsize), dtype=dt).reshape(shape)


#: a stream of unknown length is read into uninitialised buffers of this size first, doubling up to
#: ``READ_CHUNK`` (a raw stream's ``read(n)`` zero-fills n bytes and copies them out: asked for
#: 64 MiB at a time it took 0.8 ms a 1 MiB file, ten times the read itself)
FIRST_CHUNK = 1 << 20
#: a local file's end is looked for with a read this large (a small buffer costs no mapping)
TAIL_CHUNK = 1 << 16
READ_CHUNK = 64 << 20


def read_all(stream: BinaryIO) -> bytes | memoryview:
    """The rest of ``stream`` (a whole file read in order), bytes-like: read straight into one
    uninitialised buffer of the file's size where the stream is over a local file (no zero-fill,
    no copy), else into uninitialised buffers of growing size (``FIRST_CHUNK`` doubling up to
    ``READ_CHUNK``), joined once when there is more than one."""
    if isinstance(stream, io.BytesIO):  # bytes in memory already: read whole, shared where it can (no copy)
        return stream.read()
    size = _remaining(stream)
    if size is not None:
        if not size:
            return b""
        head = memoryview(np.empty(size, dtype=np.uint8))
        got = _fill(stream, head)
        if got < size:
            return head[:got]
        chunks: list[bytes | memoryview] = [head]
        size = TAIL_CHUNK  # its end, or it grew since: the rest read as a stream of unknown length
    else:
        chunks, size = [], FIRST_CHUNK
    while True:
        buf = memoryview(np.empty(size, dtype=np.uint8))
        got = _fill(stream, buf)
        if got:
            chunks.append(buf[:got])
        if got < size:
            break
        size = min(2 * size, READ_CHUNK)
    if not chunks:
        return b""
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _fill(stream: BinaryIO, buf: memoryview) -> int:
    """Read into ``buf`` until it is full or the stream ends; the bytes read."""
    got = 0
    while got < len(buf):
        n = stream.readinto(buf[got:])
        if not n:
            break
        got += n
    return got


def _remaining(stream: BinaryIO) -> int | None:
    """Bytes left in a stream over a local file (a recorded stream's ``raw``), or None."""
    raw = getattr(stream, "raw", stream)
    try:
        return max(0, os.fstat(raw.fileno()).st_size - raw.tell())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


def as_file(data: bytes | memoryview) -> BinaryIO:
    """A seekable file object over bytes in memory."""
    return io.BytesIO(data)


class SeekableFile(io.RawIOBase):
    """A read-only, seekable binary file of ``self.size`` bytes at position ``self.pos``:
    subclasses set both and implement ``readinto``."""

    size: int = 0
    pos: int = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self.pos = base + offset
        return self.pos
