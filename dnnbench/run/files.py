"""The list phase of a dataset of files holding many samples (``dataset.format`` whose format is
not one object per sample): after listing the files, random access locates each file's samples
(the format's index: a few recorded ranged GETs per file, once, in the main process, under
epoch ``INDEX_EPOCH`` so that they are no training read), and hangs the sample index from the
file index as ``index.records``. Sequential access reads files whole and needs no index.
"""

from __future__ import annotations

from typing import Any

from dnnbench import failures
from dnnbench.data.index import SampleIndex
from dnnbench.errors import DataError
from dnnbench.events import Events
from dnnbench.recording.requests import get_recorder
from dnnbench.storage.base import Storage

#: the epoch the requests that locate samples inside files are recorded under (not a training read)
INDEX_EPOCH = -3


def locate_samples(storage: Storage, cfg: Any, index: SampleIndex, events: Events, skipped: Any,
                   facts: Any) -> SampleIndex:
    """Random access over files: find every file's samples; files that cannot be indexed fail
    the run (``on_error: fail``) or are left out and counted (``skip``).

    Returns the file index (without the left-out files), ``records`` attached.

    Raises:
        DataError: a file is not of the format (on_error fail), or no file holds a sample.
    """
    from dnnbench.data.records import RecordIndex, build_records
    from dnnbench.formats.read import make_format

    fmt = make_format(cfg.dataset)
    rec = get_recorder(storage.recorder_spec)
    before = rec.epoch if rec is not None else 0
    if rec is not None:
        rec.epoch = INDEX_EPOCH
    try:
        found, stats = build_records(storage, fmt, index.keys, index.sizes, cfg.execution.listing_workers)
    finally:
        if rec is not None:
            rec.epoch = before
    index = _drop_unreadable(index, found, stats.unreadable, cfg.dataset, skipped, events)
    index.records = RecordIndex.from_files([f for f in found if f is not None])  # type: ignore[attr-defined]
    if not len(index.records):  # type: ignore[attr-defined]
        raise DataError(f"the {len(index)} files listed hold no sample", reference="storage.prefixes",
                        hint=f"check dataset.format ({cfg.dataset.format}) and dataset.format_options")
    facts.add_phase({"samples_listed": stats.samples, "bytes_indexed": stats.bytes})
    events.notice(f"{stats.samples:,} samples located in {len(index):,} {cfg.dataset.format} files "
                  f"({stats.requests:,} ranged reads, {stats.bytes / 2**20:.2f} MiB, {stats.seconds:.2f} s)")
    return index


def _drop_unreadable(index: SampleIndex, found: list, unreadable: list[tuple[str, str]], dataset: Any,
                     skipped: Any, events: Events) -> SampleIndex:
    """The file index without the files that could not be indexed (named and counted), or an error."""
    if not unreadable:
        return index
    key, why = unreadable[0]
    if dataset.on_error != "skip":
        raise DataError(f"{key} is not a {dataset.format} file holding samples: {why}", reference=key,
                        hint="fix or remove the file, check dataset.format_options, or set dataset.on_error: "
                             "skip to leave such files out")
    for k, w in unreadable:
        skipped.listed(k, f"{failures.BAD_READ}{w}")
    events.warning(f"{len(unreadable)} files left out (dataset.on_error: skip), e.g. {key}: {why}")
    return index.take([i for i, f in enumerate(found) if f is not None])
