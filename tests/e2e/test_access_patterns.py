"""Access patterns end to end: sequential, shards, emulated latency."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from dnnbench.cli import main


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("access", ["sequential", "shards"])
def test_each_epoch_reads_the_listed_bytes(tiny_root, write_config, tmp_path, workers, access):
    cfg = write_config(tiny_root, dataset={"access": access, "decode": "rgb", "shuffle_buffer": 5},
                       shards={"prefix": f"shards-{access}-{workers}", "max_samples": 5},
                       prepare={"auto": True}, framework={"num_workers": workers},
                       training={"trainer": "read", "epochs": 2})
    if access == "shards":
        assert main(["prepare", "--shards", "--config", str(cfg)]) == 0
    assert main(["-q", "--config", str(cfg), "--run-id", "r"]) == 0
    row = pd.read_csv(tmp_path / "results" / "r" / "summary.csv").iloc[0]
    assert row["status"] == "ok" and row["access"] == access and row["byte_check"] == "ok"
    assert row["samples"] == 2 * 36 and row["bytes"] == 2 * row["bytes_listed"]
    expected_requests = 2 * (8 if access == "shards" else 36)  # 36 samples in shards of <= 5
    assert row["requests"] == expected_requests
    assert row["samples_per_request"] == pytest.approx(72 / expected_requests)
    assert row["emulated"] == "no"
    steps = pd.read_csv(tmp_path / "results" / "r" / "steps.csv")
    assert steps.groupby("epoch")["samples"].sum().tolist() == [36, 36]


def test_shards_labels_survive_and_shuffle_differs_per_epoch(tiny_root, write_config, tmp_path):
    """A train run over shards: loss is computed on the labels packed into .cls members, and
    each epoch reads every shard once, in a new order (no loader workers: requests.csv holds
    the shard GETs in the order the one reader made them)."""
    cfg = write_config(tiny_root, dataset={"access": "shards", "shuffle_buffer": 8},
                       shards={"prefix": "shards-train", "max_samples": 6}, framework={"num_workers": 0},
                       training={"trainer": "train", "epochs": 3})
    assert main(["prepare", "--shards", "--config", str(cfg)]) == 0
    assert main(["-q", "--config", str(cfg), "--run-id", "t"]) == 0
    steps = pd.read_csv(tmp_path / "results" / "t" / "steps.csv")
    assert steps["loss"].notna().all() and steps["samples"].sum() == 3 * 36
    req = pd.read_csv(tmp_path / "results" / "t" / "requests.csv")
    gets = req[(req["op"] == "get") & req["key"].str.endswith(".tar")].sort_values("start_s", kind="stable")
    order = [gets[gets["epoch"] == e]["key"].tolist() for e in range(3)]
    shards = sorted(order[0])
    assert len(shards) == 6 and len(set(shards)) == 6  # 36 samples in shards of 6
    assert all(sorted(o) == shards for o in order)  # every shard once per epoch
    assert order[0] != order[1] and order[1] != order[2]  # reshuffled each epoch


def test_fewer_shards_than_workers_warns_and_does_not_hang(tiny_root, write_config, tmp_path, capsys):
    cfg = write_config(tiny_root, dataset={"access": "shards"}, shards={"prefix": "shards-big", "max_samples": 1000},
                       framework={"num_workers": 3}, training={"trainer": "read"})
    assert main(["prepare", "--shards", "--config", str(cfg)]) == 0
    assert main(["--config", str(cfg), "--run-id", "few"]) == 0
    assert "1 shards for 3 loader workers" in capsys.readouterr().err
    row = pd.read_csv(tmp_path / "results" / "few" / "summary.csv").iloc[0]
    assert row["samples"] == 36 and row["byte_check"] == "ok"


def test_missing_shards_is_bad_input(tiny_root, write_config, tmp_path, capsys):
    cfg = write_config(tiny_root, dataset={"access": "shards"}, shards={"prefix": "no-shards-here"})
    assert main(["--config", str(cfg)]) == 2
    assert "shards.prefix" in capsys.readouterr().err


def test_emulated_latency_is_marked_and_slows_requests(tiny_root, write_config, tmp_path):
    cfg = write_config(tiny_root, storage={"emulate": {"latency_ms": 20, "jitter_ms": 2}},
                       dataset={"max_samples": 8}, training={"trainer": "read"})
    assert main(["-q", "--config", str(cfg), "--run-id", "emu"]) == 0
    run = tmp_path / "results" / "emu"
    row = pd.read_csv(run / "summary.csv").iloc[0]
    assert row["emulated"] == "yes:20+-2ms" and "(emulated)" in row["storage"]
    assert row["request_p50_ms"] >= 17.5
    assert json.loads((run / "environment.json").read_text())["storage"]["emulated"]["latency_ms"] == 20
    assert row["cache"] == "unknown"  # an emulated remote store has no local page cache to report
