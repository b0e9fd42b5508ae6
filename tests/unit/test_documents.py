"""summary.json (typed values, units in the names, identity, rules) and report.md, of a run and
of a sweep, from fabricated rows."""

from __future__ import annotations

import json

import pandas as pd

from dnnbench.reporting import documents
from dnnbench.reporting.columns import COLUMNS


def run_row(**values):
    row = {"run_id": "r1", "status": "ok", "failed_phase": None, "reason": None, "started_at": "2026-12-02T12:00:00",
           "framework": "pytorch", "storage": "fs:/data", "client": "fs", "trainer": "read", "workers": "2",
           "batch_size": 8, "steps": "128", "samples": 1024, "bytes": "4194304", "MiB_per_s": "12.5",
           "samples_per_s": 3000.0, "au_percent": float("nan"), "cache": "warm", "bytes_listed": 2097152,
           "client_memory_bytes": 2**34, "dataset_memory_ratio": 2**21 / 2**34, "cache_assisted": "yes",
           "epoch_steps_min": 64, "rule_dataset_size": "fail", "rule_steps_per_epoch": "fail",
           "rule_repeats": "not_applicable", "sweep_id": None, "variant": None, "repeat": None}
    return {**row, **values}


def test_summary_json_types_every_value_by_its_column(tmp_path):
    ranks = [{"rank": "0", "node": 0, "host": "a", "done_s": "1.5", "MiB_per_s": 6.0},
             {"rank": 1, "node": "1", "host": "b", "done_s": 2.0, "MiB_per_s": "6.5"}]
    documents.write_run_documents(tmp_path, run_row(), ranks, [{"node": 0, "host": "a", "bytes": "10"}],
                                  {"au_percent": "no steps after the warm-up"}, "mlperf")
    doc = json.loads((tmp_path / "summary.json").read_text())
    assert doc["schema"] == "dnnbench.summary/1" and doc["kind"] == "run"
    assert doc["run"] == {"run_id": "r1", "status": "ok", "failed_phase": None, "reason": None,
                          "started_at": "2026-12-02T12:00:00", "sweep_id": None, "variant": None, "repeat": None}
    assert doc["identity"] == {"framework": "pytorch", "storage": "fs:/data", "client": "fs", "trainer": "read",
                               "workers": 2, "batch_size": 8}
    figures = doc["figures"]
    assert figures["steps"] == 128 and figures["bytes"] == 4194304 and figures["MiB_per_s"] == 12.5
    assert figures["au_percent"] is None and figures["cache"] == "warm"
    for name, value in figures.items():  # units in names, types as declared
        assert value is None or isinstance(value, COLUMNS[name].type), name
    assert "rule_dataset_size" not in figures and doc["units"]["MiB_per_s"] == "MiB/s"
    assert doc["rules"]["enforce"] == "mlperf"
    assert doc["rules"]["dataset_size"] == {"verdict": "fail", "dataset_bytes": 2097152,
                                            "client_memory_bytes": 2**34, "dataset_memory_ratio_x": 2**-13,
                                            "required_ratio_x": 5.0, "cache_assisted": "yes"}
    assert doc["rules"]["steps_per_epoch"] == {"verdict": "fail", "epoch_steps_min": 64, "required_steps": 500}
    assert doc["rules"]["repeats"]["verdict"] == "not_applicable"
    assert doc["ranks"] == [{"rank": 0, "node": 0, "host": "a", "done_s": 1.5, "MiB_per_s": 6.0},
                            {"rank": 1, "node": 1, "host": "b", "done_s": 2.0, "MiB_per_s": 6.5}]
    assert doc["nodes"] == [{"node": 0, "host": "a", "bytes": 10}]
    assert doc["unmeasured"] == {"au_percent": "no steps after the warm-up"}


def test_report_md_has_the_headline_the_table_the_rules_and_the_files(tmp_path):
    (tmp_path / "summary.csv").write_text("x\n")
    (tmp_path / "epochs.csv").write_text("x\n")
    documents.write_run_documents(tmp_path, run_row(), [{"rank": 0, "node": 0, "host": "a", "done_s": 1.5}], [],
                                  {}, "none")
    md = (tmp_path / "report.md").read_text()
    lines = md.splitlines()
    assert lines[0] == "# dnnbench run r1"
    assert lines[2] == "**ok** · 12.50 MiB/s · 3,000.0 samples/s · AU — % · pytorch on fs:/data (fs), read"
    assert "| MiB_per_s | 12.50 |" in lines and "| bytes | 4,194,304 |" in lines
    assert "| au_percent |" not in md  # not measured: left out of the table
    assert "| dataset size | fail | 0.000122x the client memory (cache-assisted) | >= 5x |" in lines
    assert "| steps per epoch | fail | 64 | >= 500 |" in lines
    assert "Enforced: no" in lines
    assert "| 0 | 0 | a | — | 1.500 | — | — | — |" in lines  # the ranks table
    assert "[summary.csv](summary.csv) · [epochs.csv](epochs.csv) · [summary.json](summary.json)" in lines
    assert "[requests.csv]" not in md  # only files that exist


def sweep_rows(variant, values, statuses=None):
    statuses = statuses or ["ok"] * len(values)
    return pd.DataFrame({"variant": variant, "status": statuses, "samples_per_s": values,
                         "run_id": [f"{variant}-{k}" for k in range(len(values))]})


def test_sweep_documents_check_the_repeats_of_each_variant(tmp_path):
    groups = {"a": sweep_rows("a", [100, 101, 102, 100, 101]),
              "b": sweep_rows("b", [100, 120, 100, 100, 100, 100], ["ok", "ok", "ok", "ok", "ok", "failed"])}
    table = pd.DataFrame([
        {"variant": "a", "status": "ok", "runs": 5, "ok_runs": 5, "run_ids": "a-0 a-1 a-2 a-3 a-4",
         "MiB_per_s_mean": 10.0, "samples_per_s_mean": 100.8},
        {"variant": "b", "status": "partial", "runs": 6, "ok_runs": 5, "run_ids": "b-0 b-1 b-2 b-3 b-4 b-5",
         "MiB_per_s_mean": float("nan"), "samples_per_s_mean": 104.0}])
    (tmp_path / "throughput.png").write_bytes(b"png")
    doc = documents.write_sweep_documents(tmp_path, "s1", 5, groups, table, "mlperf")
    assert json.loads((tmp_path / "summary.json").read_text()) == doc
    a, b = doc["variants"]
    assert a["rules"]["repeats"]["verdict"] == "pass" and a["rules"]["repeats"]["spread_percent"] < 2.0
    assert b["rules"]["repeats"]["verdict"] == "fail" and b["rules"]["repeats"]["spread_percent"] > 19.0
    assert a["means"] == {"MiB_per_s": 10.0, "samples_per_s": 100.8} and b["means"]["MiB_per_s"] is None
    assert a["run_ids"] == ["a-0", "a-1", "a-2", "a-3", "a-4"] and b["ok_runs"] == 5
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("# dnnbench sweep s1\n\n2 variants x 5 repeats; runs ok: 10 of 11")
    assert "![throughput.png](throughput.png)" in md and "latency_cdf.png" not in md
    assert "| b | 5/6 | — | 104.0 | — | — | 19.23 | fail |" in md
