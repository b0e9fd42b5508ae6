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
    ({"storage": {"format": "fs", "fs": {"data_dir": ["/a"]}}, "dataset": {"access": {"random": True, "sequential": True}}},
     "dataset.access"),
    ({"storage": {"format": "nfs9"}}, "storage.format"),
])
def test_legacy_mistakes_name_the_field(tmp_path, data, ref):
    p = tmp_path / "legacy.json"
    p.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert ref in str(e.value)
