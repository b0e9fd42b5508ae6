"""The probe's view of a dataset of files holding many samples (``dataset.format``: npz, hdf5,
tfrecord, parquet...), read as the run's loaders read it (:mod:`dnnbench.formats.read`):

- **random** access: one request per sample, a ranged GET of its bytes (its file's index says
  where; the files are indexed as a random-access run's list phase indexes them); the units the
  storage levels GET are those ranges, and decoding a sample is the format's ``read_sample``;
- **sequential** access: one GET per file, its samples decoded in file order (``read_file``);
  the units are whole files, and a file's decode is shared by its samples. With
  ``dataset.sample_shuffle`` on, a worker holds a whole file's samples before it hands any on.

The model sees random access as one request per sample (``samples_per_request`` 1, the mean
range's bytes) and sequential access as ``files``: requests of many samples, like shards.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from dnnbench.config.loading import LoadedConfig
from dnnbench.errors import DataError

#: samples (random) or files (sequential) whose decode is timed
DECODE_SAMPLES = 24
DECODE_FILES = 6
#: bytes of whole files read to time their decode (a file of a large sample is timed alone)
DECODE_FILE_BYTES = 64 * 2**20
#: the first file is decoded once untimed first when it is no larger than this (a large file's
#: first-use cost is lost in its decode)
WARM_FILE_BYTES = 16 * 2**20

#: a unit a loader worker requests: a key (a GET of the whole object) or (key, offset, length)
Unit = Any


def open_files(loaded: LoadedConfig, storage: Any) -> tuple[list[Unit], dict[str, Any]]:
    """The request units of an epoch and the dataset's figures (``files``: the file index, its
    ``records`` attached: where every sample is).

    Raises:
        DataError: no file holds a sample, or a file is not of the format (it names it).
    """
    from dnnbench.data.layouts import list_layout
    from dnnbench.data.records import RecordIndex, build_records
    from dnnbench.formats.read import make_format
    from dnnbench.formats.select import extensions

    cfg = loaded.config
    files, _ = list_layout(storage, cfg.dataset, cfg.storage.prefixes, cfg.execution.listing_workers,
                           extensions(cfg.dataset))
    if cfg.dataset.max_samples:
        files = files.subset(cfg.dataset.max_samples, cfg.execution.seed)
    found, stats = build_records(storage, make_format(cfg.dataset), files.keys, files.sizes,
                                 cfg.execution.listing_workers)
    if stats.unreadable and cfg.dataset.on_error != "skip":
        key, why = stats.unreadable[0]
        raise DataError(f"{key} is not a {cfg.dataset.format} file holding samples: {why}", reference=key,
                        hint="fix or remove the file, or check dataset.format_options")
    files = files.take([i for i, f in enumerate(found) if f is not None]) if stats.unreadable else files
    records = RecordIndex.from_files([f for f in found if f is not None])
    if not len(records):
        raise DataError(f"the {len(files)} files listed hold no sample", reference="storage.prefixes",
                        hint=f"check dataset.format ({cfg.dataset.format}) and dataset.format_options")
    files.records = records  # type: ignore[attr-defined]
    fs = cfg.storage.client == "fs"
    if cfg.dataset.access == "random":
        units: list[Unit] = [(files.keys[f], int(o), int(n)) for f, o, n in
                             zip(records.file.tolist(), records.offset.tolist(), records.length.tolist())]
        facts = {"access": "random", "samples": len(records), "requests": len(records),
                 "bytes": int(records.length.sum()), "fs": fs}
    else:
        units = list(files.keys)
        facts = {"access": "files", "samples": len(records), "requests": len(files),
                 "bytes": int(files.total_bytes), "fs": fs,
                 "hold": cfg.dataset.sample_shuffle != "off"}
    facts["files"] = files
    return units, facts


def decode_seconds(loaded: LoadedConfig, storage: Any, facts: dict[str, Any]) -> float:
    """CPU per sample to decode as a loader worker does: random access, the format's
    ``read_sample`` on sample ranges spread over the dataset; sequential, ``read_file`` over
    whole files (up to ``DECODE_FILES`` files, ``DECODE_FILE_BYTES`` bytes), per sample.

    The first unit is decoded once untimed (a process's first decode pays its first use of the
    format's code: measured, 2.7 ms for an npz file whose later decodes took 1.0-1.9 ms, which a
    worker pays once, in its start), and the median unit's CPU per sample is kept (a moment when
    other work took the core does not move it)."""
    from dnnbench.formats.base import as_file
    from dnnbench.formats.read import decode_spec, make_format

    fmt, spec = make_format(loaded.config.dataset), decode_spec(loaded.config.dataset)
    files = facts["files"]
    rec = files.records
    per_sample: list[float] = []
    if facts["access"] == "random":
        picks = np.linspace(0, len(rec) - 1, min(DECODE_SAMPLES, len(rec))).astype(int).tolist()
        for n, i in enumerate([picks[0], *picks]):
            f = int(rec.file[i])
            data = storage.get_range(files.keys[f], int(rec.offset[i]), int(rec.length[i]))
            c0 = time.thread_time()
            fmt.read_sample(data, rec.metas[f], int(rec.item[i]), spec)
            if n:
                per_sample.append(time.thread_time() - c0)
        return float(np.median(per_sample)) if per_sample else 0.0
    counts = rec.counts(len(files))
    read = 0
    for f in range(len(files)):
        if per_sample and (f >= DECODE_FILES or read + int(files.sizes[f]) > DECODE_FILE_BYTES):
            break
        data, _ = storage.get(files.keys[f])
        read += len(data)
        for timed in (False, True) if f == 0 and len(data) <= WARM_FILE_BYTES else (True,):
            c0 = time.thread_time()
            n = sum(1 for _ in fmt.read_file(as_file(data), spec))
            if timed and (n or int(counts[f])):
                per_sample.append((time.thread_time() - c0) / (n or int(counts[f])))
    return float(np.median(per_sample)) if per_sample else 0.0
