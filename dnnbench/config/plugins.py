"""The config's plugins: load the user's plugin modules and resolve every plugin name the
config gives, importing no framework (``validate`` stays light: no torch, no pandas)."""

from __future__ import annotations

from typing import Any

from dnnbench.config.options import format_option_problems, storage_option_problems
from dnnbench.config.schema import framework_problem, kind_problem, root_problem
from dnnbench.errors import ConfigError, PluginError
from dnnbench.registry import DATASETS, FORMATS, MODELS, STORAGE, TRAINERS, load_entry_points, load_plugin_module

#: warnings of broken entry points, imported early (see :func:`import_plugins`), not yet told
_untold: list[str] = []


def import_plugins(loaded: Any) -> None:
    """Import the config's ``plugins:`` and the ``dnnbench.plugins`` entry points, keeping the
    entry points' warnings for :func:`load_plugins` to tell. Done first thing by the CLI, so
    that the secrets a plugin's storage backend declares are known before anything is written.

    Raises:
        PluginError: a plugin module cannot be found or fails to import.
    """
    base = loaded.path.parent if loaded.path else None
    for spec in loaded.config.plugins:
        load_plugin_module(spec, base_dir=base)
    _untold.extend(load_entry_points())


def load_plugins(loaded: Any, events: Any) -> None:
    """Import the config's ``plugins:`` and the ``dnnbench.plugins`` entry points; warn about broken ones."""
    import_plugins(loaded)
    while _untold:
        events.warning(_untold.pop(0))


def check_plugin_names(cfg: Any) -> None:
    """Resolve every plugin name without importing anything heavy; then check the storage
    section against what the client's backend declares (a plugin's is known only now).

    Raises:
        PluginError: an unknown name, with its close matches.
        ConfigError: the storage section or ``storage.options`` do not fit the backend.
    """
    fw = cfg.framework.name
    checks = [(STORAGE, cfg.storage.client, None, "storage.client"),
              (DATASETS, cfg.dataset.name, fw, "dataset.name"),
              (MODELS, cfg.model.name, fw, "model.name"),
              (TRAINERS, cfg.training.trainer, fw, "training.trainer")]
    if cfg.dataset.format:
        checks.append((FORMATS, cfg.dataset.format, None, "dataset.format"))
    for registry, name, framework, path in checks:
        try:
            registry.resolve(name, framework)
        except PluginError as e:
            raise PluginError(e.message, reference=path, hint=e.hint) from None
    _check_storage(cfg)
    lines = format_option_problems(cfg.dataset)
    if lines:
        raise ConfigError(lines[0] if len(lines) == 1 else f"{len(lines)} problems in dataset.format_options",
                          details=lines if len(lines) > 1 else [],
                          hint=f"dataset.format_options are the {FORMATS.canonical(cfg.dataset.format)} format's own")


def _check_storage(cfg: Any) -> None:
    problem = (kind_problem(cfg.storage) or root_problem(cfg.storage)
               or framework_problem(cfg.storage.client, cfg.framework.name))
    if problem:
        raise ConfigError(problem, reference="storage")
    lines = storage_option_problems(cfg.storage)
    if lines:
        raise ConfigError(lines[0] if len(lines) == 1 else f"{len(lines)} problems in storage.options",
                          details=lines if len(lines) > 1 else [],
                          hint=f"storage.options are the {STORAGE.canonical(cfg.storage.client)} client's own")
