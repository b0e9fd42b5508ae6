"""Parallel listing of a dataset: prefixes -> class prefixes -> objects.

Each configured prefix is listed with a delimiter to discover its class
directories; then every (prefix, class) is listed in full on a thread pool of
``execution.listing_workers``. The result is a :class:`SampleIndex` in a
deterministic order (prefix, class, key). Hidden directories and files (a name starting
with ``.``) are never classes or samples. ``ListingStats.requests`` counts the
requests really sent: one per ListObjectsV2 page for the S3 clients (which also
record one "list" row per page), one per listed prefix for the others.
"""

from __future__ import annotations

import posixpath
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from dnnbench.data.index import SampleIndex
from dnnbench.errors import DataError, StorageError
from dnnbench.storage.base import ObjectInfo, Storage


@dataclass
class ListingStats:
    seconds: float
    objects: int
    bytes: int
    requests: int
    skipped_objects: int
    classes: int
    #: (key, why) of entries that cannot be read (symlink loops...), left out with on_error: skip
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def objects_per_s(self) -> float:
        return self.objects / self.seconds if self.seconds > 0 else 0.0


def list_dataset(storage: Storage, prefixes: list[str], workers: int, extensions: list[str],
                 labels: list[str] | None = None, on_error: str = "fail") -> tuple[SampleIndex, ListingStats]:
    """List every sample of the dataset in parallel.

    An entry the storage lists but cannot read (a symlink loop) is bad input: with ``on_error``
    ``skip`` it is left out and counted (``ListingStats.unreadable``), else an error naming it.

    Raises:
        DataError: a prefix is missing, no class directories, no samples, or an unreadable entry.
        StorageError: the storage refused a listing request.
    """
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="list") as pool:
        try:
            jobs, listed, requests = _list_classes(pool, storage, prefixes, labels)
        except BaseException:
            pool.shutdown(cancel_futures=True)  # the listings not started yet are not sent
            raise
    classes = list(labels) if labels else sorted({name for _, name, _ in jobs})
    class_id = {c: i for i, c in enumerate(classes)}
    order = sorted(range(len(jobs)), key=lambda k: (jobs[k][0], jobs[k][2]))
    rows, skipped, unreadable = _samples([(listed[k], class_id[jobs[k][1]], jobs[k][2]) for k in order],
                                         extensions, on_error)
    seconds = time.perf_counter() - t0
    if not rows:
        raise DataError(f"no samples with extensions {extensions} under prefixes {prefixes}",
                        reference="storage.prefixes",
                        hint="check the prefixes and dataset.extensions, or run `benchmark.py prepare`")
    keys, label_list, sizes = zip(*rows)
    index = SampleIndex(list(keys), np.asarray(label_list, dtype=np.int64), np.asarray(sizes, dtype=np.int64),
                        classes)
    return index, ListingStats(seconds, len(keys), index.total_bytes, requests, skipped, len(classes), unreadable)


def _list_classes(pool: ThreadPoolExecutor, storage: Storage, prefixes: list[str], labels: list[str] | None
                  ) -> tuple[list[tuple[int, str, str]], list[list[ObjectInfo]], int]:
    """List each prefix's class folders, then each class folder in full, on ``pool``. A prefix's
    classes are asked for as soon as that prefix answers (no wait for the others: under latency
    the class listings of the first prefixes overlap the top listings of the last).

    Returns the jobs ``(prefix index, class name, class prefix)``, each job's objects, and the
    requests sent.
    """
    tops = [pool.submit(_list_one, storage, p, True) for p in prefixes]
    wanted = set(labels) if labels else None
    jobs: list[tuple[int, str, str]] = []
    futures = []
    found: set[str] = set()
    requests = 0
    for i, (prefix, top) in enumerate(zip(prefixes, tops)):
        _, subs, sent = top.result()
        requests += sent
        subs = [sub for sub in subs if not _hidden(sub)]
        if not subs:
            raise DataError(f"no class directories under {prefix or 'the root'!r}",
                            reference="storage.prefixes",
                            hint="the layout is <root>/<prefix>/<class>/<file>; check the prefix")
        for sub in subs:
            name = posixpath.basename(sub.rstrip("/"))
            found.add(name)
            if wanted is None or name in wanted:
                jobs.append((i, name, sub))
                futures.append(pool.submit(_list_one, storage, sub, False))
    missing = sorted(wanted - found) if wanted is not None else []
    if missing:
        raise DataError(f"class directories {missing} not found (found: {sorted(found)})",
                        reference="dataset.labels", hint="fix the label list or the prefixes")
    results = [f.result() for f in futures]
    return jobs, [r[0] for r in results], requests + sum(r[2] for r in results)


def _samples(groups: list[tuple[list[ObjectInfo], int, str]], extensions: list[str], on_error: str
             ) -> tuple[list[tuple[str, int, int]], int, list[tuple[str, str]]]:
    """(key, label, size) of each listed object with a sample extension, the count of the others
    (hidden ones included), and the unreadable entries (left out with ``on_error`` skip).

    Raises:
        DataError: an unreadable entry (a symlink loop) and ``on_error`` is not skip.
    """
    rows: list[tuple[str, int, int]] = []
    skipped = 0
    unreadable: list[tuple[str, str]] = []
    wanted = set(extensions)
    for objects, label, under in groups:
        cut = len(under)
        for obj in objects:
            key = obj.key
            if _hidden(key[cut:]):
                skipped += 1
            elif obj.error is not None:
                if on_error != "skip":
                    raise DataError(f"cannot read {obj.key}: {obj.error}", reference=obj.key,
                                    hint="remove or fix the entry, or set dataset.on_error: skip to leave such "
                                         "entries out")
                unreadable.append((obj.key, obj.error))
            elif _extension(key) in wanted:
                rows.append((key, label, obj.size))
            else:
                skipped += 1
    return rows, skipped, unreadable


def _hidden(path: str) -> bool:
    """A part of ``path`` starts with ``.`` (``.git/``, ``.cache/x.jpg``, ``._x.jpg``): never a class
    or a sample, as ``ls`` and the image-folder loaders people use do not show them."""
    return path.startswith(".") or "/." in path  # a part is at the start or after a "/"


def _extension(key: str) -> str:
    """``posixpath.splitext(key)[1].lower()`` for a key whose name is not hidden (the listing's hot loop)."""
    dot = key.rfind(".")
    return key[dot:].lower() if dot > key.rfind("/") else ""


def _list_one(storage: Storage, prefix: str, delimiter: bool) -> tuple[list[ObjectInfo], list[str], int]:
    """(objects, sub-prefixes, requests sent) of one prefix."""
    try:
        objects, subs = storage.list(prefix, delimiter=delimiter)
        return objects, subs, storage.list_requests()
    except FileNotFoundError:
        raise DataError(f"prefix {prefix or '(root)'!r} does not exist in {storage.label()}",
                        reference="storage.prefixes",
                        hint="fix storage.root / storage.prefixes, or create the dataset with "
                             "`python3 benchmark.py prepare --config FILE`") from None
    except PermissionError as e:
        raise StorageError(f"access denied listing {prefix!r}: {e}", reference="storage",
                           hint="check permissions or credentials") from None
