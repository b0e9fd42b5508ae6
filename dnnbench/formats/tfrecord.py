"""TFRecord files without TensorFlow: framing, CRC checks, DALI index files.

A file is records back to back, no header or footer; each record is::

    uint64 length (LE) | uint32 masked CRC32C of those 8 bytes | data | uint32 masked CRC32C of data

(``masked = rotate_right(crc, 15) + 0xa282ead8``). A DALI index (``tools/tfrecord2idx``,
the file DLIO writes to ``{data_folder}/index/{train|valid}/{name}.idx``) has one text line
``"{offset} {size}"`` per record, ``size`` including the 16 framing bytes, so one ranged GET
of ``[offset, offset + size)`` returns one whole record. Without an index, :func:`scan_index`
finds the same ranges from the headers alone.

CRC32C comes from ``google-crc32c`` (C; it takes ``bytes`` only, so each record is verified on
the ``bytes`` slice that is handed on anyway). The records' content is usually a
``tf.train.Example`` (:mod:`dnnbench.formats.example_proto`).
"""

from __future__ import annotations

import io
import posixpath
import struct
from typing import Any, BinaryIO, Iterable, Iterator

import google_crc32c

import numpy as np

from dnnbench.errors import DataError, SampleError
from dnnbench.formats.base import DecodeSpec, FileFormat, FileIndex, FileSpec, Sample, random_array
from dnnbench.formats.example_proto import decode_example, encode_example
from dnnbench.formats.rangefile import RangeFile
from dnnbench.formats.spec import TfrecordOptions

MASK_DELTA = 0xA282EAD8
HEADER = 12
FOOTER = 4
OVERHEAD = HEADER + FOOTER
_LEN = struct.Struct("<QI")
_CRC = struct.Struct("<I")


class CorruptRecord(SampleError, ValueError):
    """A TFRecord that fails its CRC, or a file cut inside a record (a ValueError too: what the
    :class:`~dnnbench.formats.base.Format` contract raises for a damaged file)."""

    def __init__(self, name: str, offset: int, what: str):
        super().__init__(f"corrupt TFRecord at byte {offset}: {what}", reference=name or None,
                         hint="the file is damaged or not a TFRecord file (GZIP/ZLIB-compressed TFRecords "
                              "are not supported); write it again")
        self.offset = offset


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC32C of ``data`` (``bytes``)."""
    c = google_crc32c.value(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + MASK_DELTA) & 0xFFFFFFFF


def frame(record: bytes) -> bytes:
    """One framed record: length, its CRC, the data, the data's CRC."""
    n = struct.pack("<Q", len(record))
    return b"".join((n, _CRC.pack(masked_crc(n)), record, _CRC.pack(masked_crc(record))))


def _header(head: bytes, pos: int, verify: bool, name: str) -> int:
    """The data length of the record whose 12 header bytes are ``head``."""
    if len(head) < HEADER:
        raise CorruptRecord(name, pos, f"the file ends inside a record header ({len(head)} of 12 bytes)")
    n, crc = _LEN.unpack(head)
    if verify and masked_crc(head[:8]) != crc:
        raise CorruptRecord(name, pos, "the length's CRC does not match")
    return n


def _check_data(data: bytes, footer: bytes, n: int, pos: int, verify: bool, name: str) -> None:
    if len(data) < n or len(footer) < FOOTER:
        raise CorruptRecord(name, pos, f"the file ends inside a record of {n} bytes")
    if verify and masked_crc(data) != _CRC.unpack(footer)[0]:
        raise CorruptRecord(name, pos, "the data's CRC does not match")


def iter_records(buf: bytes, *, verify: bool = True, name: str = "") -> Iterator[tuple[int, bytes]]:
    """(offset, data) of every record in ``buf``, a whole file (or whole records) in memory.

    Raises:
        CorruptRecord: a CRC fails (with ``verify``) or ``buf`` ends inside a record.
    """
    buf = buf if isinstance(buf, bytes) else bytes(buf)
    pos, end = 0, len(buf)
    while pos < end:
        n = _header(buf[pos:pos + HEADER], pos, verify, name)
        start = pos + HEADER
        data = buf[start:start + n]
        _check_data(data, buf[start + n:start + n + FOOTER], n, pos, verify, name)
        yield pos, data
        pos = start + n + FOOTER


