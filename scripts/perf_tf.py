#!/usr/bin/env python3
"""dnnbench TensorFlow performance check: tf.data vs PyTorch's DataLoader on the same data.

Runs the ``read`` trainer through both frameworks with the same number of workers
(reads in flight), the same batch size and the same page-cache-resident dataset as
``scripts/perf.py``, alternating the two, and prints TensorFlow's MiB/s over
PyTorch's as a ratio per round and its median. One framework per process: each
measurement runs in its own child process (this parent imports neither framework).
Only the train phase is timed, so TensorFlow's import does not count.

    .venv/bin/python scripts/perf_tf.py                       # decode none, 4 workers
    .venv/bin/python scripts/perf_tf.py --decode rgb --read-unit sample --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dnnbench.config.loading import LoadedConfig, validate  # noqa: E402
from dnnbench.events import NullEvents  # noqa: E402


def config(framework: str, args: argparse.Namespace, out: str) -> LoadedConfig:
    fw = {"name": framework, "batch_size": args.batch_size, "num_workers": args.workers, "prefetch_factor": 4}
    if framework == "pytorch":
        fw["persistent_workers"] = args.workers > 0
    else:
        fw["tensorflow"] = {"read_unit": args.read_unit, "parallelism": args.parallelism}
    data = {
        "name": f"perf-{framework}",
        "storage": {"client": "fs", "root": args.root, "prefixes": ["train"]},
        "prepare": {"classes": args.classes, "images_per_class": args.per_class, "width": [300, 700],
                    "height": [300, 700], "workers": 2},
        "dataset": {"decode": args.decode, "image_dimension": [64, 64]},
        "framework": fw,
        "training": {"trainer": "read", "epochs": args.epochs},
        "metrics": {"output_dir": out},
    }
    return LoadedConfig(validate(data), None, [])


def child(args: argparse.Namespace) -> int:
    """One measurement in this process; prints a JSON line."""
    from dnnbench.executor import Executor

    with tempfile.TemporaryDirectory(prefix="dnnbench-perf-tf-") as out:
        row = Executor(config(args.child, args, out), NullEvents()).run().row
    other = "torch" if args.child == "tensorflow" else "tensorflow"
    print(json.dumps({"MiB_per_s": row["MiB_per_s"], "bytes": row["bytes"], "status": row["status"],
                      "reason": row["reason"], "samples_per_s": row["samples_per_s"],
                      "first_batch_s": row["time_to_first_batch_s"], "other_framework_loaded": other in sys.modules}))
    return 0


def measure(framework: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", framework, "--root", args.root, "--workers", str(args.workers),
           "--epochs", str(args.epochs), "--decode", args.decode, "--read-unit", args.read_unit,
           "--parallelism", args.parallelism, "--batch-size", str(args.batch_size),
           "--classes", str(args.classes), "--per-class", str(args.per_class)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{framework} measurement failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1])
    if result["status"] != "ok":
        raise SystemExit(f"{framework} run failed: {result['reason']}")
    if result["other_framework_loaded"]:
        raise SystemExit(f"{framework} run loaded the other framework: one framework per process is broken")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=4, help="loader workers = tf.data reads in flight")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3, help="passes per measurement")
    ap.add_argument("--decode", choices=("none", "rgb"), default="none")
    ap.add_argument("--read-unit", choices=("batch", "sample"), default="batch", help="framework.tensorflow.read_unit")
    ap.add_argument("--parallelism", choices=("map", "interleave"), default="map")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--per-class", type=int, default=750)
    ap.add_argument("--data", default="data/perf-read", help="dataset folder (shared with scripts/perf.py)")
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--child", choices=("pytorch", "tensorflow"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.root is None:
        args.root = os.path.join(args.data, f"{args.classes}x{args.per_class}")
    if args.child:
        return child(args)

    from dnnbench.executor import prepare_dataset

    with tempfile.TemporaryDirectory(prefix="dnnbench-perf-tf-") as out:
        prepare_dataset(config("pytorch", args, out), NullEvents())
    paths = sorted(Path(args.root).rglob("*.jpg"))
    size = sum(p.stat().st_size for p in paths)
    for p in paths:  # into the page cache before measuring
        p.read_bytes()
    print(f"dataset: {len(paths):,} JPEGs, {size / 2**20:.1f} MiB, in page cache; read trainer, decode {args.decode}, "
          f"{args.workers} workers, batch {args.batch_size}, {args.epochs} passes per measurement; tensorflow "
          f"read_unit {args.read_unit}, parallelism {args.parallelism}; {os.cpu_count()} CPUs")
    print(f"{'round':>5} {'pytorch MiB/s':>14} {'tensorflow MiB/s':>17} {'ratio tf/pt':>12}")
    ratios = []
    for r in range(args.rounds):
        order = ("pytorch", "tensorflow") if r % 2 == 0 else ("tensorflow", "pytorch")
        res = {fw: measure(fw, args) for fw in order}
        pt, tf = res["pytorch"]["MiB_per_s"], res["tensorflow"]["MiB_per_s"]
        if res["pytorch"]["bytes"] != res["tensorflow"]["bytes"]:
            raise SystemExit(f"the frameworks read different byte counts: {res}")
        ratios.append(tf / pt)
        print(f"{r + 1:>5} {pt:>14.1f} {tf:>17.1f} {tf / pt:>12.2f}")
    print(f"tensorflow / pytorch read MiB/s, decode {args.decode}, {args.workers} workers: median ratio "
          f"{statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
