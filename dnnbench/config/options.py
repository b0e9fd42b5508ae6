"""The ``options`` of plugins, checked at validation.

``model.options``, ``dataset.options`` and ``storage.options`` are free-form in the
schema because a user's plugin defines its own. For the built-in models and datasets
they are checked here against an options model (unknown keys and bad values are exit 2
naming ``model.options.width``...), without importing any framework: the name is
resolved in the registry, which holds the built-ins as ``"module:Class"`` strings.
``storage.options`` are checked against the options model the storage backend declared
(:class:`~dnnbench.storage.backends.Backend`), a plugin's included once it is loaded.
Other plugins' options are their constructor's to check.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, PositiveInt, ValidationError

from dnnbench.config.redact import is_secret_key
from dnnbench.config.schema import Strict
from dnnbench.errors import PluginError


class NoOptions(Strict):
    """A built-in that takes no options."""


class ConvNetOptions(Strict):
    """``convnet``: two 5x5 convolutions (``width``, ``2 x width`` channels) and a hidden layer."""

    width: PositiveInt = Field(16, le=1024, description="channels of the first convolution")
    hidden: PositiveInt = Field(64, le=65536, description="units of the hidden layer")


class ResNetOptions(Strict):
    """``resnet``: basic blocks per stage; ``layers: [2, 2, 2, 2], width: 64`` is ResNet-18."""

    layers: list[PositiveInt] = Field([1, 1, 1, 1], min_length=1, max_length=8,
                                      description="blocks per stage, each stage doubling the width")
    width: PositiveInt = Field(32, le=1024, description="channels of the first stage")


#: (section, canonical built-in name) -> its options model
BUILTIN_OPTIONS: dict[tuple[str, str], type[BaseModel]] = {
    ("model", "convnet"): ConvNetOptions,
    ("model", "resnet"): ResNetOptions,
    **{("dataset", name): NoOptions for name in ("image_folder", "raw")},
}


def option_problems(cfg: Any) -> list[str]:
    """One line per problem in the options of the config's built-in plugins (``[]`` if none).

    A model or dataset that is not a built-in (a user's plugin, or a typo that the plugin
    check names later) is skipped, and so is a storage client not registered yet.
    """
    from dnnbench.registry import DATASETS, MODELS

    fw = cfg.framework.name
    checks = [("model", MODELS, cfg.model.name, fw, cfg.model.options),
              ("dataset", DATASETS, cfg.dataset.name, fw, cfg.dataset.options)]
    problems: list[str] = []
    for section, registry, name, framework, options in checks:
        try:
            entry = registry.resolve(name, framework)
        except PluginError:
            continue
        model = BUILTIN_OPTIONS.get((section, entry.name)) if entry.origin == "builtin" else None
        if model is not None:
            problems += _problems(f"{section}.options", model, options, entry.name)
    return problems + storage_option_problems(cfg.storage) + format_option_problems(cfg.dataset)


def format_option_problems(dataset: Any) -> list[str]:
    """``dataset.format_options`` against the options model of ``dataset.format`` (``[]`` without
    a format, or when the format is not registered yet: a plugin's is checked once loaded)."""
    from dnnbench.registry import FORMATS

    if not dataset.format:
        return []
    spec = FORMATS.spec_of(dataset.format)
    if spec is None:
        return []
    return _problems("dataset.format_options", spec.options, dataset.format_options, FORMATS.canonical(dataset.format))


def storage_option_problems(storage: Any) -> list[str]:
    """``storage.options`` against the options model of the client's backend (``[]`` when it
    declares none, or the client is not registered yet)."""
    from dnnbench.registry import STORAGE

    backend = STORAGE.spec_of(storage.client)
    if backend is None or backend.options is None:
        return []
    return _problems("storage.options", backend.options, storage.options, STORAGE.canonical(storage.client))


def _problems(prefix: str, model: type[BaseModel], options: dict[str, Any], plugin: str) -> list[str]:
    try:
        model.model_validate(options)
    except ValidationError as err:
        return [_line(prefix, e, plugin, model) for e in err.errors()]
    return []


def _line(prefix: str, e: Any, plugin: str, model: type[BaseModel]) -> str:
    loc = ".".join([prefix, *(str(p) for p in e["loc"])])
    if e["type"] == "extra_forbidden":
        known = ", ".join(model.model_fields) or "none"
        return f"{loc}: {plugin} has no option {e['loc'][-1]!r} (its options: {known})"
    msg = e["msg"].removeprefix("Value error, ")
    secret = any(isinstance(p, str) and is_secret_key(p) for p in e["loc"])
    given = e.get("input")
    if not secret and not isinstance(given, (dict, list)):
        msg += f" (got {given!r})"
    return f"{loc}: {msg}"
