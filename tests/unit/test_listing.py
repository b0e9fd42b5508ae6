"""Parallel listing -> sample index."""

from __future__ import annotations

import pytest

from dnnbench.config.schema import StorageConfig
from dnnbench.errors import DataError
from dnnbench.storage.fs import FileSystemStorage
from dnnbench.data.listing import list_dataset

EXT = [".jpg", ".png"]


@pytest.fixture
def store(tmp_path):
    s = FileSystemStorage(StorageConfig(root=str(tmp_path)))
    for prefix in ("src1", "src2"):
        for cls, n in (("roses", 3), ("daisy", 2)):
            for i in range(n):
                s.put(f"{prefix}/{cls}/{i}.jpg", b"x" * (i + 1))
    s.put("src1/daisy/notes.txt", b"ignored")
    return s


@pytest.mark.parametrize("workers", [1, 8])
def test_several_roots_are_one_dataset(store, workers):
    index, stats = list_dataset(store, ["src1", "src2"], workers, EXT)
    assert len(index) == 10 and stats.objects == 10
    assert index.classes == ["daisy", "roses"]  # sorted
    assert stats.bytes == index.total_bytes == 2 * (1 + 2 + 1 + 2 + 3)
    assert stats.skipped_objects == 1 and stats.classes == 2
    assert index.keys[0] == "src1/daisy/0.jpg" and index.keys[-1] == "src2/roses/2.jpg"
    assert set(index.labels[:2]) == {0}


def test_label_order_from_config(store):
    index, _ = list_dataset(store, ["src1"], 4, EXT, labels=["roses", "daisy"])
    assert index.classes == ["roses", "daisy"]
    assert [index.labels[i] for i, k in enumerate(index.keys) if "/roses/" in k] == [0, 0, 0]


def test_label_subset_reads_only_those_classes(store):
    index, _ = list_dataset(store, ["src1"], 4, EXT, labels=["roses"])
    assert len(index) == 3 and all("/roses/" in k for k in index.keys)


@pytest.mark.parametrize("prefixes,labels,ref", [
    (["nope"], None, "storage.prefixes"),
    (["src1/roses"], None, "storage.prefixes"),
    (["src1"], ["tulips"], "dataset.labels"),
])
def test_errors_name_the_field(store, prefixes, labels, ref):
    with pytest.raises(DataError) as e:
        list_dataset(store, prefixes, 2, EXT, labels=labels)
    assert e.value.reference == ref


def test_empty_dataset(tmp_path):
    s = FileSystemStorage(StorageConfig(root=str(tmp_path)))
    s.put("d/c1/readme.md", b"x")
    with pytest.raises(DataError, match="no samples"):
        list_dataset(s, ["d"], 2, EXT)


def test_subset_is_seeded_and_ordered(store):
    index, _ = list_dataset(store, ["src1", "src2"], 2, EXT)
    a, b = index.subset(4, seed=3), index.subset(4, seed=3)
    assert a.keys == b.keys and len(a) == 4 and a.keys == sorted(a.keys, key=index.keys.index)


def test_hidden_directories_and_files_are_never_classes_or_samples(store):
    """A dataset folder beside .git, .venv or a .cache of its own: only the visible classes count."""
    for key in (".git/objects/a.jpg", ".venv/lib/b.png", "src1/.cache/c.jpg", "src1/roses/.thumbs/d.jpg",
                "src1/roses/._0.jpg"):
        store.put(key, b"hidden")
    index, stats = list_dataset(store, ["src1"], 2, EXT)
    assert index.classes == ["daisy", "roses"] and len(index) == 5
    assert not any("/." in k or k.startswith(".") for k in index.keys)
    assert stats.skipped_objects == 3  # notes.txt and the two hidden files under roses/
    with pytest.raises(DataError, match="not found"):
        list_dataset(store, ["src1"], 2, EXT, labels=[".cache"])
    index, _ = list_dataset(store, [""], 2, EXT)
    assert index.classes == ["src1", "src2"]  # the root itself: .git and .venv are not classes
