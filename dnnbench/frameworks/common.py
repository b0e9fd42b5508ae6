"""Framework-neutral pieces of the framework adapters: the failed-sample and batch types, reading and
decoding one sample (with its decode time recorded), the built-in transform, building the
configured model, and the base of every trainer. Imports neither torch nor tensorflow.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Callable, Iterator

import numpy as np

from dnnbench import failures
from dnnbench.data import decode
from dnnbench.data.decode import DecodeError, decode_image
from dnnbench.errors import ConfigError, PluginError
from dnnbench.recording.requests import get_recorder
from dnnbench.registry import MODELS
from dnnbench.storage.inflight import in_order
from dnnbench.storage.base import Storage

def mark_epoch(storage: Storage, epoch: int) -> None:
    """Record this process's next requests under ``epoch`` (-1: inference, -2: checkpoint)."""
    rec = get_recorder(storage.recorder_spec)
    if rec is not None:
        rec.epoch = epoch


#: the decode time's place in a request row (:data:`dnnbench.recording.requests.COLUMNS`)
DECODE_S = 9


class Failure:
    """A sample (or shard) that could not be read or decoded: its key and why. Picklable,
    so it crosses from loader workers to the main process."""

    __slots__ = ("key", "reason")

    def __init__(self, key: str, reason: str):
        self.key = key
        self.reason = reason

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return Failure, (self.key, self.reason)

    def __repr__(self) -> str:
        return f"Failure({self.key!r}, {self.reason!r})"


class Batch:
    """One batch as it reaches the epoch loop: ``data`` (the framework's tensor), ``labels``,
    the storage bytes its samples took, how many samples it holds, the samples that failed
    (left out of ``data``), and ``offsets`` cutting raw bytes into samples (None for images)."""

    __slots__ = ("data", "labels", "nbytes", "samples", "failures", "offsets")

    def __init__(self, data: Any, labels: Any, nbytes: int, samples: int, failures: list[Failure],
                 offsets: np.ndarray | None = None):
        self.data = data
        self.labels = labels
        self.nbytes = nbytes
        self.samples = samples
        self.failures = failures
        self.offsets = offsets


class ImageTransform:
    """The built-in transform: bytes -> (H, W, C) uint8 decoded with OpenCV to ``size``, or the
    raw bytes for decode ``none``. Datasets set ``decode`` and ``size``."""

    decode: str
    size: tuple[int, int]

    def transform(self, data: bytes) -> np.ndarray:
        """Bytes -> array. Default: decode to (H, W, C) uint8, or raw bytes for decode none."""
        if self.decode == "none":
            return np.frombuffer(data, dtype=np.uint8)
        return decode_image(data, self.decode, self.size)


def decode_timed(transform: Callable[[bytes], Any], data: bytes, row: list | None) -> tuple[Any, str]:
    """``transform(data)``, its time written into the request ``row`` (decode_s).

    Returns:
        (sample, "") or (None, the failure reason) when the bytes cannot be decoded.
    """
    t0 = time.perf_counter()
    try:
        sample = transform(data)
    except DecodeError as e:
        return None, failures.BAD_DECODE + str(e)
    if row is not None:
        row[DECODE_S] = time.perf_counter() - t0
    return sample, ""


def read_sample(storage: Storage, key: str, size: int, mode: str,
                transform: Callable[[bytes], Any] | None) -> tuple[Any, int, str, list | None]:
    """Read one sample and transform it (``transform`` None: keep the bytes, time nothing).

    An object too large to decode is not read; a read or decode failure is a reason, never an
    exception (loader workers hand it to the main process, which names the key).

    Returns:
        (sample or None, bytes read, "" or the failure reason, the request's record row or None).
    """
    too_big = decode.too_large(size, mode)
    if too_big:
        return None, 0, failures.BAD_DECODE + too_big, None
    try:
        data, row = storage.get(key)
    except Exception as e:  # noqa: BLE001 - named in the main process, no worker traceback
        return None, 0, failures.read_failure(e), None
    if transform is None:
        return data, len(data), "", row
    sample, reason = decode_timed(transform, data, row)
    return sample, len(data), reason, row


