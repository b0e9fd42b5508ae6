"""Config loading: schema, ${ENV} references, --set overrides, errors naming the field."""

from __future__ import annotations

import json

import pytest
import yaml

from dnnbench.config.loading import apply_override, interpolate, load_config
from dnnbench.config.redact import REDACTED, redact, secret_values
from dnnbench.errors import ConfigError


def write(tmp_path, text, name="c.yaml"):
    """The config ``text`` in a file; without a storage section it reads the fs root ``data``
    (the fs client has no default root)."""
    p = tmp_path / name
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if isinstance(data, dict) and "storage" not in data:
        text = json.dumps({**data, "storage": {"root": "data"}}) if name.endswith(".json") \
            else f"storage: {{root: data}}\n{text}"
    p.write_text(text)
    return p


def test_defaults_and_key_paths(tmp_path):
    cfg = load_config(write(tmp_path, "framework: {num_workers: 3}\n")).config
    assert cfg.framework.name == "pytorch"
    assert cfg.framework.num_workers == 3
    assert cfg.framework.batch_size == 32
    assert cfg.training.trainer == "train" and cfg.training.epochs == 1
    assert cfg.dataset.access == "random" and cfg.dataset.decode == "rgb"
    assert cfg.storage.client == "fs"


def test_json_and_yaml_same_schema(tmp_path):
    data = {"framework": {"batch_size": 7}, "training": {"trainer": "read", "epochs": 2}}
    a = load_config(write(tmp_path, json.dumps(data), "c.json")).config
    b = load_config(write(tmp_path, "framework: {batch_size: 7}\ntraining: {trainer: read, epochs: 2}\n")).config
    assert a == b


def test_unknown_key_names_the_field(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "framework: {num_wrokers: 2}\n"))
    assert "framework.num_wrokers" in str(e.value)
    assert "unknown key" in str(e.value)


def test_wrong_type_names_the_field(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "framework: {batch_size: many}\n"))
    assert "framework.batch_size" in str(e.value) and "many" in str(e.value)


@pytest.mark.parametrize("text,field", [
    ("framework: {batch_size: 0}\n", "framework.batch_size"),
    ("framework: {num_workers: -1}\n", "framework.num_workers"),
    ("training: {epochs: 0}\n", "training.epochs"),
    ("dataset: {decode: bgr}\n", "dataset.decode"),
    ("execution: {device: tpu}\n", "execution.device"),
    ("prepare: {width: [100, 10]}\n", "prepare"),
    ("storage: {prefixes: []}\n", "storage.prefixes"),
])
def test_bad_values(tmp_path, text, field):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text))
    assert field in str(e.value) or any(field in d for d in e.value.details)


def test_several_errors_are_all_listed(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "framework: {batch_size: 0, nope: 1}\n"))
    assert len(e.value.details) == 2


def test_cross_check_train_needs_decoded_images(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "dataset: {decode: none}\ntraining: {trainer: train}\n"))
    assert "read" in str(e.value)


def test_env_references(tmp_path):
    p = write(tmp_path, "storage: {root: '${DATA_ROOT}'}\nframework: {num_workers: '${NW:-3}'}\n")
    cfg = load_config(p, environ={"DATA_ROOT": "/data/x"}).config
    assert cfg.storage.root == "/data/x"
    assert cfg.framework.num_workers == 3


def test_missing_env_variable(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "storage: {root: '${NOPE_NOT_SET}'}\n"), environ={})
    assert e.value.reference == "storage.root" and "NOPE_NOT_SET" in e.value.message


def test_interpolate_inside_strings():
    assert interpolate("s3://${B}/x", environ={"B": "bkt"}) == "s3://bkt/x"
    assert interpolate(["${A:-1}", {"k": "${A:-true}"}], environ={}) == [1, {"k": True}]


def test_set_overrides(tmp_path):
    p = write(tmp_path, "framework: {num_workers: 1}\n")
    cfg = load_config(p, ["framework.num_workers=4", "training.trainer=read", "dataset.labels=[a, b]",
                          "execution.phases.train=false"]).config
    assert cfg.framework.num_workers == 4
    assert cfg.training.trainer == "read"
    assert cfg.dataset.labels == ["a", "b"]
    assert cfg.execution.phases.train is False


