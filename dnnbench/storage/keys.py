"""Object keys: relative, ``/``-separated paths inside a storage root or bucket."""

from __future__ import annotations


def unsafe_key(key: str) -> bool:
    """True for keys that would escape a local root: absolute, ``..`` components, NUL bytes."""
    return key.startswith(("/", "\\")) or "\x00" in key or (".." in key and ".." in key.split("/"))


def list_prefix(prefix: str) -> str:
    """The prefix a listing uses: ``ds/train/`` lists as ``ds/train`` on every backend (its keys
    ``ds/train/0/...``, never ``ds/train//0/...``)."""
    return prefix.rstrip("/")
