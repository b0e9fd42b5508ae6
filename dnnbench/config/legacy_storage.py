"""The ``storage`` section of the dss-style layout: ``format: fs`` with ``fs.data_dir``
(or the later ``fs.choice`` + ``fs.<choice>.data_dir``), ``format: s3`` with ``s3.bucket``,
``s3.prefix``, ``s3.client_lib`` and ``s3.aws|dss.credentials``."""

from __future__ import annotations

import os
from typing import Any

from dnnbench.config.legacy_sections import chosen, unused
from dnnbench.errors import ConfigError
from dnnbench.storage.backends import S3, builtin_names

_CREDENTIAL_KEYS = {"endpoint": "endpoint_url", "region_name": "region", "region": "region",
                    "access_key": "access_key", "secret_key": "secret_key"}
#: client libraries of the dss-style tool that dnnbench reads with (others are refused): its S3 clients
_CLIENT_LIBS = tuple(builtin_names(S3))


def translate_storage(storage: dict[str, Any], source: str, dropped: list[str]) -> dict[str, Any]:
    """``storage`` of the dss-style layout -> dnnbench's ``storage``.

    Raises:
        ConfigError: an unsupported format or client library, or a malformed block.
    """
    fmt = str(storage.get("format", "fs")).lower()
    out: dict[str, Any] = {}
    if storage.get("name"):
        out["name"] = storage["name"]
    if fmt in ("fs", "file", "filesystem"):
        _storage_fs(storage, source, dropped, out)
        if "s3" in storage:
            dropped.append("storage.s3 (format is fs)")
    elif fmt == "s3":
        _storage_s3(storage, source, dropped, out)
        if "fs" in storage:
            dropped.append("storage.fs (format is s3)")
    else:
        raise ConfigError(f"storage format {fmt!r} of the dss-style layout is not supported",
                          reference=f"{source}: storage.format", hint="use format fs or s3")
    unused(storage, ("format", "name", "fs", "s3"), "storage", dropped)
    return out


def _storage_fs(storage: dict[str, Any], source: str, dropped: list[str], out: dict[str, Any]) -> None:
    """``fs.data_dir`` (one directory or several) -> ``root`` + ``prefixes``."""
    fs = storage.get("fs", {}) or {}
    if not isinstance(fs, dict):
        raise ConfigError(f"must be a mapping with data_dir, not {type(fs).__name__}",
                          reference=f"{source}: storage.fs",
                          hint='e.g. "fs": {"data_dir": ["/data/flower_photos"]}')
    sec = chosen(fs, "storage.fs", source, dropped)
    out["client"] = "fs"
    key = sec.path("data_dir")
    dirs = sec.values.get("data_dir", [])
    if isinstance(dirs, str):
        dirs = [dirs]
    if not isinstance(dirs, list) or not dirs or not all(isinstance(d, str) and d for d in dirs):
        raise ConfigError("needs a directory or a list of directories", reference=f"{source}: {key}",
                          hint='e.g. "data_dir": ["/data/flower_photos"]')
    dirs = [os.path.normpath(d) for d in dirs]
    if len(dirs) == 1:
        out["root"], out["prefixes"] = dirs[0], [""]
    else:
        same_kind = all(os.path.isabs(d) for d in dirs) or not any(os.path.isabs(d) for d in dirs)
        out["root"] = (os.path.commonpath(dirs) if same_kind else "/") or "."
        out["prefixes"] = [os.path.relpath(d, out["root"]) for d in dirs]
    for name in ("base_output_dir", "saved_model_name", "predictions_path", "plots_path", "le_name", "test_paths"):
        if name in sec.values:
            dropped.append(f"{sec.path(name)} (dnnbench saves no model or predictions; its results go "
                           "to metrics.output_dir)")
    sec.unused(("data_dir", "base_output_dir", "saved_model_name", "predictions_path", "plots_path", "le_name",
                "test_paths"), dropped)


