"""Start/stop the local S3 endpoint (Swift + s3api) for integration tests.

Thin wrapper around ``scripts/s3-server.sh``; importable without pytest or boto3.

    info = ensure_server(project_root)   # {"endpoint_url", "access_key", "secret_key", "region"}
    ...
    stop_server(project_root)

The script honours ``DNNBENCH_S3_DIR``, ``DNNBENCH_S3_PORT`` and friends from the
environment (see the script's header).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import Dict, Union

__all__ = [
    "S3ServerUnavailable",
    "ensure_server",
    "stop_server",
    "server_running",
    "server_env",
    "make_s3_client",
    "OTHER_ACCOUNT",
]

PathLike = Union[str, "os.PathLike[str]"]

SCRIPT = Path("scripts") / "s3-server.sh"

# Exit code of the script when Swift is missing and cannot be installed
# (not root, or no apt-get).
EXIT_CANNOT_INSTALL = 3

# Start may include an apt-get install (~25-60 s) plus readiness (<60 s).
START_TIMEOUT_S = 600

_ENV_KEYS = {
    "DNNBENCH_S3_ENDPOINT": "endpoint_url",
    "DNNBENCH_S3_ACCESS_KEY": "access_key",
    "DNNBENCH_S3_SECRET_KEY": "secret_key",
    "DNNBENCH_S3_REGION": "region",
}

# A second tempauth account configured by the script. It has no rights on the
# buckets of test:tester (nor on its own account): every S3 call answers
# 403 AccessDenied. Useful to exercise permission errors.
OTHER_ACCOUNT = {"access_key": "other:reader", "secret_key": "reading"}


class S3ServerUnavailable(RuntimeError):
    """The local S3 server could not be started (or Swift cannot be installed)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _script(project_root: PathLike) -> Path:
    return Path(project_root).resolve() / SCRIPT


def _run(project_root: PathLike, command: str, timeout: float) -> subprocess.CompletedProcess:
    script = _script(project_root)
    if not script.is_file():
        raise S3ServerUnavailable(f"{script} not found")
    try:
        return subprocess.run(
            ["bash", str(script), command],
            cwd=str(Path(project_root).resolve()),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except FileNotFoundError as exc:  # no bash
        raise S3ServerUnavailable(f"cannot run {script}: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise S3ServerUnavailable(f"'{script.name} {command}' timed out after {timeout:.0f} s") from exc


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def server_running(project_root: PathLike) -> bool:
    """True if the server's processes are alive and /healthcheck answers 200."""
    try:
        return _run(project_root, "status", timeout=30).returncode == 0
    except S3ServerUnavailable:
        return False


def server_env(project_root: PathLike) -> Dict[str, str]:
    """Connection settings, parsed from ``s3-server.sh env`` (does not start anything)."""
    proc = _run(project_root, "env", timeout=30)
    if proc.returncode != 0:
        raise S3ServerUnavailable(f"'s3-server.sh env' failed: {_last_line(proc.stderr)}")
    info: Dict[str, str] = {}
    for line in proc.stdout.splitlines():
        words = shlex.split(line)
        if words[:1] == ["export"]:
            words = words[1:]
        for word in words:
            key, sep, value = word.partition("=")
            if sep and key in _ENV_KEYS:
                info[_ENV_KEYS[key]] = value
    missing = sorted(set(_ENV_KEYS.values()) - set(info))
    if missing:
        raise S3ServerUnavailable(f"'s3-server.sh env' output lacks {missing}: {proc.stdout!r}")
    return info


def ensure_server(project_root: PathLike, timeout: float = START_TIMEOUT_S) -> Dict[str, str]:
    """Start the server if needed (installing Swift when allowed) and return its settings.

    Returns ``{"endpoint_url", "access_key", "secret_key", "region"}``.
    Raises :class:`S3ServerUnavailable` when it cannot be installed (script exit 3)
    or fails to start.
    """
    proc = _run(project_root, "start", timeout=timeout)
    if proc.returncode == EXIT_CANNOT_INSTALL:
        reason = _last_line(proc.stderr) or "Swift is not installed and cannot be installed here"
        raise S3ServerUnavailable(reason.removeprefix("s3-server: "))
    if proc.returncode != 0:
        lines = (proc.stderr or "").strip().splitlines()
        reason = f"'s3-server.sh start' failed (exit {proc.returncode}): " + _last_line(
            proc.stderr
        ).removeprefix("s3-server: ")
        if len(lines) > 1:  # the script printed log tails before its final line
            reason += "\n" + "\n".join(lines[-31:-1])
        raise S3ServerUnavailable(reason)
    return server_env(project_root)


def stop_server(project_root: PathLike) -> None:
    """Stop the server's processes (no error if it is not running)."""
    proc = _run(project_root, "stop", timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"'s3-server.sh stop' failed (exit {proc.returncode}): {proc.stderr.strip()}")


def make_s3_client(info: Dict[str, str], **overrides):
    """A boto3 S3 client for ``info`` (path-style, SigV4); ``overrides`` replace
    ``access_key`` / ``secret_key`` / ``region`` / ``endpoint_url``. Imports boto3 lazily."""
    import boto3
    from botocore.config import Config

    settings = {**info, **overrides}
    return boto3.client(
        "s3",
        endpoint_url=settings["endpoint_url"],
        aws_access_key_id=settings["access_key"],
        aws_secret_access_key=settings["secret_key"],
        region_name=settings["region"],
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 2, "mode": "standard"},
            max_pool_connections=32,
            connect_timeout=10,
            read_timeout=60,
        ),
    )


def delete_bucket(client, bucket: str) -> None:
    """Abort its multipart uploads, delete every object (one DELETE each), then the bucket."""
    from concurrent.futures import ThreadPoolExecutor

    from botocore.exceptions import ClientError

    try:
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        for up in uploads:
            client.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
    except ClientError:
        pass
    # One DELETE per object: Swift's DeleteObjects (batch) wants a Content-MD5
    # header that current botocore no longer sends.
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    if keys:
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda key: client.delete_object(Bucket=bucket, Key=key), keys))
    client.delete_bucket(Bucket=bucket)


def storage_section(info: dict, bucket: str, client: str = "boto3") -> dict:
    """A config's ``storage`` section for ``bucket`` on the server ``info`` describes
    (train/ prefix, bucket created by prepare)."""
    return {"client": client, "preset": "minio", "prefixes": ["train"], "create_bucket": True,
            "s3": {"bucket": bucket, "endpoint_url": info["endpoint_url"], "region": info["region"],
                   "access_key": info["access_key"], "secret_key": info["secret_key"]}}
