"""Runs the phases of a benchmark (prepare, list, train, report), timing and
recording each, and always writes what it measured, even when a phase fails.

Knows plugins only by registry name; imports a framework only when a run needs it.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dnnbench import __version__
from dnnbench.config.loading import LoadedConfig
from dnnbench.config.redact import redact, secret_values
from dnnbench.data import synthetic
from dnnbench.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, BenchError, DataError, PluginError, SampleError
from dnnbench.events import Events, NullEvents
from dnnbench.frameworks import FRAMEWORK_RUNNERS
from dnnbench.metrics.report import RunFacts, build_reports
from dnnbench.metrics.requests import RecorderSpec, flush_current
from dnnbench.metrics.results import append_summary, create_run_dir, write_row_csv
from dnnbench.metrics.steps import EpochRecord, StepRecorder
from dnnbench.metrics.system import SystemSampler
from dnnbench.registry import DATASETS, MODELS, STORAGE, TRAINERS, load_entry_points, load_plugin_module
from dnnbench.storage import pagecache
from dnnbench.storage.base import Storage, create_storage
from dnnbench.storage.listing import list_dataset


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM: stop, keep what was measured, exit 130."""


@dataclass
class RunOutcome:
    row: dict[str, Any]
    run_dir: Path
    exit_code: int
    error: BaseException | None = None


def load_plugins(loaded: LoadedConfig, events: Events) -> None:
    """Import the config's ``plugins:`` and the ``dnnbench.plugins`` entry points."""
    base = loaded.path.parent if loaded.path else None
    for spec in loaded.config.plugins:
        load_plugin_module(spec, base_dir=base)
    for problem in load_entry_points():
        events.warning(problem)


def check_plugin_names(cfg: Any) -> None:
    """Resolve every plugin name without importing anything heavy.

    Raises:
        PluginError: an unknown name, with its close matches.
    """
    fw = cfg.framework.name
    checks = [(STORAGE, cfg.storage.client, None, "storage.client"),
              (DATASETS, cfg.dataset.name, fw, "dataset.name"),
              (MODELS, cfg.model.name, fw, "model.name"),
              (TRAINERS, cfg.training.trainer, fw, "training.trainer")]
    for registry, name, framework, path in checks:
        try:
            registry.resolve(name, framework)
        except PluginError as e:
            raise PluginError(e.message, reference=path, hint=e.hint) from None


def open_storage(cfg: Any, recorder: RecorderSpec | None = None) -> Storage:
    return create_storage(cfg.storage, recorder=recorder)


def prepare_dataset(loaded: LoadedConfig, events: Events, force: bool = False) -> synthetic.PrepareStats | None:
    """Write the synthetic dataset of ``prepare:`` into the configured storage.

    Returns None (and says so) when the data is there already and not ``force``.
    """
    cfg = loaded.config
    p = cfg.prepare
    storage = open_storage(cfg)
    prefixes = cfg.storage.prefixes
    if not force and all(storage.exists(pre) for pre in prefixes):
        events.notice(f"dataset already present in {storage.label()} ({', '.join(prefixes)}); "
                      "use --force to write it again")
        return None
    total = p.classes * p.images_per_class * len(prefixes)
    events.phase_start("prepare")
    events.task_start(f"prepare {total:,} {p.format} images", total=total, unit="images")
    stats = []
    try:
        for i, prefix in enumerate(prefixes):
            stats.append(synthetic.generate(
                storage, prefix, p.classes, p.images_per_class, width=tuple(p.width), height=tuple(p.height),
                fmt=p.format, quality=p.jpeg_quality, seed=p.seed + 1000 * i, workers=p.workers,
                progress=lambda done, n: events.task_advance(1, n)))
    finally:
        events.task_end()
    result = synthetic.PrepareStats(sum(s.images for s in stats), sum(s.bytes for s in stats),
                                    sum(s.seconds for s in stats))
    events.phase_end("prepare", result.seconds,
                     f"({result.images:,} images, {result.bytes / 1e6:.1f} MB, {result.MB_per_s:.1f} MB/s "
                     f"= {result.MiB_per_s:.1f} MiB/s written to {storage.label()})")
    return result


