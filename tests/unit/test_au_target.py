"""AU against a target (issue 15.4): summary.csv's au_target_percent and au_meets_target, the
multi-rank verdict from the ranks' mean AU, the printed pass/fail, au-search's default target."""

from __future__ import annotations

from pathlib import Path

import pytest

from dnnbench.config.loading import load_config
from dnnbench.multirun import au_search
from dnnbench.recording.steps import EpochRecord
from dnnbench.reporting.aggregate import aggregate
from dnnbench.reporting.columns import COLUMNS, SUMMARY_COLUMNS, meets_target
from dnnbench.reporting.report import RunFacts, build_reports, status_row
from dnnbench.ui.summary import headline, summary_pairs

ROOT = Path(__file__).resolve().parents[2]
MiB = 2**20


def test_columns_declared_once_after_au_percent():
    i = SUMMARY_COLUMNS.index("au_percent")
    assert SUMMARY_COLUMNS[i + 1:i + 3] == ["au_target_percent", "au_meets_target"]
    assert COLUMNS["au_target_percent"].unit == "%" and COLUMNS["au_meets_target"].type is str


@pytest.mark.parametrize("au, target, verdict", [(90.0, 90.0, "true"), (89.99, 90, "false"), (95, None, None),
                                                 (None, 90, None), ("", 70.0, None), ("71.5", "70", "true")])
def test_meets_target(au, target, verdict):
    assert meets_target(au, target) == verdict


def run_row(tmp_path, target):
    """4 steps of wait 0.1 s + compute 0.4 s, the first a warm-up: AU 80 %."""
    (tmp_path / ".requests").mkdir(exist_ok=True)
    steps = [[0, i, i * 0.5, 0.1, 0.4, 10, MiB, None, 0] for i in range(4)]
    ep = EpochRecord(0, start=0.0, end=2.0, first_batch_s=0.1, steps=4, samples=40, bytes=4 * MiB, complete=True)
    f = RunFacts(run_id="r", run_dir=tmp_path, started_at="now", t0=0.0, identity={}, steps=steps, epochs=[ep],
                 warmup_steps=1, train_start=0.0, train_end=2.0, au_target_percent=target)
    return f, build_reports(f)


@pytest.mark.parametrize("target, verdict", [(70.0, "true"), (80.0, "true"), (90.0, "false"), (None, None)])
def test_summary_row_has_the_target_and_the_verdict(tmp_path, target, verdict):
    f, row = run_row(tmp_path, target)
    assert row["au_percent"] == pytest.approx(80.0)
    assert row["au_target_percent"] == target and row["au_meets_target"] == verdict
    assert status_row(f)["au_target_percent"] == target and status_row(f)["au_meets_target"] is None


def test_ranks_verdict_is_the_mean_au_against_the_target():
    rows = [{"rank": 0, "au_percent": 95.0, "au_target_percent": 90.0, "au_meets_target": "true"},
            {"rank": 1, "au_percent": 84.0, "au_target_percent": 90.0, "au_meets_target": "false"}]
    out = aggregate(rows)
    assert out["au_percent"] == pytest.approx(89.5) and out["au_target_percent"] == 90.0
    assert out["au_meets_target"] == "false"
    rows[1]["au_percent"] = 86.0
    assert aggregate(rows)["au_meets_target"] == "true"


def test_printed_summary_says_pass_or_fail():
    row = {"run_id": "r", "status": "ok", "samples": 40, "steps": 4, "MiB_per_s": 2.0, "samples_per_s": 20.0,
           "au_percent": 80.0, "au_target_percent": 90.0, "au_meets_target": "false"}
    assert headline(row) == "2.00 MiB/s, 20.0 samples/s, AU 80.0 % (target 90.0 %: fail)"
    assert ("AU target % (pass/fail)", "90.0 (fail)") in summary_pairs(row)
    row.update(au_target_percent=70.0, au_meets_target="true")
    assert headline(row).endswith("(target 70.0 %: pass)")
    del row["au_target_percent"], row["au_meets_target"]
    assert headline(row) == "2.00 MiB/s, 20.0 samples/s"


class Stop(Exception):
    pass


@pytest.mark.parametrize("given, expected", [(None, 70.0), (50.0, 50.0)])
def test_au_search_takes_the_config_target_unless_given(given, expected, monkeypatch, tmp_path):
    seen = {}

    def find(measure, target, max_accelerators, repeats):
        seen["target"] = target
        raise Stop

    monkeypatch.setattr(au_search, "find", find)
    monkeypatch.setattr(au_search, "import_framework", lambda cfg: None)
    sets = [f"metrics.output_dir={tmp_path}"]
    loaded = load_config(ROOT / "config/workloads/dlio/mlperf-v1.0/cosmoflow_h100.yaml", sets)
    with pytest.raises(Stop):
        au_search.search(loaded, sets, None, target=given)
    assert seen["target"] == expected
