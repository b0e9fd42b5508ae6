"""Writing the dataset into the storage before a run: ``prepare`` (a synthetic set, or local
image folders with ``--from``), ``prepare --shards`` (packing tar shards), with the marks that
tell a complete dataset from one whose writing was interrupted (:mod:`dnnbench.data.prepared`).

One prepare per storage at a time on this machine; data present is never rewritten silently.
"""

from __future__ import annotations

import contextlib
from typing import Any

from dnnbench.config.loading import LoadedConfig
from dnnbench.data import prepared, shards, synthetic, upload
from dnnbench.run import generated
from dnnbench.errors import ConfigError
from dnnbench.events import Events
from dnnbench.recording.requests import RecorderSpec
from dnnbench.storage.base import Storage
from dnnbench.storage.factory import create_storage
from dnnbench.data.listing import list_dataset


def open_storage(cfg: Any, recorder: RecorderSpec | None = None, emulate: bool = True) -> Storage:
    """The configured storage; ``emulate=False`` skips latency emulation (dataset preparation)."""
    config = cfg.storage if emulate else cfg.storage.model_copy(update={"emulate": None})
    return create_storage(config, recorder=recorder)


def prepare_dataset(loaded: LoadedConfig, events: Events, force: bool = False,
                    source: list[str] | None = None, auto: bool = False) -> synthetic.PrepareStats | None:
    """Write the synthetic dataset of ``prepare:`` (or upload the local image folders
    ``source``) into the configured storage, creating an S3 bucket when
    ``storage.create_bucket`` is on. One prepare per storage at a time on this machine: a
    second one waits for the first, then finds the data present.

    Returns None (and says so, unless ``auto``) when the data is there already, prepared with
    the same parameters, and not ``force``.

    Raises:
        ConfigError: the data there was prepared with other parameters (and not ``force``).
    """
    cfg = loaded.config
    storage = open_storage(cfg, emulate=False)
    prefixes = cfg.storage.prefixes
    ensure_bucket = getattr(storage, "ensure_bucket", None)
    if cfg.storage.create_bucket and ensure_bucket is not None and ensure_bucket():
        events.notice(f"bucket created: {storage.label()}")
    wanted = _prepare_params(cfg, source)
    with prepared.turn(storage, events.warning):
        unfinished = prepared.incomplete(storage, prefixes)
        old = {prefix: prepared.recorded(storage, prefix) for prefix in prefixes}
        if unfinished:
            events.notice(f"an earlier prepare of {', '.join(unfinished)} did not finish: writing the dataset again")
        elif not force and all(exists(storage, pre) for pre in prefixes):
            _check_same_params(storage, old, wanted, auto)
            if not auto:
                events.notice(f"dataset already present in {storage.label()} ({', '.join(prefixes)}); "
                              "use --force to write it again")
            return None
        with prepared.preparing(storage, prefixes):
            result = _write_dataset(cfg, storage, source, events)
            for prefix in prefixes:
                _drop_stale(storage, prefix, old[prefix], wanted[prefix], events)
                prepared.record(storage, prefix, wanted[prefix])
        return result


def _prepare_params(cfg: Any, source: list[str] | None) -> dict[str, dict[str, Any]]:
    """What each prefix will hold: the synthetic set's parameters, or the folder uploaded there."""
    prefixes = cfg.storage.prefixes
    if source:
        folders = source * len(prefixes) if len(source) == 1 else source
        return {prefix: prepared.upload_params(folder) for prefix, folder in zip(prefixes, folders)}
    params = prepared.synthetic_params if cfg.prepare.image_folders else \
        lambda p, seed: generated.generated_params(cfg, seed)
    return {prefix: params(cfg.prepare, cfg.prepare.seed + 1000 * i) for i, prefix in enumerate(prefixes)}


def _check_same_params(storage: Storage, old: dict[str, Any], wanted: dict[str, Any], auto: bool) -> None:
    """The data present was prepared as the config asks (or its parameters were not recorded).

    Raises:
        ConfigError: it was prepared with other parameters.
    """
    for prefix, params in wanted.items():
        diff = prepared.differences(old[prefix], params) if old[prefix] else []
        if diff:
            raise ConfigError(f"the dataset under {prefix or '(root)'!r} in {storage.label()} was prepared with "
                              f"other parameters ({'; '.join(diff)}); it is not replaced silently",
                              reference="--from" if params.get("kind") == "upload" else "prepare",
                              hint="write it again with `benchmark.py prepare --force --config FILE` (the old "
                                   "set's extra objects are deleted), or point storage.prefixes elsewhere"
                                   + ("; prepare.auto never rewrites data" if auto else ""))


def _drop_stale(storage: Storage, prefix: str, old: dict[str, Any] | None, new: dict[str, Any],
                events: Events) -> None:
    """Delete the objects of the old synthetic set that the new one did not write (prepare --force)."""
    stale = prepared.stale_keys(old, new, prefix)
    for key in stale:
        with contextlib.suppress(FileNotFoundError):
            storage.delete(key)
    if stale:
        events.notice(f"{len(stale):,} objects of the earlier dataset under {prefix or '(root)'!r} deleted "
                      "(the new one does not have them)")


def _write_dataset(cfg: Any, storage: Storage, source: list[str] | None,
                   events: Events) -> synthetic.PrepareStats:
    if source:
        return _upload_folders(cfg, storage, source, events)
    p, prefixes = cfg.prepare, cfg.storage.prefixes
    if not p.image_folders:
        return _generate_files(cfg, storage, events)
    total = p.classes * p.images_per_class * len(prefixes)
    events.phase_start("prepare")
    jobs = [lambda progress, i=i, prefix=prefix: synthetic.generate(
        storage, prefix, p.classes, p.images_per_class, width=tuple(p.width), height=tuple(p.height),
        fmt=p.format, quality=p.jpeg_quality, seed=p.seed + 1000 * i, workers=p.workers, progress=progress)
        for i, prefix in enumerate(prefixes)]
    return _write_all(events, jobs, f"prepare {total:,} {p.format} images", total, "images",
                      f"written to {storage.label()}")


