"""TFRecord with TensorFlow itself: files ``tf.io.TFRecordWriter`` writes are located and read by
the tfrecord format; files it generates (and their DALI index) are read by ``tf.data``.
Slow: importing TensorFlow takes 5-20 s on the shared CI cores."""

from __future__ import annotations

import numpy as np
import pytest

from dnnbench.config.schema import StorageConfig
from dnnbench.data.records import index_file
from dnnbench.formats import read
from dnnbench.formats.base import DecodeSpec, FileSpec, random_array
from dnnbench.formats.tfrecord import TfrecordFormat, parse_index, scan_index
from dnnbench.storage.fs import FileSystemStorage

pytestmark = pytest.mark.slow
tf = pytest.importorskip("tensorflow")


def example(image: bytes, label: int) -> bytes:
    feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
               "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_tensorflow_written_file_is_read_both_ways(tmp_path):
    images = [bytes([i]) * (100 + 37 * i) for i in range(6)]
    with tf.io.TFRecordWriter(str(tmp_path / "tf.tfrecord")) as w:
        for i, img in enumerate(images):
            w.write(example(img, 10 + i))
    storage = FileSystemStorage(StorageConfig(root=str(tmp_path)))
    size = (tmp_path / "tf.tfrecord").stat().st_size
    fmt = TfrecordFormat()
    found, _, _ = index_file(storage, fmt, "tf.tfrecord", size)
    assert found.count == 6 and int(found.lengths.sum()) == size
    for i in range(6):
        sample, label, nbytes, why, _ = read.read_record(storage, fmt, "tf.tfrecord", int(found.offsets[i]),
                                                      int(found.lengths[i]), False, None, i, DecodeSpec())
        assert why == "" and sample.tobytes() == images[i] and label == 10 + i and nbytes == found.lengths[i]
    streamed = list(read.iter_file(storage, fmt, "tf.tfrecord", DecodeSpec()))
    assert [s.tobytes() for s, _, _ in streamed] == images and sum(n for _, _, n in streamed) == size


def test_generated_file_and_index_are_read_by_tf_data(tmp_path):
    spec = FileSpec(7, (20, 30), label=0)
    fmt = TfrecordFormat()
    data = fmt.generate(np.random.default_rng(3), spec)
    (idx_key, idx), = fmt.sidecars("train/a.tfrecord", data)
    assert idx_key == "index/train/a.tfrecord.idx"
    path = tmp_path / "a.tfrecord"
    path.write_bytes(data)
    want = random_array(np.random.default_rng(3), (7, 20, 30))
    features = {"image": tf.io.FixedLenFeature([], tf.string), "size": tf.io.FixedLenFeature([1], tf.int64)}
    got = [tf.io.parse_single_example(r, features) for r in tf.data.TFRecordDataset(str(path))]
    assert [g["image"].numpy() for g in got] == [s.tobytes() for s in want]
    assert [int(g["size"].numpy()[0]) for g in got] == [20] * 7
    import io

    assert parse_index(idx) == scan_index(io.BytesIO(data))
