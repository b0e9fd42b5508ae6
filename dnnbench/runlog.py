"""The run log of the config's ``logging:`` section (the dss-style ``logging: {path, level}``).

With ``logging.path`` set, each command that runs something (run, prepare, au-search)
also writes its notices, warnings, phases, outcome and any error, one timestamped line
each, to ``<path>/dnnbench-<time>-<name>.log`` through the standard ``logging`` module,
at ``logging.level``. The file is new (never an existing one); every known secret is
masked in it as on the console.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any, Iterator

from dnnbench.config.redact import REDACTED
from dnnbench.errors import BenchError, ConfigError


class RunLog:
    """Events that go to the wrapped events (the console) and to a logger."""

    def __init__(self, inner: Any, logger: logging.Logger):
        self.inner = inner
        self.log = logger

    def __getattr__(self, name: str) -> Any:  # console, quiet, sweep_start...: the wrapped events'
        return getattr(self.inner, name)

    def notice(self, message: str) -> None:
        self.log.info("note: %s", message)
        self.inner.notice(message)

    def warning(self, message: str) -> None:
        self.log.warning("warning: %s", message)
        self.inner.warning(message)

    def phase_start(self, name: str) -> None:
        self.log.info("%s ...", name)
        self.inner.phase_start(name)

    def phase_end(self, name: str, seconds: float, detail: str = "") -> None:
        self.log.info("%s done in %.2f s %s", name, seconds, detail)
        self.inner.phase_end(name, seconds, detail)

    def task_start(self, description: str, total: int | None, unit: str = "items") -> None:
        self.log.debug("%s (%s %s)", description, "?" if total is None else f"{total:,}", unit)
        self.inner.task_start(description, total, unit)

    def task_advance(self, items: int, nbytes: int) -> None:
        self.inner.task_advance(items, nbytes)

    def task_end(self) -> None:
        self.inner.task_end()

    def summary(self, row: dict[str, Any], run_dir: str, unmeasured: dict[str, str]) -> None:
        status = row.get("status")
        level = logging.INFO if status == "ok" else logging.ERROR
        reason = f" ({row.get('reason')})" if row.get("reason") else ""
        self.log.log(level, "run %s: %s%s, %s MiB/s, %s samples/s; results in %s", row.get("run_id"), status,
                     reason, _num(row.get("MiB_per_s")), _num(row.get("samples_per_s")), run_dir)
        for col, why in sorted(unmeasured.items()):
            self.log.debug("%s not measured: %s", col, why)
        self.inner.summary(row, run_dir, unmeasured)


def _num(value: Any) -> str:
    return f"{value:,.2f}" if isinstance(value, (int, float)) else "-"


class _Mask(logging.Filter):
    def __init__(self, secrets: set[str]):
        super().__init__()
        self.secrets = sorted(secrets, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        for s in self.secrets:
            text = text.replace(s, REDACTED)
        record.msg, record.args = text, None
        return True


@contextlib.contextmanager
def run_log(settings: Any, stem: str, events: Any, command: str, secrets: set[str]) -> Iterator[Any]:
    """``events``, also logged to a new file when ``settings.path`` is set; an error or
    interrupt leaving the block is logged too, then goes on.

    Raises:
        ConfigError: the log folder cannot be created or written.
    """
    if not settings.path:
        yield events
        return
    path, stream = _new_file(Path(os.path.expanduser(settings.path)), stem)
    logger = logging.getLogger(f"dnnbench.runlog.{id(stream)}")
    logger.propagate = False
    logger.setLevel(settings.level)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.addFilter(_Mask(secrets))
    logger.addHandler(handler)
    events.notice(f"run log: {path} (level {settings.level})")
    logger.info("dnnbench %s: %s", command, stem)
    try:
        yield RunLog(events, logger)
    except KeyboardInterrupt:
        logger.error("interrupted")
        raise
    except Exception as e:
        text = f"{e.reference}: {e.message}" if isinstance(e, BenchError) and e.reference else \
            (e.message if isinstance(e, BenchError) else f"{type(e).__name__}: {e}")
        logger.error("error: %s", text)
        raise
    finally:
        logger.removeHandler(handler)
        handler.close()
        stream.close()


def _new_file(folder: Path, stem: str) -> tuple[Path, Any]:
    """A log file that did not exist: ``dnnbench-<time>-<stem>[-N].log``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        base = f"dnnbench-{time.strftime('%Y%m%d-%H%M%S')}-{stem}"
        for n in range(1, 1000):
            path = folder / (f"{base}.log" if n == 1 else f"{base}-{n}.log")
            try:
                return path, open(path, "x", encoding="utf-8")
            except FileExistsError:
                continue
    except OSError as e:
        raise ConfigError(f"cannot write the run log in {folder}: {e.strerror or e}", reference="logging.path",
                          hint="name a folder you can write, or drop logging.path") from None
    raise ConfigError(f"cannot find a free log file name in {folder}", reference="logging.path")
