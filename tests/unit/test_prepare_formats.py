"""``benchmark.py prepare`` of format datasets: DLIO's size model, the three layouts, the
integrity marks, validation of the prepare keys (issue 14.4)."""

from __future__ import annotations

import io
import json

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from dnnbench.config.loading import LoadedConfig, validate
from dnnbench.errors import ConfigError
from dnnbench.events import NullEvents
from dnnbench.formats.sizes import SizeModel, dlio_shapes
from dnnbench.run.prepare import prepare_dataset


def loaded(root, prepare: dict, dataset: dict | None = None, prefixes=("ds",)) -> LoadedConfig:
    cfg = validate({"storage": {"root": str(root), "prefixes": list(prefixes)}, "prepare": prepare,
                    "dataset": dataset or {}})
    return LoadedConfig(cfg, None, [])


def files(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_dlio_layout_names_sizes_and_empty_valid(tmp_path):
    p = {"format": "npy", "layout": "dlio", "num_files": 12, "samples_per_file": 2, "record_length_bytes": 4096,
         "record_length_bytes_stdev": 1024}
    stats = prepare_dataset(loaded(tmp_path, p), NullEvents())
    names = files(tmp_path)
    assert names == ["ds/.dnnbench-prepare.json"] + [f"ds/train/img_{i:02d}_of_12.npy" for i in range(12)]
    assert (tmp_path / "ds/valid").is_dir() and not any((tmp_path / "ds/valid").iterdir())
    shapes = dlio_shapes(SizeModel(4096, 1024, 2, 12))
    for i, (d1, d2) in enumerate(shapes):  # the arrays DLIO's size model draws, samples first by default
        assert np.load(tmp_path / f"ds/train/img_{i:02d}_of_12.npy").shape == (2, d1, d2)
    assert stats.images == 12 and stats.bytes == sum(2 * d1 * d2 + 128 for d1, d2 in shapes)
    assert json.loads((tmp_path / "ds/.dnnbench-prepare.json").read_text())["kind"] == "generated"


def test_dlio_npz_takes_the_dataset_format_options_and_subfolders(tmp_path):
    p = {"format": "npz", "layout": "dlio", "num_files": 3, "samples_per_file": 4, "record_length_bytes": 100,
         "num_subfolders": 2}
    prepare_dataset(loaded(tmp_path, p, {"format": "npz", "format_options": {"sample_axis": "last"}}), NullEvents())
    assert files(tmp_path)[1:] == ["ds/train/0/img_0_of_3.npz", "ds/train/0/img_2_of_3.npz",
                                   "ds/train/1/img_1_of_3.npz"]
    with np.load(tmp_path / "ds/train/1/img_1_of_3.npz") as z:  # DLIO's x: (dim1, dim2, n), y zeros
        assert z["x"].shape == (10, 10, 4) and z["y"].tolist() == [0] * 4


def test_classes_layout_labels_files_by_folder(tmp_path):
    p = {"format": "hdf5", "classes": 2, "num_files": 5, "samples_per_file": 3, "record_length_bytes": 64}
    prepare_dataset(loaded(tmp_path, p), NullEvents())
    assert files(tmp_path)[1:] == ["ds/class_000/000000.hdf5", "ds/class_000/000001.hdf5", "ds/class_000/000002.hdf5",
                                   "ds/class_001/000000.hdf5", "ds/class_001/000001.hdf5"]
    with h5py.File(tmp_path / "ds/class_001/000001.hdf5", "r") as f:
        assert f["records"].shape == (3, 8, 8) and f["labels"][()].tolist() == [1, 1, 1]


def test_flat_layout_parquet_and_tfrecord_index(tmp_path):
    prepare_dataset(loaded(tmp_path, {"format": "parquet", "layout": "flat", "num_files": 2, "samples_per_file": 5,
                                      "record_length_bytes": 49}, prefixes=("p",)), NullEvents())
    assert files(tmp_path)[1:] == ["p/img_0_of_2.parquet", "p/img_1_of_2.parquet"]
    assert pq.read_table(tmp_path / "p/img_1_of_2.parquet").num_rows == 5
    prepare_dataset(loaded(tmp_path / "t", {"format": "tfrecord", "layout": "dlio", "num_files": 1,
                                            "samples_per_file": 3}, prefixes=("t",)), NullEvents())
    assert files(tmp_path / "t")[1:] == ["t/index/train/img_0_of_1.tfrecord.idx", "t/train/img_0_of_1.tfrecord"]


@pytest.mark.parametrize("fmt, ext", [("jpeg", "jpeg"), ("png", "png"), ("raw", "bin"), ("tar", "tar")])
def test_every_other_format_prepares(tmp_path, fmt, ext):
    spf = 2 if fmt == "tar" else 1
    prepare_dataset(loaded(tmp_path, {"format": fmt, "layout": "dlio", "num_files": 2, "samples_per_file": spf,
                                      "record_length_bytes": 256}), NullEvents())
    assert files(tmp_path)[1:] == [f"ds/train/img_0_of_2.{ext}", f"ds/train/img_1_of_2.{ext}"]


def test_same_config_same_bytes_whatever_the_workers(tmp_path):
    p = {"format": "tfrecord", "layout": "flat", "num_files": 5, "samples_per_file": 3, "record_length_bytes": 500,
         "record_length_bytes_stdev": 200}
    for workers in (1, 3):
        prepare_dataset(loaded(tmp_path / str(workers), {**p, "workers": workers}), NullEvents())
    one, three = files(tmp_path / "1"), files(tmp_path / "3")
    assert one == three and len(one) == 11
    assert all((tmp_path / "1" / f).read_bytes() == (tmp_path / "3" / f).read_bytes() for f in one)
    prepare_dataset(loaded(tmp_path / "s", {**p, "seed": 9}), NullEvents())
    assert (tmp_path / "s/ds/img_0_of_5.tfrecord").read_bytes() != (tmp_path / "1/ds/img_0_of_5.tfrecord").read_bytes()


def test_other_parameters_are_refused_and_force_drops_the_old_files(tmp_path):
    p = {"format": "tfrecord", "layout": "dlio", "num_files": 3, "samples_per_file": 2, "record_length_bytes": 64}
    prepare_dataset(loaded(tmp_path, p), NullEvents())
    assert prepare_dataset(loaded(tmp_path, p), NullEvents()) is None  # present, same parameters
    with pytest.raises(ConfigError) as e:
        prepare_dataset(loaded(tmp_path, {**p, "num_files": 2}), NullEvents())
    assert "num_files: 3 -> 2" in e.value.message and e.value.reference == "prepare"
    prepare_dataset(loaded(tmp_path, {**p, "num_files": 2}), NullEvents(), force=True)
    assert files(tmp_path)[1:] == ["ds/index/train/img_0_of_2.tfrecord.idx", "ds/index/train/img_1_of_2.tfrecord.idx",
                                   "ds/train/img_0_of_2.tfrecord", "ds/train/img_1_of_2.tfrecord"]


def test_data_dnnbench_did_not_write_is_left_alone(tmp_path):
    (tmp_path / "ds/train").mkdir(parents=True)
    (tmp_path / "ds/train/img_0_of_1.npz").write_bytes(b"theirs")
    assert prepare_dataset(loaded(tmp_path, {"format": "npz", "layout": "dlio", "num_files": 1}), NullEvents()) is None
    assert files(tmp_path) == ["ds/train/img_0_of_1.npz"] and (tmp_path / "ds/train/img_0_of_1.npz").read_bytes() == b"theirs"


@pytest.mark.parametrize("prepare, field", [({"format": "xls"}, "prepare.format"),
                                            ({"format": "jpg", "samples_per_file": 4}, "samples_per_file"),
                                            ({"format": "npz", "num_subfolders": 3}, "num_subfolders"),
                                            ({"format": "npz", "layout": "tree"}, "prepare.layout"),
                                            ({"format": "npz", "record_length_bytes_stdev": -1},
                                             "prepare.record_length_bytes_stdev")])
def test_bad_prepare_keys_are_named(prepare, field):
    with pytest.raises(ConfigError) as e:
        validate({"storage": {"root": "d"}, "prepare": prepare})
    assert field in str(e.value) + " ".join(e.value.details)


def test_image_folders_stay_todays(tmp_path):
    prepare_dataset(loaded(tmp_path, {"format": "png", "classes": 2, "images_per_class": 2}), NullEvents())
    assert files(tmp_path)[1:] == ["ds/class_000/000000.png", "ds/class_000/000001.png",
                                   "ds/class_001/000000.png", "ds/class_001/000001.png"]
    assert json.loads((tmp_path / "ds/.dnnbench-prepare.json").read_text())["kind"] == "synthetic"
