"""Runs the phases of a benchmark (prepare, list, train, report), timing and
recording each, and always writes what it measured, even when a phase fails.

Knows plugins only by registry name; imports a framework only when a run needs it.
"""

from __future__ import annotations

import contextlib
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

from dnnbench import __version__, distributed
from dnnbench.config.loading import LoadedConfig
from dnnbench.config.plugins import check_plugin_names, load_plugins
from dnnbench.config.redact import redact, secret_values
from dnnbench.data import manifest, shards, synthetic, upload
from dnnbench.errors import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, BenchError, ConfigError, DataError, RunFailed,
                             SampleError)
from dnnbench.events import Events, NullEvents
from dnnbench.frameworks import FRAMEWORK_RUNNERS
from dnnbench.metrics.report import RunFacts, build_reports
from dnnbench.metrics.requests import RecorderSpec, flush_current
from dnnbench.metrics.results import append_summary, create_run_dir, write_row_csv
from dnnbench.metrics.steps import EpochRecord, StepRecorder
from dnnbench.metrics.system import SystemSampler
from dnnbench.registry import DATASETS, MODELS, STORAGE, TRAINERS
from dnnbench.storage import pagecache
from dnnbench.storage.base import Storage, create_storage
from dnnbench.storage.listing import ListingStats, list_dataset


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
                    source: list[str] | None = None) -> synthetic.PrepareStats | None:
    """Write the synthetic dataset of ``prepare:`` (or upload the local image folders
    ``source``) into the configured storage, creating an S3 bucket when
    ``storage.create_bucket`` is on.

    Returns None (and says so) when the data is there already and not ``force``.
    """
    cfg = loaded.config
    p = cfg.prepare
    storage = open_storage(cfg, emulate=False)
    prefixes = cfg.storage.prefixes
    ensure_bucket = getattr(storage, "ensure_bucket", None)
    if cfg.storage.create_bucket and ensure_bucket is not None and ensure_bucket():
        events.notice(f"bucket created: {storage.label()}")
    unfinished = incomplete(storage, prefixes)
    if unfinished:
        events.notice(f"an earlier prepare of {', '.join(unfinished)} did not finish: writing the dataset again")
    elif not force and all(storage.exists(pre) for pre in prefixes):
        events.notice(f"dataset already present in {storage.label()} ({', '.join(prefixes)}); "
                      "use --force to write it again")
        return None
    with _preparing(storage, prefixes):
        if source:
            return _upload_folders(cfg, storage, source, events)
        total = p.classes * p.images_per_class * len(prefixes)
        events.phase_start("prepare")
        jobs = [lambda progress, i=i, prefix=prefix: synthetic.generate(
            storage, prefix, p.classes, p.images_per_class, width=tuple(p.width), height=tuple(p.height),
            fmt=p.format, quality=p.jpeg_quality, seed=p.seed + 1000 * i, workers=p.workers, progress=progress)
            for i, prefix in enumerate(prefixes)]
        return _write_all(events, jobs, f"prepare {total:,} {p.format} images", total, "images",
                          f"written to {storage.label()}")


#: stored under a prefix while prepare (or pack) writes it; left behind when it is interrupted
PREPARING = ".dnnbench-preparing"


def _marker(prefix: str) -> str:
    return "/".join(x for x in (prefix.strip("/"), PREPARING) if x)


def incomplete(storage: Storage, prefixes: list[str]) -> list[str]:
    """The prefixes an interrupted or failed prepare / pack left half written."""
    out = []
    for prefix in prefixes:
        try:
            storage._get(_marker(prefix))
        except (FileNotFoundError, NotADirectoryError):
            continue
        out.append(prefix)
    return out


