#!/usr/bin/env python3
"""Access patterns under emulated latency, and memory that does not grow with the dataset.

1. shards vs random objects at 4 workers under 5 ms emulated per-request latency:
   the ``read`` trainer's MiB/s for each, on the same synthetic dataset (ratio; expected far above 1).
2. peak RSS (whole process tree) of a shards run at 10,000 vs 40,000 samples (ratio; target <= 1.15):
   streaming shards keeps memory bounded by the shuffle buffer, not the dataset.

    .venv/bin/python scripts/perf_access.py     (part of `make perf`)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
warnings.filterwarnings("ignore")

from dnnbench.config.loading import LoadedConfig, validate  # noqa: E402
from dnnbench.events import NullEvents  # noqa: E402
from dnnbench.executor import Executor, pack_shards, prepare_dataset  # noqa: E402


def loaded(root: str, out: str, access: str, per_class: int, latency_ms: float, epochs: int = 1,
           name: str = "perf-access") -> LoadedConfig:
    data = {
        "name": name,
        "storage": {"client": "fs", "root": root, "prefixes": ["train"]},
        "prepare": {"classes": 10, "images_per_class": per_class, "width": [24, 64], "height": [24, 64],
                    "workers": 2},
        "shards": {"prefix": "shards", "max_samples": 500, "max_bytes": 50_000_000},
        "dataset": {"access": access, "decode": "none", "shuffle_buffer": 1000},
        "framework": {"batch_size": 64, "num_workers": 4},
        "training": {"trainer": "read", "epochs": epochs},
        "metrics": {"output_dir": out},
    }
    if latency_ms:
        data["storage"]["emulate"] = {"latency_ms": latency_ms}
    return LoadedConfig(validate(data), None, [])


def run(cfg: LoadedConfig) -> dict:
    outcome = Executor(cfg).run()
    if outcome.row["status"] != "ok" or outcome.row["MiB_per_s"] is None:
        raise SystemExit(f"run failed: {outcome.row['status']} {outcome.row['reason']} {outcome.error!r}")
    return outcome.row


def make(root: str, out: str, per_class: int) -> None:
    cfg = loaded(root, out, "shards", per_class, 0)
    prepare_dataset(cfg, NullEvents())
    pack_shards(cfg, NullEvents())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/perf-access")
    ap.add_argument("--latency-ms", type=float, default=5.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dnnbench-perf-") as out:
        small, large = os.path.join(args.data, "10k"), os.path.join(args.data, "40k")
        make(small, out, 1000)
        make(large, out, 4000)
        print(f"1) random objects vs shards, 4 workers, {args.latency_ms:g} ms emulated latency per request, "
              "10,000 samples, decode none, read trainer")
        rows = {}
        for access in ("random", "shards"):
            rows[access] = r = run(loaded(small, out, access, 1000, args.latency_ms))
            print(f"   {access:>7}: {r['MiB_per_s']:8.2f} MiB/s  {r['samples_per_s']:9.0f} samples/s  "
                  f"{r['samples_per_request']:.0f} samples per request  request p50 {r['request_p50_ms']:.1f} ms")
        print(f"   shards / random: {rows['shards']['MiB_per_s'] / rows['random']['MiB_per_s']:.1f}x "
              "(expected far above 1)")
        print("2) peak RSS of a shards run (process tree, 4 workers, shuffle buffer 1000), no emulation")
        rss = {}
        for name, root, per_class in (("10,000", small, 1000), ("40,000", large, 4000)):
            r = run(loaded(root, out, "shards", per_class, 0))
            rss[name] = r["peak_rss_MiB"]
            print(f"   {name:>6} samples: peak RSS {r['peak_rss_MiB']:.0f} MiB, {r['samples']} samples read, "
                  f"byte_check {r['byte_check']}")
        print(f"   40,000 / 10,000 peak RSS: {rss['40,000'] / rss['10,000']:.3f} (target <= 1.15)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
