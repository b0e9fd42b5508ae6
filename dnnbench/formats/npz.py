"""``npz``: a numpy ``.npz`` archive (a zip of ``.npy`` members, as ``np.savez`` writes it); the
samples lie along one axis of one member (``format_options.array``, default ``x``; DLIO's
files: ``x`` with the samples on the last axis, ``y`` their labels).

Locating reads the zip's central directory, the member's local header and its npy header
(ranged reads of the file's tail and of the member's head). In a stored (uncompressed) member
whose samples lie together, each sample is one byte range; in a compressed member
(``np.savez_compressed``) or a strided one every sample's range is the whole file.
"""

from __future__ import annotations

import io
import struct
import zipfile
from typing import BinaryIO

import numpy as np

from dnnbench.formats.arrays import ArrayReads, ArrayMeta, array_index, read_npy_header, stacked
from dnnbench.formats.base import FileFormat, FileIndex, FileSpec, random_array
from dnnbench.formats.spec import NpzOptions

#: the fixed part of a zip local file header; the name and extra field lengths sit at bytes 26-29
_LOCAL_HEADER = 30


class NpzFormat(ArrayReads, FileFormat):
    """Samples along one axis of one member of an ``.npz``."""

    def __init__(self, options: NpzOptions | None = None):
        super().__init__(options or NpzOptions())

    @property
    def member(self) -> str:
        return f"{self.options.array}.npy"

    def index(self, file: BinaryIO, size: int) -> FileIndex:
        try:
            with zipfile.ZipFile(file) as zf:
                info = zf.getinfo(self.member)
                if info.compress_type != zipfile.ZIP_STORED:
                    with zf.open(info) as member:
                        _, shape, fortran, dtype = read_npy_header(member)
                    return FileIndex.whole(ArrayMeta(dtype.str, shape, fortran, self.options.sample_axis).count,
                                           size, ArrayMeta(dtype.str, shape, fortran, self.options.sample_axis))
        except (zipfile.BadZipFile, KeyError) as e:
            raise ValueError(f"not an npz holding {self.member!r}: {e}") from None
        start = _member_data(file, info.header_offset)
        file.seek(start)
        header, shape, fortran, dtype = read_npy_header(file)
        return array_index(start + header, shape, fortran, dtype, self.options.sample_axis, size)

    def _array(self, data: bytes) -> np.ndarray:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                return npz[self.options.array]
        except (zipfile.BadZipFile, KeyError, OSError) as e:
            raise ValueError(f"not an npz holding {self.member!r}: {e}") from None

    def generate(self, rng: np.random.Generator, spec: FileSpec) -> bytes:
        """``np.savez``: the samples in member ``array`` (stored, uncompressed), their labels in ``y``."""
        x = stacked(random_array(rng, (spec.samples, *spec.shape), spec.dtype), self.options.sample_axis)
        members = {self.options.array: x}
        if self.options.array != "y":
            members["y"] = np.full(spec.samples, spec.label, dtype=np.int64)
        buf = io.BytesIO()
        np.savez(buf, **members)
        return buf.getvalue()


def _member_data(file: BinaryIO, header_offset: int) -> int:
    """Where a stored member's data starts: after its local header (whose extra field may differ
    from the central directory's).

    Raises:
        ValueError: no local header there.
    """
    file.seek(header_offset)
    head = file.read(_LOCAL_HEADER)
    if len(head) != _LOCAL_HEADER or head[:4] != b"PK\x03\x04":
        raise ValueError(f"no zip local header at byte {header_offset}")
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    return header_offset + _LOCAL_HEADER + name_len + extra_len
