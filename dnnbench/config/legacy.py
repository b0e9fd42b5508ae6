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
_TRAINING_KEYS = ("epochs", "max_steps", "warmup_steps", "lr", "optimizer", "compute_time_s")
_LEGACY_SECTIONS = ("storage", "dataset", "framework", "model", "training", "execution")
#: top-level keys of the dnnbench schema a dss-style file may carry as they are
_KEPT_TOP_KEYS = ("name", "metrics", "plugins", "prepare")
_CREDENTIAL_KEYS = {"endpoint": "endpoint_url", "region_name": "region", "region": "region",
                    "access_key": "access_key", "secret_key": "secret_key"}


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
    fw, loader_workers = _framework(_section(data, "framework", source), source, dropped)
    out["framework"] = fw
    model = _section(data, "model", source)
    out["model"] = {"name": model.get("name", "convnet")}
    if "loss_function" in model:
        dropped.append("model.loss_function (cross-entropy is used)")
    _unused(model, ("name", "loss_function"), "model", dropped)
    training = _section(data, "training", source)
    out["training"] = {"trainer": training.get("name", "train")}
    for key in _TRAINING_KEYS:
        if key in training:
            out["training"][key] = training[key]
    _unused(training, ("name", *_TRAINING_KEYS), "training", dropped)
    execution = _section(data, "execution", source)
    out["execution"] = {}
    if "workers" in execution:
        out["execution"]["listing_workers"] = execution["workers"]
    _unused(execution, ("workers", "steps"), "execution", dropped)
    steps = execution.get("steps", {})
    if isinstance(steps, dict):
        phases = {}
        if steps.get("training") is False:
            phases["train"] = False
        if steps.get("inference"):
            phases["inference"] = True
        if phases:
            out["execution"]["phases"] = phases
        if steps.get("metrics"):
            dropped.append("execution.steps.metrics (metrics are always recorded)")
        _unused(steps, ("model", "training", "inference", "metrics"), "execution.steps", dropped)
    for key in _KEPT_TOP_KEYS:
        if key in data:
            out[key] = data[key]
    _unused(data, (*_LEGACY_SECTIONS, *_KEPT_TOP_KEYS), "", dropped)
    return out, dropped


def _unused(section: dict[str, Any], known: tuple[str, ...], where: str, dropped: list[str]) -> None:
    """Name (never show the value of) every key of ``section`` the translation does not read."""
    for key in section:
        if key not in known:
            dropped.append(f"{where}.{key}" if where else str(key))


def _storage(storage: dict[str, Any], source: str, dropped: list[str]) -> dict[str, Any]:
    fmt = str(storage.get("format", "fs")).lower()
    out: dict[str, Any] = {}
    if storage.get("name"):
        out["name"] = storage["name"]
    if fmt in ("fs", "file", "filesystem"):
        out["client"] = "fs"
        fs = storage.get("fs", {}) or {}
        if not isinstance(fs, dict):
            raise ConfigError(f"must be a mapping with data_dir, not {type(fs).__name__}",
                              reference=f"{source}: storage.fs",
                              hint='e.g. "fs": {"data_dir": ["/data/flower_photos"]}')
        _unused(fs, ("data_dir",), "storage.fs", dropped)
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
    elif fmt == "s3":
        _storage_s3(storage, source, dropped, out)
    else:
        raise ConfigError(f"storage format {fmt!r} of the dss-style layout is not supported",
                          reference=f"{source}: storage.format", hint="use format fs or s3")
    _unused(storage, ("format", "name", "fs", "s3"), "storage", dropped)
    return out


def _storage_s3(storage: dict[str, Any], source: str, dropped: list[str], out: dict[str, Any]) -> None:
    """``storage.format: s3``: ``storage.name`` aws picks ``s3.aws.credentials``, anything else
    (dss, minio) ``s3.dss.credentials`` with its endpoint."""
    s3 = storage.get("s3")
    if not isinstance(s3, dict) or not s3.get("bucket"):
        raise ConfigError("format s3 needs an s3 section with a bucket", reference=f"{source}: storage.s3",
                          hint='e.g. "s3": {"bucket": "dss0", "prefix": ["flower_photos/"], "client_lib": "boto3"}')
    lib = s3.get("client_lib", "boto3")
    if isinstance(lib, dict):
        dropped.extend(f"storage.s3.client_lib.{k}" for k in lib if k != "name")
        lib = lib.get("name", "boto3")
    lib = str(lib).strip().lower()  # "Boto3", "MinIO": the registry's names are lower case
    if lib in ("dss_client", "dss"):
        dropped.append("storage.s3.client_lib dss_client (the DSS C++ client is not supported; boto3 reads)")
        lib = "boto3"
    out["client"] = lib
    prefixes = s3.get("prefix", [""])
    out["prefixes"] = [prefixes] if isinstance(prefixes, str) else prefixes
    name = str(storage.get("name") or "").lower()
    creds = {k: _credentials(s3, k, source) for k in ("aws", "dss")}
    kind = "aws" if name == "aws" or (name not in ("dss", "minio") and not creds["dss"].get("endpoint")) else "dss"
    chosen = creds[kind]
    out["preset"] = "minio" if name == "minio" else kind
    new: dict[str, Any] = {"bucket": s3["bucket"]}
    for old_key, new_key in _CREDENTIAL_KEYS.items():
        if chosen.get(old_key) not in (None, ""):
            new[new_key] = chosen[old_key]
    _unused(chosen, tuple(_CREDENTIAL_KEYS), f"storage.s3.{kind}.credentials", dropped)
    _unused(s3.get(kind) or {}, ("credentials",), f"storage.s3.{kind}", dropped)
    if kind == "aws" and "endpoint_url" in new:
        out["preset"] = "dss"
    out["s3"] = new
    other = "dss" if kind == "aws" else "aws"
    if s3.get(other):
        dropped.append(f"storage.s3.{other} (storage.name is {name or kind!r})")
    _unused(s3, ("bucket", "prefix", "client_lib", "aws", "dss"), "storage.s3", dropped)
    if "fs" in storage:
        dropped.append("storage.fs (format is s3)")


