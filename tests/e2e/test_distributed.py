"""torchrun: two ranks on the CPU (gloo) read every sample exactly once per epoch, also when
their step counts differ under DistributedDataParallel; rank 0 writes the aggregate; a bad
dataset ends every rank at once."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dnnbench.reporting.aggregate import aggregate
from tests.conftest import base_config

ROOT = Path(__file__).resolve().parents[2]


def _wait(p: subprocess.Popen, timeout: float, what: str) -> tuple[str, str]:
    """Output of ``p``; on a timeout ``p`` and all its descendants are killed (torchrun starts
    each rank in a session of its own) and the test fails."""
    import psutil

    try:
        return p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for child in psutil.Process(p.pid).children(recursive=True):
            child.kill()
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail(f"{what} hung:\n{out[-2000:]}\n{err[-2000:]}")


def torchrun(cfg: Path, nproc: int = 2, timeout: float = 300) -> subprocess.CompletedProcess:
    """``benchmark.py -q --config cfg`` under torchrun (see :func:`torchrun_script`)."""
    return torchrun_script(ROOT / "benchmark.py", "-q", "--config", str(cfg), nproc=nproc, timeout=timeout)


def torchrun_script(script: Path, *args: str, nproc: int = 2, timeout: float = 300) -> subprocess.CompletedProcess:
    """``script args`` under torchrun; a hang fails the test and leaves no rank behind.
    ``--standalone`` rendezvous on a free port: parallel test runs do not clash."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--standalone",
           str(script), *args]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         start_new_session=True)
    out, err = _wait(p, timeout, "torchrun")
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write(tmp_path: Path, root: Path, **sections) -> Path:
    cfg = tmp_path / "dist.yaml"
    cfg.write_text(yaml.safe_dump(base_config(root, tmp_path / "results", **sections)))
    return cfg


def the_run(tmp_path: Path) -> Path:
    (run,) = [p for p in (tmp_path / "results").iterdir() if p.is_dir()]
    return run


def rank_frames(run: Path, name: str) -> pd.DataFrame:
    return pd.concat([pd.read_csv(run / f"rank-{k}" / name).assign(rank=k) for k in (0, 1)])


def assert_each_epoch_read_once(run: Path, epochs: int, listed: int) -> None:
    """Per epoch the ranks' GETs together name every object once and add up to the bytes listed."""
    gets = rank_frames(run, "requests.csv")
    gets = gets[gets["op"] == "get"]
    for epoch in range(epochs):
        e = gets[gets["epoch"] == epoch]
        assert e["key"].is_unique  # nothing read twice
        assert e["bytes"].sum() == listed  # everything read once
        assert set(e["rank"]) == {0, 1}


@pytest.fixture(scope="module")
def odd_root(tmp_path_factory) -> Path:
    """3 classes x 11 JPEGs: 33 samples, so two ranks get 17 and 16 (5 and 4 batches of 4)."""
    from dnnbench.config.schema import StorageConfig
    from dnnbench.data.synthetic import generate
    from dnnbench.storage.fs import FileSystemStorage

    root = tmp_path_factory.mktemp("odd")
    generate(FileSystemStorage(StorageConfig(root=str(root))), "train", 3, 11, width=(16, 32), height=(16, 32),
             seed=3, workers=2)
    return root


@pytest.mark.parametrize("access,trainer", [("random", "read"), ("sequential", "read"), ("shards", "read"),
                                            ("random", "train")])
