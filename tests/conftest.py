"""Shared fixtures: a tiny generated dataset and a config writer."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.setdefault("PYTHONWARNINGS", "ignore")

# A suite started in the background by a shell without job control (`make test &` in a script)
# inherits SIGINT ignored, and dnnbench keeps an ignored SIGINT ignored, as programs do: Ctrl-C's
# tests would then see a run that never stops. They test the tool under Ctrl-C, so Ctrl-C is
# given its default here (children then start with it too: a handler is reset at exec, SIG_IGN is not).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """3 classes x 12 JPEGs (+1 PNG and 1 non-image file) under <root>/train/<class>/."""
    from dnnbench.config.schema import StorageConfig
    from dnnbench.data.synthetic import generate
    from dnnbench.storage.fs import FileSystemStorage

    root = tmp_path_factory.mktemp("tiny")
    storage = FileSystemStorage(StorageConfig(root=str(root)))
    generate(storage, "train", 3, 12, width=(16, 48), height=(16, 48), seed=1, workers=2)
    return root


def base_config(root: Path, out: Path, **sections) -> dict:
    cfg = {
        "name": "tiny",
        "storage": {"client": "fs", "root": str(root), "prefixes": ["train"]},
        "dataset": {"decode": "rgb", "image_dimension": [16, 16]},
        "framework": {"batch_size": 8, "num_workers": 0},
        "model": {"name": "convnet", "options": {"width": 4, "hidden": 8}},
        "training": {"trainer": "read", "epochs": 1},
        "metrics": {"output_dir": str(out), "system_interval_s": 0.1},
    }
    for section, values in sections.items():
        if isinstance(values, dict) and isinstance(cfg.get(section), dict):
            cfg[section] = {**cfg[section], **values}
        else:
            cfg[section] = values
    return cfg


@pytest.fixture
def write_config(tmp_path):
    """write_config(root, **sections) -> path of a YAML config whose results go to tmp_path/results."""

    def write(root: Path, name: str = "cfg.yaml", **sections) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(base_config(root, tmp_path / "results", **sections)))
        return path

    return write
