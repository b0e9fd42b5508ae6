"""TensorFlow options, the workers mapping and the log silencing: pure Python, no tensorflow.

Everything here runs without importing tensorflow (one framework per process: the
tests that run TensorFlow do it in subprocesses, tests/e2e/test_tensorflow.py).
"""

from __future__ import annotations

import os
import sys
import threading

import numpy as np
import pytest

from dnnbench.config.legacy import translate_legacy
from dnnbench.config.loading import validate
from dnnbench.errors import ConfigError
from dnnbench.frameworks.tensorflow.plan import LoaderPlan, WorkerIds, epoch_order, samples_per_epoch, steps_per_epoch
from dnnbench.frameworks.tensorflow.quiet import noise_filtered, prepare_environment, quiet_fd2
from dnnbench.registry import DATASETS, MODELS, TRAINERS


def tf_config(framework: dict | None = None, **sections):
    return validate({"framework": {"name": "tensorflow", **(framework or {})}, "storage": {"root": "data"}, **sections})


def test_name_is_case_insensitive_and_options_default():
    cfg = tf_config({"name": "TensorFlow"})
    assert cfg.framework.name == "tensorflow"
    opts = cfg.framework.tensorflow
    assert (opts.read_unit, opts.parallelism, opts.num_parallel_calls, opts.prefetch, opts.deterministic) == \
        ("batch", "map", None, None, True)


def test_unknown_tensorflow_key_names_its_path():
    with pytest.raises(ConfigError) as e:
        tf_config({"tensorflow": {"num_paralel_calls": 4}})
    assert "framework.tensorflow.num_paralel_calls" in str(e.value) + " ".join(e.value.details)


def test_num_parallel_calls_is_num_workers():
    assert tf_config({"tensorflow": {"num_parallel_calls": 6}}).framework.num_workers == 6
    assert tf_config({"num_workers": 6, "tensorflow": {"num_parallel_calls": 6}}).framework.num_workers == 6
    with pytest.raises(ConfigError) as e:
        tf_config({"num_workers": 2, "tensorflow": {"num_parallel_calls": 6}})
    assert "same setting" in str(e.value)


@pytest.mark.parametrize("framework, fragment", [
    ({"num_workers": 0, "tensorflow": {"num_parallel_calls": "autotune"}}, "needs num_workers >= 1"),
    ({"num_workers": 4, "tensorflow": {"parallelism": "interleave", "cycle_length": 2}}, "at least num_workers"),
    ({"tensorflow": {"cycle_length": 4}}, "parallelism: interleave"),
    ({"tensorflow": {"prefetch": -1}}, "framework.tensorflow.prefetch"),
    ({"tensorflow": {"read_unit": "file"}}, "framework.tensorflow.read_unit"),
])
def test_bad_tensorflow_options(framework, fragment):
    with pytest.raises(ConfigError) as e:
        tf_config(framework)
    assert fragment in str(e.value) + " ".join(e.value.details)


def test_pytorch_ignores_the_tensorflow_block():
    cfg = validate({"framework": {"num_workers": 2, "tensorflow": {"num_parallel_calls": 2, "prefetch": 0}},
                    "storage": {"root": "data"}})
    assert cfg.framework.name == "pytorch" and cfg.framework.num_workers == 2


def test_plan_maps_workers_to_reads_in_flight():
    p = LoaderPlan.from_config(tf_config({"num_workers": 3, "prefetch_factor": 4, "batch_size": 8}))
    assert (p.workers, p.num_parallel_calls, p.threadpool_size, p.prefetch) == (3, 3, 3, 12)
    assert p.cycle_length is None and p.shuffle_buffer is None and p.limit is None


def test_plan_without_workers_reads_in_the_training_loop():
    p = LoaderPlan.from_config(tf_config({"num_workers": 0}))
    assert (p.num_parallel_calls, p.prefetch, p.threadpool_size) == (None, 0, 1)


def test_plan_autotune_interleave_and_limits():
    cfg = tf_config({"num_workers": 4, "shuffle": True,
                     "tensorflow": {"num_parallel_calls": "autotune", "prefetch": "autotune",
                                    "parallelism": "interleave", "shuffle_buffer": 64}},
                    training={"trainer": "read", "max_steps": 5})
    p = LoaderPlan.from_config(cfg)
    assert (p.num_parallel_calls, p.prefetch, p.threadpool_size, p.cycle_length) == ("autotune", "autotune", 4, 4)
    assert p.shuffle_buffer == 64 and p.limit == 5 * 32
    assert LoaderPlan.from_config(tf_config({"shuffle": False, "tensorflow": {"shuffle_buffer": 64}})).shuffle_buffer \
        is None


def test_epoch_order_is_pytorchs():
    from dnnbench.frameworks.pytorch.datasets import EpochBatchSampler

    sampler = EpochBatchSampler(50, 8, True, seed=7, limit=45)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        theirs = [i for batch in sampler for _, i in batch]
        assert epoch_order(50, True, 7, epoch, 45).tolist() == theirs
    assert epoch_order(5, False, 7, 3).tolist() == [0, 1, 2, 3, 4]
    assert sorted(epoch_order(50, True, 1, 0).tolist()) == list(range(50))


@pytest.mark.parametrize("n, b, drop, limit, samples, steps", [
    (100, 32, False, None, 100, 4), (100, 32, True, None, 96, 3), (100, 32, False, 64, 64, 2),
    (10, 32, True, None, 0, 0), (0, 8, False, None, 0, 0)])
