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
from dnnbench.storage.keys import unsafe_key


@dataclass
class SourceTree:
    root: str
    files: list[tuple[str, str]]  # (local path, key relative to the prefix: "<class>/<file>")
    skipped: int
    classes: int
    real_root: str = ""  # ``root`` with every symlink resolved: nothing is read from outside it


def _inside(real: str, real_root: str) -> bool:
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def _escapes(what: str, real: str, source: str) -> DataError:
    return DataError(f"{what} is a link to {real}, outside {source}: refused", reference="--from",
                     hint="copy the data into the folder, or give the folder it lives in as --from")


def scan(source: str, extensions: list[str]) -> SourceTree:
    """Find ``<class>/<file>`` samples under ``source``, in a deterministic order.

    Symbolic links are followed only while they stay inside ``source`` (a link back to a
    folder being walked is skipped, so link loops end); one pointing outside is refused.

    Raises:
        DataError: the folder is missing, has no class folder with samples, or holds a
            link out of it or a name that is not a safe object key.
    """
    root = os.path.abspath(os.path.expanduser(source))
    if not os.path.isdir(root):
        raise DataError(f"folder {source} does not exist", reference="--from",
                        hint="give a local image-folder dataset: DIR/<class>/<image files>")
    real_root = os.path.realpath(root)
    chains: dict[str, tuple[str, ...]] = {root: (real_root,)}  # real folders from the root down to each
    files: list[tuple[str, str]] = []
    skipped = 0
    classes = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        chain = chains.pop(dirpath, (os.path.realpath(dirpath),))
        rel_dir = os.path.relpath(dirpath, root)
        keep = []
        for d in sorted(d for d in dirnames if not d.startswith(".")):
            full = os.path.join(dirpath, d)
            real = os.path.realpath(full)
            if not _inside(real, real_root):
                raise _escapes(os.path.relpath(full, root), real, source)
            if real in chain:  # a link back to a folder above: walking it would never end
                continue
            chains[full] = (*chain, real)
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            if rel_dir == "." or name.startswith(".") or os.path.splitext(name)[1].lower() not in extensions:
                skipped += 1
                continue
            full = os.path.join(dirpath, name)
            real = os.path.realpath(full)
            rel = f"{rel_dir}/{name}".replace(os.sep, "/")
            if not _inside(real, real_root):
                raise _escapes(rel, real, source)
            if not os.path.isfile(real):  # a dangling link, a fifo...
                skipped += 1
                continue
            if unsafe_key(rel):
                raise DataError(f"{rel!r} is not a safe object key", reference="--from",
                                hint="rename the file: no '..' parts, no leading '/'")
            files.append((full, rel))
            classes.add(rel.split("/", 1)[0])
    if not files:
        raise DataError(f"no <class>/<file> samples with extensions {extensions} under {source}",
                        reference="--from", hint="the layout is DIR/<class>/<image files>, like flower_photos")
    return SourceTree(root, files, skipped, len(classes), real_root)


def upload(storage: Storage, prefix: str, tree: SourceTree, workers: int,
           progress: Callable[[int, int], None] | None = None) -> PrepareStats:
    """Put every file of ``tree`` under ``prefix`` on a thread pool.

    Every file is checked again as it is read (still inside the tree, a safe key), so a
    link swapped in after the scan reads nothing from outside.

    Args:
        progress: called with (files done so far, bytes of this file) after each upload.

    Raises:
        DataError: a file now resolves outside the tree, or a key would not be safe.
    """
    t0 = time.perf_counter()
    real_root = tree.real_root or os.path.realpath(tree.root)

    def one(item: tuple[str, str]) -> int:
        path, rel = item
        key = f"{prefix}/{rel}" if prefix else rel
        if unsafe_key(key) or unsafe_key(rel):
            raise DataError(f"{key!r} is not a safe object key", reference="--from")
        real = os.path.realpath(path)
        if not _inside(real, real_root):
            raise _escapes(rel, real, tree.root)
        with open(real, "rb") as f:
            data = f.read()
        storage.put(key, data)
        return len(data)

    total = done = 0
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="upload") as pool:
        for n in pool.map(one, tree.files):
            total += n
            done += 1
            if progress is not None:
                progress(done, n)
    return PrepareStats(len(tree.files), total, time.perf_counter() - t0)
