"""dataset.access sequential and shards with framework tensorflow, end to end.

As in test_tensorflow.py, every TensorFlow run happens in one subprocess (one framework
per process); shards are packed first in this process (packing imports no framework).
"""

from __future__ import annotations

import json
import shutil

import pytest

from dnnbench.cli import main
from tests.e2e.test_tensorflow import TF_NOISE, config, run_scenarios

pytestmark = pytest.mark.slow

SHARDS = {"max_samples": 5}  # 36 samples -> 8 shards


@pytest.fixture(scope="module")
def access_runs(tiny_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tf-access")
    root = tmp / "data"
    shutil.copytree(tiny_root, root)
    out = tmp / "results"
    tf = "tensorflow"

    def run(access: str, workers: int, prefix: str | None = None, **sections) -> dict:
        extra = {k: v for k, v in sections.items() if k not in ("dataset", "framework", "training")}
        return config(root, out, tf, dataset={"access": access, "shuffle_buffer": 5, **sections.get("dataset", {})},
                      framework={"num_workers": workers, **sections.get("framework", {})},
                      training={"epochs": 2, **sections.get("training", {})},
                      shards={"prefix": prefix or f"shards-{workers}", **SHARDS}, **extra)

    runs = {
        "seq0": run("sequential", 0),
        "seq2": run("sequential", 2, dataset={"decode": "none"}),
        "seq2_sample": run("sequential", 2, framework={"tensorflow": {"read_unit": "sample"}}),
        "shards0": run("shards", 0),
        "shards2": run("shards", 2),
        "shards_raw": run("shards", 3, prefix="shards-2", dataset={"decode": "none"}),
        "shards_train": run("shards", 2, prefix="shards-2", training={"trainer": "train"}),
        "bad_shard": run("shards", 2, prefix="shards-bad"),
        "bad_shard_skip": run("shards", 2, prefix="shards-bad", dataset={"on_error": "skip"}),
    }
    for prefix in ("shards-0", "shards-2", "shards-bad"):
        path = tmp / f"{prefix}.yaml"
        path.write_text(json.dumps(config(root, out, tf, shards={"prefix": prefix, **SHARDS})))
        assert main(["prepare", "--shards", "--config", str(path)]) == 0
    victim = sorted((root / "shards-bad").glob("*.tar"))[3]
    victim.write_bytes(b"not a tar" * 100)
    results = run_scenarios(tmp, runs)
    results["_victim"] = victim.relative_to(root).as_posix()
    return results


def test_runs_are_tensorflow_only_and_quiet(access_runs):
    assert access_runs["_modules"] == {"torch": False, "tensorflow": True}
    assert not TF_NOISE.search(access_runs["_stderr"]), access_runs["_stderr"][-2000:]


@pytest.mark.parametrize("name", ["seq0", "seq2", "seq2_sample"])
def test_sequential_reads_every_object_in_listing_order(access_runs, name):
    s = access_runs[name]
    row = s["row"]
    assert row["status"] == "ok", row["reason"]
    assert row["framework"] == "tensorflow" and row["access"] == "sequential"
    assert row["byte_check"] == "ok" and row["bytes"] == 2 * row["bytes_listed"]
    assert row["samples"] == 2 * 36 and row["requests"] == 2 * 36
    keys = s["keys"]
    assert sorted(keys[:36]) == sorted(keys[36:]) and len(set(keys)) == 36  # every object once per epoch
    if name == "seq0":  # one reader, in the training loop's own next(): requests in listing order
        assert keys[:36] == keys[36:] == sorted(keys[:36]) and s["workers"] == [-1]


@pytest.mark.parametrize("name", ["shards0", "shards2", "shards_raw", "shards_train"])
def test_shards_read_every_shard_once_per_epoch(access_runs, name):
    s = access_runs[name]
    row = s["row"]
    assert row["status"] == "ok", row["reason"]
    assert row["access"] == "shards" and row["byte_check"] == "ok"
    assert row["samples"] == 2 * 36 and row["bytes"] == 2 * row["bytes_listed"]
    assert row["requests"] == 2 * 8  # one streamed GET per shard per epoch
    assert sorted(s["keys"][:8]) == sorted(s["keys"][8:]) and len(set(s["keys"])) == 8
    assert row["samples_per_request"] == pytest.approx(72 / 16)
    if name == "shards_train":
        assert all(loss == loss and loss > 0 for loss in s["losses"])


def test_shard_order_differs_per_epoch(access_runs):
    keys = access_runs["shards0"]["keys"]  # one reader: requests in shard order
    assert keys[:8] != keys[8:]


def test_bad_shard_is_a_named_failure(access_runs):
    s = access_runs["bad_shard"]
    assert s["row"]["status"] == "failed" and s["error"] == "SampleError"
    assert s["error_ref"] == access_runs["_victim"] and "shard read failed" in s["row"]["reason"]
    skip = access_runs["bad_shard_skip"]["row"]
    assert skip["status"] == "ok" and skip["skipped_samples"] == 2
    assert skip["samples"] == 2 * (36 - 5)  # the victim held 5 samples
