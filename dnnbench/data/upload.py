"""Upload an existing local image-folder dataset (``<class>/<file>``, like
flower_photos) into the configured storage: ``benchmark.py prepare --from DIR``.

Files at the top of DIR (a LICENSE, say), hidden files and files whose
extension is not in ``dataset.extensions`` are skipped and counted.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from dnnbench.data.synthetic import PrepareStats
from dnnbench.errors import DataError
from dnnbench.storage.base import Storage


@dataclass
class SourceTree:
    root: str
    files: list[tuple[str, str]]  # (local path, key relative to the prefix: "<class>/<file>")
    skipped: int
    classes: int


def scan(source: str, extensions: list[str]) -> SourceTree:
    """Find ``<class>/<file>`` samples under ``source``, in a deterministic order.

    Raises:
        DataError: the folder is missing or has no class folder with samples.
    """
    root = os.path.abspath(os.path.expanduser(source))
    if not os.path.isdir(root):
        raise DataError(f"folder {source} does not exist", reference="--from",
                        hint="give a local image-folder dataset: DIR/<class>/<image files>")
    files: list[tuple[str, str]] = []
    skipped = 0
    classes = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted(filenames):
            if rel_dir == "." or name.startswith(".") or os.path.splitext(name)[1].lower() not in extensions:
                skipped += 1
                continue
            rel = f"{rel_dir}/{name}".replace(os.sep, "/")
            files.append((os.path.join(dirpath, name), rel))
            classes.add(rel.split("/", 1)[0])
    if not files:
        raise DataError(f"no <class>/<file> samples with extensions {extensions} under {source}",
                        reference="--from", hint="the layout is DIR/<class>/<image files>, like flower_photos")
    return SourceTree(root, files, skipped, len(classes))


def upload(storage: Storage, prefix: str, tree: SourceTree, workers: int,
           progress: Callable[[int, int], None] | None = None) -> PrepareStats:
    """Put every file of ``tree`` under ``prefix`` on a thread pool.

    Args:
        progress: called with (files done so far, bytes of this file) after each upload.
    """
    t0 = time.perf_counter()

    def one(item: tuple[str, str]) -> int:
        path, rel = item
        with open(path, "rb") as f:
            data = f.read()
        storage.put(f"{prefix}/{rel}" if prefix else rel, data)
        return len(data)

    total = done = 0
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="upload") as pool:
        for n in pool.map(one, tree.files):
            total += n
            done += 1
            if progress is not None:
                progress(done, n)
    return PrepareStats(len(tree.files), total, time.perf_counter() - t0)
