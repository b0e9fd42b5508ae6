"""The results folder: run directories (and any other output folder) that are never reused,
runs' summary rows (``results/summary.csv`` appends under a lock, one run's row read back),
and files written whole or not at all."""

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


def timestamped(stem: str) -> str:
    """The default name of a new folder: ``YYYYmmdd-HHMMSS-<stem>`` (the stem made plain)."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{plain(stem)[:60]}"


def plain(text: str) -> str:
    """``text`` with every run of characters other than letters, digits, ``. _ -`` made one ``_``."""
    return _SAFE.sub("_", text)


def unique_dir(parent: str | Path, name: str, exact: bool = False, prefix: str = "") -> Path:
    """Create ``parent/<prefix><name>`` exclusively: results are never overwritten.

    mkdir is atomic, so two runs starting together get two folders. When the name is
    taken, ``-2``, ``-3``... is appended, unless ``exact`` (a name the user gave, such as
    ``--run-id``): then it must be a plain name and must be free.

    Raises:
        ConfigError: ``parent`` is (or lies under) a file or cannot be created; an exact name
            is taken or not a plain name; no free name is left.
    """
    out = _make_parent(parent)
    if exact:
        if not name or plain(name) != name or name in (".", ".."):
            raise ConfigError(f"run id {name!r} must be a plain name (letters, digits, . _ -)", reference="--run-id")
        path = out / f"{prefix}{name}"
        try:
            path.mkdir()
        except FileExistsError:
            raise ConfigError(f"{path} exists already; results are never overwritten",
                              reference="--run-id", hint="choose another --run-id or leave it out") from None
        except OSError as e:
            raise _unwritable(parent, e) from None
        return path
    for n in range(1, 10_000):
        path = out / f"{prefix}{name}{'' if n == 1 else f'-{n}'}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
        except OSError as e:
            raise _unwritable(parent, e) from None
    raise ConfigError(f"no free folder name {prefix}{name}[-N] left in {parent}", reference="metrics.output_dir",
                      hint="use another metrics.output_dir or --run-id")


def empty_dir(path: Path, reference: str) -> Path:
    """A folder the user named (``compare --out DIR``): new, or empty (results are never overwritten).

    Raises:
        ConfigError: DIR is a file, or a folder that holds something already, or cannot be made.
    """
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConfigError(f"{path} exists and is not an empty folder: the comparison would overwrite it",
                          reference=reference, hint="name a new folder, or leave --out out for a fresh one")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create {path}: {e.strerror or e}", reference=reference) from None
    return path


def create_run_dir(output_dir: str | Path, run_id: str | None, stem: str) -> Path:
    """Create a run's folder ``output_dir/<run-id>``: the given id, or ``timestamped(stem)``
    (``-2``, ``-3``... appended when taken).

    Raises:
        ConfigError: as :func:`unique_dir`.
    """
    return unique_dir(output_dir, run_id if run_id is not None else timestamped(stem), exact=run_id is not None)


def make_dir(path: Path, output_dir: str | Path) -> Path:
    """Create ``path`` and the folders above it inside ``output_dir`` (a rank's folder of a run
    whose directory another node created: this node's results folder may not have it).

    Raises:
        ConfigError: naming ``metrics.output_dir`` when it cannot be created or written.
    """
    _make_parent(output_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _unwritable(output_dir, e) from None
    return path


def _make_parent(parent: str | Path) -> Path:
    out = Path(parent)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"{parent} is a file, or lies under one: results go in a folder",
                          reference="metrics.output_dir",
                          hint="point metrics.output_dir at a folder (it is created when missing)") from None
    except OSError as e:
        raise ConfigError(f"cannot create the results folder {parent}: {e.strerror or e}",
                          reference="metrics.output_dir",
                          hint="choose a writable folder, e.g. --set metrics.output_dir=results") from None
    return out


def _unwritable(output_dir: str | Path, e: OSError) -> ConfigError:
    return ConfigError(f"cannot create a run folder in {output_dir}: {e.strerror or e}",
                       reference="metrics.output_dir",
                       hint="choose a writable folder (not on a read-only or full filesystem), "
                            "e.g. --set metrics.output_dir=results")


def read_row(run_dir: str | Path | None) -> dict[str, str] | None:
    """A run's own summary row, as text (None: no run folder or no ``summary.csv`` in it)."""
    if run_dir is None:
        return None
    path = Path(run_dir) / "summary.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        return next(csv.DictReader(f), None)


def replace_text(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all: a temporary file beside it, then an atomic rename
    (a reader never sees half a file; an interrupted write leaves the old one)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


#: the columns that make a CSV file a dnnbench summary (any version)
_SUMMARY_MARK = ("run_id", "status")
_CHECK_LIMIT = 8 * 2**20  # larger summaries are checked by their header only


def check_summary(output_dir: str | Path) -> None:
    """Before a run starts: ``output_dir/summary.csv`` and its lock file can take the run's row
    (so a broken one is bad input now, not a lost row after the run).

    Raises:
        ConfigError: either is not a regular file, summary.csv cannot be read or parsed as CSV,
            or it is not a dnnbench summary (dnnbench never writes into a file it did not write).
    """
    path = Path(output_dir) / "summary.csv"
    for p in (path, lock_path(path)):
        if (p.exists() or p.is_symlink()) and not p.is_file():
            raise ConfigError(f"{p} is not a regular file", reference=str(p),
                              hint="move it away, or choose another metrics.output_dir")
    if not path.exists() or path.stat().st_size == 0:
        return
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f, strict=True)
            header = next(reader, [])
            if path.stat().st_size <= _CHECK_LIMIT:
                for _ in reader:
                    pass
    except (OSError, csv.Error, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} cannot be read as CSV: {e}", reference=str(path),
                          hint="repair or move it away (each run's own summary.csv is in its run folder), "
                               "or choose another metrics.output_dir") from None
    if not all(c in header for c in _SUMMARY_MARK):
        raise ConfigError(f"{path} is not a dnnbench summary (no {' and '.join(_SUMMARY_MARK)} columns): "
                          "runs would append to it", reference=str(path),
                          hint="move it away, or choose another metrics.output_dir")


