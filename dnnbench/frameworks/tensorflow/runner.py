"""Builds the TensorFlow pieces of a run (device, dataset, tf.data pipeline, Keras model,
trainer) and hands the epoch loop one iterator of batches per epoch: the same
interface as :class:`dnnbench.frameworks.pytorch.runner.PyTorchRunner`
(:class:`dnnbench.frameworks.protocols.Runner`). How samples are read per ``dataset.access``
is :mod:`.access`'s.

One framework per process: this module never imports torch, and refuses to run
inside a PyTorch DataLoader worker (TensorFlow after a fork deadlocks).
"""

from __future__ import annotations

import dataclasses
import io
import sys
from contextlib import AbstractContextManager
from typing import Any, Generator

import numpy as np

from dnnbench.data.index import SampleIndex
from dnnbench.errors import ConfigError, RunFailed
from dnnbench.frameworks.common import PHASE_MODEL, build_model, mark_epoch
from dnnbench.frameworks.phases import INFER_EPOCH, InferTally, Serialiser, round_trip
from dnnbench.frameworks.results import CheckpointResult, InferResult
from dnnbench.frameworks.tensorflow._tf import keras, tf
from dnnbench.frameworks.tensorflow.access import Access
from dnnbench.frameworks.tensorflow.files import access_for
from dnnbench.frameworks.tensorflow.datasets import Batch, ImageFolderDataset
from dnnbench.frameworks.tensorflow.plan import LoaderPlan
from dnnbench.registry import TRAINERS
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
    """One TensorFlow run (a :class:`dnnbench.frameworks.protocols.Runner`): ``setup()``, then
    ``epoch(e)`` per epoch, then ``close()``."""

    framework = "tensorflow"

    def __init__(self, config: Any, index: SampleIndex, storage: Storage):
        self.config = config
        self.index = index
        self.storage = storage
        self.plan = LoaderPlan.from_config(config)
        self.access: Access | None = None
        self.trainer: Any = None
        self.device = "/CPU:0"
        self.threads_note = ""

    def setup(self) -> None:
        refuse_torch_worker()
        cfg = self.config
        self.threads_note = apply_intra_op_threads(cfg.framework.intra_op_threads)
        keras.utils.set_random_seed(cfg.execution.seed)
        self.device = resolve_device(cfg.execution.device)
        self.access = access_for(cfg, self.index, self.storage, self.plan)
        self.plan = self.access.plan
        trainer_cls = TRAINERS.get(cfg.training.trainer, "tensorflow")
        model = self._model() if trainer_cls.needs_model else None
        self.trainer = trainer_cls(model=model, device=self.device, config=cfg.training)
        self.trainer.setup()
        # one live client for the whole process, made here rather than raced for by
        # tf.data's threads on their first read
        _ = self.storage.client

    def _model(self, why: str | None = None) -> keras.Model:
        return build_model(self.config, "tensorflow", len(self.index.classes), why, tf.device(self.device))

    @property
    def dataset(self) -> Any:
        return self.access.dataset if self.access is not None else None

    def samples_per_epoch(self) -> int | None:
        """Samples in a full epoch (for shards: the packed sample count, None when unknown,
        as under PyTorch)."""
        return self.access.samples_per_epoch()

    def expected_epoch_bytes(self, epoch: int) -> int | None:
        """The bytes ``epoch`` must read, for the byte self-check; None when epochs are partial
        by configuration (max_steps, drop_last). One process reads every row (rank 0 of 1):
        all listed objects, or for shards all shards (their tar bytes)."""
        return self.access.expected_epoch_bytes(epoch)

    def epoch(self, epoch: int) -> Generator[Batch, None, None]:
        """Batches of one epoch; the epoch loop times every ``next``."""
        mark_epoch(self.storage, epoch)
        order = self.access.order(epoch)
        return self._batches(self.dataset.pipeline(order, epoch, self.plan), self.dataset)

    def _batches(self, pipeline: tf.data.Dataset, dataset: Any) -> Generator[Batch, None, None]:
        it = iter(pipeline)
        to_batch = dataset.to_batch
        try:
            for element in it:
                yield to_batch(element)
        finally:
            del it  # an epoch ended early: cancel tf.data's in-flight reads now

    def epoch_scope(self) -> AbstractContextManager | None:
        """None: one process, no collectives (multi-rank runs are PyTorch's)."""
        return None

    def end_epoch(self, it: Generator[Batch, None, None]) -> None:
        """Close the epoch's iterator: an epoch that ended early cancels tf.data's in-flight reads now."""
        it.close()

    def step(self, batch: Batch) -> float | None:
        return self.trainer.step(batch)

    # -- the optional phases -------------------------------------------------
    def _phase_model(self) -> keras.Model:
        """The trained model, or (read/emulate trainers) a freshly built one."""
        if self.trainer.model is None:
            self.trainer.model = self._model(PHASE_MODEL)
        return self.trainer.model

    def infer(self, index: SampleIndex) -> InferResult:
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
        mark_epoch(self.storage, INFER_EPOCH)  # the requests of the inference phase
        tally = InferTally()
        order = np.arange(len(index), dtype=np.int64)
        for batch in tally.batches(self._batches(dataset.pipeline(order, INFER_EPOCH, plan), dataset)):
            with tf.device(self.device):
                tally.correct += int(tf.reduce_sum(tf.cast(predict(batch.data) == batch.labels, tf.int32)))
        return tally.result()

    def checkpoint(self, key: str) -> CheckpointResult:
        """Save model + optimizer variables (padded to checkpoint.size_MiB) to the storage as one
        ``.npz``, load it back, verify it is equal (see :func:`dnnbench.frameworks.phases.round_trip`)."""
        ck = self.config.checkpoint
        model = self._phase_model()
        state = {f"model/{i}": v.numpy() for i, v in enumerate(model.weights)}
        optimizer = self.trainer.optimizer  # None: read/emulate trainers have none
        if optimizer is not None:
            state.update({f"optimizer/{i}": v.numpy() for i, v in enumerate(optimizer.variables)})
        if ck.size_MiB > 0:
            state["padding"] = np.random.default_rng(0).integers(0, 255, int(ck.size_MiB * 2**20), dtype=np.uint8)
        return round_trip(self.storage, key, state, NPZ_STATE, ck.keep)

    def describe(self) -> dict[str, Any]:
        return {"tensorflow": tf.__version__, "keras": keras.__version__, "device": self.device,
                "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
                "loader": self.plan.describe(),
                "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads() or "default",
                "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads() or "default",
                "intra_op_threads_source": self.threads_note}

    def close(self) -> None:
        self.access = None


def _save(state: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **state)
    return buf.getvalue()


def _load(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def _equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


#: a TensorFlow checkpoint: the variables as arrays in one ``.npz``
NPZ_STATE = Serialiser(_save, _load, _equal)
