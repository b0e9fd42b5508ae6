"""Parquet files (pyarrow): written in row groups, read a row group at a time through
ranged GETs computed from the footer.

A file ends with ``<footer (thrift)><uint32 LE footer length>PAR1``. Reading one file
costs one GET of its tail (:data:`TAIL` bytes, a second GET only when the footer is longer),
then one GET per row group of exactly that row group's bytes
(:func:`row_group_ranges`: from the first page of its first column chunk to the end of its
last). pyarrow decodes the row group from those bytes alone (:func:`decode_row_group`), so
the reads are the storage layer's recorded requests, not pyarrow's own I/O.

A sample is a row: ``image`` (binary) and ``label`` (int64) by default; other column
names for files written by other tools.
"""

from __future__ import annotations

import bisect
import io
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Iterator, Sequence

import numpy as np

from dnnbench.errors import DataError
from dnnbench.formats.base import (DecodeSpec, FileFormat, FileIndex, FileSpec, Sample, SeekableFile, random_array,
                                   read_all)
from dnnbench.formats.spec import ParquetOptions

#: bytes of a file's tail read to find its footer (pyarrow's own default footer read)
TAIL = 64 * 1024
MAGIC = b"PAR1"


@dataclass(frozen=True)
class Columns:
    """Which columns hold a sample's bytes and its label (``label=None``: unlabelled)."""

    data: str = "image"
    label: str | None = "label"


def write_table(samples: Sequence[bytes], labels: Sequence[int], *, row_group_size: int,
                compression: str = "none", columns: Columns = Columns()) -> bytes:
    """A Parquet file of ``samples`` (binary column) and ``labels`` (int64), cut into row groups
    of ``row_group_size`` rows, uncompressed unless ``compression`` says otherwise."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data: dict[str, Any] = {columns.data: pa.array(samples, pa.binary())}
    if columns.label is not None:
        data[columns.label] = pa.array(labels, pa.int64())
    buf = io.BytesIO()
    pq.write_table(pa.table(data), buf, row_group_size=row_group_size, compression=compression)
    return buf.getvalue()


def footer_length(tail: bytes, name: str = "") -> int:
    """Bytes of the footer (thrift metadata plus its 8-byte trailer) ending ``tail``.

    Raises:
        DataError: ``tail`` does not end with Parquet's magic.
    """
    if len(tail) < 12 or tail[-4:] != MAGIC:
        raise DataError("not a Parquet file (no PAR1 at its end)", reference=name or None,
                        hint="dataset.format: parquet reads files written by pyarrow, Spark, pandas...")
    return struct.unpack("<I", tail[-8:-4])[0] + 8


def read_metadata(get_range: Callable[[int, int], bytes], size: int, name: str = "") -> Any:
    """The ``FileMetaData`` of a file of ``size`` bytes, read through ``get_range(start, length)``:
    one GET of the tail, a second one only when the footer is longer than :data:`TAIL`.

    Raises:
        DataError: not a Parquet file, or its footer does not parse.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    start = max(0, size - TAIL)
    tail = get_range(start, size - start)
    need = footer_length(tail, name)
    if need > len(tail):
        if need > size:
            raise DataError(f"footer of {need} bytes in a file of {size}", reference=name or None)
        tail = get_range(size - need, need)
    try:
        return pq.read_metadata(pa.BufferReader(tail))
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"unreadable Parquet footer: {e}", reference=name or None) from None


def row_group_ranges(meta: Any) -> list[tuple[int, int]]:
    """``(start, length)`` of each row group's bytes: its column chunks from the first page
    (the dictionary page where there is one) to the end of the last."""
    out = []
    for i in range(meta.num_row_groups):
        rg = meta.row_group(i)
        starts, ends = [], []
        for j in range(rg.num_columns):
            c = rg.column(j)
            first = c.dictionary_page_offset if c.has_dictionary_page and c.dictionary_page_offset else \
                c.data_page_offset
            starts.append(first)
            ends.append(first + c.total_compressed_size)
        out.append((min(starts), max(ends) - min(starts)))
    return out


def row_counts(meta: Any) -> list[int]:
    """Rows of each row group."""
    return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]


class _Held(SeekableFile):
    """A read-only file of ``size`` bytes of which only ``chunk`` at ``start`` is held: what
    pyarrow reads outside it is a bug, never a silent extra request."""

    def __init__(self, size: int, start: int, chunk: bytes):
        super().__init__()
        self.size, self.start, self.chunk, self.pos = size, start, chunk, 0

    def readinto(self, b: Any) -> int:
        n = min(len(b), self.size - self.pos)
        lo = self.pos - self.start
        if lo < 0 or lo + n > len(self.chunk):
            raise OSError(f"read of {n} bytes at {self.pos} is outside the row group read "
                          f"({self.start}+{len(self.chunk)})")
        b[:n] = self.chunk[lo:lo + n]
        self.pos += n
        return n


