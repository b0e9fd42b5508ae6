"""The checkpoint workload's pieces: MLPerf presets and scaling, shards, the refusals (memory,
disk, framework x client), the per-rank columns and their rank aggregate, checkpoints.csv's
rows, the read-cache label, and the timed loop with a fake engine."""

from __future__ import annotations

import csv

import pytest

from dnnbench.checkpoint import sizes
from dnnbench.checkpoint.records import LOAD, SAVE, OpRecord, csv_rows, rank_columns, write_csv
from dnnbench.checkpoint.workload import Workload, read_cache
from dnnbench.config.loading import validate
from dnnbench.errors import ConfigError
from dnnbench.events import NullEvents
from dnnbench.reporting.aggregate import aggregate
from dnnbench.run.coordinator import SingleProcess


def workload_config(tmp_path, **checkpoint) -> dict:
    return {"storage": {"client": "fs", "root": str(tmp_path)}, "training": {"trainer": "checkpoint"},
            "checkpoint": checkpoint}


# -- sizes ------------------------------------------------------------------------------
@pytest.mark.parametrize("preset,total,ranks", [("llama3-8b", 105 * 10**9, 8), ("llama3-70b", 912 * 10**9, 64),
                                                ("llama3-405b", 5290 * 10**9, 512),
                                                ("llama3-1t", 18000 * 10**9, 1024)])
def test_presets_are_mlperf_storage_sizes(preset, total, ranks):
    assert sizes.PRESETS[preset].total_bytes == total and sizes.PRESETS[preset].ranks == ranks
    assert sizes.total_bytes(preset, 1.0, None) == total
    assert sizes.total_bytes(preset, 0.01, None) == total // 100


def test_size_bytes_or_preset_exactly_one():
    assert sizes.total_bytes(None, 1.0, 12345) == 12345
    with pytest.raises(ValueError, match="one of them"):
        sizes.total_bytes(None, 1.0, None)
    with pytest.raises(ValueError, match="one of them"):
        sizes.total_bytes("llama3-8b", 1.0, 10)
    with pytest.raises(ValueError, match="unknown checkpoint.preset 'gpt2'"):
        sizes.total_bytes("gpt2", 1.0, None)


def test_shards_and_tensors_add_up():
    shards = [sizes.shard_bytes(1003, 4, r) for r in range(4)]
    assert shards == [251, 251, 251, 250] and sum(shards) == 1003
    assert sizes.tensor_sizes(250, 8) == [32, 32, 31, 31, 31, 31, 31, 31]
    assert sizes.tensor_sizes(3, 8) == [1, 1, 1]


def test_memory_and_disk_refusals(tmp_path):
    assert sizes.memory_problem(10, 20, "x") is None
    assert "held twice in memory" in sizes.memory_problem(11, 20, "x")
    assert sizes.disk_problem(str(tmp_path / "not" / "yet"), 1) is None
    assert "GB free" in sizes.disk_problem(str(tmp_path), 10**18)


# -- validation -------------------------------------------------------------------------
def test_valid_workload_config(tmp_path):
    cfg = validate(workload_config(tmp_path, preset="llama3-8b", scale=0.0001, saves=3, loads=2))
    assert cfg.checkpoint.saves == 3 and cfg.training.trainer == "checkpoint"


@pytest.mark.parametrize("checkpoint,extra,message", [
    ({"preset": "llama3-8b"}, {"limits": {"memory_MiB": 1024}}, "held twice in memory"),
    ({}, {}, "give checkpoint.preset"),
    ({"size_bytes": 1000, "saves": 2, "loads": 3}, {}, "loads (3) is more than saves (2)"),
    ({"size_bytes": 1000}, {"framework": {"name": "tensorflow"}, "storage": "s3"},
     "framework tensorflow and storage.client boto3 is not supported"),
    ({"size_bytes": 1000}, {"storage": "s3"}, "framework pytorch and storage.client boto3 is not supported"),
    ({"size_bytes": 1000}, {"execution": {"phases": {"inference": True}}}, "runs the checkpoint workload alone"),
])
def test_refused_workload_configs(tmp_path, checkpoint, extra, message):
    data = {**workload_config(tmp_path, **checkpoint), **extra}
    if extra.get("storage") == "s3":
        data["storage"] = {"client": "boto3", "s3": {"bucket": "b", "endpoint_url": "http://127.0.0.1:1"}}
    with pytest.raises(ConfigError) as err:
        validate(data)
    assert message in str(err.value)