def read_records(stream: Any, *, verify: bool = True, name: str = "") -> Iterator[tuple[int, bytes]]:
    """(offset, data) of every record of a binary stream, read front to back (bounded
    memory: one record at a time). A raw stream is buffered first.

    Raises:
        CorruptRecord: a CRC fails (with ``verify``) or the stream ends inside a record.
    """
    own = not isinstance(stream, (io.BufferedIOBase, io.BytesIO))
    f = io.BufferedReader(stream, 1 << 18) if own else stream
    try:
        yield from _records(f, verify, name)
    finally:
        if own:  # the buffer goes, the caller's stream stays open (a BufferedReader closes what it wraps)
            f.detach()


def _records(f: Any, verify: bool, name: str) -> Iterator[tuple[int, bytes]]:
    pos = 0
    while True:
        head = f.read(HEADER)
        if not head:
            return
        n = _header(head, pos, verify, name)
        data = f.read(n)
        _check_data(data, f.read(FOOTER), n, pos, verify, name)
        yield pos, data
        pos += n + OVERHEAD


def parse_record(chunk: bytes, *, verify: bool = True, name: str = "", offset: int = 0) -> bytes:
    """The data of the one framed record ``chunk`` holds (a ranged GET of an index entry).

    Raises:
        CorruptRecord: a CRC fails, or ``chunk`` is not exactly one record.
    """
    chunk = chunk if isinstance(chunk, bytes) else bytes(chunk)
    n = _header(chunk[:HEADER], offset, verify, name)
    if len(chunk) != n + OVERHEAD:
        raise CorruptRecord(name, offset, f"the index says {len(chunk)} bytes, the record header {n + OVERHEAD} "
                                          "(a stale index?)")
    data = chunk[HEADER:HEADER + n]
    _check_data(data, chunk[HEADER + n:], n, offset, verify, name)
    return data


def scan_index(f: BinaryIO, *, verify: bool = True, name: str = "") -> list[tuple[int, int]]:
    """``(offset, size)`` of every record of a seekable file, from the headers alone (the
    data is skipped with ``seek``); the same entries ``tfrecord2idx`` writes.

    Raises:
        CorruptRecord: a length CRC fails, or the file ends inside a record.
    """
    end = f.seek(0, io.SEEK_END)
    f.seek(0)
    entries: list[tuple[int, int]] = []
    pos = 0
    while pos < end:
        n = _header(f.read(HEADER), pos, verify, name)
        if pos + n + OVERHEAD > end:
            raise CorruptRecord(name, pos, f"the file ends inside a record of {n} bytes")
        entries.append((pos, n + OVERHEAD))
        pos = f.seek(pos + n + OVERHEAD)
    return entries


def format_index(entries: Iterable[tuple[int, int]]) -> bytes:
    """A DALI index file: one ``"offset size"`` line per record."""
    return "".join(f"{off} {size}\n" for off, size in entries).encode()


def parse_index(text: bytes, name: str = "") -> list[tuple[int, int]]:
    """The ``(offset, size)`` entries of a DALI index file.

    Raises:
        DataError: a line is not two non-negative integers, or records overlap.
    """
    entries: list[tuple[int, int]] = []
    for number, line in enumerate(text.decode("ascii", "replace").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
            raise DataError(f"line {number} is not 'offset size': {line[:60]!r}", reference=name or None,
                            hint="a DALI/DLIO TFRecord index has one 'offset size' line per record; delete it "
                                 "to scan the file instead")
        off, size = int(parts[0]), int(parts[1])
        if size < OVERHEAD or (entries and off < entries[-1][0] + entries[-1][1]):
            raise DataError(f"line {number}: record {off} {size} overlaps the one before or is too small",
                            reference=name or None, hint="the index does not belong to this file; delete it")
        entries.append((off, size))
    return entries


def index_key(key: str) -> str:
    """Where DLIO keeps the index of TFRecord ``key``: ``{data_folder}/index/{split}/{name}.idx``,
    the split being the last ``train``/``valid`` folder of the key (subfolders below it are
    dropped, as DLIO does); keys outside such a folder keep theirs in ``index/`` beside them."""
    parts = key.split("/")
    base = parts[-1]
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] in ("train", "valid"):
            return "/".join(parts[:i] + ["index", parts[i], base + ".idx"])
    return posixpath.join(posixpath.dirname(key), "index", base + ".idx")


