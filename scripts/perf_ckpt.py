#!/usr/bin/env python3
"""dnnbench checkpoint performance check (issue 16): the checkpoint workload's PyTorch engine
(torch.distributed.checkpoint, one rank) against plain I/O of the same bytes.

1. Filesystem: DCP save (FileSystemWriter, fsync) / load (FileSystemReader) vs a dd-style
   write of the same tensors' bytes to one file + fsync, and a read of it in 8 MiB chunks.
2. S3 (the local Swift server): DCP through s3torchconnector's S3StorageWriter/Reader vs a
   boto3 multipart upload (upload_fileobj, 8 MiB parts, 8 threads) and a ranged parallel
   download (8 MiB ranges, 8 threads) of an object of the same size.

The two sides alternate in every round; the page cache is dropped before every read where
permitted (root), else both read warm (said so). Prints GB/s and the median ratio
DCP / plain (target >= 0.9). Ratios, not absolute numbers, are the result: on a loaded
2-core machine the server and the client share the CPUs.

    .venv/bin/python scripts/perf_ckpt.py                  # ~2-4 minutes
    .venv/bin/python scripts/perf_ckpt.py --mb 64 --rounds 2 --skip-s3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from dnnbench.storage import pagecache  # noqa: E402

CHUNK = 8 * 2**20
THREADS = 8


def timed(work: Callable[[], int]) -> float:
    """GB/s of ``work()`` (which returns its bytes)."""
    t0 = time.perf_counter()
    nbytes = work()
    return nbytes / 1e9 / (time.perf_counter() - t0)


def cold(drop: bool) -> None:
    if drop:
        pagecache.drop_caches()


def plain_write(path: Path, buffers: list[memoryview]) -> int:
    """dd-style: the bytes to one file, then fsync."""
    with open(path, "wb", buffering=0) as f:
        for b in buffers:
            f.write(b)
        os.fsync(f.fileno())
    return sum(len(b) for b in buffers)


def plain_read(path: Path, into: bytearray) -> int:
    view, n = memoryview(into), 0
    with open(path, "rb", buffering=0) as f:
        while n < len(view):
            got = f.readinto(view[n:n + CHUNK])
            if not got:
                break
            n += got
    return n


def engine_for(place, nbytes: int):
    from dnnbench.frameworks.pytorch.dcp import DcpEngine

    engine = DcpEngine(place, nbytes, 0, 1, tensors=8, seed=1)
    engine.generate()
    return engine


def buffers_of(engine) -> list[memoryview]:
    return [memoryview(t.numpy()) for t in engine.state.values()]


def rounds(args, pairs: dict[str, tuple[Callable[[int], float], Callable[[int], float]]]) -> dict[str, float]:
    """Each (dcp, plain) pair alternated ``args.rounds`` times; the median ratio per name."""
    out = {}
    for name, (dcp_side, plain_side) in pairs.items():
        ratios = []
        for r in range(args.rounds):
            d, p = dcp_side(r), plain_side(r)
            ratios.append(d / p)
            print(f"  round {r + 1}: {name:10s} DCP {d:6.3f} GB/s | plain {p:6.3f} GB/s | ratio {d / p:.2f}", flush=True)
        out[name] = statistics.median(ratios)
    return out


def bench_fs(args) -> dict[str, float]:
    from dnnbench.frameworks.pytorch.dcp import FsPlace

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        engine = engine_for(FsPlace(Path(tmp) / "dcp", fsync=True), args.mb * 10**6)
        buffers, plain = buffers_of(engine), Path(tmp) / "plain.bin"
        into = bytearray(sum(len(b) for b in buffers))
        drop = args.drop
        pairs = {
            "fs save": (lambda r: timed(lambda: engine.save(r)), lambda r: timed(lambda: plain_write(plain, buffers))),
            "fs load": (lambda r: (cold(drop), timed(lambda: engine.load(r)))[1],
                        lambda r: (cold(drop), timed(lambda: plain_read(plain, into)))[1]),
        }
        result = rounds(args, pairs)
        assert engine.verify(args.rounds - 1)
        return result


def ranged_download(client, bucket: str, key: str, into: bytearray) -> int:
    view = memoryview(into)

    def part(start: int) -> int:
        end = min(len(view), start + CHUNK) - 1
        body = client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end}")["Body"].read()
        view[start:start + len(body)] = body
        return len(body)

    with ThreadPoolExecutor(THREADS) as pool:
        return sum(pool.map(part, range(0, len(view), CHUNK)))


def multipart_upload(client, bucket: str, key: str, data: bytes) -> int:
    import io

    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_threshold=CHUNK, multipart_chunksize=CHUNK, max_concurrency=THREADS)
    client.upload_fileobj(io.BytesIO(data), bucket, key, Config=config)
    return len(data)


def s3_storage(info: dict, bucket: str):
    from dnnbench.config.loading import validate
    from dnnbench.storage import create_storage

    cfg = validate({"storage": {"client": "s3torchconnector", "preset": "minio",
                                "s3": {"bucket": bucket, "endpoint_url": info["endpoint_url"],
                                       "region": info["region"], "access_key": info["access_key"],
                                       "secret_key": info["secret_key"]}}})
    return create_storage(cfg.storage)


def bench_s3(args, info: dict) -> dict[str, float]:
    from s3server import delete_bucket, make_s3_client

    from dnnbench.frameworks.pytorch.dcp import S3Place

    client, bucket = make_s3_client(info), f"dnnbench-perf-ckpt-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    try:
        engine = engine_for(S3Place(s3_storage(info, bucket), "dcp"), args.mb * 10**6)
        data = b"".join(bytes(b) for b in buffers_of(engine))
        into = bytearray(len(data))
        drop = args.drop
        pairs = {
            "s3 save": (lambda r: timed(lambda: engine.save(r)),
                        lambda r: timed(lambda: multipart_upload(client, bucket, f"plain-{r}", data))),
            "s3 load": (lambda r: (cold(drop), timed(lambda: engine.load(r)))[1],
                        lambda r: (cold(drop), timed(lambda: ranged_download(client, bucket, f"plain-{r}", into)))[1]),
        }
        result = rounds(args, pairs)
        assert engine.verify(args.rounds - 1) and bytes(into) == data
        return result
    finally:
        delete_bucket(client, bucket)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=256, help="checkpoint size, 10^6 bytes (default 256)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where the fs side writes (default: the temp dir)")
    parser.add_argument("--skip-s3", action="store_true")
    args = parser.parse_args()
    args.drop, why = pagecache.drop_caches()
    print(f"checkpoint perf: {args.mb} MB, {args.rounds} rounds, one rank; reads "
          + ("cold (page cache dropped before each)" if args.drop else f"warm: cannot drop the page cache ({why})"))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (a loaded machine lowers every figure)")
    ratios = bench_fs(args)
    if not args.skip_s3:
        from s3server import ensure_server, server_running, stop_server

        started = not server_running(ROOT)
        try:
            ratios.update(bench_s3(args, ensure_server(ROOT)))
        finally:
            if started:
                stop_server(ROOT)
    for name, ratio in ratios.items():
        print(f"{name}: DCP / plain median ratio {ratio:.2f} (target >= 0.9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