def read_samples(storage: Storage, keys: list[str], sizes: list[int], mode: str,
                 transform: Callable[[bytes], Any] | None, in_flight: int = 1
                 ) -> Iterator[tuple[Any, int, str, list | None]]:
    """:func:`read_sample` of each key, in order, ``in_flight`` reads outstanding at once
    (``dataset.requests_in_flight``; the transform runs in the reading thread). A caller
    that stops early (a failure that ends the run) closes the iterator: reads not started
    are dropped."""
    if in_flight <= 1:
        for key, size in zip(keys, sizes):
            yield read_sample(storage, key, size, mode, transform)
        return
    yield from in_order(lambda ks: read_sample(storage, ks[0], ks[1], mode, transform),
                                 zip(keys, sizes), in_flight)


def read_positions(keys: list[str], failed: list[tuple[str, str]], count: int) -> list[int]:
    """Positions in ``keys`` of the ``count`` objects :meth:`Storage.get_many_into` read (in order,
    the failed ones left out, none after a failure that ended the batch)."""
    bad = {k for k, _ in failed}
    if not bad:
        return list(range(count))
    return [j for j, k in enumerate(keys) if k not in bad][:count]


def in_flight(config: Any) -> int:
    """``dataset.requests_in_flight`` of a dataset config (1 for configs without it: plugins)."""
    return int(getattr(config, "requests_in_flight", 1) or 1)


def build_model(config: Any, framework: str, classes: int, why: str | None = None,
                scope: AbstractContextManager | None = None) -> Any:
    """The configured model (``model.name`` under ``framework``), built as
    ``cls(in_channels=C, num_classes=max(2, classes), image_size=(H, W), **model.options)``.

    Args:
        config: the run's BenchConfig.
        framework: the registry's framework name.
        classes: the dataset's class count.
        why: the message when the samples are not decoded images (default: the trainer needs them).
        scope: the context to build in (a TensorFlow device).

    Raises:
        ConfigError: ``dataset.decode`` is none: a model needs decoded images.
        PluginError: the model class rejected ``model.options``.
    """
    in_ch = decode.channels(config.dataset.decode)
    if in_ch == 0:
        raise ConfigError(why or f"trainer {config.training.trainer!r} needs decoded images",
                          reference="dataset.decode", hint="use rgb or gray")
    model_cls = MODELS.get(config.model.name, framework)
    try:
        with scope or nullcontext():
            return model_cls(in_channels=in_ch, num_classes=max(2, classes),
                             image_size=tuple(config.dataset.image_dimension), **config.model.options)
    except TypeError as e:
        raise PluginError(f"model {config.model.name!r} rejected its options: {e}",
                          reference="model.options") from None


#: the message of a model built for the inference or checkpoint phase of a run without one
PHASE_MODEL = "the inference and checkpoint phases need a model on decoded images"


class TrainerBase:
    """What every trainer holds: the model (None when ``needs_model`` is False), the device and
    the training config. Subclasses implement :meth:`step`."""

    needs_model = True
    #: the optimizer whose state a checkpoint saves (None: a trainer without one)
    optimizer: Any = None

    def __init__(self, model: Any, device: Any, config: Any):
        self.model = model
        self.device = device
        self.config = config

    def setup(self) -> None:
        """Called once before the first epoch."""

    def step(self, batch: Any) -> float | None:
        """Consume one batch; return the loss if there is one."""
        raise NotImplementedError

    def synchronize(self) -> None:
        """Wait for queued device work, so compute time is measured, not just launched."""

    def uneven_inputs(self) -> AbstractContextManager | None:
        """Multi-rank: the context around one epoch's steps when the steps hold collectives
        (an all-reduce) and the ranks' step counts may differ; None when they hold none."""
        return None
