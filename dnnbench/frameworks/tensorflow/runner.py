"""Builds the TensorFlow pieces of a run (device, dataset, tf.data pipeline, Keras model,
trainer) and hands the executor one iterator of batches per epoch: the same
interface as :class:`dnnbench.frameworks.pytorch.runner.PyTorchRunner`.

One framework per process: this module never imports torch, and refuses to run
inside a PyTorch DataLoader worker (TensorFlow after a fork deadlocks).
"""

from __future__ import annotations

import dataclasses
import io
import sys
import time
from typing import Any, Iterator

import numpy as np

from dnnbench import failures
from dnnbench.data.decode import channels
from dnnbench.data.index import SampleIndex
from dnnbench.errors import ConfigError, PluginError, RunFailed
from dnnbench.frameworks.tensorflow._tf import keras, tf
from dnnbench.frameworks.tensorflow.datasets import Batch, ImageFolderDataset, ShardDataset
from dnnbench.frameworks.tensorflow.plan import LoaderPlan, epoch_order, samples_per_epoch, steps_per_epoch
from dnnbench.recording.requests import get_recorder
from dnnbench.registry import DATASETS, MODELS, TRAINERS
from dnnbench.storage.base import Storage


def resolve_device(choice: str) -> str:
    """``auto`` -> the first GPU when TensorFlow sees one, else the CPU.

    Raises:
        ConfigError: ``cuda`` was asked for and TensorFlow sees no GPU.
    """
    gpus = tf.config.list_physical_devices("GPU")
    if choice == "cuda" and not gpus:
        raise ConfigError("CUDA was requested but TensorFlow sees no GPU", reference="execution.device",
                          hint="use device: auto or cpu (tensorflow-cpu has no GPU support)")
    if choice == "cuda" or (choice == "auto" and gpus):
        return "/GPU:0"
    return "/CPU:0"


def refuse_torch_worker() -> None:
    """Raise when called inside a PyTorch DataLoader worker (checked without importing torch).

    Raises:
        RunFailed: this process is a torch loader worker.
    """
    worker = sys.modules.get("torch.utils.data._utils.worker")
    if worker is not None and getattr(worker, "_worker_info", None) is not None:
        raise RunFailed("TensorFlow must not run inside a PyTorch DataLoader worker (it deadlocks after fork)",
                        reference="framework.name",
                        hint="one framework per benchmark process: run tensorflow and pytorch separately")


def apply_intra_op_threads(setting: int | str) -> str:
    """``framework.intra_op_threads`` for TensorFlow: a number is applied through
    ``tf.config.threading``; ``auto`` keeps TensorFlow's own default (its loader threads are a
    private tf.data pool apart from the compute threads). Returns where the value came from.
    TensorFlow fixes its thread pools when its runtime starts: a second run in the same
    process keeps the first run's pools, and says so."""
    if setting == "auto":
        return "auto: TensorFlow's default"
    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(setting))
    except RuntimeError:
        if tf.config.threading.get_intra_op_parallelism_threads() != int(setting):
            return "framework.intra_op_threads not applied: TensorFlow was already initialised in this process"
    return "framework.intra_op_threads"


