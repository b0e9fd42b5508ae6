"""Run directories are never reused; summary appends are atomic and parseable."""

from __future__ import annotations

import multiprocessing as mp
import threading

import pandas as pd
import pytest

from dnnbench.errors import ConfigError
from dnnbench.metrics.results import append_summary, create_run_dir


def test_concurrent_run_ids_are_unique(tmp_path):
    out = []
    barrier = threading.Barrier(8)

    def make():
        barrier.wait()
        out.append(create_run_dir(tmp_path, None, "same"))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({p.name for p in out}) == 8


def test_explicit_run_id_never_overwrites(tmp_path):
    create_run_dir(tmp_path, "mine", "x")
    with pytest.raises(ConfigError, match="never overwritten"):
        create_run_dir(tmp_path, "mine", "x")
    with pytest.raises(ConfigError):
        create_run_dir(tmp_path, "../escape", "x")


def _append(args):
    out, i = args
    append_summary(out, {"run_id": f"r{i}", "MiB_per_s": float(i), **({"extra": i} if i % 5 == 0 else {})})


def test_concurrent_appends_stay_parseable(tmp_path):
    with mp.get_context("fork").Pool(4) as pool:
        pool.map(_append, [(str(tmp_path), i) for i in range(40)])
    df = pd.read_csv(tmp_path / "summary.csv")
    assert sorted(df["run_id"]) == sorted(f"r{i}" for i in range(40))
    assert "extra" in df.columns  # a newer column widened the file without losing rows
