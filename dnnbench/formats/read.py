"""Reading samples of a format through storage, the two ways real loaders do (framework-neutral:
the PyTorch and TensorFlow datasets both call these):

- **a sample at a time** (:func:`read_record`, random access): one request per sample, a ranged
  GET of its bytes (a plain GET when its range is the whole file, or when ``ranges`` is off:
  DLIO's readers read the whole file for every sample), then the format decodes it; the decode
  time goes into the request's row;
- **a file at a time** (:func:`iter_file`, sequential access): one streamed GET per file, its
  samples decoded in file order; each sample carries the storage bytes that arrived since the
  one before (the last one the rest), so a file's samples add up to its size.

The orders of an epoch (:func:`file_order`, :func:`sample_order`) are seeded per epoch, the same
in every process and framework (DLIO's ``file_shuffle`` and ``sample_shuffle``).
"""

from __future__ import annotations

import time
from typing import Any, Iterator

import numpy as np

from dnnbench import failures
from dnnbench.formats.base import DecodeSpec, Format
from dnnbench.recording.requests import COLUMNS
from dnnbench.storage.base import Storage

#: the decode time's place in a request row
DECODE_S = COLUMNS.index("decode_s")


def read_record(storage: Storage, fmt: Format, key: str, offset: int, length: int, whole: bool, meta: Any,
                item: int, decode: DecodeSpec) -> tuple[Any, int | None, int, str, list | None]:
    """Read and decode one sample.

    Args:
        whole: read the whole object (a GET) rather than the range (the range is the whole file,
            or ranged reads are off); ``offset``/``length`` then only say which bytes to decode.

    Returns:
        (sample or None, its label or None, bytes storage returned, "" or the failure reason,
        the request's record row or None). Never raises: loader workers hand the reason to the main process, which names the key.
    """
    try:
        if whole:
            data, row = storage.get(key)
            nbytes = len(data)
            if (offset, length) != (0, nbytes):
                data = data[offset:offset + length]
        else:
            data, row = storage.get_range_row(key, offset, length)
            nbytes = len(data)
            if nbytes != length:
                raise OSError(f"asked for {length:,} bytes at {offset:,}, got {nbytes:,} (changed since listing?)")
    except Exception as e:  # noqa: BLE001 - named in the main process, no worker traceback
        return None, None, 0, failures.read_failure(e), None
    t0 = time.perf_counter()
    try:
        sample, label = fmt.read_sample(data, meta, item, decode)
    except (ValueError, EOFError, OSError) as e:
        return None, None, nbytes, failures.BAD_DECODE + f"{type(e).__name__}: {e}", row
    if row is not None:
        row[DECODE_S] = time.perf_counter() - t0
    return sample, label, nbytes, "", row


def iter_file(storage: Storage, fmt: Format, key: str, decode: DecodeSpec,
              rng: np.random.Generator | None = None) -> Iterator[tuple[Any, int | None, int]]:
    """The samples of one file, streamed: yields (sample, label or None, storage bytes it took).

    With ``rng`` the file's samples are held and handed on in a shuffled order (DLIO's
    ``sample_shuffle`` within a file); the bytes stay with the samples they came with.

    Raises:
        Exception: whatever the read or the format raised (the caller names the file).
    """
    stream = storage.open_stream(key)
    try:
        held: list[list[Any]] = []
        counted = 0
        for sample, label in fmt.read_file(stream, decode):
            held.append([sample, label, stream.nbytes - counted])
            counted = stream.nbytes
            if rng is None and len(held) > 1:
                yield tuple(held.pop(0))
        stream.drain()
        if held:
            held[-1][2] += stream.nbytes - counted
        if rng is not None:
            held = [held[i] for i in rng.permutation(len(held))]
        for h in held:
            yield tuple(h)
    finally:
        stream.close()


def make_format(dataset: Any) -> Format:
    """The format of ``dataset.format`` with its validated ``dataset.format_options``.

    Raises:
        PluginError: the format is not registered.
    """
    from dnnbench.registry import FORMATS

    spec = FORMATS.spec_of(dataset.format)
    cls = FORMATS.get(dataset.format)
    return cls(options=spec.parse_options(dataset.format_options) if spec is not None else None)


def decode_spec(dataset: Any) -> DecodeSpec:
    """How samples are decoded (``dataset.decode``, ``dataset.image_dimension``)."""
    return DecodeSpec(dataset.decode, tuple(dataset.image_dimension))


def file_order(n: int, shuffle: bool, seed: int, epoch: int) -> np.ndarray:
    """The files of an epoch, in the order they are read: listing order, or a seeded permutation
    per epoch (``dataset.file_shuffle``), before the split by rank and worker."""
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    return np.random.default_rng([seed, epoch, 1]).permutation(n).astype(np.int64)


def sample_rng(shuffle: bool, seed: int, epoch: int, file: int) -> np.random.Generator | None:
    """The RNG shuffling the samples within ``file`` in ``epoch`` (``dataset.sample_shuffle``), or None."""
    return np.random.default_rng([seed, epoch, 2, file]) if shuffle else None


def sample_key(key: str, item: int) -> str:
    """How a sample inside a file is named in failures and reports: ``<file key>:<item>``."""
    return f"{key}:{item}"
