"""Helpers of the dss-style adapter: the later layout's ``"choice"`` sections, keys not
used, comments, and the upstream class names dnnbench does not run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dnnbench.errors import ConfigError

#: upstream writes comments as (repeated) ``"__comment__"`` keys: they are not settings
COMMENT_PREFIX = "__comment"
#: upstream's object-detection classes, per section: dnnbench benchmarks image classification
DETECTION_CLASSES = {"dataset": "TorchObjectDetectionDataset", "training": "ObjectDetectionDatasetTrain",
                     "model": "ObjectDetector"}
_CLASSIFICATION = {"dataset": "PythonReadDataset (read only) or TorchImageClassificationDataset",
                   "training": "PythonReadTrain (read only) or RandomAccessDatasetTrain", "model": "ConvNet"}


def is_comment(key: Any) -> bool:
    return isinstance(key, str) and key.startswith(COMMENT_PREFIX)


@dataclass
class Section:
    """One section of the dss-style layout, flattened: its own keys plus, in the later
    layout, those of the block its ``choice`` names (``values``); ``path(key)`` says where
    the user wrote a key, so the notice can name it."""

    where: str
    values: dict[str, Any]
    choice: str | None = None
    from_block: set[str] = field(default_factory=set)

    def path(self, key: str) -> str:
        return f"{self.where}.{self.choice}.{key}" if key in self.from_block else f"{self.where}.{key}"

    def unused(self, known: tuple[str, ...], dropped: list[str]) -> None:
        """Name (never show the value of) every key the translation does not read."""
        dropped.extend(self.path(k) for k in self.values if k not in known)


def chosen(section: dict[str, Any], where: str, source: str, dropped: list[str],
           flat_mappings: tuple[str, ...] = ()) -> Section:
    """A section of either layout as a :class:`Section`.

    The later layout names its class in ``"choice"`` and holds one block per class
    (``{"choice": "ConvNet", "ConvNet": {...}, "ObjectDetector": {...}}``): the chosen
    block's keys are the settings, every other block is named in ``dropped``.
    ``flat_mappings`` are keys whose value is a mapping of the section itself
    (``dataset.access``), never a class block. Comments are left out.

    Raises:
        ConfigError: ``choice`` is not a name, or its block is not a mapping.
    """
    values = {k: v for k, v in section.items() if not is_comment(k)}
    if "choice" not in values:
        return Section(where, values)
    choice = values.pop("choice")
    if not isinstance(choice, str) or not choice.strip():
        raise ConfigError("must name one of the section's classes", reference=f"{source}: {where}.choice",
                          hint=f'e.g. "choice": "{next(iter(_block_names(values, flat_mappings)), "ConvNet")}"')
    blocks = _block_names(values, flat_mappings)
    block = values.get(choice, {})
    if not isinstance(block, dict):
        raise ConfigError(f"must be a mapping of {choice}'s settings, not {type(block).__name__}",
                          reference=f"{source}: {where}.{choice}")
    for other in blocks:
        if other != choice:
            dropped.append(f"{where}.{other} ({where}.choice is {choice})")
    flat = {k: v for k, v in values.items() if k not in blocks and k != choice}
    inner = {k: v for k, v in block.items() if not is_comment(k)}
    for key in set(flat) & set(inner):
        if flat[key] != inner[key]:
            raise ConfigError(f"{key} is set twice, differently: in {where} and in {where}.{choice}",
                              reference=f"{source}: {where}.{choice}.{key}", hint="keep one of them")
    return Section(where, {**flat, **inner}, choice, set(inner))


def _block_names(values: dict[str, Any], flat_mappings: tuple[str, ...]) -> list[str]:
    return [k for k, v in values.items() if isinstance(v, dict) and k not in flat_mappings]


def refuse_detection(kind: str, name: Any, key: str, source: str) -> None:
    """Object detection is upstream's other workload; dnnbench does not run it.

    Raises:
        ConfigError: ``name`` is upstream's object-detection class of this ``kind``.
    """
    if name == DETECTION_CLASSES[kind]:
        raise ConfigError(f"{name} (object detection) is not supported: dnnbench benchmarks "
                          "image classification reads", reference=f"{source}: {key}",
                          hint=f"choose {_CLASSIFICATION[kind]}")


def unused(section: dict[str, Any], known: tuple[str, ...], where: str, dropped: list[str]) -> None:
    """Name (never show the value of) every key of ``section`` the translation does not read."""
    for key in section:
        if key not in known and not is_comment(key):
            dropped.append(f"{where}.{key}" if where else str(key))
