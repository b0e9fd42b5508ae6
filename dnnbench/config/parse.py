"""Read and parse a config file within fixed bounds.

Nothing a config file holds may hang the tool or take the machine's memory: the file
must be a regular file of at most :data:`MAX_CONFIG_BYTES` (a FIFO or ``/dev/zero`` is
refused without being read), and a YAML document is composed into its node graph and
measured *before* any Python object is built from it, so an alias bomb ("billion
laughs"), a recursive alias or a nesting deeper than :data:`MAX_DEPTH` is refused at
once. A key written twice in one mapping is an error in YAML and JSON alike (the later
one would silently win), except upstream's ``__comment__`` keys, which are comments.

These bounds are far above any real config (the biggest shipped one has ~100 values)
and are fixed: they guard the parser, not the benchmark (see ``limits:`` for those).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from dnnbench.errors import ConfigError

#: a config file larger than this is refused unread
MAX_CONFIG_BYTES = 1 << 20
#: values (scalars, lists, mappings) a document may hold once its aliases are expanded
MAX_VALUES = 100_000
#: nesting levels of lists and mappings
MAX_DEPTH = 64
#: keys that may repeat: upstream dss configs write several ``"__comment__"`` in one object
COMMENT_PREFIX = "__comment"

#: digits of an integer (Python itself refuses to read more than 4,300)
MAX_DIGITS = 100

_MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_TAG = "tag:yaml.org,2002:int"


def read_text(path: Path) -> str:
    """The text of a config file, refusing anything that is not a small regular file.

    Raises:
        ConfigError: missing, not a regular file, too large, unreadable or not UTF-8.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ConfigError("config file not found", reference=str(path),
                          hint="check the --config path; shipped configs live in config/") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file: {e.strerror or e}", reference=str(path)) from None
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError("cannot read config file: it is a directory", reference=str(path),
                          hint="give a YAML or JSON file, e.g. config/quickstart.yaml")
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError("cannot read config file: not a regular file (a device, FIFO or socket is not read)",
                          reference=str(path), hint="give a YAML or JSON file, e.g. config/quickstart.yaml")
    if st.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(_too_big(st.st_size), reference=str(path))
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)  # a file that grows while it is read stops here
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(_too_big(len(raw)), reference=str(path))
        return raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file: {e}", reference=str(path)) from None


def _too_big(size: int) -> str:
    return (f"the config file holds {size:,} bytes or more: over the limit of {MAX_CONFIG_BYTES:,} "
            "bytes (1 MiB) for a config file")


def parse(text: str, path: Path) -> Any:
    """Parse YAML (or JSON for a ``.json`` file) within the bounds of this module.

    Raises:
        ConfigError: a syntax error, a duplicate key, an alias bomb, a recursive alias,
            a nesting too deep or a number too long, each with its line where known.
    """
    if path.suffix.lower() == ".json":
        return _parse_json(text, path)
    return _parse_yaml(text, path)


# -- YAML -------------------------------------------------------------------

class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses a nesting deeper than :data:`MAX_DEPTH`."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels at line {mark.line + 1}: over the "
                               f"limit of {MAX_DEPTH} nesting levels for a config")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Refused(Exception):
    """A bound of this module was hit; the message says which."""


def _parse_yaml(text: str, path: Path) -> Any:
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _Measure().walk(node, (), 1)
        return loader.construct_document(node)
    except _Refused as e:
        raise ConfigError(str(e), reference=str(path)) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ConfigError(f"YAML syntax error{where}: {getattr(e, 'problem', None) or e}",
                          reference=str(path)) from None
    except (ValueError, RecursionError) as e:  # an integer of more than 4,300 digits
        raise ConfigError(f"a value cannot be read: {_short(e)}", reference=str(path)) from None
    finally:
        loader.dispose()


