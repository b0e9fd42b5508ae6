"""DLIO / MLPerf Storage workload configs, recognised on load and translated to the dnnbench schema.

A DLIO workload file (``unet3d_h100.yaml``, ``resnet50_a100.yaml``...) has the sections
``model``, ``framework`` (a string), ``workflow``, ``dataset``, ``reader`` (or ``data_reader``),
``train``, ``evaluation``, ``checkpoint``, ``metric``, ``output``, ``profiling`` and ``storage`` at
its top level; Hydra's composed form wraps them in ``workload:``. Both key generations are read
(DLIO 2.0.0's ``record_length`` and the later ``record_length_bytes``; ``model`` as a string or as
a mapping with ``name``).

Every key is honoured (:attr:`DlioTranslation.mapped` says where it went) or named in the one
notice (:attr:`DlioTranslation.unused`, with the reason); a key that changes what runs and that
dnnbench cannot honour is a :class:`ConfigError` naming it, never replaced by a default. Hydra's
``++workload.a.b=v`` / ``+workload.a.b=v`` / ``~workload.a.b`` overrides (``--set``) apply to the
DLIO file before it is translated; plain ``--set`` keys apply to the translated config after.

What the translation means (DLIO 2.0 semantics, ``/work/notes/dlio.md``): the emulate trainer
sleeps ``computation_time`` per step, the first step is left out of AU (``warmup_steps: 1``),
``metric.au`` (default 0.90) is ``training.au_target_percent``, the dataset is DLIO's layout
(``<data_folder>/train/img_<i>_of_<n>.<format>``), the shuffles keep DLIO's default ``off``.
"""

from __future__ import annotations

from typing import Any

import yaml

import dnnbench.config.dlio_sections as sections
from dnnbench.config.dlio_sections import FORMATS
from dnnbench.config.dlio_translation import DlioTranslation, Section
from dnnbench.errors import ConfigError

__all__ = ["FORMATS", "DlioTranslation", "apply_hydra_override", "is_dlio", "is_hydra_override", "translate_dlio",
           "unwrap"]

#: DLIO's top-level sections (``framework`` and ``model`` may be plain strings)
SECTIONS = ("model", "framework", "workflow", "dataset", "reader", "data_reader", "train", "evaluation",
            "checkpoint", "metric", "output", "profiling", "storage")
#: sections only a DLIO file has (dnnbench's schema has none of them)
_ONLY_DLIO = ("workflow", "reader", "data_reader", "train", "evaluation", "metric", "output", "profiling")
#: dataset keys only a DLIO file has
_DLIO_DATASET_KEYS = ("data_folder", "num_files_train", "num_samples_per_file", "record_length",
                      "record_length_bytes")


def unwrap(data: dict[str, Any]) -> dict[str, Any]:
    """The workload mapping of a file: Hydra's composed ``workload:`` tree, or the file itself."""
    inner = data.get("workload")
    if isinstance(inner, dict) and set(data) <= {"workload", "hydra"}:
        return inner
    return data


def is_dlio(data: dict[str, Any]) -> bool:
    """True for a DLIO / MLPerf Storage workload (or Hydra's composed ``workload:`` config)."""
    data = unwrap(data)
    if "defaults" in data and "hydra" in data:
        return True  # Hydra's primary config.yaml: refused with a hint by translate_dlio
    dataset = data.get("dataset")
    signs = [isinstance(data.get("framework"), str), isinstance(data.get("model"), str),
             isinstance(dataset, dict) and any(k in dataset for k in _DLIO_DATASET_KEYS),
             *(k in data for k in _ONLY_DLIO)]
    return sum(signs) >= 2  # two, so a dnnbench config with one mistake (framework: pytorch) is not taken


def is_hydra_override(assignment: str) -> bool:
    """``++workload.a=v``, ``+workload.a=v``, ``~workload.a``, ``workload.a=v`` or ``hydra.x=v``."""
    key = assignment.partition("=")[0].strip()
    return key.startswith(("+", "~")) or key.split(".")[0] in ("workload", "hydra")


