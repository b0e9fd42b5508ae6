"""``validate`` and ``--help`` stay light: they load neither the run engine nor pandas, torch,
tensorflow or any storage client library (checked by the modules a fresh process imported)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: third-party packages a run may need and validating a config must not
HEAVY = ("torch", "tensorflow", "pandas", "numpy", "cv2", "matplotlib", "pyarrow", "h5py", "psutil", "boto3",
         "botocore", "s3fs", "minio", "s3torchconnector", "filelock")
#: the dnnbench modules these commands may load: the CLI, the config and its plugin names,
#: a sweep's plan, the console, the backend table and the column catalogue (declarations);
#: nothing that runs, records or reports
ALLOWED = ("dnnbench", "dnnbench.cli", "dnnbench.errors", "dnnbench.signals", "dnnbench.events",
           "dnnbench.registry", "dnnbench.frameworks", "dnnbench.config", "dnnbench.config.",
           "dnnbench.multirun", "dnnbench.multirun.plan", "dnnbench.ui", "dnnbench.ui.",
           "dnnbench.storage", "dnnbench.storage.backends", "dnnbench.reporting", "dnnbench.reporting.columns",
           "dnnbench.checkpoint", "dnnbench.checkpoint.sizes",  # the checkpoint presets: pure arithmetic
           "dnnbench.formats", "dnnbench.formats.spec")

PROBE = """
import contextlib, io, json, runpy, sys
out, sys.argv = sys.argv[1], ["benchmark.py", *sys.argv[2:]]
code = 0
with contextlib.redirect_stdout(io.StringIO()):
    try:
        runpy.run_path("benchmark.py", run_name="__main__")
    except SystemExit as e:
        code = e.code
with open(out, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


def imported(tmp_path: Path, *args: str) -> tuple[int, list[str]]:
    """Run ``benchmark.py ARGS`` in a fresh interpreter; its exit code and every module it imported."""
    out = tmp_path / "modules.json"
    p = subprocess.run([sys.executable, "-c", PROBE, str(out), *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert out.is_file(), p.stderr
    doc = json.loads(out.read_text())
    return doc["code"], doc["modules"]


def engine(modules: list[str]) -> list[str]:
    """The dnnbench modules outside ``ALLOWED`` (a prefix ending in a dot allows a package's modules)."""
    return [m for m in modules if m.startswith("dnnbench") and not any(
        m == a or (a.endswith(".") and m.startswith(a)) for a in ALLOWED)]


def heavy(modules: list[str]) -> list[str]:
    return sorted({m.split(".")[0] for m in modules} & set(HEAVY))


@pytest.mark.parametrize("args", [
    ["validate", "--config", "config/quickstart.yaml"],
    ["validate", "--config", "config/sweep-ci.yaml"],  # a sweep: every variant planned and checked
    ["validate", "--config", "tests/data/dss/choice-layout.json"],  # a legacy layout, with its notice
    ["validate", "--config", "config/workloads/dlio/mlperf-v2.0/unet3d_h100.yaml"],  # a DLIO workload, translated
    ["validate", "--config", "config/workloads/resnet50_h100.yaml"],  # a preset in dnnbench's schema
    ["--help"],
    ["run", "--help"],
    ["predict", "--help"],
])
def test_validate_and_help_load_no_run_engine_and_no_heavy_library(tmp_path, args):
    code, modules = imported(tmp_path, *args)
    assert code == 0
    assert heavy(modules) == [] and engine(modules) == []


def test_validating_a_data_format_loads_only_the_format_table(tmp_path):
    """dataset.format and its options are checked against the format's options model without
    importing the format (numpy, h5py, pyarrow stay out)."""
    cfg = tmp_path / "npz.yaml"
    cfg.write_text("storage: {client: fs, root: data}\ntraining: {trainer: read}\n"
                   "dataset: {format: hdf5, format_options: {dataset: x}, layout: dlio, file_shuffle: seed}\n")
    code, modules = imported(tmp_path, "validate", "--config", str(cfg))
    assert code == 0
    assert heavy(modules) == [] and engine(modules) == []
    cfg.write_text("storage: {client: fs, root: data}\ndataset: {format: hdf5, format_options: {dataset: ''}}\n")
    code, modules = imported(tmp_path, "validate", "--config", str(cfg))
    assert code == 2 and heavy(modules) == []


def test_a_plain_validate_prints_without_rich(tmp_path):
    """The config goes to stdout as plain YAML: rich (the console UI) is loaded only for
    notices, warnings and errors."""
    code, modules = imported(tmp_path, "validate", "--config", "config/quickstart.yaml")
    assert code == 0 and "rich" not in modules and "dnnbench.ui" not in modules


def test_the_probe_sees_what_other_commands_load(tmp_path):
    """The checks above can fail: ``compare`` loads pandas and the reporting modules, and a
    bad config's error is drawn by rich."""
    code, modules = imported(tmp_path, "compare", "--results", str(tmp_path), "--no-plots")
    assert code == 2 and "pandas" in heavy(modules) and "dnnbench.reporting.compare" in engine(modules)
    code, modules = imported(tmp_path, "validate", "--config", "config/nosuch.yaml")
    assert code == 2 and "rich" in modules
