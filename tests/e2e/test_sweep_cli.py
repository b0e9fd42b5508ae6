"""End to end: sweeps, repeats, compare, the regression gate and the AU search, through
the CLI on the tiny generated dataset (3 classes x 12 JPEGs)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from dnnbench.cli import main
from dnnbench.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_REGRESSION

PNGS = ["latency_cdf.png", "throughput.png", "throughput_time.png"]


def runs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir() and (p / "summary.csv").is_file()) if out.exists() else []


def compare_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.name.startswith("compare-"))


@pytest.mark.slow
def test_grid_sweep_runs_every_variant_tagged_and_compares_them(tiny_root, write_config, tmp_path, capsys):
    cfg = write_config(tiny_root, dataset={"decode": "none"},
                       sweep={"grid": {"framework.num_workers": [0, 2], "framework.batch_size": [4, 8]}})
    assert main(["--config", str(cfg), "--run-id", "grid"]) == EXIT_OK
    out = tmp_path / "results"
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 4 and set(summary["status"]) == {"ok"} and set(summary["sweep_id"]) == {"grid"}
    # write_config dumps YAML with sorted keys: batch_size comes first in the grid
    assert list(summary["variant"]) == ["batch_size=4,num_workers=0", "batch_size=4,num_workers=2",
                                        "batch_size=8,num_workers=0", "batch_size=8,num_workers=2"]
    assert list(summary["batch_size"]) == [4, 4, 8, 8] and list(summary["workers"]) == [0, 2, 0, 2]
    assert set(summary["repeat"]) == {1} and summary["run_id"].is_unique
    assert all((out / r / "steps.csv").is_file() for r in summary["run_id"])
    (cmp,) = compare_dirs(out)
    assert cmp.name == "compare-grid"
    assert sorted(p.name for p in cmp.iterdir()) == sorted(["comparison.csv", "sweep.json", "summary.json",
                                                            "report.md", *PNGS])
    assert len(pd.read_csv(cmp / "comparison.csv")) == 4
    doc = json.loads((cmp / "summary.json").read_text())
    assert doc["kind"] == "sweep" and [v["ok_runs"] for v in doc["variants"]] == [1, 1, 1, 1]
    assert {v["rules"]["repeats"]["verdict"] for v in doc["variants"]} == {"not_applicable"}  # repeat: 1
    assert all(f"![{png}]({png})" in (cmp / "report.md").read_text() for png in PNGS)
    manifest = json.loads((cmp / "sweep.json").read_text())
    assert manifest["kind"] == "grid" and len(manifest["runs"]) == 4
    text = capsys.readouterr().out
    assert "run 4/4" in text and "dnnbench compare" in text and "(baseline)" in text


def test_a_failing_variant_is_recorded_and_the_sweep_goes_on(tiny_root, write_config, tmp_path, capsys):
    cfg = write_config(tiny_root, dataset={"decode": "none"}, sweep={"variants": [
        {"label": "good"}, {"label": "missing", "set": {"storage.prefixes": ["nope"]}},
        {"label": "big-batch", "set": {"framework.batch_size": 16}}]})
    assert main(["--config", str(cfg)]) == EXIT_FAILED  # documented: 1 when any variant failed
    out = tmp_path / "results"
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["variant"]) == ["good", "missing", "big-batch"]
    assert list(summary["status"]) == ["ok", "failed", "ok"]
    failed = summary.iloc[1]
    assert failed["failed_phase"] == "setup" and "nothing stored under prefix 'nope'" in failed["reason"]
    assert (out / failed["run_id"] / "summary.csv").is_file() and (out / failed["run_id"] / "config.yaml").is_file()
    (cmp,) = compare_dirs(out)
    table = pd.read_csv(cmp / "comparison.csv").set_index("variant")
    assert table.loc["missing", "status"] == "failed" and table.loc["good", "status"] == "ok"
    io = capsys.readouterr()
    assert "failed [2/3] missing" in io.out and "1 of 3 runs failed" in io.err


def test_a_bad_variant_stops_the_sweep_before_anything_runs(tiny_root, write_config, tmp_path, capsys):
    cfg = write_config(tiny_root, sweep={"variants": [
        {"label": "good"}, {"label": "typo", "set": {"framework.num_wrokers": 2}}]})
    assert main(["--config", str(cfg)]) == EXIT_BAD_INPUT
    assert "sweep.variants[1] (typo): framework.num_wrokers: extra inputs" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()
    cfg = write_config(tiny_root, name="c2.yaml", sweep={"variants": [
        {"label": "good"}, {"label": "client", "set": {"storage.client": "nosuch"}}]})
    assert main(["--config", str(cfg)]) == EXIT_BAD_INPUT
    assert "client: storage.client" in capsys.readouterr().err and not (tmp_path / "results").exists()
    assert main(["validate", "--config", str(cfg)]) == EXIT_BAD_INPUT


def test_repeats_give_mean_stdev_min_max_and_compare_reads_them_back(tiny_root, write_config, tmp_path, capsys):
    cfg = write_config(tiny_root, dataset={"decode": "none"}, repeat=3)
    assert main(["-q", "--config", str(cfg), "--run-id", "rep"]) == EXIT_OK
    out = tmp_path / "results"
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["repeat"]) == [1, 2, 3] and set(summary["variant"]) == {"tiny"}
    row = pd.read_csv(out / "compare-rep" / "comparison.csv").iloc[0]
    mib = summary["MiB_per_s"]
    assert row["runs"] == 3 and row["MiB_per_s_mean"] == pytest.approx(mib.mean(), rel=1e-4)
    assert row["MiB_per_s_stdev"] == pytest.approx(mib.std(ddof=1), rel=1e-3)
    assert (row["MiB_per_s_min"], row["MiB_per_s_max"]) == pytest.approx((mib.min(), mib.max()), rel=1e-4)
    (variant,) = json.loads((out / "compare-rep" / "summary.json").read_text())["variants"]
    assert variant["ok_runs"] == 3 and variant["rules"]["repeats"]["verdict"] == "fail"  # 3 runs, not 5
    assert "rule repeats, tiny: fail (3 runs ok" in capsys.readouterr().err  # reported; exit 0 without --rules
    # compare picks the runs again: by sweep, by the last N rows, by run directories
    assert main(["compare", "--results", str(out), "--sweep", "rep", "--no-plots"]) == EXIT_OK
    assert (out / "compare-rep-2" / "comparison.csv").is_file()
    assert main(["compare", "--results", str(out), "--last", "2", "--out", str(tmp_path / "c2")]) == EXIT_OK
    assert main(["compare", "--results", str(out), "--last", "2", "--out", str(tmp_path / "c2")]) == \
        EXIT_BAD_INPUT  # never over an earlier comparison
    assert sorted(p.name for p in (tmp_path / "c2").iterdir()) == sorted(["comparison.csv", *PNGS])
    dirs = [str(out / r) for r in summary["run_id"][:2]]
    assert main(["compare", *dirs, "--out", str(tmp_path / "c3"), "--no-plots", "--baseline", "nope"]) == \
        EXIT_BAD_INPUT
    assert "no variant 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_the_gate_exits_3_naming_each_regressed_metric(tiny_root, write_config, tmp_path, capsys):
    cfg = write_config(tiny_root, dataset={"decode": "none"})
    base = tmp_path / "baseline.json"
    assert main(["-q", "--config", str(cfg), "--save-baseline", str(base)]) == EXIT_OK
    assert json.loads(base.read_text())["variants"]["tiny"]["runs"] == 1
    capsys.readouterr()
    slow = ["--set", "storage.emulate.latency_ms=30"]
    # an emulated store is not the baseline's: refused, naming what differs ...
    assert main(["-q", "--config", str(cfg), *slow, "--baseline", str(base)]) == EXIT_BAD_INPUT
    err = " ".join(capsys.readouterr().err.split())
    assert "not like the baseline" in err and "emulated no -> yes:30ms" in err
    # ... unless asked for: then the slower store regresses every gated metric
    assert main(["-q", "--config", str(cfg), *slow, "--baseline", str(base), "--max-regression", "10%",
                 "--allow-mismatch"]) == EXIT_REGRESSION
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("REGRESSION")]
    assert [ln.split(": ")[1].split(" ")[0] for ln in lines] == ["MiB_per_s", "request_p99_ms",
                                                                 "time_to_first_batch_s"]
    # also on compare, against the run directory just made
    slow_run = pd.read_csv(tmp_path / "results" / "summary.csv")["run_id"].iloc[-1]
    assert main(["compare", str(tmp_path / "results" / slow_run), "--baseline", str(base), "--no-plots",
                 "--out", str(tmp_path / "cmp"), "--allow-mismatch"]) == EXIT_REGRESSION
    # within tolerance: an emulated baseline against the same emulated run
    slow_base = tmp_path / "slow.json"
    assert main(["-q", "--config", str(cfg), *slow, "--save-baseline", str(slow_base)]) == EXIT_OK
    capsys.readouterr()
    assert main(["-q", "--config", str(cfg), *slow, "--baseline", str(slow_base), "--max-regression", "50%"]) == \
        EXIT_OK  # 30 ms per request dominates every gated metric: the same run twice is well within 50 %
    assert "gate: ok (3 checks within 50%" in capsys.readouterr().out
    assert main(["-q", "--config", str(cfg), "--max-regression", "10%"]) == EXIT_BAD_INPUT
    assert main(["-q", "--config", str(cfg), "--baseline", str(tmp_path / "none.json")]) == EXIT_BAD_INPUT


def test_au_search_finds_a_count_and_prints_the_table(tiny_root, write_config, tmp_path, capsys):
    cfg = write_config(tiny_root, dataset={"decode": "none"}, framework={"batch_size": 4, "num_workers": 1},
                       storage={"emulate": {"latency_ms": 1}}, training={"trainer": "emulate", "epochs": 2,
                                                                        "warmup_steps": 1})
    assert main(["au-search", "--config", str(cfg), "--compute-time-s", "0.02", "--target-au", "30",
                 "--max-accelerators", "3", "--repeats", "2", "--run-id", "au"]) == EXIT_OK
    text = " ".join(capsys.readouterr().out.split())
    assert "AU search: target min AU >= 30 %" in text and "largest count with min AU >= 30 %" in text
    out = tmp_path / "results"
    table = pd.read_csv(out / "au-search-au" / "au_search.csv")
    tried = list(table["accelerators"])
    assert tried in ([1, 2], [1, 2, 3])  # doubling 1, 2, then the cap 3 (when 2 still feeds)
    assert table["passed"].iloc[0] and (table["min_au_percent"] <= table["mean_au_percent"]).all()
    best = max(table.loc[table["passed"], "accelerators"])
    assert f"min AU >= 30 %: {best} emulated accelerator" in text and f"margin: {best} at " in text
    # the counts either side of the answer are measured twice, the others once
    runs = table.set_index("accelerators")["measurements"]
    assert runs[best] == 2 and all(runs[n] == (2 if n == best + 1 else 1) for n in tried if n != best)
    assert (table["au_low"] <= table["au_percent"]).all() and (table["au_percent"] <= table["au_high"]).all()
    each = pd.read_csv(out / "au-search-au" / "au_search_runs.csv")
    assert len(each) == runs.sum() and sorted(each.loc[each["accelerators"] == best, "measurement"]) == [1, 2]
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == sum(n * runs[n] for n in tried)
    assert set(summary["sweep_id"]) == {"au"} and set(summary["trainer"]) == {"emulate"}
    assert sorted(summary.loc[summary["variant"] == "accelerators=2", "repeat"]) == list(range(1, 2 * runs[2] + 1))
    assert main(["au-search", "--config", str(cfg), "--target-au", "150", "--compute-time-s", "0.1"]) == \
        EXIT_BAD_INPUT
