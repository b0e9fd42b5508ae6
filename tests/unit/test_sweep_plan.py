"""Sweep planning: the schema of ``sweep:``/``repeat:``, grid labels, variant validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dnnbench.config.loading import load_config
from dnnbench.config.schema import BenchConfig
from dnnbench.errors import ConfigError
from dnnbench.multirun.plan import grid_points, is_sweep, plan
from dnnbench.multirun.runs import reserve


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


BASE = {"name": "s", "storage": {"client": "fs", "root": "/data", "prefixes": ["train"]},
        "training": {"trainer": "read"}, "dataset": {"decode": "none"}}


def test_grid_is_the_cartesian_product_in_order_with_short_labels():
    points = grid_points({"framework.num_workers": [0, 2], "framework.batch_size": [4, 8]})
    assert [label for label, _ in points] == ["num_workers=0,batch_size=4", "num_workers=0,batch_size=8",
                                              "num_workers=2,batch_size=4", "num_workers=2,batch_size=8"]
    assert points[1][1] == {"framework.num_workers": 0, "framework.batch_size": 8}


def test_grid_labels_use_the_whole_key_where_two_keys_end_alike():
    points = grid_points({"dataset.name": ["raw"], "model.name": ["convnet", "resnet"]})
    assert points[0][0] == "dataset.name=raw,model.name=convnet"
    assert grid_points({"storage.emulate": [{"latency_ms": 5}], "x.flag": [True, None]})[0][0] == \
        "emulate=#1,flag=true"
    assert grid_points({"dataset.labels": [["a", "b"]], "framework.prefetch_factor": [1.5]})[0][0] == \
        'labels=["a","b"],prefetch_factor=1.5'


def test_named_grid_values_and_secret_keys_keep_labels_short_and_clean():
    points = grid_points({"storage": {"fs": {"client": "fs"}, "s3": {"client": "boto3", "s3": {"secret_key": "k"}}},
                          "storage.s3.secret_key": ["hunter22"], "framework.num_workers": [2]})
    assert [label for label, _ in points] == ["fs,secret_key=#1,num_workers=2", "s3,secret_key=#1,num_workers=2"]
    assert points[1][1]["storage"]["client"] == "boto3" and points[0][1]["storage.s3.secret_key"] == "hunter22"


@pytest.mark.parametrize("sweep, message", [
    ({"grid": {"framework.num_workers": [0]}, "variants": [{"label": "a"}]}, "not both"),
    ({}, "not neither"),
    ({"grid": {}}, "at least one"),
    ({"grid": {"framework.num_workers": []}}, "at least one value"),
    ({"grid": {"framework.num_workers": [1, 1]}}, "listed twice"),
    ({"grid": {"framework num_workers": [1]}}, "not a dotted config key"),
    ({"grid": {"repeat": [1, 2]}}, "cannot vary"),
    ({"grid": {"storage": [{}], "storage.client": ["fs"]}}, "lies inside"),
    ({"variants": [{"label": "a"}, {"label": "a"}]}, "unique"),
    ({"variants": [{"label": ""}]}, "at least 1 character"),
    ({"variants": [{"label": "a", "sett": {}}]}, "extra"),
    ({"variants": []}, "at least one variant"),
])
def test_bad_sweep_sections_are_named(sweep, message):
    with pytest.raises(Exception) as e:
        BenchConfig.model_validate({"sweep": sweep})
    assert "sweep" in str(e.value) and message in str(e.value)


def test_repeat_must_be_positive():
    with pytest.raises(Exception, match="repeat"):
        BenchConfig.model_validate({"repeat": 0})
    assert BenchConfig.model_fields["repeat"].default == 1 and BenchConfig.model_fields["sweep"].default is None


def test_plan_applies_each_variants_overrides_to_the_base(tmp_path):
    w4 = {"label": "w4", "set": {"framework.num_workers": 4, "storage.emulate": {"latency_ms": 5}}}
    path = write(tmp_path, {**BASE, "repeat": 3, "sweep": {"variants": [{"label": "base"}, w4]}})
    loaded = load_config(path)
    p = plan(loaded)
    assert is_sweep(loaded) and p.kind == "variants" and p.repeat == 3 and p.runs == 6
    base, w4 = (v.loaded.config for v in p.variants)
    assert base.framework.num_workers == 2 and base.storage.emulate is None
    assert w4.framework.num_workers == 4 and w4.storage.emulate.latency_ms == 5
    assert w4.storage.root == "/data" and w4.sweep is None and w4.repeat == 1
    assert [v.loaded.stem for v in p.variants] == ["s", "s"]


def test_plan_of_a_repeat_only_config_is_one_variant_named_after_the_config(tmp_path):
    loaded = load_config(write(tmp_path, {**BASE, "repeat": 2}))
    p = plan(loaded)
    assert is_sweep(loaded) and [v.label for v in p.variants] == ["s"] and p.runs == 2
    assert not is_sweep(load_config(write(tmp_path, BASE)))


def test_cli_overrides_and_env_references_reach_every_variant(tmp_path):
    path = write(tmp_path, {**BASE, "sweep": {"variants": [
        {"label": "a", "set": {"storage.root": "${SWEEP_TEST_ROOT:-/fallback}"}}, {"label": "b"}]}})
    p = plan(load_config(path, ["framework.batch_size=3"], environ={"SWEEP_TEST_ROOT": "/env"}),
             ["framework.batch_size=3"], environ={"SWEEP_TEST_ROOT": "/env"})
    a, b = (v.loaded.config for v in p.variants)
    assert a.storage.root == "/env" and b.storage.root == "/data"
    assert a.framework.batch_size == b.framework.batch_size == 3


def test_every_bad_variant_is_reported_with_its_path_before_anything_runs(tmp_path):
    path = write(tmp_path, {**BASE, "sweep": {"variants": [
        {"label": "ok"}, {"label": "typo", "set": {"framework.num_wrokers": 2}},
        {"label": "neg", "set": {"framework.batch_size": -1}},
        {"label": "scalar", "set": {"training.trainer.x": 1}}]}})
    with pytest.raises(ConfigError) as e:
        plan(load_config(path))
    details = "\n".join(e.value.details)
    assert "3 problems" in e.value.message
    assert "sweep.variants[1] (typo): framework.num_wrokers: extra inputs are not permitted" in details
    assert "sweep.variants[2] (neg): framework.batch_size" in details
    assert "sweep.variants[3] (scalar): cannot set training.trainer.x" in details


def test_a_bad_grid_value_names_the_grid_and_the_variant(tmp_path):
    path = write(tmp_path, {**BASE, "sweep": {"grid": {"framework.num_workers": [0, -1]}}})
    with pytest.raises(ConfigError) as e:
        plan(load_config(path))
    assert e.value.message.startswith("sweep.grid (num_workers=-1): framework.num_workers")


def test_reserved_ids_are_unique_and_explicit_ones_never_reused(tmp_path):
    a, da = reserve(tmp_path, None, "cfg", "compare")
    b, db = reserve(tmp_path, None, "cfg", "compare")
    assert a != b and da.is_dir() and db.is_dir() and da.name == f"compare-{a}"
    assert reserve(tmp_path, "mine", "cfg", "compare")[0] == "mine"
    with pytest.raises(ConfigError, match="never overwritten"):
        reserve(tmp_path, "mine", "cfg", "compare")
    with pytest.raises(ConfigError, match="plain name"):
        reserve(tmp_path, "../x", "cfg", "compare")


@pytest.mark.parametrize("name, labels", [
    ("compare-backends.yaml", ["fs", "s3-boto3", "s3-minio", "s3-s3fs", "s3-s3torchconnector"]),
    ("sweep-ci.yaml", ["fs,num_workers=2", "fs,num_workers=4", "s3,num_workers=2", "s3,num_workers=4"]),
])
def test_shipped_sweep_configs_plan_without_secrets_in_labels(name, labels):
    root = Path(__file__).resolve().parents[2]
    p = plan(load_config(root / "config" / name, environ={}), environ={})
    assert [v.label for v in p.variants] == labels and p.repeat >= 2
    clients = [v.loaded.config.storage.client for v in p.variants]
    assert clients[0] == "fs" and all(c != "fs" for c in clients[len(clients) // 2 + 1:])
    s3 = p.variants[-1].loaded.config.storage.s3
    assert s3.endpoint_url == "http://127.0.0.1:18080" and s3.access_key == "test:tester"
    assert not any("test:tester" in v.label or "testing" in v.label for v in p.variants)
