"""Image decoding with OpenCV: bytes -> HxWxC uint8 array of the configured size.

A sample that cannot be decoded is a :class:`DecodeError` naming why, never an OpenCV
traceback: not an image, truncated, or too large (a file over :data:`MAX_ENCODED_BYTES` is not
even read; a header claiming more than :data:`MAX_PIXELS` pixels is not decoded, so a bad file
cannot make a loader worker allocate gigabytes).
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

cv2.setNumThreads(1)  # loader workers are the parallelism; OpenCV threads would oversubscribe

#: the largest encoded image read for decoding (1 GiB); raw reads (decode: none) have no limit
MAX_ENCODED_BYTES = 1 << 30
#: the most pixels an image may have to be decoded (2^28: 16384 x 16384; 768 MiB as RGB)
MAX_PIXELS = 1 << 28


class DecodeError(ValueError):
    """The bytes are not an image OpenCV can decode."""


def too_large(nbytes: int, mode: str) -> str | None:
    """Why an object of ``nbytes`` is not read for decoding (None: it may be)."""
    if mode == "none" or nbytes <= MAX_ENCODED_BYTES:
        return None
    return f"{nbytes:,} bytes: larger than the {MAX_ENCODED_BYTES:,} an image to decode may have (not read)"


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame marker; None when none is found."""
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and i + 9 <= n:
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        i += 2 + length
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) that a JPEG or PNG header claims; None for other formats or no header."""
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    return None


def check_dimensions(data: bytes) -> None:
    """Refuse images larger than the machine should decode.

    Raises:
        DecodeError: the file or the pixel count its header claims is over the limit.
    """
    if len(data) > MAX_ENCODED_BYTES:
        raise DecodeError(f"{len(data):,} bytes: larger than the {MAX_ENCODED_BYTES:,} an image to decode may have")
    size = image_size(data)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise DecodeError(f"the header claims {size[0]} x {size[1]} pixels, more than the {MAX_PIXELS:,} "
                          "an image to decode may have")


def channels(mode: str) -> int:
    return {"rgb": 3, "gray": 1, "none": 0}[mode]


def check_complete(data: bytes) -> None:
    """Refuse truncated JPEG and PNG files, which OpenCV would decode half grey without an error.

    Raises:
        DecodeError: the end-of-image marker is missing.
    """
    if data[:2] == b"\xff\xd8":
        if data.rstrip(b"\x00")[-2:] != b"\xff\xd9":
            raise DecodeError(f"truncated JPEG ({len(data)} bytes, no end-of-image marker)")
    elif data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-12:]:
        raise DecodeError(f"truncated PNG ({len(data)} bytes, no IEND chunk)")


def decode_image(data: bytes, mode: str, size: tuple[int, int]) -> np.ndarray:
    """Decode and resize to ``size`` = (height, width).

    Returns an array of shape (H, W, 3) for rgb or (H, W, 1) for gray, uint8.

    Raises:
        DecodeError: the data is empty, truncated, too large or not an image.
    """
    check_dimensions(data)
    check_complete(data)
    flag = cv2.IMREAD_COLOR if mode == "rgb" else cv2.IMREAD_GRAYSCALE
    try:
        img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flag) if data else None
    except cv2.error as e:  # OpenCV's own limits and corrupt headers: a bad sample, not a traceback
        raise DecodeError(f"OpenCV cannot decode it ({len(data):,} bytes): {_first_line(e)}") from None
    if img is None:
        raise DecodeError(f"not a decodable image ({len(data)} bytes)")
    h, w = size
    if img.shape[0] != h or img.shape[1] != w:
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    if mode == "rgb":
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        img = img[:, :, None]
    return img


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[-1] if lines else type(e).__name__
