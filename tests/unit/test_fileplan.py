"""Files of many samples: the epoch plan (DLIO's file_shuffle / sample_shuffle, the split by rank
and worker) and byte accounting (a ranged read returns its range; a file read whole adds up to
its size; the plan's bytes are what the reads return)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from dnnbench.config.schema import StorageConfig
from dnnbench.data.index import SampleIndex
from dnnbench.data.records import RecordIndex, build_records
from dnnbench.formats.base import DecodeSpec, FileIndex, FileSpec
from dnnbench.formats.npz import NpzFormat
from dnnbench.formats.read import iter_file, read_record
from dnnbench.frameworks.fileplan import FilePlan, order_epoch
from dnnbench.storage.fs import FileSystemStorage

DECODE = DecodeSpec()


def plan(counts: list[int], file_shuffle: str = "off", sample_shuffle: str = "off", seed: int = 3) -> FilePlan:
    files = SampleIndex([f"f{i}" for i in range(len(counts))], np.zeros(len(counts), np.int64),
                        np.asarray([100 * c for c in counts], np.int64), ["unlabeled"])
    records = RecordIndex.from_files([FileIndex.strided(c, 10, 7) for c in counts])
    return FilePlan(files, records, SimpleNamespace(file_shuffle=file_shuffle, sample_shuffle=sample_shuffle), seed)


def test_order_modes():
    assert [order_epoch("off", 5), order_epoch("seed", 5), order_epoch("random", 5)] == [None, 0, 5]


def test_off_reads_files_and_samples_in_listing_order():
    p = plan([2, 3, 1])
    assert p.file_order(4).tolist() == [0, 1, 2]
    assert p.sample_order(4).tolist() == [0, 1, 2, 3, 4, 5]
    assert p.sample_rng(4, 1) is None


def test_file_shuffle_keeps_each_files_samples_together_in_file_order():
    p = plan([2, 3, 1, 4], file_shuffle="random")
    order = p.sample_order(1)
    files = p.records.file[order]
    assert sorted(order.tolist()) == list(range(10))
    runs = [f for i, f in enumerate(files.tolist()) if i == 0 or f != files[i - 1]]
    assert runs == p.file_order(1).tolist()  # file after file, in the file order
    assert all(np.all(np.diff(p.records.item[order][files == f]) == 1) for f in range(4))


def test_seed_is_one_order_for_every_epoch_random_a_new_one_each():
    seeded, fresh = plan([3] * 8, "seed", "seed"), plan([3] * 8, "random", "random")
    assert seeded.sample_order(0).tolist() == seeded.sample_order(7).tolist()
    assert seeded.sample_order(0).tolist() != list(range(24))
    assert fresh.sample_order(0).tolist() != fresh.sample_order(1).tolist()
    assert fresh.sample_order(1).tolist() == plan([3] * 8, "random", "random").sample_order(1).tolist()
    assert seeded.sample_rng(0, 2).permutation(5).tolist() == seeded.sample_rng(9, 2).permutation(5).tolist()


@pytest.mark.parametrize("world,workers", [(1, 1), (2, 1), (3, 2)])
def test_every_sample_and_file_read_once_per_epoch_across_ranks_and_workers(world, workers):
    p = plan([2, 3, 1, 4, 5], "random", "random")
    rows = np.concatenate([p.rank_samples(2, r, world) for r in range(world)])
    assert sorted(rows.tolist()) == list(range(15))
    assert sum(p.rank_sample_count(r, world) for r in range(world)) == 15
    files = np.concatenate([p.rank_files(2, r, world, w, workers) for r in range(world) for w in range(workers)])
    assert sorted(files.tolist()) == list(range(5))
    assert p.sample_bytes(rows) == 15 * 7 and p.file_bytes(files) == 100 * 15
    assert p.rank_samples(2, 0, 1, limit=4).tolist() == p.sample_order(2)[:4].tolist()


@pytest.fixture
def npz_files(tmp_path):
    """Three npz files (3, 4 and 5 samples of 6x5 uint8) under root/data/, and their storage."""
    fmt = NpzFormat()
    keys = []
    for i, n in enumerate((3, 4, 5)):
        key = f"data/f{i}.npz"
        (tmp_path / "data").mkdir(exist_ok=True)
        (tmp_path / key).write_bytes(fmt.generate(np.random.default_rng(i), FileSpec(n, (6, 5))))
        keys.append(key)
    storage = FileSystemStorage(StorageConfig(root=str(tmp_path)))
    sizes = np.asarray([(tmp_path / k).stat().st_size for k in keys], np.int64)
    return storage, fmt, keys, sizes


def test_index_then_ranged_reads_return_each_samples_bytes_and_array(npz_files, tmp_path):
    storage, fmt, keys, sizes = npz_files
    found, stats = build_records(storage, fmt, keys, sizes, workers=2)
    rec = RecordIndex.from_files(found)
    assert stats.samples == len(rec) == 12 and stats.unreadable == [] and stats.requests == 3
    assert stats.bytes == int(sizes.sum())  # each file is under one 64 KiB block: one ranged GET each
    assert rec.length.tolist() == [30] * 12 and not rec.whole(sizes).any()
    with np.load(tmp_path / keys[2]) as npz:
        expected = npz["x"][4]
    row = int(np.flatnonzero((rec.file == 2) & (rec.item == 4))[0])
    sample, label, nbytes, reason, _ = read_record(storage, fmt, keys[2], int(rec.offset[row]), int(rec.length[row]),
                                                   False, rec.metas[2], 4, DECODE)
    assert reason == "" and label is None and nbytes == 30
    np.testing.assert_array_equal(sample, expected)


def test_a_whole_file_read_is_its_size_split_over_its_samples(npz_files, tmp_path):
    storage, fmt, keys, sizes = npz_files
    got = list(iter_file(storage, fmt, keys[1], DECODE))
    assert len(got) == 4 and sum(n for _, _, n in got) == sizes[1]
    with np.load(tmp_path / keys[1]) as npz:
        np.testing.assert_array_equal(np.stack([s for s, _, _ in got]), npz["x"])
    shuffled = list(iter_file(storage, fmt, keys[1], DECODE, np.random.default_rng(0)))
    assert sum(n for _, _, n in shuffled) == sizes[1]
    assert sorted(s.tobytes() for s, _, _ in shuffled) == sorted(s.tobytes() for s, _, _ in got)


def test_a_file_that_is_not_of_the_format_is_named_not_indexed(npz_files, tmp_path):
    storage, fmt, keys, sizes = npz_files
    (tmp_path / "data" / "bad.npz").write_bytes(b"not a zip at all")
    found, stats = build_records(storage, fmt, [*keys, "data/bad.npz"], np.append(sizes, 16), workers=1)
    assert found[3] is None and stats.unreadable[0][0] == "data/bad.npz" and stats.samples == 12


def test_a_range_read_past_a_changed_file_is_a_failure_not_a_short_sample(npz_files):
    storage, fmt, keys, sizes = npz_files
    _, _, nbytes, reason, _ = read_record(storage, fmt, keys[0], int(sizes[0]) - 10, 30, False, None, 0, DECODE)
    assert nbytes == 0 and "asked for 30 bytes" in reason
