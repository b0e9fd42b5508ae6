"""Every built-in format module: generate -> store -> locate (ranged reads) -> read a sample at a
time and a file at a time, through dnnbench's Storage; exact samples, requests and bytes. And
files written by the field's libraries (numpy, h5py, pyarrow) read by the modules, files the
modules generate read back by those libraries (TensorFlow: tests/unit/test_formats_interop.py)."""

from __future__ import annotations

import io

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dnnbench.config.schema import StorageConfig
from dnnbench.data.records import index_file
from dnnbench.formats import read
from dnnbench.formats.base import DecodeSpec, FileSpec, random_array
from dnnbench.formats.spec import ArrayOptions, Hdf5Options, NpzOptions, ParquetOptions
from dnnbench.registry import FORMATS
from dnnbench.storage.fs import FileSystemStorage

NONE = DecodeSpec("none")
SPEC = FileSpec(samples=5, shape=(6, 7), label=3)


class Counting(FileSystemStorage):
    """A filesystem storage that counts its whole and ranged GETs."""

    def __init__(self, root: str):
        super().__init__(StorageConfig(root=root))
        self.gets: list[str] = []
        self.ranges: list[tuple[str, int, int]] = []

    def _get(self, key):
        self.gets.append(key)
        return super()._get(key)

    def _get_range(self, key, start, length):
        self.ranges.append((key, start, length))
        return super()._get_range(key, start, length)


@pytest.fixture
def storage(tmp_path):
    return Counting(str(tmp_path))


def fmt_of(name: str, options=None):
    cls = FORMATS.get(name)
    return cls(options) if options is not None else cls()


def expected(seed: int = 1, spec: FileSpec = SPEC) -> np.ndarray:
    return random_array(np.random.default_rng(seed), (spec.samples, *spec.shape), spec.dtype)


def store(storage, fmt, key: str, seed: int = 1, spec: FileSpec = SPEC) -> bytes:
    data = fmt.generate(np.random.default_rng(seed), spec)
    storage.put(key, data)
    for side_key, side in fmt.sidecars(key, data):
        storage.put(side_key, side)
    return data


def by_ranges(storage, fmt, key: str, size: int, ranges: bool = True) -> list:
    found, _, _ = index_file(storage, fmt, key, size)
    storage.gets.clear()
    storage.ranges.clear()
    out = []
    for i in range(found.count):
        off, length = int(found.offsets[i]), int(found.lengths[i])
        whole = not ranges or (off, length) == (0, size)
        sample, label, nbytes, why, _ = read.read_record(storage, fmt, key, off, length, whole, found.meta, i, NONE)
        assert why == ""
        out.append((sample, label, nbytes))
    return out


def by_file(storage, fmt, key: str) -> list:
    return list(read.iter_file(storage, fmt, key, NONE))


ARRAY_FORMATS = [("npy", "x.npy", None), ("npz", "x.npz", None), ("hdf5", "x.hdf5", None),
                 ("tfrecord", "x.tfrecord", None), ("parquet", "x.parquet", ParquetOptions(row_group_size=2)),
                 ("tar", "x.tar", None)]


@pytest.mark.parametrize("name, key, options", ARRAY_FORMATS)
def test_round_trip_sample_at_a_time_and_file_at_a_time(storage, name, key, options):
    fmt = fmt_of(name, options)
    data = store(storage, fmt, key)
    want = expected()
    ranged = by_ranges(storage, fmt, key, len(data))
    whole = by_file(storage, fmt, key)
    assert len(ranged) == len(whole) == 5
    for i, ((a, _, _), (b, _, _)) in enumerate(zip(ranged, whole)):
        assert np.array_equal(np.asarray(a).reshape(-1), want[i].reshape(-1))
        assert np.array_equal(np.asarray(b).reshape(-1), want[i].reshape(-1))
    assert sum(n for _, _, n in whole) == len(data)  # a file at a time: exactly the file's bytes