def _storage_s3(storage: dict[str, Any], source: str, dropped: list[str], out: dict[str, Any]) -> None:
    """``storage.format: s3``: ``storage.name`` aws picks ``s3.aws.credentials``, anything else
    (dss, minio) ``s3.dss.credentials`` with its endpoint."""
    s3 = storage.get("s3")
    if not isinstance(s3, dict) or not s3.get("bucket"):
        raise ConfigError("format s3 needs an s3 section with a bucket", reference=f"{source}: storage.s3",
                          hint='e.g. "s3": {"bucket": "dss0", "prefix": ["flower_photos/"], "client_lib": "boto3"}')
    out["client"] = _client_lib(s3.get("client_lib", "boto3"), source, dropped)
    prefixes = s3.get("prefix", [""])
    out["prefixes"] = [prefixes] if isinstance(prefixes, str) else prefixes
    name = str(storage.get("name") or "").lower()
    creds = {k: _credentials(s3, k, source) for k in ("aws", "dss")}
    kind = "aws" if name == "aws" or (name not in ("dss", "minio") and not creds["dss"].get("endpoint")) else "dss"
    chosen_creds = creds[kind]
    out["preset"] = "minio" if name == "minio" else kind
    new: dict[str, Any] = {"bucket": s3["bucket"]}
    for old_key, new_key in _CREDENTIAL_KEYS.items():
        if chosen_creds.get(old_key) not in (None, ""):
            new[new_key] = chosen_creds[old_key]
    unused(chosen_creds, tuple(_CREDENTIAL_KEYS), f"storage.s3.{kind}.credentials", dropped)
    unused(s3.get(kind) or {}, ("credentials",), f"storage.s3.{kind}", dropped)
    if kind == "aws" and "endpoint_url" in new:
        out["preset"] = "dss"
    out["s3"] = new
    other = "dss" if kind == "aws" else "aws"
    if s3.get(other):
        dropped.append(f"storage.s3.{other} (storage.name is {name or kind!r})")
    unused(s3, ("bucket", "prefix", "client_lib", "aws", "dss"), "storage.s3", dropped)


def _client_lib(lib: Any, source: str, dropped: list[str]) -> str:
    """``client_lib``: a name, or ``{"name": ..., "dss_client": {...}}`` (the DSS client's own
    settings, unused when another library reads).

    Raises:
        ConfigError: the DSS C++ client (not available here) or an unknown library; dnnbench
            never swaps in another client on its own.
    """
    if isinstance(lib, dict):
        for key in lib:
            if key == "dss_client":
                dropped.append("storage.s3.client_lib.dss_client (settings of the DSS C++ client, which "
                               "does not read here)")
            elif key != "name":
                dropped.append(f"storage.s3.client_lib.{key}")
        lib = lib.get("name", "boto3")
    name = str(lib).strip().lower()  # "Boto3", "MinIO": the registry's names are lower case
    if name in ("dss_client", "dss"):
        raise ConfigError("the DSS C++ client library is not supported by dnnbench",
                          reference=f"{source}: storage.s3.client_lib",
                          hint='read the same bucket with "client_lib": "boto3" (or minio, s3fs)')
    if name not in _CLIENT_LIBS:
        raise ConfigError(f"client library {lib!r} is not supported", reference=f"{source}: storage.s3.client_lib",
                          hint=f"use one of {', '.join(_CLIENT_LIBS)}")
    return name


def _credentials(s3: dict[str, Any], kind: str, source: str) -> dict[str, Any]:
    """``storage.s3.<kind>.credentials`` (``{}`` when absent).

    Raises:
        ConfigError: the block or its credentials are not mappings (the value is never shown).
    """
    hint = (f'e.g. "{kind}": {{"credentials": {{"endpoint": "http://host:9000", "access_key": "${{KEY}}", '
            '"secret_key": "${SECRET}"}}' if kind == "dss" else
            f'e.g. "{kind}": {{"credentials": {{"region_name": "us-east-1"}}}} (keys from the AWS chain)')
    block = s3.get(kind)
    if block in (None, ""):
        return {}
    if not isinstance(block, dict):
        raise ConfigError(f"must be a mapping with a credentials block, not {type(block).__name__}",
                          reference=f"{source}: storage.s3.{kind}", hint=hint)
    creds = block.get("credentials")
    if creds in (None, ""):
        return {}
    if not isinstance(creds, dict):
        raise ConfigError(f"must be a mapping, not {type(creds).__name__}",
                          reference=f"{source}: storage.s3.{kind}.credentials", hint=hint)
    return creds

