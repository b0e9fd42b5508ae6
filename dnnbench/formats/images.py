"""One encoded image per object (jpeg, png): what the two image formats share.

A file is one sample: read whole, decoded with OpenCV to ``dataset.image_dimension`` in
``dataset.decode``'s mode (rgb | gray), or handed on as its stored bytes when decoding is off.
Generated images are DLIO's: a ``dim1 x dim2`` grayscale array of random bytes, encoded
(noise compresses poorly, so a file's size is close to, not equal to, ``record_length``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dnnbench.formats.base import DecodeSpec, FileFormat, FileSpec, Sample, random_array


class ImageFormat(FileFormat):
    """An image per object, encoded as ``ext`` by OpenCV (subclasses name it)."""

    ext = ".png"
    params: tuple[int, ...] = ()

    def read_sample(self, data: bytes, meta: Any, item: int, decode: DecodeSpec) -> Sample:
        if decode.mode == "none":
            return data, None
        from dnnbench.data.decode import decode_image

        return decode_image(data, decode.mode, decode.size), None

    def generate(self, rng: np.random.Generator, spec: FileSpec) -> bytes:
        """One grayscale image of ``spec.shape[:2]`` random pixels (``spec.samples`` is ignored:
        an image file holds one sample, as DLIO's do)."""
        import cv2

        shape = tuple(spec.shape[:2]) if len(spec.shape) >= 2 else (1, max(1, spec.sample_nbytes))
        ok, buf = cv2.imencode(self.ext, random_array(rng, shape, "uint8"), list(self.params))
        if not ok:
            raise ValueError(f"OpenCV could not encode a {shape} {self.ext} image")
        return buf.tobytes()
