"""Parquet: row groups read through ranged GETs computed from the footer, exact samples and requests."""

from __future__ import annotations

import io
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dnnbench.errors import DataError
from dnnbench.formats.parquet import (TAIL, Columns, decode_row_group, read_metadata, row_counts, row_group_ranges,
                                      samples, write_table)


class Ranged:
    """A file served by ranged reads, each one counted."""

    def __init__(self, data: bytes):
        self.data, self.calls = data, []

    def __call__(self, start: int, length: int) -> bytes:
        self.calls.append((start, length))
        return self.data[start:start + length]


def dataset(n: int = 100, seed: int = 1) -> tuple[list[bytes], list[int]]:
    rnd = __import__("random").Random(seed)
    return [rnd.randbytes(200 + 17 * i) for i in range(n)], [i % 7 for i in range(n)]


def read_all(data: bytes, columns: Columns = Columns()) -> tuple[list[bytes], list[int], Ranged]:
    get = Ranged(data)
    meta = read_metadata(get, len(data))
    out, labels = [], []
    for g, (start, length) in enumerate(row_group_ranges(meta)):
        table = decode_row_group(meta, g, get(start, length), start, len(data))
        d, lab = samples(table, columns)
        out += d
        labels += lab
    return out, labels, get


@pytest.mark.parametrize("compression", ["none", "snappy", "zstd"])
def test_one_get_for_the_footer_and_one_per_row_group(compression):
    imgs, labels = dataset()
    data = write_table(imgs, labels, row_group_size=16, compression=compression)
    out, got_labels, get = read_all(data)
    assert out == imgs and got_labels == labels
    assert len(get.calls) == 1 + 7
    assert get.calls[0] == (len(data) - TAIL, TAIL)
    ranges = get.calls[1:]
    # the row groups tile the data between the magic and the footer
    assert ranges[0][0] == 4
    assert all(a[0] + a[1] == b[0] for a, b in zip(ranges, ranges[1:]))


def test_rows_per_group_and_small_file_tail():
    imgs, labels = dataset(10)
    data = write_table(imgs, labels, row_group_size=4)
    get = Ranged(data)
    meta = read_metadata(get, len(data))
    assert row_counts(meta) == [4, 4, 2]
    assert get.calls == [(0, len(data))]  # a file smaller than the tail is read whole, once


def test_footer_longer_than_the_tail_costs_a_second_get():
    imgs, labels = dataset(700)
    data = write_table([i[:10] for i in imgs], labels, row_group_size=1)
    get = Ranged(data)
    meta = read_metadata(get, len(data))
    assert meta.num_row_groups == 700
    assert len(get.calls) == 2 and get.calls[1][1] > TAIL


def test_files_written_by_pyarrow_directly_are_read():
    imgs, labels = dataset(40)
    table = pa.table({"pixels": pa.array(imgs, pa.large_binary()), "y": pa.array(labels, pa.int32()),
                      "extra": pa.array([1.5] * 40)})
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=9)  # snappy, pyarrow's defaults
    out, got, _ = read_all(buf.getvalue(), Columns(data="pixels", label="y"))
    assert out == imgs and got == labels


def test_our_files_are_read_by_pyarrow():
    imgs, labels = dataset(30)
    table = pq.read_table(io.BytesIO(write_table(imgs, labels, row_group_size=8)))
    assert table.column("image").to_pylist() == imgs and table.column("label").to_pylist() == labels
    assert pq.ParquetFile(io.BytesIO(write_table(imgs, labels, row_group_size=8))).metadata.num_row_groups == 4


def test_unlabelled_samples_and_missing_column():
    imgs, labels = dataset(5)
    data = write_table(imgs, labels, row_group_size=5, columns=Columns(label=None))
    out, got, _ = read_all(data)
    assert out == imgs and got == [-1] * 5
    with pytest.raises(DataError, match="no column 'pixels'"):
        read_all(data, Columns(data="pixels"))


def test_not_parquet_is_named():
    with pytest.raises(DataError, match="not a Parquet file"):
        read_metadata(Ranged(os.urandom(100)), 100, "x.parquet")


def test_wrong_range_is_an_error_not_an_extra_read():
    imgs, labels = dataset(20)
    data = write_table(imgs, labels, row_group_size=10)
    meta = read_metadata(Ranged(data), len(data))
    (s0, l0), _ = row_group_ranges(meta)
    with pytest.raises(DataError, match="row group 1"):
        decode_row_group(meta, 1, data[s0:s0 + l0], s0, len(data))
