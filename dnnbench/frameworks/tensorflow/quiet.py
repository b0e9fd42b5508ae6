"""Keeping TensorFlow's start-up log noise off the user's terminal (pure Python, no
tensorflow import, so it is tested alone).

TensorFlow's start-up notices (oneDNN, CPU instruction sets, absl's "log messages
before absl::InitializeLog()" banner) are written by C++ straight to file
descriptor 2, and some of them ignore ``TF_CPP_MIN_LOG_LEVEL``. So, unless the
user asked for ``--debug`` (or ``DNNBENCH_DEBUG=1``), :mod:`._tf`

- sets ``TF_CPP_MIN_LOG_LEVEL=2`` (C++ INFO and WARNING off) before the import,
  unless the user set it (:func:`prepare_environment`);
- imports with fd 2 sent to a temporary file, then drops the lines that are
  TensorFlow's INFO/WARNING noise and writes anything else (errors, other
  threads' output) to the real stderr (:func:`quiet_fd2`);
- sets the Python loggers of tensorflow and absl to ERROR.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from typing import Iterator

#: lines TensorFlow writes to fd 2 while it loads: glog-style INFO/WARNING lines,
#: absl's pre-initialisation banner and the CPU-feature notice's second line
_NOISE = re.compile(r"^(?:[IW]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl::InitializeLog"
                    r"|To enable the following instructions:|\s*$)")


def prepare_environment(verbose: bool, environ: dict[str, str] | None = None) -> None:
    """Set the environment TensorFlow reads at import time (before ``import tensorflow``)."""
    env = os.environ if environ is None else environ
    if not verbose:
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("KERAS_BACKEND", "tensorflow")


def noise_filtered(text: str) -> str:
    """``text`` without TensorFlow's start-up INFO/WARNING lines (errors are kept)."""
    return "".join(line for line in text.splitlines(keepends=True) if not _NOISE.match(line))


@contextlib.contextmanager
def quiet_fd2(active: bool = True) -> Iterator[None]:
    """Send file descriptor 2 to a temporary file; afterwards write what is not noise to stderr."""
    try:
        saved = os.dup(2) if active else None
    except OSError:  # no usable fd 2
        saved = None
    if saved is None:
        yield
        return
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            rest = noise_filtered(tmp.read().decode("utf-8", "replace"))
            if rest:
                sys.stderr.write(rest)
                sys.stderr.flush()
