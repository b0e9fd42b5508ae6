"""TensorFlow end to end, one framework per process.

Every TensorFlow run happens in a subprocess (the CLI, or one script running several
configs through the executor), never in the pytest process: a tensorflow run must
not import torch, a pytorch run must not import tensorflow, and TensorFlow's start-up
noise must stay off the terminal. The data is small (3 classes x 12 images) and the
TensorFlow processes are few: importing it costs seconds.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dnnbench.reporting.columns import SUMMARY_COLUMNS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TF_NOISE = re.compile(r"^[IW]\d{4} \d\d:\d\d:\d\d|oneDNN|absl::|cpu_feature_guard|TF_ENABLE_ONEDNN_OPTS", re.M)


def config(root: Path, out: Path, fw_name: str, **sections) -> dict:
    cfg = {
        "name": f"e2e-{fw_name}",
        "storage": {"client": "fs", "root": str(root), "prefixes": ["train"]},
        "dataset": {"decode": "rgb", "image_dimension": [16, 16]},
        "framework": {"name": fw_name, "batch_size": 8, "num_workers": 2},
        "model": {"name": "convnet", "options": {"width": 4, "hidden": 8}},
        "training": {"trainer": "read", "epochs": 1},
        "metrics": {"output_dir": str(out), "system_interval_s": 0.1},
    }
    for section, values in sections.items():
        cfg[section] = {**cfg.get(section, {}), **values}
    return cfg


def cli(cfg: dict, path: Path, *flags: str) -> tuple[subprocess.CompletedProcess, Path]:
    """Run ``benchmark.py`` on ``cfg`` with ``-X importtime``; return the process and its run dir."""
    path.write_text(yaml.safe_dump(cfg))
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "DNNBENCH_DEBUG")}
    done = subprocess.run([sys.executable, "-X", "importtime", "benchmark.py", "--config", str(path), *flags],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    out = Path(cfg["metrics"]["output_dir"])
    runs = sorted(p for p in out.iterdir() if p.is_dir()) if out.exists() else []
    return done, runs[-1] if runs else out


def imported(stderr: str) -> set[str]:
    """Top-level package names from ``-X importtime`` lines."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def without_importtime(stderr: str) -> str:
    return "\n".join(ln for ln in stderr.splitlines() if not ln.startswith("import time:"))


def gets(run: Path) -> pd.DataFrame:
    req = pd.read_csv(run / "requests.csv")
    return req[req["op"] == "get"]


def summary(run: Path) -> pd.Series:
    return pd.read_csv(run / "summary.csv").iloc[0]


# -- the CLI -------------------------------------------------------------------
@pytest.fixture(scope="module")
def tf_read(tiny_root, tmp_path_factory):
    """tensorflow, read trainer, decode none, 2 workers, one epoch."""
    tmp = tmp_path_factory.mktemp("tf-read")
    cfg = config(tiny_root, tmp / "results", "tensorflow", dataset={"decode": "none"})
    return cli(cfg, tmp / "tf.yaml")


@pytest.fixture(scope="module")
def pt_read(tiny_root, tmp_path_factory):
    """pytorch, read trainer, no workers: the key order is the sampler's."""
    tmp = tmp_path_factory.mktemp("pt-read")
    cfg = config(tiny_root, tmp / "results", "pytorch", framework={"num_workers": 0})
    return cli(cfg, tmp / "pt.yaml")


def test_tensorflow_read_epoch_reads_exactly_the_listed_bytes(tf_read):
    done, run = tf_read
    assert done.returncode == 0, done.stderr[-3000:]
    row = summary(run)
    assert row["status"] == "ok" and row["framework"] == "tensorflow" and row["workers"] == 2
    assert row["bytes"] == row["bytes_listed"] and row["byte_check"] == "ok"
    assert row["samples"] == row["objects_listed"] == row["requests"] == 36
    g = gets(run)
    assert g["key"].is_unique and len(g) == 36 and g["bytes"].sum() == row["bytes"]
    assert set(g["worker"]) <= {0, 1} and set(g["epoch"]) == {0} and g["pid"].nunique() == 1
    steps = pd.read_csv(run / "steps.csv")
    assert steps["bytes"].sum() == row["bytes"] and len(steps) == 5  # 36 samples in batches of 8


def test_tensorflow_run_never_imports_torch_and_stays_quiet(tf_read):
    done, _ = tf_read
    names = imported(done.stderr)
    assert "tensorflow" in names and "keras" in names
    assert "torch" not in names
    assert not TF_NOISE.search(without_importtime(done.stderr)), without_importtime(done.stderr)
    assert not TF_NOISE.search(done.stdout)


def test_pytorch_run_never_imports_tensorflow(pt_read):
    done, run = pt_read
    assert done.returncode == 0, done.stderr[-3000:]
    names = imported(done.stderr)
    assert "torch" in names
    assert not names & {"tensorflow", "keras", "tensorboard"}


