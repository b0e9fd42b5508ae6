"""Faults that must end in one clear message and a record, never a traceback or a lost run
(issue 12): manifests that are not ours, bad samples vs outages, huge images, symlink loops,
pseudo-filesystems, broken results/summary.csv, full disks, torn request logs."""

from __future__ import annotations

import errno
import json
import marshal
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dnnbench.cli import main
from dnnbench.config.loading import load_config
from dnnbench.config.schema import StorageConfig
from dnnbench import failures
from dnnbench.data import decode, manifest, synthetic
from dnnbench.data.index import SampleIndex
from dnnbench.errors import ConfigError, DataError, RecordingError, StorageError
from dnnbench.executor import Executor
from dnnbench import results
from dnnbench.recording.requests import COLUMNS, RecorderSpec, RequestRecorder, read_parts
from dnnbench.storage.base import SizeMismatch
from dnnbench.storage.fs import FileSystemStorage, pseudo_filesystem
from dnnbench.data.listing import list_dataset
from dnnbench.storage.s3common import S3Unreachable


def fs(root: Path) -> FileSystemStorage:
    return FileSystemStorage(StorageConfig(root=str(root)))


# -- 12.1 a manifest path that is not ours ------------------------------------------------------
def test_manifest_never_overwrites_a_file_it_did_not_write(tiny_root, write_config, tmp_path, capsys):
    theirs = tmp_path / "summary.csv"
    theirs.write_text("run_id,status\nimportant,ok\n")
    cfg = write_config(tiny_root, dataset={"manifest": str(theirs)})
    assert main(["-q", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "dataset.manifest" in err and "not a dnnbench manifest" in err and "Traceback" not in err
    assert theirs.read_text() == "run_id,status\nimportant,ok\n"
    assert not (tmp_path / "results").exists() or not any(p.is_dir() for p in (tmp_path / "results").iterdir())


def test_manifest_path_that_is_a_folder_is_exit_2(tiny_root, write_config, tmp_path, capsys):
    folder = tmp_path / "manifests"
    folder.mkdir()
    cfg = write_config(tiny_root, dataset={"manifest": str(folder)})
    assert main(["-q", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "dataset.manifest" in err and "is a folder" in err and "IsADirectoryError" not in err


def test_manifest_save_refuses_foreign_files_and_rewrites_its_own(tmp_path):
    fp = manifest.fingerprint("fs:/x", ["train"], [".jpg"], None)
    index = SampleIndex(["train/a/1.jpg"], np.array([0]), np.array([3]), ["a"])
    for content in (b"", b"hello", b"\x00\x01binary", b'{"format": "something-else"}'):
        path = tmp_path / "other.json"
        path.write_bytes(content)
        with pytest.raises(ConfigError) as e:
            manifest.save(path, index, fp)
        assert e.value.reference == "dataset.manifest" and path.read_bytes() == content
    for name in ("m.json", "m.json.gz"):
        manifest.save(tmp_path / name, index, fp)
        manifest.save(tmp_path / name, index, manifest.fingerprint("fs:/y", ["train"], [".jpg"], None))
        assert manifest.load(tmp_path / name, fp)[1].startswith("written for another dataset")


# -- 12.4 an outage is not a bad sample ---------------------------------------------------------
@pytest.mark.parametrize("error,fatal", [
    (S3Unreachable("cannot connect", reference="storage.s3.endpoint_url"), True),
    (StorageError("S3 get failed: InternalError"), True),
    (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), True),
    (TimeoutError("no data for 2 s"), True),
    (OSError(errno.ENOTCONN, "Transport endpoint is not connected"), True),
    (RecordingError(errno.ENOSPC, "No space left on device"), True),
    (FileNotFoundError("s3://b/k"), False),
    (DataError("shard s.tar is not a valid tar"), False),
    (SizeMismatch("k", 10, 5), False),
    (OSError(errno.ELOOP, "Too many levels of symbolic links"), False),
    (ValueError("unsafe object key"), False),
])
def test_failures_are_told_apart(error, fatal):
    assert failures.is_fatal(failures.read_failure(error)) is fatal


class _Flaky(FileSystemStorage):
    """The fs backend whose server "goes away" after ``good`` sample reads."""

    good = 10
    reads = 0

    def _get(self, key):
        if key.endswith(".jpg"):
            type(self).reads += 1
            if type(self).reads > self.good:
                raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        return super()._get(key)


@pytest.mark.parametrize("on_error", ["fail", "skip"])
def test_outage_ends_the_run_whatever_on_error_says(tiny_root, write_config, monkeypatch, on_error):
    monkeypatch.setattr(_Flaky, "reads", 0)
    cfg = load_config(write_config(tiny_root, dataset={"on_error": on_error}, training={"epochs": 3}))
    ex = Executor(cfg)
    monkeypatch.setattr("dnnbench.run.prepare.create_storage", lambda config, recorder=None: _Flaky(config, recorder))
    out = ex.run()
    assert out.exit_code == 1 and out.row["status"] == "failed" and out.row["failed_phase"] == "train"
    assert isinstance(out.error, StorageError) and "storage failed" in str(out.error)
    assert "on_error" not in (out.error.hint or "")
    assert _Flaky.reads == 11  # the first refused read ends the run: no crawl through the rest
    assert out.row["skipped_samples"] == 0


def test_get_many_into_stops_at_an_outage(tmp_path):
    storage = fs(tmp_path)
    for k in ("a", "b", "c"):
        storage.put(f"p/{k}", b"xy")
    calls = []

    def prim(key, buf):
        calls.append(key)
        if key == "p/b":
            raise ConnectionResetError(errno.ECONNRESET, "reset")
        buf[:] = b"xy"
        return 2, None

    storage._get_into = prim
    ends, failed = storage.get_many_into(["p/a", "p/b", "p/c"], [2, 2, 2], memoryview(bytearray(6)))
    assert calls == ["p/a", "p/b"] and ends == [2] and failed[0][0] == "p/b"
    assert failures.is_outage(failed[0][1])


def test_pytorch_batch_stops_reading_after_an_outage(tmp_path):
    from dnnbench.config.schema import DatasetConfig
    from dnnbench.frameworks.pytorch.datasets import Failure, ImageFolderDataset

    storage = fs(tmp_path)
    calls = []

    def get(key):
        calls.append(key)
        raise TimeoutError("no data for 2 s")

    storage.get = get
    index = SampleIndex([f"p/c/{i}.jpg" for i in range(8)], np.zeros(8, np.int64), np.full(8, 10), ["c"])
    ds = ImageFolderDataset(index, storage, DatasetConfig())
    out = ds.__getitems__(list(range(8)))
    assert len(calls) == 1 and len(out) == 1 and isinstance(out[0], Failure) and failures.is_outage(out[0].reason)


def _with_bad_samples(tmp_path: Path, bad: int) -> Path:
    root = tmp_path / "data"
    synthetic.generate(fs(root), "train", 2, 10, width=(16, 20), height=(16, 20))
    for i in range(bad):
        (root / "train" / "class_001" / f"{i:06d}.jpg").write_bytes(b"not an image")
    return root


@pytest.mark.parametrize("limit,bad,status", [(5, 2, "failed"), (15, 2, "ok"), (0, 1, "failed"), (5, 1, "ok")])
def test_skipped_share_over_the_limit_fails_the_run(tmp_path, write_config, limit, bad, status):
    root = _with_bad_samples(tmp_path, bad)
    cfg = load_config(write_config(root, dataset={"on_error": "skip", "max_skipped_percent": limit},
                                   training={"epochs": 2}))
    out = Executor(cfg).run()
    assert out.row["status"] == status, out.row["reason"]
    if status == "failed":
        assert out.exit_code == 1 and "max_skipped_percent" in out.row["reason"]
        assert f"{bad} of 20 samples of epoch 1 skipped" in out.row["reason"]
    else:
        assert out.exit_code == 0 and out.row["skipped_samples"] == 2 * bad


# -- 12.8 images that cannot be decoded ------------------------------------------------------
def _jpeg_claiming(width: int, height: int) -> bytes:
    data = bytearray(synthetic.make_image(0, 1, 2, (20, 20), (20, 20)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def test_decode_refuses_huge_headers_and_opencv_errors(monkeypatch):
    with pytest.raises(decode.DecodeError, match="60000 x 50000 pixels"):
        decode.decode_image(_jpeg_claiming(60000, 50000), "rgb", (16, 16))
    monkeypatch.setattr(decode, "MAX_PIXELS", 10**12)  # past our limit, OpenCV's own refuses: still named
    with pytest.raises(decode.DecodeError, match="OpenCV cannot decode it"):
        decode.decode_image(_jpeg_claiming(60000, 50000), "rgb", (16, 16))
    png = synthetic.make_image(0, 1, 2, (20, 30), (10, 12), fmt="png")
    assert decode.image_size(png)[0] in range(20, 31)
    assert decode.too_large(decode.MAX_ENCODED_BYTES + 1, "rgb") and not decode.too_large(10**12, "none")


def test_huge_sparse_image_is_a_named_bad_sample(tmp_path, write_config):
    root = tmp_path / "data"
    synthetic.generate(fs(root), "train", 2, 12, width=(16, 20), height=(16, 20))
    huge = root / "train" / "class_000" / "huge.jpg"
    with open(huge, "wb") as f:  # 3 GiB on paper, no blocks on disk
        f.write(b"\xff\xd8\xff")
        f.truncate(3 * 2**30)
    (root / "train" / "class_001" / "giant.jpg").write_bytes(_jpeg_claiming(65000, 65000))
    cfg = load_config(write_config(root, dataset={"on_error": "skip", "max_skipped_percent": 10},
                                   framework={"num_workers": 2}))
    out = Executor(cfg).run()
    assert out.exit_code == 0 and out.row["samples"] == 24 and out.row["skipped_samples"] == 2
    env = json.loads((out.run_dir / "environment.json").read_text())
    reasons = {Path(s["key"]).name: s["reason"] for s in env["skipped_samples"]}
    assert "3,221,225,472 bytes" in reasons["huge.jpg"] and "not read" in reasons["huge.jpg"]
    assert "65000 x 65000 pixels" in reasons["giant.jpg"]
    fail = Executor(load_config(write_config(root, name="fail.yaml"))).run()
    assert fail.exit_code == 1 and "decode failed" in fail.row["reason"] and "cv2" not in fail.row["reason"]


# -- 12.10 symlink loops, pseudo-filesystems ------------------------------------------------
def test_symlink_loops_are_named_and_skip_applies(tmp_path):
    root = tmp_path / "data"
    synthetic.generate(fs(root), "train", 2, 3, width=(16, 20), height=(16, 20))
    (root / "train" / "class_000" / "self.jpg").symlink_to("self.jpg")
    (root / "train" / "class_001" / "up").symlink_to("..")
    with pytest.raises(DataError) as e:
        list_dataset(fs(root), ["train"], 2, [".jpg"])
    assert e.value.reference in ("train/class_000/self.jpg", "train/class_001/up")
    assert "symbolic links" in e.value.message or "parent folders" in e.value.message
    index, stats = list_dataset(fs(root), ["train"], 2, [".jpg"], on_error="skip")
    assert len(index) == 6 and sorted(k for k, _ in stats.unreadable) == ["train/class_000/self.jpg",
                                                                           "train/class_001/up"]


def test_symlink_loop_in_a_run_is_exit_2_or_skipped(tmp_path, write_config, capsys):
    root = tmp_path / "data"
    synthetic.generate(fs(root), "train", 2, 10, width=(16, 20), height=(16, 20))
    (root / "train" / "class_000" / "loop.jpg").symlink_to("loop.jpg")
    assert main(["-q", "--config", str(write_config(root))]) == 2
    err = capsys.readouterr().err
    assert "train/class_000/loop.jpg" in err and "Traceback" not in err
    cfg = write_config(root, name="skip.yaml", dataset={"on_error": "skip"})
    assert main(["-q", "--config", str(cfg), "--run-id", "skip"]) == 0
    env = json.loads((tmp_path / "results" / "skip" / "environment.json").read_text())
    assert [s["key"] for s in env["skipped_samples"]] == ["train/class_000/loop.jpg"]


def test_pseudo_filesystems_are_refused(tmp_path, write_config, capsys):
    assert pseudo_filesystem("/proc") == "proc" and pseudo_filesystem(str(tmp_path)) is None
    mounts = tmp_path / "mountinfo"
    mounts.write_text("22 1 0:21 / / rw - ext4 /dev/sda rw\n23 22 0:5 / /data/kernel rw - sysfs sysfs rw\n")
    assert pseudo_filesystem("/data/kernel/x", str(mounts)) == "sysfs"
    assert pseudo_filesystem("/data/kernelx", str(mounts)) is None
    assert main(["-q", "--config", str(write_config(Path("/proc")))]) == 2
    err = capsys.readouterr().err
    assert "storage.root" in err and "/proc" in err and "proc pseudo-filesystem" in err


# -- 12.10 results/summary.csv and the output folder ---------------------------------------
def _row() -> dict:
    return {"run_id": "r1", "status": "ok", "samples": 3}


def test_broken_summary_csv_is_refused_before_the_run(tiny_root, write_config, tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    cases = {"summary.csv": "a folder", "summary.csv.lock": "a folder",
             "open quote": 'run_id,status\n"r0,ok\n', "foreign": "name,score\nalice,3\n",
             "binary": b"\xff\xfe\x00garbage"}
    cfg = write_config(tiny_root)
    for name, content in cases.items():
        for p in out.iterdir():
            p.rmdir() if p.is_dir() else p.unlink()
        target = out / (name if name.startswith("summary") else "summary.csv")
        if content == "a folder":
            target.mkdir()
        elif isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
        assert main(["-q", "--config", str(cfg)]) == 2, name
        err = capsys.readouterr().err
        assert str(target) in err and "Traceback" not in err, (name, err)
        assert not any(p.is_dir() for p in out.iterdir() if p != target), name  # nothing ran


def test_append_never_glues_a_row_onto_a_cut_line(tmp_path):
    results.append_summary(tmp_path, _row())
    path = tmp_path / "summary.csv"
    path.write_text(path.read_text() + "r-cut,fai")  # a row cut short by a full disk
    results.append_summary(tmp_path, {**_row(), "run_id": "r2"})
    assert path.read_text().splitlines()[-1] == "r2,ok,3"


def test_unwritable_output_folder_is_exit_2(tiny_root, write_config, monkeypatch, capsys):
    real_mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if self.parent.name == "results":
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    assert main(["-q", "--config", str(write_config(tiny_root))]) == 2
    err = capsys.readouterr().err
    assert "metrics.output_dir" in err and "Read-only file system" in err and "Traceback" not in err


# -- 12.11 a full disk while the report is written ------------------------------------------
def test_full_disk_leaves_the_status_row_and_no_temporary_files(tiny_root, write_config, tmp_path, monkeypatch,
                                                                capsys):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "results" / "x" / "requests.csv"))

    monkeypatch.setattr("dnnbench.run.writer.build_reports", full)
    cfg = write_config(tiny_root, framework={"num_workers": 2})
    assert main(["-q", "--config", str(cfg), "--run-id", "full"]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "requests.csv" in err and "Traceback" not in err
    run = tmp_path / "results" / "full"
    row = pd.read_csv(run / "summary.csv").iloc[0]
    assert row["status"] == "failed" and row["failed_phase"] == "report" and row["samples"] == 36
    assert not (run / ".requests").exists()
    total = pd.read_csv(tmp_path / "results" / "summary.csv")
    assert list(total["run_id"]) == ["full"] and total.iloc[0]["status"] == "failed"


def test_recorder_write_errors_are_named_and_counted(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rec = RequestRecorder(RecorderSpec(str(blocker / "requests")))  # a folder under a file: cannot be made
    rec.add("get", "k", 0.0, None, 1.0, 3)
    with pytest.raises(RecordingError) as e:
        rec.flush()
    assert "cannot write request rows" in str(e.value) and rec.lost == 1
    rec.add("get", "k", 0.0, None, 1.0, 3)
    rec._flush_at_exit()  # a worker ending: quiet
    assert rec.lost == 2


def test_a_torn_request_chunk_keeps_the_rows_before_it(tmp_path):
    row = ["get", "k", 1, 0, 0, 0.0, None, 1.0, 3, None, None, 0]
    assert len(row) == len(COLUMNS)
    chunk = marshal.dumps([row, row])
    (tmp_path / "requests-1.part").write_bytes(chunk + chunk[: len(chunk) // 2])
    (tmp_path / "requests-2.part").write_bytes(chunk + b"\x00garbage")
    assert len(read_parts(tmp_path)) == 4


def test_interrupted_status_when_a_signal_is_held_during_the_report(tiny_root, write_config, monkeypatch):
    """The report half of 12.2 in-process: a signal noted while the report is written."""
    import signal

    from dnnbench import signals

    def interrupt_once(name, held=None):
        if name == "report-summary" and held is not None and not held.received:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(signals, "pause_point", interrupt_once)
    cfg = load_config(write_config(tiny_root))
    out = Executor(cfg).run()
    assert out.exit_code == 130 and out.row["status"] == "interrupted" and out.row["failed_phase"] == "report"
    assert out.row["samples"] == 36  # the figures measured
    total = pd.read_csv(Path(cfg.config.metrics.output_dir) / "summary.csv")
    assert total.iloc[-1]["status"] == "interrupted"


# -- 12.6 / 11.5 prepares take turns; what was prepared is recorded ---------------------------
def test_a_prepare_waits_for_another_and_gives_up_with_a_message(tmp_path):
    from filelock import FileLock

    from dnnbench.data import prepared
    from dnnbench.errors import RunFailed

    storage = fs(tmp_path / "data")
    said: list[str] = []
    with FileLock(str(prepared.lock_path(storage))):  # another prepare of the same storage
        with pytest.raises(RunFailed) as e:
            with prepared.turn(storage, said.append, wait_s=0.2):
                pass
    assert "still under way after 0 s" in e.value.message and said and "waiting for it" in said[0]
    with prepared.turn(storage, said.append, wait_s=0.2):  # free again: no wait, nothing said
        pass
    assert len(said) == 1
    assert prepared.lock_path(fs(tmp_path / "data")) == prepared.lock_path(storage) != \
        prepared.lock_path(fs(tmp_path / "other"))


def test_prepare_parameters_differences_and_stale_keys():
    from dnnbench.config.schema import PrepareConfig
    from dnnbench.data import prepared

    small = prepared.synthetic_params(PrepareConfig(classes=2, images_per_class=3), 0)
    large = prepared.synthetic_params(PrepareConfig(classes=3, images_per_class=2, width=(8, 9)), 0)
    assert prepared.differences(small, large) == ["classes: 2 -> 3", "images_per_class: 3 -> 2",
                                                  "width: 32x128 -> 8x9"]
    assert prepared.differences(small, prepared.upload_params("/x")) == ["kind: synthetic -> upload"]
    assert prepared.stale_keys(small, large, "train") == ["train/class_000/000002.jpg",
                                                          "train/class_001/000002.jpg"]
    assert prepared.stale_keys(None, large, "train") == [] and prepared.stale_keys(small, small, "t") == []


@pytest.mark.parametrize("value", [-1, 101, float("nan"), float("inf"), "some"])
def test_max_skipped_percent_is_a_share(value):
    from dnnbench.config.loading import validate

    with pytest.raises(ConfigError) as e:
        validate({"storage": {"root": "data"}, "dataset": {"max_skipped_percent": value}})
    assert "dataset.max_skipped_percent" in str(e.value) + " ".join(e.value.details)
    assert validate({"storage": {"root": "d"}, "dataset": {"max_skipped_percent": 0}}).dataset.max_skipped_percent == 0
