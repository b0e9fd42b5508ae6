"""Runs the phases of a benchmark (prepare, list, train, report), timing and
recording each, and always writes what it measured, even when a phase fails.

Knows plugins only by registry name; imports a framework only when a run needs it.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import json
import os
import platform
import socket
import sys
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import yaml

from dnnbench import __version__, distributed, signals
from dnnbench.config.loading import LoadedConfig
from dnnbench.config.plugins import check_plugin_names, load_plugins
from dnnbench.config.redact import redact, secret_values
from dnnbench.data import manifest, shards, synthetic, upload
from dnnbench import failures
from dnnbench.data import prepared
from dnnbench.errors import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, BenchError, ConfigError, DataError,
                             RecordingError, RunFailed, SampleError)
from dnnbench.events import Events, NullEvents
from dnnbench.frameworks import FRAMEWORK_RUNNERS
from dnnbench.results import append_summary, check_summary, create_run_dir, write_row_csv
from dnnbench.recording.requests import RecorderSpec, flush_current
from dnnbench.recording.steps import EpochRecord, StepRecorder
from dnnbench.recording.system import SystemSampler
from dnnbench.reporting.aggregate import aggregate
from dnnbench.reporting.identity import run_identity
from dnnbench.reporting.report import RunFacts, build_reports, status_row
from dnnbench.storage import pagecache
from dnnbench.storage import Storage, create_storage
from dnnbench.data.listing import ListingStats, list_dataset


T = TypeVar("T")


@dataclass
class RunOutcome:
    row: dict[str, Any]
    run_dir: Path
    exit_code: int
    error: BaseException | None = None


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
        elif not force and all(_exists(storage, pre) for pre in prefixes):
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
    return {prefix: prepared.synthetic_params(cfg.prepare, cfg.prepare.seed + 1000 * i)
            for i, prefix in enumerate(prefixes)}


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
                              reference="prepare" if params.get("kind") == "synthetic" else "--from",
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
    total = p.classes * p.images_per_class * len(prefixes)
    events.phase_start("prepare")
    jobs = [lambda progress, i=i, prefix=prefix: synthetic.generate(
        storage, prefix, p.classes, p.images_per_class, width=tuple(p.width), height=tuple(p.height),
        fmt=p.format, quality=p.jpeg_quality, seed=p.seed + 1000 * i, workers=p.workers, progress=progress)
        for i, prefix in enumerate(prefixes)]
    return _write_all(events, jobs, f"prepare {total:,} {p.format} images", total, "images",
                      f"written to {storage.label()}")


#: kept for callers of the earlier names
PREPARING = prepared.PREPARING
incomplete = prepared.incomplete


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
    if incomplete(storage, [sh.prefix]):
        events.notice(f"an earlier pack under {sh.prefix!r} did not finish: packing again")
    elif not force and _exists(storage, sh.prefix):
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


class Executor:
    """One benchmark run from a validated config."""

    def __init__(self, loaded: LoadedConfig, events: Events | None = None, run_id: str | None = None,
                 argv: list[str] | None = None, tags: dict[str, Any] | None = None):
        self.loaded = loaded
        self.cfg = loaded.config
        self.events = events or NullEvents()
        self.run_id = run_id
        self.argv = argv or []
        self.tags = tags or {}  # sweep_id / variant / repeat (dnnbench.multirun), into the summary row
        self._cache_warned = False
        self._pending_error: BaseException | None = None
        self._skipped: list[tuple[int | None, str, str]] = []  # (epoch, key, reason); None: at listing
        self._per_epoch: int | None = None
        self._runner: Any = None
        self._phase_name = "list"
        self.dist = distributed.DistInfo()
        self.group: distributed.Group | None = None

    def run(self) -> RunOutcome:
        cfg = self.cfg
        load_plugins(self.loaded, self.events)
        check_plugin_names(cfg)
        self.dist = distributed.detect()
        if self.dist.enabled:
            if cfg.framework.name != "pytorch":
                raise ConfigError("multi-rank runs (torchrun) need framework.name: pytorch",
                                  reference="framework.name")
            self.group = distributed.Group(self.dist, _device_kind(cfg))
            if not self.dist.is_main:
                self.events = NullEvents()  # rank 0 speaks for the run
            try:
                return self._run_rank()
            finally:
                self.group.close()
        return self._run_rank()

    def _prepare_if_needed(self, storage: Storage) -> None:
        cfg = self.cfg
        try:
            storage.check()
        except DataError:  # a missing directory or bucket is what prepare.auto creates
            if not cfg.prepare.auto:
                raise
        if not cfg.prepare.auto:
            return
        if not all(_exists(storage, p) for p in cfg.storage.prefixes) or incomplete(storage, cfg.storage.prefixes):
            self.events.notice("dataset not found or incomplete: generating it (prepare.auto is on)")
        prepare_dataset(self.loaded, self.events, auto=True)  # present: checks it was prepared as asked
        if cfg.dataset.access == "shards" and (not _exists(storage, cfg.shards.prefix)
                                              or incomplete(storage, [cfg.shards.prefix])):
            self.events.notice("shards not found or incomplete: packing them (prepare.auto is on)")
            pack_shards(self.loaded, self.events)

    def _run_rank(self) -> RunOutcome:
        cfg = self.cfg
        signals.reset()
        storage = open_storage(cfg)
        # multi-rank: each start-up step ends in an agreement, so a failure on one rank (rank 0's
        # prepare, a missing dataset) ends every rank at once with its error, none left waiting
        self._on_every_rank(lambda: self._prepare_if_needed(storage) if self.dist.is_main else None)
        self._on_every_rank(lambda: self._check_dataset(storage))
        self._on_every_rank(lambda: self._check_outputs() if self.dist.is_main else None)
        run_dir = self._run_dir()
        work_dir = run_dir / f"rank-{self.dist.rank}" if self.dist.enabled else run_dir
        work_dir.mkdir(exist_ok=True)
        spec = RecorderSpec(str(work_dir / ".requests"), cfg.metrics.requests, cfg.metrics.request_sample_rate,
                            cfg.execution.seed)
        storage = open_storage(cfg, spec)
        facts = RunFacts(run_id=run_dir.name, run_dir=work_dir, started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                         identity=self._identity(storage), t0=time.perf_counter(),
                         warmup_steps=cfg.training.warmup_steps, ttfb_reason=storage.ttfb_reason,
                         request_mode=cfg.metrics.requests)
        system = SystemSampler(cfg.metrics.system_interval_s).start()
        facts.system = system
        self._runner = None
        self._phase_name = "list"
        exit_code = EXIT_OK
        try:
            self._phases(storage, facts)
        except BaseException as e:  # noqa: BLE001 - every way a run ends is recorded; see _stopped
            exit_code = self._stopped(facts, e)
        return self._finish(facts, storage, system, run_dir, exit_code)

    def _phases(self, storage: Storage, facts: RunFacts) -> None:
        """list, train, inference, checkpoint: whichever the config asks for, in that order."""
        cfg = self.cfg
        index = self._list(storage, facts)
        phases = cfg.execution.phases
        eval_index = None
        if phases.inference:
            index, eval_index = self._holdout(storage, index)
        self._phase_name = "train"
        if phases.train or phases.inference or phases.checkpoint:
            self._runner = runner = self._make_runner(index, storage)
            facts.identity["workers"] = cfg.framework.num_workers
        if phases.train:
            self._train(runner, storage, index, facts, StepRecorder(facts.steps, facts.epochs))
        if phases.inference:
            self._phase_name = "inference"
            self._phase(facts, "inference", lambda: runner.infer(eval_index),
                        lambda r: f"({r['infer_samples']:,} held-out samples, accuracy "
                                  f"{r['accuracy_percent'] or 0:.1f} %, {r['infer_samples_per_s'] or 0:,.0f} "
                                  "samples/s)")
        if phases.checkpoint:
            self._phase_name = "checkpoint"
            rank = f"-rank{self.dist.rank}" if self.dist.enabled else ""
            key = "/".join(p for p in (cfg.checkpoint.prefix.strip("/"), f"{facts.run_id}{rank}.ckpt") if p)
            self._phase(facts, "checkpoint", lambda: runner.checkpoint(key),
                        lambda r: f"({r['checkpoint_bytes'] / 1e6:.1f} MB: save "
                                  f"{r['checkpoint_save_MB_per_s'] or 0:.1f} MB/s, load "
                                  f"{r['checkpoint_load_MB_per_s'] or 0:.1f} MB/s, {r['checkpoint_verified']})")
            if facts.extra.get("checkpoint_verified") != "ok":
                raise RunFailed("the checkpoint read back differs from the one written",
                                reference=key, hint="the storage returned other bytes than it stored")

    def _stopped(self, facts: RunFacts, e: BaseException) -> int:
        """Record how the phases ended early; returns the exit code.

        Ctrl-C and SIGTERM (errors.Interrupted is a KeyboardInterrupt) are an interruption, and
        so is any error once a stop signal has arrived: a SIGTERM to the whole process group
        (Slurm, systemd, ``kill -TERM -PGID``, torchrun) ends the loader workers too, and their
        death is the stop's doing, not a failure."""
        phase = self._phase_name
        if isinstance(e, KeyboardInterrupt) or (isinstance(e, Exception) and signals.stop_requested()):
            facts.status, facts.failed_phase, facts.reason = "interrupted", phase, "interrupted by the user"
            return EXIT_INTERRUPTED
        if not isinstance(e, Exception):  # SystemExit and the like: not ours to record
            raise e
        facts.status, facts.failed_phase = "failed", phase
        facts.reason = str(e) if isinstance(e, BenchError) else f"{type(e).__name__}: {e}"
        self._pending_error = e
        return e.exit_code if isinstance(e, BenchError) else EXIT_FAILED

    def _finish(self, facts: RunFacts, storage: Storage, system: SystemSampler, run_dir: Path,
                exit_code: int) -> RunOutcome:
        """Stop the loader and the samplers, then write the report, with stop signals held: one
        that arrives meanwhile marks the run interrupted and the report is still written; a second
        one, or a report that cannot be written (a full disk), leaves the smallest record: the
        status row, with the temporary files removed."""
        with signals.held() as held:
            try:
                if self._close_run(facts, system) and exit_code == EXIT_OK:
                    exit_code = EXIT_FAILED
                row = self._report(facts, storage, self._runner, held)
                if self.dist.enabled:
                    row = self._aggregate_ranks(row, run_dir)
            except KeyboardInterrupt:  # a second stop signal: the user insists
                facts.status, facts.failed_phase = "interrupted", "report"
                facts.reason = "interrupted by the user while the report was written"
                row = self._last_record(facts)
            except Exception as e:  # noqa: BLE001 - a report that cannot be written still leaves its status row
                error = _report_error(e, facts.run_dir)
                facts.status, facts.failed_phase, facts.reason = "failed", "report", str(error)
                row = self._last_record(facts)
                if self._pending_error is not None:  # the run's own error is the message; say this too
                    self.events.warning(str(error))
                self._pending_error = self._pending_error or error
                exit_code = exit_code if exit_code != EXIT_OK else error.exit_code
        if facts.status == "interrupted":
            exit_code = EXIT_INTERRUPTED
        return RunOutcome(row, run_dir, exit_code, self._pending_error)

    def _close_run(self, facts: RunFacts, system: SystemSampler) -> bool:
        """Stop the loader (its workers write their request rows as they end) and the samplers.
        Returns True when this process's request rows could not be written (the run failed)."""
        if facts.train_start is not None and facts.train_end is None:
            facts.train_end = time.perf_counter()
        if self._runner is not None:
            try:
                self._runner.close()
            except Exception:  # noqa: BLE001 - closing must not hide the result
                pass
        system.stop()
        try:
            flush_current()
        except RecordingError as e:  # a full disk: the run cannot be measured honestly
            if facts.status == "ok":
                facts.status, facts.failed_phase, facts.reason = "failed", "report", str(e)
                self._pending_error = RunFailed(str(e), reference=self.cfg.metrics.output_dir,
                                                hint=failures.DISK_HINT)
                return True
        return False

    def _last_record(self, facts: RunFacts) -> dict[str, Any]:
        """The smallest record of a run whose report could not be written: its temporary files
        removed (they may hold the space it needs), then its status row and counted totals in
        the run's summary.csv and results/summary.csv, as far as either can be written."""
        with signals.ignored():
            _cleanup_request_parts(facts.run_dir)
            row = self._redacted(status_row(facts))
            if self.dist.enabled:
                row["rank"] = self.dist.rank
            with contextlib.suppress(OSError):
                write_row_csv(facts.run_dir / "summary.csv", row)
            if self.dist.is_main:
                try:
                    append_summary(self.cfg.metrics.output_dir, row)
                except (OSError, BenchError) as e:
                    self.events.warning(f"the status row could not be added to results/summary.csv: {e}")
        return row

    def _on_every_rank(self, work: Callable[[], T]) -> T:
        """``work()``; multi-rank, then every rank learns whether it failed anywhere and, if so,
        raises that error (see :meth:`distributed.Group.each`)."""
        return self.group.each(work) if self.dist.enabled else work()

    def _check_dataset(self, storage: Storage) -> None:
        """The storage answers and holds the dataset (or its shards).

        Raises:
            DataError: nothing is stored under a configured prefix.
        """
        cfg = self.cfg
        storage.check()
        wanted = [cfg.shards.prefix] if cfg.dataset.access == "shards" else cfg.storage.prefixes
        missing = [p for p in wanted if not _exists(storage, p)]
        if missing:
            raise DataError(f"nothing stored under prefix {missing[0] or '(root)'!r} in {storage.label()}",
                            reference="shards.prefix" if cfg.dataset.access == "shards" else "storage.prefixes",
                            hint="fix the prefix, or create the dataset with `benchmark.py prepare --config FILE`"
                                 + (" and pack it with `prepare --shards`" if cfg.dataset.access == "shards" else ""))
        unfinished = incomplete(storage, wanted)
        if unfinished:
            what = "packing the shards" if cfg.dataset.access == "shards" else "preparing the dataset"
            raise DataError(f"the data under prefix {unfinished[0] or '(root)'!r} in {storage.label()} is incomplete: "
                            f"{what} was interrupted or failed",
                            reference="shards.prefix" if cfg.dataset.access == "shards" else "storage.prefixes",
                            hint="write it again with `benchmark.py prepare --config FILE`"
                                 + (" --shards" if cfg.dataset.access == "shards" else ""))

    def _check_outputs(self) -> None:
        """Before anything runs: the manifest and results/summary.csv can be written without
        writing over a file dnnbench did not write.

        Raises:
            ConfigError: naming the field or path at fault.
        """
        cfg = self.cfg
        if cfg.dataset.manifest and cfg.dataset.access != "shards":
            manifest.check_target(cfg.dataset.manifest)
        check_summary(cfg.metrics.output_dir)

    def _run_dir(self) -> Path:
        """Rank 0 creates the run directory (never reused); the other ranks learn its name."""
        cfg = self.cfg
        if not self.dist.enabled:
            return create_run_dir(cfg.metrics.output_dir, self.run_id, self.loaded.stem)
        name = self._on_every_rank(lambda: create_run_dir(cfg.metrics.output_dir, self.run_id, self.loaded.stem).name
                                   if self.dist.is_main else None)
        return Path(cfg.metrics.output_dir) / self.group.broadcast(name)

    def _aggregate_ranks(self, row: dict[str, Any], run_dir: Path) -> dict[str, Any]:
        """Rank 0 writes the run's summary from every rank's row and appends it to results/summary.csv."""
        rows = self.group.gather(row)
        if not self.dist.is_main:
            return row
        agg = aggregate(rows)
        write_row_csv(run_dir / "summary.csv", agg)
        append_summary(self.cfg.metrics.output_dir, agg)
        self.events.summary(agg, str(run_dir), {})
        return agg

    # -- phases -------------------------------------------------------------
    def _list(self, storage: Storage, facts: RunFacts):
        cfg = self.cfg
        self.events.phase_start("list")
        if cfg.dataset.access == "shards":
            return self._list_shards(storage, facts)
        path = cfg.dataset.manifest
        fp = manifest.fingerprint(storage.label(), cfg.storage.prefixes, cfg.dataset.extensions, cfg.dataset.labels)
        if path:
            t0 = time.perf_counter()
            index, why = manifest.load(path, fp)
            if index is not None:
                reason = f"listing skipped: the sample index came from manifest {path}"
                for col in ("list_s", "objects_listed", "bytes_listed", "objects_listed_per_s"):
                    facts.unmeasured[col] = reason
                self.events.phase_end("list", time.perf_counter() - t0,
                                      f"(skipped: {len(index):,} objects from manifest {path}; "
                                      "delete it to list again)")
                return index.subset(cfg.dataset.max_samples, cfg.execution.seed) if cfg.dataset.max_samples \
                    else index
            if why:
                self.events.notice(f"manifest {path} not used: {why}; listing the storage")
        index, stats = list_dataset(storage, cfg.storage.prefixes, cfg.execution.listing_workers,
                                    cfg.dataset.extensions, cfg.dataset.labels, cfg.dataset.on_error)
        facts.listing = stats
        for key, why in stats.unreadable:
            self._skipped.append((None, key, f"{failures.BAD_READ}{why}"))
        if stats.unreadable:
            self.events.warning(f"{len(stats.unreadable)} unreadable entries left out of the dataset "
                                f"(dataset.on_error: skip), e.g. {stats.unreadable[0][0]}: {stats.unreadable[0][1]}")
        if path:
            manifest.save(path, index, fp, stats.seconds)
            self.events.notice(f"sample index saved to manifest {path}: the next run skips listing")
        if cfg.dataset.max_samples:
            index = index.subset(cfg.dataset.max_samples, cfg.execution.seed)
        self.events.phase_end("list", stats.seconds,
                              f"({stats.objects:,} objects, {stats.bytes / 2**20:.1f} MiB, {stats.classes} classes, "
                              f"{stats.objects_per_s:,.0f} objects/s, {cfg.execution.listing_workers} threads)")
        if stats.skipped_objects:
            self.events.notice(f"{stats.skipped_objects} objects skipped: extension not in {cfg.dataset.extensions}")
        return index

    def _holdout(self, storage: Storage, index: Any) -> tuple[Any, Any]:
        """(train, held-out) for the inference phase: inference.prefixes, else a seeded fraction."""
        inf = self.cfg.inference
        if self.cfg.dataset.access != "random":
            raise ConfigError("the inference phase reads a held-out split of random-access samples",
                              reference="execution.phases.inference", hint="use dataset.access: random")
        if inf.prefixes:
            held, _ = list_dataset(storage, inf.prefixes, self.cfg.execution.listing_workers,
                                   self.cfg.dataset.extensions, index.classes)
            return index, held
        return index.holdout(inf.holdout_fraction, self.cfg.execution.seed)

    def _phase(self, facts: RunFacts, name: str, work, detail) -> None:
        self.events.phase_start(name)
        t0 = time.perf_counter()
        result = work()
        facts.extra.update(result)
        self.events.phase_end(name, time.perf_counter() - t0, detail(result))

    def _list_shards(self, storage: Storage, facts: RunFacts):
        """access: shards: list the .tar shards (one row each) and read the pack's index.json."""
        cfg = self.cfg
        t0 = time.perf_counter()
        index, meta = shards.list_shards(storage, cfg.shards.prefix)
        seconds = time.perf_counter() - t0
        facts.listing = ListingStats(seconds, len(index), index.total_bytes, 2, 0, len(index.classes))
        samples = meta.get("samples")
        self.events.phase_end("list", seconds, f"({len(index):,} shards, {index.total_bytes / 2**20:.1f} MiB, "
                                               f"{samples if samples is not None else 'unknown'} samples)")
        workers = cfg.framework.num_workers or 1
        parts = self.dist.world * workers
        if len(index) < parts:
            readers = f"{self.dist.world} ranks x {workers} loader workers" if self.dist.world > 1 \
                else f"{workers} loader workers"
            self.events.warning(f"{len(index)} shards for {readers}: {parts - len(index)} of them get none and "
                                "read nothing; pack smaller shards (shards.max_bytes / shards.max_samples) to use "
                                "every reader")
        return index

    def _make_runner(self, index, storage):
        target = FRAMEWORK_RUNNERS[self.cfg.framework.name]
        module, _, cls = target.partition(":")
        runner = getattr(importlib.import_module(module), cls)(self.cfg, index, storage)
        runner.setup()
        return runner

    def _train(self, runner, storage: Storage, index, facts: RunFacts, steps: StepRecorder) -> None:
        tr = self.cfg.training
        per_epoch = self._per_epoch = runner.samples_per_epoch()
        expected = getattr(runner, "expected_epoch_bytes", None)
        if expected is None:  # a framework runner without per-epoch expectations: whole epochs only
            def expected(epoch: int, whole=index.total_bytes if per_epoch == len(index) else None):
                return whole
        local = [p for p in (storage.local_path(k) for k in pagecache.sample_paths(index.keys, 64)) if p]
        self.events.phase_start("train")
        facts.train_start = time.perf_counter()
        for epoch in range(tr.epochs):
            cache = self._cache_state(local)
            rec = EpochRecord(epoch, start=time.perf_counter(), cache=cache, expected_bytes=expected(epoch))
            facts.epochs.append(rec)
            self.events.task_start(f"epoch {epoch + 1}/{tr.epochs}", total=per_epoch, unit="samples")
            try:
                self._epoch(runner, rec, steps)
            finally:
                self.events.task_end()
            self._too_many_skipped(rec)
        facts.train_end = time.perf_counter()
        self.events.phase_end("train", facts.train_end - facts.train_start)

    def _epoch(self, runner, rec: EpochRecord, steps: StepRecorder) -> None:
        """One epoch. Multi-rank with collective steps (DDP), it ends when every rank has run out
        of batches, and a rank that fails ends the epoch of every rank with its error instead of
        leaving them waiting in an all-reduce."""
        join = _uneven_inputs(runner) if self.dist.enabled else None
        if join is None:
            self._epoch_steps(runner, rec, steps)
        else:
            error = None
            with join:  # a rank out of batches (or failed) answers the others' all-reduces
                try:
                    self._epoch_steps(runner, rec, steps)
                except Exception as e:  # noqa: BLE001 - every rank learns of it just below
                    error = e
            self.group.agree(error)
        rec.end = time.perf_counter()
        rec.complete = True

    def _epoch_steps(self, runner, rec: EpochRecord, steps: StepRecorder) -> None:
        """This rank's steps of one epoch, each timed and recorded."""
        it = runner.epoch(rec.epoch)
        t_req = rec.start
        step = 0
        for batch in _closing(it, self.cfg.framework.persistent_workers, getattr(runner, "stop_epoch", None)):
            t_got = time.perf_counter()
            if batch.failures:
                self._on_failures(rec, batch.failures)
            loss = runner.step(batch)
            t_done = time.perf_counter()
            if rec.first_batch_s is None:
                rec.first_batch_s = t_got - rec.start
            steps.add(rec.epoch, step, t_req, t_got - t_req, t_done - t_got, batch.samples, batch.nbytes, loss,
                      len(batch.failures))
            rec.steps += 1
            rec.samples += batch.samples
            rec.bytes += batch.nbytes
            self.events.task_advance(batch.samples, batch.nbytes)
            step += 1
            t_req = t_done
            if self.cfg.training.max_steps is not None and step >= self.cfg.training.max_steps:
                break

    def _on_failures(self, rec: EpochRecord, bad: list) -> None:
        """A batch's failed samples. A storage outage (or a full disk) ends the run whatever
        dataset.on_error says; otherwise on_error fail names the first bad key, and skip counts,
        reports and goes on while the epoch's skipped share stays within max_skipped_percent."""
        failures.raise_if_fatal(bad)
        if self.cfg.dataset.on_error == "fail":
            f = bad[0]
            raise SampleError(f.reason, reference=f.key,
                              hint="the object is missing, truncated or not an image: replace or remove it, "
                                   "or set dataset.on_error: skip to count and skip such samples")
        rec.failed_samples += len(bad)
        for f in bad:
            if len(self._skipped) < 1000:
                self._skipped.append((rec.epoch, f.key, f.reason))
            if len(self._skipped) <= 3:
                self.events.warning(f"skipped {f.key}: {f.reason}")
        if self._per_epoch and rec.failed_samples * 100 > self.cfg.dataset.max_skipped_percent * self._per_epoch:
            self._too_many_skipped(rec, self._per_epoch)  # past the limit whatever the rest of the epoch does

    def _too_many_skipped(self, rec: EpochRecord, total: int | None = None) -> None:
        """Raise when the epoch skipped more than dataset.max_skipped_percent of its samples.

        Raises:
            SampleError: too many skipped samples (the first is named).
        """
        limit = self.cfg.dataset.max_skipped_percent
        total = total or (rec.samples + rec.failed_samples)
        if not rec.failed_samples or rec.failed_samples * 100 <= limit * total:
            return
        first = next(((k, r) for e, k, r in self._skipped if e == rec.epoch), None)
        raise SampleError(f"{rec.failed_samples} of {total} samples of epoch {rec.epoch + 1} skipped "
                          f"({100 * rec.failed_samples / total:.1f} %), more than dataset.max_skipped_percent "
                          f"({limit:g} %)" + (f"; the first: {first[0]}: {first[1]}" if first else ""),
                          reference="dataset.max_skipped_percent",
                          hint="fix or remove the bad samples, or raise dataset.max_skipped_percent")

    def _cache_state(self, local_paths: list[str]) -> str:
        if not local_paths:
            return "unknown"
        if self.cfg.execution.drop_caches:
            done, why = pagecache.drop_caches()
            if not done and not self._cache_warned:
                self.events.warning(f"cannot drop the page cache: {why}; the cache column reports what "
                                    "was measured instead of cold")
                self._cache_warned = True
            state = pagecache.classify(pagecache.resident_fraction(local_paths))
            if done and state != "cold" and not self._cache_warned:
                self.events.warning("page cache drop did not take effect (files still resident)")
                self._cache_warned = True
            return state
        return pagecache.classify(pagecache.resident_fraction(local_paths))

    # -- report ---------------------------------------------------------------
    def _identity(self, storage: Storage) -> dict[str, Any]:
        return run_identity(self.cfg, self.loaded.stem, storage.label(), self.tags).row()

    def _redacted(self, row: dict[str, Any]) -> dict[str, Any]:
        secrets = secret_values(self.cfg.model_dump(mode="json"))
        return {k: redact(v, secrets) if isinstance(v, str) else v for k, v in row.items()}

    def _report(self, facts: RunFacts, storage: Storage, runner, held: signals.Held) -> dict[str, Any]:
        run_dir = facts.run_dir
        signals.pause_point("report", held)  # tests: a stop signal delivered while the report is written
        row = build_reports(facts)
        signals.pause_point("report-summary", held)
        if held.received and facts.status == "ok":  # the status is decided here: later signals find it written
            facts.status, facts.failed_phase = "interrupted", "report"
            facts.reason = "interrupted by the user while the report was written"
            row.update(status=facts.status, failed_phase=facts.failed_phase, reason=facts.reason)
        if self.dist.enabled:
            row["rank"] = self.dist.rank
        row = self._redacted(row)
        raw = self.cfg.model_dump(mode="json")
        secrets = secret_values(raw)
        write_row_csv(run_dir / "summary.csv", row)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(redact(raw, secrets), sort_keys=False))
        env = environment(storage, runner, facts, self.loaded.notices, self.argv)
        env["skipped_samples"] = [{"epoch": e, "key": k, "reason": r} for e, k, r in self._skipped]
        env["distributed"] = {"rank": self.dist.rank, "world_size": self.dist.world} if self.dist.enabled else None
        (run_dir / "environment.json").write_text(json.dumps(redact(env, secrets), indent=2, default=str))
        _cleanup_request_parts(run_dir)
        if not self.dist.enabled:  # multi-rank: rank 0 appends the aggregate instead
            append_summary(self.cfg.metrics.output_dir, row)
            self.events.summary(row, str(run_dir), facts.unmeasured)
        return row


