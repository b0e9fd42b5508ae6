"""``hdf5``: samples along the first axis of one HDF5 dataset (h5py; ``format_options.dataset``,
default ``records`` as DLIO writes it); the labels are the layout's (generated files also hold
an int64 ``labels`` dataset, as DLIO's do).

Locating opens the file through a seekable file object (over storage: ranged reads of its
metadata, a handful of GETs). A contiguous, uncompressed dataset (h5py's default, DLIO's) has a
fixed byte offset, so each sample is one byte range read without h5py; a chunked or compressed
one is read whole and decoded by h5py.
"""

from __future__ import annotations

import io
from typing import Any, BinaryIO, Iterator

import numpy as np

from dnnbench.formats.arrays import ArrayMeta, in_place, sample_from_range
from dnnbench.formats.base import DecodeSpec, FileFormat, FileIndex, FileSpec, Sample, random_array, read_all
from dnnbench.formats.spec import Hdf5Options

LABELS = "labels"


class Hdf5Format(FileFormat):
    """Samples along the first axis of one HDF5 dataset."""

    def __init__(self, options: Hdf5Options | None = None):
        super().__init__(options or Hdf5Options())

    def _open(self, file: BinaryIO) -> tuple[Any, Any]:
        """(h5py file, the samples' dataset).

        Raises:
            ValueError: not an HDF5 file, or no such dataset.
        """
        import h5py

        try:
            h5 = h5py.File(file, "r")
        except OSError as e:
            raise ValueError(f"not an HDF5 file: {e}") from None
        ds = h5.get(self.options.dataset)
        if not isinstance(ds, h5py.Dataset):
            h5.close()
            raise ValueError(f"no HDF5 dataset {self.options.dataset!r} (top level: {', '.join(list(h5)[:10])})")
        return h5, ds

    def index(self, file: BinaryIO, size: int) -> FileIndex:
        h5, ds = self._open(file)
        with h5:
            meta = ArrayMeta(ds.dtype.str, tuple(int(n) for n in ds.shape))
            offset = ds.id.get_offset() if ds.chunks is None and ds.compression is None else None
        if offset is None or not meta.shape or meta.count == 0:
            return FileIndex.whole(meta.count, size, meta)
        ranged = ArrayMeta(meta.dtype, meta.shape, ranged=True)
        return FileIndex.strided(meta.count, int(offset), meta.sample_nbytes, ranged)

    def read_file(self, stream: BinaryIO, decode: DecodeSpec) -> Iterator[Sample]:
        raw = read_all(stream)
        fast = in_place(self, raw)
        if fast:
            yield from fast
            return
        h5, ds = self._open(io.BytesIO(raw))
        with h5:
            data = ds[()]
        if data.ndim == 0:
            yield data, None
            return
        for i in range(len(data)):
            yield data[i], None

    def read_sample(self, data: bytes, meta: Any, item: int, decode: DecodeSpec) -> Sample:
        if meta is not None and meta.ranged:
            return sample_from_range(data, meta), None
        h5, ds = self._open(io.BytesIO(data))
        with h5:
            return (ds[item] if ds.ndim else ds[()]), None

    def generate(self, rng: np.random.Generator, spec: FileSpec) -> bytes:
        """As DLIO writes it: ``records`` (n, *shape) contiguous and uncompressed, ``labels`` int64."""
        import h5py

        buf = io.BytesIO()
        with h5py.File(buf, "w") as h5:
            h5.create_dataset(self.options.dataset, data=random_array(rng, (spec.samples, *spec.shape), spec.dtype))
            if self.options.dataset != LABELS:
                h5.create_dataset(LABELS, data=np.full(spec.samples, spec.label, dtype=np.int64))
        return buf.getvalue()