@contextlib.contextmanager
def _preparing(storage: Storage, prefixes: list[str]):
    """Mark ``prefixes`` as being written; the marks go only when the writing succeeded."""
    for prefix in prefixes:
        storage.put(_marker(prefix), b"dnnbench prepare in progress: rerun `benchmark.py prepare --force`\n")
    yield
    for prefix in prefixes:
        storage.delete(_marker(prefix))


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
    sh = cfg.shards
    storage = open_storage(cfg, emulate=False)
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
        with _preparing(storage, [sh.prefix]):
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
        self.tags = tags or {}  # sweep_id / variant / repeat (dnnbench.sweep), into the summary row
        self._cache_warned = False
        self._pending_error: BaseException | None = None
        self._skipped: list[tuple[int, str, str]] = []
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
            prepare_dataset(self.loaded, self.events)
        if cfg.dataset.access == "shards" and (not _exists(storage, cfg.shards.prefix)
                                              or incomplete(storage, [cfg.shards.prefix])):
            self.events.notice("shards not found or incomplete: packing them (prepare.auto is on)")
            pack_shards(self.loaded, self.events)

    def _run_rank(self) -> RunOutcome:
        cfg = self.cfg
        storage = open_storage(cfg)
        # multi-rank: each start-up step ends in an agreement, so a failure on one rank (rank 0's
        # prepare, a missing dataset) ends every rank at once with its error, none left waiting
        self._on_every_rank(lambda: self._prepare_if_needed(storage) if self.dist.is_main else None)
        self._on_every_rank(lambda: self._check_dataset(storage))
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
        runner = None
        exit_code = EXIT_OK
        phase = "list"
        steps = StepRecorder(facts.steps, facts.epochs)
        try:
            index = self._list(storage, facts)
            phases = cfg.execution.phases
            eval_index = None
            if phases.inference:
                index, eval_index = self._holdout(storage, index)
            phase = "train"
            if phases.train or phases.inference or phases.checkpoint:
                runner = self._make_runner(index, storage)
                facts.identity["workers"] = cfg.framework.num_workers
            if phases.train:
                self._train(runner, storage, index, facts, steps)
            if phases.inference:
                phase = "inference"
                self._phase(facts, "inference", lambda: runner.infer(eval_index),
                            lambda r: f"({r['infer_samples']:,} held-out samples, accuracy "
                                      f"{r['accuracy_percent'] or 0:.1f} %, {r['infer_samples_per_s'] or 0:,.0f} "
                                      "samples/s)")
            if phases.checkpoint:
                phase = "checkpoint"
                rank = f"-rank{self.dist.rank}" if self.dist.enabled else ""
                key = "/".join(p for p in (cfg.checkpoint.prefix.strip("/"), f"{facts.run_id}{rank}.ckpt") if p)
                self._phase(facts, "checkpoint", lambda: runner.checkpoint(key),
                            lambda r: f"({r['checkpoint_bytes'] / 1e6:.1f} MB: save "
                                      f"{r['checkpoint_save_MB_per_s'] or 0:.1f} MB/s, load "
                                      f"{r['checkpoint_load_MB_per_s'] or 0:.1f} MB/s, {r['checkpoint_verified']})")
                if facts.extra.get("checkpoint_verified") != "ok":
                    raise RunFailed("the checkpoint read back differs from the one written",
                                    reference=key, hint="the storage returned other bytes than it stored")
        except KeyboardInterrupt:  # Ctrl-C, and SIGTERM (errors.Interrupted is one)
            facts.status, facts.failed_phase, facts.reason = "interrupted", phase, "interrupted by the user"
            exit_code = EXIT_INTERRUPTED
        except BenchError as e:
            facts.status, facts.failed_phase, facts.reason = "failed", phase, str(e)
            exit_code = e.exit_code
            self._pending_error = e
        except Exception as e:  # noqa: BLE001 - recorded, then re-raised by the CLI
            facts.status, facts.failed_phase, facts.reason = "failed", phase, f"{type(e).__name__}: {e}"
            exit_code = EXIT_FAILED
            self._pending_error = e
        finally:
            if facts.train_start is not None and facts.train_end is None:
                facts.train_end = time.perf_counter()
            if runner is not None:
                try:
                    runner.close()
                except Exception:  # noqa: BLE001 - closing must not hide the result
                    pass
            flush_current()
            system.stop()
        row = self._report(facts, storage, runner)
        if self.dist.enabled:
            row = self._aggregate_ranks(row, run_dir)
        return RunOutcome(row, run_dir, exit_code, self._pending_error)

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
        agg = distributed.aggregate(rows)
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
                                    cfg.dataset.extensions, cfg.dataset.labels)
        facts.listing = stats
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
        per_epoch = runner.samples_per_epoch()
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
        for batch in _closing(it, self.cfg.framework.persistent_workers):
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

    def _on_failures(self, rec: EpochRecord, failures: list) -> None:
        """dataset.on_error: fail names the first bad key; skip counts, reports and goes on."""
        if self.cfg.dataset.on_error == "fail":
            f = failures[0]
            raise SampleError(f.reason, reference=f.key,
                              hint="the object is missing, truncated or not an image: replace or remove it, "
                                   "or set dataset.on_error: skip to count and skip such samples")
        rec.failed_samples += len(failures)
        for f in failures:
            if len(self._skipped) < 1000:
                self._skipped.append((rec.epoch, f.key, f.reason))
            if len(self._skipped) <= 3:
                self.events.warning(f"skipped {f.key}: {f.reason}")

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
        cfg = self.cfg
        trainer = TRAINERS.resolve(cfg.training.trainer, cfg.framework.name).name  # canonical, not alias
        needs_model = trainer not in ("read", "emulate")
        fw = cfg.framework.name
        return {"config": self.loaded.stem, "framework": fw, "storage": storage.label(),
                "client": STORAGE.resolve(cfg.storage.client).name, "access": cfg.dataset.access,
                "decode": cfg.dataset.decode, "dataset": DATASETS.resolve(cfg.dataset.name, fw).name,
                "model": MODELS.resolve(cfg.model.name, fw).name if needs_model else None,
                "trainer": trainer, "workers": cfg.framework.num_workers,
                "batch_size": cfg.framework.batch_size, "epochs": cfg.training.epochs,
                "emulated": _emulation_label(cfg.storage.emulate),
                **{k: self.tags.get(k) for k in ("sweep_id", "variant", "repeat")}}

    def _report(self, facts: RunFacts, storage: Storage, runner) -> dict[str, Any]:
        run_dir = facts.run_dir
        row = build_reports(facts)
        if self.dist.enabled:
            row["rank"] = self.dist.rank
        raw = self.cfg.model_dump(mode="json")
        secrets = secret_values(raw)
        row = {k: redact(v, secrets) if isinstance(v, str) else v for k, v in row.items()}
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


