"""Load a config: file (YAML or JSON) -> legacy adapter -> --set overrides ->
${VAR} / ${VAR:-default} references -> validated :class:`BenchConfig`.

Every failure is a :class:`ConfigError` naming the field path, raised before
anything runs.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from dnnbench.config.dlio import apply_hydra_override, is_dlio, is_hydra_override, translate_dlio, unwrap
from dnnbench.config.legacy import is_legacy, translate_legacy
from dnnbench.config.options import option_problems
from dnnbench.config.parse import parse, read_text
from dnnbench.config.redact import REDACTED, is_secret_key
from dnnbench.config.schema import BenchConfig, union_members
from dnnbench.errors import ConfigError

_USERINFO = re.compile(r"//[^/@\s]*@")
_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


class LoadedConfig:
    """A validated config plus where it came from and what the loader noticed."""

    def __init__(self, config: BenchConfig, path: Path | None, notices: list[str],
                 translation: list[str] | None = None):
        self.config = config
        self.path = path
        self.notices = notices
        #: a DLIO workload's translation, one ``dlio.key=value -> dnnbench.key=value`` line each
        self.translation = translation or []

    @property
    def stem(self) -> str:
        return self.config.name or (self.path.stem if self.path else "config")


def read_file(path: Path) -> dict[str, Any]:
    """Parse a YAML or JSON file into a mapping (within the bounds of :mod:`.parse`).

    Raises:
        ConfigError: missing, not a regular file, too large, unreadable, syntax error,
            a duplicate key, an alias bomb, empty, or not a mapping.
    """
    data = parse(read_text(path), path)
    if data is None or data == {}:
        raise ConfigError("the config is empty: nothing says what to benchmark", reference=str(path),
                          hint="start from a shipped config, e.g. `cp config/quickstart.yaml my.yaml`; "
                               "storage.root (fs) or storage.s3.bucket names the dataset")
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
        shown = "a secret-looking value" if is_secret_key(assignment) or not key else repr(assignment)
        raise ConfigError(f"--set expects dotted.key=value, got {shown}", reference="--set")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    node = data
    parts = key.split(".")
    if isinstance(value, (int, float, bool)) and _keeps_string(tuple(parts)):
        value = raw.strip()  # --set storage.s3.secret_key=0123 or name=2024 stays a string
    for i, part in enumerate(parts[:-1]):
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"cannot set {key}: {'.'.join(parts[:i + 1])} is not a section",
                              reference="--set")
        node = nxt
    node[parts[-1]] = value


def interpolate(value: Any, path: str = "", environ: dict[str, str] | None = None,
                _at: tuple[str | int, ...] = ()) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string, recursively.

    A reference that is the whole value stays a string where the schema's field takes a
    string (a bucket, a key, a name: ``${SECRET}`` may be all digits) or the key looks
    like a secret; elsewhere (numbers, booleans, plugin ``options``) it is parsed like YAML.

    Raises:
        ConfigError: a referenced variable is unset and has no default.
    """
    env = os.environ if environ is None else environ
    if isinstance(value, dict):
        return {k: interpolate(v, f"{path}.{k}" if path else str(k), env, (*_at, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, f"{path}[{i}]", env, (*_at, i)) for i, v in enumerate(value)]
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
    if whole is None or _keeps_string(_at):
        return result
    # a whole-value reference may carry a number or boolean: parse it like YAML would
    try:
        parsed = yaml.safe_load(result)
        if isinstance(parsed, (int, float, bool)):
            return parsed
    except yaml.YAMLError:
        pass
    return result


def _keeps_string(at: tuple[str | int, ...]) -> bool:
    """True when the value at this config path is a string: a secret-looking key, or a
    schema field that accepts ``str``. Unknown and free-form paths (``options``) are not."""
    if any(isinstance(p, str) and is_secret_key(p) for p in at):
        return True
    node: Any = BenchConfig
    for part in at:
        node = _child_type(node, part)
        if node is None:
            return False
    return _takes_str(node)


def _child_type(tp: Any, part: str | int) -> Any:
    for member in union_members(tp):
        if isinstance(member, type) and issubclass(member, BaseModel) and isinstance(part, str):
            field = member.model_fields.get(part)
            if field is not None:
                return field.annotation
        origin = typing.get_origin(member)
        if isinstance(part, int) and origin in (list, tuple):
            args = [a for a in typing.get_args(member) if a is not Ellipsis]
            if origin is tuple and len(args) > 1 and len(set(args)) > 1:
                return args[part] if part < len(args) else None
            return args[0] if args else None
    return None


def _takes_str(tp: Any) -> bool:
    return any(m is str for m in union_members(tp))


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    """``; did you mean framework.num_workers?`` for a misspelt key (difflib over its section's keys)."""
    node: Any = BenchConfig
    for part in loc[:-1]:
        node = _child_type(node, part)
        if node is None:
            return ""
    keys = [k for m in union_members(node) if isinstance(m, type) and issubclass(m, BaseModel)
            for k in m.model_fields]
    close = difflib.get_close_matches(str(loc[-1]), keys, n=1, cutoff=0.6)
    if not close:
        return ""
    return f"; did you mean {'.'.join([*(str(p) for p in loc[:-1]), close[0]])}?"


def _is_secret_path(loc: tuple[Any, ...]) -> bool:
    return any(isinstance(p, str) and is_secret_key(p) for p in loc)


def format_validation_error(err: ValidationError, secrets: set[str] | None = None) -> list[str]:
    """One line per problem: ``field.path: what is wrong (got VALUE)``.

    The value is never shown for a secret-looking field (``secret_key``, ``password``,
    ``token``...), and every string in ``secrets`` is masked wherever it appears."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "extra inputs are not permitted (unknown key)" + _did_you_mean(tuple(e["loc"]))
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        given = e.get("input")
        if _is_secret_path(tuple(e["loc"])):
            if e["type"] == "string_type":
                msg += " (value not shown: it is a secret; quote it or give it as ${ENV})"
        elif e["type"] not in ("extra_forbidden", "missing") and not isinstance(given, (dict, list)):
            msg += f" (got {_USERINFO.sub(r'//***@', repr(given))})"  # http://user:pass@host: masked
        line = f"{loc}: {msg}" if loc else msg
        for s in sorted(secrets or (), key=len, reverse=True):
            line = line.replace(s, REDACTED)
        lines.append(line)
    return lines


def validate(data: dict[str, Any], source: str = "config") -> BenchConfig:
    """The validated config, the options of its built-in plugins included.

    Raises:
        ConfigError: every problem, one line each naming the field.
    """
    try:
        config = BenchConfig.model_validate(data)
    except ValidationError as err:
        _problems(format_validation_error(err, _raw_secrets(data)), source)
    lines = option_problems(config)
    if lines:
        _problems(lines, source)
    return config


def _problems(lines: list[str], source: str) -> typing.NoReturn:
    raise ConfigError(lines[0] if len(lines) == 1 else f"{len(lines)} problems in the config",
                      reference=source, details=lines if len(lines) > 1 else [],
                      hint="`python3 benchmark.py validate --config FILE` checks a config; "
                           "README lists every key") from None


def _raw_secrets(data: Any) -> set[str]:
    """Secret values of a not-yet-validated mapping, numbers included (``secret_key: 1234``)."""
    found: set[str] = set()
    if isinstance(data, dict):
        for k, v in data.items():
            if is_secret_key(k) and isinstance(v, (str, int, float)) and not isinstance(v, bool) \
                    and len(str(v)) >= 3:
                found.add(str(v))
            else:
                found |= _raw_secrets(v)
    elif isinstance(data, list):
        for v in data:
            found |= _raw_secrets(v)
    return found


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
    translation: list[str] = []
    p = Path(path) if path is not None else None
    data = read_file(p) if p is not None else {}
    overrides = list(overrides or [])
    if is_dlio(data):
        data, overrides, translation = _translate_dlio(data, overrides, str(p), notices)
    elif is_legacy(data):
        data, dropped = translate_legacy(data, source=str(p))
        notice = f"{p}: dss-style layout recognised and translated to the dnnbench schema"
        if dropped:
            notice += f" (not used: {', '.join(dropped)})"
        notices.append(notice)
    for assignment in overrides:
        apply_override(data, assignment)
    data = interpolate(data, environ=environ)
    config = validate(data, source=str(p) if p else "config")
    return LoadedConfig(config, p, notices, translation)


def _translate_dlio(data: dict[str, Any], overrides: list[str], source: str,
                    notices: list[str]) -> tuple[dict[str, Any], list[str], list[str]]:
    """A DLIO workload: its Hydra-style overrides (``++workload.a=v``) first, then the
    translation; returns the translated mapping, the dnnbench overrides left and the
    translation's lines. The one notice names every key not used."""
    hydra_unused = []
    data = copy.deepcopy(unwrap(data))
    for assignment in [o for o in overrides if is_hydra_override(o)]:
        unused = apply_hydra_override(data, assignment)
        if unused:
            hydra_unused.append(unused)
    t = translate_dlio(data, source=source)
    t.unused.extend(hydra_unused)
    notices.append(t.notice(source))
    return t.config, [o for o in overrides if not is_hydra_override(o)], t.mapped
