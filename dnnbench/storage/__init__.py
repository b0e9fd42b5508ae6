"""Storage backends behind one small interface (see :mod:`dnnbench.storage.base`); how a
backend joins is :mod:`dnnbench.storage.backends`."""

from dnnbench.storage.base import ObjectInfo, Storage
from dnnbench.storage.factory import create_storage

__all__ = ["ObjectInfo", "Storage", "create_storage"]
