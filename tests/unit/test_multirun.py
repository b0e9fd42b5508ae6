"""The multi-run layer under sweeps and the AU search: unique folders, one run in this
process however it ends, and runs as processes released together."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dnnbench.config.loading import load_config
from dnnbench.errors import EXIT_BAD_INPUT, EXIT_FAILED, ConfigError, DataError, Interrupted
from dnnbench.multirun import processes
from dnnbench.multirun.runs import reserve, run_in_process, run_tags
from dnnbench.results import create_run_dir, read_row, unique_dir


def test_one_unique_folder_helper_for_runs_multiruns_and_comparisons(tmp_path):
    assert [unique_dir(tmp_path, "cmp").name for _ in range(3)] == ["cmp", "cmp-2", "cmp-3"]
    assert reserve(tmp_path, "s1", "cfg", "au-search") == ("s1", tmp_path / "au-search-s1")
    assert unique_dir(tmp_path, "s1", prefix="au-search-").name == "au-search-s1-2"
    sid, folder = reserve(tmp_path, None, "my cfg", "compare")
    assert sid.endswith("-my_cfg") and folder == tmp_path / f"compare-{sid}" and folder.is_dir()
    assert reserve(tmp_path, None, "my cfg", "compare")[0] != sid  # the same second: -2


def test_an_exact_name_is_never_suffixed_and_must_be_plain(tmp_path):
    create_run_dir(tmp_path, "r1", "cfg")
    with pytest.raises(ConfigError, match="never overwritten"):
        create_run_dir(tmp_path, "r1", "cfg")
    for bad in ("", ".", "..", "a/b", "a b"):
        with pytest.raises(ConfigError, match="plain name"):
            reserve(tmp_path, bad, "cfg", "compare")  # the id alone is checked: "compare-.." is a fine folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r1"]


def test_a_folder_under_a_file_is_bad_input(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is a file") as e:
        unique_dir(tmp_path / "f" / "sub", "x")
    assert e.value.exit_code == EXIT_BAD_INPUT and e.value.reference == "metrics.output_dir"


# -- one run in this process ----------------------------------------------------------
@pytest.fixture
def loaded(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"name": "c", "storage": {"root": str(tmp_path / "data")},
                                    "metrics": {"output_dir": str(tmp_path / "results")}}))
    return load_config(path)


class _Raising:
    """An Executor whose run raises ``error``."""

    error: BaseException = DataError("nothing stored under prefix 'train'", reference="storage.prefixes")

    def __init__(self, loaded, events, run_id, argv, tags):
        self.run_id = run_id

    def run(self):
        raise self.error


def test_a_run_that_fails_before_it_starts_is_recorded_with_its_tags(loaded, monkeypatch, tmp_path):
    monkeypatch.setattr("dnnbench.executor.Executor", _Raising)
    rec = run_in_process(loaded, None, "s-v1-a", run_tags("s", "a", 2), argv=None)
    assert (rec.variant, rec.repeat, rec.status, rec.exit_code) == ("a", 2, "failed", EXIT_BAD_INPUT)
    assert rec.run_dir == tmp_path / "results" / "s-v1-a" and rec.reason == rec.error
    assert "nothing stored under prefix 'train'" in rec.reason
    row = read_row(rec.run_dir)
    assert (row["run_id"], row["status"], row["failed_phase"], row["sweep_id"], row["variant"], row["repeat"]) == \
        ("s-v1-a", "failed", "setup", "s", "a", "2")
    assert yaml.safe_load((rec.run_dir / "config.yaml").read_text())["name"] == "c"
    summary = pd.read_csv(tmp_path / "results" / "summary.csv")
    assert list(summary["run_id"]) == ["s-v1-a"] and list(summary["reason"]) == [row["reason"]]


def test_an_unexpected_error_is_recorded_with_its_type_and_a_taken_id_gets_a_fresh_folder(loaded, monkeypatch,
                                                                                          tmp_path):
    monkeypatch.setattr(_Raising, "error", ValueError("boom"))
    monkeypatch.setattr("dnnbench.executor.Executor", _Raising)
    (tmp_path / "results" / "taken").mkdir(parents=True)
    rec = run_in_process(loaded, None, "taken", run_tags("s", "a", 1), argv=None)
    assert (rec.exit_code, rec.reason) == (EXIT_FAILED, "ValueError: boom")
    assert rec.run_dir.name != "taken" and rec.run_dir.name.endswith("-c") and read_row(rec.run_dir)["status"] == \
        "failed"


def test_an_interruption_before_the_run_records_itself_reaches_the_multirun(loaded, monkeypatch, tmp_path):
    monkeypatch.setattr(_Raising, "error", Interrupted())
    monkeypatch.setattr("dnnbench.executor.Executor", _Raising)
    with pytest.raises(KeyboardInterrupt):
        run_in_process(loaded, None, "r", run_tags("s", "a", 1), argv=None)
    assert not (tmp_path / "results").exists()


# -- runs as processes released together --------------------------------------------
def _child(spec: processes.ChildSpec) -> None:
    """A stand-in for a run: ready, wait for the go, note it, then run until SIGTERM (noted)."""
    def on_term(signum, frame):
        Path(spec.log).with_suffix(".terminated").touch()
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    if "die" in spec.name:
        os._exit(3)  # dies before it is ready
    Path(spec.ready).touch()
    while not Path(spec.go).exists():
        time.sleep(0.01)
    Path(spec.log).with_suffix(".released").touch()
    if "quick" in spec.name:
        sys.exit(0)
    time.sleep(60)


def _specs(tmp_path: Path, names: list[str]) -> list[processes.ChildSpec]:
    return [processes.ChildSpec(config="c.yaml", overrides=[], run_id=f"r{i}", tags={},
                                ready=str(tmp_path / f"ready-{i}"), go=str(tmp_path / "go"),
                                log=str(tmp_path / f"child-{i}.log"), name=name) for i, name in enumerate(names)]


@pytest.mark.skipif(processes.start_method() != "fork", reason="the stand-in child is a local function (fork)")
def test_children_are_released_together_and_stopped_at_the_time_limit(tmp_path):
    processes.run_together(_specs(tmp_path, ["slow", "slow", "quick"]), timeout_s=0.5, target=_child)
    assert sorted(p.name for p in tmp_path.glob("*.released")) == ["child-0.released", "child-1.released",
                                                                   "child-2.released"]
    assert sorted(p.name for p in tmp_path.glob("*.terminated")) == ["child-0.terminated", "child-1.terminated"]


@pytest.mark.skipif(processes.start_method() != "fork", reason="the stand-in child is a local function (fork)")
@pytest.mark.timeout(120)  # waiting for a dead child's ready file would hang here
def test_a_child_that_dies_before_it_is_ready_does_not_hold_the_others(tmp_path, monkeypatch):
    monkeypatch.setattr(processes, "READY_TIMEOUT_S", 3600.0)
    processes.run_together(_specs(tmp_path, ["die", "quick"]), timeout_s=600, target=_child)
    assert [p.name for p in tmp_path.glob("*.released")] == ["child-1.released"]
