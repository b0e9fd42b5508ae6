"""Comparison statistics, the regression gate, the plots and the compare table, on
hand-made run directories (no benchmark runs)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from dnnbench.errors import ConfigError, DataError
from dnnbench.reporting import compare, gate, outputs
from dnnbench.reporting.columns import SUMMARY_COLUMNS
from dnnbench.results import append_summary, write_row_csv


def fake_run(out: Path, run_id: str, variant: str | None, mib: float, p99: float = 1.0, ttfb: float = 0.1,
             status: str = "ok", sweep_id: str | None = "S1", repeat: int | None = 1, config: str = "cfg",
             **identity) -> Path:
    run = out / run_id
    run.mkdir(parents=True)
    row = {c: None for c in SUMMARY_COLUMNS}
    row.update(run_id=run_id, status=status, config=config, framework="pytorch", storage="fs:/d", client="fs",
               access="random", decode="none", dataset="image_folder", trainer="read", workers=2, batch_size=8,
               emulated="no", sweep_id=sweep_id, variant=variant, repeat=repeat)
    row.update(identity)
    if status == "ok":
        row.update(MiB_per_s=mib, samples_per_s=mib * 100, request_p50_ms=p99 / 2, request_p99_ms=p99,
                   time_to_first_batch_s=ttfb, au_percent=50.0, cpu_percent=80.0)
        rng = np.random.default_rng(len(run_id))
        pd.DataFrame({"op": ["get"] * 50 + ["list"], "latency_ms": list(rng.exponential(p99 / 4, 50)) + [3.0],
                      "error": [None] * 51}).to_csv(run / "requests.csv", index=False)
        t = np.arange(20) * 0.05
        pd.DataFrame({"epoch": [0] * 10 + [1] * 10, "t_s": t + 1.0, "wait_s": 0.01, "compute_s": 0.04,
                      "bytes": int(mib * 2**20 * 0.05)}).to_csv(run / "steps.csv", index=False)
        (run / "config.yaml").write_text("training:\n  warmup_steps: 2\n")
    else:
        row.update(reason="storage.prefixes: nothing stored under prefix 'nope' (hint: fix it)")
    write_row_csv(run / "summary.csv", row)
    append_summary(out, row)
    return run


@pytest.fixture
def sweep_runs(tmp_path) -> Path:
    out = tmp_path / "results"
    for rep, (a, b) in enumerate([(10.0, 5.0), (12.0, 6.0), (14.0, 4.0)], start=1):
        fake_run(out, f"a{rep}", "A", a, p99=2.0, ttfb=0.2, repeat=rep)
        fake_run(out, f"b{rep}", "B", b, p99=1.0 + rep, ttfb=0.1, repeat=rep)
    fake_run(out, "c1", "C", 0, status="failed")
    fake_run(out, "other", None, 7.0, sweep_id=None, repeat=None)
    return out


def test_describe_is_mean_sample_stdev_min_max():
    d = compare.describe(pd.Series([10.0, 12.0, 14.0]))
    assert d == {"mean": 12.0, "stdev": 2.0, "min": 10.0, "max": 14.0}
    one = compare.describe(pd.Series([3.0, None]))
    assert one["mean"] == one["min"] == one["max"] == 3.0 and math.isnan(one["stdev"])
    assert all(math.isnan(v) for v in compare.describe(pd.Series([], dtype=float)).values())


def test_repeats_reduce_to_statistics_and_ratios_against_the_baseline(sweep_runs):
    c = compare.compare(compare.select_runs(sweep_runs, ["S1"]))
    assert c.labels == ["A", "B", "C"] and c.baseline == "A"
    a = c.table.set_index("variant").loc["A"]
    assert (a["runs"], a["ok_runs"], a["status"]) == (3, 3, "ok")
    assert (a["MiB_per_s_mean"], a["MiB_per_s_stdev"], a["MiB_per_s_min"], a["MiB_per_s_max"]) == (12, 2, 10, 14)
    assert c.stat("B", "MiB_per_s") == 5.0 and c.stat("B", "MiB_per_s", "ratio") == pytest.approx(5 / 12)
    assert c.stat("B", "request_p99_ms") == 3.0 and c.stat("B", "request_p99_ms", "max") == 4.0
    assert c.best["MiB_per_s"] == "A" and c.best["request_p99_ms"] == "A" and c.best["time_to_first_batch_s"] == "B"
    failed = c.table.set_index("variant").loc["C"]
    assert failed["status"] == "failed" and failed["ok_runs"] == 0 and "nothing stored" in failed["reason"]
    assert c.stat("C", "MiB_per_s") is None


def test_baseline_label_and_its_close_matches(sweep_runs):
    c = compare.compare(compare.select_runs(sweep_runs, ["S1"]), baseline="B")
    assert c.stat("A", "MiB_per_s", "ratio") == pytest.approx(12 / 5)
    with pytest.raises(ConfigError, match="no variant 'b'") as e:
        compare.compare(compare.select_runs(sweep_runs, ["S1"]), baseline="b")
    assert "did you mean" in e.value.hint or "variants" in e.value.hint


def test_selecting_runs(sweep_runs):
    assert list(compare.select_runs(sweep_runs)["run_id"])[:1] == ["a1"]  # the latest sweep
    assert list(compare.select_runs(sweep_runs, last=2)["run_id"]) == ["c1", "other"]
    c = compare.compare(compare.read_run_dirs([sweep_runs / "other", sweep_runs / "a1"]))
    assert c.labels == ["other", "A"]  # a run outside a sweep is labelled by its run id
    with pytest.raises(DataError, match="no runs of sweep 'S2'"):
        compare.select_runs(sweep_runs, ["S2"])
    with pytest.raises(DataError, match="not a run directory"):
        compare.read_run_dirs([sweep_runs / "nope"])
    with pytest.raises(DataError, match="no runs recorded"):
        compare.select_runs(sweep_runs / "empty")


def test_comparison_csv_and_fresh_output_dirs(sweep_runs, tmp_path):
    c = compare.compare(compare.select_runs(sweep_runs, ["S1"]))
    out = compare.fresh_dir(tmp_path, "cmp")
    assert compare.fresh_dir(tmp_path, "cmp").name == "cmp-2"
    df = pd.read_csv(outputs.write_csv(c, out))
    assert list(df["variant"]) == ["A", "B", "C"]
    for stat in ("mean", "stdev", "min", "max", "ratio"):
        assert f"MiB_per_s_{stat}" in df.columns and f"request_p99_ms_{stat}" in df.columns
    assert df.loc[0, "run_ids"] == "a1 a2 a3"


def test_plots_are_three_readable_pngs(sweep_runs, tmp_path):
    from dnnbench.reporting import plots

    c = compare.compare(compare.select_runs(sweep_runs, ["S1"]))
    paths, notes = plots.write_all(c, tmp_path)
    assert [p.name for p in paths] == ["throughput.png", "latency_cdf.png", "throughput_time.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and 5_000 < p.stat().st_size < 300_000
    assert any("no get requests recorded for C" in n for n in notes)


def test_throughput_over_time_knows_epoch_starts_and_the_warm_up(sweep_runs, tmp_path):
    from dnnbench.reporting import plots

    run = plots.read_steps(sweep_runs / "a1")
    assert run.epoch_starts == [(0, 0.0), (1, pytest.approx(0.5))]
    assert run.warmup_steps == 2 and run.warmup_end == pytest.approx(0.1)  # the end of the second step
    (sweep_runs / "a1" / "config.yaml").unlink()  # no config: no warm-up drawn
    assert plots.read_steps(sweep_runs / "a1").warmup_end == 0.0
    for i in range(plots.MAX_PANELS + 1):
        fake_run(tmp_path / "many", f"v{i}", f"V{i}", 10.0 + i)
    notes: list[str] = []
    c = compare.compare(compare.select_runs(tmp_path / "many", ["S1"]))
    plots.throughput_over_time(c, tmp_path / "t.png", notes)
    assert notes == [f"throughput over time: 1 variant beyond the first {plots.MAX_PANELS} not drawn (V8)"]


def test_throughput_over_time_spreads_each_steps_bytes_over_the_step():
    from dnnbench.reporting.plots import binned_rate

    steps = pd.DataFrame({"start": [0.0, 1.0, 2.0], "end": [1.0, 2.0, 2.2], "bytes": [2**20] * 3})
    edges, mibs = binned_rate(steps, 1.0)
    assert list(edges) == [0.0, 1.0, 2.2] and list(mibs) == pytest.approx([1.0, 2 / 1.2])  # sliver joined
    edges, mibs = binned_rate(steps.assign(start=[0.0, 0.5, 1.0], end=[0.5, 1.0, 1.5]), 0.5)
    assert list(mibs) == pytest.approx([2.0, 2.0, 2.0])


def test_compare_table_highlights_the_best_and_fits_the_width(sweep_runs):
    from dnnbench.ui.console import comparison_table

    c = compare.compare(compare.select_runs(sweep_runs, ["S1"]))
    wide = io.StringIO()
    Console(file=wide, width=200).print(comparison_table(c, width=200))
    text = wide.getvalue()
    assert "samples/s" in text and "±2.00" in text and "0.42x" in text and "(baseline)" in text
    narrow = io.StringIO()
    Console(file=narrow, width=80).print(comparison_table(c, width=80))
    assert "not shown" in narrow.getvalue() and "samples/s" not in narrow.getvalue().split("not shown")[0]
    assert max(len(line) for line in narrow.getvalue().splitlines()) <= 80


# -- the gate -------------------------------------------------------------------------
def test_tolerances():
    assert gate.parse_tolerances(None) == {"*": 0.10}
    assert gate.parse_tolerances(["5%"]) == {"*": 0.05}
    assert gate.parse_tolerances(["25", "request_p99_ms=50%"]) == {"*": 0.25, "request_p99_ms": 0.5}
    with pytest.raises(ConfigError, match="not a gated metric"):
        gate.parse_tolerances(["wall_s=5%"])
    with pytest.raises(ConfigError, match="not a tolerance"):
        gate.parse_tolerances(["-5%"])


def _comparison(out: Path, variants: dict[str, tuple[float, float, float]], sweep: str) -> compare.Comparison:
    for label, (mib, p99, ttfb) in variants.items():
        fake_run(out, f"{sweep}-{label}", label, mib, p99=p99, ttfb=ttfb, sweep_id=sweep)
    return compare.compare(compare.select_runs(out, [sweep]))


def test_gate_names_each_regressed_metric_and_passes_within_tolerance(tmp_path):
    base = gate.make_baseline(_comparison(tmp_path, {"A": (100, 10, 1.0), "B": (50, 5, 0.5)}, "S1"))
    path = gate.save_baseline(tmp_path / "ci" / "baseline.json", base)
    doc = gate.load_baseline(path)
    assert set(doc["variants"]) == {"A", "B"} and doc["variants"]["A"]["metrics"]["MiB_per_s"]["mean"] == 100
    worse = _comparison(tmp_path, {"A": (80, 12, 1.05), "B": (49, 5.2, 0.51)}, "S2")
    result = gate.check(doc, worse, gate.parse_tolerances(["10%"]))
    assert not result.passed and result.checked == 6
    assert [(r.variant, r.metric) for r in result.regressions] == [("A", "MiB_per_s"), ("A", "request_p99_ms")]
    assert result.regressions[0].line() == ("REGRESSION A: MiB_per_s (throughput) 100 -> 80 (-20.0%, "
                                            "tolerance 10%)")
    assert gate.check(doc, worse, gate.parse_tolerances(["25%"])).passed
    only_p99 = gate.check(doc, worse, gate.parse_tolerances(["25%", "request_p99_ms=5%"]))
    assert [r.metric for r in only_p99.regressions] == ["request_p99_ms"]


def test_gate_matching(tmp_path):
    doc = gate.make_baseline(_comparison(tmp_path, {"A": (100, 10, 1.0), "B": (50, 5, 0.5)}, "S1"))
    partial = gate.check(doc, _comparison(tmp_path, {"A": (100, 10, 1.0), "Z": (1, 99, 9)}, "S2"), {"*": 0.1})
    assert partial.passed and partial.checked == 3
    assert any("'B' not among" in n for n in partial.notes) and any("'Z' is not in" in n for n in partial.notes)
    with pytest.raises(ConfigError, match="none of the baseline's variants"):
        gate.check(doc, _comparison(tmp_path, {"Q": (1, 1, 1), "R": (1, 1, 1)}, "S3"), {"*": 0.1})
    # one run outside a sweep is keyed by its config and matched one to one
    fake_run(tmp_path / "plain", "run1", None, 10.0, sweep_id=None)
    fake_run(tmp_path / "plain", "run2", None, 5.0, sweep_id=None)
    single = gate.make_baseline(compare.compare(compare.read_run_dirs([tmp_path / "plain" / "run1"])))
    assert list(single["variants"]) == ["cfg"]
    r = gate.check(single, compare.compare(compare.read_run_dirs([tmp_path / "plain" / "run2"])), {"*": 0.1})
    assert [x.metric for x in r.regressions] == ["MiB_per_s"]


def test_bad_baseline_files(tmp_path):
    with pytest.raises(ConfigError, match="baseline file not found"):
        gate.load_baseline(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text(json.dumps({"variants": {}}))
    with pytest.raises(ConfigError, match="not a dnnbench baseline"):
        gate.load_baseline(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read baseline"):
        gate.load_baseline(tmp_path / "y.json")
    with pytest.raises(ConfigError, match="no successful run"):
        gate.save_baseline(tmp_path / "z.json", {"variants": {}})


# -- like with like (issue 11.6) -------------------------------------------------------
S3 = {"storage": "s3://bench@127.0.0.1:9000", "client": "boto3"}


def test_the_gate_refuses_a_baseline_of_another_setup_naming_the_fields(tmp_path):
    doc = gate.make_baseline(_comparison(tmp_path, {"A": (100, 10, 1.0)}, "S1"))
    assert doc["variants"]["A"]["identity"] == {
        "config": "cfg", "framework": "pytorch", "storage": "fs:/d", "client": "fs", "access": "random",
        "decode": "none", "dataset": "image_folder", "trainer": "read", "workers": 2, "batch_size": 8,
        "requests_in_flight": None, "emulated": "no"}  # a row of a version before the column: not recorded
    fake_run(tmp_path, "s3-A", "A", 50, p99=10, ttfb=1.0, sweep_id="S2", workers=4, **S3)
    now = compare.compare(compare.select_runs(tmp_path, ["S2"]))
    with pytest.raises(ConfigError, match="not like the baseline") as e:
        gate.check(doc, now, {"*": 0.1})
    assert e.value.exit_code == 2 and e.value.reference == "--baseline" and "--allow-mismatch" in e.value.hint
    assert e.value.details == ["A: storage fs:/d -> s3://bench@127.0.0.1:9000, client fs -> boto3, workers 2 -> 4"]
    allowed = gate.check(doc, now, {"*": 0.1}, allow_mismatch=True)
    assert [r.metric for r in allowed.regressions] == ["MiB_per_s"] and allowed.checked == 3
    assert allowed.notes == ["not like the baseline, gated anyway (--allow-mismatch): A: storage fs:/d -> "
                             "s3://bench@127.0.0.1:9000, client fs -> boto3, workers 2 -> 4"]


def test_a_filesystem_store_at_another_path_is_another_store_with_a_hint(tmp_path):
    doc = gate.make_baseline(_comparison(tmp_path, {"A": (100, 10, 1.0)}, "S1"))
    fake_run(tmp_path, "moved", "A", 100, p99=10, ttfb=1.0, sweep_id="S2", storage="fs:/elsewhere")
    with pytest.raises(ConfigError) as e:
        gate.check(doc, compare.compare(compare.select_runs(tmp_path, ["S2"])), {"*": 0.1})
    assert e.value.details == ["A: storage fs:/d -> fs:/elsewhere"]
    assert e.value.hint.endswith("a filesystem store is named by its path: give it a stable storage.name")


def test_the_gate_compares_only_what_the_baseline_recorded(tmp_path):
    doc = gate.make_baseline(_comparison(tmp_path, {"A": (100, 10, 1.0)}, "S1"))
    for k in ("framework", "decode", "dataset"):  # a baseline of an older version had no such field
        del doc["variants"]["A"]["identity"][k]
    fake_run(tmp_path, "tf-A", "A", 100, p99=10, ttfb=1.0, sweep_id="S2", framework="tensorflow")
    assert gate.check(doc, compare.compare(compare.select_runs(tmp_path, ["S2"])), {"*": 0.1}).passed
    fake_run(tmp_path, "other-config", "A", 100, p99=10, ttfb=1.0, sweep_id="S3", config="renamed")
    assert gate.check(doc, compare.compare(compare.select_runs(tmp_path, ["S3"])), {"*": 0.1}).passed


def test_compare_warns_about_unlike_runs_and_shows_their_identity(tmp_path):
    fs = fake_run(tmp_path, "fs-run", None, 10.0, sweep_id=None)
    s3 = fake_run(tmp_path, "s3-run", None, 5.0, sweep_id=None, **S3)
    c = compare.compare(compare.read_run_dirs([fs, s3]))
    assert compare.identity_notes(c) == [(True, "the compared runs differ in storage, client (fs-run: storage=fs:/d, "
                                                "client=fs; s3-run: storage=s3://bench@127.0.0.1:9000, "
                                                "client=boto3): the ratios compare unlike setups")]
    assert compare.identity_notes(compare.compare(compare.read_run_dirs([fs, fs]))) == []


def test_compare_notes_what_a_sweep_varied_and_warns_about_a_mixed_variant(tmp_path):
    fake_run(tmp_path, "a", "client=fs", 10.0)
    fake_run(tmp_path, "b", "client=boto3", 5.0, **S3)
    c = compare.compare(compare.select_runs(tmp_path, ["S1"]))
    assert compare.identity_notes(c) == [(False, "the variants differ in storage (fs:/d | s3://bench@127.0.0.1:9000), "
                                                 "client (fs | boto3), as the sweep set them")]
    fake_run(tmp_path, "m1", "X", 10.0, sweep_id="S2", workers=2)
    fake_run(tmp_path, "m2", "X", 10.0, sweep_id="S2", repeat=2, workers=4)
    mixed = compare.compare(compare.select_runs(tmp_path, ["S2"]))
    assert compare.identity_notes(mixed) == [(True, "variant 'X' groups runs that differ in workers (2 | 4): its "
                                                    "statistics mix unlike runs")]


def test_compare_cli_refuses_an_unlike_baseline_file_unless_allowed(tmp_path, capsys):
    from dnnbench.cli import main

    fs = fake_run(tmp_path, "fs-run", None, 10.0, sweep_id=None)
    s3 = fake_run(tmp_path, "s3-run", None, 10.0, sweep_id=None, **S3)
    base = tmp_path / "base.json"
    assert main(["compare", str(fs), "--save-baseline", str(base), "--no-plots", "--out", str(tmp_path / "c1")]) == 0
    capsys.readouterr()
    assert main(["compare", str(s3), "--baseline", str(base), "--no-plots", "--out", str(tmp_path / "c2")]) == 2
    err = capsys.readouterr().err
    assert "not like the baseline" in err and "s3-run: storage fs:/d -> s3://bench@127.0.0.1:9000, client fs -> " \
        "boto3" in " ".join(err.split()) and "Traceback" not in err
    assert main(["compare", str(s3), "--baseline", str(base), "--allow-mismatch", "--no-plots", "--out",
                 str(tmp_path / "c3")]) == 0
    captured = capsys.readouterr()
    assert "gated anyway (--allow-mismatch)" in captured.err and "gate: ok (3 checks" in captured.out
    assert main(["compare", str(s3), "--allow-mismatch", "--no-plots", "--out", str(tmp_path / "c4")]) == 2
    assert "--allow-mismatch needs --baseline FILE" in capsys.readouterr().err
