"""A cached sample index (``dataset.manifest: PATH``), so a re-run skips listing.

The file is JSON (gzip when the name ends in ``.gz``): a fingerprint of what was
listed (storage label, prefixes, extensions, labels), the classes and one
column each of keys, labels and sizes. A manifest whose fingerprint differs
from the current config is not used (and is rewritten after listing), so
pointing a config at other data never reads a stale index.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from dnnbench.data.index import SampleIndex
from dnnbench.errors import ConfigError
from dnnbench.storage.keys import unsafe_key

FORMAT = "dnnbench-manifest/1"
_HEAD = re.compile(r'\s*\{\s*"format"\s*:\s*"dnnbench-manifest/')


def fingerprint(storage: str, prefixes: list[str], extensions: list[str],
                labels: list[str] | None) -> dict[str, Any]:
    """What an index depends on: where it was listed and which files count as samples."""
    return {"storage": storage, "prefixes": list(prefixes), "extensions": sorted(extensions),
            "labels": list(labels) if labels else None}


def _open(path: Path, mode: str, gz: bool):
    return gzip.open(path, mode + "t", encoding="utf-8") if gz else open(path, mode, encoding="utf-8")


def is_manifest(path: Path) -> bool:
    """Did dnnbench write this file? (It starts as every manifest starts; the rest is not read.)"""
    try:
        with _open(path, "r", path.suffix == ".gz") as f:
            return _HEAD.match(f.read(256)) is not None
    except (OSError, ValueError, EOFError):  # unreadable, not gzip, not text
        return False


def check_target(path: str | os.PathLike) -> None:
    """The manifest path may be read and (re)written: nothing there yet, or a dnnbench manifest.

    Raises:
        ConfigError: a folder, something else than a regular file, or a file dnnbench did not
            write (it is never overwritten).
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; the manifest is a file", reference="dataset.manifest",
                          hint="name a file, e.g. dataset.manifest: results/index.json.gz")
    if not path.exists() and not path.is_symlink():
        if path.parent.exists() and not path.parent.is_dir():
            raise ConfigError(f"{path.parent} is a file, not a folder", reference="dataset.manifest",
                              hint="name a file in a folder")
        return
    if not path.is_file():
        raise ConfigError(f"{path} is not a regular file", reference="dataset.manifest",
                          hint="name a new file for the manifest")
    if not is_manifest(path):
        raise ConfigError(f"{path} exists and is not a dnnbench manifest: it would be overwritten",
                          reference="dataset.manifest",
                          hint="name a new file for the manifest (dnnbench never writes over a file it did "
                               "not write)")


def save(path: str | os.PathLike, index: SampleIndex, fp: dict[str, Any], listing_s: float | None = None) -> None:
    """Write the index atomically (a temporary file renamed into place).

    Raises:
        ConfigError: the path holds something other than a dnnbench manifest (see :func:`check_target`).
    """
    path = Path(path)
    check_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"format": FORMAT, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "fingerprint": fp,
           "listing_s": listing_s, "objects": len(index), "bytes": index.total_bytes, "classes": index.classes,
           "keys": index.keys, "labels": index.labels.tolist(), "sizes": index.sizes.tolist()}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with _open(tmp, "w", path.suffix == ".gz") as f:
            json.dump(doc, f, separators=(",", ":"))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load(path: str | os.PathLike, fp: dict[str, Any]) -> tuple[SampleIndex | None, str | None]:
    """The cached index, or None and why it cannot be used (None, None: no file yet)."""
    path = Path(path)
    if not path.exists():
        return None, None
    try:
        with _open(path, "r", path.suffix == ".gz") as f:
            doc = json.load(f)
        if doc.get("format") != FORMAT:
            return None, f"not a {FORMAT} file"
        if doc.get("fingerprint") != fp:
            diff = sorted(k for k in fp if doc.get("fingerprint", {}).get(k) != fp[k])
            return None, f"written for another dataset ({', '.join(diff)} differ)"
        keys, labels, sizes = doc["keys"], doc["labels"], doc["sizes"]
        if not (len(keys) == len(labels) == len(sizes) == doc["objects"]):
            return None, "truncated or damaged (column lengths differ)"
        bad = next((k for k in keys if not isinstance(k, str) or unsafe_key(k)), None)
        if bad is not None:
            return None, f"holds an unsafe key {bad!r} (absolute or with '..'): refused"
        index = SampleIndex(list(keys), np.asarray(labels, dtype=np.int64), np.asarray(sizes, dtype=np.int64),
                            list(doc["classes"]))
    except (OSError, ValueError, KeyError, TypeError, EOFError) as e:
        return None, f"unreadable ({type(e).__name__}: {e})"
    return index, None
