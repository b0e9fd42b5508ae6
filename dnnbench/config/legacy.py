"""Adapter for the dss-style benchmark's config layout (upstream ``dss_dnn_benchmark``).

Both of its layouts are recognised and translated to the dnnbench schema:

* the first: ``storage.format/name/fs.data_dir``, ``dataset.name/access/label/
  image_dimension``, ``execution.workers/steps``, ``framework`` with a
  ``PyTorch.DataLoader`` block, ``model.name``, ``training.name``;
* the later one: a ``"choice"`` in ``dataset``, ``model``, ``training`` and ``storage.fs``
  naming the class, with one block per class (``"model": {"choice": "ConvNet",
  "ConvNet": {...}, "ObjectDetector": {...}}``), ``framework.batch_size/epochs``,
  ``"device": "CPU"``, ``storage.s3.client_lib: {"name": ..., "dss_client": {...}}``,
  ``metrics: {format, graph, path}`` and ``logging: {path, level}``.

Every key is honoured or named in the notice (``dropped``, with the reason where one
helps); a key that would change what runs and cannot be honoured (object detection, the
DSS C++ client, a non-image dataset, a metrics format other than csv) is a
:class:`ConfigError`, never replaced by a default. Upstream's class names are registry
aliases (``TorchImageClassificationDataset``, ``PythonReadDataset``, ``ConvNet``,
``RandomAccessDatasetTrain``); ``PythonReadTrain`` becomes the ``read`` trainer.
"""

from __future__ import annotations

from typing import Any

from dnnbench.config.legacy_sections import Section, chosen, is_comment, refuse_detection, unused
from dnnbench.config.legacy_storage import translate_storage
from dnnbench.errors import ConfigError

_LOADER_KEYS = ("batch_size", "num_workers", "shuffle", "prefetch_factor", "persistent_workers",
                "pin_memory", "drop_last", "multiprocessing_context")
_TRAINING_KEYS = ("epochs", "max_steps", "warmup_steps", "lr", "optimizer", "compute_time_s")
_LEGACY_SECTIONS = ("storage", "dataset", "framework", "model", "training", "execution", "device", "metrics",
                    "logging")
#: top-level keys of the dnnbench schema a dss-style file may carry as they are
_KEPT_TOP_KEYS = ("name", "plugins", "prepare", "limits")
#: upstream trainer classes that are dnnbench trainers of another name
_TRAINERS = {"PythonReadTrain": "read"}
_DEVICES = {"cpu": "cpu", "gpu": "cuda", "cuda": "cuda"}
#: upstream keys dnnbench reads no setting from, with the reason the notice gives
_NOT_NEEDED = {
    "avg_image_size": "dnnbench measures the bytes it reads",
    "mean": "normalisation does not change what is read", "std": "normalisation does not change what is read",
    "loss_function": "cross-entropy is used",
    "max_batch_size": "upstream's loss print interval; dnnbench prints per epoch",
    "max_object_size": "the DSS client's buffer size",
    "instance_id": "the DSS client's id",
}


def is_legacy(data: dict[str, Any]) -> bool:
    def section(name: str) -> dict[str, Any]:
        value = data.get(name)
        return value if isinstance(value, dict) else {}

    storage, execution, framework, training = (section(n) for n in ("storage", "execution", "framework", "training"))
    return ("format" in storage or "fs" in storage or "steps" in execution or "workers" in execution
            or any(k in framework for k in ("PyTorch", "TensorFlow"))
            or ("name" in training and "trainer" not in training)
            or any("choice" in section(n) for n in ("dataset", "model", "training")))