def test_preset_without_the_workload_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="set training.trainer: checkpoint"):
        validate({"storage": {"root": str(tmp_path)}, "checkpoint": {"preset": "llama3-8b", "scale": 0.001}})


# -- records ----------------------------------------------------------------------------
def two_ranks() -> list[OpRecord]:
    """Rank 0 saves 100 B in 1 s and 2 s, rank 1 in 4 s and 1 s; loads 1 s each."""
    return [OpRecord(SAVE, 0, 0, 90, 100, 1.0), OpRecord(SAVE, 1, 0, 90, 100, 2.0),
            OpRecord(SAVE, 0, 1, 90, 100, 4.0), OpRecord(SAVE, 1, 1, 90, 100, 1.0),
            OpRecord(LOAD, 0, 0, 90, 100, 1.0, "warm", "ok"), OpRecord(LOAD, 0, 1, 90, 100, 1.0, "warm", "ok")]


def test_rank_columns_and_their_aggregate():
    recs = two_ranks()
    rows = [rank_columns([r for r in recs if r.rank == k], 180, 2) for k in (0, 1)]
    assert rows[0]["ckpt_save_bytes"] == 200 and rows[0]["ckpt_save_total_s"] == 3.0
    assert rows[0]["ckpt_save_GB_per_s"] == pytest.approx(200 / 1e9 / 3)
    assert rows[1]["ckpt_save_longest_s"] == 4.0 and rows[1]["ckpt_loads"] == 1
    row = aggregate([{**r, "rank": k, "status": "ok"} for k, r in enumerate(rows)])
    assert row["ckpt_save_bytes"] == 400 and row["ckpt_load_bytes"] == 200
    assert row["ckpt_save_longest_s"] == 4.0 and row["ckpt_save_total_s"] == 5.0
    assert row["ckpt_save_GB_per_s"] == pytest.approx(400 / 1e9 / 5.0)  # every byte over the slowest rank's time
    assert row["ckpt_save_slowest_rank_GB_per_s"] == pytest.approx(200 / 1e9 / 5.0)  # rank 1's
    assert row["ckpt_ranks"] == 2 and row["ckpt_verified"] == "ok" and row["ckpt_read_cache"] == "warm"


def test_csv_rows_per_rank_then_all_ranks(tmp_path):
    rows = csv_rows(two_ranks())
    assert [(r["op"], r["index"], r["rank"]) for r in rows] == [
        (SAVE, 0, 0), (SAVE, 0, 1), (SAVE, 1, 0), (SAVE, 1, 1), (LOAD, 0, 0), (LOAD, 0, 1),
        (SAVE, 0, "all"), (SAVE, 1, "all"), (LOAD, 0, "all")]
    save0 = rows[6]
    assert save0["bytes"] == 200 and save0["payload_bytes"] == 180 and save0["duration_s"] == 4.0
    assert save0["GB_per_s"] == pytest.approx(200 / 1e9 / 4.0)
    assert save0["slowest_rank_GB_per_s"] == pytest.approx(100 / 1e9 / 4.0)
    path = write_csv(tmp_path, two_ranks())
    assert len(list(csv.DictReader(path.open()))) == 9
    with pytest.raises(FileExistsError):  # never over a file
        write_csv(tmp_path, two_ranks())


def test_mismatch_is_reported():
    recs = two_ranks()[:4] + [OpRecord(LOAD, 0, 0, 90, 100, 1.0, "warm", "mismatch")]
    assert rank_columns(recs, 180, 1)["ckpt_verified"] == "mismatch"
    assert csv_rows(recs)[-1]["verified"] == "mismatch"


def test_read_cache_labels():
    assert read_cache(True, 10**12, 10) == "dropped"
    assert read_cache(False, 11, 10) == "exceeds_memory"
    assert read_cache(False, 10, 10) == "warm"
    assert read_cache(False, 10, None) == "warm"


# -- the timed loop -----------------------------------------------------------------------
class FakeEngine:
    payload_bytes = 64

    def __init__(self, corrupt: int | None = None):
        self.saved: list[int] = []
        self.loaded: int | None = None
        self.generated = 0
        self.corrupt = corrupt

    def generate(self):
        self.generated += 1

    def save(self, index):
        assert self.generated == 1  # generated once, before the first save
        self.saved.append(index)
        return 70

    def load(self, index):
        self.loaded = index
        return 70

    def verify(self, index):
        return self.loaded == index and index != self.corrupt

    def local_files(self):
        return []

    def remove(self):
        pass


