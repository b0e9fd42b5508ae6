"""TensorFlow over the local S3 server: tf.data reads through dnnbench's S3 backends.

One TensorFlow subprocess runs every configuration (one framework per process; the
pytest process never imports tensorflow): random access, ``sequential`` and ``shards``
through boto3, minio and s3fs, and the inference and checkpoint phases through each.
s3torchconnector is left out: its package imports torch, which a tensorflow run must not
(the configuration refuses it for tensorflow by design).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from dnnbench.config.loading import LoadedConfig, validate
from dnnbench.events import NullEvents
from dnnbench.executor import pack_shards, prepare_dataset
from s3server import delete_bucket, storage_section

pytestmark = [pytest.mark.s3, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ("boto3", "minio", "s3fs")
SAMPLES = 32  # 2 classes x 16 images
SHARDS = 7  # 32 samples in shards of <= 5
CKPT_MIB = 10  # above every client's multipart threshold but s3fs's (50 MiB)

RUNNER = r'''
import json, sys
from dnnbench.config.loading import LoadedConfig, validate
from dnnbench.events import NullEvents
from dnnbench.executor import Executor
import pandas as pd

results = {}
for name, data in json.load(open(sys.argv[1])).items():
    out = Executor(LoadedConfig(validate(data), None, []), NullEvents()).run()
    req = pd.read_csv(out.run_dir / "requests.csv")
    g = req[(req["op"] == "get") & (req["epoch"] >= 0)].sort_values("start_s", kind="stable")
    phases = req[req["epoch"] < 0]
    results[name] = {"row": {k: (None if pd.isna(v) else v) for k, v in out.row.items()},
                     "run_id": out.run_dir.name,
                     "keys": g["key"].tolist(), "epochs": g["epoch"].tolist(), "bytes": int(g["bytes"].sum()),
                     "workers": sorted(set(g["worker"].tolist())),
                     "lists": req[req["op"] == "list"]["key"].tolist(),
                     "phase_rows": [[r.op, int(r.epoch), int(r.bytes), r.key, None if pd.isna(r.error) else r.error]
                                    for r in phases.itertuples()]}
results["_torch"] = "torch" in sys.modules
print("RESULTS " + json.dumps(results, default=str))
'''


def config(info: dict, bucket: str, out: Path, client: str, **sections) -> dict:
    data = {
        "name": f"tf-s3-{client}",
        "storage": storage_section(info, bucket, client),
        "prepare": {"classes": 2, "images_per_class": 16, "width": [16, 48], "height": [16, 48], "workers": 8},
        "shards": {"prefix": "shards", "max_samples": 5},
        "dataset": {"decode": "none", "image_dimension": [16, 16], "shuffle_buffer": 4},
        "framework": {"name": "tensorflow", "batch_size": 8, "num_workers": 2},
        "model": {"name": "convnet", "options": {"width": 4, "hidden": 8}},
        "training": {"trainer": "read", "epochs": 1},
        "metrics": {"output_dir": str(out), "system_interval_s": 0.2},
    }
    for k, v in sections.items():
        data[k] = {**data.get(k, {}), **v}
    return data


@pytest.fixture(scope="module")
def tf_runs(s3_server, s3_client, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tf-s3")
    bucket = f"dnnbench-tf-{uuid.uuid4().hex[:10]}"
    prep = LoadedConfig(validate(config(s3_server, bucket, tmp / "prep", "boto3")), None, [])
    prepare_dataset(prep, NullEvents())
    pack_shards(prep, NullEvents())
    out = tmp / "results"
    runs = {}
    for client in CLIENTS:
        runs[f"random-{client}"] = config(s3_server, bucket, out, client)
        runs[f"sequential-{client}"] = config(s3_server, bucket, out, client, dataset={"access": "sequential"},
                                              training={"epochs": 2})
        runs[f"shards-{client}"] = config(s3_server, bucket, out, client, dataset={"access": "shards"},
                                          training={"epochs": 2})
        runs[f"phases-{client}"] = config(
            s3_server, bucket, out, client, dataset={"decode": "rgb"}, training={"trainer": "train"},
            execution={"phases": {"inference": True, "checkpoint": True}}, inference={"holdout_fraction": 0.25},
            checkpoint={"prefix": f"ckpt-{client}", "size_MiB": CKPT_MIB, "keep": True})
    runs["sequential-ordered"] = config(s3_server, bucket, out, "boto3", dataset={"access": "sequential"},
                                        framework={"num_workers": 0})
    runs["boto3_train"] = config(s3_server, bucket, out, "boto3",
                                 dataset={"decode": "rgb"}, training={"trainer": "train"},
                                 framework={"tensorflow": {"read_unit": "sample", "deterministic": False}})
    (tmp / "runs.json").write_text(json.dumps(runs))
    (tmp / "runner.py").write_text(RUNNER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("DNNBENCH_DEBUG", None)
    try:
        done = subprocess.run([sys.executable, str(tmp / "runner.py"), str(tmp / "runs.json")], cwd=ROOT,
                              capture_output=True, text=True, timeout=900, env=env)
        assert done.returncode == 0, done.stderr[-4000:]
        results = json.loads(next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULTS "))[8:])
        listed = {o["Key"]: o["Size"] for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                  for o in page.get("Contents", [])}
        heads = {c: s3_client.head_object(Bucket=bucket, Key=f"ckpt-{c}/{results[f'phases-{c}']['run_id']}.ckpt")
                 for c in CLIENTS}
        yield {"results": results, "objects": listed, "heads": heads}
    finally:
        delete_bucket(s3_client, bucket)


def test_the_tensorflow_process_never_imports_torch(tf_runs):
    assert tf_runs["results"]["_torch"] is False


@pytest.mark.parametrize("name", [*(f"random-{c}" for c in CLIENTS), "boto3_train"])
def test_random_access_reads_every_object_once(tf_runs, name):
    res = tf_runs["results"][name]
    row = res["row"]
    assert row["status"] == "ok", (name, row["reason"])
    assert row["framework"] == "tensorflow" and row["workers"] == 2 and row["access"] == "random"
    assert row["bytes"] == row["bytes_listed"] == res["bytes"] and row["byte_check"] == "ok", name
    assert row["requests"] == row["objects_listed"] == row["samples"] == SAMPLES == len(set(res["keys"])), name
    assert set(res["workers"]) <= {0, 1}, name
    assert res["lists"].count("train") == 1 and len(res["lists"]) == 3  # train, then one page per class
    if name == "boto3_train":
        assert row["au_percent"] > 0


@pytest.mark.parametrize("client", CLIENTS)
def test_sequential_reads_every_object_once_per_epoch(tf_runs, client):
    res = tf_runs["results"][f"sequential-{client}"]
    row = res["row"]
    assert row["status"] == "ok", row["reason"]
    assert row["access"] == "sequential" and row["byte_check"] == "ok"
    assert row["objects_listed"] == SAMPLES and row["samples"] == 2 * SAMPLES
    assert row["bytes"] == 2 * row["bytes_listed"] == res["bytes"]
    assert row["requests"] == 2 * SAMPLES == len(res["keys"])
    for epoch in (0, 1):
        keys = [k for k, e in zip(res["keys"], res["epochs"]) if e == epoch]
        assert len(keys) == len(set(keys)) == SAMPLES  # every object once per epoch


def test_sequential_without_workers_reads_in_listing_order(tf_runs):
    res = tf_runs["results"]["sequential-ordered"]
    assert res["row"]["status"] == "ok" and res["row"]["requests"] == SAMPLES
    assert res["keys"] == sorted(k for k in tf_runs["objects"] if k.startswith("train/class_"))  # not the prepare record
    assert res["workers"] == [-1]


@pytest.mark.parametrize("client", CLIENTS)
def test_shards_stream_each_shard_once_per_epoch(tf_runs, client):
    res = tf_runs["results"][f"shards-{client}"]
    row = res["row"]
    assert row["status"] == "ok", row["reason"]
    shard_sizes = {k: v for k, v in tf_runs["objects"].items() if k.startswith("shards/") and k.endswith(".tar")}
    assert len(shard_sizes) == SHARDS
    assert row["access"] == "shards" and row["byte_check"] == "ok"
    assert row["objects_listed"] == SHARDS and row["bytes_listed"] == sum(shard_sizes.values())
    assert row["samples"] == 2 * SAMPLES and row["bytes"] == 2 * row["bytes_listed"] == res["bytes"]
    assert row["requests"] == 2 * SHARDS and row["samples_per_request"] == pytest.approx(SAMPLES / SHARDS)
    for epoch in (0, 1):
        assert sorted(k for k, e in zip(res["keys"], res["epochs"]) if e == epoch) == sorted(shard_sizes)
    assert res["lists"] == ["shards"]  # one ListObjectsV2 page (index.json is read unrecorded)


@pytest.mark.parametrize("client", CLIENTS)
def test_inference_and_checkpoint_phases_over_s3(tf_runs, client):
    res = tf_runs["results"][f"phases-{client}"]
    row = res["row"]
    assert row["status"] == "ok", row["reason"]
    assert row["infer_samples"] == SAMPLES // 4 and row["samples"] == SAMPLES - SAMPLES // 4
    assert row["requests"] == row["samples"]
    inference = [r for r in res["phase_rows"] if r[1] == -1]
    assert [r[0] for r in inference] == ["get"] * (SAMPLES // 4) and all(r[4] is None for r in inference)
    assert row["bytes"] == res["bytes"]
    assert row["bytes"] + sum(r[2] for r in inference) == row["bytes_listed"]  # trained + held out = listed
    assert row["accuracy_percent"] is not None and row["checkpoint_verified"] == "ok"
    key = f"ckpt-{client}/{res['run_id']}.ckpt"
    size = row["checkpoint_bytes"]
    assert size > CKPT_MIB * 2**20
    checkpoint = sorted((r[0], r[2], r[3], r[4]) for r in res["phase_rows"] if r[1] == -2)
    assert checkpoint == [("get", size, key, None), ("put", size, key, None)]
    head = tf_runs["heads"][client]
    assert head["ContentLength"] == size
    assert ("-" in head["ETag"]) == (client != "s3fs")  # multipart upload: boto3 and minio at 10 MiB
