"""Tar shards in the WebDataset layout: members ``<key>.<ext>`` (the image) and
``<key>.cls`` (the label as decimal text), grouped by key, plus an ``index.json``
beside the shards with per-shard sample counts and the class names.

Packing draws a seeded random sample order and cuts shards at ``max_bytes`` or
``max_samples``. Reading streams each shard from storage through a tar reader in
stream mode: memory is bounded by one member at a time (and the shuffle buffer),
never the whole shard.
"""

from __future__ import annotations

import io
import json
import posixpath
import random
import tarfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from dnnbench.data.index import SampleIndex
from dnnbench.errors import DataError
from dnnbench.storage.base import Storage

INDEX_NAME = "index.json"


@dataclass
class PackStats:
    shards: int
    samples: int
    bytes_read: int
    bytes_written: int
    seconds: float

    @property
    def MB_per_s(self) -> float:  # noqa: N802 - unit in the name
        return self.bytes_written / 1e6 / self.seconds if self.seconds > 0 else 0.0


def _padded(n: int) -> int:
    """Bytes a member of n bytes takes in a tar: its header plus data in 512-byte blocks."""
    return 512 + (n + 511) // 512 * 512


def _member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def pack(storage: Storage, index: SampleIndex, prefix: str, *, max_bytes: int, max_samples: int,
         seed: int = 0, target: Storage | None = None,
         progress: Callable[[int, int], None] | None = None) -> PackStats:
    """Pack the samples of ``index`` (read from ``storage``) into shards under ``prefix``.

    Args:
        target: where the shards go (default: the same storage).
        progress: called with (samples packed so far, bytes of this sample).
    """
    target = target or storage
    order = list(range(len(index)))
    random.Random(seed).shuffle(order)
    t0 = time.perf_counter()
    shards: list[dict[str, Any]] = []
    buf = io.BytesIO()
    tar = tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT)
    count = read = written = 0

    def flush() -> None:
        nonlocal buf, tar, count, written
        buf.write(b"\0" * 1024)  # the end-of-archive blocks, without tarfile's 10 KiB record padding
        tar.closed = True
        data = buf.getvalue()
        key = posixpath.join(prefix, f"shard-{len(shards):06d}.tar") if prefix else f"shard-{len(shards):06d}.tar"
        target.put(key, data)
        shards.append({"key": key, "samples": count, "bytes": len(data)})
        written += len(data)
        buf = io.BytesIO()
        tar = tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT)
        count = 0

    for done, i in enumerate(order, 1):
        data, _ = storage.get(index.keys[i])
        ext = posixpath.splitext(index.keys[i])[1].lstrip(".").lower() or "bin"
        if count and (count >= max_samples or buf.tell() + _padded(len(data)) + 2048 > max_bytes):
            flush()
        name = f"{i:09d}"
        _member(tar, f"{name}.{ext}", data)
        _member(tar, f"{name}.cls", str(int(index.labels[i])).encode())
        count += 1
        read += len(data)
        if progress is not None:
            progress(done, len(data))
    if count:
        flush()
    meta = {"format": "webdataset-tar", "classes": list(index.classes), "samples": len(index),
            "shards": shards, "seed": seed}
    target.put(posixpath.join(prefix, INDEX_NAME) if prefix else INDEX_NAME, json.dumps(meta, indent=1).encode())
    return PackStats(len(shards), len(index), read, written, time.perf_counter() - t0)


def list_shards(storage: Storage, prefix: str) -> tuple[SampleIndex, dict[str, Any]]:
    """The shards under ``prefix`` as an index (one row per shard) and the pack metadata.

    Raises:
        DataError: no shards there.
    """
    try:
        objects, _ = storage.list(prefix, delimiter=False)
    except FileNotFoundError:
        objects = []
    tars = sorted((o for o in objects if o.key.endswith(".tar")), key=lambda o: o.key)
    if not tars:
        raise DataError(f"no .tar shards under {prefix or '(root)'!r} in {storage.label()}",
                        reference="shards.prefix",
                        hint="pack the dataset first: `python3 benchmark.py prepare --shards --config FILE`")
    meta: dict[str, Any] = {}
    try:
        # metadata, not training data: read without recording it as a request
        meta = json.loads(storage._get(posixpath.join(prefix, INDEX_NAME) if prefix else INDEX_NAME)[0])
    except (FileNotFoundError, ValueError, OSError):
        meta = {}
    counts = {s["key"]: s["samples"] for s in meta.get("shards", [])}
    index = SampleIndex([o.key for o in tars], np.full(len(tars), -1, dtype=np.int64),
                        np.asarray([o.size for o in tars], dtype=np.int64), list(meta.get("classes", [])))
    index.shard_samples = [counts.get(o.key) for o in tars]  # type: ignore[attr-defined]
    return index, meta


def iter_shard(storage: Storage, key: str) -> Iterator[tuple[str, bytes, int, int]]:
    """Stream one shard: yields (sample key, image bytes, label, storage bytes for this sample).

    The storage bytes of a shard's samples add up to the shard's size (tar headers,
    padding and the end blocks included): bytes are what storage returned.

    Raises:
        DataError: the shard is not a valid tar or a sample lacks its image or label.
    """
    stream = storage.open_stream(key)
    try:
        counted = 0
        held: list[Any] | None = None
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            current, parts = None, {}
            for member in tar:
                if not member.isfile():
                    continue
                base, _, ext = member.name.rpartition(".")
                if current is not None and base != current:
                    if held is not None:
                        yield held[0], held[1], held[2], held[3]
                    held = _sample(key, current, parts)
                    held.append(stream.nbytes - counted)
                    counted = stream.nbytes
                    parts = {}
                current = base
                parts[ext] = tar.extractfile(member).read()
            if current is not None:
                if held is not None:
                    yield held[0], held[1], held[2], held[3]
                held = _sample(key, current, parts)
        stream.drain()
        if held is not None:
            yield held[0], held[1], held[2], stream.nbytes - counted
    except tarfile.TarError as e:
        raise DataError(f"shard {key} is not a valid tar: {e}", reference=key) from None
    finally:
        stream.close()


def _sample(shard: str, base: str, parts: dict[str, bytes]) -> list[Any]:
    label = parts.pop("cls", None)
    images = [v for k, v in parts.items() if k in ("jpg", "jpeg", "png", "bin", "webp")]
    if label is None or not images:
        raise DataError(f"sample {base} in shard {shard} lacks its image or its .cls label", reference=shard)
    return [base, images[0], int(label.decode().strip() or -1)]
