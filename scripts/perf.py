#!/usr/bin/env python3
"""dnnbench performance check: is the tool itself ever the bottleneck?

Measures, on a generated dataset held in the page cache, the ``read`` trainer's
MiB/s with ``decode: none`` against a plain reader that reads the same files
with the same number of processes and no framework, alternating the two in one
run, and prints the ratio (target >= 0.9 at 4 workers). Ratios, not absolute
times, are the result: the machines are noisy.

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


def plain_reader(paths: list[str], workers: int, epochs: int = 1, seed: int = 0) -> tuple[int, float]:
    """Same files, same number of processes, no framework: bytes and seconds.

    Each pass reads every file once in a fresh random order, split over the processes.
    """
    t0 = time.perf_counter()
    total = 0
    with mp.get_context("fork").Pool(workers) as pool:
        for e in range(epochs):
            order = random.Random(seed + e).sample(paths, len(paths))
            chunks = [order[i::workers] for i in range(workers)]
            total += sum(pool.map(_read_chunk, chunks))
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
        "framework": {"batch_size": 64, "num_workers": workers, "prefetch_factor": 2,
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
    ap.add_argument("--epochs", type=int, default=3, help="passes per measurement (both sides)")
    ap.add_argument("--data", default="data/perf-read", help="dataset folder (kept between runs)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dnnbench-perf-") as out:
        root = os.path.join(args.data, f"{args.classes}x{args.per_class}")
        loaded = config(root, out, args.workers, args.classes, args.per_class, args.epochs)
        prepare_dataset(loaded, NullEvents())
        paths = sorted(str(p) for p in Path(root).rglob("*.jpg"))
        size = sum(os.path.getsize(p) for p in paths)
        print(f"dataset: {len(paths):,} JPEGs, {size / 2**20:.1f} MiB (mean {size / len(paths) / 1024:.0f} KiB), "
              f"in page cache (read once before measuring); {args.workers} workers/processes, "
              f"{args.epochs} passes per measurement; {os.cpu_count()} CPUs")
        plain_reader(paths, args.workers)  # warm the page cache
        ratios, hand_ratios = [], []
        print(f"{'round':>5} {'plain MiB/s':>12} {'dnnbench MiB/s':>15} {'ratio':>7} {'hand-written DataLoader':>24}")
        for r in range(args.rounds):
            nbytes, secs = plain_reader(paths, args.workers, args.epochs)
            plain = nbytes / 2**20 / secs
            outcome = Executor(loaded, NullEvents()).run()
            row = outcome.row
            assert row["bytes"] == nbytes, (row["bytes"], nbytes)
            ours = row["MiB_per_s"]
            hbytes, hsecs = hand_written_loader(paths, args.workers, args.epochs)
            hand = hbytes / 2**20 / hsecs
            ratios.append(ours / plain)
            hand_ratios.append(ours / hand)
            print(f"{r + 1:>5} {plain:>12.1f} {ours:>15.1f} {ours / plain:>7.2f} {hand:>15.1f} MiB/s   (first batch {row['time_to_first_batch_s']:.3f} s, epochs {row['first_epoch_MiB_per_s']:.0f} -> {row['last_epoch_MiB_per_s']:.0f} MiB/s)")
        med = statistics.median(ratios)
        print(f"read trainer / plain reader, decode none, {args.workers} workers: median ratio {med:.2f} "
              f"(min {min(ratios):.2f}, max {max(ratios):.2f}; target >= 0.90)")
        print(f"read trainer / hand-written DataLoader (bytes per sample, list collate), same workers: "
              f"median ratio {statistics.median(hand_ratios):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
