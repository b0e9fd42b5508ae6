#!/usr/bin/env python3
"""dnnbench S3 performance check, over the local S3 server (Swift + s3api).

1. Reading: the ``read`` trainer (``decode: none``) through each client library
   against a plain threaded boto3 GET loop over the same keys at the same
   concurrency (N loader worker processes vs N threads), alternating the two in
   each round; prints MiB/s and the ratio per client (target >= 0.85 for boto3).
2. Listing: >= 20,000 objects over >= 10 prefixes x 2 classes, listed by
   ``list_dataset`` with ``--list-workers`` threads vs one thread (ratio = speed-up).

Ratios, not absolute numbers, are the result: on a 2-core machine the server
and the client share the CPUs. The datasets stay in their buckets between runs
(the first run uploads them, ~1-2 minutes); the server is started if needed and
stopped afterwards only if this script started it.

    .venv/bin/python scripts/perf_s3.py                 # a few minutes
    .venv/bin/python scripts/perf_s3.py --clients boto3 --rounds 3 --skip-listing
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from s3server import ensure_server, make_s3_client, server_running, stop_server  # noqa: E402

from dnnbench.config.loading import LoadedConfig, validate  # noqa: E402
from dnnbench.events import NullEvents  # noqa: E402
from dnnbench.executor import Executor, prepare_dataset  # noqa: E402
from dnnbench.storage import create_storage  # noqa: E402
from dnnbench.data.listing import list_dataset  # noqa: E402

CLIENTS = ("boto3", "minio", "s3fs", "s3torchconnector")


def s3_section(info: dict, bucket: str) -> dict:
    return {"bucket": bucket, "endpoint_url": info["endpoint_url"], "region": info["region"],
            "access_key": info["access_key"], "secret_key": info["secret_key"], "max_pool_connections": 32}


def read_config(info: dict, out: str, client: str, args: argparse.Namespace) -> LoadedConfig:
    per_class = max(1, args.objects // 4)
    data = {
        "name": f"perf-s3-{client}",
        "storage": {"client": client, "preset": "minio", "prefixes": [f"n{args.objects}"], "create_bucket": True,
                    "s3": s3_section(info, args.bucket)},
        "prepare": {"classes": 4, "images_per_class": per_class, "width": [64, 320], "height": [64, 320],
                    "workers": 16},
        "dataset": {"decode": "none"},
        "framework": {"batch_size": 32, "num_workers": args.workers, "prefetch_factor": 2,
                      "persistent_workers": True},
        "training": {"trainer": "read", "epochs": args.epochs},
        "metrics": {"output_dir": out, "system_interval_s": 1.0},
    }
    return LoadedConfig(validate(data), None, [])


def plain_boto3_loop(info: dict, bucket: str, keys: list[str], threads: int, epochs: int) -> tuple[int, float]:
    """The baseline: one boto3 client, ``threads`` threads, get_object().read() per key, fresh order per pass."""
    client = make_s3_client(info)
    client.list_objects_v2(Bucket=bucket, MaxKeys=1)  # connected before timing (dnnbench's workers connect
    # inside the timed epoch, which only makes the comparison stricter for dnnbench)

    def get(key: str) -> int:
        return len(client.get_object(Bucket=bucket, Key=key)["Body"].read())

    t0 = time.perf_counter()
    total = 0
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for e in range(epochs):
            order = random.Random(e).sample(keys, len(keys))
            total += sum(pool.map(get, order))
    return total, time.perf_counter() - t0


def bench_read(info: dict, args: argparse.Namespace, results: dict) -> None:
    with tempfile.TemporaryDirectory(prefix="dnnbench-perf-s3-") as out:
        configs = {c: read_config(info, out, c, args) for c in args.clients}
        first = configs[args.clients[0]] if args.clients[0] != "s3torchconnector" else read_config(
            info, out, "boto3", args)
        prepare_dataset(first, NullEvents())
        storage = create_storage(first.config.storage)
        index, _ = list_dataset(storage, first.config.storage.prefixes, 8, first.config.dataset.extensions)
        mean_kib = index.total_bytes / len(index) / 1024
        print(f"read: {len(index):,} JPEGs, {index.total_bytes / 2**20:.1f} MiB (mean {mean_kib:.0f} KiB, "
              f"{index.sizes.min() / 1024:.0f}-{index.sizes.max() / 1024:.0f} KiB) in s3://{args.bucket}; "
              f"{args.workers} loader workers vs {args.workers} threads, {args.epochs} passes per measurement")
        ratios: dict[str, list[float]] = {c: [] for c in args.clients}
        rates: dict[str, list[float]] = {c: [] for c in ("plain", *args.clients)}
        for r in range(args.rounds):
            for i, c in enumerate(args.clients):
                # each client is paired with its own baseline run, the order alternating, so drift of a
                # shared machine (and of the server) over the run does not favour either side
                first_plain = (r + i) % 2 == 0
                if first_plain:
                    nbytes, secs = plain_boto3_loop(info, args.bucket, index.keys, args.workers, args.epochs)
                row = Executor(configs[c], NullEvents()).run().row
                if not first_plain:
                    nbytes, secs = plain_boto3_loop(info, args.bucket, index.keys, args.workers, args.epochs)
                if row["status"] != "ok" or row["bytes"] != nbytes:
                    raise SystemExit(f"{c}: run {row['status']} ({row['reason']}), bytes {row['bytes']} != {nbytes}")
                plain = nbytes / 2**20 / secs
                rates["plain"].append(plain)
                ratios[c].append(row["MiB_per_s"] / plain)
                rates[c].append(row["MiB_per_s"])
                ttfb = row["request_ttfb_p50_ms"]
                print(f"round {r + 1}: {c:16s} {row['MiB_per_s']:6.2f} MiB/s ({row['samples_per_s']:4.0f} obj/s, "
                      f"ttfb p50 {ttfb if ttfb is not None else float('nan'):5.1f} ms, cpu {row['cpu_percent']:.0f}%)"
                      f" | plain boto3 loop {plain:6.2f} MiB/s ({len(index) * args.epochs / secs:4.0f} obj/s)"
                      f" | ratio {row['MiB_per_s'] / plain:.2f}", flush=True)
        for c in args.clients:
            med = statistics.median(ratios[c])
            target = "  (target >= 0.85)" if c == "boto3" else ""
            print(f"read trainer via {c:16s} / plain boto3 loop: median ratio {med:.2f} "
                  f"(min {min(ratios[c]):.2f}, max {max(ratios[c]):.2f}){target}")
        results["read"] = {"objects": len(index), "bytes": index.total_bytes, "workers": args.workers,
                           "epochs": args.epochs, "MiB_per_s": rates,
                           "ratio_median": {c: statistics.median(v) for c, v in ratios.items()}}


def ensure_listing_data(info: dict, args: argparse.Namespace) -> list[str]:
    """``--list-prefixes`` prefixes x 2 classes x N tiny objects in their own bucket (uploaded once)."""
    client = make_s3_client(info)
    per_class = -(-args.list_objects // (args.list_prefixes * 2))
    prefixes = [f"p{i:02d}" for i in range(args.list_prefixes)]
    keys = [f"{p}/c{c}/{i:06d}.bin" for p in prefixes for c in range(2) for i in range(per_class)]
    try:
        client.create_bucket(Bucket=args.list_bucket)
    except client.exceptions.ClientError as e:
        if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    have = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=args.list_bucket):
        have.update(o["Key"] for o in page.get("Contents", ()))
    missing = [k for k in keys if k not in have]
    if missing:
        print(f"listing: uploading {len(missing):,} tiny objects to s3://{args.list_bucket} (once) ...", flush=True)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=32) as pool:
            list(pool.map(lambda k: client.put_object(Bucket=args.list_bucket, Key=k, Body=b"x" * 16), missing))
        print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)
    return prefixes


def bench_listing(info: dict, args: argparse.Namespace, results: dict) -> None:
    prefixes = ensure_listing_data(info, args)
    cfg = validate({"storage": {"client": "boto3", "preset": "minio", "prefixes": prefixes,
                                "s3": s3_section(info, args.list_bucket)}})
    storage = create_storage(cfg.storage)
    storage.check()
    speedups, seq_rates, par_rates = [], [], []
    for r in range(args.rounds):
        _, seq = list_dataset(storage, prefixes, 1, [".bin"])
        _, par = list_dataset(storage, prefixes, args.list_workers, [".bin"])
        speedups.append(seq.seconds / par.seconds)
        seq_rates.append(seq.objects_per_s)
        par_rates.append(par.objects_per_s)
        print(f"round {r + 1}: {par.objects:,} objects, {len(prefixes)} prefixes x {par.classes} classes: "
              f"1 thread {seq.seconds:.2f} s ({seq.objects_per_s:,.0f} obj/s), {args.list_workers} threads "
              f"{par.seconds:.2f} s ({par.objects_per_s:,.0f} obj/s) = {seq.seconds / par.seconds:.2f}x", flush=True)
    print(f"parallel ({args.list_workers} threads) / sequential listing: median speed-up "
          f"{statistics.median(speedups):.2f}x (min {min(speedups):.2f}, max {max(speedups):.2f})")
    results["listing"] = {"objects": par.objects, "prefixes": len(prefixes), "threads": args.list_workers,
                          "sequential_obj_per_s": seq_rates, "parallel_obj_per_s": par_rates,
                          "speedup_median": statistics.median(speedups)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated client libraries")
    ap.add_argument("--workers", type=int, default=4, help="loader workers = plain-loop threads")
    ap.add_argument("--objects", type=int, default=800, help="JPEGs in the read dataset")
    ap.add_argument("--epochs", type=int, default=2, help="passes per measurement (both sides)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--bucket", default="dnnbench-perf-read")
    ap.add_argument("--list-bucket", default="dnnbench-perf-list")
    ap.add_argument("--list-objects", type=int, default=20_000)
    ap.add_argument("--list-prefixes", type=int, default=10)
    ap.add_argument("--list-workers", type=int, default=16)
    ap.add_argument("--skip-read", action="store_true")
    ap.add_argument("--skip-listing", action="store_true")
    ap.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message=".*worker processes in total.*")  # 4 workers on 2 CPUs: intended
    args.clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    unknown = sorted(set(args.clients) - set(CLIENTS))
    if unknown:
        ap.error(f"unknown clients {unknown}; choose from {CLIENTS}")
    started = not server_running(ROOT)
    info = ensure_server(ROOT)
    results: dict = {"cpus": __import__("os").cpu_count(), "endpoint": info["endpoint_url"]}
    t0 = time.perf_counter()
    try:
        if not args.skip_read:
            bench_read(info, args, results)
        if not args.skip_listing:
            bench_listing(info, args, results)
    finally:
        if started:
            stop_server(ROOT)
    print(f"perf_s3 took {time.perf_counter() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
