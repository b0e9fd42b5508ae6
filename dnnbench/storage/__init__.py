"""Storage backends behind one small interface (see :mod:`dnnbench.storage.base`); how a
backend joins is :mod:`dnnbench.storage.backends`.

``Storage``, ``ObjectInfo`` and ``create_storage`` are imported on first use, so that
validating a config (which reads the backend table) loads no storage machinery."""

from __future__ import annotations

from typing import Any

__all__ = ["ObjectInfo", "Storage", "create_storage"]


def __getattr__(name: str) -> Any:
    if name in ("ObjectInfo", "Storage"):
        from dnnbench.storage import base

        return getattr(base, name)
    if name == "create_storage":
        from dnnbench.storage.factory import create_storage

        return create_storage
    raise AttributeError(f"module 'dnnbench.storage' has no attribute {name!r}")
