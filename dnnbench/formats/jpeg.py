"""``jpeg``: one JPEG image per object (today's image folders), decoded with OpenCV; generated
images are JPEG quality 75 (Pillow's default, which DLIO uses)."""

from __future__ import annotations

from dnnbench.formats.images import ImageFormat

#: OpenCV's JPEG quality flag (cv2.IMWRITE_JPEG_QUALITY), kept here so this module imports no cv2
_IMWRITE_JPEG_QUALITY = 1


class JpegFormat(ImageFormat):
    """A JPEG per object."""

    ext = ".jpg"
    params = (_IMWRITE_JPEG_QUALITY, 75)