@pytest.mark.slow
def test_two_ranks_read_every_sample_once(tiny_root, tmp_path, access, trainer):
    cfg = write(tmp_path, tiny_root, dataset={"access": access, "shuffle_buffer": 4},
                shards={"prefix": "shards-dist", "max_samples": 4}, prepare={"auto": True},
                framework={"num_workers": 1}, training={"trainer": trainer, "epochs": 2})
    if access == "shards":
        from dnnbench.cli import main

        assert main(["prepare", "--shards", "--config", str(cfg)]) == 0
    r = torchrun(cfg)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = the_run(tmp_path)
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == ["rank-0", "rank-1"]
    agg = pd.read_csv(run / "summary.csv").iloc[0]
    assert agg["status"] == "ok" and agg["ranks"] == 2 and agg["byte_check"] == "ok"
    listed = agg["bytes_listed"]
    assert agg["bytes"] == 2 * listed and agg["samples"] == 2 * 36
    per_rank = [pd.read_csv(run / f"rank-{k}" / "summary.csv").iloc[0] for k in (0, 1)]
    assert {r["rank"] for r in per_rank} == {0, 1}
    assert agg["rank_min_MiB_per_s"] <= agg["rank_max_MiB_per_s"]
    assert agg["au_min_percent"] <= agg["au_percent"]
    assert_each_epoch_read_once(run, 2, listed)
    summary = pd.read_csv(tmp_path / "results" / "summary.csv")
    assert len(summary) == 1  # one aggregate row per multi-rank run