def _credentials(s3: dict[str, Any], kind: str, source: str) -> dict[str, Any]:
    """``storage.s3.<kind>.credentials`` (``{}`` when absent).

    Raises:
        ConfigError: the block or its credentials are not mappings (the value is never shown).
    """
    hint = (f'e.g. "{kind}": {{"credentials": {{"endpoint": "http://host:9000", "access_key": "${{KEY}}", '
            '"secret_key": "${SECRET}"}}' if kind == "dss" else
            f'e.g. "{kind}": {{"credentials": {{"region_name": "us-east-1"}}}} (keys from the AWS chain)')
    block = s3.get(kind)
    if block in (None, ""):
        return {}
    if not isinstance(block, dict):
        raise ConfigError(f"must be a mapping with a credentials block, not {type(block).__name__}",
                          reference=f"{source}: storage.s3.{kind}", hint=hint)
    creds = block.get("credentials")
    if creds in (None, ""):
        return {}
    if not isinstance(creds, dict):
        raise ConfigError(f"must be a mapping, not {type(creds).__name__}",
                          reference=f"{source}: storage.s3.{kind}.credentials", hint=hint)
    return creds


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
    _unused(dataset, ("name", "access", "label", "image_dimension", "decode", "extensions", "max_samples", "type"),
            "dataset", dropped)
    return out


def _framework(fw: dict[str, Any], source: str, dropped: list[str]) -> tuple[dict[str, Any], int | None]:
    """``framework.name`` + the ``PyTorch.DataLoader`` (or ``TensorFlow``) block -> loader options.

    The block is found case-insensitively. A TensorFlow run with an empty TensorFlow block
    takes batch size and workers from the PyTorch block, so flipping the name compares fairly.
    Keys the translation does not read are added to ``dropped``.
    """
    out: dict[str, Any] = {}
    blocks = {k.lower(): v for k, v in fw.items() if k.lower() in ("pytorch", "tensorflow")}
    spelled = {k.lower(): k for k in fw if k.lower() in ("pytorch", "tensorflow")}
    name = fw.get("name") or (next(iter(blocks)) if blocks else "pytorch")
    out["name"] = str(name).lower()
    loader: Any = {}
    used = None
    for which in (out["name"], "pytorch"):
        block = blocks.get(which)
        if block:
            loader = block.get("DataLoader", block) if isinstance(block, dict) else block
            used = which
            if isinstance(block, dict) and "DataLoader" in block:
                _unused(block, ("DataLoader",), f"framework.{spelled[which]}", dropped)
            break
    if not isinstance(loader, dict):
        where = "PyTorch.DataLoader" if out["name"] == "pytorch" else "TensorFlow"
        raise ConfigError("must be a mapping", reference=f"{source}: framework.{where}")
    for key in _LOADER_KEYS:
        if key in loader:
            out[key] = loader[key]
        elif key in fw:
            out[key] = fw[key]
    # the TensorFlow block's own keys are tf.data options (the schema checks them)
    tf_options = {k: v for k, v in loader.items() if k not in _LOADER_KEYS} if used == out["name"] == "tensorflow" \
        else {}
    if tf_options:
        out["tensorflow"] = tf_options
    elif used is not None:
        inner = "DataLoader" if isinstance(blocks[used], dict) and "DataLoader" in blocks[used] else None
        _unused(loader, _LOADER_KEYS, ".".join(p for p in ("framework", spelled[used], inner) if p), dropped)
    for which, block in blocks.items():
        if which != used and block:
            dropped.append(f"framework.{spelled[which]} (framework.name is {out['name']})")
    _unused(fw, ("name", *_LOADER_KEYS, *spelled.values()), "framework", dropped)
    return out, out.get("num_workers")
