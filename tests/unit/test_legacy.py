"""The dss-style layout is recognised and translated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dnnbench.config.legacy import is_legacy, translate_legacy
from dnnbench.config.loading import load_config
from dnnbench.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_legacy_config_translates():
    loaded = load_config(ROOT / "config" / "legacy-dss-fs.json")
    cfg = loaded.config
    assert loaded.notices and "dss-style" in loaded.notices[0]
    assert cfg.storage.client == "fs"
    assert cfg.storage.root == "data/legacy"
    assert cfg.storage.prefixes == ["flower_photos1", "flower_photos2"]
    assert cfg.dataset.name == "TorchImageClassificationDataset"
    assert cfg.dataset.labels == ["class_000", "class_001", "class_002"]
    assert cfg.dataset.image_dimension == (32, 32)
    assert cfg.execution.listing_workers == 8
    assert cfg.framework.num_workers == 2 and cfg.framework.persistent_workers is True
    assert cfg.model.name == "ConvNet" and cfg.training.trainer == "RandomAccessDatasetTrain"


def test_detection():
    assert is_legacy({"storage": {"format": "fs"}})
    assert is_legacy({"execution": {"workers": 3}})
    assert not is_legacy({"storage": {"client": "fs"}, "training": {"trainer": "read"}})


def test_single_dir_and_sequential_access():
    data = {"storage": {"format": "fs", "fs": {"data_dir": "/d/flowers"}},
            "dataset": {"access": {"random": False, "sequential": True}}}
    out, _ = translate_legacy(data)
    assert out["storage"]["root"] == "/d/flowers" and out["storage"]["prefixes"] == [""]
    assert out["dataset"]["access"] == "sequential"


@pytest.mark.parametrize("data,ref", [
    ({"storage": {"format": "fs", "fs": {"data_dir": []}}}, "storage.fs.data_dir"),
    ({"storage": {"format": "fs", "fs": {"data_dir": ["/a"]}},
      "dataset": {"access": {"random": True, "sequential": True}}}, "dataset.access"),
    ({"storage": {"format": "nfs9"}}, "storage.format"),
])
def test_legacy_mistakes_name_the_field(tmp_path, data, ref):
    p = tmp_path / "legacy.json"
    p.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert ref in str(e.value)


S3_BASE = {"format": "s3", "name": "dss", "s3": {"bucket": "b", "prefix": ["p/"],
                                                 "dss": {"credentials": {"endpoint": "http://127.0.0.1:9"}}}}


def _legacy(tmp_path, storage=None, **extra):
    p = tmp_path / "legacy.json"
    p.write_text(json.dumps({"storage": storage or {"format": "fs", "fs": {"data_dir": "/d"}}, **extra}))
    return p


@pytest.mark.parametrize("s3_extra,ref", [
    ({"aws": "not-a-mapping"}, "storage.s3.aws"),
    ({"dss": ["a", "list"]}, "storage.s3.dss"),
    ({"dss": {"credentials": "98765432109"}}, "storage.s3.dss.credentials"),
    ({"aws": {"credentials": 7}}, "storage.s3.aws.credentials"),
])
def test_legacy_s3_blocks_that_are_not_mappings(tmp_path, capsys, s3_extra, ref):
    from dnnbench.cli import main

    storage = {**S3_BASE, "s3": {**S3_BASE["s3"], **s3_extra}}
    p = _legacy(tmp_path, storage)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert ref in str(e.value)
    assert main(["validate", "--config", str(p)]) == 2
    err = capsys.readouterr().err
    assert ref in err and "Traceback" not in err and "AttributeError" not in err and "98765432109" not in err
    assert sum(line.startswith("error") for line in err.splitlines()) == 1


def test_legacy_fs_block_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="storage.fs"):
        load_config(_legacy(tmp_path, {"format": "fs", "fs": "/d"}))


@pytest.mark.parametrize("lib,client", [("Boto3", "boto3"), ("BOTO3", "boto3"), ({"name": "MinIO"}, "minio"),
                                        (" s3fs ", "s3fs")])
def test_client_lib_in_any_case(tmp_path, lib, client):
    storage = {**S3_BASE, "s3": {**S3_BASE["s3"], "client_lib": lib}}
    assert load_config(_legacy(tmp_path, storage)).config.storage.client == client


def test_notice_lists_every_key_not_used(tmp_path):
    loader = {"batch_size": 8, "num_workers": 1, "timeout": 30, "sampler": "weighted"}
    storage = {**S3_BASE, "s3": {**S3_BASE["s3"], "dss": {"credentials": {
        "endpoint": "http://127.0.0.1:9", "access_key": "AKIA-NOT-SHOWN", "secret_key": "98765432109",
        "session_token": "TOKEN-NOT-SHOWN"}, "verify": False}, "acl": "private"}}
    p = _legacy(tmp_path, storage, framework={"name": "PyTorch", "PyTorch": {"DataLoader": loader, "amp": True},
                                              "TensorFlow": {"batch_size": 4}, "seed": 1},
                dataset={"name": "image_folder", "bogus": 1}, model={"name": "ConvNet", "dropout": 0.5},
                training={"name": "train", "epochs": 1, "scheduler": "cosine"},
                execution={"workers": 2, "steps": {"training": True, "warmup": 3}, "gpus": 2},
                report={"html": True}, wandb=True)
    loaded = load_config(p)
    (notice,) = loaded.notices
    assert notice.count("not used:") == 1 and "\n" not in notice
    for key in ("framework.PyTorch.DataLoader.timeout", "framework.PyTorch.DataLoader.sampler",
                "framework.PyTorch.amp", "framework.TensorFlow", "framework.seed", "dataset.bogus",
                "model.dropout", "training.scheduler", "execution.steps.warmup", "execution.gpus",
                "storage.s3.acl", "storage.s3.dss.verify", "storage.s3.dss.credentials.session_token",
                "report", "wandb"):
        assert key in notice, key
    for value in ("AKIA-NOT-SHOWN", "98765432109", "TOKEN-NOT-SHOWN", "weighted", "cosine"):
        assert value not in notice
    cfg = loaded.config
    assert cfg.framework.batch_size == 8 and cfg.framework.num_workers == 1 and cfg.storage.client == "boto3"


def test_shipped_legacy_configs_use_every_key_they_have():
    for name in ("legacy-dss-fs.json", "legacy-dss-s3.json"):
        (notice,) = load_config(ROOT / "config" / name).notices
        assert "DataLoader" not in notice and "framework." not in notice


def test_read_only_classes_flattened_by_hand_run_what_they_ask(tmp_path):
    """The reported case, written in the first layout: read only, 2 labels, 2 epochs."""
    p = _legacy(tmp_path, dataset={"name": "PythonReadDataset", "label": ["roses", "tulips"]},
                training={"name": "PythonReadTrain"}, framework={"name": "PyTorch", "batch_size": 16, "epochs": 2},
                model={"name": "ConvNet"})
    cfg = load_config(p).config
    assert cfg.training.trainer == "read" and cfg.training.epochs == 2
    assert cfg.dataset.name == "PythonReadDataset" and cfg.dataset.decode == "none"
    assert cfg.dataset.labels == ["roses", "tulips"] and cfg.framework.batch_size == 16


def test_choice_sections_take_the_chosen_block(tmp_path):
    p = _legacy(tmp_path, {"format": "fs", "fs": {"choice": "B", "A": {"data_dir": ["/a"]}, "B": {"data_dir": "/b"}}},
                dataset={"choice": "TorchImageClassificationDataset", "TorchImageClassificationDataset": {
                    "access": {"random": False, "sequential": True}, "label": ["x"], "__comment__": "c"}},
                training={"choice": "RandomAccessDatasetTrain",
                          "RandomAccessDatasetTrain": {"access_method": "Sequential", "epochs": 3}},
                device="GPU", metrics={"format": "CSV", "path": str(tmp_path / "out"), "graph": {"enabled": True}},
                logging={"path": str(tmp_path / "logs"), "level": "debug"})
    loaded = load_config(p)
    cfg = loaded.config
    assert cfg.storage.root == "/b" and cfg.dataset.access == "sequential" and cfg.dataset.labels == ["x"]
    assert cfg.training.trainer == "RandomAccessDatasetTrain" and cfg.training.epochs == 3
    assert cfg.execution.device == "cuda" and cfg.metrics.output_dir == str(tmp_path / "out")
    assert cfg.logging.path == str(tmp_path / "logs") and cfg.logging.level == "DEBUG"
    (notice,) = loaded.notices
    assert "storage.fs.A (storage.fs.choice is B)" in notice and "metrics.graph" in notice
    assert "__comment__" not in notice


@pytest.mark.parametrize("extra,ref", [
    ({"model": {"name": "ObjectDetector"}}, "model.name"),
    ({"dataset": {"name": "TorchObjectDetectionDataset"}}, "dataset.name"),
    ({"training": {"name": "ObjectDetectionDatasetTrain"}}, "training.name"),
    ({"dataset": {"choice": "A", "A": 3}}, "dataset.A"),
    ({"dataset": {"choice": "A", "label": ["a"], "A": {"label": ["b"]}}}, "dataset.A.label"),
    ({"framework": {"epochs": 2}, "training": {"epochs": 1}}, "framework.epochs"),
    ({"metrics": {"format": "parquet"}}, "metrics.format"),
    ({"device": "TPU"}, "device"),
])
def test_what_cannot_be_honoured_is_refused_not_replaced(tmp_path, extra, ref):
    with pytest.raises(ConfigError) as e:
        load_config(_legacy(tmp_path, **extra))
    assert f": {ref}" in str(e.value) or e.value.reference.endswith(ref)


def test_distributed_data_parallel_true_is_named(tmp_path):
    fw = {"name": "PyTorch", "PyTorch": {"DataLoader": {"num_workers": 1}, "distributed_data_parallel": True}}
    (notice,) = load_config(_legacy(tmp_path, framework=fw)).notices
    assert "framework.PyTorch.distributed_data_parallel (dnnbench runs data-parallel ranks" in notice
    fw["PyTorch"]["distributed_data_parallel"] = False
    (notice,) = load_config(_legacy(tmp_path, framework=fw)).notices
    assert "not used" not in notice  # false: one process, as dnnbench runs without torchrun
