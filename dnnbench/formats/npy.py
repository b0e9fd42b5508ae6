"""``npy``: one numpy array per file (as ``np.save`` writes it); the samples lie along one axis
(``format_options.sample_axis``: first, or last as DLIO writes ``(dim1, dim2, n)``).

Locating reads the npy header (one ranged read of the file's head); a C-order array with the
samples first is cut into one byte range per sample, otherwise every sample's range is the
whole file (:mod:`dnnbench.formats.arrays`).
"""

from __future__ import annotations

import io
from typing import BinaryIO

import numpy as np

from dnnbench.formats.arrays import ArrayReads, array_index, read_npy_header, stacked
from dnnbench.formats.base import FileFormat, FileIndex, FileSpec, random_array
from dnnbench.formats.spec import ArrayOptions


class NpyFormat(ArrayReads, FileFormat):
    """Samples along one axis of a ``.npy`` array."""

    def __init__(self, options: ArrayOptions | None = None):
        super().__init__(options or ArrayOptions())

    def index(self, file: BinaryIO, size: int) -> FileIndex:
        file.seek(0)
        header, shape, fortran, dtype = read_npy_header(file)
        return array_index(header, shape, fortran, dtype, self.options.sample_axis, size)

    @staticmethod
    def _array(data: bytes) -> np.ndarray:
        try:
            return np.load(io.BytesIO(data), allow_pickle=False)
        except (OSError, EOFError) as e:
            raise ValueError(f"not an npy array: {e}") from None

    def generate(self, rng: np.random.Generator, spec: FileSpec) -> bytes:
        """``np.save`` of the samples stacked along ``sample_axis``."""
        buf = io.BytesIO()
        np.save(buf, stacked(random_array(rng, (spec.samples, *spec.shape), spec.dtype), self.options.sample_axis))
        return buf.getvalue()
