"""Run directories are never reused; summary appends are atomic and parseable."""

from __future__ import annotations

import multiprocessing as mp
import threading

import pandas as pd
import pytest

from dnnbench.errors import ConfigError
from dnnbench.results import append_summary, create_run_dir


def test_concurrent_run_ids_are_unique(tmp_path):
    out = []
    barrier = threading.Barrier(8)

    def make():
        barrier.wait()
        out.append(create_run_dir(tmp_path, None, "same"))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({p.name for p in out}) == 8


def test_explicit_run_id_never_overwrites(tmp_path):
    create_run_dir(tmp_path, "mine", "x")
    with pytest.raises(ConfigError, match="never overwritten"):
        create_run_dir(tmp_path, "mine", "x")
    with pytest.raises(ConfigError):
        create_run_dir(tmp_path, "../escape", "x")


def _append(args):
    out, i = args
    append_summary(out, {"run_id": f"r{i}", "MiB_per_s": float(i), **({"extra": i} if i % 5 == 0 else {})})


def test_concurrent_appends_stay_parseable(tmp_path):
    with mp.get_context("fork").Pool(4) as pool:
        pool.map(_append, [(str(tmp_path), i) for i in range(40)])
    df = pd.read_csv(tmp_path / "summary.csv")
    assert sorted(df["run_id"]) == sorted(f"r{i}" for i in range(40))
    assert "extra" in df.columns  # a newer column widened the file without losing rows


@pytest.mark.parametrize("sub", ["", "below"])
def test_output_dir_that_is_a_file(tmp_path, sub):
    f = tmp_path / "not-a-dir"
    f.write_text("x")
    with pytest.raises(ConfigError) as e:
        create_run_dir(f / sub if sub else f, None, "x")
    assert e.value.reference == "metrics.output_dir"


@pytest.mark.parametrize("sub", ["", "below"])
def test_output_dir_that_is_a_file_is_exit_2_before_anything_runs(tmp_path, capsys, sub):
    import yaml

    from dnnbench.cli import main

    f = tmp_path / "not-a-dir"
    f.write_text("x")
    data = tmp_path / "data"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "storage": {"root": str(data), "prefixes": ["train"]},
        "prepare": {"auto": True, "classes": 2, "images_per_class": 2, "width": [16, 16], "height": [16, 16]},
        "training": {"trainer": "read"}, "dataset": {"decode": "none"},
        "metrics": {"output_dir": str(f / sub if sub else f)}}))
    for cmd in (["validate", "--config", str(cfg)], ["-q", "--config", str(cfg)]):
        assert main(cmd) == 2
        err = capsys.readouterr().err
        assert "metrics.output_dir" in err and "FileExistsError" not in err and "Traceback" not in err
    assert not data.exists()  # refused before prepare.auto wrote anything
