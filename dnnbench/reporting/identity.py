"""What ran: the identity columns of a run's summary row, built once.

A run's identity says which setup its figures belong to (framework, storage, client,
access, decode, dataset, model, trainer, workers, batch size, epochs, emulation, the
config's name and the sweep's tags). It is built from what actually ran: the storage's
own label and the canonical plugin names the registries resolved (never an alias).
``compare`` and the gate hold two runs to be like each other when the catalogue's
``like`` fields agree (:data:`dnnbench.reporting.columns.LIKE`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from dnnbench.registry import DATASETS, MODELS, STORAGE, TRAINERS

#: the sweep's labels of a run, in column order
TAGS = ("sweep_id", "variant", "repeat")
#: trainers that build no model (the ``model`` column stays empty)
_NO_MODEL = ("read", "emulate")


@dataclass(frozen=True)
class RunIdentity:
    """A run's identity columns (field names are the column names, see the catalogue)."""

    config: str
    framework: str
    storage: str
    client: str
    access: str
    decode: str
    dataset: str
    model: str | None
    trainer: str
    workers: int
    batch_size: int
    requests_in_flight: int
    epochs: int
    emulated: str
    sweep_id: str | None = None
    variant: str | None = None
    repeat: int | None = None

    def row(self) -> dict[str, Any]:
        """The identity as summary-row columns."""
        return asdict(self)


def run_identity(config: Any, stem: str, storage_label: str, tags: dict[str, Any] | None = None) -> RunIdentity:
    """The identity of a run of ``config`` (a validated BenchConfig) against the opened storage.

    Args:
        config: the run's configuration.
        stem: the config file's name without its extension (the ``config`` column).
        storage_label: what the opened storage calls itself (``Storage.label()``).
        tags: the sweep's ``sweep_id``, ``variant`` and ``repeat`` (absent ones stay empty).
    """
    fw = config.framework.name
    trainer = TRAINERS.resolve(config.training.trainer, fw).name  # canonical, not an alias
    tags = tags or {}
    return RunIdentity(
        config=stem, framework=fw, storage=storage_label, client=STORAGE.resolve(config.storage.client).name,
        access=config.dataset.access, decode=config.dataset.decode,
        dataset=DATASETS.resolve(config.dataset.name, fw).name,
        model=None if trainer in _NO_MODEL else MODELS.resolve(config.model.name, fw).name,
        trainer=trainer, workers=config.framework.num_workers, batch_size=config.framework.batch_size,
        epochs=config.training.epochs, emulated=emulation_label(config.storage.emulate),
        requests_in_flight=config.dataset.requests_in_flight,
        **{k: tags.get(k) for k in TAGS})


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
