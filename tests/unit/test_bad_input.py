"""Malformed configs: each is exit 2 with one message naming the field; random mutations of
valid configs never produce a traceback."""

from __future__ import annotations

import copy
import json
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
RAW = [
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
