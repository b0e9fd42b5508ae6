"""The run log of ``logging: {path, level}``: a new file, the level honoured, secrets masked."""

from __future__ import annotations

import pytest

from dnnbench.config.schema import LoggingConfig
from dnnbench.errors import ConfigError, DataError
from dnnbench.events import NullEvents
from dnnbench.runlog import run_log


def _lines(folder) -> list[str]:
    (log,) = folder.iterdir()
    return log.read_text().splitlines()


def test_no_path_no_file(tmp_path):
    events = NullEvents()
    with run_log(LoggingConfig(), "x", events, "run", set()) as logged:
        assert logged is events
    assert list(tmp_path.iterdir()) == []


def test_info_logs_notices_phases_and_the_outcome_with_secrets_masked(tmp_path):
    settings = LoggingConfig(path=str(tmp_path / "logs"), level="info")
    with run_log(settings, "quick", NullEvents(), "run", {"hunter22"}) as events:
        events.notice("endpoint key hunter22 in use")
        events.phase_start("list")
        events.phase_end("list", 0.5, "(10 objects)")
        events.summary({"run_id": "r1", "status": "ok", "MiB_per_s": 5.0, "samples_per_s": 80.0}, "results/r1", {})
    lines = _lines(tmp_path / "logs")
    assert len(lines) == 5 and all(" INFO " in line for line in lines)
    assert "note: endpoint key ***redacted*** in use" in lines[1] and "hunter22" not in "".join(lines)
    assert "list done in 0.50 s (10 objects)" in lines[3]
    assert "run r1: ok, 5.00 MiB/s, 80.00 samples/s; results in results/r1" in lines[4]


def test_warning_level_keeps_warnings_and_errors_only(tmp_path):
    settings = LoggingConfig(path=str(tmp_path), level="WARNING")
    with pytest.raises(DataError):
        with run_log(settings, "quick", NullEvents(), "run", set()) as events:
            events.notice("not logged")
            events.warning("a warning")
            raise DataError("prefix 'train' does not exist", reference="storage.prefixes")
    lines = _lines(tmp_path)
    assert len(lines) == 2
    assert "WARNING warning: a warning" in lines[0]
    assert "ERROR error: storage.prefixes: prefix 'train' does not exist" in lines[1]


def test_an_existing_log_file_is_never_written_over(tmp_path, monkeypatch):
    import dnnbench.runlog as runlog

    monkeypatch.setattr(runlog.time, "strftime", lambda fmt: "20260101-000000")
    (tmp_path / "dnnbench-20260101-000000-quick.log").write_text("a user's file\n")
    with run_log(LoggingConfig(path=str(tmp_path)), "quick", NullEvents(), "run", set()):
        pass
    assert (tmp_path / "dnnbench-20260101-000000-quick.log").read_text() == "a user's file\n"
    assert (tmp_path / "dnnbench-20260101-000000-quick-2.log").exists()


def test_a_log_folder_that_cannot_be_made_names_logging_path(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError) as e:
        with run_log(LoggingConfig(path=str(tmp_path / "file" / "logs")), "q", NullEvents(), "run", set()):
            pass
    assert e.value.reference == "logging.path"
