"""TensorFlow over the local S3 server: tf.data reads through dnnbench's S3 backends.

One TensorFlow subprocess runs the read trainer once per client (one framework per
process; the pytest process never imports tensorflow). s3torchconnector is left out:
its package imports torch, which a tensorflow run must not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dnnbench.config.loading import LoadedConfig, validate
from dnnbench.events import NullEvents
from dnnbench.executor import prepare_dataset

pytestmark = [pytest.mark.s3, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ("boto3", "minio", "s3fs")

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
    g = req[req["op"] == "get"]
    results[name] = {"row": {k: (None if pd.isna(v) else v) for k, v in out.row.items()},
                     "keys": g["key"].tolist(), "workers": sorted(set(g["worker"].tolist()))}
results["_torch"] = "torch" in sys.modules
print("RESULTS " + json.dumps(results, default=str))
'''


def config(info: dict, bucket: str, out: Path, client: str, **sections) -> dict:
    data = {
        "name": f"tf-s3-{client}",
        "storage": {"client": client, "preset": "minio", "prefixes": ["train"], "create_bucket": True,
                    "s3": {"bucket": bucket, "endpoint_url": info["endpoint_url"], "region": info["region"],
                           "access_key": info["access_key"], "secret_key": info["secret_key"]}},
        "prepare": {"classes": 2, "images_per_class": 16, "width": [16, 48], "height": [16, 48], "workers": 8},
        "dataset": {"decode": "none", "image_dimension": [16, 16]},
        "framework": {"name": "tensorflow", "batch_size": 8, "num_workers": 2},
        "training": {"trainer": "read", "epochs": 1},
        "metrics": {"output_dir": str(out), "system_interval_s": 0.2},
    }
    for k, v in sections.items():
        data[k] = {**data.get(k, {}), **v}
    return data


def test_tensorflow_reads_through_every_s3_client(s3_server, s3_bucket, tmp_path):
    prepare_dataset(LoadedConfig(validate(config(s3_server, s3_bucket, tmp_path / "prep", "boto3")), None, []),
                    NullEvents())
    runs = {client: config(s3_server, s3_bucket, tmp_path / "results", client) for client in CLIENTS}
    runs["boto3_train"] = config(s3_server, s3_bucket, tmp_path / "results", "boto3",
                                 dataset={"decode": "rgb"}, model={"options": {"width": 4, "hidden": 8}},
                                 training={"trainer": "train"},
                                 framework={"tensorflow": {"read_unit": "sample", "deterministic": False}})
    (tmp_path / "runs.json").write_text(json.dumps(runs))
    (tmp_path / "runner.py").write_text(RUNNER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("DNNBENCH_DEBUG", None)
    done = subprocess.run([sys.executable, str(tmp_path / "runner.py"), str(tmp_path / "runs.json")], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULTS "))[8:])
    assert results.pop("_torch") is False
    for name, res in results.items():
        row = res["row"]
        assert row["status"] == "ok", (name, row["reason"])
        assert row["framework"] == "tensorflow" and row["workers"] == 2
        assert row["bytes"] == row["bytes_listed"] and row["byte_check"] == "ok", name
        assert row["requests"] == row["objects_listed"] == 32 == len(set(res["keys"])), name
        assert set(res["workers"]) <= {0, 1}, name
    assert results["boto3_train"]["row"]["au_percent"] > 0
