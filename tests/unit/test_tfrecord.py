"""TFRecord framing, CRC checks, DALI index files and the tf.train.Example codec (no TensorFlow:
the bytes TensorFlow writes are pinned below; tests/unit/test_formats_interop.py runs TF itself)."""

from __future__ import annotations

import io

import pytest

from dnnbench.errors import DataError
from dnnbench.formats.example_proto import ExampleError, decode_example, encode_example
from dnnbench.formats.tfrecord import (OVERHEAD, CorruptRecord, RecordWriter, format_index, frame, index_key,
                                       iter_records, masked_crc, parse_index, parse_record, read_records,
                                       scan_index)

# tf.train.Example(image=b"\x00\x01\xfe", label=[-5], size=[338]).SerializeToString(deterministic=True)
# and the file tf.io.TFRecordWriter wrote for it (TensorFlow 2.21)
TF_EXAMPLE = bytes.fromhex("0a3b0a100a05696d61676512070a050a030001fe0a170a056c6162656c120e1a0c0a0afbffffffffffffffff01"
                           "0a0e0a0473697a6512061a040a02d202")
TF_FILE = bytes.fromhex("3d000000000000006049f1ec") + TF_EXAMPLE + bytes.fromhex("403192db")


def test_crc32c_check_value():
    # CRC-32C("123456789") = 0xE3069283 (the standard check value), masked as TFRecord does
    c = 0xE3069283
    assert masked_crc(b"123456789") == ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def test_frame_is_byte_identical_to_tensorflow():
    assert frame(TF_EXAMPLE) == TF_FILE
    assert len(frame(b"")) == OVERHEAD == 16


def test_encoder_is_byte_identical_to_tensorflow_deterministic():
    assert encode_example({"size": 338, "image": b"\x00\x01\xfe", "label": -5}) == TF_EXAMPLE


def test_decode_tensorflow_example():
    (offset, data), = list(iter_records(TF_FILE))
    assert offset == 0
    ex = decode_example(data)
    assert bytes(ex["image"]) == b"\x00\x01\xfe"
    assert ex["size"] == [338] and ex["label"] == [-5]


def test_codec_round_trips_every_kind():
    feats = {"b": b"xyz", "bs": [b"a", b"", b"c"], "i": [0, 1, 2**63 - 1, -(2**63)], "f": [0.5, -2.0, 1e3],
             "empty": b""}
    out = decode_example(encode_example(feats))
    assert bytes(out["b"]) == b"xyz"
    assert [bytes(x) for x in out["bs"]] == [b"a", b"", b"c"]
    assert out["i"] == [0, 1, 2**63 - 1, -(2**63)]
    assert out["f"] == [0.5, -2.0, 1000.0]
    assert bytes(out["empty"]) == b""


def test_decoder_accepts_unpacked_int_lists():
    # int64_list with two unpacked varints (field 1, wire type 0), as old writers emit
    unpacked = bytes([0x08, 0x07, 0x08, 0x09])
    feature = bytes([0x1A, len(unpacked)]) + unpacked
    entry = bytes([0x0A, 1]) + b"n" + bytes([0x12, len(feature)]) + feature
    features = bytes([0x0A, len(entry)]) + entry
    assert decode_example(bytes([0x0A, len(features)]) + features) == {"n": [7, 9]}


@pytest.mark.parametrize("value", [1.5, "text", True, [1, "x"], object()])
def test_encoder_refuses_other_types(value):
    with pytest.raises(TypeError, match="feature 'x'"):
        encode_example({"x": value})


def test_decoder_names_a_malformed_example():
    with pytest.raises(ExampleError):
        decode_example(b"\x0a\x50\x0a")  # a field longer than the message


def records(n: int) -> list[bytes]:
    return [encode_example({"image": bytes([i]) * (i * 37 % 500), "label": i}) for i in range(n)]


