"""Dataset layouts (``dataset.layout``): where a dataset's files are under each prefix and
where their labels come from. Listing goes through :func:`list_layout`.

- ``classes`` (default, today's): ``<prefix>/<class>/<file>``, the class folder is the label;
  hidden and empty folders are never classes (:func:`dnnbench.data.listing.list_dataset`);
- ``flat``: every file under ``<prefix>/`` (recursively) with a listed extension; labels from
  ``dataset.labels_file`` (CSV or JSON lines of ``key,label``), else none (every file label 0,
  one class ``unlabeled``: read-only runs). The class layout's rules do not apply: a file in a
  hidden folder is a file;
- ``dlio``: DLIO's ``<prefix>/train/`` files (``img_<i>_of_<n>.<ext>``, possibly in
  subfolders), ordered by ``i``; ``<prefix>/valid/`` is the validation split
  (:func:`split_prefixes`). No labels (DLIO's data carry none).
"""

from __future__ import annotations

import csv
import json
import posixpath
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from dnnbench.data.index import SampleIndex
from dnnbench.data.listing import ListingStats, list_dataset
from dnnbench.errors import ConfigError, DataError, StorageError
from dnnbench.storage.base import ObjectInfo, Storage

#: the one class of a dataset without labels
UNLABELED = "unlabeled"
#: DLIO's file names: img_<i>_of_<n>.<ext>
_DLIO_NAME = re.compile(r"img_(\d+)_of_(\d+)\.[^/]+$")
#: the most a labels file may hold (a bound, not a guess: a label per key)
MAX_LABELS_FILE_BYTES = 1 << 30


def split_prefixes(layout: str, prefixes: list[str], split: str = "train") -> list[str]:
    """The prefixes a layout lists for ``split`` (dlio: ``<prefix>/train``, ``<prefix>/valid``)."""
    if layout != "dlio":
        return list(prefixes)
    return [posixpath.join(p.strip("/"), split) if p.strip("/") else split for p in prefixes]


def list_layout(storage: Storage, dataset: Any, prefixes: list[str], workers: int,
                extensions: list[str]) -> tuple[SampleIndex, ListingStats]:
    """The files of the dataset in ``dataset.layout`` under ``prefixes``, labelled.

    Raises:
        DataError: a prefix is missing or holds no file; a labels file names an unknown key.
        ConfigError: the labels file cannot be read.
    """
    if dataset.layout == "classes":
        return list_dataset(storage, prefixes, workers, extensions, dataset.labels, dataset.on_error)
    t0 = time.perf_counter()
    wanted = split_prefixes(dataset.layout, prefixes)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="list") as pool:
        listed = list(pool.map(lambda p: _list_flat(storage, p), wanted))
    requests = sum(r[1] for r in listed)
    objects, skipped, unreadable = _keep(wanted, [r[0] for r in listed], extensions, dataset.on_error)
    if not objects:
        raise DataError(f"no files with extensions {extensions} under {wanted}", reference="storage.prefixes",
                        hint=f"dataset.layout is {dataset.layout}; check the prefixes, dataset.extensions "
                             "and dataset.format, or run `benchmark.py prepare`")
    if dataset.layout == "dlio":
        objects.sort(key=_dlio_order)
    keys = [o.key for o in objects]
    labels, classes = labels_for(keys, wanted, dataset.labels_file)
    index = SampleIndex(keys, labels, np.asarray([o.size for o in objects], dtype=np.int64), classes)
    stats = ListingStats(time.perf_counter() - t0, len(keys), index.total_bytes, requests, skipped,
                         len(classes), unreadable)
    return index, stats


def _list_flat(storage: Storage, prefix: str) -> tuple[list[ObjectInfo], int]:
    """Every object under ``prefix`` (recursively) and the requests that took."""
    try:
        objects, _ = storage.list(prefix.strip("/"), delimiter=False)
    except FileNotFoundError:
        raise DataError(f"prefix {prefix or '(root)'!r} does not exist in {storage.label()}",
                        reference="storage.prefixes", hint="fix storage.root / storage.prefixes") from None
    except PermissionError as e:
        raise StorageError(f"access denied listing {prefix!r}: {e}", reference="storage",
                           hint="check permissions or credentials") from None
    return objects, storage.list_requests()


