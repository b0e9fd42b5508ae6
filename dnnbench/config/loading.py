"""Load a config: file (YAML or JSON) -> legacy adapter -> --set overrides ->
${VAR} / ${VAR:-default} references -> validated :class:`BenchConfig`.

Every failure is a :class:`ConfigError` naming the field path, raised before
anything runs.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dnnbench.config.legacy import is_legacy, translate_legacy
from dnnbench.config.schema import BenchConfig
from dnnbench.errors import ConfigError

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


class LoadedConfig:
    """A validated config plus where it came from and what the loader noticed."""

    def __init__(self, config: BenchConfig, path: Path | None, notices: list[str]):
        self.config = config
        self.path = path
        self.notices = notices

    @property
    def stem(self) -> str:
        return self.config.name or (self.path.stem if self.path else "config")


def read_file(path: Path) -> dict[str, Any]:
    """Parse a YAML or JSON file into a mapping.

    Raises:
        ConfigError: missing, unreadable, syntax error, or not a mapping.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", reference=str(path),
                          hint="check the --config path; shipped configs live in config/") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file: {e}", reference=str(path)) from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"JSON syntax error at line {e.lineno} column {e.colno}: {e.msg}",
                          reference=str(path)) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ConfigError(f"YAML syntax error{where}: {getattr(e, 'problem', e)}",
                          reference=str(path)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"the top level must be a mapping, not {type(data).__name__}",
                          reference=str(path))
    return data


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one ``dotted.key=value`` override; the value is parsed as YAML.

    Raises:
        ConfigError: no ``=`` or a path through a non-mapping.
    """
    key, sep, raw = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set expects dotted.key=value, got {assignment!r}", reference="--set")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    node = data
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"cannot set {key}: {'.'.join(parts[:i + 1])} is not a section",
                              reference="--set")
        node = nxt
    node[parts[-1]] = value


def interpolate(value: Any, path: str = "", environ: dict[str, str] | None = None) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string, recursively.

    Raises:
        ConfigError: a referenced variable is unset and has no default.
    """
    env = os.environ if environ is None else environ
    if isinstance(value, dict):
        return {k: interpolate(v, f"{path}.{k}" if path else str(k), env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, f"{path}[{i}]", env) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is not set", reference=path or "config",
                          hint=f"export {name}=... or write ${{{name}:-default}}")

    whole = _REF.fullmatch(value)
    result = _REF.sub(sub, value)
    # a whole-value reference may carry a number or boolean: parse it like YAML would
    if whole is not None:
        try:
            parsed = yaml.safe_load(result)
            if isinstance(parsed, (int, float, bool)):
                return parsed
        except yaml.YAMLError:
            pass
    return result


def format_validation_error(err: ValidationError) -> list[str]:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "extra inputs are not permitted (unknown key)"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        given = e.get("input")
        if e["type"] not in ("extra_forbidden", "missing") and not isinstance(given, (dict, list)):
            msg += f" (got {given!r})"
        lines.append(f"{loc}: {msg}" if loc else msg)
    return lines


def validate(data: dict[str, Any], source: str = "config") -> BenchConfig:
    try:
        return BenchConfig.model_validate(data)
    except ValidationError as err:
        lines = format_validation_error(err)
        raise ConfigError(lines[0] if len(lines) == 1 else f"{len(lines)} problems in the config",
                          reference=source, details=lines if len(lines) > 1 else [],
                          hint="`python3 benchmark.py validate --config FILE` checks a config; "
                               "README lists every key") from None


def load_config(path: str | Path | None, overrides: list[str] | None = None,
                environ: dict[str, str] | None = None) -> LoadedConfig:
    """Load, translate, override, interpolate and validate a config file.

    Args:
        path: YAML/JSON file; None gives the defaults.
        overrides: ``dotted.key=value`` strings from ``--set``.
        environ: environment for ``${VAR}`` references (default ``os.environ``).

    Raises:
        ConfigError: anything wrong with the file or its content.
    """
    notices: list[str] = []
    p = Path(path) if path is not None else None
    data = read_file(p) if p is not None else {}
    if is_legacy(data):
        data, dropped = translate_legacy(data, source=str(p))
        notice = f"{p}: dss-style layout recognised and translated to the dnnbench schema"
        if dropped:
            notice += f" (not used: {', '.join(dropped)})"
        notices.append(notice)
    for assignment in overrides or []:
        apply_override(data, assignment)
    data = interpolate(data, environ=environ)
    config = validate(data, source=str(p) if p else "config")
    return LoadedConfig(config, p, notices)