@pytest.mark.parametrize("name, key, per_sample", [("npy", "x.npy", 42), ("npz", "x.npz", 42),
                                                   ("hdf5", "x.hdf5", 42)])
def test_contiguous_arrays_cost_one_ranged_get_of_the_sample_each(storage, name, key, per_sample):
    fmt = fmt_of(name)
    data = store(storage, fmt, key)
    found, _, _ = index_file(storage, fmt, key, len(data))
    got = by_ranges(storage, fmt, key, len(data))
    assert [n for _, _, n in got] == [per_sample] * 5
    assert [length for _, _, length in storage.ranges] == [per_sample] * 5 and storage.gets == []
    assert list(found.offsets[1:] - found.offsets[:-1]) == [per_sample] * 4


def test_tfrecord_sample_is_its_whole_framed_record_and_the_dali_index_is_used(storage):
    fmt = fmt_of("tfrecord")
    data = store(storage, fmt, "d/train/a.tfrecord")
    assert storage.get("d/index/train/a.tfrecord.idx")[0].decode().splitlines()[1].split()[0] != "0"
    storage.gets.clear()
    storage.ranges.clear()
    found, requests, nbytes = index_file(storage, fmt, "d/train/a.tfrecord", len(data))
    idx = storage.get("d/index/train/a.tfrecord.idx")[0]
    assert storage.gets[0] == "d/index/train/a.tfrecord.idx" and storage.ranges == []  # the index, no scan
    assert requests == 1 and nbytes == len(idx)  # counted as what locating the file cost
    assert int(found.lengths.sum()) == len(data) and found.count == 5


@pytest.mark.parametrize("index", [None, b"0 10\n"])
def test_tfrecord_without_or_with_a_stale_index_scans_the_headers(storage, index):
    fmt = fmt_of("tfrecord")
    data = fmt.generate(np.random.default_rng(1), SPEC)
    storage.put("t/a.tfrecord", data)
    if index is not None:
        storage.put("t/index/a.tfrecord.idx", index)
    found, requests, _ = index_file(storage, fmt, "t/a.tfrecord", len(data))
    assert requests >= 1 and found.count == 5 and int(found.lengths.sum()) == len(data)


def test_tfrecord_labels_and_encoded_images(storage):
    from dnnbench.formats.example_proto import encode_example
    from dnnbench.formats.spec import TfrecordOptions
    from dnnbench.formats.tfrecord import RecordWriter
    import cv2

    img = np.full((8, 9, 3), 200, np.uint8)
    w = RecordWriter()
    w.write(encode_example({"image": cv2.imencode(".png", img)[1].tobytes(), "label": 7}))
    storage.put("e.tfrecord", w.getvalue())
    fmt = fmt_of("tfrecord", TfrecordOptions(encoded=True))
    (sample, label), = fmt.read_file(io.BytesIO(w.getvalue()), DecodeSpec("rgb", (4, 5)))
    assert label == 7 and sample.shape == (4, 5, 3) and int(sample[0, 0, 0]) == 200


def test_parquet_rows_decode_their_row_group_once_and_carry_labels(storage):
    fmt = fmt_of("parquet", ParquetOptions(row_group_size=2))
    data = store(storage, fmt, "p.parquet")
    found, _, _ = index_file(storage, fmt, "p.parquet", len(data))
    assert list(found.meta.first_rows) == [0, 2, 4] and len(set(found.offsets.tolist())) == 3
    got = by_ranges(storage, fmt, "p.parquet", len(data))
    assert [label for _, label, _ in got] == [3] * 5


@pytest.mark.parametrize("name", ["jpeg", "png"])
def test_images_are_one_sample_read_whole(storage, name):
    fmt = fmt_of(name)
    data = store(storage, fmt, f"i.{name}", spec=FileSpec(1, (16, 12)))
    (sample, label, nbytes), = by_ranges(storage, fmt, f"i.{name}", len(data))
    assert sample == data and nbytes == len(data) and label is None
    decoded, _ = fmt.read_sample(data, None, 0, DecodeSpec("gray", (16, 12)))
    assert decoded.shape == (16, 12, 1)
    if name == "png":  # lossless: the generated pixels come back
        assert np.array_equal(decoded[..., 0], expected(1, FileSpec(1, (16, 12)))[0])


