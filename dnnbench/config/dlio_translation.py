"""The record of a DLIO workload's translation (:class:`DlioTranslation`: the translated
mapping, where each key went, what was not used) and :class:`Section`, a DLIO section whose keys
are marked as they are read, so the rest are named in the notice. See :mod:`dnnbench.config.dlio`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dnnbench.config.redact import REDACTED, is_secret_key
from dnnbench.errors import ConfigError



@dataclass
class DlioTranslation:
    """The translated config and what the translation did with each key."""

    config: dict[str, Any] = field(default_factory=dict)
    mapped: list[str] = field(default_factory=list)   # "dlio.key=value -> dnnbench.key=value"
    unused: list[str] = field(default_factory=list)   # "dlio.key (reason)"
    source: str = "config"

    def set(self, dotted: str, value: Any, origin: str) -> None:
        """Set ``dotted`` in the translated config and record where it came from."""
        node = self.config
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
        shown = REDACTED if is_secret_key(parts[-1]) else repr(value)
        self.mapped.append(f"{origin} -> {dotted}={shown}")

    def skip(self, key: str, reason: str) -> None:
        self.unused.append(f"{key} ({reason})")

    def refuse(self, key: str, why: str, hint: str | None = None) -> ConfigError:
        """The error for a key that changes the workload and cannot be honoured."""
        return ConfigError(f"{why} (DLIO workload key)", reference=f"{self.source}: {key}",
                           hint=hint or "remove it or give a value dnnbench runs (--set ++workload."
                                        f"{key}=VALUE overrides it); README 'DLIO and MLPerf Storage workloads'")

    def notice(self, path: Any) -> str:
        """The one notice: recognised, and the keys not used (with their reasons)."""
        text = f"{path}: DLIO workload recognised and translated to the dnnbench schema " \
               f"({len(self.mapped)} settings; `validate` prints them)"
        return text + (f"; not used: {', '.join(self.unused)}" if self.unused else "")


class Section:
    """A DLIO section whose keys are marked as they are read (the rest are named unused)."""

    def __init__(self, t: DlioTranslation, name: str, data: Any):
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"DLIO section {name} must be a mapping, not {type(data).__name__}",
                              reference=f"{t.source}: {name}")
        self.t, self.name, self.data, self.seen = t, name, data, set()

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, default: Any = None) -> Any:
        self.seen.add(key)
        value = self.data.get(key, default)
        return default if value is None else value

    def num(self, key: str, default: float, kind: type = int) -> Any:
        """The value as ``kind`` (int or float).

        Raises:
            ConfigError: the value is not a number (named by its path).
        """
        value = self.get(key, default)
        try:
            if isinstance(value, str) or isinstance(value, (list, dict)):
                raise ValueError(value)
            return kind(value)
        except (TypeError, ValueError):
            raise self.t.refuse(self.path(key), f"{value!r} is not {'an integer' if kind is int else 'a number'}",
                                "DLIO's value here is a number") from None

    def first(self, *keys: str, default: Any = None) -> tuple[str, Any]:
        """The first of several names (DLIO's two key generations) that is present."""
        self.seen.update(keys)
        for key in keys:
            if self.data.get(key) is not None:
                return key, self.data[key]
        return keys[0], default

    def path(self, key: str) -> str:
        return f"{self.name}.{key}"

    def note(self, key: str, reason: str) -> None:
        """Name a key that is present and not used, with the reason."""
        self.seen.add(key)
        if key in self.data:
            self.t.skip(self.path(key), reason)

    def refuse_if(self, key: str, bad: bool, why: str, hint: str | None = None) -> None:
        self.seen.add(key)
        if key in self.data and bad:
            raise self.t.refuse(self.path(key), why, hint)

    def finish(self) -> None:
        for key in self.data:
            if key not in self.seen:
                self.t.skip(self.path(key), "not a DLIO key: DLIO ignores it too")
