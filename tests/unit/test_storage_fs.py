"""The storage contract on the local filesystem, and per-request recording."""

from __future__ import annotations

import multiprocessing as mp
import os

import pytest

from dnnbench.config.schema import StorageConfig
from dnnbench.recording.requests import RecorderSpec, flush_current, get_recorder, read_rows
from dnnbench.storage.base import SizeMismatch
from dnnbench.storage.fs import FileSystemStorage, safe_join


@pytest.fixture
def store(tmp_path):
    return FileSystemStorage(StorageConfig(root=str(tmp_path / "root")))


def test_put_get_list_delete(store):
    store.put("a/x/1.bin", b"hello")
    store.put("a/x/2.bin", b"world!")
    store.put("a/y/3.bin", b"")
    data, _ = store.get("a/x/1.bin")
    assert data == b"hello"
    objects, prefixes = store.list("a", delimiter=True)
    assert objects == [] and prefixes == ["a/x", "a/y"]
    objects, _ = store.list("a", delimiter=False)
    assert [(o.key, o.size) for o in objects] == [("a/x/1.bin", 5), ("a/x/2.bin", 6), ("a/y/3.bin", 0)]
    assert store.get_range("a/x/2.bin", 1, 3) == b"orl"
    store.delete("a/x/1.bin")
    with pytest.raises(FileNotFoundError):
        store.get("a/x/1.bin")
    assert store.exists("a") and not store.exists("b")


def test_get_into_reads_in_place_and_checks_size(store):
    store.put("k.bin", b"0123456789")
    buf = bytearray(10)
    n, _ = store.get_into("k.bin", memoryview(buf))
    assert n == 10 and bytes(buf) == b"0123456789"
    with pytest.raises(SizeMismatch):
        store.get_into("k.bin", memoryview(bytearray(4)))


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


def test_pickles_without_live_state(store):
    import pickle

    store.put("k", b"1")
    store.client  # noqa: B018 - create the (trivial) client
    clone = pickle.loads(pickle.dumps(store))
    assert clone._client is None and clone.get("k")[0] == b"1"


def test_requests_recorded_per_process(tmp_path, store):
    spec = RecorderSpec(str(tmp_path / "req"))
    s = FileSystemStorage(store.config, recorder=spec)
    s.put("p/k1", b"abc")
    s.get("p/k1")
    with pytest.raises(FileNotFoundError):
        s.get("p/missing")
    flush_current()
    files = os.listdir(tmp_path / "req")
    assert files == [f"requests-{os.getpid()}.part"]
    rows = read_rows(tmp_path / "req")
    assert [r["op"] for r in rows] == ["put", "get", "get"]
    assert rows[1]["bytes"] == 3 and rows[1]["error"] is None
    assert "FileNotFoundError" in rows[2]["error"]


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