class TensorFlowRunner:
    """One TensorFlow run: ``setup()``, then ``epoch(e)`` per epoch, then ``close()``."""

    framework = "tensorflow"

    def __init__(self, config: Any, index: SampleIndex, storage: Storage):
        self.config = config
        self.index = index
        self.storage = storage
        self.plan = LoaderPlan.from_config(config)
        self.dataset = None
        self.trainer = None
        self.device = "/CPU:0"
        self.threads_note = ""

    def setup(self) -> None:
        refuse_torch_worker()
        cfg = self.config
        self.threads_note = apply_intra_op_threads(cfg.framework.intra_op_threads)
        keras.utils.set_random_seed(cfg.execution.seed)
        self.device = resolve_device(cfg.execution.device)
        access = cfg.dataset.access
        if access == "shards":
            # shard order is shuffled per epoch from the seed, samples mixed in dataset.shuffle_buffer
            self.plan = dataclasses.replace(self.plan, shuffle=True, shuffle_buffer=None)
            self.dataset = ShardDataset(self.index, self.storage, cfg.dataset,
                                        shuffle_buffer=cfg.dataset.shuffle_buffer)
        else:
            if access == "sequential":  # listing order, no shuffle, deterministic
                self.plan = dataclasses.replace(self.plan, shuffle=False, shuffle_buffer=None, deterministic=True)
            dataset_cls = DATASETS.get(cfg.dataset.name, "tensorflow")
            self.dataset = dataset_cls(index=self.index, storage=self.storage, config=cfg.dataset)
        trainer_cls = TRAINERS.get(cfg.training.trainer, "tensorflow")
        model = None
        if getattr(trainer_cls, "needs_model", True):
            model = self._model()
        self.trainer = trainer_cls(model=model, device=self.device, config=cfg.training)
        self.trainer.setup()
        # one live client for the whole process, made here rather than raced for by
        # tf.data's threads on their first read
        _ = self.storage.client

    def _model(self, why: str | None = None) -> keras.Model:
        cfg = self.config
        in_ch = channels(cfg.dataset.decode)
        if in_ch == 0:
            raise ConfigError(why or f"trainer {cfg.training.trainer!r} needs decoded images",
                              reference="dataset.decode", hint="use rgb or gray")
        model_cls = MODELS.get(cfg.model.name, "tensorflow")
        try:
            with tf.device(self.device):
                return model_cls(in_channels=in_ch, num_classes=max(2, len(self.index.classes)),
                                 image_size=tuple(cfg.dataset.image_dimension), **cfg.model.options)
        except TypeError as e:
            raise PluginError(f"model {cfg.model.name!r} rejected its options: {e}",
                              reference="model.options") from None

    def _shard_samples(self) -> int | None:
        """Samples in all shards (None when unknown: shards packed without index.json)."""
        counts = getattr(self.index, "shard_samples", None) or [None]
        return None if None in counts else int(sum(counts))

    def steps_per_epoch(self) -> int | None:
        p = self.plan
        n = self._shard_samples() if self.config.dataset.access == "shards" else len(self.index)
        return None if n is None else steps_per_epoch(n, p.batch_size, p.drop_last, p.limit)

    def samples_per_epoch(self) -> int | None:
        """Samples in a full epoch (for shards: the packed sample count, None when unknown,
        as under PyTorch)."""
        p = self.plan
        if self.config.dataset.access == "shards":
            return self._shard_samples()
        return samples_per_epoch(len(self.index), p.batch_size, p.drop_last, p.limit)

    def expected_epoch_bytes(self, epoch: int) -> int | None:
        """The bytes ``epoch`` must read, for the byte self-check; None when epochs are partial
        by configuration (max_steps, drop_last). One process reads every row (rank 0 of 1):
        all listed objects, or for shards all shards (their tar bytes)."""
        p = self.plan
        if self.config.dataset.access == "shards":
            n = self._shard_samples()
            if p.drop_last or (p.limit is not None and (n is None or p.limit < n)):
                return None
            return self.index.total_bytes
        if self.samples_per_epoch() != len(self.index):
            return None
        return self.index.total_bytes

    def epoch(self, epoch: int) -> Iterator[Batch]:
        """Batches of one epoch; the executor times every ``next``."""
        p = self.plan
        rec = get_recorder(self.storage.recorder_spec)
        if rec is not None:
            rec.epoch = epoch
        if isinstance(self.dataset, ShardDataset):
            order = self.dataset.shard_order(p.seed, epoch)
        elif p.shuffle_buffer:  # tf.data shuffles listing order itself (and applies the limit after)
            order = epoch_order(len(self.index), False, p.seed, epoch)
        else:
            order = epoch_order(len(self.index), p.shuffle, p.seed, epoch, p.limit)
        return self._batches(self.dataset.pipeline(order, epoch, p), self.dataset)

    def _batches(self, pipeline: tf.data.Dataset, dataset: Any) -> Iterator[Batch]:
        it = iter(pipeline)
        to_batch = dataset.to_batch
        try:
            for element in it:
                yield to_batch(element)
        finally:
            del it  # an epoch ended early: cancel tf.data's in-flight reads now

    def step(self, batch: Batch) -> float | None:
        return self.trainer.step(batch)

    # -- the optional phases -------------------------------------------------
    def _phase_model(self) -> keras.Model:
        """The trained model, or (read/emulate trainers) a freshly built one."""
        if getattr(self.trainer, "model", None) is None:
            self.trainer.model = self._model("the inference and checkpoint phases need a model on decoded images")
        return self.trainer.model

    def infer(self, index: SampleIndex) -> dict[str, Any]:
        """Evaluate on the held-out ``index`` read through the same storage; accuracy and throughput."""
        cfg = self.config
        model = self._phase_model()
        dataset = ImageFolderDataset(index=index, storage=self.storage, config=cfg.dataset)
        plan = dataclasses.replace(self.plan, batch_size=cfg.inference.batch_size or self.plan.batch_size,
                                   shuffle=False, shuffle_buffer=None, limit=None, drop_last=False)
        predict = tf.function(lambda x: tf.argmax(model(tf.cast(x, tf.float32) / 255.0, training=False), axis=1),
                              reduce_retracing=True)
        with tf.device(self.device):
            predict.get_concrete_function(tf.TensorSpec((None, *model.input_shape[1:]), tf.uint8))
        rec = get_recorder(self.storage.recorder_spec)
        if rec is not None:
            rec.epoch = -1  # requests of the inference phase
        samples = nbytes = correct = failed = 0
        t0 = time.perf_counter()
        for batch in self._batches(dataset.pipeline(np.arange(len(index), dtype=np.int64), -1, plan), dataset):
            failures.raise_if_fatal(batch.failures)
            failed += len(batch.failures)
            if not batch.samples:
                continue
            with tf.device(self.device):
                correct += int(tf.reduce_sum(tf.cast(predict(batch.data) == batch.labels, tf.int32)))
            samples += batch.samples
            nbytes += batch.nbytes
        seconds = time.perf_counter() - t0
        return {"infer_samples": samples, "infer_bytes": nbytes, "infer_wall_s": seconds,
                "infer_samples_per_s": samples / seconds if seconds > 0 else None,
                "infer_MiB_per_s": nbytes / 2**20 / seconds if seconds > 0 else None,
                "accuracy_percent": 100.0 * correct / samples if samples else None, "infer_failed": failed}

    def checkpoint(self, key: str) -> dict[str, Any]:
        """Save model + optimizer variables (padded to checkpoint.size_MiB) to the storage as one
        ``.npz``, load it back, verify it is equal. Save = serialise + PUT; load = GET +
        deserialise; MB/s over PUT / GET only (as for PyTorch)."""
        ck = self.config.checkpoint
        model = self._phase_model()
        state = {f"model/{i}": v.numpy() for i, v in enumerate(model.weights)}
        optimizer = getattr(self.trainer, "optimizer", None)
        if optimizer is not None:
            state.update({f"optimizer/{i}": v.numpy() for i, v in enumerate(optimizer.variables)})
        if ck.size_MiB > 0:
            state["padding"] = np.random.default_rng(0).integers(0, 255, int(ck.size_MiB * 2**20), dtype=np.uint8)
        rec = get_recorder(self.storage.recorder_spec)
        if rec is not None:
            rec.epoch = -2  # requests of the checkpoint phase
        t0 = time.perf_counter()
        buf = io.BytesIO()
        np.savez(buf, **state)
        data = buf.getvalue()
        t_put = time.perf_counter()
        self.storage.put(key, data)
        t_saved = time.perf_counter()
        got, _ = self.storage.get(key)
        t_got = time.perf_counter()
        with np.load(io.BytesIO(got), allow_pickle=False) as npz:
            loaded = {name: npz[name] for name in npz.files}
        t_loaded = time.perf_counter()
        verified = got == data and loaded.keys() == state.keys() and \
            all(np.array_equal(state[k], loaded[k]) for k in state)
        if not ck.keep:
            self.storage.delete(key)
        return {"checkpoint_bytes": len(data), "checkpoint_save_s": t_saved - t0,
                "checkpoint_load_s": t_loaded - t_saved,
                "checkpoint_save_MB_per_s": len(data) / 1e6 / (t_saved - t_put) if t_saved > t_put else None,
                "checkpoint_load_MB_per_s": len(data) / 1e6 / (t_got - t_saved) if t_got > t_saved else None,
                "checkpoint_verified": "ok" if verified else "mismatch"}

    def synchronize(self) -> None:
        self.trainer.synchronize()

    def describe(self) -> dict[str, Any]:
        return {"tensorflow": tf.__version__, "keras": keras.__version__, "device": self.device,
                "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
                "loader": self.plan.describe(),
                "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads() or "default",
                "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads() or "default",
                "intra_op_threads_source": self.threads_note}

    def close(self) -> None:
        self.dataset = None