def _report_error(e: BaseException, run_dir: Path) -> BenchError:
    """The one-line error of a report that could not be written (a full disk, a folder gone
    read-only): names the path, never a traceback."""
    if isinstance(e, BenchError):
        return e
    if isinstance(e, OSError):
        where = e.filename or run_dir
        hint = failures.DISK_HINT if e.errno in (errno.ENOSPC, errno.EDQUOT) else \
            "check that metrics.output_dir is writable, then run again"
        error = RunFailed(f"cannot write the report: {e.strerror or e}", reference=str(where), hint=hint)
    else:
        error = RunFailed(f"the report could not be written: {type(e).__name__}: {e}", reference=str(run_dir),
                          hint="run again with --debug for the traceback")
    error.__cause__ = e  # --debug shows where it happened
    return error


def _device_kind(cfg: Any) -> str:
    """cuda when the run will train on a GPU (nccl), else cpu (gloo)."""
    if cfg.execution.device == "cpu":
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _uneven_inputs(runner: Any) -> AbstractContextManager | None:
    """The trainer's context around one epoch's steps when they hold collectives and ranks'
    step counts may differ (DDP's Join); None when the steps hold no collectives."""
    scope = getattr(getattr(runner, "trainer", None), "uneven_inputs", None)
    return scope() if scope is not None else None


