"""framework.intra_op_threads: the rule (pure), and what a PyTorch run applies and records."""

from __future__ import annotations

import json

import pytest
import yaml

from dnnbench.config.loading import load_config
from dnnbench.errors import ConfigError
from dnnbench.frameworks.threads import intra_op_threads, omp_num_threads


@pytest.mark.parametrize("cores, workers, expect", [(2, 2, 1), (2, 1, 1), (2, 0, 1), (4, 0, 2), (16, 4, 6),
                                                    (64, 8, 28), (1, 8, 1)])
def test_auto_leaves_the_loader_workers_their_cores(cores, workers, expect):
    t = intra_op_threads("auto", workers, cores=cores, environ={})
    assert t.intra_op == expect
    assert t.source == f"auto: max(1, ({cores} cores - {workers} loader workers) // 2)"


def test_omp_num_threads_is_respected_and_the_config_wins_over_it():
    assert intra_op_threads("auto", 2, cores=2, environ={"OMP_NUM_THREADS": "3"}).describe() == {
        "intra_op_threads": 3, "intra_op_threads_source": "OMP_NUM_THREADS"}
    assert intra_op_threads(5, 2, cores=2, environ={"OMP_NUM_THREADS": "3"}).describe() == {
        "intra_op_threads": 5, "intra_op_threads_source": "framework.intra_op_threads"}
    for junk in ("", "0", "-2", "many"):  # not a thread count: the auto rule
        assert omp_num_threads({"OMP_NUM_THREADS": junk}) is None
        assert intra_op_threads("auto", 0, cores=8, environ={"OMP_NUM_THREADS": junk}).intra_op == 4
    assert omp_num_threads({"OMP_NUM_THREADS": "4,2"}) == 4  # OpenMP's nesting list: the outer level


def test_the_config_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("storage: {client: fs, root: /tmp}\n")
    assert load_config(path, []).config.framework.intra_op_threads == "auto"
    assert load_config(path, ["framework.intra_op_threads=3"]).config.framework.intra_op_threads == 3
    for bad in ("0", "many", "true"):
        with pytest.raises(ConfigError) as e:
            load_config(path, [f"framework.intra_op_threads={bad}"])
        assert e.value.message == (f"framework.intra_op_threads: use auto or a thread count of at least 1 "
                                   f"(got {yaml.safe_load(bad)!r})")


@pytest.fixture
def keep_torch_threads():
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("setting, omp, expect, source", [("auto", "1", 1, "OMP_NUM_THREADS"),
                                                          (2, "1", 2, "framework.intra_op_threads")])
def test_a_pytorch_run_applies_and_records_it(tiny_root, write_config, tmp_path, monkeypatch, keep_torch_threads,
                                              setting, omp, expect, source):
    import torch

    from dnnbench.cli import main

    monkeypatch.setenv("OMP_NUM_THREADS", omp)
    torch.set_num_threads(3)  # what an earlier run (or torch's own default) left: the run must set its own
    cfg = write_config(tiny_root, framework={"num_workers": 0, "intra_op_threads": setting},
                       training={"trainer": "train", "epochs": 1})
    assert main(["-q", "--config", str(cfg), "--run-id", "t"]) == 0
    env = json.loads((tmp_path / "results" / "t" / "environment.json").read_text())
    assert env["framework"]["intra_op_threads"] == expect == torch.get_num_threads()
    assert env["framework"]["intra_op_threads_source"] == source