def test_summary_columns_equal_pytorchs(tf_read, pt_read):
    tf_cols = pd.read_csv(tf_read[1] / "summary.csv").columns.tolist()
    pt_cols = pd.read_csv(pt_read[1] / "summary.csv").columns.tolist()
    assert tf_cols == pt_cols == SUMMARY_COLUMNS
    for name in ("epochs.csv", "steps.csv", "requests.csv", "system.csv"):
        assert pd.read_csv(tf_read[1] / name).columns.tolist() == pd.read_csv(pt_read[1] / name).columns.tolist()


def test_train_two_epochs_with_debug(tiny_root, tmp_path):
    cfg = config(tiny_root, tmp_path / "results", "tensorflow",
                 training={"trainer": "train", "epochs": 2, "warmup_steps": 1}, framework={"intra_op_threads": 1})
    done, run = cli(cfg, tmp_path / "train.yaml", "--debug")
    assert done.returncode == 0, done.stderr[-3000:]
    row = summary(run)
    assert row["status"] == "ok" and row["trainer"] == "train" and row["model"] == "convnet"
    assert row["byte_check"] == "ok" and row["bytes"] == 2 * row["bytes_listed"] and row["steps"] == 10
    assert 0 < row["au_percent"] < 100
    steps = pd.read_csv(run / "steps.csv")
    assert steps["loss"].notna().all() and (steps["compute_s"] > 0).all()
    epochs = pd.read_csv(run / "epochs.csv")
    assert epochs["complete"].all() and len(epochs) == 2
    env = json.loads((run / "environment.json").read_text())
    assert env["framework"]["loader"]["num_parallel_calls"] == 2 and "torch" not in env["versions"]
    assert env["framework"]["intra_op_threads"] == 1  # applied through tf.config.threading, and recorded
    assert env["framework"]["intra_op_threads_source"] == "framework.intra_op_threads"
    if platform.machine() in ("x86_64", "AMD64"):  # with --debug TensorFlow's own notices get through
        assert TF_NOISE.search(without_importtime(done.stderr))


# -- many configs in one TensorFlow process ------------------------------------
SCENARIOS = r'''
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
    steps = pd.read_csv(out.run_dir / "steps.csv")
    results[name] = {"row": {k: (None if pd.isna(v) else v) for k, v in out.row.items()},
                     "keys": g["key"].tolist(), "workers": sorted(set(g["worker"].tolist())),
                     "losses": steps["loss"].tolist(), "compute_s": steps["compute_s"].tolist(),
                     "error": type(out.error).__name__ if out.error else None,
                     "error_ref": getattr(out.error, "reference", None)}
results["_modules"] = {m: m in sys.modules for m in ("torch", "tensorflow")}

from dnnbench.frameworks.tensorflow.models import ConvNet, ResNet
results["_params"] = {
    "convnet": sum(int(w.numpy().size) for w in ConvNet(3, 3, (16, 16), width=4, hidden=8).trainable_weights),
    "resnet": sum(int(w.numpy().size) for w in ResNet(1, 3, (20, 12), layers=(1, 1), width=4).trainable_weights)}

# as if this were a PyTorch DataLoader worker (without importing torch): TensorFlow must refuse
import types
from dnnbench.frameworks.tensorflow.runner import refuse_torch_worker
sys.modules["torch.utils.data._utils.worker"] = types.SimpleNamespace(_worker_info=object())
try:
    refuse_torch_worker()
    results["_refused"] = None
except Exception as e:
    results["_refused"] = type(e).__name__
print("RESULTS " + json.dumps(results, default=str))
'''


