"""The probe over files of many samples (``dataset.format``): the request units a loader worker
sends (random: a ranged GET per sample; sequential: a GET per file), the dataset's figures, the
format's decode, and the model's view (files read whole: requests of many samples)."""

from __future__ import annotations

import numpy as np
import pytest

from dnnbench.config.loading import load_config
from dnnbench.formats.base import FileSpec
from dnnbench.formats.npz import NpzFormat
from dnnbench.formats.read import decode_spec
from dnnbench.predict import files, probe as probe_mod
from dnnbench.predict.model import Point, fill_samples, terms
from dnnbench.storage.factory import create_storage
from tests.unit.test_predict_model import probe

COUNTS = (3, 4, 5, 2, 6)  # samples per file
SHAPE = (6, 5)  # uint8: 30 bytes a sample


@pytest.fixture
def npz_config(tmp_path):
    fmt = NpzFormat()
    for i, n in enumerate(COUNTS):
        path = tmp_path / "data" / "train" / f"img_{i}_of_5.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(fmt.generate(np.random.default_rng(i), FileSpec(n, SHAPE)))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"storage: {{client: fs, root: {tmp_path}, prefixes: [data]}}\n"
                   "dataset: {format: npz, layout: dlio, decode: none}\ntraining: {trainer: read}\n")
    return cfg


def test_random_access_requests_each_samples_range(npz_config):
    loaded = load_config(npz_config, [])
    storage = create_storage(loaded.config.storage)
    units, facts = files.open_files(loaded, storage)
    assert len(units) == sum(COUNTS) and facts["samples"] == sum(COUNTS) and facts["requests"] == sum(COUNTS)
    assert facts["access"] == "random" and facts["fs"] is True
    assert all(isinstance(u, tuple) and len(u) == 3 for u in units)
    assert facts["bytes"] == sum(u[2] for u in units)
    fmt = NpzFormat()
    key, offset, length = units[4]  # the second file's second sample
    data = probe_mod.fetch(storage, units[4])
    assert len(data) == length
    rec = facts["files"].records
    sample, _ = fmt.read_sample(data, rec.metas[1], 1, decode_spec(loaded.config.dataset))
    assert np.asarray(sample).shape == SHAPE
    assert files.decode_seconds(loaded, storage, facts) > 0


@pytest.mark.parametrize("access,calls", [("random", 1 + sum(COUNTS)), ("sequential", 1 + 5)])
def test_the_first_unit_is_decoded_once_untimed_then_every_unit_timed(npz_config, monkeypatch, access, calls):
    loaded = load_config(npz_config, [f"dataset.access={access}"])
    storage = create_storage(loaded.config.storage)
    _, facts = files.open_files(loaded, storage)
    seen: list[str] = []

    class Counting(NpzFormat):
        def read_sample(self, *a, **k):
            seen.append("sample")
            return super().read_sample(*a, **k)

        def read_file(self, *a, **k):
            seen.append("file")
            return super().read_file(*a, **k)

    monkeypatch.setattr("dnnbench.formats.read.make_format", lambda dataset: Counting())
    assert files.decode_seconds(loaded, storage, facts) > 0
    # random: the first of the spread samples again, then all 20 (fewer than DECODE_SAMPLES);
    # sequential: the first file again, then the 5 files (fewer than DECODE_FILES)
    assert len(seen) == calls


def test_sequential_access_requests_whole_files(npz_config):
    loaded = load_config(npz_config, ["dataset.access=sequential"])
    storage = create_storage(loaded.config.storage)
    units, facts = files.open_files(loaded, storage)
    assert units == [f"data/train/img_{i}_of_5.npz" for i in range(5)]
    assert facts["access"] == "files" and facts["requests"] == 5 and facts["samples"] == sum(COUNTS)
    assert facts["bytes"] == sum(len(probe_mod.fetch(storage, u)) for u in units) and facts["hold"] is True
    assert files.decode_seconds(loaded, storage, facts) > 0
    off = load_config(npz_config, ["dataset.access=sequential", "dataset.sample_shuffle=off"])
    assert files.open_files(off, storage)[1]["hold"] is False
    capped = load_config(npz_config, ["dataset.max_samples=2"])  # max_samples counts files, as a run's
    assert files.open_files(capped, storage)[1]["samples"] < sum(COUNTS)


def test_a_file_that_is_not_of_the_format_is_named(npz_config, tmp_path):
    from dnnbench.errors import DataError

    (tmp_path / "data" / "train" / "img_9_of_5.npz").write_bytes(b"not a zip")
    loaded = load_config(npz_config, [])
    with pytest.raises(DataError, match="img_9_of_5.npz is not a npz file"):
        files.open_files(loaded, create_storage(loaded.config.storage))
    skip = load_config(npz_config, ["dataset.on_error=skip"])
    assert files.open_files(skip, create_storage(skip.config.storage))[1]["samples"] == sum(COUNTS)


def test_files_read_whole_are_requests_of_many_samples_held_until_a_batch():
    p = probe(access="files", samples=100, requests=10, samples_per_request=10.0, shuffle_buffer=1)
    assert fill_samples(p, Point(workers=1, batch_size=32)) == 40  # 4 files held, then a batch
    assert fill_samples(p, Point(workers=8, batch_size=32)) == pytest.approx(100 / 8)  # no more than its files
    assert fill_samples(probe(access="files", samples=100, requests=10, samples_per_request=10.0),
                        Point(workers=1, batch_size=32)) == 32  # not held: a batch
    # a worker with no file reads nothing: 10 files, 10 readers at most
    assert terms(p, Point(workers=50))["little"] == pytest.approx(10 * 10 / 0.010)


def test_the_calibration_of_files_ends_as_an_epoch_of_them_ends(npz_config, tmp_path):
    rand = load_config(npz_config, [])
    over = probe_mod.calibration_overrides(rand, tmp_path, 1)
    assert "training.max_steps=10" in over  # the sampler stops at 320 samples: every worker runs out
    assert not any(o.startswith("dataset.max_samples") for o in over)  # it would count files
    seq = load_config(npz_config, ["dataset.access=sequential"])
    assert "training.max_steps=null" in probe_mod.calibration_overrides(seq, tmp_path, 1, epoch_samples=20)
    assert probe_mod.free_tail_batches(seq, 1, 20) == 0
