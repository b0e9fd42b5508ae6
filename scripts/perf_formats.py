#!/usr/bin/env python3
"""dnnbench performance check of the format readers (issue 14): is a format's reader ever the
bottleneck, and what do ranged reads buy?

1. **Read overhead** of the npz, hdf5 and tfrecord readers against a plain reader of the same
   bytes, side by side in one run, on generated files held in the page cache, ``decode: none``:
   - *file at a time* (sequential access): dnnbench's streamed GET + the format's ``read_file``
     (every sample decoded to its array) vs ``open().read()`` of each file;
   - *sample at a time* (random access): dnnbench's ranged GET of each sample's range + the
     format's ``read_sample`` vs ``os.pread`` of the same ranges in the same order.
   The ratio is plain seconds / dnnbench seconds (1.0 = no overhead; target >= 0.9), the median
   of interleaved rounds.
2. **Whole-file vs ranged random access within TFRecord files** under 5 ms emulated latency per
   request (``storage.emulate.latency_ms``): the same random samples read as DLIO's readers do
   (a GET of the whole file per sample) and through the DALI index (a ranged GET of the record).

The level measured: dnnbench's Storage (fs backend, every request recorded) and the format
modules, without a framework's loader (the run pipeline joins them in the formats branch).

    make perf            # or: .venv/bin/python scripts/perf_formats.py --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dnnbench.config.schema import StorageConfig  # noqa: E402
from dnnbench.data.records import index_file  # noqa: E402
from dnnbench.formats import read  # noqa: E402
from dnnbench.formats.base import DecodeSpec, FileSpec  # noqa: E402
from dnnbench.registry import FORMATS  # noqa: E402
from dnnbench.storage.factory import create_storage  # noqa: E402

NONE = DecodeSpec("none")
FORMAT_EXT = {"npz": "npz", "hdf5": "hdf5", "tfrecord": "tfrecord"}


def write_files(root: str, name: str, files: int, spec: FileSpec) -> list[str]:
    """Generate ``files`` files of format ``name`` under ``root/name`` (with their sidecars)."""
    fmt = FORMATS.get(name)()
    storage = create_storage(StorageConfig(root=root))
    keys = []
    for i in range(files):
        key = f"{name}/f{i:04d}.{FORMAT_EXT[name]}"
        data = fmt.generate(np.random.default_rng(i), spec)
        storage.put(key, data)
        for side_key, side in fmt.sidecars(key, data):
            storage.put(side_key, side)
        keys.append(key)
    return keys


def sequential(storage, fmt, keys: list[str]) -> tuple[float, int]:
    t0, total = time.perf_counter(), 0
    for key in keys:
        for _, _, nbytes in read.iter_file(storage, fmt, key, NONE):
            total += nbytes
    return time.perf_counter() - t0, total


def plain_sequential(root: str, keys: list[str]) -> tuple[float, int]:
    t0, total = time.perf_counter(), 0
    for key in keys:
        with open(os.path.join(root, key), "rb", buffering=0) as f:
            total += len(f.read())
    return time.perf_counter() - t0, total


def plan_random(storage, fmt, keys: list[str], seed: int = 0) -> list[tuple]:
    """Every sample of ``keys`` as (key, offset, length, whole, meta, item), in a random order."""
    samples = []
    for key in keys:
        size = storage.size(key) if hasattr(storage, "size") else os.path.getsize(storage.local_path(key))
        found, _, _ = index_file(storage, fmt, key, size)
        for i in range(found.count):
            off, length = int(found.offsets[i]), int(found.lengths[i])
            samples.append((key, off, length, (off, length) == (0, size), found.meta, i))
    order = np.random.default_rng(seed).permutation(len(samples))
    return [samples[i] for i in order]


def random_access(storage, fmt, plan: list[tuple]) -> tuple[float, int]:
    t0, total = time.perf_counter(), 0
    for key, off, length, whole, meta, item in plan:
        sample, _, nbytes, why, _ = read.read_record(storage, fmt, key, off, length, whole, meta, item, NONE)
        if why:
            raise RuntimeError(f"{key}:{item}: {why}")
        total += nbytes
    return time.perf_counter() - t0, total


def plain_random(root: str, plan: list[tuple]) -> tuple[float, int]:
    t0, total = time.perf_counter(), 0
    for key, off, length, whole, _, _ in plan:
        fd = os.open(os.path.join(root, key), os.O_RDONLY)
        try:
            total += len(os.pread(fd, length, off) if not whole else os.read(fd, length))
        finally:
            os.close(fd)
    return time.perf_counter() - t0, total


def overhead(root: str, files: int, spec: FileSpec, rounds: int) -> None:
    storage = create_storage(StorageConfig(root=root))
    print(f"1) reader overhead, {files} files x {spec.samples} samples of {spec.sample_nbytes:,} B per format, "
          f"page cache, decode none; ratio = plain s / dnnbench s (target >= 0.9), median of {rounds} rounds")
    for name in FORMAT_EXT:
        fmt = FORMATS.get(name)()
        keys = write_files(root, name, files, spec)
        plan = plan_random(storage, fmt, keys)
        pairs = {"file at a time": (lambda: sequential(storage, fmt, keys), lambda: plain_sequential(root, keys)),
                 "sample at a time": (lambda: random_access(storage, fmt, plan), lambda: plain_random(root, plan))}
        for mode, (ours, plain) in pairs.items():
            ratios, mib = [], []
            for _ in range(rounds):  # interleaved: the machine's noise hits both alike
                t_plain, b_plain = plain()
                t_ours, b_ours = ours()
                if b_plain != b_ours:
                    raise RuntimeError(f"{name} {mode}: {b_ours:,} bytes read, the plain reader {b_plain:,}")
                ratios.append(t_plain / t_ours)
                mib.append(b_ours / 2**20 / t_ours)
            print(f"   {name:>8} {mode:<16}: {statistics.median(mib):8.1f} MiB/s  "
                  f"ratio {statistics.median(ratios):.2f}  ({b_ours:,} B per round)")


def ranged_vs_whole(root: str, latency_ms: float, files: int, spec: FileSpec, samples: int) -> None:
    keys = write_files(root, "tfrecord", files, spec)
    fmt = FORMATS.get("tfrecord")()
    emulated = create_storage(StorageConfig(root=root, emulate={"latency_ms": latency_ms}))
    plan = plan_random(create_storage(StorageConfig(root=root)), fmt, keys, seed=1)[:samples]
    print(f"2) TFRecord random access, {samples} samples from {files} files of {spec.samples} records "
          f"({spec.sample_nbytes:,} B each), {latency_ms:g} ms emulated latency per request, one reader")
    results = {}
    for mode, whole in (("whole file per sample (DLIO)", True), ("ranged GET via the index", False)):
        t, nbytes = random_access(emulated, fmt, [(k, o, n, whole, m, i) for k, o, n, _, m, i in plan])
        results[whole] = t
        print(f"   {mode:<29}: {samples / t:8.1f} samples/s  {nbytes / 2**20 / t:8.1f} MiB/s  "
              f"{nbytes / samples / 1024:8.1f} KiB read per sample")
    print(f"   ranged / whole samples/s: {results[True] / results[False]:.2f}x")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--latency-ms", type=float, default=5.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dnnbench-perf-formats-") as root:
        overhead(os.path.join(root, "small"), args.files, FileSpec(64, (128, 128)), args.rounds)
        overhead(os.path.join(root, "large"), args.files, FileSpec(16, (512, 512)), args.rounds)
        ranged_vs_whole(os.path.join(root, "lat"), args.latency_ms, 8, FileSpec(64, (256, 256)), 64)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