class Executor:
    """One benchmark run from a validated config."""

    def __init__(self, loaded: LoadedConfig, events: Events | None = None, run_id: str | None = None,
                 argv: list[str] | None = None):
        self.loaded = loaded
        self.cfg = loaded.config
        self.events = events or NullEvents()
        self.run_id = run_id
        self.argv = argv or []
        self._cache_warned = False
        self._pending_error: BaseException | None = None

    def run(self) -> RunOutcome:
        cfg = self.cfg
        load_plugins(self.loaded, self.events)
        check_plugin_names(cfg)
        storage = open_storage(cfg)
        try:
            storage.check()
        except BenchError:
            if not cfg.prepare.auto:
                raise
        if cfg.prepare.auto and not all(_exists(storage, p) for p in cfg.storage.prefixes):
            self.events.notice("dataset not found: generating it (prepare.auto is on)")
            prepare_dataset(self.loaded, self.events)
        storage.check()
        missing = [p for p in cfg.storage.prefixes if not _exists(storage, p)]
        if missing:
            raise DataError(f"nothing stored under prefix {missing[0] or '(root)'!r} in {storage.label()}",
                            reference="storage.prefixes",
                            hint="fix the prefix, or create the dataset with `benchmark.py prepare --config FILE`")
        run_dir = create_run_dir(cfg.metrics.output_dir, self.run_id, self.loaded.stem)
        spec = RecorderSpec(str(run_dir / ".requests"), cfg.metrics.requests, cfg.metrics.request_sample_rate,
                            cfg.execution.seed)
        storage = open_storage(cfg, spec)
        facts = RunFacts(run_id=run_dir.name, run_dir=run_dir, started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
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
            phase = "train"
            if cfg.execution.phases.train:
                runner = self._make_runner(index, storage)
                facts.identity["workers"] = cfg.framework.num_workers
                self._train(runner, storage, index, facts, steps)
        except (KeyboardInterrupt, Interrupted):
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
        return RunOutcome(row, run_dir, exit_code, self._pending_error)

    # -- phases -------------------------------------------------------------
    def _list(self, storage: Storage, facts: RunFacts):
        cfg = self.cfg
        self.events.phase_start("list")
        index, stats = list_dataset(storage, cfg.storage.prefixes, cfg.execution.listing_workers,
                                    cfg.dataset.extensions, cfg.dataset.labels)
        facts.listing = stats
        if cfg.dataset.max_samples:
            index = index.subset(cfg.dataset.max_samples, cfg.execution.seed)
        self.events.phase_end("list", stats.seconds,
                              f"({stats.objects:,} objects, {stats.bytes / 2**20:.1f} MiB, {stats.classes} classes, "
                              f"{stats.objects_per_s:,.0f} objects/s, {cfg.execution.listing_workers} threads)")
        if stats.skipped_objects:
            self.events.notice(f"{stats.skipped_objects} objects skipped: extension not in {cfg.dataset.extensions}")
        return index

    def _make_runner(self, index, storage):
        target = FRAMEWORK_RUNNERS[self.cfg.framework.name]
        module, _, cls = target.partition(":")
        runner = getattr(importlib.import_module(module), cls)(self.cfg, index, storage)
        runner.setup()
        return runner

    def _train(self, runner, storage: Storage, index, facts: RunFacts, steps: StepRecorder) -> None:
        cfg = self.cfg
        fw, tr = cfg.framework, cfg.training
        per_epoch = runner.samples_per_epoch()
        facts.bytes_listed_per_epoch = index.total_bytes
        facts.full_epochs = per_epoch == len(index)
        local = [p for p in (storage.local_path(k) for k in pagecache.sample_paths(index.keys, 64)) if p]
        self.events.phase_start("train")
        facts.train_start = time.perf_counter()
        for epoch in range(tr.epochs):
            cache = self._cache_state(local)
            rec = EpochRecord(epoch, start=time.perf_counter(), cache=cache)
            facts.epochs.append(rec)
            self.events.task_start(f"epoch {epoch + 1}/{tr.epochs}", total=per_epoch, unit="samples")
            try:
                self._epoch(runner, rec, steps)
            finally:
                self.events.task_end()
        facts.train_end = time.perf_counter()
        self.events.phase_end("train", facts.train_end - facts.train_start)

    def _epoch(self, runner, rec: EpochRecord, steps: StepRecorder) -> None:
        it = runner.epoch(rec.epoch)
        t_req = rec.start
        step = 0
        for batch in _closing(it, self.cfg.framework.persistent_workers):
            t_got = time.perf_counter()
            if batch.failures:
                f = batch.failures[0]
                raise SampleError(f.reason, reference=f.key,
                                  hint="the object is missing, truncated or not an image: replace or remove it")
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
        rec.end = time.perf_counter()
        rec.complete = True

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
                "batch_size": cfg.framework.batch_size, "epochs": cfg.training.epochs}

    def _report(self, facts: RunFacts, storage: Storage, runner) -> dict[str, Any]:
        run_dir = facts.run_dir
        row = build_reports(facts)
        write_row_csv(run_dir / "summary.csv", row)
        raw = self.cfg.model_dump(mode="json")
        secrets = secret_values(raw)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(redact(raw, secrets), sort_keys=False))
        env = environment(storage, runner, facts, self.loaded.notices, self.argv)
        (run_dir / "environment.json").write_text(json.dumps(redact(env, secrets), indent=2, default=str))
        append_summary(self.cfg.metrics.output_dir, row)
        _cleanup_request_parts(run_dir)
        self.events.summary(row, str(run_dir), facts.unmeasured)
        return row


def _closing(it, keep_workers: bool):
    """Iterate; when the epoch ends early (error, interrupt), stop the loader's workers
    now rather than at garbage collection. Persistent workers live until the runner closes."""
    completed = False
    try:
        yield from it
        completed = True
    finally:
        shutdown = getattr(it, "_shutdown_workers", None)
        if shutdown is not None and not (completed and keep_workers):
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
        "cache": {"epochs": [e.cache for e in facts.epochs], "root": os.geteuid() == 0 if hasattr(os, "geteuid") else None},
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
