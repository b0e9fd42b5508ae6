"""Adapter for the dss-style benchmark's config layout.

That tool's JSON has ``storage.format/name/fs.data_dir``, ``dataset.name/access
/label/image_dimension``, ``execution.workers/steps``, ``framework`` with a
``PyTorch.DataLoader`` block, ``model.name`` and ``training.name``. It is
recognised by those keys and translated to the dnnbench schema; its class names
are registry aliases, so ``TorchImageClassificationDataset`` or ``ConvNet``
resolve to the built-ins.
"""

from __future__ import annotations

import os
from typing import Any

from dnnbench.errors import ConfigError

_LOADER_KEYS = ("batch_size", "num_workers", "shuffle", "prefetch_factor", "persistent_workers",
                "pin_memory", "drop_last", "multiprocessing_context")


def is_legacy(data: dict[str, Any]) -> bool:
    storage = data.get("storage") if isinstance(data.get("storage"), dict) else {}
    execution = data.get("execution") if isinstance(data.get("execution"), dict) else {}
    framework = data.get("framework") if isinstance(data.get("framework"), dict) else {}
    training = data.get("training") if isinstance(data.get("training"), dict) else {}
    return ("format" in storage or "steps" in execution or "workers" in execution
            or any(k in framework for k in ("PyTorch", "TensorFlow"))
            or ("name" in training and "trainer" not in training))


def _section(data: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"must be a mapping in the dss-style layout, not {type(value).__name__}",
                          reference=f"{source}: {name}")
    return value


def translate_legacy(data: dict[str, Any], source: str = "config") -> tuple[dict[str, Any], list[str]]:
    """Translate a dss-style config. Returns the new mapping and the keys it did not use.

    Raises:
        ConfigError: a legacy section has the wrong shape.
    """
    dropped: list[str] = []
    out: dict[str, Any] = {}
    out["storage"] = _storage(_section(data, "storage", source), source, dropped)
    out["dataset"] = _dataset(_section(data, "dataset", source), source, dropped)
    fw, loader_workers = _framework(_section(data, "framework", source), source)
    out["framework"] = fw
    model = _section(data, "model", source)
    out["model"] = {"name": model.get("name", "convnet")}
    if "loss_function" in model:
        dropped.append("model.loss_function (cross-entropy is used)")
    training = _section(data, "training", source)
    out["training"] = {"trainer": training.get("name", "train")}
    for key in ("epochs", "max_steps", "warmup_steps", "lr", "optimizer", "compute_time_s"):
        if key in training:
            out["training"][key] = training[key]
    execution = _section(data, "execution", source)
    out["execution"] = {}
    if "workers" in execution:
        out["execution"]["listing_workers"] = execution["workers"]
    steps = execution.get("steps", {})
    if isinstance(steps, dict):
        if steps.get("training") is False:
            out["execution"]["phases"] = {"train": False}
        for phase in ("inference", "metrics"):
            if steps.get(phase):
                dropped.append(f"execution.steps.{phase}")
    for key in ("name", "metrics", "plugins", "prepare"):
        if key in data:
            out[key] = data[key]
    return out, dropped


def _storage(storage: dict[str, Any], source: str, dropped: list[str]) -> dict[str, Any]:
    fmt = str(storage.get("format", "fs")).lower()
    out: dict[str, Any] = {}
    if storage.get("name"):
        out["name"] = storage["name"]
    if fmt in ("fs", "file", "filesystem"):
        out["client"] = "fs"
        fs = storage.get("fs", {}) or {}
        dirs = fs.get("data_dir", [])
        if isinstance(dirs, str):
            dirs = [dirs]
        if not isinstance(dirs, list) or not dirs or not all(isinstance(d, str) for d in dirs):
            raise ConfigError("needs a directory or a list of directories",
                              reference=f"{source}: storage.fs.data_dir",
                              hint='e.g. "data_dir": ["/data/flower_photos"]')
        dirs = [os.path.normpath(d) for d in dirs]
        if len(dirs) == 1:
            out["root"], out["prefixes"] = dirs[0], [""]
        else:
            root = os.path.commonpath(dirs) if all(os.path.isabs(d) for d in dirs) or \
                not any(os.path.isabs(d) for d in dirs) else "/"
            out["root"] = root or "."
            out["prefixes"] = [os.path.relpath(d, out["root"]) for d in dirs]
        if "s3" in storage:
            dropped.append("storage.s3 (format is fs)")
    else:
        raise ConfigError(f"storage format {fmt!r} of the dss-style layout is not supported yet",
                          reference=f"{source}: storage.format",
                          hint="use format fs; S3 storage arrives with the S3 issue")
    return out


def _dataset(dataset: dict[str, Any], source: str, dropped: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "name" in dataset:
        out["name"] = dataset["name"]
    access = dataset.get("access", {"random": True})
    if isinstance(access, dict):
        chosen = [k for k, v in access.items() if v]
        if len(chosen) != 1:
            raise ConfigError(f"exactly one access mode must be true, got {chosen or 'none'}",
                              reference=f"{source}: dataset.access",
                              hint='e.g. "access": {"random": true, "sequential": false}')
        out["access"] = chosen[0]
    elif isinstance(access, str):
        out["access"] = access
    if "label" in dataset:
        out["labels"] = dataset["label"]
    if "image_dimension" in dataset:
        out["image_dimension"] = dataset["image_dimension"]
    for key in ("decode", "extensions", "max_samples"):
        if key in dataset:
            out[key] = dataset[key]
    if dataset.get("type", "image") != "image":
        dropped.append(f"dataset.type={dataset['type']}")
    return out


def _framework(fw: dict[str, Any], source: str) -> tuple[dict[str, Any], int | None]:
    out: dict[str, Any] = {}
    names = [k for k in fw if k in ("PyTorch", "TensorFlow")]
    name = fw.get("name") or (names[0] if names else "pytorch")
    out["name"] = str(name).lower()
    block = fw.get("PyTorch", {}) if out["name"] == "pytorch" else fw.get(str(name), {})
    loader = block.get("DataLoader", block) if isinstance(block, dict) else {}
    if not isinstance(loader, dict):
        raise ConfigError("must be a mapping", reference=f"{source}: framework.PyTorch.DataLoader")
    for key in _LOADER_KEYS:
        if key in loader:
            out[key] = loader[key]
        elif key in fw:
            out[key] = fw[key]
    return out, out.get("num_workers")
