"""The storage contract: what every registered storage backend does, tested by being registered.

:class:`StorageContract` holds the tests; a test module joins them with one class and a
``backend`` fixture yielding a :class:`ContractFixture` per backend::

    class TestStorageContract(StorageContract):
        pass

``tests/unit/test_storage_contract.py`` runs them for every built-in backend (the filesystem,
latency emulation around it, and each S3 client against moto); ``tests/integration/
test_s3_storage.py`` for each S3 client against the local Swift server. A new backend is tested
by adding its fixture: a :class:`ContractFixture` subclass that makes empty stores of it (a new
S3 client needs none: the S3 fixtures take every backend of kind ``s3`` from the registry).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from dnnbench.errors import EXIT_BAD_INPUT, BenchError
from dnnbench.recording.requests import RecorderSpec, flush_current, read_rows
from dnnbench.storage.base import SizeMismatch, Storage

#: a small dataset: two class prefixes, an object beside them, objects of 0 to 2,000 bytes
SMALL = {"train/c1/a.bin": b"a" * 10, "train/c1/b.bin": bytes(range(250)) * 8, "train/c2/c.bin": b"c" * 30,
         "train/c2/empty.bin": b"", "train/top.bin": b"top"}
#: more objects under one prefix than one ListObjectsV2 page holds (1,000)
PAGED = {f"paged/cls/{i:05d}.bin": b"p" * (1 + i % 7) for i in range(1005)}
_stock: dict[tuple[str, str], str] = {}  # (fixture family, stock name) -> location holding it


class ContractFixture:
    """Makes stores of one backend for the contract tests.

    Subclasses give ``name`` (the test id), ``family`` (stores of one family share locations,
    e.g. every S3 client on one endpoint), :meth:`new_location`, :meth:`open` and :meth:`missing`.
    """

    name = "?"
    family = "?"
    #: objects one listing request returns at most (S3: 1,000); None: one request per listing
    page_size: int | None = None

    def new_location(self) -> str:
        """A new, empty place for objects (a folder, a bucket)."""
        raise NotImplementedError

    def open(self, location: str, recorder: RecorderSpec | None = None) -> Storage:
        """The backend under test on ``location``, built through the registry as a run builds it."""
        raise NotImplementedError

    def missing(self) -> Storage:
        """The backend on a location that does not exist (no such folder, no such bucket)."""
        raise NotImplementedError

    def writer(self, location: str) -> Storage:
        """What stocks ``location`` fast (default: the backend itself)."""
        return self.open(location)

    def make(self, recorder: RecorderSpec | None = None, objects: dict[str, bytes] | None = None) -> Storage:
        """A new store holding ``objects``, written through the backend under test."""
        store = self.open(self.new_location(), recorder)
        for key, data in (objects or {}).items():
            store.put(key, data)
        return store

    def stocked(self, name: str, objects: dict[str, bytes], recorder: RecorderSpec | None = None) -> Storage:
        """A store holding ``objects``, written once per family by :meth:`writer` and shared."""
        location = _stock.get((self.family, name))
        if location is None:
            location = self.new_location()
            writer = self.writer(location)
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda item: writer.put(*item), objects.items()))
            _stock[(self.family, name)] = location
        return self.open(location, recorder)


def rows(directory: Path) -> list[dict]:
    flush_current()
    return read_rows(directory)


def _read_in_child(blob: bytes, key: str) -> tuple[int, bytes, bool]:
    """In a fresh (spawned) process: unpickle a store and read ``key`` through it."""
    store = pickle.loads(blob)
    fresh = all(s._client is None for s in _layers(store))
    data, _ = store.get(key)
    flush_current()
    return os.getpid(), data, fresh


def _layers(store: Storage) -> list[Storage]:
    """The store and the one it wraps (latency emulation), if any."""
    inner = getattr(store, "inner", None)
    return [store] if inner is None else [store, inner]


class StorageContract:
    """The behaviour every storage backend shares: listing, reads, writes, errors, recording, pickling."""

    @pytest.fixture(autouse=True)
    def _keep_aws_env(self, monkeypatch):
        """s3torchconnector exports inline keys into the environment: restore it after each test."""
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            monkeypatch.setenv(name, os.environ.get(name, "unset"))

    @pytest.fixture(scope="class")
    def child(self):
        """One fresh process (spawn: nothing inherited) that unpickles stores, as loader workers do."""
        with mp.get_context("spawn").Pool(1) as pool:
            yield pool

    def test_put_list_get_exists_delete(self, backend):
        st = backend.make(objects=SMALL)
        st.check()
        assert st.list("train", delimiter=True) == ([obj("train/top.bin", 3)], ["train/c1", "train/c2"])
        objects, prefixes = st.list("train/c2")
        assert [(o.key, o.size) for o in objects] == [("train/c2/c.bin", 30), ("train/c2/empty.bin", 0)]
        assert prefixes == []
        assert st.get("train/c1/b.bin")[0] == SMALL["train/c1/b.bin"]
        assert st.get("train/c2/empty.bin")[0] == b""
        assert st.exists("train") and st.exists("train/c1") and not st.exists("nothing-here")
        st.put("train/c1/a.bin", b"replaced")
        assert st.get("train/c1/a.bin")[0] == b"replaced"
        for key in ("train/c2/c.bin", "train/c2/empty.bin"):
            st.delete(key)
        with pytest.raises(FileNotFoundError):
            st.get("train/c2/c.bin")
        assert not st.exists("train/c2") and st.exists("train/c1")

    def test_a_trailing_slash_lists_the_same_keys(self, backend):
        st = backend.make(objects=SMALL)
        assert st.list("train/c2/") == st.list("train/c2")
        assert st.list("train/", delimiter=True) == st.list("train", delimiter=True)
        assert [o.key for o in st.list("train/")[0]] == sorted(k for k in SMALL if k.startswith("train/"))

    def test_get_into_reads_in_place_and_checks_the_size(self, backend):
        st = backend.make(objects=SMALL)
        data = SMALL["train/c1/b.bin"]
        buf = bytearray(len(data))
        assert st.get_into("train/c1/b.bin", memoryview(buf))[0] == len(data) and bytes(buf) == data
        for wrong in (10, len(data) + 1):
            with pytest.raises(SizeMismatch):
                st.get_into("train/c1/b.bin", memoryview(bytearray(wrong)))
        assert st.get_into("train/c2/empty.bin", memoryview(bytearray(0)))[0] == 0

    def test_get_many_into_skips_what_cannot_be_read(self, backend):
        st = backend.make(objects=SMALL)
        keys = ["train/c1/a.bin", "train/c1/missing.bin", "train/c1/b.bin", "train/c2/c.bin", "train/top.bin"]
        sizes = [10, 5, 2000, 29, 3]  # c.bin has 30 bytes: changed since listing
        buf = bytearray(sum(sizes))
        ends, failed = st.get_many_into(keys, sizes, memoryview(buf))
        assert ends == [10, 2010, 2013]  # a failed object leaves no gap
        assert bytes(buf[:10]) == SMALL["train/c1/a.bin"] and bytes(buf[2010:2013]) == b"top"
        assert bytes(buf[10:2010]) == SMALL["train/c1/b.bin"]
        assert [k for k, _ in failed] == ["train/c1/missing.bin", "train/c2/c.bin"]
        assert failed[0][1].startswith("read failed: FileNotFoundError")
        assert failed[1][1].startswith("read failed: SizeMismatch")

    def test_get_range(self, backend):
        st = backend.make(objects=SMALL)
        data = SMALL["train/c1/b.bin"]
        assert st.get_range("train/c1/b.bin", 5, 7) == data[5:12]
        assert st.get_range("train/c1/b.bin", 1990, 10) == data[1990:]
        assert st.get_range("train/c1/b.bin", 0, 1) == data[:1]

    def test_open_stream_is_one_request(self, backend, tmp_path):
        spec = RecorderSpec(str(tmp_path / "req"))
        data = os.urandom(300 * 1024 + 7)
        st = backend.make(recorder=spec, objects={"big/object.bin": data})
        got = bytearray()
        with st.open_stream("big/object.bin") as stream:
            while chunk := stream.read(10240):  # what tarfile's stream mode asks for
                got += chunk
        assert bytes(got) == data
        recorded = [(r["op"], r["bytes"], r["error"]) for r in rows(tmp_path / "req") if r["key"] == "big/object.bin"]
        assert recorded == [("put", len(data), None), ("get", len(data), None)]

    def test_listing_pages(self, backend, tmp_path):
        spec = RecorderSpec(str(tmp_path / "req"))
        st = backend.stocked("paged", PAGED, recorder=spec)
        objects, prefixes = st.list("paged/cls")
        assert [(o.key, o.size) for o in objects] == [(k, len(v)) for k, v in sorted(PAGED.items())]
        pages = -(-len(PAGED) // backend.page_size) if backend.page_size else 1
        assert st.list_requests() == pages
        lists = sorted((r for r in rows(tmp_path / "req") if r["op"] == "list"), key=lambda r: r["start"])
        assert [(r["key"], r["bytes"], r["error"]) for r in lists] == [("paged/cls", 0, None)] * pages
        assert all(a["end"] <= b["start"] for a, b in zip(lists, lists[1:]))  # each page asked after the last

    def test_missing_key_is_file_not_found(self, backend):
        st = backend.make(objects=SMALL)
        for read in (lambda: st.get("train/c1/nope.bin"), lambda: st.get_range("train/c1/nope.bin", 0, 2),
                     lambda: st.get_into("train/c1/nope.bin", memoryview(bytearray(2))),
                     lambda: st.open_stream("train/c1/nope.bin"), lambda: st.list("nothing-here")):
            with pytest.raises(FileNotFoundError):
                read()

    def test_missing_container_is_bad_input(self, backend):
        st = backend.missing()
        with pytest.raises(BenchError) as e:
            st.check()
        assert e.value.exit_code == EXIT_BAD_INPUT and e.value.reference and e.value.hint
        assert st.exists("train") is False

    def test_every_request_is_one_row_with_its_bytes(self, backend, tmp_path):
        spec = RecorderSpec(str(tmp_path / "req"))
        st = backend.make(recorder=spec)
        data = SMALL["train/c1/b.bin"]
        st.put("train/c1/b.bin", data)
        st.get("train/c1/b.bin")
        st.get_into("train/c1/b.bin", memoryview(bytearray(len(data))))
        st.get_range("train/c1/b.bin", 10, 20)
        st.list("train/c1")
        with pytest.raises(FileNotFoundError):
            st.get("train/c1/missing.bin")
        with pytest.raises(FileNotFoundError):  # nothing under the prefix: one request, failed
            st.list("nothing-here")
        got = rows(tmp_path / "req")
        assert [(r["op"], r["key"], r["bytes"]) for r in got] == [
            ("put", "train/c1/b.bin", 2000), ("get", "train/c1/b.bin", 2000), ("get", "train/c1/b.bin", 2000),
            ("get_range", "train/c1/b.bin", 20), ("list", "train/c1", 0), ("get", "train/c1/missing.bin", 0),
            ("list", "nothing-here", 0)]
        assert [r["error"] is None for r in got] == [True] * 5 + [False] * 2
        assert "FileNotFoundError" in got[-2]["error"] and "FileNotFoundError" in got[-1]["error"]
        assert st.list_requests() == 1
        assert all(r["start"] <= r["end"] and r["pid"] == os.getpid() and r["retries"] == 0 for r in got)
        if st.ttfb_supported:  # the first byte of each successful read falls inside its request
            assert all(r["start"] <= r["ttfb"] <= r["end"] for r in got[1:4])

    def test_pickles_into_a_fresh_process(self, backend, child, tmp_path):
        spec = RecorderSpec(str(tmp_path / "req"))
        st = backend.make(recorder=spec, objects={"train/c1/k.bin": b"payload"})
        st.client  # noqa: B018 - this process's live client exists before pickling
        blob = pickle.dumps(st)
        assert all(s._client is None for s in _layers(pickle.loads(blob)))  # configuration only
        pid, data, fresh = child.apply(_read_in_child, (blob, "train/c1/k.bin"))
        assert pid != os.getpid() and fresh and data == b"payload"
        theirs = [(r["op"], r["bytes"]) for r in rows(tmp_path / "req") if r["pid"] == pid]
        assert theirs == [("get", 7)]  # recorded by the process that made the request


def obj(key: str, size: int) -> Any:
    from dnnbench.storage.base import ObjectInfo

    return ObjectInfo(key, size)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
