"""The config's plugins: load the user's plugin modules and resolve every plugin name the
config gives, importing no framework (``validate`` stays light: no torch, no pandas)."""

from __future__ import annotations

from typing import Any

from dnnbench.errors import PluginError
from dnnbench.registry import DATASETS, MODELS, STORAGE, TRAINERS, load_entry_points, load_plugin_module


def load_plugins(loaded: Any, events: Any) -> None:
    """Import the config's ``plugins:`` and the ``dnnbench.plugins`` entry points."""
    base = loaded.path.parent if loaded.path else None
    for spec in loaded.config.plugins:
        load_plugin_module(spec, base_dir=base)
    for problem in load_entry_points():
        events.warning(problem)


def check_plugin_names(cfg: Any) -> None:
    """Resolve every plugin name without importing anything heavy.

    Raises:
        PluginError: an unknown name, with its close matches.
    """
    fw = cfg.framework.name
    checks = [(STORAGE, cfg.storage.client, None, "storage.client"),
              (DATASETS, cfg.dataset.name, fw, "dataset.name"),
              (MODELS, cfg.model.name, fw, "model.name"),
              (TRAINERS, cfg.training.trainer, fw, "training.trainer")]
    for registry, name, framework, path in checks:
        try:
            registry.resolve(name, framework)
        except PluginError as e:
            raise PluginError(e.message, reference=path, hint=e.hint) from None
