#!/usr/bin/env python3
"""dnnbench performance check: is the tool itself ever the bottleneck?

Measures, on a generated dataset held in the page cache, the ``read`` trainer's
MiB/s with ``decode: none`` against plain readers that read the same files with
the same number of processes and no framework, alternating them in one run, and
prints the ratios (target >= 0.9 at 4 workers). Ratios, not absolute times, are
the result: the machines are noisy.

Two plain readers, because they answer two questions:

- *batches kept*: each process reads its files batch by batch, back to back into
  a batch-sized buffer (a ring of prefetch_factor + 2, as a loader must keep the
  batches it hands on). This is the floor for any loader: the bytes land in memory
  the training loop can read. The target applies to this ratio.
- *discard*: ``open().read()`` into a fresh bytes object that is dropped at once;
  the destination stays in the CPU cache, so this is the page cache's memcpy
  ceiling, which no loader that keeps its batches reaches on a small machine.

    make perf            # or: .venv/bin/python scripts/perf.py --rounds 5
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dnnbench.config.loading import LoadedConfig, validate  # noqa: E402
from dnnbench.executor import Executor, prepare_dataset  # noqa: E402
from dnnbench.events import NullEvents  # noqa: E402


def _read_chunk(paths: list[str]) -> int:
    total = 0
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            total += len(f.read())
    return total


_BATCH = 64
_SLOTS = 4  # prefetch_factor 2 + 2, as dnnbench's ring


def _read_batches(paths: list[str]) -> int:
    """Files of one process, batch by batch, back to back into a ring of batch buffers."""
    sizes = [os.path.getsize(p) for p in paths]
    cap = max(sum(sizes[i:i + _BATCH]) for i in range(0, len(sizes), _BATCH)) if sizes else 0
    ring = [memoryview(bytearray(cap)) for _ in range(_SLOTS)]
    total = 0
    for b in range(0, len(paths), _BATCH):
        view, pos = ring[(b // _BATCH) % _SLOTS], 0
        for p, size in zip(paths[b:b + _BATCH], sizes[b:b + _BATCH]):
            fd = os.open(p, os.O_RDONLY)
            try:
                pos += os.readv(fd, [view[pos:pos + size]])
            finally:
                os.close(fd)
        total += pos
    return total


def plain_reader(paths: list[str], workers: int, epochs: int = 1, seed: int = 0,
                 keep_batches: bool = False) -> tuple[int, float]:
    """Same files, same number of processes, no framework: bytes and seconds.

    Each pass reads every file once in a fresh random order, split over the processes
    (pool start-up included, as dnnbench's worker start-up is).
    """
    t0 = time.perf_counter()
    total = 0
    read = _read_batches if keep_batches else _read_chunk
    with mp.get_context("fork").Pool(workers) as pool:
        for e in range(epochs):
            order = random.Random(seed + e).sample(paths, len(paths))
            chunks = [order[i::workers] for i in range(workers)]
            total += sum(pool.map(read, chunks))
    return total, time.perf_counter() - t0


class _HandWritten:
    """What people write by hand: a map-style Dataset returning each file's bytes."""

    def __init__(self, paths: list[str]):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> bytes:
        with open(self.paths[i], "rb") as f:
            return f.read()


def _keep(batch):
    return batch


def hand_written_loader(paths: list[str], workers: int, epochs: int, batch_size: int = 64) -> tuple[int, float]:
    """A plain torch DataLoader over _HandWritten (bytes travel to the main process as a list)."""
    from torch.utils.data import DataLoader

    loader = DataLoader(_HandWritten(paths), batch_size=batch_size, shuffle=True, num_workers=workers,
                        collate_fn=_keep, persistent_workers=True)
    t0 = time.perf_counter()
    total = 0
    for _ in range(epochs):
        for batch in loader:
            total += sum(len(b) for b in batch)
    seconds = time.perf_counter() - t0
    loader._iterator._shutdown_workers()
    return total, seconds


def config(root: str, out: str, workers: int, classes: int, per_class: int, epochs: int) -> LoadedConfig:
    data = {
        "name": "perf-read",
        "storage": {"client": "fs", "root": root, "prefixes": ["train"]},
        "prepare": {"classes": classes, "images_per_class": per_class, "width": [300, 700],
                    "height": [300, 700], "workers": 2},
        "dataset": {"decode": "none"},
        "framework": {"batch_size": _BATCH, "num_workers": workers, "prefetch_factor": 2,
                      "persistent_workers": True},
        "training": {"trainer": "read", "epochs": epochs},
        "metrics": {"output_dir": out},
    }
    return LoadedConfig(validate(data), None, [])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--per-class", type=int, default=750)
    ap.add_argument("--epochs", type=int, default=6, help="passes per measurement (every side)")
    ap.add_argument("--data", default="data/perf-read", help="dataset folder (kept between runs)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dnnbench-perf-") as out:
        root = os.path.join(args.data, f"{args.classes}x{args.per_class}")
        loaded = config(root, out, args.workers, args.classes, args.per_class, args.epochs)
        prepare_dataset(loaded, NullEvents())
        paths = sorted(str(p) for p in Path(root).rglob("*.jpg"))
        size = sum(os.path.getsize(p) for p in paths)
        print(f"dataset: {len(paths):,} JPEGs, {size / 2**20:.1f} MiB (mean {size / len(paths) / 1024:.0f} KiB), "
              "in page cache (read once, and one unmeasured dnnbench run, before measuring); "
              f"{args.workers} workers/processes, {args.epochs} passes per measurement; {os.cpu_count()} CPUs")
        plain_reader(paths, args.workers)  # warm the page cache
        Executor(loaded, NullEvents()).run()  # and the process: first-run imports and allocations
        kept, discard, hand = [], [], []
        print(f"{'round':>5} {'dnnbench':>9} {'plain, batches kept':>20} {'plain, discard':>15} "
              f"{'hand-written DataLoader':>24}   (MiB/s)")
        for r in range(args.rounds):
            nbytes, secs = plain_reader(paths, args.workers, args.epochs, keep_batches=True)
            plain_kept = nbytes / 2**20 / secs
            row = Executor(loaded, NullEvents()).run().row
            assert row["bytes"] == nbytes, (row["bytes"], nbytes)
            ours = row["MiB_per_s"]
            dbytes, dsecs = plain_reader(paths, args.workers, args.epochs)
            plain_discard = dbytes / 2**20 / dsecs
            hbytes, hsecs = hand_written_loader(paths, args.workers, args.epochs)
            handwritten = hbytes / 2**20 / hsecs
            kept.append(ours / plain_kept)
            discard.append(ours / plain_discard)
            hand.append(ours / handwritten)
            print(f"{r + 1:>5} {ours:>9.1f} {plain_kept:>20.1f} {plain_discard:>15.1f} {handwritten:>24.1f}   "
                  f"(first batch {row['time_to_first_batch_s']:.3f} s, epochs {row['first_epoch_MiB_per_s']:.0f} "
                  f"-> {row['last_epoch_MiB_per_s']:.0f} MiB/s)")

        def summary(ratios: list[float]) -> str:
            return f"median {statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})"

        print(f"read trainer / plain reader, batches kept, decode none, {args.workers} workers: {summary(kept)}; "
              "target >= 0.90")
        print(f"read trainer / plain reader, discard (page-cache memcpy ceiling): {summary(discard)}")
        print(f"read trainer / hand-written DataLoader (bytes per sample, list collate), same workers: "
              f"{summary(hand)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