def lock_path(summary: Path) -> Path:
    return summary.with_name(summary.name + ".lock")


def write_row_csv(path: Path, row: dict[str, Any]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        w.writeheader()
        w.writerow({k: _cell(v) for k, v in row.items()})


def write_rows_csv(path: Path, rows: list[dict[str, Any]], first: list[str]) -> None:
    """Several rows in one CSV (ranks.csv, nodes.csv): the ``first`` columns, then every other
    column in the order the rows name them."""
    header = [c for c in first if any(c in r for r in rows)]
    for r in rows:
        header += [k for k in r if k not in header]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        for r in rows:
            w.writerow({k: _cell(r.get(k)) for k in header})


def append_summary(output_dir: str | Path, row: dict[str, Any]) -> Path:
    """Append one run's row to ``output_dir/summary.csv`` under a file lock.

    When the row has columns the file lacks (a newer dnnbench), the file is
    rewritten with the union of columns, atomically.
    """
    path = Path(output_dir) / "summary.csv"
    with FileLock(str(lock_path(path)), timeout=60):
        if not path.exists() or path.stat().st_size == 0:
            _atomic_write(path, [list(row)], [row])
            return path
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, [])
        missing = [k for k in row if k not in header]
        if not missing:
            with open(path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                cut = f.read(1) != b"\n"  # a last line cut short (a full disk, a kill): never glue onto it
            with open(path, "a", newline="") as f:
                if cut:
                    f.write("\n")
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
    replace_text(path, buf.getvalue())


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}" if abs(v) < 1e15 else f"{v:.0f}"
    return v