def _keep(prefixes: list[str], listed: list[list[ObjectInfo]], extensions: list[str], on_error: str
          ) -> tuple[list[ObjectInfo], int, list[tuple[str, str]]]:
    """The listed objects under each prefix (not beside it: ``train2/`` is not under ``train``)
    with a wanted extension; the count of the others; the unreadable ones (on_error skip)."""
    kept: list[ObjectInfo] = []
    skipped = 0
    unreadable: list[tuple[str, str]] = []
    for prefix, objects in zip(prefixes, listed):
        under = prefix.strip("/") + "/" if prefix.strip("/") else ""
        for obj in objects:
            if not obj.key.startswith(under):
                continue
            if obj.error is not None:
                if on_error != "skip":
                    raise DataError(f"cannot read {obj.key}: {obj.error}", reference=obj.key,
                                    hint="remove or fix the entry, or set dataset.on_error: skip")
                unreadable.append((obj.key, obj.error))
            elif posixpath.splitext(obj.key)[1].lower() in extensions:
                kept.append(obj)
            else:
                skipped += 1
    return kept, skipped, unreadable


def _dlio_order(obj: ObjectInfo) -> tuple[Any, ...]:
    """DLIO's files by their number ``i`` (img_10_of_16 after img_9_of_16), others by key after them."""
    m = _DLIO_NAME.search(obj.key)
    return (0, int(m.group(1)), obj.key) if m else (1, 0, obj.key)


def labels_for(keys: list[str], prefixes: list[str], labels_file: str | None) -> tuple[np.ndarray, list[str]]:
    """(label per key, class names): from ``labels_file``, or all 0 with one ``unlabeled`` class.

    A labels file names a key as listed (``train/a.npz``) or relative to its prefix (``a.npz``).

    Raises:
        DataError: a listed key has no label in the file.
        ConfigError: the file cannot be read or parsed.
    """
    if not labels_file:
        return np.zeros(len(keys), dtype=np.int64), [UNLABELED]
    table = read_labels_file(labels_file)
    classes = sorted(set(table.values()))
    class_id = {c: i for i, c in enumerate(classes)}
    out = np.empty(len(keys), dtype=np.int64)
    for i, key in enumerate(keys):
        label = table.get(key)
        if label is None:
            label = table.get(_relative(key, prefixes))
        if label is None:
            raise DataError(f"{key} has no label in {labels_file}", reference="dataset.labels_file",
                            hint="give every listed file a line key,label (keys as listed or relative to "
                                 "their prefix), or drop labels_file for a run without labels")
        out[i] = class_id[label]
    return out, classes


def _relative(key: str, prefixes: list[str]) -> str:
    for p in prefixes:
        under = p.strip("/") + "/" if p.strip("/") else ""
        if under and key.startswith(under):
            return key[len(under):]
    return key


def read_labels_file(path: str) -> dict[str, str]:
    """``{key: label}`` from a CSV (``key,label`` rows, an optional ``key,label`` header) or a JSON
    lines file (``{"key": ..., "label": ...}`` per line; ``.jsonl`` / ``.json``).

    Raises:
        ConfigError: missing, too large, or a line that is not key,label.
    """
    p = Path(path).expanduser()
    try:
        if p.stat().st_size > MAX_LABELS_FILE_BYTES:
            raise ConfigError(f"labels file {path} is larger than {MAX_LABELS_FILE_BYTES >> 20} MiB",
                              reference="dataset.labels_file")
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read labels file {path}: {e}", reference="dataset.labels_file",
                          hint="a CSV of key,label or JSON lines of {\"key\": ..., \"label\": ...}") from None
    rows = _jsonl_rows(text, path) if p.suffix.lower() in (".jsonl", ".json", ".ndjson") else _csv_rows(text, path)
    return {key: label for key, label in rows}


def _csv_rows(text: str, path: str) -> list[tuple[str, str]]:
    rows = []
    for n, row in enumerate(csv.reader(text.splitlines()), 1):
        if not row or (n == 1 and [c.strip().lower() for c in row] == ["key", "label"]):
            continue
        if len(row) != 2 or not row[0].strip():
            raise ConfigError(f"{path} line {n}: expected key,label, got {row!r}", reference="dataset.labels_file")
        rows.append((row[0].strip(), row[1].strip()))
    return rows


def _jsonl_rows(text: str, path: str) -> list[tuple[str, str]]:
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            rows.append((str(obj["key"]), str(obj["label"])))
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"{path} line {n}: expected {{\"key\": ..., \"label\": ...}}",
                              reference="dataset.labels_file") from None
    return rows
