"""A DLIO workload YAML runs unchanged on data in DLIO's layout, written the way DLIO 2.0's
generators write it (issue 15.2): exact samples and bytes, the AU target in summary.csv; and
dnnbench's ``prepare`` for a DLIO workload writes DLIO's names, shapes and containers."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import yaml

from dnnbench.cli import main

SHAPES = [(40, 30), (24, 50), (33, 33)]  # one (dim1, dim2) per file, as DLIO's size draw gives them
PER_FILE, EPOCHS = 2, 2


def dlio_npz(folder: Path, subfolders: int) -> list[int]:
    """DLIO 2.0's npz generator: ``np.savez(x=uint8 (d1, d2, n), y=[0]*n)``, names img_<i>_of_<N>; the sizes."""
    sizes = []
    for i, (d1, d2) in enumerate(SHAPES):
        sub = folder / "train" / (str(i % subfolders) if subfolders > 1 else "")
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"img_{i}_of_{len(SHAPES)}.npz"
        np.savez(path, x=np.random.default_rng(i).integers(0, 255, (d1, d2, PER_FILE), dtype=np.uint8),
                 y=[0] * PER_FILE)
        sizes.append(path.stat().st_size)
    (folder / "valid").mkdir()
    return sizes


def dlio_hdf5(folder: Path, subfolders: int) -> list[int]:
    """DLIO 2.0's hdf5 generator: dataset ``records`` uint8 (n, d1, d2) contiguous, ``labels`` int64 (n,);
    the bytes of one sample each."""
    import h5py

    for i, (d1, d2) in enumerate(SHAPES):
        sub = folder / "train" / (str(i % subfolders) if subfolders > 1 else "")
        sub.mkdir(parents=True, exist_ok=True)
        with h5py.File(sub / f"img_{i}_of_{len(SHAPES)}.hdf5", "w") as f:
            f.create_dataset("records", data=np.full((PER_FILE, d1, d2), i, dtype=np.uint8))
            f.create_dataset("labels", data=np.zeros(PER_FILE, dtype=np.int64))
    (folder / "valid").mkdir()
    return [d1 * d2 for d1, d2 in SHAPES]


def workload(tmp_path: Path, fmt: str, subfolders: int) -> Path:
    doc = {"model": "tiny", "framework": "pytorch",
           "workflow": {"generate_data": False, "train": True},
           "dataset": {"data_folder": str(tmp_path / "data"), "format": fmt, "num_files_train": len(SHAPES),
                       "num_samples_per_file": PER_FILE, "record_length": 1200,
                       "num_subfolders_train": subfolders},
           "reader": {"data_loader": "pytorch", "batch_size": 2, "read_threads": 0, "sample_shuffle": "seed"},
           "train": {"epochs": EPOCHS, "computation_time": 0.001},
           "metric": {"au": 0.5}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("fmt, subfolders", [("npz", 0), ("hdf5", 2)])
def test_dlio_dataset_read_with_exact_samples_and_bytes(tmp_path, fmt, subfolders):
    sizes = (dlio_npz if fmt == "npz" else dlio_hdf5)(tmp_path / "data", subfolders)
    out = tmp_path / "results"
    assert main(["-q", "--config", str(workload(tmp_path, fmt, subfolders)),
                 "--set", f"metrics.output_dir={out}"]) == 0
    (row,) = list(csv.DictReader((out / "summary.csv").open()))
    assert row["status"] == "ok" and row["trainer"] == "emulate"
    assert int(row["samples"]) == EPOCHS * PER_FILE * len(SHAPES) and int(row["steps"]) == EPOCHS * len(SHAPES)
    # npz: samples on the last axis are strided, so each sample reads its whole file (as DLIO's np.load does);
    # hdf5: each sample is its own byte range of the contiguous dataset (DLIO's records[i])
    assert int(row["bytes"]) == EPOCHS * PER_FILE * sum(sizes)
    assert float(row["au_target_percent"]) == 50.0
    assert row["au_meets_target"] == ("true" if float(row["au_percent"]) >= 50.0 else "false")


@pytest.mark.slow
def test_prepare_for_a_dlio_workload_writes_what_dlio_reads(tmp_path):
    path = workload(tmp_path, "npz", 0)
    doc = yaml.safe_load(path.read_text())
    doc["dataset"].update(num_files_train=12, num_samples_per_file=3, record_length=4096, record_length_stdev=1024)
    path.write_text(yaml.safe_dump(doc))
    assert main(["-q", "prepare", "--config", str(path), "--set", f"metrics.output_dir={tmp_path / 'r'}"]) == 0
    data = tmp_path / "data"
    names = sorted(p.name for p in (data / "train").iterdir())
    assert names == sorted(f"img_{i:02d}_of_12.npz" for i in range(12)) and (data / "valid").is_dir()
    # DLIO's seed-10 draw of the sides: dim = int(sqrt(4096)) = 64, stdev per side 1024 / 2 / 64 = 8
    np.random.seed(10)
    dims = [max(int(d), 1) for d in np.random.normal(64, 8.0, 2 * 12)]
    for i in range(12):
        with np.load(data / "train" / f"img_{i:02d}_of_12.npz") as z:
            assert z["x"].shape == (dims[2 * i], dims[2 * i + 1], 3) and z["x"].dtype == np.uint8
            assert z["y"].shape == (3,) and z["y"].dtype == np.int64
