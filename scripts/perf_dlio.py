#!/usr/bin/env python3
"""dnnbench vs DLIO 2.0 (MLPerf Storage's engine) on the same NPZ files, side by side.

One DLIO workload YAML (unet3d-like: npz, one sample per file of a few MB, the pytorch loader)
is run unchanged by both: ``dlio_benchmark`` (from its own venv, ``make dlio-setup``) and
``benchmark.py --config`` (which translates it, issue 15). Same files (generated once by
``benchmark.py prepare`` in DLIO's layout; DLIO reads them as its own), same read threads,
batch size, epochs and shuffles; ``computation_time`` 0, so both measure how fast the loader
delivers samples. Rounds alternate which engine goes first; the page cache is warm for both
(the files were just written and read).

Figures, per engine: samples/s (DLIO: ``train_throughput_mean_samples_per_second``, its mean over
epochs; dnnbench: samples / training wall time), and the true MiB/s: dnnbench's bytes are what
storage returned; DLIO reads each whole file per sample (``np.load(f)['x']``), so its true MiB/s
is its samples/s x the mean file size. DLIO's own "MB/s" (samples/s x nominal record_length /
2^20) is printed beside it. The ratio printed is dnnbench's samples/s over DLIO's (target >= 1).

    .venv/bin/python scripts/perf_dlio.py                    # DLIO from .venv-dlio
    .venv/bin/python scripts/perf_dlio.py --dlio-venv /tmp/dliovenv --files 32 --threads 2 --rounds 3
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def workload(args: argparse.Namespace, data: Path) -> dict:
    """The DLIO workload both engines run (DLIO 2.0.0 key names)."""
    return {
        "model": "perf_unet3d", "framework": "pytorch",
        "workflow": {"generate_data": False, "train": True, "checkpoint": False},
        "dataset": {"data_folder": str(data), "format": "npz", "num_files_train": args.files,
                    "num_samples_per_file": 1, "record_length": args.record_bytes,
                    "record_length_stdev": args.record_bytes // 4},
        "reader": {"data_loader": "pytorch", "batch_size": args.batch_size, "read_threads": args.threads,
                   "file_shuffle": "seed", "sample_shuffle": "seed"},
        "train": {"epochs": args.epochs, "computation_time": 0.0},
        "metric": {"au": 0.9},
    }


def write_workload(args: argparse.Namespace, work: Path) -> Path:
    import yaml

    conf = work / "conf" / "workload"
    conf.mkdir(parents=True, exist_ok=True)
    path = conf / "perf_unet3d.yaml"
    path.write_text(yaml.safe_dump(workload(args, work / "data"), sort_keys=False))
    return path


def prepare(path: Path, work: Path) -> list[Path]:
    """dnnbench generates the files (DLIO's names and layout), then they are read once into the page cache."""
    cmd = [sys.executable, str(ROOT / "benchmark.py"), "prepare", "-q", "--config", str(path),
           "--set", f"metrics.output_dir={work / 'results'}"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"prepare failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    files = sorted((work / "data" / "train").glob("*.npz"))
    for f in files:
        f.read_bytes()
    return files


def run_dnnbench(path: Path, work: Path, k: int) -> dict:
    out = work / f"dnnbench-{k}"
    cmd = [sys.executable, str(ROOT / "benchmark.py"), "-q", "--config", str(path),
           "--set", f"metrics.output_dir={out}"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    rows = list(csv.DictReader((out / "summary.csv").open())) if (out / "summary.csv").is_file() else []
    if done.returncode != 0 or not rows or rows[-1]["status"] != "ok":
        raise SystemExit(f"dnnbench run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    row = rows[-1]
    return {"samples_per_s": float(row["samples_per_s"]), "MiB_per_s": float(row["MiB_per_s"]),
            "au_percent": float(row["au_percent"]) if row["au_percent"] else None}


def run_dlio(args: argparse.Namespace, work: Path, k: int, mean_file: float) -> dict:
    out = work / f"dlio-{k}"
    venv = Path(args.dlio_venv).resolve()
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}", "PYTHONWARNINGS": "ignore"}
    cmd = [str(venv / "bin" / "dlio_benchmark"), "--config-dir", str(work / "conf"), "workload=perf_unet3d",
           "++workload.workflow.profiling=False", "++workload.profiling.profiler=none", f"++hydra.run.dir={out}"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=work, env=env)
    summary = out / "summary.json"
    if done.returncode != 0 or not summary.is_file():
        raise SystemExit(f"DLIO run failed (exit {done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")
    metric = json.loads(summary.read_text())["metric"]
    sps = float(metric["train_throughput_mean_samples_per_second"])
    return {"samples_per_s": sps, "MiB_per_s": sps * mean_file / 2**20,
            "nominal_MB_per_s": float(metric["train_io_mean_MB_per_second"]),
            "au_percent": float(metric["train_au_mean_percentage"])}


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dlio-venv", default=os.environ.get("DLIO_VENV", str(ROOT / ".venv-dlio")),
                    help="venv holding dlio_benchmark (make dlio-setup)")
    ap.add_argument("--files", type=int, default=64, help="NPZ files (one sample each)")
    ap.add_argument("--record-bytes", type=int, default=4 * 2**20, help="DLIO record_length (stdev: a quarter)")
    ap.add_argument("--threads", type=int, default=2, help="reader.read_threads = framework.num_workers")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    return ap.parse_args()


def main() -> int:
    args = parse()
    if not (Path(args.dlio_venv) / "bin" / "dlio_benchmark").exists():
        raise SystemExit(f"no dlio_benchmark in {args.dlio_venv}: run `make dlio-setup` (scripts/dlio-venv.sh)")
    with tempfile.TemporaryDirectory(prefix="dnnbench-perf-dlio-") as tmp:
        work = Path(tmp)
        path = write_workload(args, work)
        files = prepare(path, work)
        mean_file = sum(f.stat().st_size for f in files) / len(files)
        print(f"dataset: {len(files)} NPZ files (DLIO layout, written by dnnbench prepare), mean {mean_file / 2**20:.2f}"
              f" MiB, page cache warm; pytorch loader, {args.threads} read threads, batch {args.batch_size}, "
              f"{args.epochs} epochs, computation_time 0; {os.cpu_count()} CPUs")
        nominal = 'DLIO "MB/s"'
        print(f"{'round':>5} {'dnnbench samples/s':>19} {'MiB/s':>8} {'DLIO samples/s':>15} {'true MiB/s':>11} "
              f"{nominal:>12} {'ratio':>6}")
        ratios = []
        for r in range(args.rounds):
            first_dlio = r % 2 == 1
            res = {}
            for engine in (("dlio", "dnnbench") if first_dlio else ("dnnbench", "dlio")):
                res[engine] = run_dlio(args, work, r, mean_file) if engine == "dlio" else run_dnnbench(path, work, r)
            d, o = res["dnnbench"], res["dlio"]
            ratios.append(d["samples_per_s"] / o["samples_per_s"])
            print(f"{r + 1:>5} {d['samples_per_s']:>19.1f} {d['MiB_per_s']:>8.1f} {o['samples_per_s']:>15.1f} "
                  f"{o['MiB_per_s']:>11.1f} {o['nominal_MB_per_s']:>12.1f} {ratios[-1]:>6.2f}")
    print(f"dnnbench / DLIO 2.0 samples/s on the same NPZ files: median ratio {statistics.median(ratios):.2f} "
          f"(min {min(ratios):.2f}, max {max(ratios):.2f}; target >= 1)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