def decode_row_group(meta: Any, group: int, chunk: bytes, start: int, size: int,
                     columns: Sequence[str] | None = None) -> Any:
    """The ``pyarrow.Table`` of row group ``group`` from its bytes ``chunk`` (read at ``start``
    of a file of ``size`` bytes) and the file's metadata.

    Raises:
        DataError: the bytes do not decode (a changed file, a wrong range).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(_Held(size, start, chunk), metadata=meta).read_row_group(
            group, columns=list(columns) if columns is not None else None)
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"row group {group} does not decode: {e}", hint="the file changed since its footer "
                        "was read? Run again") from None


def samples(table: Any, columns: Columns = Columns(), name: str = "") -> tuple[list[bytes], list[int]]:
    """The rows of a row group as (sample bytes, labels); labels are -1 without a label column.

    Raises:
        DataError: the data column is missing.
    """
    if columns.data not in table.column_names:
        raise DataError(f"no column {columns.data!r} (columns: {', '.join(table.column_names)})",
                        reference=name or None, hint="name the sample column in the format's options")
    data = table.column(columns.data).to_pylist()
    if columns.label is not None and columns.label in table.column_names:
        labels = table.column(columns.label).to_pylist()
    else:
        labels = [-1] * len(data)
    return data, labels


@dataclass(frozen=True)
class ParquetMeta:
    """What decoding a row group's bytes needs: the file's size, its footer's metadata (pickles
    as its thrift bytes), and per row group its first row and byte range."""

    size: int
    metadata: Any
    first_rows: tuple[int, ...]
    ranges: tuple[tuple[int, int], ...]

    def group_of(self, item: int) -> int:
        """The row group holding row ``item``."""
        return bisect.bisect_right(self.first_rows, item) - 1


class ParquetFormat(FileFormat):
    """``parquet``: a sample per row (``format_options.column`` its bytes, ``label_column`` its
    label); a sample's range is its row group's bytes, decoded by pyarrow from those alone. The
    last row group decoded is kept (per process), so the rows of a group read in turn decode it once."""

    def __init__(self, options: ParquetOptions | None = None):
        super().__init__(options or ParquetOptions())
        self._held: tuple[Any, int, Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_held": None}

    @property
    def columns(self) -> Columns:
        return Columns(self.options.column, self.options.label_column)

    def index(self, file: BinaryIO, size: int) -> FileIndex:
        def get_range(start: int, length: int) -> bytes:
            file.seek(start)
            return file.read(length)

        meta = _checked(lambda: read_metadata(get_range, size))
        ranges, counts = row_group_ranges(meta), row_counts(meta)
        firsts = tuple(int(x) for x in np.cumsum([0] + counts[:-1])) if counts else ()
        pmeta = ParquetMeta(size, meta, firsts, tuple(ranges))
        group = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        starts = np.asarray([r[0] for r in ranges], np.int64)
        lengths = np.asarray([r[1] for r in ranges], np.int64)
        return FileIndex(starts[group], lengths[group], pmeta)

    def read_file(self, stream: BinaryIO, decode: DecodeSpec) -> Iterator[Sample]:
        import pyarrow.parquet as pq

        table = _checked(lambda: pq.read_table(io.BytesIO(read_all(stream))))
        data, labels = _checked(lambda: samples(table, self.columns))
        for value, label in zip(data, labels):
            yield np.frombuffer(value, dtype=np.uint8), (None if label == -1 else label)

    def read_sample(self, data: bytes, meta: Any, item: int, decode: DecodeSpec) -> Sample:
        if meta is None:
            raise ValueError("a Parquet sample is read through its file's index")
        group = meta.group_of(item)
        held = self._held
        if held is None or held[0] is not meta or held[1] != group:
            start = meta.ranges[group][0]
            table = _checked(lambda: decode_row_group(meta.metadata, group, data, start, meta.size))
            held = self._held = (meta, group, _checked(lambda: samples(table, self.columns)))
        values, labels = held[2]
        row = item - meta.first_rows[group]
        return np.frombuffer(values[row], dtype=np.uint8), (None if labels[row] == -1 else labels[row])

    def generate(self, rng: np.random.Generator, spec: FileSpec) -> bytes:
        """A row per sample (its bytes, its label), in row groups of ``row_group_size`` rows."""
        rows = [s.tobytes() for s in random_array(rng, (spec.samples, *spec.shape), spec.dtype)]
        return write_table(rows, [spec.label] * len(rows), row_group_size=self.options.row_group_size,
                           compression=self.options.compression, columns=self.columns)


def _checked(call: Callable[[], Any]) -> Any:
    """``call()``, its DataError (a file that is not Parquet, a missing column) as the ValueError
    the format contract raises."""
    try:
        return call()
    except DataError as e:
        raise ValueError(str(e)) from None
