"""Local (or network-mounted) filesystem storage. Keys are paths relative to
``storage.root`` with ``/`` separators."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dnnbench.errors import DataError
from dnnbench.storage.base import ObjectInfo, SizeMismatch, Storage
from dnnbench.storage.keys import unsafe_key


def safe_join(root: str, key: str) -> str:
    """Join ``key`` under ``root``, refusing absolute keys and ``..`` escapes.

    Raises:
        ValueError: the key would leave the root.
    """
    if unsafe_key(key):
        raise ValueError(f"unsafe object key {key!r}: it would leave the storage root")
    return os.path.join(root, key) if key else root


#: kernel filesystems whose "files" are generated state: listing them never ends or means nothing
PSEUDO_FILESYSTEMS = {"proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs",
                      "securityfs", "bpf", "configfs", "pstore", "mqueue", "fusectl", "efivarfs", "binfmt_misc",
                      "autofs", "rpc_pipefs", "nsfs"}


def _identity(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _ancestors(path: str) -> tuple[tuple[int, int], ...]:
    """The identities of ``path`` and every folder above it: a link to any of them is a loop."""
    out, current = [], os.path.realpath(path)
    while True:
        out.append(_identity(current))
        parent = os.path.dirname(current)
        if parent == current:
            return tuple(out)
        current = parent


def pseudo_filesystem(path: str, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The type of the kernel pseudo-filesystem ``path`` lies on (proc, sysfs...), else None
    (also where the mount table cannot be read)."""
    try:
        with open(mountinfo) as f:
            mounts = [line.split() for line in f]
    except OSError:
        return None
    real = os.path.realpath(path)
    best, kind = "", None
    for fields in mounts:
        if "-" not in fields or len(fields) < 5:
            continue
        point = fields[4].replace("\\040", " ")
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[fields.index("-") + 1]
    return kind if kind in PSEUDO_FILESYSTEMS else None


class FileSystemStorage(Storage):
    """Local or network filesystem (POSIX files), read with plain unbuffered reads."""

    ttfb_reason = "a local file read has no separate first-byte moment"

    def __init__(self, config: Any, recorder: Any = None, options: Any = None):
        super().__init__(config, recorder, options)
        self.root = os.path.abspath(os.path.expanduser(config.root or "."))
        self._base = self.root.rstrip("/") + "/"

    def _path(self, key: str) -> str:
        """``safe_join`` for the read hot path (keys use ``/``; cheaper than os.path.join)."""
        if unsafe_key(key):
            raise ValueError(f"unsafe object key {key!r}: it would leave the storage root")
        return self._base + key if key else self.root

    def _list(self, prefix: str, delimiter: bool) -> tuple[list[ObjectInfo], list[str]]:
        """Files under ``prefix``, following links. An entry that cannot be resolved (a symlink
        loop, a dangling link's stat error other than "missing") or a folder link back to one of
        its own parents (which would be listed forever) comes back as an object with its
        ``error``, so that dataset.on_error decides."""
        base = safe_join(self.root, prefix)
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        stack = [(base, prefix, _ancestors(base))]
        while stack:
            path, rel, parents = stack.pop()
            with os.scandir(path) as it:
                for entry in it:
                    key = f"{rel}/{entry.name}" if rel else entry.name
                    try:
                        is_dir = entry.is_dir(follow_symlinks=True)
                        if not is_dir and entry.is_file(follow_symlinks=True):
                            objects.append(ObjectInfo(key, entry.stat(follow_symlinks=True).st_size))
                            continue
                        ident = _identity(entry.path) if is_dir and not delimiter else None
                    except OSError as e:
                        objects.append(ObjectInfo(key, 0, f"{e.strerror or e} ({entry.path})"))
                        continue
                    if not is_dir:
                        continue
                    if delimiter:
                        prefixes.append(key)
                    elif ident in parents:
                        objects.append(ObjectInfo(key, 0, f"a link back to one of its parent folders ({entry.path})"))
                    else:
                        stack.append((entry.path, key, (*parents, ident)))
        objects.sort(key=lambda o: o.key)
        prefixes.sort()
        return objects, prefixes

    def _get(self, key: str) -> tuple[bytes, None]:
        with open(self._path(key), "rb", buffering=0) as f:
            return f.read(), None

    def _get_into(self, key: str, buffer: memoryview) -> tuple[int, None]:
        fd = os.open(self._path(key), os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            if size != len(buffer):
                raise SizeMismatch(key, len(buffer), size)
            done = os.readv(fd, [buffer])
            while done < size:  # short reads: network filesystems, signals
                n = os.readv(fd, [buffer[done:]])
                if n == 0:
                    raise SizeMismatch(key, size, done)
                done += n
            return size, None
        finally:
            os.close(fd)

    def _open(self, key: str) -> tuple[Any, None]:
        return open(safe_join(self.root, key), "rb", buffering=0), None

    def _get_range(self, key: str, start: int, length: int) -> tuple[bytes, None]:
        fd = os.open(safe_join(self.root, key), os.O_RDONLY)  # no file object: one per sample read
        try:
            return os.pread(fd, length, start), None
        finally:
            os.close(fd)

    def _put(self, key: str, data: bytes) -> None:
        path = safe_join(self.root, key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def _delete(self, key: str) -> None:
        os.unlink(safe_join(self.root, key))

    def check(self) -> None:
        if not os.path.isdir(self.root):
            raise DataError(f"directory {self.root} does not exist", reference="storage.root",
                            hint="fix storage.root, or create a synthetic dataset with "
                                 "`python3 benchmark.py prepare --config FILE`")
        kind = pseudo_filesystem(self.root)
        if kind is not None:
            raise DataError(f"{self.root} is on a {kind} pseudo-filesystem (kernel state, not files to "
                            "benchmark)", reference="storage.root",
                            hint="point storage.root at the folder that holds the dataset")

    def exists(self, prefix: str = "") -> bool:
        path = Path(safe_join(self.root, prefix))
        return path.is_dir() and any(path.iterdir())

    def describe(self) -> dict[str, Any]:
        return {"client": "fs", "root": self.root}

    def label(self) -> str:
        return self.config.name or f"fs:{self.root}"

    def local_path(self, key: str) -> str | None:
        return safe_join(self.root, key)
