"""What ``prepare`` leaves beside the data, and how concurrent prepares take turns.

- ``<prefix>/.dnnbench-preparing``: present while prepare (or pack) writes under the prefix; left
  behind when it is interrupted, so a half-written dataset is never taken for one.
- ``<prefix>/.dnnbench-prepare.json``: the parameters the data was generated with (classes,
  images per class, sizes, format, quality, seed) or the folder it was uploaded from. A later
  ``prepare`` (or ``prepare.auto``) that asks for other parameters is refused rather than
  silently reusing the old data; ``prepare --force`` writes the new set and deletes the objects
  of the old one that the new one does not have.
- a lock file per storage (under the temporary folder): prepares started together on one machine
  take turns; the others wait (at most :data:`WAIT_S`, saying so) and then find the data present.

Both objects sit at the top of the prefix, beside the class folders, so listing never takes
them for samples.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from filelock import FileLock, Timeout

from dnnbench.data.synthetic import class_names
from dnnbench.errors import RunFailed
from dnnbench.storage.base import Storage

PREPARING = ".dnnbench-preparing"
PARAMS = ".dnnbench-prepare.json"
#: how long a prepare waits for another one of the same storage to finish
WAIT_S = 3600.0


def _key(prefix: str, name: str) -> str:
    return "/".join(x for x in (prefix.strip("/"), name) if x)


def marker(prefix: str) -> str:
    return _key(prefix, PREPARING)


def incomplete(storage: Storage, prefixes: list[str]) -> list[str]:
    """The prefixes an interrupted or failed prepare / pack left half written."""
    out = []
    for prefix in prefixes:
        try:
            storage._get(marker(prefix))
        except (FileNotFoundError, NotADirectoryError):
            continue
        out.append(prefix)
    return out


@contextlib.contextmanager
def preparing(storage: Storage, prefixes: list[str]) -> Iterator[None]:
    """Mark ``prefixes`` as being written; the marks go only when the writing succeeded."""
    for prefix in prefixes:
        storage.put(marker(prefix), b"dnnbench prepare in progress: rerun `benchmark.py prepare --force`\n")
    yield
    for prefix in prefixes:
        with contextlib.suppress(FileNotFoundError):  # another process's cleanup got there first
            storage.delete(marker(prefix))


# -- the parameters beside the data ------------------------------------------------------------
def synthetic_params(p: Any, seed: int) -> dict[str, Any]:
    """What :func:`dnnbench.data.synthetic.generate` writes is a function of these alone."""
    return {"kind": "synthetic", "classes": p.classes, "images_per_class": p.images_per_class,
            "width": list(p.width), "height": list(p.height), "format": p.format,
            "jpeg_quality": p.jpeg_quality, "seed": seed}


def upload_params(folder: str) -> dict[str, Any]:
    return {"kind": "upload", "source": os.path.abspath(folder)}


def record(storage: Storage, prefix: str, params: dict[str, Any]) -> None:
    storage.put(_key(prefix, PARAMS), json.dumps(params, sort_keys=True).encode())


def recorded(storage: Storage, prefix: str) -> dict[str, Any] | None:
    """The parameters recorded under ``prefix`` (None: none recorded, or unreadable)."""
    try:
        data, _ = storage._get(_key(prefix, PARAMS))
        params = json.loads(data)
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    return params if isinstance(params, dict) else None


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``name: old -> new`` for each parameter that differs."""
    names = [k for k in new if k != "kind"] if old.get("kind") == new.get("kind") else ["kind"]
    return [f"{k}: {_show(old.get(k))} -> {_show(new.get(k))}" for k in names if old.get(k) != new.get(k)]


def _show(v: Any) -> str:
    return "x".join(map(str, v)) if isinstance(v, list) else str(v)


def stale_keys(old: dict[str, Any] | None, new: dict[str, Any], prefix: str) -> list[str]:
    """The objects of an old synthetic or generated set that a new one does not write (deleted by ``--force``)."""
    if not old or old.get("kind") not in _KEYS:
        return []
    kept = set(_KEYS[new["kind"]](new, prefix)) if new.get("kind") in _KEYS else set()
    return [k for k in _KEYS[old["kind"]](old, prefix) if k not in kept]


def _generated_keys(params: dict[str, Any], prefix: str) -> list[str]:
    """The objects a generated set wrote: its files (and a TFRecord's DALI index beside each)."""
    from dnnbench.formats.sizes import SizeModel, file_extension, plan_layout
    from dnnbench.formats.tfrecord import index_key
    from dnnbench.registry import FORMATS

    try:
        name, layout = params["format"], params["layout"]
        ext = file_extension(name, FORMATS.spec_of(name).extensions, layout)
        model = SizeModel(float(params["record_length_bytes"]), float(params["record_length_bytes_stdev"]),
                          int(params["samples_per_file"]), int(params["num_files"]),
                          num_subfolders=int(params["num_subfolders"]))
        keys = [f.key for f in plan_layout(layout, model, prefix, ext, classes=int(params["classes"]))]
    except (KeyError, TypeError, ValueError, AttributeError):
        return []
    return keys + [index_key(k) for k in keys] if name == "tfrecord" else keys


def _synthetic_keys(params: dict[str, Any], prefix: str) -> list[str]:
    try:
        names, per_class, fmt = class_names(int(params["classes"])), int(params["images_per_class"]), params["format"]
    except (KeyError, TypeError, ValueError):
        return []
    return [_key(prefix, f"{name}/{i:06d}.{fmt}") for name in names for i in range(per_class)]


_KEYS = {"synthetic": _synthetic_keys, "generated": _generated_keys}


# -- one prepare at a time per storage ---------------------------------------------------------
def lock_path(storage: Storage) -> Path:
    """The lock file of ``storage``: its root folder, or its endpoint and bucket."""
    settings = getattr(storage, "settings", None)
    if settings is not None:
        what = f"s3:{settings.endpoint_url or 'aws'}/{settings.bucket}"
    else:
        what = f"{type(storage).__name__}:{getattr(storage, 'root', None) or storage.label()}"
    digest = hashlib.sha256(what.encode()).hexdigest()[:20]
    return Path(tempfile.gettempdir()) / "dnnbench-locks" / f"prepare-{digest}.lock"


@contextlib.contextmanager
def turn(storage: Storage, say: Callable[[str], None], wait_s: float | None = None) -> Iterator[None]:
    """Hold the prepare lock of ``storage``, waiting (at most ``wait_s``, default WAIT_S) for
    another prepare of the same storage on this machine to finish.

    Raises:
        RunFailed: the other prepare is still under way after ``wait_s``.
    """
    path = lock_path(storage)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # no usable temporary folder: prepare as before, without the lock
        say(f"prepares are not serialised: cannot create {path.parent} ({e.strerror or e})")
        yield
        return
    lock = FileLock(str(path))
    wait = WAIT_S if wait_s is None else wait_s
    try:
        lock.acquire(timeout=0)
    except Timeout:
        say(f"another prepare of {storage.label()} is under way: waiting for it to finish "
               f"(at most {wait:.0f} s)")
        try:
            lock.acquire(timeout=wait)
        except Timeout:
            raise RunFailed(f"another prepare of {storage.label()} is still under way after {wait:.0f} s",
                            reference=str(path),
                            hint="let it finish (or stop it), then run again") from None
    try:
        yield
    finally:
        lock.release()