def test_writer_readers_and_index_agree():
    w = RecordWriter()
    recs = records(20)
    for r in recs:
        w.write(r)
    data = w.getvalue()
    assert [d for _, d in iter_records(data)] == recs
    assert [d for _, d in read_records(io.BytesIO(data))] == recs
    assert scan_index(io.BytesIO(data)) == w.entries
    assert [off for off, _ in iter_records(data)] == [off for off, _ in w.entries]
    assert sum(size for _, size in w.entries) == len(data)
    assert parse_index(w.index()) == w.entries
    for off, size in w.entries:
        assert parse_record(data[off:off + size], offset=off) in recs


def test_read_records_from_a_raw_stream_that_returns_short_reads():
    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes):
            self.src = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:
            chunk = self.src.read(min(len(b), 7))
            b[:len(chunk)] = chunk
            return len(chunk)

    recs = records(5)
    data = b"".join(frame(r) for r in recs)
    assert [d for _, d in read_records(Trickle(data))] == recs


def corrupt(data: bytes, pos: int) -> bytes:
    return data[:pos] + bytes([data[pos] ^ 0x40]) + data[pos + 1:]


@pytest.mark.parametrize("where, what", [(3, "length's CRC"), (9, "length's CRC"), (20, "data's CRC"),
                                         ("last", "data's CRC")])
def test_corrupt_record_is_named_with_its_offset(where, what):
    recs = records(3)
    data = b"".join(frame(r) for r in recs)
    second = len(frame(recs[0]))
    pos = len(data) - 1 if where == "last" else second + where
    bad = corrupt(data, pos)
    for reader in (lambda: list(iter_records(bad, name="k.tfrecord")),
                   lambda: list(read_records(io.BytesIO(bad), name="k.tfrecord"))):
        with pytest.raises(CorruptRecord) as e:
            reader()
        expected_offset = second + len(frame(recs[1])) if where == "last" else second
        assert e.value.offset == expected_offset
        assert what in str(e.value) and "k.tfrecord" in str(e.value)


def test_without_verify_a_flipped_data_byte_passes():
    data = frame(b"abcdef")
    assert [d for _, d in iter_records(corrupt(data, 13), verify=False)] == [b"a" + bytes([ord("b") ^ 0x40]) + b"cdef"]


@pytest.mark.parametrize("cut", [5, 12, 20, 21])
def test_truncated_file_is_corrupt(cut):
    data = frame(b"x" * 10)[:cut]
    for reader in (lambda: list(iter_records(data)), lambda: list(read_records(io.BytesIO(data))),
                   lambda: scan_index(io.BytesIO(data))):
        with pytest.raises(CorruptRecord, match="ends inside a record"):
            reader()


def test_parse_record_refuses_a_stale_index_range():
    data = frame(b"x" * 10)
    with pytest.raises(CorruptRecord, match="stale index"):
        parse_record(data + b"\0", offset=0)


def test_empty_file_has_no_records():
    assert list(iter_records(b"")) == [] and list(read_records(io.BytesIO(b""))) == []
    assert scan_index(io.BytesIO(b"")) == []


def test_index_text_is_dali_format():
    assert format_index([(0, 116), (116, 40)]) == b"0 116\n116 40\n"
    assert parse_index(b"0 116\n116 40\n\n") == [(0, 116), (116, 40)]


@pytest.mark.parametrize("text, fragment", [(b"0 116\nx 3\n", "line 2"), (b"0 116\n100 40\n", "overlaps"),
                                            (b"0 3\n", "too small")])
def test_bad_index_is_refused(text, fragment):
    with pytest.raises(DataError, match=fragment):
        parse_index(text, "index/train/a.idx")


@pytest.mark.parametrize("key, idx", [
    ("data/train/img_0_of_4.tfrecord", "data/index/train/img_0_of_4.tfrecord.idx"),
    ("data/train/07/img_07_of_16.tfrecord", "data/index/train/img_07_of_16.tfrecord.idx"),
    ("valid/img_1_of_2.tfrecord", "index/valid/img_1_of_2.tfrecord.idx"),
    ("flat/a.tfrecord", "flat/index/a.tfrecord.idx"),
    ("a.tfrecord", "index/a.tfrecord.idx"),
])
def test_index_key_follows_dlio(key, idx):
    assert index_key(key) == idx
