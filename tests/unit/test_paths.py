"""Paths from the user never leave their root: config prefixes are relative keys (exit 2
naming the field), and ``prepare --from DIR`` reads nothing outside DIR (local filesystem only)."""

from __future__ import annotations

import os

import pytest
import yaml

from dnnbench.cli import main
from dnnbench.config.loading import load_config
from dnnbench.config.schema import StorageConfig
from dnnbench.data import upload
from dnnbench.errors import ConfigError, DataError
from dnnbench.storage.fs import FileSystemStorage

BAD = ["../x", "a/../../x", "..", "/abs/x", "//x", "\\x", "a\x00b"]


def _cfg(tmp_path, **sections) -> str:
    p = tmp_path / "c.yaml"
    base = {"storage": {"client": "fs", "root": str(tmp_path / "data"), "prefixes": ["train"]},
            "metrics": {"output_dir": str(tmp_path / "results")}}
    for k, v in sections.items():
        base[k] = {**base.get(k, {}), **v}
    p.write_text(yaml.safe_dump(base))
    return str(p)


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("field,section", [
    ("storage.prefixes", lambda v: {"storage": {"prefixes": ["train", v]}}),
    ("inference.prefixes", lambda v: {"inference": {"prefixes": [v]}}),
    ("shards.prefix", lambda v: {"shards": {"prefix": v}}),
    ("checkpoint.prefix", lambda v: {"checkpoint": {"prefix": v}}),
])
def test_escaping_prefixes_are_config_errors(tmp_path, capsys, field, section, bad):
    path = _cfg(tmp_path, **section(bad))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert field in str(e.value)
    assert main(["validate", "--config", path]) == 2
    err = capsys.readouterr().err
    assert field in err and "Traceback" not in err
    assert sum(line.startswith("error") for line in err.splitlines()) == 1


def test_a_run_with_an_escaping_prefix_exits_2_before_anything_runs(tmp_path, capsys):
    (tmp_path / "data" / "train" / "a").mkdir(parents=True)
    path = _cfg(tmp_path, storage={"prefixes": ["../outside"]})
    assert main(["-q", "--config", path]) == 2
    err = capsys.readouterr().err
    assert "storage.prefixes" in err and "ValueError" not in err
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("ok,expect", [("", ""), ("/", ""), ("train/", "train"), ("a/b", "a/b"),
                                       ("a..b/c", "a..b/c"), ("./x", "./x")])
def test_relative_prefixes_still_work(tmp_path, ok, expect):
    cfg = load_config(_cfg(tmp_path, storage={"prefixes": [ok]}, shards={"prefix": ok},
                           checkpoint={"prefix": ok}, inference={"prefixes": [ok]})).config
    assert cfg.storage.prefixes == [expect] and cfg.shards.prefix == expect
    assert cfg.checkpoint.prefix == expect and cfg.inference.prefixes == [expect]


# -- prepare --from DIR ----------------------------------------------------------------

def _tree(root, files=("a/1.jpg", "a/2.jpg", "b/3.jpg")):
    for f in files:
        p = root / f
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(f"image {f}".encode())
    return root


def _store(tmp_path):
    return FileSystemStorage(StorageConfig(root=str(tmp_path / "store")))


def test_plain_tree_uploads_under_the_prefix(tmp_path):
    src = _tree(tmp_path / "src")
    (src / "LICENSE").write_text("top-level file: skipped")
    tree = upload.scan(str(src), [".jpg"])
    assert [k for _, k in tree.files] == ["a/1.jpg", "a/2.jpg", "b/3.jpg"] and tree.skipped == 1
    stats = upload.upload(_store(tmp_path), "train", tree, workers=2)
    assert stats.images == 3
    assert (tmp_path / "store" / "train" / "b" / "3.jpg").read_bytes() == b"image b/3.jpg"


def test_file_link_out_of_the_folder_is_refused(tmp_path):
    secret = tmp_path / "elsewhere" / "private.jpg"
    secret.parent.mkdir()
    secret.write_bytes(b"not part of the dataset")
    src = _tree(tmp_path / "src")
    os.symlink(secret, src / "a" / "leak.jpg")
    with pytest.raises(DataError) as e:
        upload.scan(str(src), [".jpg"])
    assert e.value.reference == "--from" and "a/leak.jpg" in e.value.message and "outside" in e.value.message


def test_folder_link_out_of_the_folder_is_refused(tmp_path):
    outside = _tree(tmp_path / "elsewhere", ("x.jpg",))
    src = _tree(tmp_path / "src")
    os.symlink(outside, src / "c")
    with pytest.raises(DataError, match="outside"):
        upload.scan(str(src), [".jpg"])
    os.unlink(src / "c")
    os.symlink(tmp_path, src / "a" / "up")  # reaches the parent through a link inside a class folder
    with pytest.raises(DataError, match="outside"):
        upload.scan(str(src), [".jpg"])


def test_links_inside_the_folder_are_followed_and_loops_end(tmp_path):
    src = _tree(tmp_path / "src")
    os.symlink(src / "a", src / "a_again")  # a second class made of the same files: fine
    os.symlink(src, src / "b" / "loop")  # back to the root: not walked again
    os.symlink(src / "a" / "1.jpg", src / "b" / "one.jpg")
    tree = upload.scan(str(src), [".jpg"])
    keys = [k for _, k in tree.files]
    assert keys == ["a/1.jpg", "a/2.jpg", "a_again/1.jpg", "a_again/2.jpg", "b/3.jpg", "b/one.jpg"]
    assert tree.classes == 3


def test_root_given_through_a_link_works(tmp_path):
    src = _tree(tmp_path / "src")
    os.symlink(src, tmp_path / "via")
    tree = upload.scan(str(tmp_path / "via"), [".jpg"])
    assert len(tree.files) == 3


def test_a_link_swapped_in_after_the_scan_is_refused_at_upload(tmp_path):
    secret = tmp_path / "private.jpg"
    secret.write_bytes(b"secret bytes")
    src = _tree(tmp_path / "src")
    tree = upload.scan(str(src), [".jpg"])
    (src / "a" / "2.jpg").unlink()
    os.symlink(secret, src / "a" / "2.jpg")
    with pytest.raises(DataError, match="outside"):
        upload.upload(_store(tmp_path), "train", tree, workers=1)
    stored = [p.read_bytes() for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert b"secret bytes" not in stored


def test_unchecked_keys_are_never_uploaded(tmp_path):
    src = _tree(tmp_path / "src")
    tree = upload.scan(str(src), [".jpg"])
    tree.files.append((str(src / "a" / "1.jpg"), "../../evil.jpg"))
    with pytest.raises(DataError, match="safe object key"):
        upload.upload(_store(tmp_path), "train", tree, workers=1)
    assert not (tmp_path / "evil.jpg").exists()


def test_prepare_from_a_folder_with_an_escaping_link_exits_2(tmp_path, capsys):
    secret = tmp_path / "private.jpg"
    secret.write_bytes(b"secret bytes")
    src = _tree(tmp_path / "src")
    os.symlink(secret, src / "b" / "leak.jpg")
    path = _cfg(tmp_path, dataset={"extensions": [".jpg"]})
    assert main(["prepare", "--config", path, "--from", str(src)]) == 2
    err = capsys.readouterr().err
    assert "--from" in err and "outside" in err and "Traceback" not in err
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*.jpg"))