def test_raw_is_the_bytes(storage):
    fmt = fmt_of("raw")
    data = store(storage, fmt, "r.bin")
    (sample, _, nbytes), = by_ranges(storage, fmt, "r.bin", len(data))
    assert sample.tobytes() == expected().tobytes() == data and nbytes == 5 * 42


@pytest.mark.parametrize("name, key", [(n, k) for n, k, _ in ARRAY_FORMATS] + [("png", "i.png")])
def test_generation_is_reproducible_per_seed(name, key):
    fmt = fmt_of(name)
    a, b = (fmt.generate(np.random.default_rng(4), SPEC) for _ in range(2))
    assert a == b and a != fmt.generate(np.random.default_rng(5), SPEC)


# -- files written by the field's libraries -----------------------------------------------------
def test_np_save_and_savez_files_are_read(storage):
    x = np.arange(4 * 3 * 2, dtype=np.float32).reshape(4, 3, 2)
    buf = io.BytesIO()
    np.save(buf, x)
    storage.put("a.npy", buf.getvalue())
    buf = io.BytesIO()
    np.savez(buf, x=x, y=np.zeros(4))
    storage.put("a.npz", buf.getvalue())
    for name, key in (("npy", "a.npy"), ("npz", "a.npz")):
        got = by_ranges(storage, fmt_of(name), key, len(storage.get(key)[0]))
        assert [g[0].tolist() for g in got] == [s.tolist() for s in x] and [g[2] for g in got] == [24] * 4


def test_dlio_npz_samples_on_the_last_axis_round_trip(storage):
    """DLIO: np.savez(x=uint8 (dim1, dim2, n), y=zeros(n)); a sample is x[..., i], read whole."""
    x = np.random.default_rng(0).integers(0, 255, (6, 7, 3), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, x=x, y=np.zeros(3, np.int64))
    storage.put("img_0_of_1.npz", buf.getvalue())
    fmt = fmt_of("npz", NpzOptions(sample_axis="last"))
    got = by_ranges(storage, fmt, "img_0_of_1.npz", len(buf.getvalue()))
    assert [np.array_equal(g[0], x[..., i]) for i, g in enumerate(got)] == [True] * 3
    assert [g[2] for g in got] == [len(buf.getvalue())] * 3  # strided: the whole file per sample
    ours = fmt.generate(np.random.default_rng(2), FileSpec(3, (6, 7)))
    with np.load(io.BytesIO(ours)) as z:  # what we generate is DLIO's shape
        assert z["x"].shape == (6, 7, 3) and z["x"].dtype == np.uint8 and z["y"].tolist() == [0, 0, 0]


@pytest.mark.parametrize("chunked", [False, True])
def test_h5py_files_are_read(storage, chunked):
    x = np.random.default_rng(0).integers(0, 255, (5, 4, 3), dtype=np.uint8)
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_dataset("records", data=x, **({"chunks": (1, 4, 3), "compression": "gzip"} if chunked else {}))
    storage.put("a.h5", buf.getvalue())
    got = by_ranges(storage, fmt_of("hdf5"), "a.h5", len(buf.getvalue()))
    assert [np.array_equal(g[0], x[i]) for i, g in enumerate(got)] == [True] * 5
    assert [g[2] for g in got] == ([len(buf.getvalue())] if chunked else [12]) * 5


def test_pyarrow_parquet_is_read(storage):
    table = pa.table({"image": [bytes([i]) * (i + 1) for i in range(7)], "label": list(range(7))})
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=3, compression="snappy")
    storage.put("a.parquet", buf.getvalue())
    got = by_ranges(storage, fmt_of("parquet"), "a.parquet", len(buf.getvalue()))
    assert [g[0].tobytes() for g in got] == table.column("image").to_pylist()
    assert [g[1] for g in got] == list(range(7))