@pytest.fixture(scope="module")
def scenarios(tiny_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tf-scenarios")
    bad = tmp / "bad"
    shutil.copytree(tiny_root, bad)
    victim = sorted((bad / "train").rglob("*.jpg"))[5]
    victim.write_bytes(b"not a jpeg")
    out = tmp / "results"
    tf = "tensorflow"
    runs = {
        "order": config(tiny_root, out, tf, framework={"num_workers": 0}),
        "sample_interleave": config(tiny_root, out, tf, dataset={"decode": "none"}, framework={
            "tensorflow": {"read_unit": "sample", "parallelism": "interleave", "cycle_length": 3,
                           "deterministic": False}}),
        "autotune": config(tiny_root, out, tf, framework={
            "num_workers": 3, "tensorflow": {"num_parallel_calls": "autotune", "prefetch": "autotune"}}),
        "resnet_gray": config(tiny_root, out, tf, dataset={"decode": "gray", "image_dimension": [20, 12]},
                              framework={"tensorflow": {"read_unit": "sample"}},
                              model={"name": "ResNet", "options": {"layers": [1, 1], "width": 4}},
                              training={"trainer": "train", "optimizer": "adam", "max_steps": 3}),
        "emulate": config(tiny_root, out, tf, training={"trainer": "emulate", "compute_time_s": 0.02,
                                                        "warmup_steps": 1}),
        "shuffle_buffer": config(tiny_root, out, tf, framework={"tensorflow": {"shuffle_buffer": 10}},
                                 training={"trainer": "read", "max_steps": 2}),
        "phases": config(tiny_root, out, tf, execution={"phases": {"inference": True, "checkpoint": True}},
                         inference={"holdout_fraction": 0.25}, checkpoint={"prefix": "ckpt", "size_MiB": 0.5},
                         training={"trainer": "train"}),
        "corrupt": config(bad, out, tf),
        "corrupt_skip": config(bad, out, tf, dataset={"on_error": "skip"},
                               framework={"tensorflow": {"read_unit": "sample"}}),
    }
    results = run_scenarios(tmp, runs)
    results["_victim"] = victim.relative_to(bad).as_posix()
    return results


def run_scenarios(tmp: Path, runs: dict) -> dict:
    """Run the configs ``runs`` (name -> config dict) in one fresh TensorFlow-only process
    (SCENARIOS); returns what it reported per name, plus its stderr as ``_stderr``."""
    (tmp / "scenarios.json").write_text(json.dumps(runs))
    (tmp / "scenarios.py").write_text(SCENARIOS)
    env = {k: v for k, v in os.environ.items() if k != "DNNBENCH_DEBUG"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, str(tmp / "scenarios.py"), str(tmp / "scenarios.json")], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULTS "))
    results = json.loads(line[len("RESULTS "):])
    results["_stderr"] = done.stderr
    return results


def test_scenarios_process_is_tensorflow_only(scenarios):
    assert scenarios["_modules"] == {"torch": False, "tensorflow": True}
    assert scenarios["_refused"] == "RunFailed"  # tensorflow inside a torch loader worker
    assert not TF_NOISE.search(scenarios["_stderr"]), scenarios["_stderr"][-2000:]


def test_keras_models_are_twins_of_the_pytorch_ones(scenarios):
    from dnnbench.frameworks.pytorch.models import ConvNet, ResNet  # torch, in this (pytorch-side) process

    def count(m):
        return sum(p.numel() for p in m.parameters())

    assert scenarios["_params"] == {"convnet": count(ConvNet(3, 3, (16, 16), width=4, hidden=8)),
                                    "resnet": count(ResNet(1, 3, (20, 12), layers=(1, 1), width=4))}


def test_same_sample_order_as_pytorch(scenarios, pt_read):
    pt_keys = gets(pt_read[1]).sort_values("start_s", kind="stable")["key"].tolist()
    assert scenarios["order"]["keys"] == pt_keys and len(pt_keys) == 36
    assert scenarios["order"]["workers"] == [-1]  # read in the training loop's own next(), as in pytorch


@pytest.mark.parametrize("name", ["sample_interleave", "autotune"])
def test_parallel_variants_read_every_byte_once(scenarios, name):
    s = scenarios[name]
    row = s["row"]
    assert row["status"] == "ok" and row["byte_check"] == "ok" and row["bytes"] == row["bytes_listed"]
    assert len(s["keys"]) == len(set(s["keys"])) == 36
    if name == "sample_interleave":
        assert set(s["workers"]) <= {0, 1, 2} and row["workers"] == 2  # 3 streams, 2 reads in flight


def test_resnet_gray_odd_size_trains(scenarios):
    s = scenarios["resnet_gray"]
    assert s["row"]["status"] == "ok" and s["row"]["steps"] == 3 and s["row"]["model"] == "resnet"
    assert all(loss == loss and loss > 0 for loss in s["losses"])


def test_emulate_sleeps_per_step(scenarios):
    s = scenarios["emulate"]
    assert s["row"]["status"] == "ok" and min(s["compute_s"]) >= 0.02
    assert 0 < s["row"]["au_percent"] <= 100


def test_shuffle_buffer_with_max_steps(scenarios):
    s = scenarios["shuffle_buffer"]
    assert s["row"]["steps"] == 2 and s["row"]["samples"] == 16 and len(set(s["keys"])) == 16
    assert s["row"]["byte_check"] != "mismatch"


def test_inference_and_checkpoint_phases(scenarios):
    row = scenarios["phases"]["row"]
    assert row["status"] == "ok", row["reason"]
    assert row["infer_samples"] == 9 and row["samples"] == 27  # a quarter of 36 held out
    assert row["accuracy_percent"] is not None and row["checkpoint_verified"] == "ok"
    assert row["checkpoint_bytes"] > 0.5 * 2**20


def test_bad_sample_is_named(scenarios):
    s = scenarios["corrupt"]
    assert s["row"]["status"] == "failed" and s["error"] == "SampleError"
    assert s["error_ref"] == scenarios["_victim"] and "decode failed" in s["row"]["reason"]
    skip = scenarios["corrupt_skip"]["row"]
    assert skip["status"] == "ok" and skip["samples"] == 35 and skip["skipped_samples"] == 1
