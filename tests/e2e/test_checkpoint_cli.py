"""The checkpoint workload from the command line: two ranks under torchrun on a filesystem
(bytes written == bytes read, payload == the configured size, verified, slowest-rank figures
consistent with the per-rank rows), one process, and TensorFlow's tf.train.Checkpoint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.e2e.test_distributed import torchrun

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
SIZE = 3_000_001  # odd: the ranks' shares differ by a byte


def write(tmp_path: Path, storage: dict | None = None, **sections) -> Path:
    data = {"name": "ckpt", "storage": storage or {"client": "fs", "root": str(tmp_path / "store")},
            "training": {"trainer": "checkpoint"},
            "checkpoint": {"size_bytes": SIZE, "saves": 3, "loads": 2, "tensors_per_rank": 3, "drop_caches": False},
            "metrics": {"output_dir": str(tmp_path / "results"), "system_interval_s": 0.2}}
    for k, v in sections.items():
        data[k] = {**data.get(k, {}), **v}
    cfg = tmp_path / "ckpt.yaml"
    cfg.write_text(yaml.safe_dump(data))
    return cfg


def the_run(tmp_path: Path) -> Path:
    (run,) = [p for p in (tmp_path / "results").iterdir() if p.is_dir()]
    return run


def check_two_ranks(run: Path, saves: int = 3, loads: int = 2) -> None:
    """checkpoints.csv, the rank rows and the aggregate row agree with each other and with the size."""
    rows = pd.read_csv(run / "checkpoints.csv")
    per_rank = rows[rows["rank"] != "all"].astype({"rank": int})
    every = rows[rows["rank"] == "all"]
    assert len(per_rank) == 2 * (saves + loads) and len(every) == saves + loads
    for (op, index), group in per_rank.groupby(["op", "index"]):
        assert group["payload_bytes"].sum() == SIZE  # the ranks' shares make the configured size
        total = every[(every["op"] == op) & (every["index"] == index)].iloc[0]
        assert total["bytes"] == group["bytes"].sum() and total["duration_s"] == group["duration_s"].max()
        assert total["slowest_rank_GB_per_s"] == pytest.approx(group["GB_per_s"].min())
    saved = per_rank[per_rank["op"] == "save"].set_index(["index", "rank"])["bytes"]
    loaded = per_rank[per_rank["op"] == "load"].set_index(["index", "rank"])["bytes"]
    assert (loaded == saved.loc[loaded.index]).all()  # every byte written is read back
    assert set(per_rank.loc[per_rank["op"] == "load", "verified"]) == {"ok"}
    ranks = [pd.read_csv(run / f"rank-{k}" / "summary.csv").iloc[0] for k in (0, 1)]
    row = pd.read_csv(run / "summary.csv").iloc[0]
    assert row["status"] == "ok" and row["ckpt_verified"] == "ok" and row["ckpt_ranks"] == 2
    assert row["ckpt_size_bytes"] == SIZE and row["ckpt_saves"] == saves and row["ckpt_loads"] == loads
    assert row["ckpt_save_bytes"] == sum(r["ckpt_save_bytes"] for r in ranks) == saved.sum()
    assert row["ckpt_load_bytes"] == loaded.sum()
    assert row["ckpt_save_slowest_rank_GB_per_s"] == pytest.approx(min(r["ckpt_save_GB_per_s"] for r in ranks))
    assert row["ckpt_load_longest_s"] == pytest.approx(max(r["ckpt_load_longest_s"] for r in ranks))
    # summary.csv keeps 6 significant digits; checkpoints.csv every digit
    assert row["ckpt_save_longest_s"] == pytest.approx(every.loc[every["op"] == "save", "duration_s"].max(), rel=1e-4)


def test_two_ranks_on_fs(tmp_path):
    r = torchrun(write(tmp_path), timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    check_two_ranks(the_run(tmp_path))
    assert list((tmp_path / "store" / "checkpoints").iterdir()) == []  # removed: keep is false


def run_cli(cfg: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "benchmark.py", "-q", "run", "--config", str(cfg)], cwd=ROOT,
                          capture_output=True, text=True, timeout=400)


def test_one_process_keeps_its_checkpoints(tmp_path):
    r = run_cli(write(tmp_path, checkpoint={"keep": True, "saves": 2, "loads": 1}))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = the_run(tmp_path)
    row = pd.read_csv(run / "summary.csv").iloc[0]
    assert row["ckpt_verified"] == "ok" and row["ckpt_read_cache"] == "warm" and row["ckpt_ranks"] == 1
    assert sorted(p.name for p in (tmp_path / "store" / "checkpoints" / run.name).iterdir()) == ["save-0", "save-1"]


def test_tensorflow_checkpoint_on_fs(tmp_path):
    r = run_cli(write(tmp_path, framework={"name": "tensorflow"}))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rows = pd.read_csv(the_run(tmp_path) / "checkpoints.csv")
    mine = rows[rows["rank"] != "all"]
    assert (mine["payload_bytes"] == SIZE).all() and set(mine.loc[mine["op"] == "load", "verified"]) == {"ok"}
    saves = mine[mine["op"] == "save"]["bytes"].tolist()
    assert saves[0] >= SIZE and mine[mine["op"] == "load"]["bytes"].tolist() == saves[:2]


def test_no_room_in_memory_is_bad_input(tmp_path):
    """Past validation (limits.memory_MiB raised), the run still refuses what the free memory cannot hold."""
    big = write(tmp_path, checkpoint={"size_bytes": 10**15, "saves": 1, "loads": 1}, limits={"memory_MiB": 10**10})
    r = run_cli(big)
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    assert "the checkpoint vs the free memory" in r.stdout + r.stderr
