"""``png``: one PNG image per object, decoded with OpenCV; generated images are PNG at OpenCV's
default compression."""

from __future__ import annotations

from dnnbench.formats.images import ImageFormat


class PngFormat(ImageFormat):
    """A PNG per object."""

    ext = ".png"
