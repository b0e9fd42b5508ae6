"""torchrun: two ranks on the CPU (gloo) read every sample exactly once per epoch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import base_config

ROOT = Path(__file__).resolve().parents[2]


def torchrun(cfg: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    """Run under torchrun in its own process group, so a hang never leaves ranks behind."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--standalone",
            "benchmark.py", "-q", "--config", str(cfg)]
    p = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail(f"torchrun hung:\n{out[-2000:]}\n{err[-2000:]}")
    return subprocess.CompletedProcess(args, p.returncode, out, err)


@pytest.mark.parametrize("access,trainer", [("random", "read"), ("sequential", "read"), ("shards", "read"),
                                            ("random", "train")])
def test_two_ranks_read_every_sample_once(tiny_root, tmp_path, access, trainer):
    cfg = tmp_path / "dist.yaml"
    data = base_config(tiny_root, tmp_path / "results", dataset={"access": access, "shuffle_buffer": 4},
                       shards={"prefix": "shards-dist", "max_samples": 4}, prepare={"auto": True},
                       framework={"num_workers": 1}, training={"trainer": trainer, "epochs": 2})
    cfg.write_text(yaml.safe_dump(data))
    if access == "shards":
        from dnnbench.cli import main

        assert main(["prepare", "--shards", "--config", str(cfg)]) == 0
    r = torchrun(cfg)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (run,) = [p for p in (tmp_path / "results").iterdir() if p.is_dir()]
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == ["rank-0", "rank-1"]
    agg = pd.read_csv(run / "summary.csv").iloc[0]
    assert agg["status"] == "ok" and agg["ranks"] == 2 and agg["byte_check"] == "ok"
    listed = agg["bytes_listed"]
    assert agg["bytes"] == 2 * listed and agg["samples"] == 2 * 36
    per_rank = [pd.read_csv(run / f"rank-{k}" / "summary.csv").iloc[0] for k in (0, 1)]
    assert {r["rank"] for r in per_rank} == {0, 1}
    assert agg["rank_min_MiB_per_s"] <= agg["rank_max_MiB_per_s"]
    assert agg["au_min_percent"] <= agg["au_percent"]
    gets = pd.concat([pd.read_csv(run / f"rank-{k}" / "requests.csv").assign(rank=k) for k in (0, 1)])
    gets = gets[gets["op"] == "get"]
    for epoch in (0, 1):
        keys = gets[gets["epoch"] == epoch]["key"]
        assert keys.is_unique  # nothing read twice
        assert gets[gets["epoch"] == epoch]["bytes"].sum() == listed  # everything read once
        assert set(gets[(gets["epoch"] == epoch)]["rank"]) == {0, 1}
    summary = pd.read_csv(tmp_path / "results" / "summary.csv")
    assert len(summary) == 1  # one aggregate row per multi-rank run
