"""Build the configured storage: the registered backend, its validated options, and the
latency-emulation wrapper when ``storage.emulate`` asks for one."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from dnnbench.errors import ConfigError, StorageError
from dnnbench.recording.requests import RecorderSpec
from dnnbench.storage.base import Storage
from dnnbench.storage.emulate import EmulatedStorage


def create_storage(config: Any, recorder: RecorderSpec | None = None) -> Storage:
    """Build the storage backend named by ``config.client`` from the registry.

    A backend that declares an options model gets ``storage.options`` validated against it,
    as ``options=``.

    Raises:
        PluginError: unknown client name, or its library is not installed.
        ConfigError: ``storage.options`` do not fit the backend's options model.
        StorageError: the backend rejects its configuration.
    """
    from dnnbench.registry import STORAGE  # the registry reads the backend table beside this module

    entry = STORAGE.resolve(config.client)
    cls = entry.load()
    kwargs: dict[str, Any] = {"recorder": recorder}
    if entry.spec is not None and entry.spec.options is not None:
        kwargs["options"] = _options(entry.spec, entry.name, getattr(config, "options", None) or {})
    try:
        storage = cls(config, **kwargs)
    except TypeError as e:
        raise StorageError(f"storage client {config.client!r} could not be created: {e}",
                           reference="storage.client") from e
    emulate = getattr(config, "emulate", None)
    if emulate is not None:
        storage = EmulatedStorage(storage, emulate, recorder)
    return storage


def _options(spec: Any, name: str, options: dict[str, Any]) -> Any:
    try:
        return spec.parse_options(options)
    except ValidationError as err:
        e = err.errors()[0]
        loc = ".".join(["storage.options", *(str(p) for p in e["loc"])])
        raise ConfigError(f"{loc}: {e['msg']}", reference="storage.options",
                          hint=f"the options of {name} are: {', '.join(spec.options.model_fields) or 'none'}") from None
