"""What only the filesystem backend does (keys never leave the root, the missing root named), and
per-process request recording. The storage contract itself is tests/unit/test_storage_contract.py."""

from __future__ import annotations

import multiprocessing as mp
import os

import pytest

from dnnbench.config.schema import StorageConfig
from dnnbench.recording.requests import RecorderSpec, flush_current, get_recorder, read_rows
from dnnbench.storage.fs import FileSystemStorage, safe_join


@pytest.fixture
def store(tmp_path):
    return FileSystemStorage(StorageConfig(root=str(tmp_path / "root")))


@pytest.mark.parametrize("key", ["../etc/passwd", "/etc/passwd", "a/../../x", "a/\x00"])
def test_keys_never_escape_the_root(store, key):
    with pytest.raises(ValueError, match="unsafe"):
        store.get(key)
    with pytest.raises(ValueError):
        safe_join("/r", key)


def test_missing_root_check_names_the_field(tmp_path):
    from dnnbench.errors import DataError

    s = FileSystemStorage(StorageConfig(root=str(tmp_path / "nope")))
    with pytest.raises(DataError) as e:
        s.check()
    assert e.value.reference == "storage.root" and "prepare" in e.value.hint


def _child_reads(storage):
    storage.get("p/k1")
    storage.get("p/k1")


def test_forked_process_gets_its_own_recorder(tmp_path, store):
    spec = RecorderSpec(str(tmp_path / "req2"))
    s = FileSystemStorage(store.config, recorder=spec)
    s.put("p/k1", b"abcd")
    get_recorder(spec)  # parent has a recorder with a buffered row
    p = mp.get_context("fork").Process(target=_child_reads, args=(s,))
    p.start()
    p.join(30)
    assert p.exitcode == 0
    flush_current()
    files = sorted(os.listdir(tmp_path / "req2"))
    assert len(files) == 2
    child = [f for f in files if f != f"requests-{os.getpid()}.part"][0]
    rows = [r for r in read_rows(tmp_path / "req2") if r["pid"] == int(child[len("requests-"):-len(".part")])]
    assert [r["op"] for r in rows] == ["get", "get"]  # the parent's put was not inherited


def test_sampled_recording_keeps_errors(tmp_path, store):
    spec = RecorderSpec(str(tmp_path / "req3"), mode="sampled", rate=0.0001)
    rec = get_recorder(spec)
    for _ in range(100):
        rec.add("get", "k", 0.0, None, 0.001, 10)
    rec.add("get", "bad", 0.0, None, 0.001, 0, error="boom")
    assert rec.count == 101 and rec.errors == 1 and rec.bytes == 1000
    assert any(r[10] == "boom" for r in rec._rows)
    rec._rows.clear()