def test_generated_files_are_read_by_the_libraries():
    x = expected()
    npy = fmt_of("npy").generate(np.random.default_rng(1), SPEC)
    assert np.array_equal(np.load(io.BytesIO(npy)), x)
    last = fmt_of("npy", ArrayOptions(sample_axis="last")).generate(np.random.default_rng(1), SPEC)
    assert np.array_equal(np.load(io.BytesIO(last)), np.moveaxis(x, 0, -1))
    with np.load(io.BytesIO(fmt_of("npz").generate(np.random.default_rng(1), SPEC))) as z:
        assert np.array_equal(z["x"], x) and z["y"].tolist() == [3] * 5
    h5 = fmt_of("hdf5", Hdf5Options(dataset="images")).generate(np.random.default_rng(1), SPEC)
    with h5py.File(io.BytesIO(h5), "r") as f:
        assert np.array_equal(f["images"][()], x) and f["labels"][()].tolist() == [3] * 5
        assert f["images"].chunks is None and f["images"].compression is None
    table = pq.read_table(io.BytesIO(fmt_of("parquet").generate(np.random.default_rng(1), SPEC)))
    assert table.column("image").to_pylist() == [s.tobytes() for s in x] and table.column("label").to_pylist() == [3] * 5


@pytest.mark.parametrize("name, junk", [("npy", b"not numpy" * 20), ("npz", b"PK no zip" * 20),
                                        ("hdf5", b"\x89HDF nope" * 20), ("tfrecord", b"\x05" * 40),
                                        ("parquet", b"nope" * 40), ("tar", b"\x01" * 2000)])
def test_a_file_of_another_kind_is_a_value_error(storage, name, junk):
    storage.put("j", junk)
    with pytest.raises(ValueError):
        index_file(storage, fmt_of(name), "j", len(junk))


class _Trickle(io.RawIOBase):
    """A stream of unknown length (no file behind it), as an S3 body or an emulated store's is,
    that returns at most ``step`` bytes a read and keeps the sizes it was asked for."""

    def __init__(self, data: bytes, step: int):
        self.src, self.step, self.asked = io.BytesIO(data), step, []

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        self.asked.append(len(b))
        chunk = self.src.read(min(len(b), self.step))
        b[:len(chunk)] = chunk
        return len(chunk)


@pytest.mark.parametrize("n", [0, 1, 999, 1000, 1001, 3000, 7777])
def test_a_stream_of_unknown_length_is_read_whole_into_growing_buffers(monkeypatch, n):
    from dnnbench.formats import base

    monkeypatch.setattr(base, "FIRST_CHUNK", 1000)
    monkeypatch.setattr(base, "READ_CHUNK", 4000)
    data = np.random.default_rng(n).bytes(n)
    stream = _Trickle(data, step=333)
    assert bytes(base.read_all(stream)) == data
    # buffers of 1000, 2000, 4000, 4000, ...: the first read asks for FIRST_CHUNK, none for more
    # than READ_CHUNK (a raw stream's read(n) zero-fills all n)
    assert stream.asked[0] == 1000 and max(stream.asked) <= 4000


def test_a_local_file_is_read_into_one_buffer_of_its_size(tmp_path):
    from dnnbench.formats import base

    path = tmp_path / "f.bin"
    data = np.random.default_rng(0).bytes(12345)
    path.write_bytes(data)
    with open(path, "rb", buffering=0) as f:
        got = base.read_all(f)
    assert isinstance(got, memoryview) and got.nbytes == len(data) and bytes(got) == data


def test_bytes_in_memory_are_read_whole_from_where_the_stream_is():
    from dnnbench.formats import base

    data = np.random.default_rng(1).bytes(5000)
    assert base.read_all(io.BytesIO(data)) == data
    stream = io.BytesIO(data)
    stream.seek(1234)
    assert base.read_all(stream) == data[1234:]
