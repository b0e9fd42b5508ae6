"""predict's grid (``--grid key=v1,v2``: the sweep's keys and labels) and --check's bookkeeping."""

from __future__ import annotations

import pytest
import yaml

from dnnbench.config.loading import load_config
from dnnbench.errors import ConfigError
from dnnbench.predict import check
from dnnbench.predict.grid import parse_grid, plan_points, split_values
from dnnbench.predict.model import Point, at_load, predict


def test_values_split_on_commas_outside_brackets_and_read_as_yaml():
    assert split_values("1,2,[3,4],{a: 1, b: 2}") == ["1", "2", "[3,4]", "{a: 1, b: 2}"]
    grid = parse_grid(["framework.num_workers=1,2,4", "storage.emulate.latency_ms=0,2.5", "accelerators=1,2"])
    assert grid == {"framework.num_workers": [1, 2, 4], "storage.emulate.latency_ms": [0, 2.5], "accelerators": [1, 2]}


@pytest.mark.parametrize("items, message", [
    (["framework.num_workers"], "--grid expects dotted.key=v1,v2"),
    (["framework.num_workers="], "--grid expects dotted.key=v1,v2"),
    (["dataset.decode=rgb,none"], "does not know how this key changes throughput"),
    (["framework.num_workers=1", "framework.num_workers=2"], "given twice"),
    (["framework.num_workers=1,1"], "a value is listed twice"),
])
def test_bad_grid_arguments_are_refused_naming_the_problem(items, message):
    with pytest.raises(ConfigError, match=message) as e:
        parse_grid(items)
    assert e.value.exit_code == 2 and e.value.reference == "--grid"


def config(tmp_path, **training):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({
        "storage": {"client": "fs", "root": str(tmp_path), "emulate": {"latency_ms": 5}},
        "framework": {"num_workers": 2, "batch_size": 16}, "training": {"trainer": "emulate", **training}}))
    return load_config(path)


def test_points_are_the_sweeps_grid_each_validated_and_read_by_the_model(tmp_path):
    loaded = config(tmp_path, compute_time_s=0.5, max_steps=7)
    pts = plan_points(loaded, [], parse_grid(["framework.num_workers=1,4", "storage.emulate.latency_ms=0,20",
                                              "accelerators=1,3"]))
    assert len(pts) == 8
    assert pts[0].label == "num_workers=1,latency_ms=0,accelerators=1"
    assert pts[-1].label == "num_workers=4,latency_ms=20,accelerators=3"
    assert pts[-1].point == Point(workers=4, latency_ms=20, compute_time_s=0.5, accelerators=3, batch_size=16,
                                  max_steps=7)
    assert pts[-1].loaded.config.framework.num_workers == 4
    (base,) = plan_points(loaded, [], {})
    assert base.point.workers == 2 and base.point.latency_ms == 5 and base.label == "c"


def test_a_point_whose_config_is_invalid_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError) as e:
        plan_points(config(tmp_path), [], parse_grid(["framework.num_workers=1,-1"]))
    assert "num_workers=-1" in str(e.value) and e.value.exit_code == 2
    with pytest.raises(ConfigError, match="accelerators: give whole numbers"):
        plan_points(config(tmp_path), [], parse_grid(["accelerators=0,2"]))


def test_the_check_sample_spreads_over_single_accelerator_points(tmp_path):
    pts = plan_points(config(tmp_path), [], parse_grid(["framework.num_workers=1,2,3,4,5,6,7", "accelerators=1,2"]))
    chosen = check.sample(pts, 3)
    assert [g.point.workers for g in chosen] == [1, 4, 7] and {g.point.accelerators for g in chosen} == {1}
    assert len(check.sample(pts, 20)) == 7


def test_errors_are_computed_from_measured_rows_and_summarised():
    rows = [{"point": "a", "predicted_samples_per_s": 110.0}, {"point": "b", "predicted_samples_per_s": 80.0},
            {"point": "c", "predicted_samples_per_s": None}, {"point": "d", "predicted_samples_per_s": 50.0}]
    check.merge(rows, {"a": {"samples_per_s": "100", "MiB_per_s": "1.5", "au_percent": "", "run_dir": "r/a"},
                       "b": {"samples_per_s": "100", "run_dir": "r/b"}, "c": {"samples_per_s": "10"}})
    assert rows[0]["error_percent"] == pytest.approx(10.0) and rows[0]["measured_MiB_per_s"] == 1.5
    assert rows[0]["measured_au_percent"] is None and rows[0]["run_dir"] == "r/a"
    assert rows[1]["error_percent"] == pytest.approx(-20.0)
    assert rows[2]["error_percent"] is None and "error_percent" not in rows[3]
    assert check.summary(rows) == "check: median |error| 15.0 %, max 20.0 % over 2 points (1 within 15 %)"
    assert check.summary([{"point": "x"}]) is None


