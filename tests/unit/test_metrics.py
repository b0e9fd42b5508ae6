"""Metric definitions: AU, throughput units, percentiles, byte check, unmeasured reasons."""

from __future__ import annotations

import dataclasses
import os

import pandas as pd
import pytest

from dnnbench.reporting.columns import SUMMARY_COLUMNS
from dnnbench.reporting.identity import RunIdentity
from dnnbench.reporting.report import RunFacts, build_reports, status_row
from dnnbench.recording.requests import COLUMNS, append_part
from dnnbench.recording.steps import EpochRecord


def facts(tmp_path, steps, epochs, **kw):
    (tmp_path / ".requests").mkdir(exist_ok=True)
    kw.setdefault("identity", {})
    return RunFacts(run_id="r", run_dir=tmp_path, started_at="now", t0=0.0, steps=steps, epochs=epochs, **kw)


def write_requests(tmp_path, rows):
    assert all(len(r) == len(COLUMNS) for r in rows)
    append_part(tmp_path / ".requests" / "requests-1.part", rows)


def test_throughput_au_and_units(tmp_path):
    mib = 2**20
    # 4 steps of 1 MiB: wait 0.1 s + compute 0.4 s each; first step is warm-up
    steps = [[0, i, i * 0.5, 0.1, 0.4, 10, mib, None, 0] for i in range(4)]
    ep = EpochRecord(0, start=0.0, end=2.0, first_batch_s=0.1, steps=4, samples=40, bytes=4 * mib, complete=True)
    write_requests(tmp_path, [["get", f"k{i}", 1, 0, 0, 0.0, None, (i + 1) / 1000, 100, 0.001, None, 0]
                              for i in range(100)])
    f = facts(tmp_path, steps, [ep], warmup_steps=1, train_start=0.0, train_end=2.0, ttfb_reason="no ttfb")
    row = build_reports(f)
    assert row["MiB_per_s"] == pytest.approx(2.0)
    assert row["MB_per_s"] == pytest.approx(4 * mib / 1e6 / 2.0)
    assert row["samples_per_s"] == pytest.approx(20.0)
    assert row["au_percent"] == pytest.approx(80.0)
    assert row["steady_MiB_per_s"] == pytest.approx(3 / 1.5)
    assert row["time_to_first_batch_s"] == pytest.approx(0.1)
    assert row["request_p50_ms"] == pytest.approx(50.5)
    assert row["request_max_ms"] == pytest.approx(100.0)
    assert row["request_ttfb_p50_ms"] is None and f.unmeasured["request_ttfb_p50_ms"] == "no ttfb"
    assert row["decode_p50_ms"] == pytest.approx(1.0)
    assert row["read_share_percent"] == pytest.approx(100 * 5050 / (5050 + 100))
    assert row["requests"] == 100 and row["errors"] == 0
    assert set(SUMMARY_COLUMNS) <= set(row)
    for name in ("steps", "epochs", "requests", "system"):
        assert (tmp_path / f"{name}.csv").exists()
    assert list(pd.read_csv(tmp_path / "requests.csv").columns) == [
        "op", "key", "pid", "worker", "epoch", "start_s", "latency_ms", "ttfb_ms", "bytes", "decode_ms",
        "error", "retries"]


@pytest.mark.parametrize("epoch_bytes,failed,full,expected", [
    (1000, 0, True, "ok"), (999, 0, True, "mismatch"), (1000, 0, False, "not_checked"), (1000, 2, True, "not_checked")])
def test_byte_check(tmp_path, epoch_bytes, failed, full, expected):
    ep = EpochRecord(0, start=0.0, end=1.0, steps=1, samples=1, bytes=epoch_bytes, failed_samples=failed,
                     complete=True, expected_bytes=1000 if full else None)
    write_requests(tmp_path, [])
    f = facts(tmp_path, [[0, 0, 0.0, 0.5, 0.5, 1, epoch_bytes, None, failed]], [ep], train_start=0.0,
              train_end=1.0)
    assert build_reports(f)["byte_check"] == expected


def test_errors_and_retries_counted(tmp_path):
    write_requests(tmp_path, [["get", "a", 1, 0, 0, 0.0, 0.0005, 0.001, 10, None, None, 2],
                              ["get", "b", 1, 0, 0, 0.0, None, 0.001, 0, None, "OSError: x", 3]])
    f = facts(tmp_path, [], [], train_start=0.0, train_end=1.0)
    row = build_reports(f)
    assert row["errors"] == 1 and row["retries"] == 5
    assert row["request_ttfb_p50_ms"] == pytest.approx(0.5)


def test_empty_run_has_columns(tmp_path):
    write_requests(tmp_path, [])
    row = build_reports(facts(tmp_path, [], [], status="failed", reason="x"))
    assert row["status"] == "failed" and row["samples"] == 0 and row["MiB_per_s"] is None
    assert os.path.getsize(tmp_path / "steps.csv") > 0


@dataclasses.dataclass(frozen=True)
class InferenceResult:  # what a runner's inference phase returns: field names are column names
    infer_samples: int
    infer_bytes: int
    infer_wall_s: float
    infer_failed: int


def test_phase_figures_reach_the_summary_and_unknown_ones_are_refused(tmp_path):
    write_requests(tmp_path, [])
    f = facts(tmp_path, [], [], train_start=0.0, train_end=1.0)
    f.add_phase(InferenceResult(9, 12_345, 0.5, 2))
    f.add_phase({"checkpoint_bytes": 100, "checkpoint_verified": "ok"})
    with pytest.raises(ValueError, match="infer_latency_ms"):
        f.add_phase({"infer_samples": 1, "infer_latency_ms": 3.0})
    assert f.extra["infer_samples"] == 9  # nothing of a refused result is recorded
    f.extra["not_a_column"] = 1  # the executor's plain dict entry point: only columns are written
    row = build_reports(f)
    assert (row["infer_samples"], row["infer_bytes"], row["infer_wall_s"], row["infer_failed"]) == (9, 12_345, 0.5, 2)
    assert row["checkpoint_verified"] == "ok" and "not_a_column" not in row
    assert list(row) == SUMMARY_COLUMNS
    small = status_row(f)
    assert small["infer_bytes"] == 12_345 and list(small) == SUMMARY_COLUMNS


def test_the_typed_identity_fills_the_identity_columns(tmp_path):
    write_requests(tmp_path, [])
    ident = RunIdentity("cfg", "pytorch", "fs:d", "fs", "shards", "rgb", "image_folder", None, "read", 2, 8, 1, 1, "no")
    row = build_reports(facts(tmp_path, [], [], identity=ident))
    assert (row["config"], row["access"], row["workers"], row["emulated"], row["sweep_id"]) == (
        "cfg", "shards", 2, "no", None)
