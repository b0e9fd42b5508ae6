"""Page-cache honesty for local files: drop the cache where permitted, and
measure how much of a sample of files is resident (mincore) to tell cold from warm."""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import random
import subprocess

_libc = None


def _mincore():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        _libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
        _libc.mmap.restype = ctypes.c_void_p
        _libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                               ctypes.c_int, ctypes.c_long]
        _libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return _libc


def resident_fraction(paths: list[str]) -> float | None:
    """Fraction of the pages of ``paths`` that are in the page cache (None if unknown)."""
    try:
        libc = _mincore()
    except OSError:
        return None
    page = mmap.PAGESIZE
    total = resident = 0
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                continue
            addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
            if addr in (None, ctypes.c_void_p(-1).value):
                continue
            try:
                pages = (size + page - 1) // page
                vec = (ctypes.c_ubyte * pages)()
                if libc.mincore(addr, size, vec) != 0:
                    return None
                total += pages
                resident += sum(v & 1 for v in vec)
            finally:
                libc.munmap(addr, size)
        finally:
            os.close(fd)
    return resident / total if total else None


def drop_caches() -> tuple[bool, str]:
    """``sync; echo 3 > /proc/sys/vm/drop_caches``. Returns (done, why not)."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True, ""
    except PermissionError:
        reason = "not permitted (needs root)"
    except OSError as e:
        reason = f"not possible here: {e.strerror or e}"
    # a non-root user may have passwordless sudo
    try:
        r = subprocess.run(["sudo", "-n", "sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches"],
                           capture_output=True, timeout=30)
        if r.returncode == 0:
            return True, ""
    except (OSError, subprocess.SubprocessError):
        pass
    return False, reason


def sample_paths(paths: list[str], n: int = 64, seed: int = 0) -> list[str]:
    if len(paths) <= n:
        return list(paths)
    return random.Random(seed).sample(paths, n)


def classify(fraction: float | None) -> str:
    if fraction is None:
        return "unknown"
    if fraction <= 0.05:
        return "cold"
    if fraction >= 0.95:
        return "warm"
    return "unknown"
