"""One run of a multi-run (a sweep's variant, an AU search's emulated accelerator).

- :func:`reserve`: the multi-run's id and its folder, unique (an atomic mkdir).
- :func:`run_in_process`: run one variant here; however it ends, a :class:`RunRecord` says so
  and the run has its folder and its ``results/summary.csv`` row (:func:`record_failure` writes
  them for a run that failed before it started), so the multi-run's record has every run.
- :func:`run_tags`: what ties a run to its multi-run in the summary row.

A run's own summary row is read back with :func:`dnnbench.results.read_row`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dnnbench.config.loading import LoadedConfig
from dnnbench.config.redact import redact, secret_values
from dnnbench.errors import EXIT_FAILED, BenchError, ConfigError
from dnnbench.events import Events
from dnnbench.registry import STORAGE
from dnnbench.reporting.columns import empty_row
from dnnbench.results import append_summary, create_run_dir, timestamped, unique_dir, write_row_csv


@dataclass
class RunRecord:
    """How one run of a multi-run ended: its folder (None: none could be made), exit code,
    status (``ok``, ``failed``, ``interrupted``), the reason when not ok, and the error
    message to show when the run failed with one."""

    variant: str
    repeat: int
    run_dir: Path | None
    exit_code: int
    status: str
    reason: str | None = None
    error: str | None = None


def run_tags(multirun_id: str, variant: str, repeat: int) -> dict[str, Any]:
    """The summary columns that tie a run to its multi-run (``sweep_id``, ``variant``, ``repeat``)."""
    return {"sweep_id": multirun_id, "variant": variant, "repeat": repeat}


def reserve(output_dir: str | Path, wanted: str | None, stem: str, prefix: str) -> tuple[str, Path]:
    """A unique id and its folder ``<output_dir>/<prefix>-<id>``, made with an atomic mkdir;
    the id is ``wanted``, or ``<time>-<stem>`` (``-2``, ``-3``... when taken).

    Raises:
        ConfigError: ``wanted`` is taken already or not a plain name; the folder cannot be made.
    """
    folder = unique_dir(output_dir, wanted if wanted is not None else timestamped(stem),
                        exact=wanted is not None, prefix=f"{prefix}-")
    return folder.name[len(prefix) + 1:], folder


def run_in_process(loaded: LoadedConfig, events: Events, run_id: str, tags: dict[str, Any],
                   argv: list[str] | None) -> RunRecord:
    """Run one variant in this process. A run that fails, before or after it starts, is
    recorded and returned, never raised: the multi-run goes on.

    Raises:
        KeyboardInterrupt: Ctrl-C or SIGTERM (``errors.Interrupted``) before the run began
            to record itself; once it has, an interruption is its status (exit code 130).
    """
    from dnnbench.executor import Executor  # the run engine: only when something runs

    try:
        outcome = Executor(loaded, events, run_id=run_id, argv=argv, tags=tags).run()
    except Exception as e:  # noqa: BLE001 - a failing variant is recorded; the multi-run goes on
        code = e.exit_code if isinstance(e, BenchError) else EXIT_FAILED
        reason = str(e) if isinstance(e, BenchError) else f"{type(e).__name__}: {e}"
        run_dir = record_failure(loaded, run_id, tags, reason)
        return RunRecord(tags["variant"], tags["repeat"], run_dir, code, "failed", reason, reason)
    error = str(outcome.error) if outcome.error is not None else None
    return RunRecord(tags["variant"], tags["repeat"], outcome.run_dir, outcome.exit_code,
                     str(outcome.row.get("status") or "failed"), outcome.row.get("reason") or error, error)


def record_failure(loaded: LoadedConfig, run_id: str | None, tags: dict[str, Any], reason: str) -> Path:
    """A run that failed before it started (missing prefix, unreachable endpoint, ...): write
    its run directory (summary.csv marked failed, with the reason; config.yaml) and append its
    summary row, so the multi-run's record has every variant."""
    cfg = loaded.config
    out = cfg.metrics.output_dir
    try:
        run_dir = create_run_dir(out, run_id, loaded.stem)
    except ConfigError:
        run_dir = create_run_dir(out, None, loaded.stem)
    raw = cfg.model_dump(mode="json")
    secrets = secret_values(raw)
    row = _failed_row(loaded, run_dir.name, redact(reason, secrets))
    row.update(tags)
    write_row_csv(run_dir / "summary.csv", row)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(redact(raw, secrets), sort_keys=False))
    append_summary(out, row)
    return run_dir


def _failed_row(loaded: LoadedConfig, run_id: str, reason: str) -> dict[str, Any]:
    """The summary row of a run that failed in setup: every column, what the config says filled in."""
    cfg = loaded.config
    s = cfg.storage
    storage = s.name or (f"fs:{s.root}" if s.root is not None else f"s3://{s.s3.bucket}" if s.s3 else s.client)
    row: dict[str, Any] = empty_row()
    row.update(run_id=run_id, status="failed", failed_phase="setup", reason=reason,
               started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), config=loaded.stem, framework=cfg.framework.name,
               storage=storage, client=STORAGE.canonical(s.client), access=cfg.dataset.access, decode=cfg.dataset.decode,
               dataset=cfg.dataset.name, trainer=cfg.training.trainer, workers=cfg.framework.num_workers,
               batch_size=cfg.framework.batch_size, epochs=cfg.training.epochs)
    return row
