"""Samples along one axis of a stored numpy array: what npy and npz (and HDF5's contiguous
datasets) share. A sample is ``array[i]`` (``sample_axis: first``) or ``array[..., i]``
(``last``, DLIO's layout). When the sample's bytes lie together in the file (first axis of a
C-order array, last axis of a Fortran-order one) its range is cut out of the file: one ranged
read each; otherwise every sample's range is the whole file.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterator

import numpy as np

from dnnbench.formats.base import DecodeSpec, FileIndex, Sample, SeekableFile, read_all


@dataclass(frozen=True)
class ArrayMeta:
    """A stored array: its dtype, full shape, memory order and the axis that counts samples;
    ``ranged``: samples are read from their own byte ranges (else from the whole file)."""

    dtype: str
    shape: tuple[int, ...]
    fortran: bool = False
    axis: str = "first"
    ranged: bool = False

    @property
    def count(self) -> int:
        if not self.shape:
            return 1
        return int(self.shape[0] if self.axis == "first" else self.shape[-1])

    @functools.cached_property
    def sample_shape(self) -> tuple[int, ...]:
        if not self.shape:
            return ()
        return tuple(self.shape[1:] if self.axis == "first" else self.shape[:-1])

    @functools.cached_property
    def sample_nbytes(self) -> int:  # cached: asked once per sample read
        return math.prod(self.sample_shape) * self.np_dtype.itemsize

    @functools.cached_property
    def np_dtype(self) -> np.dtype:  # cached: asked once per sample read
        return np.dtype(self.dtype)

    @functools.cached_property
    def order(self) -> str:
        return "F" if self.fortran else "C"


def read_npy_header(file: BinaryIO) -> tuple[int, tuple[int, ...], bool, np.dtype]:
    """(data offset, shape, Fortran order, dtype) of the ``.npy`` starting at ``file``'s position.

    Raises:
        ValueError: not an npy header.
    """
    start = file.tell()
    major, minor = np.lib.format.read_magic(file)
    if (major, minor) == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(file)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(file)
    if dtype.hasobject:
        raise ValueError("an array of Python objects (pickled) is not read")
    return file.tell() - start, tuple(int(n) for n in shape), bool(fortran), dtype


def array_index(data_offset: int, shape: tuple[int, ...], fortran: bool, dtype: np.dtype, axis: str,
                size: int) -> FileIndex:
    """Where each sample of an array stored from ``data_offset`` (in a file of ``size`` bytes) is.

    Raises:
        ValueError: the file is shorter than its header says.
    """
    meta = ArrayMeta(dtype.str, shape, fortran, axis)
    end = data_offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if end > size:
        raise ValueError(f"truncated: the array ends at byte {end:,}, the file has {size:,}")
    contiguous = len(shape) >= 1 and ((axis == "first" and not fortran) or (axis == "last" and fortran))
    if not contiguous or meta.count == 0:
        return FileIndex.whole(meta.count, size, meta)
    ranged = ArrayMeta(dtype.str, shape, fortran, axis, ranged=True)
    return FileIndex.strided(meta.count, data_offset, meta.sample_nbytes, ranged)


def sample_from_range(data: bytes | memoryview, meta: ArrayMeta) -> np.ndarray:
    """A sample from the bytes of its own range.

    Raises:
        ValueError: the bytes are not one sample's.
    """
    if len(data) != meta.sample_nbytes:
        raise ValueError(f"a sample is {meta.sample_nbytes:,} bytes, got {len(data):,}")
    return np.frombuffer(data, dtype=meta.np_dtype).reshape(meta.sample_shape, order=meta.order)


def take(array: np.ndarray, item: int, axis: str) -> np.ndarray:
    """Sample ``item`` of a whole array (``array`` itself for a 0-d one)."""
    if array.ndim == 0:
        return array
    return array[item] if axis == "first" else array[..., item]


def samples_of(array: np.ndarray, axis: str) -> Any:
    """Every sample of a whole array, in order."""
    if array.ndim == 0:
        yield array, None
        return
    count = array.shape[0] if axis == "first" else array.shape[-1]
    for i in range(count):
        yield take(array, i, axis), None


def stacked(rng_array: np.ndarray, axis: str) -> np.ndarray:
    """``(n, *shape)`` samples stored with the sample axis first or last."""
    return rng_array if axis == "first" else np.moveaxis(rng_array, 0, -1)


def in_place(fmt: Any, data: bytes | bytearray) -> list[tuple[np.ndarray, None]] | None:
    """The samples of a whole file in memory as views into ``data`` (no copy), when ``fmt``'s
    index cuts them into ranges; None when it does not (strided, compressed: the caller decodes)."""
    view = memoryview(data)
    found = fmt.index(ViewFile(view), len(data))
    if not (isinstance(found.meta, ArrayMeta) and found.meta.ranged):
        return None
    meta = found.meta
    if found.count == 0:
        return []
    # ranged samples lie back to back from the first offset: one array over all of them, cut in one
    # step into per-sample views (not a frombuffer + reshape per sample)
    whole = np.frombuffer(view, dtype=np.dtype(meta.dtype), count=math.prod(meta.shape), offset=int(found.offsets[0]))
    whole = whole.reshape(meta.shape, order="F" if meta.fortran else "C")
    samples = list(whole) if meta.axis == "first" else [whole[..., i] for i in range(meta.count)]
    return [(sample, None) for sample in samples]


class ViewFile(SeekableFile):
    """A seekable read-only file over a memoryview: locating samples in a file held in memory
    without copying it (``io.BytesIO`` copies a bytearray)."""

    def __init__(self, view: memoryview):
        super().__init__()
        self.view, self.pos, self.size = view, 0, len(view)

    def readinto(self, buffer: Any) -> int:
        out = memoryview(buffer).cast("B")
        n = max(0, min(len(out), len(self.view) - self.pos))
        out[:n] = self.view[self.pos:self.pos + n]
        self.pos += n
        return n


class ArrayReads:
    """``read_file`` and ``read_sample`` of the numpy formats (npy, npz): the samples along
    ``options.sample_axis`` of the array ``self._array(data)`` decodes, cut in place where ranged."""

    options: Any

    def _array(self, data: Any) -> np.ndarray:
        raise NotImplementedError

    def read_file(self, stream: BinaryIO, decode: DecodeSpec) -> Iterator[Sample]:
        data = read_all(stream)
        yield from in_place(self, data) or samples_of(self._array(data), self.options.sample_axis)

    def read_sample(self, data: bytes, meta: Any, item: int, decode: DecodeSpec) -> Sample:
        if meta is not None and meta.ranged:
            return sample_from_range(data, meta), None
        return take(self._array(data), item, self.options.sample_axis), None