def _generate_files(cfg: Any, storage: Storage, events: Events) -> synthetic.PrepareStats:
    """A format dataset (DLIO's size model, ``prepare.layout``) under every prefix."""
    p, prefixes = cfg.prepare, cfg.storage.prefixes
    events.phase_start("prepare")
    jobs = [lambda progress, i=i, prefix=prefix: generated.write_prefix(cfg, storage, prefix, p.seed + 1000 * i,
                                                                       progress)
            for i, prefix in enumerate(prefixes)]
    return _write_all(events, jobs, f"prepare {generated.total_files(p) * len(prefixes):,} "
                      f"{generated.format_name(p)} files ({p.layout} layout, {p.samples_per_file} samples each)",
                      generated.total_files(p) * len(prefixes), "files", f"written to {storage.label()}")


def _write_all(events: Events, jobs: list, title: str, total: int, unit: str, where: str) -> synthetic.PrepareStats:
    """Run write jobs (each takes a progress callback, returns PrepareStats) under one progress bar."""
    events.task_start(title, total=total, unit=unit)
    stats = []
    try:
        for job in jobs:
            stats.append(job(lambda done, n: events.task_advance(1, n)))
    finally:
        events.task_end()
    result = synthetic.PrepareStats(sum(s.images for s in stats), sum(s.bytes for s in stats),
                                    sum(s.seconds for s in stats))
    events.phase_end("prepare", result.seconds,
                     f"({result.images:,} {unit}, {result.bytes / 1e6:.1f} MB, {result.MB_per_s:.1f} MB/s "
                     f"= {result.MiB_per_s:.1f} MiB/s {where})")
    return result


def pack_shards(loaded: LoadedConfig, events: Events, force: bool = False) -> shards.PackStats | None:
    """``prepare --shards``: pack the dataset in the configured storage (listed first) into tar
    shards under ``shards.prefix``, in a seeded random sample order, and report MB/s."""
    cfg = loaded.config
    storage = open_storage(cfg, emulate=False)
    with prepared.turn(storage, events.warning):
        return _pack(cfg, storage, events, force)


def _pack(cfg: Any, storage: Storage, events: Events, force: bool) -> shards.PackStats | None:
    sh = cfg.shards
    if prepared.incomplete(storage, [sh.prefix]):
        events.notice(f"an earlier pack under {sh.prefix!r} did not finish: packing again")
    elif not force and exists(storage, sh.prefix):
        events.notice(f"shards already present under {sh.prefix!r} in {storage.label()}; use --force to pack again")
        return None
    index, _ = list_dataset(storage, cfg.storage.prefixes, cfg.execution.listing_workers, cfg.dataset.extensions,
                            cfg.dataset.labels)
    if cfg.dataset.max_samples:
        index = index.subset(cfg.dataset.max_samples, cfg.execution.seed)
    events.phase_start("pack shards")
    events.task_start(f"pack {len(index):,} samples", total=len(index), unit="samples")
    try:
        with prepared.preparing(storage, [sh.prefix]):
            stats = shards.pack(storage, index, sh.prefix, max_bytes=sh.max_bytes, max_samples=sh.max_samples,
                                seed=sh.seed, progress=lambda done, n: events.task_advance(1, n))
    finally:
        events.task_end()
    events.phase_end("pack shards", stats.seconds,
                     f"({stats.samples:,} samples in {stats.shards} shards, {stats.bytes_written / 1e6:.1f} MB, "
                     f"{stats.MB_per_s:.1f} MB/s written to {storage.label()} under {sh.prefix!r})")
    return stats


def _upload_folders(cfg: Any, storage: Storage, source: list[str], events: Events) -> synthetic.PrepareStats:
    """``prepare --from DIR``: one DIR for every prefix, or one DIR per prefix (in order).

    Raises:
        ConfigError: the number of folders matches neither.
        DataError: a folder is missing or holds no ``<class>/<file>`` samples.
    """
    prefixes = cfg.storage.prefixes
    if len(source) not in (1, len(prefixes)):
        raise ConfigError(f"{len(source)} --from folders for {len(prefixes)} prefixes", reference="--from",
                          hint="give one folder (uploaded under every prefix) or one per storage.prefixes entry")
    trees = [upload.scan(d, cfg.dataset.extensions) for d in source]
    pairs = list(zip(prefixes, trees * len(prefixes) if len(trees) == 1 else trees))
    total = sum(len(t.files) for _, t in pairs)
    events.phase_start("prepare")
    for tree in trees:
        if tree.skipped:
            events.notice(f"{tree.skipped} files in {tree.root} skipped (top level, hidden, or extension "
                          f"not in {cfg.dataset.extensions})")
    jobs = [lambda progress, prefix=prefix, tree=tree: upload.upload(storage, prefix, tree, cfg.prepare.workers,
                                                                     progress=progress)
            for prefix, tree in pairs]
    return _write_all(events, jobs, f"upload {total:,} files", total, "files", f"uploaded to {storage.label()}")


def exists(storage: Storage, prefix: str) -> bool:
    """Is anything stored under ``prefix`` (False when its folder or bucket is missing)?"""
    try:
        return storage.exists(prefix)
    except (FileNotFoundError, NotADirectoryError):
        return False
