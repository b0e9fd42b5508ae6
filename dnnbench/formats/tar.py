"""``tar``: WebDataset tar shards (today's ``prepare --shards``): a sample is the members sharing
a base name, ``<key>.<jpg|jpeg|png|bin|webp>`` and ``<key>.cls`` (its label). Shards are streamed
whole, in order (``ranged=False``); an image member is decoded with OpenCV per ``dataset.decode``,
a ``.bin`` member handed on as uint8.
"""

from __future__ import annotations

import io
import tarfile
from typing import Any, BinaryIO, Iterator

import numpy as np

from dnnbench.formats.base import DecodeSpec, FileFormat, FileIndex, FileSpec, Sample, random_array

#: member extensions that hold a sample's payload
PAYLOADS = ("jpg", "jpeg", "png", "bin", "webp")


class TarFormat(FileFormat):
    """WebDataset shards: samples = groups of members by base name."""

    def index(self, file: BinaryIO, size: int) -> FileIndex:
        """Counts the samples from the member headers (tarfile seeks past the data)."""
        try:
            with tarfile.open(fileobj=file, mode="r:") as tar:
                bases = {m.name.rpartition(".")[0] for m in tar if m.isfile()}
        except tarfile.TarError as e:
            raise ValueError(f"not a tar file: {e}") from None
        return FileIndex.whole(len(bases), size)

    def read_file(self, stream: BinaryIO, decode: DecodeSpec) -> Iterator[Sample]:
        for parts in _groups(stream):
            yield _decode(parts, decode)

    def read_sample(self, data: bytes, meta: Any, item: int, decode: DecodeSpec) -> Sample:
        for i, parts in enumerate(_groups(io.BytesIO(data))):
            if i == item:
                return _decode(parts, decode)
        raise ValueError(f"the shard holds fewer than {item + 1} samples")

    def generate(self, rng: np.random.Generator, spec: FileSpec) -> bytes:
        """``spec.samples`` members ``<i>.bin`` (the sample's bytes) and ``<i>.cls`` (its label)."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for i, sample in enumerate(random_array(rng, (spec.samples, *spec.shape), spec.dtype)):
                _add(tar, f"{i:06d}.bin", sample.tobytes())
                _add(tar, f"{i:06d}.cls", str(spec.label).encode())
        return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def _groups(stream: BinaryIO) -> Iterator[dict[str, bytes]]:
    """The members of each sample, in stream order (members of one sample are adjacent).

    Raises:
        ValueError: not a tar file.
    """
    current, parts = None, {}
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                base, _, ext = member.name.rpartition(".")
                if current is not None and base != current:
                    yield parts
                    parts = {}
                current = base
                parts[ext.lower()] = tar.extractfile(member).read()
    except tarfile.TarError as e:
        raise ValueError(f"not a tar file: {e}") from None
    if parts:
        yield parts


def _decode(parts: dict[str, bytes], decode: DecodeSpec) -> Sample:
    """(payload, label) of one sample's members.

    Raises:
        ValueError: no payload member, or a label that is not an int.
    """
    cls = parts.get("cls")
    try:
        label = int(cls.decode().strip()) if cls is not None and cls.strip() else None
    except ValueError:
        raise ValueError(f"a .cls member that is not an int: {cls[:20]!r}") from None
    ext = next((e for e in PAYLOADS if e in parts), None)
    if ext is None:
        raise ValueError(f"a sample without a payload member (members: {', '.join(parts)})")
    if ext == "bin" or decode.mode == "none":
        return (np.frombuffer(parts[ext], dtype=np.uint8) if ext == "bin" else parts[ext]), label
    from dnnbench.data.decode import decode_image

    return decode_image(parts[ext], decode.mode, decode.size), label
