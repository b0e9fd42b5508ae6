"""Run directories that are never reused, and atomic appends to results/summary.csv."""

from __future__ import annotations

import csv
import io
import os
import re
import time
from pathlib import Path
from typing import Any

from filelock import FileLock

from dnnbench.errors import ConfigError

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def create_run_dir(output_dir: str | Path, run_id: str | None, stem: str) -> Path:
    """Create ``output_dir/<run-id>`` exclusively.

    The default id is ``YYYYmmdd-HHMMSS-<stem>`` with ``-2``, ``-3``... appended
    when taken (mkdir is atomic, so two runs starting together get two dirs).

    Raises:
        ConfigError: ``output_dir`` is (or lies under) a file or cannot be created, or an
            explicit ``--run-id`` exists already or is not a plain name.
    """
    out = Path(output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"{output_dir} is a file, or lies under one: results go in a folder",
                          reference="metrics.output_dir",
                          hint="point metrics.output_dir at a folder (it is created when missing)") from None
    except OSError as e:
        raise ConfigError(f"cannot create the results folder {output_dir}: {e.strerror or e}",
                          reference="metrics.output_dir",
                          hint="choose a writable folder, e.g. --set metrics.output_dir=results") from None
    if run_id is not None:
        if not run_id or _SAFE.sub("", run_id) != run_id or run_id in (".", ".."):
            raise ConfigError(f"run id {run_id!r} must be a plain name (letters, digits, . _ -)",
                              reference="--run-id")
        path = out / run_id
        try:
            path.mkdir()
        except FileExistsError:
            raise ConfigError(f"{path} exists already; results are never overwritten",
                              reference="--run-id", hint="choose another --run-id or leave it out") from None
        return path
    base = f"{time.strftime('%Y%m%d-%H%M%S')}-{_SAFE.sub('_', stem)[:60]}"
    for n in range(1, 10_000):
        path = out / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError("could not find a free run directory name")


def write_row_csv(path: Path, row: dict[str, Any]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        w.writeheader()
        w.writerow({k: _cell(v) for k, v in row.items()})


def append_summary(output_dir: str | Path, row: dict[str, Any]) -> Path:
    """Append one run's row to ``output_dir/summary.csv`` under a file lock.

    When the row has columns the file lacks (a newer dnnbench), the file is
    rewritten with the union of columns, atomically.
    """
    path = Path(output_dir) / "summary.csv"
    with FileLock(str(path) + ".lock", timeout=60):
        if not path.exists() or path.stat().st_size == 0:
            _atomic_write(path, [list(row)], [row])
            return path
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, [])
        missing = [k for k in row if k not in header]
        if not missing:
            with open(path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=header).writerow({k: _cell(row.get(k)) for k in header})
                f.flush()
                os.fsync(f.fileno())
            return path
        with open(path, newline="") as f:
            old_rows = list(csv.DictReader(f))
        _atomic_write(path, [header + missing], old_rows + [row])
    return path


def _atomic_write(path: Path, header: list[list[str]], rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header[0], extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: _cell(r.get(k)) for k in header[0]})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(buf.getvalue())
    os.replace(tmp, path)


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}" if abs(v) < 1e15 else f"{v:.0f}"
    return v