def two_nodes(tmp_path: Path, cfg: Path, timeout: float = 300) -> list[subprocess.CompletedProcess]:
    """Two torchrun launchers on this machine as two nodes of two ranks each (c10d rendezvous on
    127.0.0.1), each in its own working directory: they share no results folder."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    port, procs = free_port(), []
    for node in (0, 1):
        cwd = tmp_path / f"node{node}"
        cwd.mkdir()
        args = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "2",
                "--node_rank", str(node), "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}",
                "--rdzv_id", "two-nodes", str(ROOT / "benchmark.py"), "-q", "--config", str(cfg)]
        procs.append((args, subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                             text=True, env=env, start_new_session=True)))
    outputs = [_wait(p, timeout, f"node {k}") for k, (_, p) in enumerate(procs)]
    return [subprocess.CompletedProcess(a, p.returncode, *out) for (a, p), out in zip(procs, outputs)]


@pytest.mark.slow
def test_two_nodes_of_two_ranks_read_every_sample_once_and_rank_zero_gathers(tiny_root, tmp_path):
    """Each node keeps its own ranks' files; rank 0 gathers the rows over torch.distributed and
    writes the aggregate, ranks.csv and nodes.csv (issue 16.2)."""
    cfg = tmp_path / "nodes.yaml"
    cfg.write_text(yaml.safe_dump(base_config(tiny_root, Path("results"), framework={"num_workers": 1},
                                              training={"trainer": "read", "epochs": 2})))
    for k, r in enumerate(two_nodes(tmp_path, cfg)):
        assert r.returncode == 0, f"node {k}: " + r.stdout[-3000:] + r.stderr[-3000:]
    (run0,) = [p for p in (tmp_path / "node0" / "results").iterdir() if p.is_dir()]
    run1 = tmp_path / "node1" / "results" / run0.name  # the same run id on both nodes
    assert sorted(p.name for p in run0.iterdir() if p.is_dir()) == ["rank-0", "rank-1"]
    assert sorted(p.name for p in run1.iterdir()) == ["rank-2", "rank-3"]  # its own ranks, nothing else
    assert not (tmp_path / "node1" / "results" / "summary.csv").exists()
    agg = pd.read_csv(run0 / "summary.csv").iloc[0]
    assert agg["status"] == "ok" and agg["ranks"] == 4 and agg["nodes"] == 2 and agg["byte_check"] == "ok"
    listed = agg["bytes_listed"]
    assert agg["bytes"] == 2 * listed and agg["samples"] == 2 * 36
    gets = pd.concat([pd.read_csv(d / f"rank-{k}" / "requests.csv").assign(rank=k)
                      for d, ks in ((run0, (0, 1)), (run1, (2, 3))) for k in ks])
    gets = gets[gets["op"] == "get"]
    for epoch in (0, 1):
        e = gets[gets["epoch"] == epoch]
        assert e["key"].is_unique and e["bytes"].sum() == listed and set(e["rank"]) == {0, 1, 2, 3}
    ranks = pd.read_csv(run0 / "ranks.csv")
    assert list(ranks["rank"]) == [0, 1, 2, 3] and list(ranks["node"]) == [0, 0, 1, 1]
    assert list(ranks["local_rank"]) == [0, 1, 0, 1] and ranks["bytes"].sum() == agg["bytes"]
    assert ranks["clock_offset_ms"].iloc[0] == 0 and ranks["clock_error_ms"].notna().all()
    assert ranks["start_offset_ms"].min() == 0 and agg["start_skew_ms"] == pytest.approx(
        ranks["start_offset_ms"].max(), rel=1e-5)
    assert agg["first_done_s"] == pytest.approx(ranks["done_s"].min(), rel=1e-5)
    assert agg["last_done_s"] == pytest.approx(ranks["done_s"].max(), rel=1e-5)
    assert ranks["first_done_bytes"].sum() <= agg["bytes"]
    nodes = pd.read_csv(run0 / "nodes.csv")
    assert list(nodes["node"]) == [0, 1] and list(nodes["bytes"]) == [ranks["bytes"][:2].sum(),
                                                                      ranks["bytes"][2:].sum()]
    doc = json.loads((run0 / "summary.json").read_text())
    assert doc["figures"]["nodes"] == 2 and [r["rank"] for r in doc["ranks"]] == [0, 1, 2, 3]
    assert len(doc["nodes"]) == 2 and (run0 / "report.md").exists()


@pytest.mark.slow
@pytest.mark.parametrize("access", ["random", "shards"])
def test_ddp_uneven_step_counts_finish_and_read_once(odd_root, tmp_path, access):
    """trainer train (DDP): 33 samples in batches of 4 (17 / 16 per rank), or 7 shards of <= 5
    samples (4 / 3 shards per rank): one rank runs out of batches first and must not hang."""
    cfg = write(tmp_path, odd_root, dataset={"access": access, "shuffle_buffer": 4},
                shards={"prefix": "shards-odd", "max_samples": 5},
                framework={"num_workers": 1, "batch_size": 4}, training={"trainer": "train", "epochs": 2})
    if access == "shards":
        from dnnbench.cli import main

        assert main(["-q", "prepare", "--shards", "--config", str(cfg)]) == 0
    r = torchrun(cfg, timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = the_run(tmp_path)
    agg = pd.read_csv(run / "summary.csv").iloc[0]
    assert agg["status"] == "ok" and agg["byte_check"] == "ok" and agg["samples"] == 2 * 33
    if access == "shards":
        assert agg["objects_listed"] == 7
    assert_each_epoch_read_once(run, 2, agg["bytes_listed"])
    epochs = rank_frames(run, "epochs.csv")
    for epoch in (0, 1):
        e = epochs[epochs["epoch"] == epoch]
        assert e["samples"].sum() == 33
        assert e["steps"].nunique() == 2  # the ranks' step counts really differ


@pytest.mark.slow
@pytest.mark.parametrize("trainer", ["train", "checkpoint"])
def test_each_rank_releases_its_process_group_before_it_exits(tiny_root, tmp_path, trainer):
    """The process group is destroyed while the interpreter is whole: after the run nothing holds
    it (DDP's model, or the defaults of torch.distributed.nn.functional, which DCP imports; held
    past the run, it is torn down during the interpreter's finalization, where a gloo thread
    aborted a rank 1 run in 20 of the checkpoint workload through s3torchconnector)."""
    if trainer == "checkpoint":
        cfg = tmp_path / "ckpt.yaml"
        cfg.write_text(yaml.safe_dump({
            "name": "ckpt", "storage": {"client": "fs", "root": str(tmp_path / "store")},
            "training": {"trainer": "checkpoint"},
            "checkpoint": {"size_bytes": 1_000_000, "saves": 1, "loads": 1, "tensors_per_rank": 2,
                           "drop_caches": False},
            "metrics": {"output_dir": str(tmp_path / "results"), "system_interval_s": 0.2}}))
    else:
        cfg = write(tmp_path, tiny_root, framework={"num_workers": 0, "batch_size": 4},
                    training={"trainer": "train", "epochs": 1})
    r = torchrun_script(ROOT / "tests" / "e2e" / "rank_release.py", str(cfg), timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count("exit 0 held 0") == 2, r.stdout[-3000:]
    assert pd.read_csv(the_run(tmp_path) / "summary.csv").iloc[0]["status"] == "ok"


@pytest.mark.slow
def test_inference_and_checkpoint_phases_on_two_ranks(tiny_root, tmp_path):
    """Each rank evaluates its half of the held-out split and saves its own checkpoint;
    the aggregate sums them (27 training samples: the ranks' step counts differ too)."""
    cfg = write(tmp_path, tiny_root, framework={"num_workers": 1, "batch_size": 4},
                training={"trainer": "train", "epochs": 1},
                execution={"phases": {"inference": True, "checkpoint": True}},
                inference={"holdout_fraction": 0.25, "batch_size": 2}, checkpoint={"size_MiB": 1, "prefix": "ck2"})
    r = torchrun(cfg, timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = the_run(tmp_path)
    agg = pd.read_csv(run / "summary.csv").iloc[0]
    ranks = [pd.read_csv(run / f"rank-{k}" / "summary.csv").iloc[0] for k in (0, 1)]
    assert agg["status"] == "ok" and agg["byte_check"] == "ok" and agg["samples"] == 27
    assert agg["infer_samples"] == 9 == sum(r["infer_samples"] for r in ranks)
    acc = sum(r["accuracy_percent"] * r["infer_samples"] for r in ranks) / 9
    # summary.csv holds 6 significant digits: sums of rounded figures agree to that
    assert agg["accuracy_percent"] == pytest.approx(acc, rel=1e-5)
    assert agg["infer_samples_per_s"] == pytest.approx(sum(r["infer_samples_per_s"] for r in ranks), rel=1e-5)
    assert agg["checkpoint_bytes"] == sum(r["checkpoint_bytes"] for r in ranks) > 2 * 2**20
    assert agg["checkpoint_verified"] == "ok"
    assert agg["samples_per_request"] == pytest.approx(27 / agg["requests"], rel=1e-5)
    reads = rank_frames(run, "requests.csv")
    held = reads[(reads["epoch"] == -1) & (reads["op"] == "get")]
    assert len(held) == 9 and held["key"].is_unique and set(held["rank"]) == {0, 1}


@pytest.mark.slow
def test_ddp_rank_failing_mid_epoch_ends_every_rank(tmp_path):
    """trainer train, dataset.on_error fail, one truncated JPEG: the rank that reads it fails
    while the other is still stepping (in DDP's all-reduce); both end, rank 0 writes the
    aggregate naming the rank that failed."""
    import shutil

    from dnnbench.config.schema import StorageConfig
    from dnnbench.data.synthetic import generate
    from dnnbench.storage.fs import FileSystemStorage

    root = tmp_path / "data"
    generate(FileSystemStorage(StorageConfig(root=str(root))), "train", 2, 8, width=(16, 24), height=(16, 24))
    bad = sorted((root / "train").rglob("*.jpg"))[5]
    bad.write_bytes(bad.read_bytes()[:60])
    cfg = write(tmp_path, root, dataset={"on_error": "fail"}, framework={"num_workers": 0, "batch_size": 2},
                training={"trainer": "train", "epochs": 2})
    r = torchrun(cfg, timeout=180)
    assert r.returncode != 0 and "exitcode  : 1" in r.stderr
    agg = pd.read_csv(the_run(tmp_path) / "summary.csv").iloc[0]
    assert agg["status"] == "failed" and agg["failed_phase"] == "train" and agg["ranks"] == 2
    assert bad.name in agg["reason"] and "(from rank" not in agg["reason"]
    shutil.rmtree(root)


@pytest.mark.slow
def test_missing_dataset_ends_every_rank_with_the_error(tiny_root, tmp_path):
    """Rank 0 finds no data directory: both ranks stop at once with exit 2 and the message."""
    cfg = write(tmp_path, tmp_path / "nowhere", training={"trainer": "train"})
    port = free_port()
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "WORLD_SIZE": "2", "RANK": str(rank),
               "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen([sys.executable, "benchmark.py", "-q", "--config", str(cfg)], cwd=ROOT,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                      start_new_session=True))
    for rank, p in enumerate(procs):
        _, err = _wait(p, 120, f"rank {rank}")
        assert p.returncode == 2, err
        assert "storage.root" in err and "does not exist" in err
        assert "Traceback" not in err


@pytest.mark.slow
def test_missing_dataset_under_torchrun_fails_fast(tmp_path):
    """torchrun exits 1 with its own failure report once a rank has exited 2 (and may stop the
    other rank before it does): the point is that it ends at once, with the message."""
    cfg = write(tmp_path, tmp_path / "nowhere", training={"trainer": "train"})
    r = torchrun(cfg, timeout=120)
    assert r.returncode != 0
    assert "does not exist" in r.stderr and "exitcode  : 2" in r.stderr


@pytest.mark.slow
def test_sigterm_to_torchrun_interrupts_every_rank(tiny_root, tmp_path):
    """torchrun forwards a SIGTERM to each rank's process group, loader workers included (as
    Slurm's scancel does): every rank stops as interrupted, rank 0 writes the aggregate, and
    torchrun itself then exits 1 with its own report of the signal (README, Reliability)."""
    import time

    import psutil

    cfg = write(tmp_path, tiny_root, framework={"num_workers": 1},
                training={"trainer": "emulate", "compute_time_s": 0.2, "epochs": 50})
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
            "benchmark.py", "-q", "--config", str(cfg)]
    p = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    deadline = time.time() + 180
    while len(psutil.Process(p.pid).children(recursive=True)) < 4 and time.time() < deadline:  # 2 ranks, 2 workers
        assert p.poll() is None, p.communicate()
        time.sleep(0.2)
    time.sleep(3)
    p.send_signal(signal.SIGTERM)
    _, err = _wait(p, 180, "torchrun")
    assert p.returncode != 0 and "killed by signal" not in err
    run = the_run(tmp_path)
    for rank in (0, 1):
        row = pd.read_csv(run / f"rank-{rank}" / "summary.csv").iloc[0]
        assert row["status"] == "interrupted" and row["samples"] > 0, (rank, row["reason"])
    agg = pd.read_csv(run / "summary.csv").iloc[0]
    assert agg["status"] == "interrupted" and agg["ranks"] == 2
    assert list(pd.read_csv(tmp_path / "results" / "summary.csv")["status"]) == ["interrupted"]


# -- the aggregate row, from per-rank rows ------------------------------------------------
def rank_row(**values) -> dict:
    row = {"status": "ok", "samples": 10, "bytes": 1000, "requests": 10, "errors": 0, "MiB_per_s": 1.0,
           "au_percent": 50.0, "byte_check": "ok", "objects_listed": 20, "list_s": 0.5}
    return {**row, **values}


def test_aggregate_sums_inference_and_checkpoint_and_weights_accuracy():
    rows = [rank_row(infer_samples=3, accuracy_percent=100.0, infer_samples_per_s=30.0, infer_MiB_per_s=1.0,
                     infer_wall_s=0.1, checkpoint_bytes=100, checkpoint_save_s=0.2, checkpoint_load_s=0.1,
                     checkpoint_save_MB_per_s=5.0, checkpoint_load_MB_per_s=8.0, checkpoint_verified="ok"),
            rank_row(infer_samples=1, accuracy_percent=0.0, infer_samples_per_s=10.0, infer_MiB_per_s=2.0,
                     infer_wall_s=0.3, checkpoint_bytes=120, checkpoint_save_s=0.4, checkpoint_load_s=0.05,
                     checkpoint_save_MB_per_s=4.0, checkpoint_load_MB_per_s=6.0, checkpoint_verified="ok",
                     list_s=1.0)]
    agg = aggregate(rows)
    assert agg["infer_samples"] == 4 and agg["accuracy_percent"] == pytest.approx(75.0)
    assert agg["infer_samples_per_s"] == 40.0 and agg["infer_MiB_per_s"] == 3.0 and agg["infer_wall_s"] == 0.3
    assert agg["checkpoint_bytes"] == 220 and agg["checkpoint_verified"] == "ok"
    assert agg["checkpoint_save_MB_per_s"] == 9.0 and agg["checkpoint_load_MB_per_s"] == 14.0
    assert agg["checkpoint_save_s"] == 0.4 and agg["checkpoint_load_s"] == 0.1
    assert agg["objects_listed"] == 20 and agg["list_s"] == 1.0 and agg["objects_listed_per_s"] == 20.0
    assert agg["ranks"] == 2 and "rank" not in agg


def test_aggregate_recomputes_per_request_columns_from_totals():
    rows = [rank_row(samples=30, requests=10, errors=2, request_mean_bytes=100.0, samples_per_request=3.0),
            rank_row(samples=10, requests=10, errors=0, request_mean_bytes=200.0, samples_per_request=1.0)]
    agg = aggregate(rows)
    assert agg["requests"] == 20 and agg["samples"] == 40 and agg["samples_per_request"] == 2.0
    assert agg["request_mean_bytes"] == pytest.approx((8 * 100 + 10 * 200) / 18)
    sampled = aggregate([rank_row(requests=None, request_mean_bytes=100.0),
                         rank_row(requests=None, request_mean_bytes=300.0)])
    assert sampled["request_mean_bytes"] == 200.0 and sampled["samples_per_request"] is None


@pytest.mark.parametrize("checks,want", [(["ok", "ok"], "ok"), (["ok", "mismatch"], "mismatch"),
                                         (["not_checked", "not_checked"], "not_checked"),
                                         (["ok", "not_checked"], "not_checked"),
                                         (["mismatch", "not_checked"], "mismatch")])
def test_aggregate_byte_check(checks, want):
    assert aggregate([rank_row(byte_check=c) for c in checks])["byte_check"] == want


def test_aggregate_status_of_failed_and_unknown_ranks():
    agg = aggregate([rank_row(), rank_row(status="failed", failed_phase="train", reason="boom")])
    assert agg["status"] == "failed" and agg["failed_phase"] == "train" and agg["reason"] == "rank 1: boom"
    odd = aggregate([rank_row(status="incomplete", reason="?"), rank_row()])
    assert odd["status"] == "incomplete" and odd["reason"] == "rank 0: ?"  # no StopIteration
    assert aggregate([rank_row(status=None), rank_row()])["status"] == "failed"
    assert aggregate([rank_row(status="interrupted"), rank_row(status="failed")])["status"] == "interrupted"
    relayed = aggregate([rank_row(status="failed", reason="k.jpg: truncated (from rank 1)"),
                         rank_row(status="failed", reason="k.jpg: truncated")])
    assert relayed["reason"] == "rank 1: k.jpg: truncated"  # the rank that failed, not one it stopped


def test_aggregate_per_rank_spread_and_partial_rates():
    agg = aggregate([rank_row(MiB_per_s=1.0, au_percent=40.0, samples_per_s=5.0),
                     rank_row(MiB_per_s=3.0, au_percent=80.0, samples_per_s=None)])
    assert agg["MiB_per_s"] == 4.0 and agg["rank_min_MiB_per_s"] == 1.0 and agg["rank_max_MiB_per_s"] == 3.0
    assert agg["au_percent"] == pytest.approx(60.0) and agg["au_min_percent"] == 40.0
    assert agg["samples_per_s"] is None  # a rate not every rank measured is not summed
