"""``benchmark.py predict``: probe, model every grid point, show and write the table; with
``--check``, run a sample of the points for real and show the error of each prediction."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnnbench.config.loading import LoadedConfig
from dnnbench.events import Events
from dnnbench.predict import check as checking
from dnnbench.predict import plot, report
from dnnbench.predict.grid import parse_grid, plan_points, point_of
from dnnbench.predict.model import predict
from dnnbench.predict.probe import run_probe


@dataclass
class PredictResult:
    out_dir: Path
    rows: list[dict[str, Any]]
    text: list[str] = field(default_factory=list)
    interrupted: bool = False


def run(loaded: LoadedConfig, overrides: list[str], grid_args: list[str], events: Events, *,
        check: bool = False, check_points: int = 6, check_repeat: int = 3,
        run_id: str | None = None) -> PredictResult:
    """The whole predict command; the lines to print and what was written.

    Raises:
        ConfigError: a bad ``--grid`` or point (before anything is probed).
        BenchError: the probe's calibration run failed.
    """
    from dnnbench.multirun.runs import reserve

    points = plan_points(loaded, overrides, parse_grid(grid_args))  # bad input: nothing has run
    _, out_dir = reserve(loaded.config.metrics.output_dir, run_id, loaded.stem, "predict")
    probe = run_probe(loaded, overrides, out_dir, events)
    base = point_of(loaded)
    full = predict(probe, base)
    rows = [report.row_of(g.label, g.point, predict(probe, g.point)) for g in points]
    report.write_outputs(out_dir, rows, probe)  # the predictions are kept whatever the check does
    interrupted = False
    if check:
        measured, interrupted = checking.run_check(loaded, overrides, checking.sample(points, check_points),
                                                   out_dir, events, check_repeat)
        checking.merge(rows, measured, probe, points)
        report.write_outputs(out_dir, rows, probe)
    text = [*report.probe_lines(probe, full.wall_s), "model terms for the config as it is "
            f"(bound: {full.bound or 'beyond the model: ' + str(full.beyond)}):",
            *report.term_lines(probe, full, base), "predicted (samples/s, MiB/s, AU: the model's, not measured):",
            report.table(rows, report.grid_columns(points), check)]
    text += [f"beyond the model: {r['point']}: {r['beyond_model']}" for r in rows if r["beyond_model"]]
    if check:
        text.append(checking.summary(rows) or "check: no point could be compared")
        text += [line for line in (checking.summary(rows, "error_at_load_percent", "at the load seen"),
                                   checking.spread_line(rows), checking.load_line(probe, rows)) if line]
    if interrupted:
        text.append("check interrupted: the points measured so far are compared")
    picture = plot.write_plot(rows, out_dir / "predict.png", f"{loaded.stem}: predicted samples/s"
                              + (" and measured (--check)" if check else ""))
    text.append(f"predict: {out_dir}/predict.csv (probe: probe.json" + (", plot: predict.png)" if picture else ")"))
    return PredictResult(out_dir, rows, text, interrupted)
