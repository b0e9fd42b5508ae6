"""A minimal ``tf.train.Example`` codec, without TensorFlow or generated protobuf code.

``Example{features(1): Features{feature(1): map<string, Feature>}}``; a ``Feature`` is one
of ``bytes_list(1)``, ``float_list(2)`` (packed float32) or ``int64_list(3)`` (packed
varints; negatives are 10-byte two's complement). Map entries are written in sorted key
order, so the output is byte-identical to TensorFlow's
``SerializeToString(deterministic=True)``; the decoder accepts any order and both packed
and unpacked lists (what TensorFlow and other writers produce).

Features as Python values: ``bytes`` (a one-element bytes list), ``int`` (a one-element
int64 list), ``list[int]``, ``list[float]``, ``list[bytes]``.
"""

from __future__ import annotations

import struct
from typing import Iterator, Union

Value = Union[bytes, int, list]

_BYTES, _FLOAT, _INT64 = 1, 2, 3


class ExampleError(ValueError):
    """The bytes are not a well-formed ``tf.train.Example``."""


def _varint(v: int) -> bytes:
    out = bytearray()
    v &= 0xFFFFFFFFFFFFFFFF
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _ld(field: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint((field << 3) | 2) + _varint(len(payload)) + payload


def _feature(name: str, v: Value) -> bytes:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return _ld(_BYTES, _ld(1, bytes(v)))
    if isinstance(v, bool) or not isinstance(v, (int, list, tuple)):
        raise TypeError(f"feature {name!r}: {type(v).__name__} is not bytes, int, or a list of them or of floats")
    if isinstance(v, int):
        return _ld(_INT64, _ld(1, _varint(v)))
    if all(isinstance(x, (bytes, bytearray, memoryview)) for x in v):
        return _ld(_BYTES, b"".join(_ld(1, bytes(x)) for x in v))
    if all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        return _ld(_INT64, _ld(1, b"".join(_varint(x) for x in v)))
    if all(isinstance(x, (int, float)) for x in v):
        return _ld(_FLOAT, _ld(1, struct.pack(f"<{len(v)}f", *v)))
    raise TypeError(f"feature {name!r}: a list must hold only bytes, only ints or only floats")


def encode_example(features: dict[str, Value]) -> bytes:
    """Serialize ``features`` (name -> value) as a ``tf.train.Example``, keys sorted."""
    entries = b"".join(_ld(1, _ld(1, name.encode()) + _ld(2, _feature(name, features[name])))
                       for name in sorted(features))
    return _ld(1, entries)


def _read_varint(mv: memoryview, pos: int) -> tuple[int, int]:
    if pos < len(mv) and mv[pos] < 0x80:  # the common case: one byte (tags, short lengths)
        return mv[pos], pos + 1
    shift = result = 0
    while True:
        if pos >= len(mv) or shift > 63:
            raise ExampleError("truncated or overlong varint")
        b = mv[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(mv: memoryview) -> Iterator[tuple[int, int, "memoryview | int"]]:
    """(field number, wire type, value) of each field of one message."""
    pos, end = 0, len(mv)
    while pos < end:
        key, pos = _read_varint(mv, pos)
        field, wt = key >> 3, key & 7
        if wt == 2:
            n, pos = _read_varint(mv, pos)
            if pos + n > end:
                raise ExampleError("a field runs past the end of its message")
            yield field, wt, mv[pos:pos + n]
            pos += n
        elif wt == 0:
            v, pos = _read_varint(mv, pos)
            yield field, wt, v
        elif wt in (1, 5):
            width = 8 if wt == 1 else 4
            yield field, wt, mv[pos:pos + width]
            pos += width
        else:
            raise ExampleError(f"unsupported protobuf wire type {wt}")


def _ints(lst: memoryview) -> list[int]:
    out: list[int] = []
    for _, wt, v in _fields(lst):
        if wt == 2:
            p = 0
            while p < len(v):  # type: ignore[arg-type]
                x, p = _read_varint(v, p)  # type: ignore[arg-type]
                out.append(x)
        elif wt == 0:
            out.append(v)  # type: ignore[arg-type]
    return [x - (1 << 64) if x >= 1 << 63 else x for x in out]


def _floats(lst: memoryview) -> list[float]:
    out: list[float] = []
    for _, wt, v in _fields(lst):
        if wt in (2, 5):
            out.extend(struct.unpack(f"<{len(v) // 4}f", v))  # type: ignore[arg-type]
    return out


def _value(feature: memoryview) -> "memoryview | list":
    """A Feature's value: the bytes of a one-element bytes list, else the list."""
    for kind, _, lst in _fields(feature):
        if kind == _BYTES:
            vals = [v for f, _, v in _fields(lst) if f == 1]  # type: ignore[arg-type]
            return vals[0] if len(vals) == 1 else vals
        if kind == _INT64:
            return _ints(lst)  # type: ignore[arg-type]
        if kind == _FLOAT:
            return _floats(lst)  # type: ignore[arg-type]
    return []


def decode_example(buf: "bytes | memoryview") -> dict[str, "memoryview | list"]:
    """Parse a serialized ``tf.train.Example``: name -> memoryview (a single bytes value,
    zero-copy into ``buf``) or a list (ints, floats, or several bytes values).

    Raises:
        ExampleError: the bytes are not a well-formed Example.
    """
    out: dict[str, "memoryview | list"] = {}
    try:
        for f, _, features in _fields(memoryview(buf)):
            if f != 1:
                continue
            for f2, _, entry in _fields(features):  # type: ignore[arg-type]
                if f2 != 1:
                    continue
                key, feat = None, None
                for f3, _, v in _fields(entry):  # type: ignore[arg-type]
                    if f3 == 1:
                        key = bytes(v).decode()  # type: ignore[arg-type]
                    elif f3 == 2:
                        feat = v
                if key is not None:
                    out[key] = _value(feat) if feat is not None else []
    except (UnicodeDecodeError, struct.error, TypeError) as e:
        raise ExampleError(f"malformed tf.train.Example: {e}") from None
    return out