def _closing(it, keep_workers: bool, stop: Callable[[Any], None] | None = None):
    """Iterate; when the epoch ends early (error, interrupt), stop the loader's workers
    now rather than at garbage collection (``stop(it)``: the runner's way, which waits for them
    to write their request rows). Persistent workers live until the runner closes."""
    try:
        yield from it
    finally:
        if not keep_workers:  # persistent workers: the runner closes them
            if stop is not None:
                stop(it)
            elif getattr(it, "_shutdown_workers", None) is not None:
                it._shutdown_workers()


def _exists(storage: Storage, prefix: str) -> bool:
    try:
        return storage.exists(prefix)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _cleanup_request_parts(run_dir: Path) -> None:
    parts = run_dir / ".requests"
    if parts.is_dir():
        for p in parts.iterdir():
            p.unlink()
        parts.rmdir()


def environment(storage: Storage, runner, facts: RunFacts, notices: list[str], argv: list[str]) -> dict[str, Any]:
    """Versions, host, CPU, storage (no credentials) and what could not be measured, and why."""
    import psutil

    versions = {"python": platform.python_version(), "dnnbench": __version__}
    for mod in ("numpy", "pandas", "pydantic", "cv2", "torch", "tensorflow", "boto3", "minio", "s3fs"):
        m = sys.modules.get(mod)
        if m is not None:
            versions[mod] = getattr(m, "__version__", "?")
    return {
        "run_id": facts.run_id, "started_at": facts.started_at, "status": facts.status,
        "command": " ".join(argv), "host": socket.gethostname(), "platform": platform.platform(),
        "cpu": {"model": _cpu_model(), "logical_cores": os.cpu_count(),
                "physical_cores": psutil.cpu_count(logical=False)},
        "memory_GiB": round(psutil.virtual_memory().total / 2**30, 1), "versions": versions,
        "storage": storage.describe(), "framework": runner.describe() if runner is not None else None,
        "cache": {"epochs": [e.cache for e in facts.epochs],
                  "root": os.geteuid() == 0 if hasattr(os, "geteuid") else None},
        "unmeasured": facts.unmeasured, "notices": notices,
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
