"""torchrun against the local S3 server: two ranks on the CPU (gloo) read every object of the
bucket exactly once per epoch (boto3), also under DistributedDataParallel with uneven step
counts; the inference and checkpoint phases run per rank; a missing prefix ends both ranks."""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dnnbench.config.loading import LoadedConfig, validate
from dnnbench.events import NullEvents
from dnnbench.executor import pack_shards, prepare_dataset
from tests.e2e.test_distributed import assert_each_epoch_read_once, rank_frames, the_run, torchrun
from s3server import delete_bucket, storage_section

pytestmark = pytest.mark.s3


def config(info: dict, bucket: str, out: Path, **sections) -> dict:
    """A boto3 run on ``bucket``: 3 classes x 11 JPEGs (33 samples: the ranks get 17 and 16)."""
    data = {
        "name": "dist-s3",
        "storage": storage_section(info, bucket, "boto3"),
        "prepare": {"classes": 3, "images_per_class": 11, "width": [16, 32], "height": [16, 32], "workers": 8},
        "dataset": {"decode": "rgb", "image_dimension": [16, 16], "shuffle_buffer": 4},
        "shards": {"prefix": "shards", "max_samples": 5},
        "framework": {"batch_size": 4, "num_workers": 1},
        "model": {"name": "convnet", "options": {"width": 4, "hidden": 8}},
        "training": {"trainer": "read", "epochs": 2},
        "metrics": {"output_dir": str(out), "system_interval_s": 0.2},
    }
    for k, v in sections.items():
        data[k] = {**data.get(k, {}), **v}
    return data


@pytest.fixture(scope="module")
def dataset_bucket(s3_server, s3_client, tmp_path_factory):
    """The 33 JPEGs under train/, and packed into 7 shards (<= 5 samples) under shards/."""
    bucket = f"dnnbench-dist-{uuid.uuid4().hex[:10]}"
    loaded = LoadedConfig(validate(config(s3_server, bucket, tmp_path_factory.mktemp("prep"))), None, [])
    prepare_dataset(loaded, NullEvents())
    pack_shards(loaded, NullEvents())
    yield bucket
    delete_bucket(s3_client, bucket)


def run_two_ranks(info: dict, bucket: str, tmp_path: Path, **sections) -> tuple[Path, pd.Series]:
    cfg = tmp_path / "dist-s3.yaml"
    cfg.write_text(yaml.safe_dump(config(info, bucket, tmp_path / "results", **sections)))
    r = torchrun(cfg, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = the_run(tmp_path)
    return run, pd.read_csv(run / "summary.csv").iloc[0]


@pytest.mark.parametrize("access,trainer", [("random", "read"), ("sequential", "read"), ("random", "train"),
                                            ("shards", "train")])
def test_two_ranks_read_every_object_once(s3_server, dataset_bucket, tmp_path, access, trainer):
    run, agg = run_two_ranks(s3_server, dataset_bucket, tmp_path, dataset={"access": access},
                             training={"trainer": trainer})
    assert agg["status"] == "ok" and agg["ranks"] == 2 and agg["byte_check"] == "ok"
    assert agg["samples"] == 2 * 33 and agg["bytes"] == 2 * agg["bytes_listed"] > 0
    assert agg["objects_listed"] == (7 if access == "shards" else 33)
    assert agg["errors"] == 0 and agg["storage"].startswith("s3:")
    assert_each_epoch_read_once(run, 2, agg["bytes_listed"])
    epochs = rank_frames(run, "epochs.csv")
    for epoch in (0, 1):
        assert epochs[epochs["epoch"] == epoch]["samples"].sum() == 33
    if trainer == "train":  # DDP with 5 and 4 (random) or 5 and <= 4 (shards) steps per rank: no hang
        assert epochs.groupby("epoch")["steps"].nunique().eq(2).all()


def test_inference_and_checkpoint_phases_on_two_ranks(s3_server, s3_client, dataset_bucket, tmp_path):
    run, agg = run_two_ranks(s3_server, dataset_bucket, tmp_path, training={"trainer": "train", "epochs": 1},
                             execution={"phases": {"inference": True, "checkpoint": True}},
                             inference={"holdout_fraction": 0.25, "batch_size": 2},
                             checkpoint={"prefix": "ckpt-dist", "size_MiB": 1})
    ranks = [pd.read_csv(run / f"rank-{k}" / "summary.csv").iloc[0] for k in (0, 1)]
    held = 33 - sum(r["samples"] for r in ranks)
    assert agg["status"] == "ok" and agg["byte_check"] == "ok" and held > 1
    assert agg["infer_samples"] == held == sum(r["infer_samples"] for r in ranks)
    acc = sum(r["accuracy_percent"] * r["infer_samples"] for r in ranks) / held
    assert agg["accuracy_percent"] == pytest.approx(acc, rel=1e-5)  # 6 significant digits in the CSV
    assert agg["checkpoint_bytes"] == sum(r["checkpoint_bytes"] for r in ranks) > 2 * 2**20
    assert agg["checkpoint_verified"] == "ok"
    reads = rank_frames(run, "requests.csv")
    evals = reads[(reads["epoch"] == -1) & (reads["op"] == "get")]
    assert len(evals) == held and evals["key"].is_unique and set(evals["rank"]) == {0, 1}
    puts = reads[reads["op"] == "put"]
    assert sorted(puts["key"]) == [f"ckpt-dist/{run.name}-rank{k}.ckpt" for k in (0, 1)]
    left = s3_client.list_objects_v2(Bucket=dataset_bucket, Prefix="ckpt-dist/").get("KeyCount", 0)
    assert left == 0  # checkpoint.keep is off: each rank deleted its own


def test_missing_prefix_ends_both_ranks(s3_server, dataset_bucket, tmp_path):
    cfg = tmp_path / "missing.yaml"
    cfg.write_text(yaml.safe_dump(config(s3_server, dataset_bucket, tmp_path / "results",
                                         storage={"prefixes": ["nothing-here"]})))
    r = torchrun(cfg, timeout=120)
    assert r.returncode != 0
    assert "nothing stored under prefix 'nothing-here'" in r.stderr and "exitcode  : 2" in r.stderr
