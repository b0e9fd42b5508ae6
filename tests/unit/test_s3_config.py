"""S3 configuration: schema, presets, the dss-style S3 layout, error mapping, secrets. No server."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dnnbench.config.legacy import translate_legacy
from dnnbench.config.loading import load_config, validate
from dnnbench.config.redact import REDACTED, redact, secret_values
from dnnbench.errors import EXIT_BAD_INPUT, EXIT_FAILED, ConfigError, DataError, StorageError
from dnnbench.registry import STORAGE
from dnnbench.storage.s3common import (S3AccessError, S3BucketMissing, S3Unreachable, s3_error, settings_from,
                                       unreachable)

ROOT = Path(__file__).resolve().parents[2]
S3_CLIENTS = ("boto3", "minio", "s3fs", "s3torchconnector")


def storage(**kw):
    return validate({"storage": kw}).storage


def error_of(data) -> str:
    with pytest.raises(ConfigError) as e:
        validate(data)
    return " ".join([str(e.value), *e.value.details])


# -- schema ---------------------------------------------------------------------
def test_preset_fills_defaults_and_picks_boto3():
    st = storage(preset="minio", s3={"bucket": "b", "endpoint_url": "http://h:9000/"})
    assert st.client == "boto3"
    assert st.s3.addressing_style == "path" and st.s3.region == "us-east-1"
    assert st.s3.endpoint_url == "http://h:9000"
    explicit = storage(preset="dss", client="minio", s3={"bucket": "b", "endpoint_url": "https://h",
                                                          "region": "eu-1", "addressing_style": "virtual"})
    assert explicit.client == "minio" and explicit.s3.region == "eu-1" and explicit.s3.addressing_style == "virtual"
    aws = storage(preset="aws", s3={"bucket": "b"})
    assert aws.s3.endpoint_url is None and aws.s3.addressing_style is None


@pytest.mark.parametrize("data,needle", [
    ({"storage": {"client": "boto3"}}, "storage: client 'boto3' reads S3: add storage.s3"),
    ({"storage": {"client": "boto3", "s3": {}}}, "storage.s3.bucket: Field required"),
    ({"storage": {"client": "boto3", "s3": {"bucket": "b/x"}}}, "storage.s3.bucket: a bucket name has no '/'"),
    ({"storage": {"client": "boto3", "s3": {"bucket": "s3://b"}}}, "storage.s3.bucket: give the bare bucket"),
    ({"storage": {"client": "boto3", "s3": {"bucket": "b", "endpont_url": "x"}}},
     "storage.s3.endpont_url: extra inputs are not permitted"),
    ({"storage": {"client": "boto3", "s3": {"bucket": "b", "endpoint_url": "h:9000"}}},
     "storage.s3.endpoint_url: must start with http"),
    ({"storage": {"client": "boto3", "s3": {"bucket": "b", "access_key": "a"}}}, "storage.s3: set both"),
    ({"storage": {"client": "boto3", "s3": {"bucket": "b", "profile": "p", "access_key": "a", "secret_key": "s"}}},
     "storage.s3: set either profile"),
    ({"storage": {"client": "boto3", "s3": {"bucket": "b", "addressing_style": "dns"}}},
     "storage.s3.addressing_style"),
    ({"storage": {"client": "boto3", "s3": {"bucket": "b", "max_attempts": 0}}}, "storage.s3.max_attempts"),
    ({"storage": {"client": "boto3", "s3": {"bucket": "b", "retry_mode": "fast"}}}, "storage.s3.retry_mode"),
    ({"storage": {"client": "boto3", "s3": {"bucket": "b", "verify_tls": False, "ca_bundle": "/x.pem"}}},
     "ca_bundle is for verifying TLS"),
    ({"storage": {"preset": "minio", "s3": {"bucket": "b"}}}, "preset minio needs storage.s3.endpoint_url"),
    ({"storage": {"preset": "aws", "s3": {"bucket": "b", "endpoint_url": "http://h"}}}, "preset aws talks to AWS"),
    ({"storage": {"preset": "amazon", "s3": {"bucket": "b"}}}, "storage.preset"),
    ({"storage": {"client": "fs", "s3": {"bucket": "b"}}}, "storage.client is 'fs'"),
    ({"storage": {"client": "minio", "root": "/data", "s3": {"bucket": "b"}}}, "storage.root is for the fs client"),
])
def test_mistakes_name_the_field(data, needle):
    assert needle in error_of(data)


def test_blank_env_reference_means_unset(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("storage:\n  preset: dss\n  s3:\n    bucket: b\n    endpoint_url: http://h:9000\n"
                 "    access_key: ${NO_SUCH_VAR_A:-}\n    secret_key: ${NO_SUCH_VAR_B:-}\n")
    s3 = load_config(p, environ={}).config.storage.s3
    assert s3.access_key is None and s3.secret_key is None


def test_settings_defaults():
    s = settings_from(storage(client="minio", s3={"bucket": "b", "endpoint_url": "http://h:1"}))
    assert s.addressing_style == "path" and s.region == "us-east-1" and s.verify is True
    aws = settings_from(storage(client="boto3", s3={"bucket": "b", "region": "eu-west-1"}))
    assert aws.addressing_style == "virtual" and aws.is_aws and "AWS" in aws.where
    with pytest.raises(ConfigError) as e:
        settings_from(storage(client="boto3", s3={"bucket": "b", "ca_bundle": "/no/such/ca.pem"}))
    assert e.value.reference == "storage.s3.ca_bundle"


# -- the dss-style S3 layout ---------------------------------------------------------------
def legacy(**s3):
    return {"storage": {"format": "s3", "name": s3.pop("name", "dss"), "s3": s3}}


def test_shipped_legacy_s3_config(tmp_path):
    loaded = load_config(ROOT / "config" / "legacy-dss-s3.json", environ={})
    st = loaded.config.storage
    assert "dss-style" in loaded.notices[0]
    assert st.client == "boto3" and st.preset == "dss"
    assert st.prefixes == ["flower_photos1", "flower_photos2"]
    assert st.s3.bucket == "dnnbench-legacy" and st.s3.endpoint_url == "http://127.0.0.1:18080"
    assert st.s3.access_key == "test:tester" and st.s3.addressing_style == "path"


def test_legacy_dss_and_aws_credentials():
    creds = {"aws": {"credentials": {"region_name": "us-east-2", "access_key": "AK1", "secret_key": "SK1"}},
             "dss": {"credentials": {"endpoint": "http://10.1.51.107:9000", "access_key": "minio",
                                     "secret_key": "minio123"}}}
    out, dropped = translate_legacy(legacy(bucket="dss0", prefix=["flower_photos/"],
                                           client_lib={"name": "boto3", "dss_client": {"max_connections": 25}},
                                           **creds))
    st = validate(out).storage
    assert st.client == "boto3" and st.preset == "dss" and st.prefixes == ["flower_photos"]
    assert (st.s3.endpoint_url, st.s3.access_key, st.s3.secret_key) == ("http://10.1.51.107:9000", "minio",
                                                                        "minio123")
    assert any(d.startswith("storage.s3.client_lib.dss_client") for d in dropped)
    assert any("storage.s3.aws" in d for d in dropped)
    out, _ = translate_legacy(legacy(name="aws", bucket="b", prefix="p", client_lib="minio", **creds))
    st = validate(out).storage
    assert st.client == "minio" and st.preset == "aws" and st.s3.endpoint_url is None
    assert (st.s3.region, st.s3.access_key) == ("us-east-2", "AK1") and st.prefixes == ["p"]


@pytest.mark.parametrize("lib", ["dss_client", {"name": "dss_client", "dss_client": {"max_connections": 25}}])
def test_legacy_dss_client_is_refused_not_replaced(lib):
    """The DSS C++ client does not read here: exit 2 naming client_lib, never boto3 in its place."""
    with pytest.raises(ConfigError) as e:
        translate_legacy(legacy(bucket="b", client_lib=lib, dss={"credentials": {"endpoint": "http://h:9000"}}))
    assert "storage.s3.client_lib" in str(e.value) and "boto3" in e.value.hint


def test_legacy_s3_without_bucket_names_the_field(tmp_path):
    p = tmp_path / "l.json"
    p.write_text(json.dumps({"storage": {"format": "s3", "s3": {"prefix": ["x"]}}}))
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "storage.s3" in str(e.value)


# -- shipped configs, registry, laziness ------------------------------------------------------
@pytest.mark.parametrize("name", ["s3-local", "s3-aws", "s3-dss"])
def test_shipped_configs_validate(name):
    cfg = load_config(ROOT / "config" / f"{name}.yaml", environ={}).config
    assert cfg.storage.client in S3_CLIENTS and cfg.storage.s3.bucket


@pytest.mark.parametrize("name", S3_CLIENTS)
def test_registered_lazily(name):
    entry = STORAGE.resolve(name)
    assert entry.origin == "builtin" and entry.location.startswith("dnnbench.storage.s3")


def test_validate_imports_no_client_library():
    code = ("import sys, io, contextlib; from dnnbench import cli\n"
            "with contextlib.redirect_stdout(io.StringIO()): rc = cli.main(['validate', '--config', "
            "'config/s3-local.yaml'])\n"
            "print(rc, sorted(m for m in ('boto3', 'botocore', 'minio', 's3fs', 'aiobotocore', 's3torchconnector', "
            "'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0 []"


# -- secrets ------------------------------------------------------------------------------------
def test_keys_are_redacted_and_hidden_from_repr():
    cfg = validate({"storage": {"preset": "minio", "s3": {"bucket": "b", "endpoint_url": "http://h",
                                                          "access_key": "AKIAKNOWN", "secret_key": "S3cretKnown",
                                                          "session_token": "T0kenKnown"}}})
    raw = cfg.model_dump(mode="json")
    secrets = secret_values(raw)
    assert {"AKIAKNOWN", "S3cretKnown", "T0kenKnown"} <= secrets
    text = yaml.safe_dump(redact(raw, secrets))
    assert "Known" not in text and REDACTED in text
    assert "Known" not in repr(cfg) and "Known" not in repr(settings_from(cfg.storage))
    store = STORAGE.get("boto3")(cfg.storage)
    assert "Known" not in json.dumps(store.describe()) + store.label()
    clone = pickle.loads(pickle.dumps(store))  # what loader workers get: configuration, no client
    assert clone._client is None and clone.settings == store.settings


# -- error mapping --------------------------------------------------------------------------------
@pytest.mark.parametrize("code,status,op,kind,exit_code", [
    ("NoSuchKey", 404, "get", FileNotFoundError, None),
    (None, 404, "get", FileNotFoundError, None),
    ("NoSuchBucket", 404, "list", S3BucketMissing, EXIT_BAD_INPUT),
    (None, 404, "check", S3BucketMissing, EXIT_BAD_INPUT),
    ("SignatureDoesNotMatch", 403, "check", S3AccessError, EXIT_BAD_INPUT),
    ("InvalidAccessKeyId", 403, "get", S3AccessError, EXIT_BAD_INPUT),
    ("AccessDenied", 403, "list", S3AccessError, EXIT_BAD_INPUT),
    (None, 403, "get", S3AccessError, EXIT_BAD_INPUT),
    ("PermanentRedirect", 301, "list", S3AccessError, EXIT_BAD_INPUT),
    ("SlowDown", 503, "get", StorageError, EXIT_FAILED),
    ("InternalError", 500, "get", StorageError, EXIT_FAILED),
    ("BucketAlreadyOwnedByYou", 409, "create_bucket", FileExistsError, None),
])
def test_s3_error_mapping(code, status, op, kind, exit_code):
    s = settings_from(storage(client="boto3", s3={"bucket": "bkt", "endpoint_url": "http://h:1"}))
    e = s3_error(code, status, "msg", op=op, key="k", settings=s)
    assert isinstance(e, kind)
    if exit_code is not None:
        assert e.exit_code == exit_code and e.hint and e.reference
        assert pickle.loads(pickle.dumps(e)).args  # survives the trip back from a loader worker


def test_unreachable_is_a_run_failure_with_a_hint():
    s = settings_from(storage(client="boto3", s3={"bucket": "bkt", "endpoint_url": "http://h:1"}))
    e = unreachable(s, "connection refused")
    assert isinstance(e, S3Unreachable) and e.exit_code == EXIT_FAILED
    assert e.reference == "storage.s3.endpoint_url" and "s3-server.sh" in e.hint
    assert isinstance(s3_error("NoSuchBucket", 404, None, op="list", key="", settings=s), DataError)
