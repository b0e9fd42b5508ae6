"""``dataset.requests_in_flight`` end to end: a run with K = 4 reads the same samples, bytes and
request rows as K = 1, each row with the loader worker that made it, under PyTorch (loader worker
processes) and TensorFlow (one TensorFlow-only subprocess, as the other TensorFlow tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dnnbench.cli import main
from tests.e2e.test_tensorflow import config

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def run_cli(write_config, tiny_root, tmp_path, run_id: str, **sections) -> tuple[dict, pd.DataFrame]:
    cfg = write_config(tiny_root, name=f"{run_id}.yaml", **sections)
    assert main(["-q", "--config", str(cfg), "--run-id", run_id]) == 0
    row = pd.read_csv(tmp_path / "results" / run_id / "summary.csv").iloc[0].to_dict()
    req = pd.read_csv(tmp_path / "results" / run_id / "requests.csv")
    return row, req[req["op"] == "get"]


@pytest.mark.parametrize("access,decode", [("random", "none"), ("random", "rgb"), ("sequential", "rgb")])
def test_pytorch_workers_with_requests_in_flight(tiny_root, write_config, tmp_path, access, decode):
    rows = {}
    for k in (1, 4):
        rows[k] = run_cli(write_config, tiny_root, tmp_path, f"{access}-{decode}-k{k}",
                          dataset={"access": access, "decode": decode, "requests_in_flight": k},
                          framework={"num_workers": 2, "batch_size": 8}, training={"trainer": "read", "epochs": 2})
    (one, req1), (many, req_k) = rows[1], rows[4]
    assert many["status"] == "ok" and many["byte_check"] == "ok"
    for column in ("samples", "bytes", "requests", "bytes_listed"):
        assert many[column] == one[column], column
    assert many["samples"] == 2 * 36 and len(req_k) == len(req1) == 2 * 36
    assert sorted(req_k["worker"].unique().tolist()) == [0, 1]  # each row names the worker process that read it
    assert sorted(req_k["key"]) == sorted(req1["key"]) and req_k.groupby("epoch")["key"].nunique().tolist() == [36, 36]
    assert (req_k["latency_ms"] >= 0).all() and req_k["error"].isna().all()


TF_SCRIPT = r'''
import json, sys
import numpy as np
from dnnbench.config.loading import LoadedConfig, validate
from dnnbench.config.schema import DatasetConfig, StorageConfig
from dnnbench.data.listing import list_dataset
from dnnbench.events import NullEvents
from dnnbench.executor import Executor
from dnnbench.frameworks.tensorflow.datasets import ImageFolderDataset
from dnnbench.storage.fs import FileSystemStorage
import pandas as pd

runs, root = json.load(open(sys.argv[1])), sys.argv[2]
results = {}
for name, data in runs.items():
    out = Executor(LoadedConfig(validate(data), None, []), NullEvents()).run()
    req = pd.read_csv(out.run_dir / "requests.csv")
    g = req[req["op"] == "get"]
    results[name] = {"row": {k: (None if pd.isna(v) else v) for k, v in out.row.items()},
                     "keys": sorted(g["key"].tolist()), "rows": len(g)}
storage = FileSystemStorage(StorageConfig(root=root))
index, _ = list_dataset(storage, ["train"], 4, [".jpg", ".png"])
order = np.random.default_rng(0).permutation(len(index))
for decode in ("none", "rgb"):
    batches = {}
    for k in (1, 4):
        ds = ImageFolderDataset(index, storage, DatasetConfig(decode=decode, image_dimension=(12, 10),
                                                              requests_in_flight=k))
        batches[k] = [[a.tolist() for a in ds.read_batch(order[s:s + 16], 0, 0)] for s in range(0, len(order), 16)]
    results["batches_" + decode] = batches[1] == batches[4] and len(batches[1]) == 3
print("RESULTS " + json.dumps(results, default=str))
'''


def test_tensorflow_with_requests_in_flight(tiny_root, tmp_path):
    out = tmp_path / "results"
    tf = "tensorflow"
    runs = {}
    for k in (1, 4):
        for unit in ("batch", "sample"):
            runs[f"random-{unit}-k{k}"] = config(tiny_root, out, tf, dataset={"decode": "none", "requests_in_flight": k},
                                                 framework={"tensorflow": {"read_unit": unit}},
                                                 training={"epochs": 2})
        runs[f"seq-k{k}"] = config(tiny_root, out, tf, dataset={"access": "sequential", "requests_in_flight": k},
                                   training={"epochs": 2})
    (tmp_path / "runs.json").write_text(json.dumps(runs))
    (tmp_path / "script.py").write_text(TF_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "DNNBENCH_DEBUG"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, str(tmp_path / "script.py"), str(tmp_path / "runs.json"), str(tiny_root)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULTS "))[len("RESULTS "):])
    assert results["batches_none"] is True and results["batches_rgb"] is True  # same data, labels, bytes, order
    for base in ("random-batch", "random-sample", "seq"):
        one, many = results[f"{base}-k1"], results[f"{base}-k4"]
        assert many["row"]["status"] == "ok" and many["row"]["byte_check"] == "ok", many["row"]["reason"]
        for column in ("samples", "bytes", "requests"):
            assert many["row"][column] == one["row"][column], (base, column)
        assert many["row"]["samples"] == 2 * 36 and many["rows"] == one["rows"] == 2 * 36
        assert many["keys"] == one["keys"]
