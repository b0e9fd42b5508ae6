"""Sweeps: several runs in one invocation.

A sweep's plan (``dnnbench.multirun.plan``) is a list of variants, each validated before
anything runs; then each variant runs ``repeat`` times as a full run (its own run directory
and ``results/summary.csv`` row, tagged ``sweep_id``, ``variant``, ``repeat``). Repeats are
interleaved (A1 B1 A2 B2 ...) so slow drift (page cache, a noisy neighbour) spreads over
every variant instead of biasing one. A variant that fails is recorded with its reason, and
the sweep goes on; Ctrl-C stops it.

The sweep id names ``<output_dir>/compare-<sweep id>/``, reserved with an atomic mkdir at
the start (so ids are unique); it holds ``sweep.json`` (the plan and the run ids, rewritten
after each run) and, written by the caller, the comparison of the sweep.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from dnnbench.config.redact import redact, secret_values
from dnnbench.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from dnnbench.events import Events, NullEvents
from dnnbench.multirun.plan import SweepPlan, Variant, check_plugins
from dnnbench.multirun.runs import RunRecord, reserve, run_in_process, run_tags
from dnnbench.results import plain, read_row, replace_text


@dataclass
class SweepResult:
    sweep_id: str
    compare_dir: Path
    runs: list[RunRecord] = field(default_factory=list)
    interrupted: bool = False

    @property
    def failed(self) -> list[RunRecord]:
        return [r for r in self.runs if r.status != "ok"]

    @property
    def run_dirs(self) -> list[Path]:
        return [r.run_dir for r in self.runs if r.run_dir is not None]

    @property
    def exit_code(self) -> int:
        """130 when interrupted, 1 when any run failed (whatever its own code), else 0."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if self.failed else EXIT_OK


class _VariantEvents:
    """Forwards a run's events, but keeps its big summary table back: the sweep prints one
    line per run and the comparison at the end."""

    def __init__(self, inner: Events):
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def summary(self, row: dict[str, Any], run_dir: str, unmeasured: dict[str, str]) -> None:
        pass


def _emit(events: Any, name: str, *args: Any) -> None:
    """Sweep progress goes to the UI when it draws it (``RichEvents``); other sinks ignore it."""
    fn = getattr(events, name, None)
    if fn is not None:
        fn(*args)


def run_sweep(p: SweepPlan, events: Events | None = None, sweep_id: str | None = None,
              argv: list[str] | None = None) -> SweepResult:
    """Run every variant ``repeat`` times (interleaved); record failures and go on.

    Raises:
        ConfigError: an explicit ``sweep_id`` is taken already.
    """
    events = events or NullEvents()
    check_plugins(p, events)
    sid, cdir = reserve(p.base.config.metrics.output_dir, sweep_id, p.base.stem, "compare")
    result = SweepResult(sid, cdir)
    _emit(events, "sweep_start", sid, [v.label for v in p.variants], p.repeat)
    for n, (i, v, rep) in enumerate(_schedule(p), start=1):
        _emit(events, "variant_start", n, p.runs, v.label, rep, p.repeat)
        try:
            run = run_in_process(v.loaded, _VariantEvents(events), _run_id(sid, i, v.label, rep, p.repeat),
                                 run_tags(sid, v.label, rep), argv)
        except KeyboardInterrupt:  # Ctrl-C, and SIGTERM (errors.Interrupted is one)
            result.interrupted = True
            break
        result.runs.append(run)
        _emit(events, "variant_end", n, p.runs, v.label, rep, p.repeat, run.status, run.reason,
              str(run.run_dir) if run.run_dir else None, read_row(run.run_dir) or {})
        _write_manifest(p, result)
        if run.exit_code == EXIT_INTERRUPTED:
            result.interrupted = True
            break
    _write_manifest(p, result)
    return result


def _schedule(p: SweepPlan) -> Iterator[tuple[int, Variant, int]]:
    """(index, variant, repeat) in run order: every variant once, then every variant again."""
    for rep in range(1, p.repeat + 1):
        for i, v in enumerate(p.variants):
            yield i, v, rep


def _run_id(sid: str, index: int, label: str, rep: int, repeats: int) -> str:
    name = plain(label).strip("_")[:40] or "variant"
    return f"{sid}-v{index + 1}-{name}" + (f"-r{rep}" if repeats > 1 else "")


def _write_manifest(p: SweepPlan, result: SweepResult) -> None:
    """``compare-<id>/sweep.json``: the plan (overrides redacted) and what ran, as it goes."""
    raw = p.base.config.model_dump(mode="json")
    secrets = secret_values(raw)
    doc = {
        "sweep_id": result.sweep_id, "config": str(p.base.path) if p.base.path else None, "kind": p.kind,
        "repeat": p.repeat, "interrupted": result.interrupted,
        "variants": [{"label": v.label, "set": redact(v.overrides, secrets)} for v in p.variants],
        "runs": [{"variant": r.variant, "repeat": r.repeat, "run_dir": str(r.run_dir) if r.run_dir else None,
                  "status": r.status, "exit_code": r.exit_code, "reason": r.reason} for r in result.runs],
    }
    replace_text(result.compare_dir / "sweep.json", json.dumps(doc, indent=2, default=str))