def test_the_load_watch_measures_before_and_after_each_point_and_forwards_the_events(monkeypatch):
    calls = []

    class Inner:
        def variant_start(self, *args):
            calls.append(args)

        def notice(self, text):
            calls.append(text)

    cores = iter([1.0, 1.5])
    monkeypatch.setattr(check, "available_cores", lambda seconds: next(cores))
    monkeypatch.setattr(check.os, "getloadavg", lambda: (3.5, 0.0, 0.0))
    watch = check.LoadWatch(Inner())
    watch.variant_start(1, 2, "num_workers=1", 1, 1)
    watch.notice("hi")
    assert watch.seen == {"num_workers=1": {"check_free_cores": 1.0, "check_load_average_1m": 3.5}}
    watch.variant_end(1, 2, "num_workers=1", 1, 1, "ok")  # the inner sink has no variant_end
    assert watch.seen == {"num_workers=1": {"check_free_cores": 1.25, "check_load_average_1m": 3.5}}
    assert calls == [(1, 2, "num_workers=1", 1, 1), "hi"]


def test_a_checked_point_is_also_predicted_at_the_load_seen_before_it_ran(tmp_path):
    from tests.unit.test_predict_model import probe

    pts = plan_points(config(tmp_path), [], parse_grid(["framework.num_workers=1,2"]))
    p = probe(busy_cores=1.0, decode_cpu_s=0.010)
    rows = [{"point": g.label, "predicted_samples_per_s": predict(p, g.point).samples_per_s} for g in pts]
    seen = {"check_free_cores": 1.0, "check_load_average_1m": 2.0}
    check.merge(rows, {pts[0].label: {"samples_per_s": "40", **seen},
                       pts[1].label: {"samples_per_s": "40", **seen, "check_free_cores": 2.0}}, p, pts)
    assert rows[0]["predicted_at_load_samples_per_s"] == pytest.approx(rows[0]["predicted_samples_per_s"])
    assert rows[0]["error_at_load_percent"] == pytest.approx(rows[0]["error_percent"])
    quiet = predict(at_load(p, 2.0), pts[1].point).samples_per_s
    assert rows[1]["predicted_at_load_samples_per_s"] == pytest.approx(quiet)
    assert quiet > rows[1]["predicted_samples_per_s"]
    assert rows[1]["error_at_load_percent"] == pytest.approx(100 * (quiet - 40) / 40)
    assert check.load_line(p, rows) == ("load: the probe got 1.00 of 2 cores (load average 0.0); the checked "
                                        "points 1.00-2.00 (load average 2.0-2.0)")
    assert check.summary(rows, "error_at_load_percent", "at the load seen").startswith("at the load seen: median")


def test_a_points_runs_become_one_row_the_median_run_with_the_spread():
    from dnnbench.predict.check import median_row, spread_line

    runs = [{"samples_per_s": "90", "run_dir": "a"}, {"samples_per_s": "110", "run_dir": "b"},
            {"samples_per_s": "100", "run_dir": "c"}, {"samples_per_s": "", "run_dir": "d"}]
    m = median_row(runs)
    assert m["run_dir"] == "c" and m["check_runs"] == 3
    assert (m["measured_min_samples_per_s"], m["measured_max_samples_per_s"]) == (90.0, 110.0)
    assert median_row([{"samples_per_s": "", "run_dir": "x"}])["check_runs"] == 0
    rows = [{"check_runs": 3, "measured_samples_per_s": 100.0, "measured_min_samples_per_s": 90.0,
             "measured_max_samples_per_s": 110.0},
            {"check_runs": 3, "measured_samples_per_s": 50.0, "measured_min_samples_per_s": 45.0,
             "measured_max_samples_per_s": 50.0}]
    assert spread_line(rows) == "measured: the median of 3 runs a point; the runs of a point were 15.0 % apart " \
                                "(median; max 20.0 %)"
    assert spread_line([{"check_runs": 1, "measured_samples_per_s": 1.0}]) is None


def test_a_checkpoint_workload_is_refused_before_anything_runs(tmp_path):
    from dnnbench.predict.grid import plan_points

    cfg = tmp_path / "c.yaml"
    cfg.write_text("storage: {client: fs, root: /tmp, prefixes: [train]}\n")
    with pytest.raises(ConfigError, match="checkpoint"):
        plan_points(load_config(cfg, ["training.trainer=checkpoint"]), [], {})
    assert len(plan_points(load_config(cfg, []), [], {})) == 1  # image folders: modelled
    npz = load_config(cfg, ["dataset.format=npz", "dataset.layout=dlio", "dataset.decode=none", "training.trainer=read"])
    assert len(plan_points(npz, [], {"framework.num_workers": [1, 2]})) == 2  # files of many samples: modelled
