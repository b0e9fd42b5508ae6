"""The run's artefacts: its CSVs (through :func:`dnnbench.reporting.report.build_reports`),
summary.csv, config.yaml and environment.json in the run directory, and its row in
``results/summary.csv``; with several ranks, each rank's in ``rank-K/`` and rank 0's aggregate,
ranks.csv (each rank's row with where and when it ran) and nodes.csv (each node's ranks
combined). The run rules are checked on the run's row (:mod:`dnnbench.reporting.rules`);
summary.json and report.md go beside the CSVs (:mod:`dnnbench.reporting.documents`).

Written with stop signals held (see :mod:`dnnbench.signals`): one that arrives meanwhile marks
the run interrupted and the report is still written. A report that cannot be written (a full
disk) leaves the smallest record (:meth:`RunWriter.last_record`). Secrets are never written.
"""

from __future__ import annotations

import contextlib
import errno
import json
from pathlib import Path
from typing import Any

import yaml

from dnnbench import signals
from dnnbench.config.loading import LoadedConfig
from dnnbench.config.redact import redact, secret_values
from dnnbench import failures
from dnnbench.errors import BenchError, RunFailed
from dnnbench.events import Events
from dnnbench.frameworks.protocols import Runner
from dnnbench.reporting.aggregate import by_node
from dnnbench.reporting.columns import RANK_COLUMNS
from dnnbench.reporting.documents import write_run_documents
from dnnbench.reporting.report import RunFacts, build_reports, status_row
from dnnbench.reporting.rules import check_rules
from dnnbench.results import append_summary, check_summary, write_row_csv, write_rows_csv
from dnnbench.run.coordinator import Coordinator
from dnnbench.run.environment import environment
from dnnbench.run.nodes import host_memory_bytes
from dnnbench.run.skips import Skipped
from dnnbench.storage.base import Storage

Row = dict[str, Any]


class RunWriter:
    """Writes what one run measured.

    Args:
        loaded: the run's config (written out redacted).
        coordinator: labels this process's row and combines the ranks' rows.
        events: where the summary is shown.
        argv: the command line (environment.json).
        skipped: the run's skipped samples (environment.json).
    """

    def __init__(self, loaded: LoadedConfig, coordinator: Coordinator, events: Events, argv: list[str],
                 skipped: Skipped):
        self.loaded = loaded
        self.output_dir = loaded.config.metrics.output_dir
        self.coordinator = coordinator
        self.events = events
        self.argv = argv
        self.skipped = skipped

    def check_summary(self) -> None:
        """Before anything runs: results/summary.csv can be appended to (see
        :func:`dnnbench.results.check_summary`)."""
        check_summary(self.output_dir)

    def redacted(self, row: Row) -> Row:
        secrets = secret_values(self.loaded.config.model_dump(mode="json"))
        return {k: redact(v, secrets) if isinstance(v, str) else v for k, v in row.items()}

    def report(self, facts: RunFacts, storage: Storage, runner: Runner | None, held: signals.Held,
               run_dir: Path) -> Row:
        """Write the report of this process into ``facts.run_dir``, then the run's summary row
        (rank 0: the ranks' aggregate) into ``run_dir`` and results/summary.csv. Returns the
        run's row (other ranks: their own)."""
        signals.pause_point("report", held)  # tests: a stop signal delivered while the report is written
        row = build_reports(facts)
        signals.pause_point("report-summary", held)
        if held.received and facts.status == "ok":  # the status is decided here: later signals find it written
            facts.status, facts.failed_phase = "interrupted", "report"
            facts.reason = "interrupted by the user while the report was written"
            row.update(status=facts.status, failed_phase=facts.failed_phase, reason=facts.reason)
        row["client_memory_bytes"] = host_memory_bytes()
        row = self.redacted(self.coordinator.label(row))
        self._write_files(facts, storage, runner, row)
        combined = self.coordinator.combine(row, facts)
        if combined is None:  # another rank speaks for the run
            return row
        run_row, ranks = combined
        unmeasured = {**({} if ranks else facts.unmeasured), **check_rules(run_row, self.loaded.config)}
        nodes = by_node(ranks) if ranks else []
        if ranks:
            write_rows_csv(run_dir / "ranks.csv", ranks, RANK_COLUMNS)
            write_rows_csv(run_dir / "nodes.csv", nodes, ["node", "host"])
        write_row_csv(run_dir / "summary.csv", run_row)  # the run's row, with the rules' verdicts
        append_summary(self.output_dir, run_row)
        write_run_documents(run_dir, run_row, ranks, nodes, unmeasured, self.loaded.config.rules.enforce)
        self.events.summary(run_row, str(run_dir), unmeasured)
        return run_row

    def _write_files(self, facts: RunFacts, storage: Storage, runner: Runner | None, row: Row) -> None:
        """summary.csv, config.yaml and environment.json of this process; its request parts removed."""
        raw = self.loaded.config.model_dump(mode="json")
        secrets = secret_values(raw)
        write_row_csv(facts.run_dir / "summary.csv", row)
        (facts.run_dir / "config.yaml").write_text(yaml.safe_dump(redact(raw, secrets), sort_keys=False))
        env = environment(storage, runner, facts, self.loaded.notices, self.argv)
        env["skipped_samples"] = self.skipped.describe()
        env["distributed"] = self.coordinator.describe()
        (facts.run_dir / "environment.json").write_text(json.dumps(redact(env, secrets), indent=2, default=str))
        cleanup_request_parts(facts.run_dir)

    def last_record(self, facts: RunFacts) -> Row:
        """The smallest record of a run whose report could not be written: its temporary files
        removed (they may hold the space it needs), then its status row and counted totals in
        the run's summary.csv and results/summary.csv, as far as either can be written."""
        with signals.ignored():
            cleanup_request_parts(facts.run_dir)
            row = self.redacted(self.coordinator.label(status_row(facts)))
            with contextlib.suppress(OSError):
                write_row_csv(facts.run_dir / "summary.csv", row)
            self.coordinator.on_main(lambda: self._append_status(row))
        return row

    def _append_status(self, row: Row) -> None:
        try:
            append_summary(self.output_dir, row)
        except (OSError, BenchError) as e:
            self.events.warning(f"the status row could not be added to results/summary.csv: {e}")


def report_error(e: BaseException, run_dir: Path) -> BenchError:
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


def cleanup_request_parts(run_dir: Path) -> None:
    """Remove the request log's part files (merged into requests.csv, or given up)."""
    parts = run_dir / ".requests"
    if parts.is_dir():
        for p in parts.iterdir():
            p.unlink()
        parts.rmdir()