def test_epoch_arithmetic(n, b, drop, limit, samples, steps):
    assert samples_per_epoch(n, b, drop, limit) == samples
    assert steps_per_epoch(n, b, drop, limit) == steps


def test_worker_ids_are_small_and_stable():
    ids = WorkerIds()
    seen: list[int] = []
    barrier = threading.Barrier(4)

    def run():
        barrier.wait()
        seen.append(ids.current())
        assert ids.current() == seen[-1]

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == [0, 1, 2, 3] and len(ids) == 4


def test_builtins_registered_lazily_with_legacy_aliases():
    assert DATASETS.resolve("image_folder", "tensorflow").location == \
        "dnnbench.frameworks.tensorflow.datasets:ImageFolderDataset"
    for registry, name in ((DATASETS, "TorchImageClassificationDataset"), (DATASETS, "PythonReadDataset"),
                           (MODELS, "ConvNet"), (MODELS, "resnet"), (TRAINERS, "RandomAccessDatasetTrain"),
                           (TRAINERS, "read"), (TRAINERS, "emulate")):
        assert registry.resolve(name, "tensorflow").framework == "tensorflow"
    assert set(MODELS.names("tensorflow")) >= {"convnet", "resnet"}
    assert set(TRAINERS.names("tensorflow")) >= {"train", "read", "emulate"}


def test_legacy_tensorflow_framework_block():
    data = {"storage": {"format": "fs", "fs": {"data_dir": "/d/flowers"}},
            "dataset": {"name": "TorchImageClassificationDataset"},
            "framework": {"name": "TensorFlow", "TensorFlow": {"batch_size": 16, "num_workers": 3},
                          "PyTorch": {"DataLoader": {"num_workers": 49}}},
            "model": {"name": "ConvNet"}, "training": {"name": "RandomAccessDatasetTrain"}}
    out, _ = translate_legacy(data)
    cfg = validate(out)
    assert cfg.framework.name == "tensorflow"
    assert (cfg.framework.batch_size, cfg.framework.num_workers) == (16, 3)
    assert DATASETS.resolve(cfg.dataset.name, "tensorflow").name == "image_folder"
    assert TRAINERS.resolve(cfg.training.trainer, "tensorflow").name == "train"


def test_prepare_environment_respects_user_and_debug():
    env: dict[str, str] = {}
    prepare_environment(False, env)
    assert env == {"TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"}
    env = {"TF_CPP_MIN_LOG_LEVEL": "0"}
    prepare_environment(False, env)
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "0"
    env = {}
    prepare_environment(True, env)
    assert "TF_CPP_MIN_LOG_LEVEL" not in env


NOISE = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
         "I0000 00:00:1795268709.602786   20554 port.cc:153] oneDNN custom operations are on.\n"
         "I0000 00:00:1795268709.643159   20554 cpu_feature_guard.cc:227] This TensorFlow binary is optimized\n"
         "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow\n"
         "W0000 00:00:1795268709.643159   20554 something.cc:1] a warning\n")


def test_noise_filter_keeps_errors_and_other_output():
    text = NOISE + "E0000 00:00:1795268709.1 1 x.cc:1] a real error\nplain line\n"
    assert noise_filtered(text) == "E0000 00:00:1795268709.1 1 x.cc:1] a real error\nplain line\n"


def test_quiet_fd2_drops_noise_and_replays_the_rest(capfd):
    with quiet_fd2(True):
        os.write(2, NOISE.encode())
        os.write(2, b"something else\n")
    assert capfd.readouterr().err == "something else\n"
    with quiet_fd2(False):
        os.write(2, NOISE.encode())
    assert capfd.readouterr().err == NOISE


def test_verbose_logs_switch(monkeypatch):
    from dnnbench import frameworks

    monkeypatch.delenv("DNNBENCH_DEBUG", raising=False)
    frameworks.set_verbose_logs(False)
    assert not frameworks.verbose_logs()
    monkeypatch.setenv("DNNBENCH_DEBUG", "1")
    assert frameworks.verbose_logs()
    monkeypatch.delenv("DNNBENCH_DEBUG")
    frameworks.set_verbose_logs(True)
    try:
        assert frameworks.verbose_logs()
    finally:
        frameworks.set_verbose_logs(False)


def test_plan_module_does_not_import_tensorflow():
    import subprocess

    code = ("import sys, dnnbench.frameworks.tensorflow.plan, dnnbench.frameworks.tensorflow.quiet; "
            "print('tensorflow' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert out.stdout.split() == ["False", "False"]


def test_epoch_order_dtype():
    assert epoch_order(3, True, 0, 0).dtype == np.int64


@pytest.mark.parametrize("ours, theirs", [("tensorflow.yaml", "quickstart.yaml"),
                                          ("tensorflow-s3.yaml", "s3-local.yaml")])
def test_shipped_configs_are_the_pytorch_ones_through_tensorflow(ours, theirs):
    from pathlib import Path

    from dnnbench.config.loading import load_config

    config_dir = Path(__file__).resolve().parents[2] / "config"
    tf_cfg = load_config(config_dir / ours).config.model_dump()
    pt_cfg = load_config(config_dir / theirs).config.model_dump()
    assert tf_cfg["framework"]["name"] == "tensorflow" and pt_cfg["framework"]["name"] == "pytorch"
    for cfg in (tf_cfg, pt_cfg):
        cfg.pop("name")
        cfg["framework"].pop("name")
        cfg["framework"].pop("tensorflow")
        cfg["framework"].pop("persistent_workers")  # pytorch-only
    assert tf_cfg == pt_cfg