def test_workload_saves_then_loads_in_order():
    engine = FakeEngine()
    records = Workload(engine, SingleProcess(), 3, 2, 64, False, NullEvents()).run()
    assert engine.saved == [0, 1, 2]
    assert [(r.op, r.index) for r in records] == [(SAVE, 0), (SAVE, 1), (SAVE, 2), (LOAD, 0), (LOAD, 1)]
    assert all(r.bytes == 70 and r.payload_bytes == 64 for r in records)
    assert [r.read_cache for r in records if r.op == LOAD] == ["warm", "warm"]
    assert {r.verified for r in records if r.op == LOAD} == {"ok"}


def test_workload_flags_a_corrupt_load():
    records = Workload(FakeEngine(corrupt=1), SingleProcess(), 2, 2, 64, False, NullEvents()).run()
    assert [r.verified for r in records if r.op == LOAD] == ["ok", "mismatch"]


class Events(NullEvents):
    def __init__(self):
        self.warnings: list[str] = []

    def warning(self, message):
        self.warnings.append(message)


def test_reads_after_a_drop_are_labelled_dropped(monkeypatch):
    from dnnbench.storage import pagecache

    monkeypatch.setattr(pagecache, "drop_caches", lambda: (True, ""))
    events = Events()
    records = Workload(FakeEngine(), SingleProcess(), 1, 1, 64, True, events).run()
    assert records[-1].read_cache == "dropped" and events.warnings == []


def test_a_drop_refused_is_said_and_the_reads_labelled_warm(monkeypatch):
    from dnnbench.storage import pagecache

    monkeypatch.setattr(pagecache, "drop_caches", lambda: (False, "not permitted (needs root)"))
    events = Events()
    records = Workload(FakeEngine(), SingleProcess(), 1, 1, 64, True, events).run()
    assert records[-1].read_cache == "warm"
    assert events.warnings == ["cannot drop the page cache before the reads: not permitted (needs root); reads are "
                               "labelled by what was measured"]


def test_a_drop_that_left_the_files_resident_is_not_dropped(monkeypatch, tmp_path):
    from dnnbench.storage import pagecache

    monkeypatch.setattr(pagecache, "drop_caches", lambda: (True, ""))
    monkeypatch.setattr(pagecache, "resident_fraction", lambda paths: 1.0)
    engine = FakeEngine()
    engine.local_files = lambda: [str(tmp_path / "f")]
    events = Events()
    records = Workload(engine, SingleProcess(), 1, 1, 64, True, events).run()
    assert records[-1].read_cache == "warm" and "did not take effect" in events.warnings[0]


# -- the phase: what a failed run still reports ------------------------------------------------
class FailingEngine(FakeEngine):
    def load(self, index):
        if index == 1:
            raise OSError("the disk went away")
        return super().load(index)


@pytest.mark.parametrize("engine,error", [(FailingEngine(), OSError), (FakeEngine(corrupt=1), "differs")])
def test_a_failed_workload_reports_what_it_measured(tmp_path, monkeypatch, engine, error):
    from dnnbench.errors import RunFailed
    from dnnbench.run import checkpoint as phase

    cfg = validate(workload_config(tmp_path, size_bytes=64, saves=2, loads=2, drop_caches=False))
    monkeypatch.setattr(phase, "_engine", lambda *args: engine)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    reported: list[dict] = []
    with pytest.raises(RunFailed if error == "differs" else error) as err:
        phase.run_workload(cfg, None, SingleProcess(), NullEvents(), run_dir, reported.append)
    assert error != "differs" or "checkpoint 1 read back by rank 0 differs" in str(err.value)
    (columns,) = reported
    loads = 1 if error is OSError else 2
    assert columns["ckpt_saves"] == 2 and columns["ckpt_loads"] == loads and columns["ckpt_save_bytes"] == 140
    assert columns["ckpt_verified"] == ("ok" if error is OSError else "mismatch")
    rows = list(csv.DictReader((run_dir / "checkpoints.csv").open()))
    assert len([r for r in rows if r["rank"] != "all"]) == 2 + loads
