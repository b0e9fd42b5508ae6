"""DLIO's size model, file naming and the parallel generator (exact shapes, names, bytes)."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from dnnbench.formats import parquet, tfrecord
from dnnbench.formats.example_proto import decode_example
from dnnbench.formats.generate import format_builder, generate, make_split_folders
from dnnbench.formats.spec import ParquetOptions
from dnnbench.formats.sizes import SizeModel, dlio_shapes, file_name, plan, split_keys
from dnnbench.config.schema import StorageConfig
from dnnbench.storage.fs import FileSystemStorage

def fs(root: str) -> FileSystemStorage:
    return FileSystemStorage(StorageConfig(root=root))


# what DLIO 2.0.0 wrote (notes/dlio.md §5, /tmp/dliorun): unet3d_small, record_length 1 MiB, stdev 512 KiB, 16 files
DLIO_UNET3D_SMALL_SHAPES = [(1364, 1207), (628, 1021), (1183, 839), (1091, 1051), (1025, 979), (1134, 1331),
                            (776, 1287), (1082, 1137), (733, 1058), (1404, 747), (517, 577), (1092, 1634),
                            (1311, 1452), (1049, 1381), (954, 1180), (955, 883)]


def test_shapes_are_dlios_seed_10_draw():
    model = SizeModel(record_length=1048576, record_length_stdev=524288, num_files=16)
    assert dlio_shapes(model) == DLIO_UNET3D_SMALL_SHAPES


def test_shapes_without_stdev_are_the_nominal_side():
    model = SizeModel(record_length=114660.07, num_files=4, num_files_eval=2)
    assert model.dimension == 338 and dlio_shapes(model) == [(338, 338)] * 6


def test_valid_files_follow_train_in_the_draw():
    both = SizeModel(record_length=1048576, record_length_stdev=524288, num_files=10, num_files_eval=6)
    specs = plan(both, "data", "npz")
    assert [(s.dim1, s.dim2) for s in specs] == DLIO_UNET3D_SMALL_SHAPES
    assert [s.split for s in specs] == ["train"] * 10 + ["valid"] * 6
    assert specs[10].key == "data/valid/img_0_of_6.npz" and specs[10].number == 0 and specs[10].position == 10


@pytest.mark.parametrize("i, n, name", [(0, 168, "img_000_of_168.npz"), (167, 168, "img_167_of_168.npz"),
                                        (3, 16, "img_03_of_16.npz"), (0, 4, "img_0_of_4.npz"),
                                        (9, 10, "img_09_of_10.npz")])
def test_file_names_pad_like_dlio(i, n, name):
    assert file_name("img", i, n, "npz") == name


def test_subfolders_round_robin_with_padding():
    keys = split_keys("d", "train", 12, 10, "img", "hdf5")
    assert keys[0] == "d/train/00/img_00_of_12.hdf5"
    assert keys[9] == "d/train/09/img_09_of_12.hdf5"
    assert keys[10] == "d/train/00/img_10_of_12.hdf5"
    assert split_keys("", "train", 2, 1, "x", "npy") == ["train/x_0_of_2.npy", "train/x_1_of_2.npy"]


def test_random_samples_are_per_file_and_reproducible():
    a, b = plan(SizeModel(record_length=100, num_samples_per_file=3, num_files=2), "", "raw", seed=5)
    assert a.random_samples().shape == (3, 10, 10)
    assert (a.random_samples() == a.random_samples()).all()
    assert not (a.random_samples() == b.random_samples()).all()
    other_seed = plan(SizeModel(record_length=100, num_samples_per_file=3, num_files=2), "", "raw", seed=6)[0]
    assert not (a.random_samples() == other_seed.random_samples()).all()


def digest(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_tfrecord_files_match_dlios_sizes_and_index(tmp_path):
    # DLIO's resnet_small: 50 records of 338 x 338 per file: 5,715,150 bytes, index lines "k*114303 114303"
    model = SizeModel(record_length=114660.07, num_samples_per_file=50, num_files=4, num_files_eval=2)
    specs = plan(model, "resnet", "tfrecord")
    stats = generate(fs(str(tmp_path)), specs, format_builder(tfrecord.TfrecordFormat()), workers=2)
    assert stats.files == 6 and stats.samples == 300
    data = (tmp_path / "resnet/train/img_0_of_4.tfrecord").read_bytes()
    idx = (tmp_path / "resnet/index/train/img_0_of_4.tfrecord.idx").read_bytes()
    assert len(data) == 5_715_150
    assert idx == "".join(f"{k * 114303} 114303\n" for k in range(50)).encode()
    assert (tmp_path / "resnet/index/valid/img_1_of_2.tfrecord.idx").is_file()
    assert stats.bytes == 6 * (len(data) + len(idx))
    records = [d for _, d in tfrecord.iter_records(data)]
    ex = decode_example(records[7])
    assert set(ex) == {"image", "size"} and ex["size"] == [338] and len(ex["image"]) == 338 * 338
    assert bytes(ex["image"]) == specs[0].random_samples()[7].tobytes()


def test_same_bytes_whatever_the_thread_count(tmp_path):
    model = SizeModel(record_length=4000, record_length_stdev=2000, num_samples_per_file=5, num_files=7)
    for workers in (1, 4):
        generate(fs(str(tmp_path / f"w{workers}")), plan(model, "", "parquet", seed=3),
                 format_builder(parquet.ParquetFormat(ParquetOptions(row_group_size=2))), workers=workers)
    assert digest(tmp_path / "w1") == digest(tmp_path / "w4") and len(digest(tmp_path / "w1")) == 7


def test_progress_and_stats(tmp_path):
    calls = []
    specs = plan(SizeModel(record_length=256, num_samples_per_file=4, num_files=3), "p", "parquet")
    stats = generate(fs(str(tmp_path)), specs, format_builder(parquet.ParquetFormat()), workers=2,
                     progress=lambda done, n: calls.append((done, n)))
    sizes = sorted(os.path.getsize(p) for p in (tmp_path / "p/train").iterdir())
    assert [d for d, _ in calls] == [1, 2, 3] and sorted(n for _, n in calls) == sizes
    assert stats.bytes == sum(sizes) and stats.samples == 12 and stats.seconds > 0
    assert stats.MB_per_s == pytest.approx(stats.bytes / 1e6 / stats.seconds)


def test_generated_parquet_rows(tmp_path):
    spec = plan(SizeModel(record_length=100, num_samples_per_file=5, num_files=1), "", "parquet")[0]
    (key, data), = format_builder(parquet.ParquetFormat(ParquetOptions(row_group_size=2)))(spec)
    import pyarrow.parquet as pq

    f = pq.ParquetFile(io.BytesIO(data))
    assert f.metadata.num_row_groups == 3
    assert f.read().column("image").to_pylist() == [s.tobytes() for s in spec.random_samples()]
    assert f.read().column("label").to_pylist() == [0] * 5


def test_split_folders_on_a_filesystem(tmp_path):
    storage = fs(str(tmp_path))
    assert make_split_folders(storage, "d") == [str(tmp_path / "d/train"), str(tmp_path / "d/valid")]
    assert (tmp_path / "d/valid").is_dir() and not any((tmp_path / "d/valid").iterdir())
