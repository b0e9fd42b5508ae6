"""Secret redaction for every place a config or environment is written."""

from __future__ import annotations

import re
from typing import Any

REDACTED = "***redacted***"
SECRET_KEYS = re.compile(r"(secret|password|passwd|token|access_key|credential|api_key|private)", re.I)


def redact(value: Any, secrets: set[str] | None = None) -> Any:
    """Copy of ``value`` with secret-named fields and known secret strings masked."""
    secrets = {s for s in (secrets or set()) if s}
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if SECRET_KEYS.search(str(k)) and v not in (None, "", {}, []) and not isinstance(v, (dict, bool)):
                out[k] = REDACTED
            else:
                out[k] = redact(v, secrets)
        return out
    if isinstance(value, (list, tuple)):
        return [redact(v, secrets) for v in value]
    if isinstance(value, str):
        for s in secrets:
            value = value.replace(s, REDACTED)
    return value


def secret_values(value: Any) -> set[str]:
    """Every string stored under a secret-named key, to scrub free text with."""
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if SECRET_KEYS.search(str(k)) and isinstance(v, str) and len(v) >= 3:
                found.add(v)
            else:
                found |= secret_values(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            found |= secret_values(v)
    return found
