#!/usr/bin/env python3
"""dnnbench performance check of the format readers (issue 14): is a format's reader ever the
bottleneck, and what do ranged reads buy?

1. **Read overhead** of the npz, hdf5 and tfrecord readers against a plain reader of the same
   bytes, side by side in one run, on generated files held in the page cache, ``decode: none``:
   - *file at a time* (sequential access): dnnbench's streamed GET + the format's ``read_file``
     (every sample decoded to its array) vs ``open().read()`` of each file;
   - *sample at a time* (random access): dnnbench's ranged GET of each sample's range + the
     format's ``read_sample`` vs ``os.pread`` of the same ranges in the same order.
   Each is also compared with a plain reader doing the same decode work ("decoded": np.load of the
   member, h5py of the dataset, a TFRecord framing loop + CRC32C + the same Example parse; sample at
   a time: os.pread + the array view, or CRC32C + the Example parse): the like-with-like ratio.
   Every dnnbench request is recorded (as in a run) and the count checked.
   The ratio is plain seconds / dnnbench seconds (1.0 = no overhead; target >= 0.9), the median
   of interleaved rounds.
2. **Whole-file vs ranged random access within TFRecord files** under 5 ms emulated latency per
   request (``storage.emulate.latency_ms``): the same random samples read as DLIO's readers do
   (a GET of the whole file per sample) and through the DALI index (a ranged GET of the record).

3. **Full runs** (``benchmark.py``: prepare, then the ``read`` trainer under PyTorch, 4 workers)
   of a generated TFRecord dataset under the same latency: ``access: random`` (a ranged GET per
   record, through the index) vs ``access: sequential`` (each file read whole, once).

Parts 1 and 2 measure dnnbench's Storage (fs backend, every request recorded) and the format
modules without a loader; part 3 the whole tool.

    make perf            # or: .venv/bin/python scripts/perf_formats.py --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
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
from dnnbench.formats.example_proto import decode_example  # noqa: E402
from dnnbench.formats.tfrecord import masked_crc  # noqa: E402
from dnnbench.recording.requests import RecorderSpec, get_recorder  # noqa: E402
from dnnbench.registry import FORMATS  # noqa: E402
from dnnbench.storage.factory import create_storage  # noqa: E402

NONE = DecodeSpec("none")
#: the features a TFRecord reader decodes, on both sides: the sample's and the (default) label's
WANTED = {b"image", b"label"}
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


def _plain_tfrecord_records(data: bytes, verify: bool = True) -> list[bytes]:
    """A plain TFRecord framing loop over a file in memory: (length, its CRC, data, its CRC) each."""
    out, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from("<Q", data, pos)
        record = data[pos + 12:pos + 12 + n]
        if verify and (masked_crc(data[pos:pos + 8]) != struct.unpack_from("<I", data, pos + 8)[0]
                       or masked_crc(record) != struct.unpack_from("<I", data, pos + 12 + n)[0]):
            raise RuntimeError(f"CRC mismatch at byte {pos}")
        out.append(record)
        pos += n + 16
    return out


def plain_decoded_file(name: str, path: str) -> list:
    """The samples of one file as a plain loader built on the field's libraries reads them: np.load
    of the member, h5py of the dataset, a TFRecord framing loop + CRC32C + the same Example parse."""
    if name == "npz":
        with np.load(path) as z:
            return list(z["x"])
    if name == "hdf5":
        import h5py

        with h5py.File(path, "r") as h5:
            return list(h5["records"][()])
    with open(path, "rb", buffering=0) as f:
        return [decode_example(r, WANTED)["image"] for r in _plain_tfrecord_records(f.read())]


def plain_sequential_decoded(name: str, root: str, keys: list[str]) -> tuple[float, int]:
    """Whole files read and cut into their samples (the same decode work as dnnbench's side)."""
    t0, total = time.perf_counter(), 0
    for key in keys:
        path = os.path.join(root, key)
        plain_decoded_file(name, path)
        total += os.path.getsize(path)
    return time.perf_counter() - t0, total


def plain_random_decoded(name: str, root: str, plan: list[tuple]) -> tuple[float, int]:
    """``os.pread`` of each range + the same decode as dnnbench's (an array view, or CRC32C +
    Example parse)."""
    t0, total = time.perf_counter(), 0
    for key, off, length, _, meta, _ in plan:
        fd = os.open(os.path.join(root, key), os.O_RDONLY)
        try:
            data = os.pread(fd, length, off)
        finally:
            os.close(fd)
        if name == "tfrecord":
            decode_example(_plain_tfrecord_records(data)[0], WANTED)["image"]
        else:
            np.frombuffer(data, dtype=np.dtype(meta.dtype)).reshape(meta.sample_shape)
        total += len(data)
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


def _ratios(ours, plains: dict, rounds: int, what: str) -> tuple[dict[str, float], float, int]:
    """Median ratio (plain s / dnnbench s) per plain reader, median dnnbench MiB/s, bytes per round;
    interleaved rounds: the machine's noise hits every side alike."""
    ratios: dict[str, list[float]] = {k: [] for k in plains}
    mib = []
    for _ in range(rounds):
        times = {}
        for k, plain in plains.items():
            times[k], b_plain = plain()
        t_ours, b_ours = ours()
        if b_plain != b_ours:
            raise RuntimeError(f"{what}: {b_ours:,} bytes read, the plain reader {b_plain:,}")
        for k in plains:
            ratios[k].append(times[k] / t_ours)
        mib.append(b_ours / 2**20 / t_ours)
    return {k: statistics.median(v) for k, v in ratios.items()}, statistics.median(mib), b_ours


def overhead(root: str, files: int, spec: FileSpec, rounds: int) -> None:
    recorder = RecorderSpec(os.path.join(root, ".requests"))  # every request recorded, as in a run
    storage = create_storage(StorageConfig(root=root), recorder=recorder)
    print(f"1) reader overhead, {files} files x {spec.samples} samples of {spec.sample_nbytes:,} B per format, "
          f"page cache, decode none; ratio = plain s / dnnbench s (target >= 0.9), median of {rounds} rounds;\n"
          "   'bytes' = a plain reader of the same bytes that decodes nothing, 'decoded' = a plain reader "
          "doing the same decode work (np.load / h5py / framing + CRC32C + the same Example parse)")
    for name in FORMAT_EXT:
        fmt = FORMATS.get(name)()
        keys = write_files(root, name, files, spec)
        plan = plan_random(storage, fmt, keys)
        pairs = {"file at a time": (lambda: sequential(storage, fmt, keys),
                                    {"bytes": lambda: plain_sequential(root, keys),
                                     "decoded": lambda: plain_sequential_decoded(name, root, keys)}),
                 "sample at a time": (lambda: random_access(storage, fmt, plan),
                                      {"bytes": lambda: plain_random(root, plan),
                                       "decoded": lambda: plain_random_decoded(name, root, plan)})}
        for mode, (ours, plains) in pairs.items():
            before = get_recorder(recorder).count
            ratios, mib, nbytes = _ratios(ours, plains, rounds, f"{name} {mode}")
            wanted = rounds * (len(keys) if mode == "file at a time" else len(plan))
            if get_recorder(recorder).count - before != wanted:
                raise RuntimeError(f"{name} {mode}: {get_recorder(recorder).count - before} requests recorded, "
                                   f"{wanted} made")
            print(f"   {name:>8} {mode:<16}: {mib:8.1f} MiB/s  ratio vs bytes {ratios['bytes']:.2f}  "
                  f"vs decoded {ratios['decoded']:.2f}  ({nbytes:,} B per round)")


def ranged_vs_whole(root: str, latency_ms: float, files: int, spec: FileSpec, samples: int,
                    bandwidth: float | None = None) -> None:
    keys = write_files(root, "tfrecord", files, spec)
    fmt = FORMATS.get("tfrecord")()
    emulated = create_storage(StorageConfig(root=root, emulate={"latency_ms": latency_ms, "bandwidth_MBps": bandwidth}))
    plan = plan_random(create_storage(StorageConfig(root=root)), fmt, keys, seed=1)[:samples]
    cap = f", {bandwidth:g} MB/s per request" if bandwidth else ""
    print(f"2) TFRecord random access, {samples} samples from {files} files of {spec.samples} records "
          f"({spec.sample_nbytes:,} B each), {latency_ms:g} ms emulated latency per request{cap}, one reader")
    results = {}
    for mode, whole in (("whole file per sample (DLIO)", True), ("ranged GET via the index", False)):
        t, nbytes = random_access(emulated, fmt, [(k, o, n, whole, m, i) for k, o, n, _, m, i in plan])
        results[whole] = t
        print(f"   {mode:<29}: {samples / t:8.1f} samples/s  {nbytes / 2**20 / t:8.1f} MiB/s  "
              f"{nbytes / samples / 1024:8.1f} KiB read per sample")
    print(f"   ranged / whole samples/s: {results[True] / results[False]:.2f}x")


def full_runs(root: str, latency_ms: float) -> None:
    """Part 3: prepare a TFRecord set once, then a random and a sequential ``read`` run under latency."""
    import pandas as pd

    from dnnbench.cli import main as cli
    from dnnbench.config.loading import LoadedConfig, validate
    from dnnbench.events import NullEvents
    from dnnbench.run.prepare import prepare_dataset

    storage = {"client": "fs", "root": os.path.join(root, "runs"), "prefixes": ["ds"]}
    prepare = {"format": "tfrecord", "layout": "dlio", "num_files": 16, "samples_per_file": 64,
               "record_length_bytes": 65536}
    base = {"storage": storage, "prepare": prepare, "metrics": {"output_dir": os.path.join(root, "results")},
            "framework": {"name": "pytorch", "num_workers": 4, "batch_size": 16},
            "training": {"trainer": "read", "epochs": 2}}
    prepare_dataset(LoadedConfig(validate(base), None, []), NullEvents())
    print(f"3) full runs: {prepare['num_files']} TFRecord files x {prepare['samples_per_file']} records of 64 KiB, "
          f"pytorch read trainer, 4 workers, 2 epochs, {latency_ms:g} ms emulated latency per request")
    for access in ("random", "sequential"):
        cfg = {**base, "storage": {**storage, "emulate": {"latency_ms": latency_ms}},
               "dataset": {"format": "tfrecord", "layout": "dlio", "access": access, "decode": "none"}}
        path = os.path.join(root, f"{access}.yaml")
        with open(path, "w") as f:
            import yaml

            yaml.safe_dump(cfg, f)
        if cli(["-q", "--config", path, "--run-id", access]) != 0:
            raise RuntimeError(f"the {access} run failed")
        r = pd.read_csv(os.path.join(root, "results", access, "summary.csv")).iloc[0]
        print(f"   {access:>10}: {r['samples_per_s']:8.1f} samples/s  {r['MiB_per_s']:8.2f} MiB/s  "
              f"{int(r['requests']):5d} requests  byte_check {r['byte_check']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--latency-ms", type=float, default=5.0)
    ap.add_argument("--overhead-only", action="store_true", help="part 1 only (the reader overhead)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dnnbench-perf-formats-") as root:
        overhead(os.path.join(root, "small"), args.files, FileSpec(64, (128, 128)), args.rounds)
        overhead(os.path.join(root, "large"), args.files, FileSpec(16, (512, 512)), args.rounds)
        if args.overhead_only:
            return 0
        ranged_vs_whole(os.path.join(root, "lat"), args.latency_ms, 8, FileSpec(64, (256, 256)), 64)
        ranged_vs_whole(os.path.join(root, "bw"), args.latency_ms, 8, FileSpec(64, (256, 256)), 32, 1000.0)
        full_runs(root, args.latency_ms)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