class _Measure:
    """One pass over the composed node graph: the expanded size of every node (shared
    nodes, i.e. aliases, measured once), recursive aliases, depth and duplicate keys."""

    def __init__(self) -> None:
        self.sizes: dict[int, int] = {}
        self.open: set[int] = set()

    def walk(self, node: yaml.Node, at: tuple[str, ...], depth: int) -> int:
        key = id(node)
        if key in self.open:
            raise _Refused(f"recursive alias at line {node.start_mark.line + 1} ({_dotted(at)}): "
                           "a value that contains itself")
        if depth > MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels at {_dotted(at)} once aliases are "
                           f"expanded: over the limit of {MAX_DEPTH} nesting levels for a config")
        if key in self.sizes:
            return self.sizes[key]
        self.open.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for i, child in enumerate(node.value):
                total += self.walk(child, (*at, f"[{i}]"), depth + 1)
                self._bound(total, at)
        elif isinstance(node, yaml.MappingNode):
            total += self._mapping(node, at, depth)
        elif node.tag == _INT_TAG and len(node.value) > MAX_DIGITS:
            raise _Refused(f"{_dotted(at)}: a number of {len(node.value):,} digits at line "
                           f"{node.start_mark.line + 1}: over the limit of {MAX_DIGITS} digits for a number")
        self.open.discard(key)
        self.sizes[key] = total
        return total

    def _mapping(self, node: yaml.MappingNode, at: tuple[str, ...], depth: int) -> int:
        seen: dict[tuple[str, str], int] = {}
        total = 0
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.tag != _MERGE_TAG:
                line = k.start_mark.line + 1
                if (k.tag, k.value) in seen and not str(k.value).startswith(COMMENT_PREFIX):
                    raise _Refused(_duplicate(_dotted((*at, str(k.value))), line, seen[(k.tag, k.value)]))
                seen[(k.tag, k.value)] = line
            name = str(k.value) if isinstance(k, yaml.ScalarNode) else "?"
            total += self.walk(k, at, depth + 1) + self.walk(v, (*at, name), depth + 1)
            self._bound(total, at)
        return total

    @staticmethod
    def _bound(total: int, at: tuple[str, ...]) -> None:
        if total > MAX_VALUES:
            raise _Refused(f"{_dotted(at)} expands to more than {MAX_VALUES:,} values (YAML aliases "
                           f"repeated inside each other?): over the limit of {MAX_VALUES:,} values for a config")


def _duplicate(dotted: str, line: int, first: int | None) -> str:
    where = f" at line {line}" if line else ""
    earlier = f" (first at line {first})" if first else ""
    return (f"duplicate key {dotted}{where}{earlier}: the later value would silently replace the "
            "earlier one; keep one")


def _dotted(at: tuple[str, ...]) -> str:
    out = ""
    for part in at:
        out += part if part.startswith("[") or not out else f".{part}"
    return out or "the document"


def _short(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text if len(text) < 160 else text[:157] + "..."


# -- JSON -------------------------------------------------------------------

class _DuplicateKey(Exception):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for k, _ in pairs:
        if k in seen and not k.startswith(COMMENT_PREFIX):
            raise _DuplicateKey(k)
        seen.add(k)
    return dict(pairs)


def _parse_json(text: str, path: Path) -> Any:
    try:
        data = json.loads(text, object_pairs_hook=_pairs)
    except json.JSONDecodeError as e:
        raise ConfigError(f"JSON syntax error at line {e.lineno} column {e.colno}: {e.msg}",
                          reference=str(path)) from None
    except _DuplicateKey as e:
        raise ConfigError(_located(text, _duplicate(repr(e.key), 0, None)), reference=str(path)) from None
    except RecursionError:
        raise ConfigError(f"nested too deep: over the limit of {MAX_DEPTH} nesting levels for a config",
                          reference=str(path)) from None
    except ValueError as e:  # an integer of more than 4,300 digits
        raise ConfigError(_located(text, f"a value cannot be read: {_short(e)}"), reference=str(path)) from None
    _check_depth(data, path)
    return data


def _located(text: str, fallback: str) -> str:
    """The message of the YAML composer for the same text (JSON is YAML's flow style), which
    knows the key path and the line, when it reads the file; else ``fallback``."""
    try:
        _parse_yaml(text, Path("x.yaml"))
    except ConfigError as e:
        if not e.message.startswith("YAML syntax error"):
            return e.message
    except Exception:  # noqa: BLE001 - the line is a courtesy; the fallback names the problem
        pass
    return fallback


def _check_depth(data: Any, path: Path) -> None:
    """Refuse a nesting deeper than :data:`MAX_DEPTH` (iterative: no recursion limit)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ConfigError(f"nested deeper than {MAX_DEPTH} levels: over the limit of {MAX_DEPTH} "
                              "nesting levels for a config", reference=str(path))
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((c, depth + 1) for c in children)
