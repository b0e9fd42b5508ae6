"""Secret redaction for every place a config or environment is written.

A key holds a secret when its name looks like one (``secret_key``, ``password``,
``token``...) or when a registered storage backend declares an option of that name
secret (:class:`~dnnbench.storage.backends.Backend` ``secrets``: an Azure-like
plugin's ``account_key`` or ``connection_string``), so redaction follows the backends.
"""

from __future__ import annotations

import re
from typing import Any

from dnnbench.registry import STORAGE

REDACTED = "***redacted***"
SECRET_KEYS = re.compile(r"(secret|password|passwd|token|access_key|credential|api_key|private)", re.I)


def declared_secrets() -> set[str]:
    """Option names the registered storage backends declare secret (plugins loaded so far included)."""
    return {name for entry in STORAGE.entries() if entry.spec is not None for name in entry.spec.secrets}


def is_secret_key(key: Any, declared: set[str] | None = None) -> bool:
    """Does the value under ``key`` (a name, or a dotted path such as ``storage.options.account_key``)
    hold a secret? ``declared``: :func:`declared_secrets`, when the caller has it at hand."""
    text = str(key)
    if SECRET_KEYS.search(text):
        return True
    return text.rsplit(".", 1)[-1] in (declared_secrets() if declared is None else declared)


def redact(value: Any, secrets: set[str] | None = None) -> Any:
    """Copy of ``value`` with secret-named fields and known secret strings masked."""
    return _redact(value, {s for s in (secrets or set()) if s}, declared_secrets())


def _redact(value: Any, secrets: set[str], declared: set[str]) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if is_secret_key(k, declared) and v not in (None, "", {}, []) and not isinstance(v, (dict, bool)):
                out[k] = REDACTED
            else:
                out[k] = _redact(v, secrets, declared)
        return out
    if isinstance(value, (list, tuple)):
        return [_redact(v, secrets, declared) for v in value]
    if isinstance(value, str):
        for s in secrets:
            value = value.replace(s, REDACTED)
    return value


def secret_values(value: Any, declared: set[str] | None = None) -> set[str]:
    """Every string stored under a secret key, to scrub free text with."""
    declared = declared_secrets() if declared is None else declared
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if is_secret_key(k, declared) and isinstance(v, str) and len(v) >= 3:
                found.add(v)
            else:
                found |= secret_values(v, declared)
    elif isinstance(value, (list, tuple)):
        for v in value:
            found |= secret_values(v, declared)
    return found
