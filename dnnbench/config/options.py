"""The ``options`` of the built-in plugins, checked at validation.

``model.options``, ``dataset.options`` and ``storage.options`` are free-form in the
schema because a user's plugin defines its own. For the built-in plugins they are
checked here against an options model (unknown keys and bad values are exit 2
naming ``model.options.width``...), without importing any framework: the name is
resolved in the registry, which holds the built-ins as ``"module:Class"`` strings.
A user plugin's options are its constructor's to check.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, PositiveInt, ValidationError

from dnnbench.config.redact import SECRET_KEYS
from dnnbench.config.schema import Strict
from dnnbench.errors import PluginError


class NoOptions(Strict):
    """A built-in that takes no options: the configuration it needs has its own keys."""


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
    **{("storage", name): NoOptions for name in ("fs", "boto3", "minio", "s3fs", "s3torchconnector")},
}


def option_problems(cfg: Any) -> list[str]:
    """One line per problem in the options of the config's built-in plugins (``[]`` if none).

    A name that is not a built-in (a user's plugin, or a typo that the plugin check
    names later) is skipped.
    """
    from dnnbench.registry import DATASETS, MODELS, STORAGE

    fw = cfg.framework.name
    checks = [("model", MODELS, cfg.model.name, fw, cfg.model.options),
              ("dataset", DATASETS, cfg.dataset.name, fw, cfg.dataset.options),
              ("storage", STORAGE, cfg.storage.client, None, cfg.storage.options)]
    problems: list[str] = []
    for section, registry, name, framework, options in checks:
        try:
            entry = registry.resolve(name, framework)
        except PluginError:
            continue
        model = BUILTIN_OPTIONS.get((section, entry.name)) if entry.origin == "builtin" else None
        if model is None:
            continue
        try:
            model.model_validate(options)
        except ValidationError as err:
            problems += [_line(f"{section}.options", e, entry.name, model) for e in err.errors()]
    return problems


def _line(prefix: str, e: Any, plugin: str, model: type[BaseModel]) -> str:
    loc = ".".join([prefix, *(str(p) for p in e["loc"])])
    if e["type"] == "extra_forbidden":
        known = ", ".join(model.model_fields) or "none"
        return f"{loc}: {plugin} has no option {e['loc'][-1]!r} (its options: {known})"
    msg = e["msg"].removeprefix("Value error, ")
    secret = any(isinstance(p, str) and SECRET_KEYS.search(p) for p in e["loc"])
    given = e.get("input")
    if not secret and not isinstance(given, (dict, list)):
        msg += f" (got {given!r})"
    return f"{loc}: {msg}"
