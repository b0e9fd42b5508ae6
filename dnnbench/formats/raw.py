"""``raw``: one sample per object, its bytes handed on undecoded (a uint8 array); generated
files are ``samples x shape`` random bytes (DLIO's indexed_binary without its sidecars)."""

from __future__ import annotations

from dnnbench.formats.base import FileFormat


class RawFormat(FileFormat):
    """Bytes per object: the defaults of :class:`~dnnbench.formats.base.FileFormat`."""
