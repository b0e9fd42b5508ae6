"""Image decoding with OpenCV: bytes -> HxWxC uint8 array of the configured size."""

from __future__ import annotations

import cv2
import numpy as np

cv2.setNumThreads(1)  # loader workers are the parallelism; OpenCV threads would oversubscribe


class DecodeError(ValueError):
    """The bytes are not an image OpenCV can decode."""


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
        DecodeError: the data is empty, truncated or not an image.
    """
    check_complete(data)
    flag = cv2.IMREAD_COLOR if mode == "rgb" else cv2.IMREAD_GRAYSCALE
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flag) if data else None
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