class RecordWriter:
    """Frames records into a binary file object (an in-memory buffer by default) and keeps
    the index entries of what it wrote."""

    def __init__(self, f: BinaryIO | None = None):
        self.f = f if f is not None else io.BytesIO()
        self.entries: list[tuple[int, int]] = []
        self.pos = 0

    def write(self, record: bytes) -> tuple[int, int]:
        """Append one record; returns its index entry ``(offset, size)``."""
        framed = frame(record)
        self.f.write(framed)
        entry = (self.pos, len(framed))
        self.entries.append(entry)
        self.pos += len(framed)
        return entry

    def getvalue(self) -> bytes:
        """The file's bytes (in-memory writers only)."""
        return self.f.getvalue()  # type: ignore[attr-defined]

    def index(self) -> bytes:
        """The DALI index of the records written so far."""
        return format_index(self.entries)


class TfrecordFormat(FileFormat):
    """``tfrecord``: a sample per record (a ``tf.train.Example``; ``format_options.feature`` its
    bytes, ``label_feature`` its label). Locating reads the DALI index beside a stored file
    (:func:`index_key`, one GET) when there is one, else scans the record headers (ranged reads
    that skip the data); a sample is then one ranged GET of its whole framed record."""

    def __init__(self, options: TfrecordOptions | None = None):
        super().__init__(options or TfrecordOptions())

    def index(self, file: BinaryIO, size: int) -> FileIndex:
        entries = _dali_entries(file, size) if isinstance(file, RangeFile) else None
        if entries is None:
            entries = scan_index(file, verify=self.options.verify_crc, name=getattr(file, "key", ""))
        return FileIndex(np.asarray([e[0] for e in entries], np.int64), np.asarray([e[1] for e in entries], np.int64))

    def read_file(self, stream: BinaryIO, decode: DecodeSpec) -> Iterator[Sample]:
        for _, data in read_records(stream, verify=self.options.verify_crc):
            yield self._decode(data, decode)

    def read_sample(self, data: bytes, meta: Any, item: int, decode: DecodeSpec) -> Sample:
        return self._decode(parse_record(data, verify=self.options.verify_crc), decode)

    def _decode(self, record: bytes, decode: DecodeSpec) -> Sample:
        """(sample, label) of one record's Example.

        Raises:
            ValueError: not an Example, or it lacks the sample's feature.
        """
        ex = decode_example(record)
        value = ex.get(self.options.feature)
        if not isinstance(value, memoryview):
            raise ValueError(f"the record has no bytes feature {self.options.feature!r} (features: {', '.join(ex)})")
        label = ex.get(self.options.label_feature) if self.options.label_feature else None
        label = int(label[0]) if isinstance(label, list) and label and isinstance(label[0], int) else None
        if self.options.encoded and decode.mode != "none":
            from dnnbench.data.decode import decode_image

            return decode_image(bytes(value), decode.mode, decode.size), label
        return np.frombuffer(value, dtype=np.uint8), label

    def generate(self, rng: np.random.Generator, spec: FileSpec) -> bytes:
        """As DLIO writes it: an Example per sample, ``image`` its bytes, ``size`` its first side."""
        w = RecordWriter()
        side = int(spec.shape[0]) if spec.shape else 1
        for sample in random_array(rng, (spec.samples, *spec.shape), spec.dtype):
            w.write(encode_example({self.options.feature: sample.tobytes(), "size": side}))
        return w.getvalue()

    def sidecars(self, key: str, data: bytes) -> list[tuple[str, bytes]]:
        """The DALI index at DLIO's place (:func:`index_key`)."""
        return [(index_key(key), format_index(scan_index(io.BytesIO(data), verify=False)))]


def _dali_entries(file: RangeFile, size: int) -> list[tuple[int, int]] | None:
    """The entries of the DALI index beside a stored file, when there is one that covers exactly
    the file's ``size`` bytes (None: none, or a stale one: scan instead)."""
    try:
        text, _ = file.storage.get(index_key(file.key))
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        entries = parse_index(text, index_key(file.key))
    except DataError:
        return None
    end = entries[-1][0] + entries[-1][1] if entries else 0
    return entries if end == size else None
