"""Malformed configs: each is exit 2 with one message naming the field; random mutations of
valid configs never produce a traceback."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnnbench.cli import main
from dnnbench.config.loading import load_config
from dnnbench.errors import BenchError, ConfigError

ROOT = Path(__file__).resolve().parents[2]
VALID = yaml.safe_load((ROOT / "config" / "quickstart.yaml").read_text())



def _s3(endpoint: str) -> dict:
    """The quickstart's storage on S3 with this endpoint (keys never echoed: see test_config)."""
    return {"client": "boto3", "root": None, "s3": {"bucket": "b", "endpoint_url": endpoint}}


# (description, yaml/json text or a mutation of the quickstart config, text that must be in the message)
CASES = [
    ("unknown top key", {"trainning": {}}, "trainning"),
    ("unknown nested key", {"framework": {"num_wrokers": 2}}, "framework.num_wrokers"),
    ("batch size string", {"framework": {"batch_size": "lots"}}, "framework.batch_size"),
    ("batch size zero", {"framework": {"batch_size": 0}}, "framework.batch_size"),
    ("batch size negative", {"framework": {"batch_size": -8}}, "framework.batch_size"),
    ("workers negative", {"framework": {"num_workers": -1}}, "framework.num_workers"),
    ("workers float", {"framework": {"num_workers": 2.5}}, "framework.num_workers"),
    ("prefetch zero", {"framework": {"prefetch_factor": 0}}, "framework.prefetch_factor"),
    ("bad mp context", {"framework": {"multiprocessing_context": "thread"}}, "framework.multiprocessing_context"),
    ("unknown framework", {"framework": {"name": "jax"}}, "framework.name"),
    ("persistent without workers", {"framework": {"num_workers": 0, "persistent_workers": True}},
     "persistent_workers"),
    ("epochs zero", {"training": {"epochs": 0}}, "training.epochs"),
    ("epochs text", {"training": {"epochs": "two"}}, "training.epochs"),
    ("negative warmup", {"training": {"warmup_steps": -1}}, "training.warmup_steps"),
    ("lr zero", {"training": {"lr": 0}}, "training.lr"),
    ("negative compute time", {"training": {"compute_time_s": -0.1}}, "training.compute_time_s"),
    ("bad optimizer", {"training": {"optimizer": "lbfgs"}}, "training.optimizer"),
    ("bad decode", {"dataset": {"decode": "bgr"}}, "dataset.decode"),
    ("bad access", {"dataset": {"access": "randomly"}}, "dataset.access"),
    ("image dimension one number", {"dataset": {"image_dimension": 32}}, "dataset.image_dimension"),
    ("image dimension zero", {"dataset": {"image_dimension": [0, 32]}}, "dataset.image_dimension"),
    ("labels not a list", {"dataset": {"labels": 5}}, "dataset.labels"),
    ("max samples zero", {"dataset": {"max_samples": 0}}, "dataset.max_samples"),
    ("train needs decode", {"dataset": {"decode": "none"}, "training": {"trainer": "train"}}, "decode"),
    ("empty prefixes", {"storage": {"prefixes": []}}, "storage.prefixes"),
    ("root a list", {"storage": {"root": ["a", "b"]}}, "storage.root"),
    ("listing workers zero", {"execution": {"listing_workers": 0}}, "execution.listing_workers"),
    ("bad device", {"execution": {"device": "tpu"}}, "execution.device"),
    ("bad phases", {"execution": {"phases": {"trian": True}}}, "execution.phases.trian"),
    ("requests mode", {"metrics": {"requests": "some"}}, "metrics.requests"),
    ("sample rate above 1", {"metrics": {"request_sample_rate": 2}}, "metrics.request_sample_rate"),
    ("prepare width reversed", {"prepare": {"width": [100, 10]}}, "width"),
    ("prepare format", {"prepare": {"format": "gif"}}, "prepare.format"),
    ("prepare quality", {"prepare": {"jpeg_quality": 101}}, "prepare.jpeg_quality"),
    ("plugins not a list", {"plugins": 7}, "plugins"),
    ("section not a mapping", {"framework": "pytorch"}, "framework"),
    ("missing env var", {"storage": {"root": "${DNNBENCH_TEST_UNSET_VAR}"}}, "DNNBENCH_TEST_UNSET_VAR"),
    ("endpoint not a url", {"storage": _s3("not a url")}, "storage.s3.endpoint_url"),
    ("endpoint without scheme", {"storage": _s3("127.0.0.1:9000")}, "storage.s3.endpoint_url"),
    ("endpoint other scheme", {"storage": _s3("ftp://127.0.0.1:9000")}, "storage.s3.endpoint_url"),
    ("endpoint without host", {"storage": _s3("http://")}, "storage.s3.endpoint_url"),
    ("endpoint bad port", {"storage": _s3("http://127.0.0.1:99999")}, "storage.s3.endpoint_url"),
    ("endpoint with a space", {"storage": _s3("http://my host:9000")}, "storage.s3.endpoint_url"),
    ("endpoint with credentials", {"storage": _s3("http://AKIAXX:sekrit123@127.0.0.1:9000")},
     "storage.s3.endpoint_url"),
    ("prefix leaves the root", {"storage": {"prefixes": ["../elsewhere"]}}, "storage.prefixes"),
    ("output dir is a file", {"metrics": {"output_dir": str(ROOT / "config" / "quickstart.yaml")}},
     "metrics.output_dir"),
]


