"""environment.json: what a run ran on (versions, host, CPU, memory, storage without
credentials, the framework's settings), its epochs' page-cache states, and what could not be
measured, and why."""

from __future__ import annotations

import os
import platform
import socket
import sys
from typing import Any

from dnnbench import __version__
from dnnbench.frameworks.protocols import Runner
from dnnbench.storage.base import Storage

#: modules whose versions are recorded when the run imported them
VERSIONED = ("numpy", "pandas", "pydantic", "cv2", "torch", "tensorflow", "boto3", "minio", "s3fs")


def environment(storage: Storage, runner: Runner | None, facts: Any, notices: list[str],
                argv: list[str]) -> dict[str, Any]:
    """Versions, host, CPU, storage (no credentials) and what could not be measured, and why."""
    import psutil

    versions = {"python": platform.python_version(), "dnnbench": __version__}
    for mod in VERSIONED:
        m = sys.modules.get(mod)
        if m is not None:
            versions[mod] = getattr(m, "__version__", "?")
    return {
        "run_id": facts.run_id, "started_at": facts.started_at, "status": facts.status,
        "command": " ".join(argv), "host": socket.gethostname(), "platform": platform.platform(),
        "cpu": {"model": _cpu_model(), "logical_cores": os.cpu_count(),
                "physical_cores": psutil.cpu_count(logical=False)},
        "memory_GiB": round(psutil.virtual_memory().total / 2**30, 1), "versions": versions,
        "storage": storage.describe(), "framework": runner.describe() if runner is not None else None,
        "cache": {"epochs": [e.cache for e in facts.epochs],
                  "root": os.geteuid() == 0 if hasattr(os, "geteuid") else None},
        "unmeasured": facts.unmeasured, "notices": notices,
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
