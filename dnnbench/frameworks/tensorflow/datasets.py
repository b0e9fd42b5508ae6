"""tf.data pipelines reading through dnnbench's storage layer.

One epoch is ``from_tensor_slices(indices)`` -> [``shuffle``] -> [``batch`` of indices]
-> ``map`` (or ``interleave`` of per-worker streams) of a ``tf.numpy_function`` that
reads with ``storage.get`` / ``get_into`` and decodes with OpenCV -> [``batch``] ->
``prefetch``. The Python read function runs in tf.data's threads; every request is
recorded by the storage layer as under PyTorch, with the reading thread (or the
interleave stream) as ``worker``, the epoch and the decode time.

Elements carry the bytes each sample returned, so the main loop knows exactly how
many bytes each step consumed; a sample that cannot be read or decoded travels as
a failure (its key and reason) instead of stopping tf.data with a traceback.

A :class:`~dnnbench.frameworks.common.Batch`'s ``data`` is a uint8 NHWC tensor for decoded
images. Raw bytes (decode none) come as a flat uint8 tensor cut by ``offsets`` (read_unit
batch, as PyTorch's raw batches) or as a tf.string vector, one element per sample
(read_unit sample; ``offsets`` None); ``labels`` is an int64 tensor.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from dnnbench import failures
from dnnbench.data.decode import channels
from dnnbench.data.index import SampleIndex
from dnnbench.data.shards import iter_shard
from dnnbench.data.split import split
from dnnbench.frameworks.common import (Batch, Failure, ImageTransform, decode_timed, in_flight, read_positions,
                                       read_sample)
from dnnbench.frameworks.tensorflow._tf import tf
from dnnbench.frameworks.tensorflow.plan import AUTOTUNE, LoaderPlan, WorkerIds
from dnnbench.registry import DATASETS
from dnnbench.storage.inflight import in_order, set_callers
from dnnbench.storage.base import Storage

_NO_STREAM = -1


@DATASETS.register("image_folder", framework="tensorflow",
                   aliases=("TorchImageClassificationDataset", "MapStyleDataset"))
class ImageFolderDataset(ImageTransform):
    """One storage read per sample, decoded with OpenCV to image_dimension.

    Subclass and override :meth:`transform` (and :meth:`sample_shape` when the
    result is not ``(H, W, C)`` uint8) to change what happens to the bytes.
    """

    def __init__(self, index: SampleIndex, storage: Storage, config: Any):
        self.keys = index.keys
        self.labels = np.asarray(index.labels, dtype=np.int64)
        self.sizes = np.asarray(index.sizes, dtype=np.int64)
        self.storage = storage
        self.config = config
        self.decode = config.decode
        self.size = tuple(config.image_dimension)
        self.in_flight = in_flight(config)
        self.raw = self.decode == "none" or isinstance(self, RawBytesDataset)
        builtin = (ImageFolderDataset.transform, RawBytesDataset.transform)
        # raw bytes with the built-in transform: no transform; batches read straight into one buffer
        self._builtin_raw = self.raw and type(self).transform in builtin

    def __len__(self) -> int:
        return len(self.keys)

    # -- what happens to the bytes (and transform(), inherited) ---------------
    def sample_shape(self) -> tuple[int, ...] | None:
        """Shape of one transformed sample; None for variable-length raw bytes."""
        if self.raw:
            return None
        return (*self.size, channels(self.decode))

    # -- reads (run in tf.data's threads) ------------------------------------
    def _read(self, i: int, epoch: int, worker: int) -> tuple[np.ndarray | bytes | None, int, str]:
        """Read and transform sample ``i`` (not read when too large to decode): (array, bytes
        read, "" or the failure reason). Raw bytes with the built-in transform stay bytes, and
        no decode time is recorded (as for PyTorch's raw batches)."""
        sample, n, reason, row = read_sample(self.storage, self.keys[i], int(self.sizes[i]), self.decode,
                                             None if self._builtin_raw else self.transform)
        if reason:
            return None, 0, reason
        if row is not None:
            row[3], row[4] = worker, epoch
        return sample, n, ""

    def read_sample(self, i: int, worker: int, epoch: int) -> tuple[np.ndarray | bytes, np.int64, np.int64, bytes]:
        """One sample: (array, or bytes when raw; label; bytes read or -1 on failure; failure reason)."""
        sample, n, reason = self._read(i, epoch, worker)
        shape = self.sample_shape()
        if reason:
            return (np.zeros(shape, np.uint8) if shape else b""), self.labels[i], np.int64(-1), reason.encode()
        if shape is None and not isinstance(sample, bytes):  # raw: a tf.string (cheaper than a ragged batch)
            sample = np.asarray(sample, dtype=np.uint8).tobytes()
        return sample, self.labels[i], np.int64(n), b""

    def read_batch(self, idx: np.ndarray, worker: int, epoch: int) -> tuple[np.ndarray, ...]:
        """A batch of samples, read one after the other as a PyTorch worker does.

        Returns (data, offsets, labels, bytes read, failed indices, failure reasons);
        failed samples are left out of data and labels.
        """
        idx = idx.tolist()
        if self._builtin_raw:
            return self._read_raw_batch(idx, worker, epoch)
        shape = self.sample_shape()
        out = np.empty((len(idx), *shape), np.uint8) if shape is not None else None
        parts: list[np.ndarray] = []
        good: list[int] = []
        failed: list[tuple[int, str]] = []
        nbytes = 0
        reads = in_order(lambda i: self._read(i, epoch, worker), idx, self.in_flight) \
            if self.in_flight > 1 else (self._read(i, epoch, worker) for i in idx)
        for i, (sample, n, reason) in zip(idx, reads):
            if reason:
                failed.append((i, reason))
                if failures.is_fatal(reason):
                    break  # the run ends: the rest would wait out the retries one by one
                continue
            if out is not None:
                out[len(good)] = sample
            else:
                parts.append(sample.reshape(-1))
            good.append(i)
            nbytes += n
        reads.close()
        if out is not None:
            data, offsets = out[: len(good)], np.zeros(0, np.int64)
        else:
            offsets = np.zeros(len(parts) + 1, np.int64)
            np.cumsum([p.size for p in parts], out=offsets[1:])
            data = np.concatenate(parts) if parts else np.zeros(0, np.uint8)
        return (data, offsets, self.labels[good], np.int64(nbytes), *_failures(failed))

    def _read_raw_batch(self, idx: list[int], worker: int, epoch: int) -> tuple[np.ndarray, ...]:
        sizes = self.sizes[idx]
        out = np.empty(int(sizes.sum()), np.uint8)
        keys = [self.keys[i] for i in idx]
        rows: list = []
        ends, failed = self.storage.get_many_into(keys, sizes.tolist(), memoryview(out), self.in_flight, rows)
        for row in rows:
            if row is not None:
                row[3], row[4] = worker, epoch
        good = [idx[j] for j in read_positions(keys, failed, len(ends))]
        where = dict(zip(keys, idx))
        offsets = np.zeros(len(ends) + 1, np.int64)
        offsets[1:] = ends
        pos = int(offsets[-1])
        return (out[:pos], offsets, self.labels[good], np.int64(pos),
                *_failures([(where[k], reason) for k, reason in failed]))

    # -- the pipeline ----------------------------------------------------------
    def pipeline(self, order: np.ndarray, epoch: int, plan: LoaderPlan) -> tf.data.Dataset:
        """The tf.data pipeline of one epoch over the sample indices in ``order``."""
        # requests are recorded with the stream (interleave) or the reading thread as worker;
        # without parallel calls the training loop's own thread reads: worker -1, as in PyTorch
        ids = WorkerIds() if plan.num_parallel_calls is not None else None
        set_callers(plan.threadpool_size)  # each reading thread keeps its own requests_in_flight
        units = tf.data.Dataset.from_tensor_slices(order)
        if plan.shuffle_buffer:
            units = units.shuffle(plan.shuffle_buffer, seed=(plan.seed * 1_000_003 + epoch) % 2**31,
                                  reshuffle_each_iteration=False)
            if plan.limit is not None:
                units = units.take(plan.limit)
        if plan.read_unit == "batch":
            units = units.batch(plan.batch_size, drop_remainder=plan.drop_last)
            read = self._batch_fn(epoch, ids)
        else:
            read = self._sample_fn(epoch, ids)
        calls = tf.data.AUTOTUNE if plan.num_parallel_calls == AUTOTUNE else plan.num_parallel_calls
        if plan.parallelism == "interleave":
            n = plan.cycle_length or 1
            ds = tf.data.Dataset.range(n).interleave(
                lambda w: units.shard(n, w).map(lambda u: read(u, w)),
                cycle_length=n, block_length=1, num_parallel_calls=calls, deterministic=plan.deterministic)
        else:
            stream = tf.constant(_NO_STREAM, tf.int64)
            ds = units.map(lambda u: read(u, stream), num_parallel_calls=calls, deterministic=plan.deterministic)
        if plan.read_unit == "sample":
            ds = ds.batch(plan.batch_size, drop_remainder=plan.drop_last)
        if plan.prefetch:
            ds = ds.prefetch(tf.data.AUTOTUNE if plan.prefetch == AUTOTUNE else plan.prefetch)
        return ds.with_options(_options(plan))

    def _sample_fn(self, epoch: int, ids: WorkerIds | None) -> Callable[[Any, Any], dict[str, Any]]:
        shape = self.sample_shape()

        def py(i: np.ndarray, w: np.ndarray):
            return self.read_sample(int(i), _worker(w, ids), epoch)

        def read(i, w):
            out_type = tf.uint8 if shape is not None else tf.string
            sample, label, nbytes, error = tf.numpy_function(py, [i, w], [out_type, tf.int64, tf.int64, tf.string],
                                                             stateful=True, name="dnnbench_read_sample")
            sample.set_shape(shape if shape is not None else [])
            label.set_shape([])
            nbytes.set_shape([])
            error.set_shape([])
            return {"index": i, "data": sample, "labels": label, "nbytes": nbytes, "error": error}

        return read

    def _batch_fn(self, epoch: int, ids: WorkerIds | None) -> Callable[[Any, Any], dict[str, Any]]:
        shape = self.sample_shape()

        def py(idx: np.ndarray, w: np.ndarray):
            return self.read_batch(idx, _worker(w, ids), epoch)

        def read(idx, w):
            out = tf.numpy_function(py, [idx, w], [tf.uint8, tf.int64, tf.int64, tf.int64, tf.int64, tf.string],
                                    stateful=True, name="dnnbench_read_batch")
            data, offsets, labels, nbytes, fail_idx, fail_reason = out
            data.set_shape([None, *shape] if shape is not None else [None])
            for t in (offsets, labels, fail_idx, fail_reason):
                t.set_shape([None])
            nbytes.set_shape([])
            return {"data": data, "offsets": offsets, "labels": labels, "nbytes": nbytes,
                    "fail_index": fail_idx, "fail_reason": fail_reason}

        return read

    # -- main process ----------------------------------------------------------
    def to_batch(self, element: dict[str, Any]) -> Batch:
        """A pipeline element -> :class:`Batch` (a few scalars leave TensorFlow, not the data)."""
        if "fail_index" in element:  # read_unit batch
            failures = []
            if element["fail_index"].shape[0]:
                failures = [Failure(self.keys[i], r.decode("utf-8", "replace")) for i, r in
                            zip(element["fail_index"].numpy().tolist(), element["fail_reason"].numpy().tolist())]
            offsets = element["offsets"].numpy() if self.sample_shape() is None else None
            labels = element["labels"]
            return Batch(element["data"], labels, int(element["nbytes"]), int(labels.shape[0]), failures, offsets)
        nbytes = element["nbytes"].numpy()
        bad = nbytes < 0
        data, labels = element["data"], element["labels"]
        failures = []
        if bad.any():
            failures = [Failure(self.keys[i], r.decode("utf-8", "replace")) for i, r in
                        zip(element["index"].numpy()[bad].tolist(), element["error"].numpy()[bad].tolist())]
            keep = tf.constant(~bad)
            data, labels = tf.boolean_mask(data, keep), tf.boolean_mask(labels, keep)
        return Batch(data, labels, int(nbytes[~bad].sum()), int((~bad).sum()), failures)


@DATASETS.register("raw", framework="tensorflow", aliases=("PythonReadDataset",))
class RawBytesDataset(ImageFolderDataset):
    """One storage read per sample; the bytes are passed on undecoded."""

    def transform(self, data: bytes) -> np.ndarray:
        return np.frombuffer(data, dtype=np.uint8)


class ShardDataset(ImageFolderDataset):
    """``dataset.access: shards``: tar shards (one index row each) streamed through the storage layer.

    One epoch: the shard order is a seeded permutation per epoch (as PyTorch's ShardDataset),
    split into contiguous blocks over N = ``num_workers`` readers (one when N is 0); each
    reader is a generator stream that opens one shard at a time with :func:`iter_shard`
    (one recorded request per shard) and decodes its samples; ``interleave`` runs the N
    streams side by side, a ``shuffle`` buffer of ``dataset.shuffle_buffer`` samples mixes
    them, then ``batch`` and ``prefetch``. Every sample carries the storage bytes it took
    from its shard (tar headers and padding included), so an epoch's batches add up to the
    shards' sizes. A sample that cannot be decoded, or a shard that cannot be read, travels
    as a failure (its key and reason).
    """

    def __init__(self, index: SampleIndex, storage: Storage, config: Any, shuffle_buffer: int = 1000):
        super().__init__(index, storage, config)
        self.shuffle_buffer = shuffle_buffer

    def shard_order(self, seed: int, epoch: int) -> np.ndarray:
        """Shard indices of one epoch: the same seeded permutation as PyTorch's ShardDataset."""
        return np.random.default_rng([seed, epoch]).permutation(len(self.keys)).astype(np.int64)

    def read_shards(self, shards: list[int], epoch: int):
        """Yield one element per sample of ``shards`` (runs in a tf.data thread; never raises)."""
        shape = self.sample_shape()
        empty = np.zeros(shape, np.uint8) if shape is not None else b""
        for s in shards:
            shard = self.keys[s]
            try:
                for name, data, label, nbytes in iter_shard(self.storage, shard):
                    key = f"{shard}:{name}"
                    if self._builtin_raw:
                        yield {"key": key, "data": data, "labels": np.int64(label), "nbytes": np.int64(nbytes),
                               "error": b""}
                        continue
                    sample, reason = decode_timed(self.transform, data, None)
                    if reason:
                        yield {"key": key, "data": empty, "labels": np.int64(label), "nbytes": np.int64(-1),
                               "error": reason.encode("utf-8", "replace")}
                        continue
                    if shape is None and not isinstance(sample, bytes):
                        sample = np.asarray(sample, dtype=np.uint8).tobytes()
                    yield {"key": key, "data": sample, "labels": np.int64(label), "nbytes": np.int64(nbytes),
                           "error": b""}
            except Exception as e:  # a broken or unreachable shard is named, not a thread traceback
                reason = failures.read_failure(e, failures.BAD_SHARD)
                yield {"key": shard, "data": empty, "labels": np.int64(-1), "nbytes": np.int64(-1),
                       "error": reason.encode("utf-8", "replace")}
                if failures.is_fatal(reason):
                    return

    def pipeline(self, order: np.ndarray, epoch: int, plan: LoaderPlan) -> tf.data.Dataset:
        """The tf.data pipeline of one epoch over the shard indices in ``order``."""
        shape = self.sample_shape()
        spec = {"key": tf.TensorSpec([], tf.string),
                "data": tf.TensorSpec(shape, tf.uint8) if shape is not None else tf.TensorSpec([], tf.string),
                "labels": tf.TensorSpec([], tf.int64), "nbytes": tf.TensorSpec([], tf.int64),
                "error": tf.TensorSpec([], tf.string)}
        readers = max(1, plan.workers)
        order = order.tolist()
        blocks = [[order[j] for j in split(len(order), 0, 1, w, readers)] for w in range(readers)]

        def stream(w: Any):
            return self.read_shards(blocks[int(w)], epoch)

        calls = None if plan.num_parallel_calls is None else readers
        ds = tf.data.Dataset.range(readers).interleave(
            lambda w: tf.data.Dataset.from_generator(stream, output_signature=spec, args=(w,)),
            cycle_length=readers, block_length=1, num_parallel_calls=calls, deterministic=plan.deterministic)
        if self.shuffle_buffer > 1:
            ds = ds.shuffle(self.shuffle_buffer, seed=(plan.seed * 1_000_003 + epoch) % 2**31,
                            reshuffle_each_iteration=False)
        if plan.limit is not None:
            ds = ds.take(plan.limit)
        ds = ds.batch(plan.batch_size, drop_remainder=plan.drop_last)
        if plan.prefetch:
            ds = ds.prefetch(tf.data.AUTOTUNE if plan.prefetch == AUTOTUNE else plan.prefetch)
        return ds.with_options(_options(plan))

    def to_batch(self, element: dict[str, Any]) -> Batch:
        nbytes = element["nbytes"].numpy()
        bad = nbytes < 0
        data, labels = element["data"], element["labels"]
        failures = []
        if bad.any():
            failures = [Failure(k.decode("utf-8", "replace"), r.decode("utf-8", "replace")) for k, r in
                        zip(element["key"].numpy()[bad].tolist(), element["error"].numpy()[bad].tolist())]
            keep = tf.constant(~bad)
            data, labels = tf.boolean_mask(data, keep), tf.boolean_mask(labels, keep)
        return Batch(data, labels, int(nbytes[~bad].sum()), int((~bad).sum()), failures)


def _worker(stream: np.ndarray, ids: WorkerIds | None) -> int:
    if stream >= 0:
        return int(stream)
    return ids.current() if ids is not None else -1


def _failures(failed: list[tuple[int, str]]) -> tuple[np.ndarray, np.ndarray]:
    return (np.asarray([i for i, _ in failed], dtype=np.int64),
            np.asarray([r.encode("utf-8", "replace") for _, r in failed], dtype=object))


def _options(plan: LoaderPlan) -> tf.data.Options:
    """Pin tf.data to the plan: a private pool of ``workers`` threads (the default pool has
    one per core, which would cap reads in flight), and no parallelism or prefetching
    added behind the config's back."""
    opts = tf.data.Options()
    opts.deterministic = plan.deterministic
    opts.threading.private_threadpool_size = plan.threadpool_size
    opts.threading.max_intra_op_parallelism = 1
    opts.experimental_optimization.inject_prefetch = False
    opts.experimental_optimization.map_parallelization = False
    opts.autotune.enabled = AUTOTUNE in (plan.num_parallel_calls, plan.prefetch)
    return opts
