"""Dataset layouts: flat (recursive, labels from a CSV or JSON lines file, or none) and dlio
(train/ files in DLIO's numbering order, valid/ apart); classes stays listing.list_dataset's."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from dnnbench.config.schema import StorageConfig
from dnnbench.data.layouts import UNLABELED, labels_for, list_layout, read_labels_file, split_prefixes
from dnnbench.errors import ConfigError, DataError
from dnnbench.storage.fs import FileSystemStorage


def dataset(layout: str, labels_file: str | None = None, on_error: str = "fail") -> SimpleNamespace:
    return SimpleNamespace(layout=layout, labels_file=labels_file, labels=None, on_error=on_error)


@pytest.fixture
def storage(tmp_path):
    def put(rel: str, size: int) -> None:
        path = tmp_path / "root" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)

    for rel, size in (("flat/a.npz", 10), ("flat/sub/b.npz", 20), ("flat/.hidden/c.npz", 30),
                      ("flat/notes.txt", 5), ("flat2/z.npz", 7),
                      ("d/train/img_10_of_12.npz", 1), ("d/train/s1/img_9_of_12.npz", 2),
                      ("d/train/img_2_of_12.npz", 3), ("d/valid/img_0_of_1.npz", 4)):
        put(rel, size)
    return FileSystemStorage(StorageConfig(root=str(tmp_path / "root")))


def test_flat_lists_every_file_under_the_prefix_recursively_hidden_folders_included(storage):
    index, stats = list_layout(storage, dataset("flat"), ["flat"], 2, [".npz"])
    assert index.keys == ["flat/.hidden/c.npz", "flat/a.npz", "flat/sub/b.npz"]  # not flat2/, not the .txt
    assert index.sizes.tolist() == [30, 10, 20] and index.total_bytes == 60
    assert index.labels.tolist() == [0, 0, 0] and index.classes == [UNLABELED]
    assert (stats.objects, stats.bytes, stats.skipped_objects, stats.classes) == (3, 60, 1, 1)


def test_dlio_reads_train_in_file_number_order_and_valid_apart(storage):
    index, _ = list_layout(storage, dataset("dlio"), ["d"], 1, [".npz"])
    assert index.keys == ["d/train/img_2_of_12.npz", "d/train/s1/img_9_of_12.npz", "d/train/img_10_of_12.npz"]
    assert split_prefixes("dlio", ["d", ""], "valid") == ["d/valid", "valid"]
    valid, _ = list_layout(storage, dataset("flat"), split_prefixes("dlio", ["d"], "valid"), 1, [".npz"])
    assert valid.keys == ["d/valid/img_0_of_1.npz"]
    assert split_prefixes("flat", ["d"]) == ["d"]


def test_flat_without_files_is_bad_input_naming_the_prefixes(storage):
    with pytest.raises(DataError) as e:
        list_layout(storage, dataset("flat"), ["flat"], 1, [".h5"])
    assert e.value.reference == "storage.prefixes" and "flat" in e.value.message


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_labels_file_by_listed_or_relative_key(storage, tmp_path, kind):
    rows = [("flat/a.npz", "cat"), ("sub/b.npz", "dog"), (".hidden/c.npz", "cat")]
    path = tmp_path / f"labels.{kind}"
    if kind == "csv":
        path.write_text("key,label\n" + "".join(f"{k},{v}\n" for k, v in rows))
    else:
        path.write_text("".join(json.dumps({"key": k, "label": v}) + "\n" for k, v in rows))
    index, stats = list_layout(storage, dataset("flat", str(path)), ["flat"], 1, [".npz"])
    assert index.classes == ["cat", "dog"] and stats.classes == 2
    assert dict(zip(index.keys, index.labels.tolist())) == {"flat/.hidden/c.npz": 0, "flat/a.npz": 0,
                                                             "flat/sub/b.npz": 1}


def test_a_file_without_label_is_named(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("a.npz,cat\n")
    with pytest.raises(DataError) as e:
        labels_for(["p/a.npz", "p/b.npz"], ["p"], str(path))
    assert "p/b.npz has no label" in e.value.message and e.value.reference == "dataset.labels_file"


@pytest.mark.parametrize("text,name", [("a.npz\n", "l.csv"), ("a,b,c\n", "l.csv"), ("{\"key\": 1}\n", "l.jsonl"),
                                       ("not json\n", "l.jsonl")])
def test_malformed_labels_file_names_the_line(tmp_path, text, name):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        read_labels_file(str(path))
    assert "line 1" in e.value.message and e.value.reference == "dataset.labels_file"


def test_missing_labels_file(tmp_path):
    with pytest.raises(ConfigError) as e:
        read_labels_file(str(tmp_path / "none.csv"))
    assert "cannot read labels file" in e.value.message
