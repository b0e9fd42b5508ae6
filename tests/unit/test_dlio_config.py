"""DLIO / MLPerf Storage workload YAMLs are recognised and translated (issue 15.1, 15.3):
every shipped workload translates to the values DLIO would run, every key is honoured or
named in one notice, and a key that changes the workload and cannot be honoured is exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dnnbench import cli
from dnnbench.config import dlio_sections
from dnnbench.config.dlio import is_dlio, translate_dlio
from dnnbench.config.legacy import is_legacy
from dnnbench.config.loading import load_config, validate
from dnnbench.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
DLIO_DIR = ROOT / "config" / "workloads" / "dlio"
PRESETS = ROOT / "config" / "workloads"

# file: format, framework, batch, read threads, epochs, computation_time, AU %, file/sample shuffle,
#       files, samples per file, record length, checkpoint phase, train phase, generate
UNET = ("npz", "pytorch", 7, 4, 5, None, 90.0, "seed", "seed", 168, 1, 146600628, True, True, False)
RESNET = ("tfrecord", "tensorflow", 400, 8, 5, None, 90.0, "off", "off", 1024, 1251, 114660, False, True, False)
COSMO = ("tfrecord", "tensorflow", 1, 4, 5, None, 70.0, "seed", "seed", 524288, 1, 2828486, False, True, False)
TABLE = {
    "mlperf-v1.0/unet3d_a100.yaml": UNET[:5] + (0.636,) + UNET[6:],
    "mlperf-v1.0/unet3d_h100.yaml": UNET[:5] + (0.323,) + UNET[6:],
    "mlperf-v1.0/resnet50_a100.yaml": RESNET[:5] + (0.435,) + RESNET[6:],
    "mlperf-v1.0/resnet50_h100.yaml": RESNET[:5] + (0.224,) + RESNET[6:],
    "mlperf-v1.0/cosmoflow_a100.yaml": COSMO[:5] + (0.00551,) + COSMO[6:],
    "mlperf-v1.0/cosmoflow_h100.yaml": COSMO[:5] + (0.0035,) + COSMO[6:],
    "mlperf-v2.0/unet3d_a100.yaml": UNET[:5] + (0.636,) + UNET[6:],
    "mlperf-v2.0/unet3d_h100.yaml": UNET[:5] + (0.323,) + UNET[6:],
    "mlperf-v2.0/resnet50_a100.yaml": RESNET[:5] + (0.435,) + RESNET[6:],
    "mlperf-v2.0/resnet50_h100.yaml": RESNET[:5] + (0.224,) + RESNET[6:],
    "mlperf-v2.0/cosmoflow_a100.yaml": COSMO[:5] + (0.00551,) + COSMO[6:],
    "mlperf-v2.0/cosmoflow_h100.yaml": COSMO[:5] + (0.0035,) + COSMO[6:],
    # datagen: generate only (DLIO's defaults for the reader and train sections)
    "mlperf-v2.0/unet3d_datagen.yaml": ("npz", "pytorch", 1, 1, 1, 0.0, 90.0, "off", "off", 168, 1, 146600628,
                                        False, False, True),
    "mlperf-v2.0/resnet50_datagen.yaml": ("tfrecord", "tensorflow", 1, 1, 1, 0.0, 90.0, "off", "off", 1024, 1251,
                                          114660, False, False, True),
    "mlperf-v2.0/cosmoflow_datagen.yaml": ("tfrecord", "tensorflow", 1, 1, 1, 0.0, 90.0, "off", "off", 524288, 1,
                                           2828486, False, False, True),
}


def get(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node


@pytest.fixture
def writable(monkeypatch):
    """prepare writes every DLIO format (what the formats branch adds), so prepare.* is emitted."""
    monkeypatch.setattr(dlio_sections, "_prepare_writes", lambda fmt: True)


def test_every_shipped_dlio_workload_is_in_the_table():
    assert sorted(str(p.relative_to(DLIO_DIR)) for p in DLIO_DIR.rglob("*.yaml")) == sorted(TABLE)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_shipped_workload_translates(name, writable):
    (fmt, framework, batch, threads, epochs, compute, au, fshuf, sshuf, files, per_file, length,
     ckpt, train, generate) = TABLE[name]
    data = yaml.safe_load((DLIO_DIR / name).read_text())
    assert is_dlio(data) and not is_legacy(data)
    c = translate_dlio(data, source=name).config
    expected = {
        "dataset.format": fmt, "dataset.layout": "dlio", "framework.name": framework,
        "framework.batch_size": batch, "framework.num_workers": threads, "training.epochs": epochs,
        "training.trainer": "emulate", "training.compute_time_s": compute, "training.warmup_steps": 1,
        "training.au_target_percent": au, "dataset.file_shuffle": fshuf, "dataset.sample_shuffle": sshuf,
        "dataset.max_samples": files * per_file, "prepare.format": fmt, "prepare.layout": "dlio",
        "prepare.num_files": files, "prepare.samples_per_file": per_file, "prepare.record_length_bytes": length,
        "execution.phases.checkpoint": ckpt, "execution.phases.train": train, "prepare.auto": generate,
        "storage.client": "fs", "execution.seed": 123,
    }
    assert {k: get(c, k) for k in expected} == expected
    if fmt == "npz":  # DLIO's x[..., i]
        assert get(c, "dataset.format_options") == {"sample_axis": "last"}
    else:
        assert "format_options" not in c["dataset"]
    assert get(c, "storage.root").rstrip("/").endswith("data/" + name.split("/")[1].split("_")[0])


def test_unet3d_checkpoint_is_one_checkpoint_after_the_last_epoch(writable):
    data = yaml.safe_load((DLIO_DIR / "mlperf-v1.0/unet3d_h100.yaml").read_text())
    c = translate_dlio(data).config
    # model_size + DLIO 2.0's default layer file (17371 + 24740228 int8 parameters)
    assert c["checkpoint"] == {"prefix": "checkpoints/unet3d",
                               "size_MiB": round((499153191 + 17371 + 24740228) / 2**20, 3)}
    # scaled to fewer epochs than checkpoint_after_epoch: DLIO writes none, neither does dnnbench
    data["train"]["epochs"] = 2
    assert translate_dlio(data).config["execution"]["phases"]["checkpoint"] is False


def test_load_translates_applies_hydra_overrides_then_dnnbench_overrides(tmp_path):
    src = DLIO_DIR / "mlperf-v1.0/unet3d_h100.yaml"
    loaded = load_config(src, ["++workload.dataset.num_files_train=16", "++workload.train.epochs=1",
                               "~workload.dataset.record_length_resize", "++workload.workflow.checkpoint=False",
                               "++hydra.run.dir=/tmp/x", "framework.batch_size=2"])
    cfg = loaded.config
    assert cfg.dataset.max_samples == 16 and cfg.training.epochs == 1 and cfg.framework.batch_size == 2
    assert cfg.training.trainer == "emulate" and cfg.training.compute_time_s == 0.323
    assert cfg.training.au_target_percent == 90.0 and cfg.name == "unet3d"
    assert cfg.execution.phases.checkpoint is False
    (notice,) = loaded.notices
    assert "DLIO workload recognised" in notice and "++hydra.run.dir (Hydra's own setting" in notice
    assert "record_length_resize" not in notice and "checkpoint.model_size (no checkpoint is written)" in notice
    assert "train.epochs=1 -> training.epochs=1" in loaded.translation


def test_hydra_composed_form_and_plus_on_an_existing_key(tmp_path):
    wrapped = {"workload": yaml.safe_load((DLIO_DIR / "mlperf-v1.0/resnet50_h100.yaml").read_text()),
               "hydra": {"run": {"dir": "x"}}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(wrapped))
    assert load_config(path, ["++workload.reader.batch_size=8"]).config.framework.batch_size == 8
    with pytest.raises(ConfigError, match=r"\+ only adds"):
        load_config(path, ["+workload.reader.batch_size=8"])


def test_hydra_primary_config_is_refused_with_a_hint(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("defaults:\n - _self_\n - workload: default\nhydra:\n  run:\n    dir: x\n")
    with pytest.raises(ConfigError, match="Hydra's primary config") as e:
        load_config(path)
    assert "workload file" in e.value.hint


def test_unknown_and_unused_keys_are_named_in_one_notice(tmp_path):
    data = yaml.safe_load((DLIO_DIR / "mlperf-v1.0/unet3d_h100.yaml").read_text())
    data["dataset"]["frobnicate"] = 3
    data["reader"]["transfer_size"] = 262144
    data["mystery"] = {"a": 1}
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(data))
    (notice,) = load_config(path).notices
    assert "dataset.frobnicate (not a DLIO key: DLIO ignores it too)" in notice
    assert "reader.transfer_size (TFRecordDataset's buffer" in notice
    assert "mystery (not a DLIO section" in notice


REFUSED = [
    ({"dataset": {"format": "csv"}}, "dataset.format"),
    ({"dataset": {"format": "parquet"}}, "dataset.format"),
    ({"reader": {"data_loader": "dali"}}, "reader.data_loader"),
    ({"framework": "tensorflow"}, "reader.data_loader"),
    ({"workflow": {"evaluation": True}}, "workflow.evaluation"),
    ({"train": {"computation_time_stdev": 0.1}}, "train.computation_time_stdev"),
    ({"train": {"computation_time": {"mean": 0.3, "stdev": 0.1}}}, "train.computation_time.stdev"),
    ({"reader": {"preprocess_time": 0.01}}, "reader.preprocess_time"),
    ({"reader": {"odirect": True}}, "reader.odirect"),
    ({"reader": {"reader_classname": "my.Reader"}}, "reader.reader_classname"),
    ({"checkpoint": {"steps_between_checkpoints": 10}}, "checkpoint.steps_between_checkpoints"),
    ({"checkpoint": {"checkpoint_after_epoch": 1, "epochs_between_checkpoints": 2}},
     "checkpoint.epochs_between_checkpoints"),
    ({"storage": {"storage_type": "parallel_fs"}}, "storage.storage_type"),
    ({"dataset": {"num_subfolders_train": 1}}, "dataset.num_subfolders_train"),
    ({"dataset": {"format": "hdf5", "compression": "gzip"}}, "dataset.compression"),
    ({"dataset": {"enable_chunking": True}}, "dataset.enable_chunking"),
    ({"dataset": {"record_dims": [4, 4]}}, "dataset.record_dims"),
    ({"reader": {"sample_shuffle": "sometimes"}}, "reader.sample_shuffle"),
    ({"workflow": {"train": False, "generate_data": False, "checkpoint": True}}, "workflow.checkpoint"),
]


def merged(base: dict, change: dict) -> dict:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for k, v in change.items():
        out[k] = {**out[k], **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.mark.parametrize("change, key", REFUSED, ids=[k for _, k in REFUSED])
def test_a_key_that_cannot_be_honoured_is_exit_2_naming_it(change, key, tmp_path, capsys):
    base = yaml.safe_load((DLIO_DIR / "mlperf-v1.0/unet3d_h100.yaml").read_text())
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(merged(base, change)))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert e.value.reference == f"{path}: {key}"
    assert cli.main(["validate", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert key in err and "Traceback" not in err


def test_generate_data_of_a_format_prepare_cannot_write_is_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(dlio_sections, "_prepare_writes", lambda fmt: False)
    data = yaml.safe_load((DLIO_DIR / "mlperf-v2.0/unet3d_datagen.yaml").read_text())
    with pytest.raises(ConfigError) as e:
        translate_dlio(data, source="d.yaml")
    assert e.value.reference == "d.yaml: workflow.generate_data"
    data["workflow"]["generate_data"] = False
    t = translate_dlio(data)
    assert t.config["prepare"] == {"auto": False} and any("prepare does not write npz" in u for u in t.unused)


def test_s3_storage_and_its_secrets_never_shown():
    data = {"framework": "pytorch", "reader": {"data_loader": "pytorch"},
            "dataset": {"data_folder": "s3://bucket1/unet", "format": "npz"},
            "storage": {"storage_type": "s3", "storage_root": "bucket1",
                        "storage_options": {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "s3cr3tvalue",
                                            "endpoint_url": "http://127.0.0.1:9000", "s3_force_path_style": True}}}
    t = translate_dlio(data)
    s3 = t.config["storage"]["s3"]
    assert t.config["storage"]["client"] == "boto3" and t.config["storage"]["prefixes"] == ["unet"]
    assert s3["bucket"] == "bucket1" and s3["addressing_style"] == "path" and s3["secret_key"] == "s3cr3tvalue"
    text = "\n".join(t.mapped)
    assert "s3cr3tvalue" not in text and "AKIAEXAMPLE" not in text


def test_validate_prints_the_translation(capsys):
    assert cli.main(["validate", "--config", str(DLIO_DIR / "mlperf-v1.0/cosmoflow_h100.yaml")]) == 0
    err = capsys.readouterr().err
    assert "# dlio: reader.read_threads=4 -> framework.num_workers=4" in err
    assert "# dlio: metric.au=0.7 -> training.au_target_percent=70.0" in err
    assert "# dlio: reader.shuffle_size=2 -> framework.tensorflow.shuffle_buffer=2" in err


@pytest.mark.parametrize("path", sorted((ROOT / "config").glob("*.y*ml")) + sorted((ROOT / "config").glob("*.json")),
                         ids=lambda p: p.name)
def test_dnnbench_and_dss_configs_are_not_taken_for_dlio(path):
    data = yaml.safe_load(path.read_text())
    assert not is_dlio(data)
    assert not is_dlio({**data, "framework": "pytorch"})  # one mistake: the schema's error, not a translation


def test_detection_needs_two_signs():
    assert is_dlio({"framework": "pytorch", "workflow": {"checkpoint": True}})  # a checkpointing workload
    assert is_dlio({"workload": {"model": "m", "dataset": {"num_files_train": 2}}})  # Hydra's composed form
    assert not is_dlio({"metric": {"au": 0.9}}) and not is_dlio({"dataset": {"data_folder": "d"}})


@pytest.mark.parametrize("preset", sorted(PRESETS.glob("*.yaml")), ids=lambda p: p.stem)
def test_presets_hold_mlperf_values_and_validate(preset):
    data = yaml.safe_load(preset.read_text())
    original = yaml.safe_load((DLIO_DIR / "mlperf-v2.0" / preset.name).read_text())
    translated = translate_dlio(original).config
    for section in ("dataset", "framework", "training", "prepare", "execution"):
        assert data[section] == translated[section]
    assert data["name"] == preset.stem
    validate(data, source=str(preset))


@pytest.mark.parametrize("change, key", [
    ({"dataset": {"num_files_train": "many"}}, "dataset.num_files_train"),
    ({"reader": {"batch_size": [7]}}, "reader.batch_size"),
    ({"train": {"computation_time": "fast"}}, "train.computation_time"),
    ({"metric": {"au": "high"}}, "metric.au"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_a_value_of_the_wrong_type_is_exit_2_naming_it(change, key):
    base = yaml.safe_load((DLIO_DIR / "mlperf-v1.0/unet3d_h100.yaml").read_text())
    with pytest.raises(ConfigError) as e:
        translate_dlio(merged(base, change), source="w.yaml")
    assert e.value.reference == f"w.yaml: {key}" and "is not" in str(e.value)


def test_a_section_of_the_wrong_shape_deeper_down_is_exit_2():
    base = yaml.safe_load((DLIO_DIR / "mlperf-v1.0/unet3d_h100.yaml").read_text())
    base["checkpoint"]["layer_parameters"] = "big"
    with pytest.raises(ConfigError, match="wrong type"):
        translate_dlio(base, source="w.yaml")