def _section(data: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    value = data.get(name, {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"must be a mapping in the dss-style layout, not {type(value).__name__}",
                          reference=f"{source}: {name}")
    return value


def translate_legacy(data: dict[str, Any], source: str = "config") -> tuple[dict[str, Any], list[str]]:
    """Translate a dss-style config. Returns the new mapping and the keys it did not use
    (each named by its path, with the reason where one helps; values are never shown).

    Raises:
        ConfigError: a section has the wrong shape, or asks for what dnnbench does not run.
    """
    dropped: list[str] = []
    out: dict[str, Any] = {"storage": translate_storage(_section(data, "storage", source), source, dropped)}
    dataset = _dataset(_section(data, "dataset", source), source, dropped)
    framework, fw_epochs = _framework(_section(data, "framework", source), source, dropped)
    training = _training(_section(data, "training", source), source, dropped, dataset)
    out.update(dataset=dataset, framework=framework, training=training)
    _epochs(training, fw_epochs, source)
    out["model"] = _model(_section(data, "model", source), source, dropped, training["trainer"])
    out["execution"] = _execution(_section(data, "execution", source), dropped)
    if "device" in data:
        out["execution"]["device"] = _device(data["device"], source)
    if "metrics" in data:
        out["metrics"] = _metrics(_section(data, "metrics", source), source, dropped)
    if "logging" in data:
        # path + level: the schema's own keys (a run log file in that folder, at that level)
        out["logging"] = {k: v for k, v in _section(data, "logging", source).items() if not is_comment(k)}
    for key in _KEPT_TOP_KEYS:
        if key in data:
            out[key] = data[key]
    unused(data, (*_LEGACY_SECTIONS, *_KEPT_TOP_KEYS), "", dropped)
    return out, dropped


def _not_needed(sec: Section, dropped: list[str]) -> tuple[str, ...]:
    """Name the keys of ``sec`` that dnnbench needs no setting from, with the reason."""
    found = tuple(k for k in sec.values if k in _NOT_NEEDED)
    dropped.extend(f"{sec.path(k)} ({_NOT_NEEDED[k]})" for k in found)
    return found


def _dataset(dataset: dict[str, Any], source: str, dropped: list[str]) -> dict[str, Any]:
    sec = chosen(dataset, "dataset", source, dropped, flat_mappings=("access",))
    values, out = sec.values, {}
    name = sec.choice or values.get("name")
    refuse_detection("dataset", name, "dataset.choice" if sec.choice else "dataset.name", source)
    if name:
        out["name"] = name
    access = values.get("access", {"random": True})
    if isinstance(access, dict):
        picked = [k for k, v in access.items() if v and not is_comment(k)]
        if len(picked) != 1:
            raise ConfigError(f"exactly one access mode must be true, got {picked or 'none'}",
                              reference=f"{source}: {sec.path('access')}",
                              hint='e.g. "access": {"random": true, "sequential": false}')
        out["access"] = picked[0]
    elif isinstance(access, str):
        out["access"] = access
    if "label" in values:
        out["labels"] = values["label"]
    for key in ("image_dimension", "decode", "extensions", "max_samples"):
        if key in values:
            out[key] = values[key]
    if name == "PythonReadDataset":
        out.setdefault("decode", "none")  # upstream's read-only dataset: the bytes, not decoded
    kind = values.get("type", "image")
    if str(kind).lower() != "image":
        raise ConfigError(f"dataset type {kind!r} is not supported: dnnbench reads image datasets",
                          reference=f"{source}: {sec.path('type')}", hint='use "type": "image"')
    sec.unused(("name", "access", "label", "image_dimension", "decode", "extensions", "max_samples", "type",
                *_not_needed(sec, dropped)), dropped)
    return out


def _training(training: dict[str, Any], source: str, dropped: list[str],
              dataset: dict[str, Any]) -> dict[str, Any]:
    """``training.name`` or ``training.choice`` -> the trainer; its block's epochs etc.; the
    RandomAccessDatasetTrain block's ``access_method`` must agree with ``dataset.access``."""
    sec = chosen(training, "training", source, dropped)
    name = sec.choice or sec.values.get("name") or "train"
    refuse_detection("training", name, "training.choice" if sec.choice else "training.name", source)
    out: dict[str, Any] = {"trainer": _TRAINERS.get(name, name)}
    out.update({k: sec.values[k] for k in _TRAINING_KEYS if k in sec.values})
    method = sec.values.get("access_method")
    if method is not None:
        access = str(method).strip().lower()
        if access not in ("random", "sequential"):
            raise ConfigError(f"access method {method!r} is not random or sequential",
                              reference=f"{source}: {sec.path('access_method')}")
        if dataset.setdefault("access", access) != access:
            raise ConfigError(f"says {method!r} but dataset.access is {dataset['access']!r}",
                              reference=f"{source}: {sec.path('access_method')}",
                              hint="make the two agree: they are the same setting")
    sec.unused(("name", "access_method", *_TRAINING_KEYS), dropped)
    return out


def _epochs(training: dict[str, Any], fw_epochs: Any, source: str) -> None:
    """The later layout writes ``framework.epochs``; the first ``training.epochs``."""
    if fw_epochs is None:
        return
    if training.setdefault("epochs", fw_epochs) != fw_epochs:
        raise ConfigError(f"framework.epochs ({fw_epochs}) and training's epochs ({training['epochs']}) differ",
                          reference=f"{source}: framework.epochs", hint="give the number of epochs once")


def _model(model: dict[str, Any], source: str, dropped: list[str], trainer: str) -> dict[str, Any]:
    sec = chosen(model, "model", source, dropped)
    name = sec.choice or sec.values.get("name")
    key = "model.choice" if sec.choice else "model.name"
    refuse_detection("model", name, key, source)
    if trainer in ("read", "emulate") and sec.values:
        dropped.append(f"model (the {trainer} trainer builds no model)")
    else:
        sec.unused(("name", *_not_needed(sec, dropped)), dropped)
    return {"name": name or "convnet"}


def _execution(execution: dict[str, Any], dropped: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "workers" in execution:
        out["listing_workers"] = execution["workers"]
    unused(execution, ("workers", "steps"), "execution", dropped)
    steps = execution.get("steps", {})
    if not isinstance(steps, dict):
        return out
    phases = {}
    if steps.get("training") is False:
        phases["train"] = False
    if steps.get("inference"):
        phases["inference"] = True
    if phases:
        out["phases"] = phases
    if steps.get("metrics"):
        dropped.append("execution.steps.metrics (metrics are always recorded)")
    if steps.get("model") is False and steps.get("training") is not False:
        dropped.append("execution.steps.model (the train trainer builds its model)")
    unused(steps, ("model", "training", "inference", "metrics"), "execution.steps", dropped)
    return out


def _device(device: Any, source: str) -> str:
    """Upstream's ``"device": "CPU"`` (or GPU) -> ``execution.device``.

    Raises:
        ConfigError: another device.
    """
    found = _DEVICES.get(str(device).strip().lower())
    if found is None:
        raise ConfigError(f"device {device!r} is not supported", reference=f"{source}: device",
                          hint='use "CPU" or "GPU" (CUDA)')
    return found


def _metrics(metrics: dict[str, Any], source: str, dropped: list[str]) -> dict[str, Any]:
    """``metrics: {format, graph, path}``: path is the results folder, csv is what dnnbench
    writes; dnnbench's own metrics keys pass through to the schema.

    Raises:
        ConfigError: a format other than csv.
    """
    out = {k: v for k, v in metrics.items() if k not in ("format", "graph", "path") and not is_comment(k)}
    fmt = metrics.get("format", "csv")
    if str(fmt).strip().lower() != "csv":
        raise ConfigError(f"format {fmt!r} is not written: dnnbench writes csv (summary.csv, epochs.csv, "
                          "steps.csv, requests.csv)", reference=f"{source}: metrics.format", hint='use "csv"')
    if "path" in metrics:
        out["output_dir"] = metrics["path"]
    graph = metrics.get("graph")
    if isinstance(graph, dict) and graph.get("enabled") is False:
        unused(graph, ("enabled", "name"), "metrics.graph", dropped)
    elif graph is not None:
        dropped.append("metrics.graph (plots: `benchmark.py compare RUN_DIR` draws them)")
    return out


def _framework(fw: dict[str, Any], source: str, dropped: list[str]) -> tuple[dict[str, Any], Any]:
    """``framework.name`` + the ``PyTorch.DataLoader`` (or ``TensorFlow``) block -> loader
    options, and ``framework.epochs`` (None when absent).

    The block is found case-insensitively. A TensorFlow run with an empty TensorFlow block
    takes batch size and workers from the PyTorch block, so flipping the name compares fairly.
    Keys the translation does not read are added to ``dropped``.
    """
    out: dict[str, Any] = {}
    blocks = {k.lower(): v for k, v in fw.items() if k.lower() in ("pytorch", "tensorflow")}
    spelled = {k.lower(): k for k in fw if k.lower() in ("pytorch", "tensorflow")}
    name = fw.get("name") or (next(iter(blocks)) if blocks else "pytorch")
    out["name"] = str(name).lower()
    loader, used = _loader_block(blocks, spelled, out["name"], dropped)
    if not isinstance(loader, dict):
        where = "PyTorch.DataLoader" if out["name"] == "pytorch" else "TensorFlow"
        raise ConfigError("must be a mapping", reference=f"{source}: framework.{where}")
    for key in _LOADER_KEYS:
        if key in loader:
            out[key] = loader[key]
        elif key in fw:
            out[key] = fw[key]
    # the TensorFlow block's own keys are tf.data options (the schema checks them)
    tf_options = {k: v for k, v in loader.items() if k not in _LOADER_KEYS and not is_comment(k)} \
        if used == out["name"] == "tensorflow" else {}
    if tf_options:
        out["tensorflow"] = tf_options
    elif used is not None:
        inner = "DataLoader" if isinstance(blocks[used], dict) and "DataLoader" in blocks[used] else None
        unused(loader, _LOADER_KEYS, ".".join(p for p in ("framework", spelled[used], inner) if p), dropped)
    for which, block in blocks.items():
        if which != used and block:
            dropped.append(f"framework.{spelled[which]} (framework.name is {out['name']})")
    top = Section("framework", {k: v for k, v in fw.items() if not is_comment(k)})
    top.unused(("name", "epochs", *_LOADER_KEYS, *spelled.values(), *_not_needed(top, dropped)), dropped)
    return out, fw.get("epochs")


def _loader_block(blocks: dict[str, Any], spelled: dict[str, str], name: str,
                  dropped: list[str]) -> tuple[Any, str | None]:
    """The loader settings of framework ``name`` (else PyTorch's) and which block they came from."""
    for which in (name, "pytorch"):
        block = blocks.get(which)
        if not block:
            continue
        if not isinstance(block, dict) or "DataLoader" not in block:
            return block, which
        if block.get("distributed_data_parallel") is True:
            dropped.append(f"framework.{spelled[which]}.distributed_data_parallel (dnnbench runs data-parallel "
                           "ranks when started under torchrun)")
        unused(block, ("DataLoader", "distributed_data_parallel"), f"framework.{spelled[which]}", dropped)
        return block["DataLoader"], which
    return {}, None
