"""The run's identity in its summary row: what ran (config, framework, storage, client, access,
decode, dataset, model, trainer, workers, batch size, epochs, emulation) under the canonical
registry names, and the sweep's tags. Built once per run, by :func:`run_identity`."""

from __future__ import annotations

from typing import Any

from dnnbench.config.loading import LoadedConfig
from dnnbench.registry import DATASETS, MODELS, STORAGE, TRAINERS
from dnnbench.storage.base import Storage

#: the tags a sweep gives each of its runs (:mod:`dnnbench.sweep`)
TAGS = ("sweep_id", "variant", "repeat")


def run_identity(loaded: LoadedConfig, storage: Storage, tags: dict[str, Any]) -> dict[str, Any]:
    """The identity columns of the summary row."""
    cfg = loaded.config
    fw = cfg.framework.name
    trainer = TRAINERS.resolve(cfg.training.trainer, fw).name  # canonical, not alias
    needs_model = trainer not in ("read", "emulate")
    return {"config": loaded.stem, "framework": fw, "storage": storage.label(),
            "client": STORAGE.resolve(cfg.storage.client).name, "access": cfg.dataset.access,
            "decode": cfg.dataset.decode, "dataset": DATASETS.resolve(cfg.dataset.name, fw).name,
            "model": MODELS.resolve(cfg.model.name, fw).name if needs_model else None,
            "trainer": trainer, "workers": cfg.framework.num_workers,
            "batch_size": cfg.framework.batch_size, "epochs": cfg.training.epochs,
            "emulated": emulation_label(cfg.storage.emulate), **{k: tags.get(k) for k in TAGS}}


def emulation_label(emulate: Any) -> str:
    """'no', or the emulated latency / bandwidth, so an emulated run is never mistaken for a real one."""
    if emulate is None:
        return "no"
    parts = [f"{emulate.latency_ms:g}ms"]
    if emulate.jitter_ms:
        parts[0] = f"{emulate.latency_ms:g}+-{emulate.jitter_ms:g}ms"
    if emulate.bandwidth_MBps:
        parts.append(f"{emulate.bandwidth_MBps:g}MBps")
    return "yes:" + ",".join(parts)
