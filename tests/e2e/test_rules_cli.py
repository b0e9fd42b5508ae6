"""The run rules end to end: a run built to follow them (500 one-sample steps, a dataset larger
than the configured client memory) passes and exits 0 under --rules mlperf; the same run with
fewer steps per epoch exits 4, its figures still written and the failed rule named."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from dnnbench.cli import main


@pytest.fixture(scope="module")
def root500(tmp_path_factory) -> Path:
    """2 classes x 250 tiny JPEGs: 500 samples."""
    from dnnbench.config.schema import StorageConfig
    from dnnbench.data.synthetic import generate
    from dnnbench.storage.fs import FileSystemStorage

    root = tmp_path_factory.mktemp("rules")
    generate(FileSystemStorage(StorageConfig(root=str(root))), "train", 2, 250, width=(8, 8), height=(8, 8),
             seed=2, workers=2)
    return root


def only_run(out: Path) -> Path:
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return run


@pytest.mark.parametrize("batch,code,steps_rule", [(1, 0, "pass"), (4, 4, "fail")])
def test_rules_mlperf_passes_a_run_that_follows_them_and_fails_one_that_does_not(
        root500, write_config, tmp_path, capsys, batch, code, steps_rule):
    cfg = write_config(root500, dataset={"decode": "none"}, framework={"batch_size": batch, "num_workers": 0},
                       rules={"client_memory_GiB": 1e-6})  # ~1 KiB of "client memory": the data is > 5x it
    assert main(["-q", "run", "--config", str(cfg), "--rules", "mlperf"]) == code
    err = capsys.readouterr().err
    assert ("breaks MLPerf Storage's run rules: steps_per_epoch" in err) == (code == 4)
    run = only_run(tmp_path / "results")
    row = pd.read_csv(run / "summary.csv").iloc[0]
    assert row["status"] == "ok" and row["epoch_steps_min"] == 500 // batch
    assert (row["rule_dataset_size"], row["rule_steps_per_epoch"], row["rule_repeats"]) == (
        "pass", steps_rule, "not_applicable")
    assert row["client_memory_bytes"] == int(1e-6 * 2**30) and row["cache_assisted"] == "no"
    doc = json.loads((run / "summary.json").read_text())
    assert doc["rules"]["enforce"] == "mlperf" and doc["rules"]["steps_per_epoch"]["verdict"] == steps_rule
    assert doc["figures"]["samples"] == 500 and doc["run"]["run_id"] == run.name
    assert f"| steps per epoch | {steps_rule} | {500 // batch} | >= 500 |" in (run / "report.md").read_text()
    # the same verdicts in results/summary.csv
    assert list(pd.read_csv(tmp_path / "results" / "summary.csv")["rule_steps_per_epoch"]) == [steps_rule]


def test_without_rules_mlperf_a_failed_rule_is_reported_only(root500, write_config, tmp_path, capsys):
    cfg = write_config(root500, dataset={"decode": "none"}, framework={"batch_size": 50})
    assert main(["run", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "rule steps_per_epoch (min)" in out and "fail (10)" in out
    row = pd.read_csv(only_run(tmp_path / "results") / "summary.csv").iloc[0]
    assert row["rule_steps_per_epoch"] == "fail" and row["rule_dataset_size"] == "fail"
    assert row["cache_assisted"] == "yes"


def test_a_sweep_under_rules_mlperf_exits_4_when_a_variants_repeats_do_not_qualify(root500, write_config, tmp_path,
                                                                                  capsys):
    cfg = write_config(root500, dataset={"decode": "none"}, framework={"batch_size": 1},
                       training={"trainer": "read", "epochs": 1, "max_steps": 500}, repeat=2,
                       rules={"client_memory_GiB": 1e-6})
    assert main(["-q", "run", "--config", str(cfg), "--rules", "mlperf", "--run-id", "rr"]) == 4
    err = capsys.readouterr().err
    assert "rule repeats, tiny: fail (2 runs ok" in err and "run rules: repeats (tiny)" in err
    summary = pd.read_csv(tmp_path / "results" / "summary.csv")
    assert list(summary["status"]) == ["ok", "ok"] and set(summary["rule_steps_per_epoch"]) == {"pass"}
    doc = json.loads((tmp_path / "results" / "compare-rr" / "summary.json").read_text())
    assert doc["rules"]["enforce"] == "mlperf" and doc["variants"][0]["rules"]["repeats"]["verdict"] == "fail"