def test_set_errors():
    with pytest.raises(ConfigError):
        apply_override({}, "no-equals-sign")
    with pytest.raises(ConfigError):
        apply_override({"a": 1}, "a.b=2")


@pytest.mark.parametrize("text,what", [
    ("framework: [1, 2\n", "YAML syntax error"),
    ("- a\n- b\n", "mapping"),
])
def test_syntax_errors(tmp_path, text, what):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text))
    assert what in str(e.value)


def test_json_syntax_error(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, '{"framework": {', "c.json"))
    assert "JSON syntax error" in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "nope.yaml")
    assert "not found" in str(e.value)


def test_redaction():
    raw = {"storage": {"options": {"secret_key": "s3cr3t", "access_key": "AKIA123", "region": "x"}},
           "note": "uses s3cr3t inline"}
    out = redact(raw, secret_values(raw))
    assert out["storage"]["options"]["secret_key"] == REDACTED
    assert out["storage"]["options"]["access_key"] == REDACTED
    assert out["storage"]["options"]["region"] == "x"
    assert "s3cr3t" not in json.dumps(out)


SECRET, ACCESS = "98765432109", "000123456789"
S3_CFG = ("storage:\n  client: boto3\n  s3: {bucket: b, endpoint_url: 'http://127.0.0.1:9', "
          "access_key: %s, secret_key: %s}\n")


def test_all_digit_secrets_from_env_stay_strings(tmp_path):
    p = write(tmp_path, S3_CFG % ("'${MYACCESS}'", "'${MYSECRET}'") + "name: '${RUN_NAME}'\n")
    cfg = load_config(p, environ={"MYSECRET": SECRET, "MYACCESS": ACCESS, "RUN_NAME": "2024"}).config
    assert cfg.storage.s3.secret_key == SECRET and cfg.storage.s3.access_key == ACCESS  # leading zeros kept
    assert cfg.name == "2024"


def test_env_numbers_still_reach_numeric_fields(tmp_path):
    p = write(tmp_path, "framework: {name: tensorflow, num_workers: '${NW}', shuffle: '${SH}', "
                        "tensorflow: {prefetch: '${PF}'}}\nprepare: {width: ['${W}', 64]}\n"
                        "model: {options: {hidden: '${H}'}}\n")
    cfg = load_config(p, environ={"NW": "3", "SH": "false", "PF": "0", "W": "16", "H": "8"}).config
    assert cfg.framework.num_workers == 3 and cfg.framework.shuffle is False
    assert cfg.framework.tensorflow.prefetch == 0 and cfg.prepare.width == (16, 64)
    assert cfg.model.options == {"hidden": 8}  # free-form plugin options: parsed like YAML


def test_set_keeps_strings_for_string_fields(tmp_path):
    p = write(tmp_path, S3_CFG % ("a", "b"))
    cfg = load_config(p, [f"storage.s3.secret_key={SECRET}", f"storage.s3.access_key={ACCESS}",
                          "name=2024", "framework.num_workers=4"]).config
    assert cfg.storage.s3.secret_key == SECRET and cfg.storage.s3.access_key == ACCESS
    assert cfg.name == "2024" and cfg.framework.num_workers == 4


S3_BAD = [
    S3_CFG % (ACCESS, SECRET),  # YAML numbers in secret fields: rejected, never echoed
    S3_CFG % ("'${MYACCESS}'", "[\"${MYSECRET}\"]"),
    S3_CFG.replace("}", ", session_token: 98765432109}") % ("'${MYACCESS}'", "'${MYSECRET}'"),
    S3_CFG % ("'${MYACCESS}'", "'${MYSECRET}'")
    + "  options: {password: 98765432109}\n  create_bucket: '${MYSECRET}'\n",
]


@pytest.mark.parametrize("text", S3_BAD)
def test_invalid_secret_values_are_never_echoed(tmp_path, capsys, monkeypatch, text):
    from dnnbench.cli import main

    monkeypatch.setenv("MYSECRET", SECRET)
    monkeypatch.setenv("MYACCESS", ACCESS)
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    shown = str(e.value) + " ".join(e.value.details)
    assert SECRET not in shown and ACCESS not in shown
    assert main(["validate", "--config", str(p)]) == 2
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err and ACCESS not in out.out + out.err
    assert "storage." in out.err and "Traceback" not in out.err
