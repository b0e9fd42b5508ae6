"""Storage backends behind one small interface (see :mod:`dnnbench.storage.base`)."""

from dnnbench.storage.base import ObjectInfo, Storage, create_storage

__all__ = ["ObjectInfo", "Storage", "create_storage"]
