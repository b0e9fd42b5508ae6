"""Runs one benchmark as a sequence of phases: start-up (prepare when ``prepare.auto`` asks,
check the dataset and the outputs), list, train, inference, checkpoint; then the report, which
is always written, with what was measured, even when a phase fails or the run is stopped.

Each phase's work is a module of :mod:`dnnbench.run` (the dataset resolver, the epoch loop, the
run writer...); who does what among several ranks is the coordinator's. This module only
orders them and records how the run ended. It is the entry the CLI, sweeps and au-search use
(``Executor(...).run()``, :func:`prepare_dataset`, :func:`pack_shards`).

Knows plugins only by registry name; imports a framework only when a run needs it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from dnnbench import signals
from dnnbench.config.checkpoint import CHECKPOINT_WORKLOAD
from dnnbench.config.loading import LoadedConfig
from dnnbench.config.plugins import check_plugin_names, load_plugins
from dnnbench import failures
from dnnbench.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, BenchError, RecordingError, RunFailed
from dnnbench.events import Events, NullEvents
from dnnbench.frameworks import create_runner
from dnnbench.frameworks.results import CheckpointResult, InferResult
from dnnbench.frameworks.protocols import Runner
from dnnbench.reporting.identity import run_identity
from dnnbench.reporting.report import RunFacts
from dnnbench.recording.requests import RecorderSpec, flush_current
from dnnbench.recording.system import SystemSampler
from dnnbench.run import coordinator
from dnnbench.run.cache import CacheProbe
from dnnbench.run.checkpoint import run_workload
from dnnbench.run.dataset import DatasetResolver
from dnnbench.run.epochs import EpochLoop
from dnnbench.run.prepare import open_storage, pack_shards, prepare_dataset
from dnnbench.run.skips import FailurePolicy, Skipped
from dnnbench.run.writer import RunWriter, report_error
from dnnbench.storage.base import Storage

#: the entry points of the CLI and of au-search, kept importable from here
__all__ = ["Executor", "RunOutcome", "check_plugin_names", "load_plugins", "pack_shards", "prepare_dataset"]


@dataclass
class RunOutcome:
    row: dict[str, Any]
    run_dir: Path
    exit_code: int
    error: BaseException | None = None


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
        self.coordinator: coordinator.Coordinator = coordinator.SingleProcess()
        self.skipped = Skipped()
        self._pending_error: BaseException | None = None
        self._runner: Runner | None = None
        self._phase_name = "list"

    def run(self) -> RunOutcome:
        load_plugins(self.loaded, self.events)
        check_plugin_names(self.cfg)
        self.coordinator = coordinator.start(self.cfg)
        self.events = self.coordinator.speaker(self.events)  # rank 0 speaks for the run
        try:
            return self._run()
        finally:
            self._runner = None  # its DDP model holds the process group: released before it is destroyed
            self.coordinator.close()

    def _run(self) -> RunOutcome:
        cfg, coord = self.cfg, self.coordinator
        signals.reset()
        self.dataset = DatasetResolver(self.loaded, self.events, self.skipped, coord.info.world)
        self.writer = RunWriter(self.loaded, coord, self.events, self.argv, self.skipped)
        storage = open_storage(cfg)
        # multi-rank: each start-up step ends in an agreement, so a failure on one rank (rank 0's
        # prepare, a missing dataset) ends every rank at once with its error, none left waiting
        if cfg.training.trainer != CHECKPOINT_WORKLOAD:  # the workload reads no dataset
            coord.each(lambda: self.dataset.prepare_if_needed(storage), main_only=True)
            coord.each(lambda: self.dataset.check(storage))
        coord.each(self._check_outputs, main_only=True)
        run_dir, work_dir = coord.run_dirs(cfg.metrics.output_dir, self.run_id, self.loaded.stem)
        spec = RecorderSpec(str(work_dir / ".requests"), cfg.metrics.requests, cfg.metrics.request_sample_rate,
                            cfg.execution.seed)
        storage = open_storage(cfg, spec)
        facts = RunFacts(run_id=run_dir.name, run_dir=work_dir, started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                         identity=run_identity(self.cfg, self.loaded.stem, storage.label(), self.tags),
                         t0=time.perf_counter(),
                         warmup_steps=cfg.training.warmup_steps, au_target_percent=cfg.training.au_target_percent,
                         ttfb_reason=storage.ttfb_reason,
                         request_mode=cfg.metrics.requests)
        system = SystemSampler(cfg.metrics.system_interval_s).start()
        facts.system = system
        exit_code = EXIT_OK
        self._run_dir = run_dir
        try:
            self._phases(storage, facts)
        except BaseException as e:  # noqa: BLE001 - every way a run ends is recorded; see _stopped
            exit_code = self._stopped(facts, e)
        return self._finish(facts, storage, system, run_dir, exit_code)

    def _check_outputs(self) -> None:
        """Before anything runs: the manifest and results/summary.csv can be written without
        writing over a file dnnbench did not write.

        Raises:
            ConfigError: naming the field or path at fault.
        """
        self.dataset.check_manifest()
        self.writer.check_summary()

    def _phases(self, storage: Storage, facts: RunFacts) -> None:
        """list, train, inference, checkpoint: whichever the config asks for, in that order."""
        cfg, phases, coord = self.cfg, self.cfg.execution.phases, self.coordinator
        if cfg.training.trainer == CHECKPOINT_WORKLOAD:
            return self._workload(storage, facts)
        # each step agreed across ranks: none is left waiting in start_together for one that failed
        index = coord.each(lambda: self.dataset.resolve(storage, facts))
        held_out = None
        if phases.inference:
            index, held_out = coord.each(lambda: self.dataset.holdout(storage, index))
        self._phase_name = "train"
        if not (phases.train or phases.inference or phases.checkpoint):
            return
        runner = self._runner = coord.each(lambda: create_runner(cfg, index, storage))
        coord.start_together()  # the clocks compared, then a barrier: the measured phases start together
        if phases.train:
            policy = FailurePolicy(cfg.dataset, self.events, self.skipped)
            cache = CacheProbe(storage, index.keys, cfg.execution.drop_caches, self.events)
            EpochLoop(cfg.training, policy, self.events, self.coordinator).train(runner, facts, cache.state)
        if phases.inference:
            self._phase(facts, "inference", lambda: runner.infer(held_out))
        if phases.checkpoint:
            name = f"{self.coordinator.name(facts.run_id)}.ckpt"
            key = "/".join(p for p in (cfg.checkpoint.prefix.strip("/"), name) if p)
            result = self._phase(facts, "checkpoint", lambda: runner.checkpoint(key))
            if result.checkpoint_verified != "ok":
                raise RunFailed("the checkpoint read back differs from the one written",
                                reference=key, hint="the storage returned other bytes than it stored")

    def _workload(self, storage: Storage, facts: RunFacts) -> None:
        """The checkpoint workload alone (``training.trainer: checkpoint``, :mod:`dnnbench.run.checkpoint`)."""
        self._phase_name = "checkpoint"
        self.events.phase_start("checkpoint workload")
        t0 = time.perf_counter()
        run_workload(self.cfg, storage, self.coordinator, self.events, self._run_dir, facts.add_phase)
        self.events.phase_end("checkpoint workload", time.perf_counter() - t0)

    def _phase(self, facts: RunFacts, name: str, work: Callable[[], Any]) -> Any:
        """One timed phase whose typed result (:class:`InferResult`, :class:`CheckpointResult`)
        joins the summary row."""
        self._phase_name = name
        self.events.phase_start(name)
        t0 = time.perf_counter()
        result: InferResult | CheckpointResult = work()
        facts.add_phase(result.columns())
        self.events.phase_end(name, time.perf_counter() - t0, result.detail())
        return result

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
                row = self.writer.report(facts, storage, self._runner, held, run_dir)
            except KeyboardInterrupt:  # a second stop signal: the user insists
                facts.status, facts.failed_phase = "interrupted", "report"
                facts.reason = "interrupted by the user while the report was written"
                row = self.writer.last_record(facts)
            except Exception as e:  # noqa: BLE001 - a report that cannot be written still leaves its status row
                error = report_error(e, facts.run_dir)
                facts.status, facts.failed_phase, facts.reason = "failed", "report", str(error)
                row = self.writer.last_record(facts)
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
