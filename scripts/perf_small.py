#!/usr/bin/env python3
"""Small objects at full speed (issue 17): ratios measured side by side in one run.

1. CPU per request: dnnbench's ``read`` path (``decode: none``, boto3) against a plain threaded
   ``get_object()['Body'].read()`` loop over the same keys of the local S3 server, at equal
   concurrency (N loader workers vs N threads), pairs interleaved. Prints throughput (target
   ratio >= 1.0) and CPU milliseconds per object of each (target: dnnbench within 10%).
   dnnbench's CPU is the train phase's, of the whole process tree (main + loader workers, the
   system sampler's ``cpu_percent``); the plain loop's is its process CPU time.
2. Requests in flight under 20 ms emulated latency (``storage.emulate``; this kernel has no netem):
   ``dataset.requests_in_flight`` K=8 vs K=1 with 4 workers (target >= 6x), and dnnbench 4 x 8 vs a
   plain loop of 32 threads that waits the same emulated latency before each read (target >= 0.9x).
   The store is the local filesystem by default (page cache: the store costs next to nothing, so
   the loader's overlap of latency is what is measured); ``--latency-store s3`` uses the S3 server.
3. Listing under 20 ms emulated latency: ``list_dataset`` with 16 threads vs 1 over 20,000 objects
   in 20 class prefixes (target >= 10x). The bound latency allows is printed beside it: one thread
   sends every listing request in turn; N threads need the rounds of :func:`latency_rounds`.

On a 2-core machine shared with other work the figures move a lot: read the ratios, and the
spread of the rounds.

    .venv/bin/python scripts/perf_small.py                  (part of `make perf`; a few minutes)
    .venv/bin/python scripts/perf_small.py --skip-cpu        (no S3 server needed)
"""

from __future__ import annotations

import argparse
import os
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
warnings.filterwarnings("ignore")

from dnnbench.config.loading import LoadedConfig, validate  # noqa: E402
from dnnbench.data.listing import list_dataset  # noqa: E402
from dnnbench.events import NullEvents  # noqa: E402
from dnnbench.executor import Executor, prepare_dataset  # noqa: E402
from dnnbench.storage import create_storage  # noqa: E402

PREFIX = "small"


def s3_storage(info: dict, bucket: str) -> dict:
    return {"client": "boto3", "preset": "minio", "prefixes": [PREFIX], "create_bucket": True,
            "s3": {"bucket": bucket, "endpoint_url": info["endpoint_url"], "region": info["region"],
                   "access_key": info["access_key"], "secret_key": info["secret_key"], "max_pool_connections": 32}}