def _float_fields(model=None, at=()) -> list[str]:
    """Every float field of the schema, as a dotted path."""
    from pydantic import BaseModel

    from dnnbench.config.schema import BenchConfig, union_members

    out = []
    for name, field in (model or BenchConfig).model_fields.items():
        for tp in union_members(field.annotation):
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                out += _float_fields(tp, (*at, name))
            elif tp is float:
                out.append(".".join((*at, name)))
    return out


def _at(path: str, value) -> dict:
    """A mutation setting the dotted ``path`` (with the S3 or emulation section it needs)."""
    *parents, leaf = path.split(".")
    if parents[:2] == ["storage", "s3"]:
        storage = _s3("http://127.0.0.1:9")
        storage["s3"][leaf] = value
        return {"storage": storage}
    node: dict = {leaf: value}
    for part in reversed(parents[1:]):
        node = {part: node}
    return {parents[0]: node}


FLOATS = _float_fields()
GRID_1E12 = {"grid": {f"dataset.options.k{i}": list(range(10)) for i in range(12)}}
CASES += [  # issues 11 and 12: each was accepted, or failed only after the run had started
    ("fs without root", {"storage": {"root": None}}, "storage.root"),
    ("fs root empty", {"storage": {"root": ""}}, "storage.root"),
    ("raw dataset with train trainer", {"dataset": {"name": "raw"}, "training": {"trainer": "train"}}, "dataset.name"),
    ("raw dataset with inference", {"dataset": {"name": "PythonReadDataset"}, "training": {"trainer": "read"},
                                    "execution": {"phases": {"inference": True}}}, "execution.phases.inference"),
    ("decode none with inference", {"dataset": {"decode": "none"}, "training": {"trainer": "read"},
                                    "execution": {"phases": {"inference": True}}}, "execution.phases.inference"),
    ("decode none with checkpoint", {"dataset": {"decode": "none"}, "training": {"trainer": "read"},
                                     "execution": {"phases": {"checkpoint": True}}}, "execution.phases.checkpoint"),
    ("listing off", {"execution": {"phases": {"list": False}}}, "execution.phases.list"),
    ("requests true", {"metrics": {"requests": True}}, "metrics.requests"),
    ("misspelt key suggests", {"framework": {"num_wrokers": 2}}, "did you mean framework.num_workers"),
    ("batch size true", {"framework": {"batch_size": True}}, "framework.batch_size"),
    ("epochs true", {"training": {"epochs": True}}, "training.epochs"),
    ("image dimension boolean", {"dataset": {"image_dimension": [True, 32]}}, "dataset.image_dimension"),
    ("lr boolean", {"training": {"lr": True}}, "training.lr"),
    ("duplicate prefixes", {"storage": {"prefixes": ["train", "train/"]}}, "storage.prefixes"),
    ("nested prefixes", {"storage": {"prefixes": ["train", "train/cats"]}}, "storage.prefixes"),
    ("root prefix and another", {"storage": {"prefixes": ["", "train"]}}, "storage.prefixes"),
    ("duplicate held-out prefixes", {"inference": {"prefixes": ["val", "val"]}}, "inference.prefixes"),
    ("model width negative", {"model": {"options": {"width": -4}}}, "model.options.width"),
    ("model width boolean", {"model": {"options": {"width": True}}}, "model.options.width"),
    ("model option unknown", {"model": {"options": {"depth": 3}}}, "model.options.depth"),
    ("resnet layers zero", {"model": {"name": "resnet", "options": {"layers": [2, 0]}}}, "model.options.layers"),
    ("dataset option unknown", {"dataset": {"options": {"cache": True}}}, "dataset.options.cache"),
    ("storage option unknown", {"storage": {"options": {"threads": 4}}}, "storage.options.threads"),
    ("seed huge", {"execution": {"seed": 2**64}}, "execution.seed"),
    ("seed negative", {"execution": {"seed": -1}}, "execution.seed"),
    ("prepare seed huge", {"prepare": {"seed": 2**40}}, "prepare.seed"),
    ("shards seed huge", {"shards": {"seed": 2**40}}, "shards.seed"),
    ("workers 10000", {"framework": {"num_workers": 10000}}, "limits.workers"),
    ("listing workers 10^6", {"execution": {"listing_workers": 10**6}}, "execution.listing_workers"),
    ("prepare workers 10^5", {"prepare": {"workers": 10**5}}, "prepare.workers"),
    ("prefetch 10^9", {"framework": {"prefetch_factor": 10**9}}, "framework.prefetch_factor"),
    ("latency 1e12", {"storage": {"emulate": {"latency_ms": 1e12}}}, "storage.emulate.latency_ms"),
    ("compute time a year", {"training": {"compute_time_s": 3.2e7}}, "training.compute_time_s"),
    ("image too large to hold", {"dataset": {"image_dimension": [100000, 100000]}}, "dataset.image_dimension"),
    ("checkpoint larger than memory", {"checkpoint": {"size_MiB": 1e9}}, "checkpoint.size_MiB"),
    ("sweep grid of 10^12 variants", {"sweep": GRID_1E12}, "limits.sweep_runs"),
    ("repeat 10^6", {"repeat": 10**6}, "limits.sweep_runs"),
    ("limits zero", {"limits": {"workers": 0}}, "limits.workers"),
    ("log level", {"logging": {"path": "logs", "level": "LOUD"}}, "logging.level"),
    *[(f"{path} infinite", _at(path, float("inf")), path) for path in FLOATS],
    *[(f"{path} NaN", _at(path, float("nan")), path) for path in FLOATS],
]
_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
_LEGACY_FS = '"storage": {"format": "fs", "fs": {"data_dir": "/d"}}'
RAW = [
    ("empty file", "", ".yaml", "empty"),
    ("only a comment", "# nothing here\n", ".yaml", "empty"),
    ("empty mapping", "{}\n", ".yaml", "empty"),
    ("empty json object", "{}", ".json", "empty"),
    ("alias bomb", _BOMB, ".yaml", "over the limit of 100,000 values"),
    ("recursive alias", "storage: {root: d}\nsweep: &s {grid: {a.b: [*s]}}\n", ".yaml", "recursive alias"),
    ("deep yaml nesting", "model: {options: {a: " + "[" * 5000 + "]" * 5000 + "}}\n", ".yaml", "nested deeper"),
    ("deep json nesting", '{"model": {"options": {"a": ' + "[" * 100000 + "]" * 100000 + "}}}", ".json", "nested"),
    ("duplicate key", "storage: {root: d}\nframework: {batch_size: 8}\nframework: {batch_size: 4}\n", ".yaml",
     "duplicate key framework at line 3 (first at line 2)"),
    ("duplicate nested key", "storage: {root: d}\nframework:\n  batch_size: 8\n  batch_size: 4\n", ".yaml",
     "duplicate key framework.batch_size at line 4"),
    ("duplicate json key", '{"storage": {"root": "d", "root": "e"}}', ".json", "duplicate key storage.root"),
    ("epochs yes", "storage: {root: d}\ntraining: {epochs: yes}\n", ".yaml", "training.epochs"),
    ("batch size on", "storage: {root: d}\nframework: {batch_size: on}\n", ".yaml", "framework.batch_size"),
    ("system interval .inf", "storage: {root: d}\nmetrics: {system_interval_s: .inf}\n", ".yaml",
     "metrics.system_interval_s"),
    ("lr .nan", "storage: {root: d}\ntraining: {lr: .nan}\n", ".yaml", "training.lr"),
    ("json Infinity", '{"storage": {"root": "d"}, "training": {"lr": Infinity}}', ".json", "training.lr"),
    ("integer of 5000 digits", "storage: {root: d}\nexecution: {seed: " + "9" * 5000 + "}\n", ".yaml",
     "execution.seed"),
    ("json integer of 5000 digits", '{"storage": {"root": "d"}, "execution": {"seed": ' + "9" * 5000 + "}}",
     ".json", "execution.seed"),
    ("legacy metrics format", "{" + _LEGACY_FS + ', "metrics": {"format": "json"}}', ".json", "metrics.format"),
    ("legacy dss client", '{"storage": {"format": "s3", "s3": {"bucket": "b", "client_lib": "dss_client"}}}',
     ".json", "storage.s3.client_lib"),
    ("legacy object detector", "{" + _LEGACY_FS + ', "model": {"name": "ObjectDetector"}}', ".json", "model.name"),
    ("legacy text dataset", "{" + _LEGACY_FS + ', "dataset": {"type": "text"}}', ".json", "dataset.type"),
    ("legacy device", "{" + _LEGACY_FS + ', "device": "TPU"}', ".json", "device"),
    ("legacy epochs twice", "{" + _LEGACY_FS + ', "framework": {"epochs": 2}, "training": {"epochs": 3}}',
     ".json", "framework.epochs"),
    ("legacy access method", "{" + _LEGACY_FS + ', "training": {"choice": "RandomAccessDatasetTrain", '
     '"RandomAccessDatasetTrain": {"access_method": "Sequential"}}}', ".json", "access_method"),
    ("legacy choice not a name", "{" + _LEGACY_FS + ', "dataset": {"choice": 3}}', ".json", "dataset.choice"),
    ("legacy metrics path is a file", "{" + _LEGACY_FS + ', "metrics": {"format": "csv", '
     '"path": "' + str(ROOT / "config" / "quickstart.yaml") + '"}}', ".json", "metrics.output_dir"),
    ("yaml syntax", "framework: {batch_size: 3\n", ".yaml", "YAML syntax error"),
    ("yaml tab", "framework:\n\t batch_size: 3\n", ".yaml", "YAML syntax error"),
    ("json syntax", '{"framework": {"batch_size": 3,}}', ".json", "JSON syntax error"),
    ("top level list", "[1, 2]\n", ".yaml", "mapping"),
    ("legacy empty data_dir", '{"storage": {"format": "fs", "fs": {"data_dir": []}}}', ".json",
     "storage.fs.data_dir"),
    ("legacy two access modes",
     '{"storage": {"format": "fs", "fs": {"data_dir": "/d"}}, "dataset": {"access": {"random": true, '
     '"sequential": true}}}', ".json", "dataset.access"),
    ("legacy loader not a mapping",
     '{"storage": {"format": "fs", "fs": {"data_dir": "/d"}}, "framework": {"PyTorch": {"DataLoader": 3}}}',
     ".json", "DataLoader"),
]