def _device_kind(cfg: Any) -> str:
    """cuda when the run will train on a GPU (nccl), else cpu (gloo)."""
    if cfg.execution.device == "cpu":
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _emulation_label(emulate: Any) -> str:
    """'no', or the emulated latency / bandwidth, so an emulated run is never mistaken for a real one."""
    if emulate is None:
        return "no"
    parts = [f"{emulate.latency_ms:g}ms"]
    if emulate.jitter_ms:
        parts[0] = f"{emulate.latency_ms:g}+-{emulate.jitter_ms:g}ms"
    if emulate.bandwidth_MBps:
        parts.append(f"{emulate.bandwidth_MBps:g}MBps")
    return "yes:" + ",".join(parts)


def _uneven_inputs(runner: Any) -> AbstractContextManager | None:
    """The trainer's context around one epoch's steps when they hold collectives and ranks'
    step counts may differ (DDP's Join); None when the steps hold no collectives."""
    scope = getattr(getattr(runner, "trainer", None), "uneven_inputs", None)
    return scope() if scope is not None else None


def _closing(it, keep_workers: bool):
    """Iterate; when the epoch ends early (error, interrupt), stop the loader's workers
    now rather than at garbage collection. Persistent workers live until the runner closes."""
    try:
        yield from it
    finally:
        shutdown = getattr(it, "_shutdown_workers", None)
        if shutdown is not None and not keep_workers:  # persistent workers: the runner closes them
            shutdown()


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