def loaded(storage: dict, out: str, args: argparse.Namespace, workers: int, k: int = 1,
           latency_ms: float = 0.0, epochs: int = 1) -> LoadedConfig:
    storage = dict(storage)
    if latency_ms:
        storage["emulate"] = {"latency_ms": latency_ms}
    data = {"name": "perf-small", "storage": storage,
            "prepare": {"classes": 4, "images_per_class": -(-args.objects // 4), "width": [64, 320],
                        "height": [64, 320], "workers": 8},
            "dataset": {"decode": "none", "requests_in_flight": k},
            "framework": {"batch_size": 32, "num_workers": workers, "prefetch_factor": 2, "persistent_workers": True},
            "training": {"trainer": "read", "epochs": epochs},
            "metrics": {"output_dir": out, "system_interval_s": 1.0}}
    return LoadedConfig(validate(data), None, [])


def run(cfg: LoadedConfig, expect_bytes: int) -> dict:
    row = Executor(cfg, NullEvents()).run().row
    if row["status"] != "ok" or row["bytes"] != expect_bytes:
        raise SystemExit(f"run {row['status']} ({row['reason']}): bytes {row['bytes']} != {expect_bytes}")
    return row


def cpu_ms_per_object(row: dict) -> float:
    """Train-phase CPU of dnnbench's process tree per object: cpu_percent x seconds / samples."""
    return row["cpu_percent"] * 10.0 / row["samples_per_s"]


def plain_loop(get, keys: list[str], threads: int, epochs: int) -> tuple[int, float, float]:
    """``get(key) -> bytes`` on ``threads`` threads, a fresh order per pass: (bytes, seconds, CPU seconds)."""
    total = 0
    c0, t0 = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for e in range(epochs):
            total += sum(pool.map(lambda k: len(get(k)), random.Random(e).sample(keys, len(keys))))
    return total, time.perf_counter() - t0, time.process_time() - c0


def boto3_get(info: dict, bucket: str, latency_s: float = 0.0):
    from s3server import make_s3_client

    client = make_s3_client(info)
    client.list_objects_v2(Bucket=bucket, MaxKeys=1)  # connected before timing (stricter for dnnbench)

    def get(key: str) -> bytes:
        if latency_s:
            time.sleep(latency_s)
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()

    return get


def fs_get(root: str, latency_s: float):
    def get(key: str) -> bytes:
        time.sleep(latency_s)
        with open(os.path.join(root, key), "rb") as f:
            return f.read()

    return get


def dataset(cfg: LoadedConfig):
    prepare_dataset(cfg, NullEvents())
    index, _ = list_dataset(create_storage(cfg.config.storage), [PREFIX], 8, cfg.config.dataset.extensions)
    return index


def bench_cpu(info: dict, args: argparse.Namespace, out: str, results: dict) -> None:
    storage = s3_storage(info, args.bucket)
    cfg = loaded(storage, out, args, args.workers, epochs=args.epochs)
    index = dataset(cfg)
    print(f"1. read path vs plain boto3 loop: {len(index):,} objects, mean {index.total_bytes / len(index) / 1024:.0f} "
          f"KiB, {args.workers} loader workers vs {args.workers} threads, {args.epochs} passes each", flush=True)
    ratios, last, cpu_d, cpu_p = [], [], [], []
    for r in range(args.rounds):
        plain_first = r % 2 == 0
        if plain_first:
            nbytes, secs, cpu = plain_loop(boto3_get(info, args.bucket), index.keys, args.workers, args.epochs)
        row = run(cfg, index.total_bytes * args.epochs)
        if not plain_first:
            nbytes, secs, cpu = plain_loop(boto3_get(info, args.bucket), index.keys, args.workers, args.epochs)
        plain_rate = len(index) * args.epochs / secs
        ratios.append(row["samples_per_s"] / plain_rate)
        last.append(row["last_epoch_MiB_per_s"] / (nbytes / args.epochs / 2**20 / (secs / args.epochs)))
        cpu_d.append(cpu_ms_per_object(row))
        cpu_p.append(cpu * 1e3 / (len(index) * args.epochs))
        print(f"  round {r + 1}: dnnbench {row['samples_per_s']:6.0f} obj/s, {cpu_d[-1]:.2f} CPU ms/obj | plain "
              f"{plain_rate:6.0f} obj/s, {cpu_p[-1]:.2f} CPU ms/obj | ratio {ratios[-1]:.2f} (last epoch "
              f"{last[-1]:.2f}), CPU "
              f"{cpu_d[-1] / cpu_p[-1]:.2f}x", flush=True)
    results["cpu"] = {"ratio": statistics.median(ratios), "last_epoch": statistics.median(last), "cpu_ms_dnnbench": statistics.median(cpu_d),
                      "cpu_ms_plain": statistics.median(cpu_p)}


def bench_latency(info: dict | None, args: argparse.Namespace, out: str, results: dict) -> None:
    latency_s = args.latency_ms / 1e3
    if args.latency_store == "s3":
        storage = s3_storage(info, args.bucket)
        get = boto3_get(info, args.bucket, latency_s)
    else:
        root = os.path.join(out, "fs-data")
        storage = {"client": "fs", "root": root, "prefixes": [PREFIX]}
        get = fs_get(root, latency_s)
    index = dataset(loaded(storage, out, args, 4))
    mib = index.total_bytes / 2**20
    print(f"2. {args.latency_ms:g} ms emulated latency ({args.latency_store}), {len(index):,} objects, "
          "dnnbench's last of 2 epochs (persistent workers) vs one pass of the plain loop:", flush=True)
    k1, k8, plain = [], [], []
    for r in range(args.rounds):
        for k, rates in ((1, k1), (8, k8)):
            cfg = loaded(storage, out, args, 4, k, args.latency_ms, epochs=2)
            rates.append(run(cfg, 2 * index.total_bytes)["last_epoch_MiB_per_s"])
        _, secs, _ = plain_loop(get, index.keys, 32, 1)
        plain.append(mib / secs)
        print(f"  round {r + 1}: 4 workers K=1 {k1[-1]:6.2f} MiB/s | K=8 {k8[-1]:6.2f} MiB/s | plain loop 32 threads "
              f"{plain[-1]:6.2f} MiB/s | K=8/K=1 {k8[-1] / k1[-1]:.2f}x, 4x8/plain {k8[-1] / plain[-1]:.2f}x", flush=True)
    results["latency"] = {"k8_over_k1": statistics.median(a / b for a, b in zip(k8, k1)),
                          "k8_over_plain32": statistics.median(a / b for a, b in zip(k8, plain))}


def listing_tree(root: str, prefixes: int, classes: int, objects: int) -> list[str]:
    """``prefixes`` x ``classes`` folders of tiny files (made once per run)."""
    names = [f"p{i:02d}" for i in range(prefixes)]
    per = -(-objects // (prefixes * classes))
    for p in names:
        for c in range(classes):
            folder = os.path.join(root, p, f"c{c:02d}")
            os.makedirs(folder, exist_ok=True)
            for i in range(per):
                with open(os.path.join(folder, f"{i:06d}.bin"), "wb") as f:
                    f.write(b"x")
    return names


def latency_rounds(prefixes: int, classes: int, threads: int) -> int:
    """Round trips ``list_dataset`` needs on ``threads`` threads when every request takes the same
    time: first-in first-out, a prefix's class listings queued when its own listing answers."""
    queue = ["top"] * prefixes
    rounds = 0
    while queue:
        now, queue = queue[:threads], queue[threads:]
        queue += ["class"] * (classes * now.count("top"))
        rounds += 1
    return rounds


def bench_listing(args: argparse.Namespace, out: str, results: dict) -> None:
    root = os.path.join(out, "listing")
    prefixes = listing_tree(root, args.list_prefixes, args.list_classes, args.list_objects)
    cfg = validate({"storage": {"client": "fs", "root": root, "prefixes": prefixes,
                                "emulate": {"latency_ms": args.latency_ms}}})
    storage = create_storage(cfg.storage)
    bare = create_storage(validate({"storage": {"client": "fs", "root": root, "prefixes": prefixes}}).storage)
    work = min(list_dataset(bare, prefixes, 1, [".bin"])[1].seconds for _ in range(2))  # no latency: its own work
    n, p, c = args.list_workers, args.list_prefixes, args.list_prefixes * args.list_classes
    rounds, latency_s = latency_rounds(p, args.list_classes, n), args.latency_ms / 1e3
    bound = (p + c) / rounds
    with_work = ((p + c) * latency_s + work) / (rounds * latency_s + work)
    print(f"3. listing {args.list_objects:,} objects in {c} class prefixes ({p} prefixes x {args.list_classes}), "
          f"{args.latency_ms:g} ms emulated latency: {n} threads vs 1. Latency alone allows {bound:.1f}x; with the "
          f"listing's own work ({work:.2f} s on 1 thread without latency, held by one GIL) {with_work:.1f}x", flush=True)
    speedups = []
    for r in range(args.rounds):
        one, s1 = list_dataset(storage, prefixes, 1, [".bin"])
        many, sn = list_dataset(storage, prefixes, n, [".bin"])
        if many.keys != one.keys:
            raise SystemExit("listing with threads differs from the sequential listing")
        speedups.append(s1.seconds / sn.seconds)
        print(f"  round {r + 1}: 1 thread {s1.seconds:.2f} s, {n} threads {sn.seconds:.2f} s = {speedups[-1]:.2f}x",
              flush=True)
    results["listing"] = {"speedup": statistics.median(speedups), "bound": bound, "with_work": with_work}


def summary(results: dict) -> None:
    print("\nsummary (medians; the machine is shared, see the rounds for the spread):")
    if "cpu" in results:
        r = results["cpu"]
        print(f"  read path / plain boto3 loop, equal concurrency: {r['ratio']:.2f}x, last epoch {r['last_epoch']:.2f}x "
              f"(target >= 1.0); CPU per object "
              f"{r['cpu_ms_dnnbench']:.2f} vs {r['cpu_ms_plain']:.2f} ms = {r['cpu_ms_dnnbench'] / r['cpu_ms_plain']:.2f}x "
              "(target <= 1.10)")
    if "latency" in results:
        r = results["latency"]
        print(f"  requests_in_flight 8 / 1, 4 workers: {r['k8_over_k1']:.2f}x (target >= 6); 4 x 8 / plain loop of "
              f"32 threads: {r['k8_over_plain32']:.2f}x (target >= 0.9)")
    if "listing" in results:
        r = results["listing"]
        print(f"  listing 16 threads / 1: {r['speedup']:.2f}x (target >= 10; latency alone allows "
              f"{r['bound']:.1f}x, with the listing's own work {r['with_work']:.1f}x)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=2000, help="objects of the read datasets")
    ap.add_argument("--workers", type=int, default=4, help="1: loader workers = plain-loop threads")
    ap.add_argument("--epochs", type=int, default=2, help="1: passes per measurement")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--bucket", default="dnnbench-perf-small")
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--latency-store", choices=("fs", "s3"), default="fs")
    ap.add_argument("--list-objects", type=int, default=20_000)
    ap.add_argument("--list-prefixes", type=int, default=20)
    ap.add_argument("--list-classes", type=int, default=1, help="class folders per prefix")
    ap.add_argument("--list-workers", type=int, default=16)
    ap.add_argument("--skip-cpu", action="store_true")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--skip-listing", action="store_true")
    args = ap.parse_args()
    results: dict = {}
    t0 = time.perf_counter()
    needs_s3 = not args.skip_cpu or (not args.skip_latency and args.latency_store == "s3")
    info = started = None
    if needs_s3:
        from s3server import ensure_server, server_running

        started = not server_running(ROOT)
        info = ensure_server(ROOT)
    try:
        with tempfile.TemporaryDirectory(prefix="dnnbench-perf-small-") as out:
            if not args.skip_cpu:
                bench_cpu(info, args, out, results)
            if not args.skip_latency:
                bench_latency(info, args, out, results)
            if not args.skip_listing:
                bench_listing(args, out, results)
    finally:
        if started:
            from s3server import stop_server

            stop_server(ROOT)
    summary(results)
    print(f"perf_small took {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