def merged(mutation: dict) -> dict:
    cfg = copy.deepcopy(VALID)
    for k, v in mutation.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k] = {**cfg[k], **v}
        else:
            cfg[k] = v
    return cfg


def check_exit_2(path: Path, expect: str, capsys) -> None:
    code = main(["validate", "--config", str(path)])
    out = capsys.readouterr()
    assert code == 2, out
    assert expect in out.err, out.err
    assert "Traceback" not in out.err + out.out
    assert sum(line.startswith("error") for line in out.err.splitlines()) == 1
    assert "sekrit123" not in out.err + out.out


@pytest.mark.parametrize("name,mutation,expect", CASES, ids=[c[0] for c in CASES])
def test_malformed_config(tmp_path, capsys, monkeypatch, name, mutation, expect):
    monkeypatch.delenv("DNNBENCH_TEST_UNSET_VAR", raising=False)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(merged(mutation)))
    check_exit_2(path, expect, capsys)


@pytest.mark.parametrize("name,text,suffix,expect", RAW, ids=[c[0] for c in RAW])
def test_malformed_file(tmp_path, capsys, name, text, suffix, expect):
    path = tmp_path / f"c{suffix}"
    path.write_text(text)
    check_exit_2(path, expect, capsys)


def test_files_that_are_not_config_files_are_refused_unread(tmp_path):
    """/dev/zero, a FIFO nobody writes to, a 2 MiB file: each refused at once, never read forever."""
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:
        f.truncate(2 * 2**20)
    for path, expect in (("/dev/zero", "not a regular file"), (fifo, "not a regular file"),
                         (big, "1 MiB")):
        p = subprocess.run([sys.executable, "benchmark.py", "validate", "--config", str(path)], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and expect in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_a_grown_file_is_read_no_further_than_the_limit(tmp_path, monkeypatch):
    from dnnbench.config import parse

    path = tmp_path / "c.yaml"
    path.write_text("storage: {root: d}\n" + "# padding\n" * 200)
    monkeypatch.setattr(parse, "MAX_CONFIG_BYTES", 100)
    with pytest.raises(ConfigError, match="bytes"):
        load_config(path)


def test_upstream_comment_keys_may_repeat(tmp_path):
    p = tmp_path / "c.json"
    p.write_text('{"storage": {"root": "d"}, "__comment__": "one", "__comment__": "two"}')
    with pytest.raises(ConfigError, match="__comment__: extra inputs"):  # a comment, not a duplicate key
        load_config(p)


def test_requests_off_unquoted_is_off(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("storage: {root: d}\nmetrics: {requests: off}\n")
    assert load_config(p).config.metrics.requests == "off"
    assert load_config(p, ["metrics.requests=off"]).config.metrics.requests == "off"


def test_limits_can_be_raised(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("storage: {root: d}\nframework: {num_workers: 300}\n")
    with pytest.raises(ConfigError, match="limits.workers"):
        load_config(p)
    assert load_config(p, ["limits.workers=512"]).config.framework.num_workers == 300


def test_unreadable_and_missing_files(tmp_path, capsys):
    check_exit_2(tmp_path / "absent.yaml", "not found", capsys)
    d = tmp_path / "dir.yaml"
    d.mkdir()
    check_exit_2(d, "cannot read", capsys)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    check_exit_2(binary, "cannot read", capsys)


def test_at_least_thirty_cases():
    assert len(CASES) + len(RAW) + 3 >= 30


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True),
                     st.text(max_size=12), st.lists(st.integers(-3, 300), max_size=3))


def _paths(d: dict, prefix=()):
    for k, v in d.items():
        yield prefix + (k,)
        if isinstance(v, dict):
            yield from _paths(v, prefix + (k,))


PATHS = list(_paths(VALID))


def _mutate(mutations) -> dict:
    cfg = copy.deepcopy(VALID)
    for path, value, rename in mutations:
        node = cfg
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                break
            node = node[key]
        else:
            if rename:
                node[path[-1] + "_x"] = node.pop(path[-1], None)
            else:
                node[path[-1]] = value
    return cfg


_MUTATIONS = st.lists(st.tuples(st.sampled_from(PATHS), _scalars, st.booleans()), min_size=1, max_size=4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=_MUTATIONS)
def test_random_mutations_never_traceback(tmp_path, mutations):
    p = tmp_path / "m.json"
    p.write_text(json.dumps(_mutate(mutations), default=str))
    try:
        load_config(p)
    except ConfigError as e:
        assert e.message  # a clear message, never an unexpected exception type
    except BenchError as e:  # pragma: no cover - any other user error is fine too
        assert e.message


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=_MUTATIONS)
def test_random_mutations_through_the_cli_exit_0_or_2(tmp_path, capsys, mutations):
    """The same mutations through ``validate``: valid (0) or one clear error (2), never a traceback."""
    p = tmp_path / "m.json"
    p.write_text(json.dumps(_mutate(mutations), default=str))
    capsys.readouterr()
    code = main(["validate", "--config", str(p)])
    out = capsys.readouterr()
    assert code in (0, 2), (code, out.err)
    assert "Traceback" not in out.err + out.out
    if code == 2:
        assert sum(line.startswith("error") for line in out.err.splitlines()) == 1, out.err