def apply_hydra_override(data: dict[str, Any], assignment: str, source: str = "--set") -> str | None:
    """Apply one Hydra-style override to the DLIO mapping; returns a notice for what is not used.

    Raises:
        ConfigError: not ``key=value`` (``~key`` deletes), a path through a non-mapping, ``+key``
            on a key that exists (Hydra's rule), or a key outside ``workload.``/``hydra.``.
    """
    key, sep, raw = assignment.partition("=")
    key = key.strip()
    op = "~" if key.startswith("~") else ("++" if key.startswith("++") else ("+" if key.startswith("+") else ""))
    key = key[len(op):]
    if key.split(".")[0] == "hydra":
        return f"{assignment.partition('=')[0]} (Hydra's own setting: dnnbench writes results/<run-id>/)"
    if not key.startswith("workload.") or (op != "~" and not sep):
        raise ConfigError(f"{assignment!r} is not a Hydra workload override", reference=source,
                          hint="++workload.dataset.num_files_train=16 (or a dnnbench key: framework.batch_size=4)")
    parts = key.split(".")[1:]
    node = data
    for i, part in enumerate(parts[:-1]):
        node = node.setdefault(part, {}) if op != "~" else node.get(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {key}: {'.'.join(parts[:i + 1])} is not a section", reference=source)
    if op == "~":
        node.pop(parts[-1], None)
        return None
    if op == "+" and parts[-1] in node:
        raise ConfigError(f"+{key}: the key exists (Hydra's + only adds)", reference=source,
                          hint=f"++{key}=... adds or overrides")
    node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    return None


def translate_dlio(data: dict[str, Any], source: str = "config") -> DlioTranslation:
    """Translate a DLIO workload mapping.

    Raises:
        ConfigError: a key that changes the workload and cannot be honoured, a section of the
            wrong shape, or Hydra's primary config instead of a workload.
    """
    t = DlioTranslation(source=source)
    try:
        _translate(t, dict(unwrap(data)))
    except (TypeError, ValueError, AttributeError) as e:  # a value of the wrong shape deeper down
        raise ConfigError(f"a DLIO workload value has the wrong type: {e}", reference=source,
                          hint="DLIO's keys take numbers, strings, lists of numbers and mappings as in its "
                               "shipped workloads (config/workloads/dlio/)") from None
    return t


def _translate(t: DlioTranslation, data: dict[str, Any]) -> None:
    source = t.source
    if "defaults" in data:
        raise ConfigError("this is Hydra's primary config (defaults:), not a workload", reference=source,
                          hint="give the workload file itself, e.g. --config configs/workload/unet3d_h100.yaml")
    if "hydra" in data:
        t.skip("hydra", "Hydra's own settings: dnnbench writes results/<run-id>/")
    flow = data.get("workflow") if isinstance(data.get("workflow"), dict) else {}
    if flow.get("checkpoint") and not flow.get("train") and not flow.get("generate_data"):
        raise t.refuse("workflow.checkpoint", "a checkpoint-only workload (MLPerf's llama3 checkpointing) is not "
                                              "run by dnnbench", "execution.phases.checkpoint measures one "
                                                                 "checkpoint's save and load")
    workflow = sections.workflow(t, Section(t, "workflow", data.get("workflow")), "workflow" in data)
    framework = sections.framework(t, data.get("framework", "tensorflow"))
    model_sizes = sections.model(t, data.get("model"))
    sections.storage_and_dataset(t, data, workflow)
    sections.reader(t, Section(t, "reader", sections.reader_data(t, data)), framework, data)
    epochs = sections.train(t, Section(t, "train", data.get("train")))
    sections.checkpoint(t, Section(t, "checkpoint", data.get("checkpoint")), workflow, epochs, model_sizes)
    sections.evaluation(t, Section(t, "evaluation", data.get("evaluation")), workflow)
    sections.metric(t, Section(t, "metric", data.get("metric")))
    sections.output_and_profiling(t, data)
    for key in data:
        if key not in (*SECTIONS, "hydra"):
            t.skip(key, "not a DLIO section: DLIO ignores it too")
