"""Which format a dataset config names and what it declared (light: the registry's facts, no
format module imported)."""

from __future__ import annotations

from typing import Any

from dnnbench.formats.spec import FormatSpec
from dnnbench.registry import FORMATS


def format_spec(dataset: Any) -> FormatSpec | None:
    """The facts ``dataset.format`` declared (None without a format, or when not registered)."""
    return FORMATS.spec_of(dataset.format) if dataset.format else None


def is_file_format(dataset: Any) -> bool:
    """Does the dataset hold many samples per file (read by the format datasets, not ``dataset.name``'s)?"""
    spec = format_spec(dataset)
    return spec is not None and not spec.per_object


def extensions(dataset: Any) -> list[str]:
    """The extensions listing keeps: ``dataset.extensions`` when given, else the format's own."""
    spec = format_spec(dataset)
    if spec is None or "extensions" in dataset.model_fields_set:
        return list(dataset.extensions)
    return list(spec.extensions)
