"""The framework-neutral pieces both frameworks use (dnnbench.frameworks.common / phases /
results) and the PyTorch access factory, without tensorflow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dnnbench.config.loading import validate
from dnnbench.config.schema import StorageConfig
from dnnbench import failures
from dnnbench.data import synthetic
from dnnbench.data.index import SampleIndex
from dnnbench.errors import ConfigError, PluginError, StorageError
from dnnbench.frameworks.common import DECODE_S, Batch, Failure, build_model, read_sample
from dnnbench.frameworks.phases import CHECKPOINT_EPOCH, InferTally, Serialiser, round_trip
from dnnbench.frameworks.results import CheckpointResult, InferResult
from dnnbench.recording.requests import COLUMNS, RecorderSpec, flush_current, read_parts
from dnnbench.storage.fs import FileSystemStorage

ROOT = Path(__file__).resolve().parents[2]


def test_neutral_modules_import_no_framework():
    code = ("import sys; import dnnbench.frameworks.common, dnnbench.frameworks.phases, "
            "dnnbench.frameworks.protocols, dnnbench.frameworks.results, dnnbench.run.epochs; "
            "print(sorted(m for m in ('torch', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert DECODE_S == COLUMNS.index("decode_s")


def _config(**sections):
    base = {"storage": {"client": "fs", "root": "/tmp/x"}, "model": {"name": "convnet"}}
    return validate({**base, **sections})


def test_build_model_checks_channels_and_options():
    import torch  # noqa: F401 - registers the PyTorch models

    import dnnbench.frameworks.pytorch.models  # noqa: F401

    model = build_model(_config(dataset={"decode": "gray", "image_dimension": [8, 8]}), "pytorch", 1)
    assert model.head[-1].out_features == 2 and model.features[0].in_channels == 1  # at least 2 classes
    with pytest.raises(ConfigError) as e:
        build_model(_config(dataset={"decode": "none"}, training={"trainer": "read"}), "pytorch", 3)
    assert e.value.reference == "dataset.decode" and "trainer 'read' needs decoded images" in e.value.message
    with pytest.raises(ConfigError, match="the phases need it"):
        build_model(_config(dataset={"decode": "none"}, training={"trainer": "read"}), "pytorch", 3, why="the phases need it")
    cfg = _config()  # options a plugin model rejects (validation knows only the built-in models' options)
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"options": {"depth": 3}})})
    with pytest.raises(PluginError) as e:
        build_model(cfg, "pytorch", 3)
    assert e.value.reference == "model.options" and "depth" in e.value.message


@pytest.fixture
def store(tmp_path):
    storage = FileSystemStorage(StorageConfig(root=str(tmp_path / "data")),
                                RecorderSpec(str(tmp_path / "requests")))
    storage.put("ok.jpg", synthetic.make_image(0, 1, 2, (20, 20), (20, 20)))
    storage.put("bad.jpg", b"not an image")
    return storage


def test_read_sample_times_the_decode_and_names_every_failure(store):
    image, n, reason, row = read_sample(store, "ok.jpg", 10, "rgb",
                                        lambda data: np.frombuffer(data, np.uint8)[:3])
    assert reason == "" and n == len(store.get("ok.jpg")[0]) and row[DECODE_S] is not None
    raw, n, reason, row = read_sample(store, "ok.jpg", 10, "none", None)
    assert raw == store.get("ok.jpg")[0] and row[DECODE_S] is None  # kept as bytes: no decode time

    from dnnbench.frameworks.common import ImageTransform

    decoder = ImageTransform()
    decoder.decode, decoder.size = "rgb", (8, 8)
    sample, n, reason, _ = read_sample(store, "bad.jpg", 12, "rgb", decoder.transform)
    assert sample is None and reason.startswith(failures.BAD_DECODE) and n == 12
    _, _, reason, row = read_sample(store, "missing.jpg", 5, "rgb", decoder.transform)
    assert reason.startswith(failures.BAD_READ) and "FileNotFoundError" in reason and row is None
    _, _, reason, _ = read_sample(store, "ok.jpg", 2**31, "rgb", decoder.transform)
    assert reason.startswith(failures.BAD_DECODE) and "not read" in reason


def test_infer_tally_counts_exactly_and_stops_at_an_outage():
    now = [10.0]
    tally = InferTally(clock=lambda: now[0])
    batches = [Batch(None, None, 300, 3, []), Batch(None, None, 0, 0, [Failure("a", failures.BAD_READ + "x")]),
               Batch(None, None, 200, 2, [Failure("b", failures.BAD_DECODE + "y")])]
    assert [b.samples for b in tally.batches(batches)] == [3, 2]
    tally.correct = 4
    now[0] = 12.0
    assert tally.result() == InferResult(infer_samples=5, infer_bytes=500, infer_wall_s=2.0, infer_samples_per_s=2.5,
                                         infer_MiB_per_s=500 / 2**20 / 2, accuracy_percent=80.0, infer_failed=2)
    assert InferTally(clock=lambda: 0.0).result().accuracy_percent is None
    down = Batch(None, None, 0, 0, [Failure("c", failures.read_failure(ConnectionResetError(104, "reset")))])
    with pytest.raises(StorageError):
        list(InferTally().batches([down]))


def test_results_are_summary_columns():
    infer = InferResult(5, 500, 2.0, 2.5, 1.0, 80.0, 2)
    assert list(infer.columns()) == ["infer_samples", "infer_bytes", "infer_wall_s", "infer_samples_per_s",
                                     "infer_MiB_per_s", "accuracy_percent", "infer_failed"]
    assert infer.detail() == "(5 held-out samples, accuracy 80.0 %, 2 samples/s)"
    ck = CheckpointResult(2_000_000, 1.0, 2.0, 4.0, None, "ok")
    assert ck.columns()["checkpoint_load_MB_per_s"] is None
    assert ck.detail() == "(2.0 MB: save 4.0 MB/s, load 0.0 MB/s, ok)"


NUMBERS = Serialiser(lambda state: bytes(state), lambda data: list(data), lambda a, b: list(a) == list(b))


@pytest.mark.parametrize("keep", [False, True])
def test_round_trip_times_verifies_and_deletes(store, tmp_path, keep):
    ticks = iter(range(100))
    result = round_trip(store, "ck/run.ckpt", [1, 2, 3], NUMBERS, keep, clock=lambda: float(next(ticks)))
    # clock: 0 before dumps, 1 before PUT, 2 after PUT, 3 after GET, 4 after loads
    assert result == CheckpointResult(3, 2.0, 2.0, 3 / 1e6, 3 / 1e6, "ok")
    assert (Path(store.root) / "ck" / "run.ckpt").exists() is keep
    flush_current()
    rows = [r for r in read_parts(tmp_path / "requests") if r[1] == "ck/run.ckpt"]
    assert [r[0] for r in rows] == ["put", "get"]
    assert {r[COLUMNS.index("epoch")] for r in rows} == {CHECKPOINT_EPOCH}


def test_round_trip_tells_a_mismatch(store):
    lossy = Serialiser(lambda s: bytes(s), lambda data: list(data)[:-1], lambda a, b: list(a) == list(b))
    assert round_trip(store, "x.ckpt", [1, 2], lossy, False).checkpoint_verified == "mismatch"


# -- the PyTorch access factory -----------------------------------------------------------
def _index(sizes: list[int]) -> SampleIndex:
    return SampleIndex([f"k{i}" for i in range(len(sizes))], np.zeros(len(sizes), np.int64),
                       np.asarray(sizes, np.int64), ["a"])


@pytest.mark.parametrize("access,rank,world,expected", [
    ("sequential", 0, 1, 1023), ("sequential", 0, 2, 31), ("sequential", 1, 2, 992),
    ("random", 0, 1, 1023), ("shards", 0, 1, 1023)])
def test_access_expected_bytes_are_this_ranks_share(tmp_path, access, rank, world, expected):
    from dnnbench.frameworks.pytorch.access import access_for

    cfg = _config(dataset={"access": access}, framework={"batch_size": 4})
    index = _index([1, 2, 4, 8, 16, 32, 64, 128, 256, 512])
    if access == "random":
        a = access_for(cfg, index, FileSystemStorage(StorageConfig(root=str(tmp_path))), rank, world)
        assert a.samples_per_epoch() == 10 and "batch_sampler" in a.loader_args()
    a = access_for(cfg, index, FileSystemStorage(StorageConfig(root=str(tmp_path))), rank, world)
    assert a.expected_epoch_bytes(0) == expected
    partial = access_for(_config(dataset={"access": access}, framework={"batch_size": 4, "drop_last": True}),
                         index, FileSystemStorage(StorageConfig(root=str(tmp_path))), rank, world)
    assert partial.expected_epoch_bytes(0) is None


def test_shard_split_over_ranks_adds_up_to_every_shard(tmp_path):
    from dnnbench.frameworks.pytorch.access import access_for

    cfg = _config(dataset={"access": "shards"})
    index = _index([1, 2, 4, 8, 16, 32, 64])
    storage = FileSystemStorage(StorageConfig(root=str(tmp_path)))
    for epoch in range(3):
        assert sum(access_for(cfg, index, storage, r, 3).expected_epoch_bytes(epoch) for r in range(3)) == 127


def test_pytorch_runner_is_a_runner(tmp_path):
    import torch

    from dnnbench.frameworks.protocols import Runner, Trainer
    from dnnbench.frameworks.pytorch.runner import PyTorchRunner
    from dnnbench.frameworks.pytorch.trainers import ReadTrainer

    runner = PyTorchRunner(_config(), _index([1]), FileSystemStorage(StorageConfig(root=str(tmp_path))))
    assert isinstance(runner, Runner) and isinstance(ReadTrainer(None, torch.device("cpu"), None), Trainer)


def test_a_stop_signal_while_the_workers_start_ends_the_epoch_once_they_are_up():
    """Workers fork inside iter(loader): a stop signal's exception raised there (in os.fork's
    at-fork handlers) would be lost, so the signal is held and the epoch ends afterwards."""
    import os
    import signal

    from dnnbench import signals
    from dnnbench.errors import Interrupted
    from dnnbench.frameworks.pytorch.runner import start_workers

    class Loader:
        started = False

        def __iter__(self):
            os.kill(os.getpid(), signal.SIGINT)  # its handler runs here, as in an at-fork handler
            Loader.started = True
            return iter([])

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        try:
            start_workers(Loader())
            ended = "not at all"
        except Interrupted:
            ended = "after the workers started"
        except KeyboardInterrupt:
            ended = "while they started"
        assert ended == "after the workers started" and Loader.started and signals.stop_requested()
        assert start_workers([]) is not None  # no signal: the iterator
    finally:
        signal.signal(signal.SIGINT, previous)
        signals.reset()
