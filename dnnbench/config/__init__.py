"""Configuration: pydantic schema and loading (files, ${ENV}, --set, legacy layout)."""

from dnnbench.config.loading import load_config
from dnnbench.config.schema import BenchConfig

__all__ = ["BenchConfig", "load_config"]
