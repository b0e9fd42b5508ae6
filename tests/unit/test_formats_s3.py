"""Format datasets on S3 (moto's in-memory server): ``prepare`` writes them through an S3 client,
every client locates and reads their samples with ranged GETs, the same bytes as on a filesystem."""

from __future__ import annotations

import os
import posixpath

import numpy as np
import pytest

from dnnbench.config.loading import LoadedConfig, validate
from dnnbench.data.records import index_file
from dnnbench.events import NullEvents
from dnnbench.formats import read
from dnnbench.formats.base import DecodeSpec
from dnnbench.registry import FORMATS
from dnnbench.run.prepare import open_storage, prepare_dataset

pytest.importorskip("moto.server")
pytestmark = pytest.mark.slow  # ~10 s a format: moto and three S3 clients
PREPARE = {"layout": "dlio", "num_files": 2, "samples_per_file": 4, "record_length_bytes": 400,
           "record_length_bytes_stdev": 100}


@pytest.fixture(autouse=True)
def _keep_aws_env(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, os.environ.get(name, "unset"))


def s3_config(client: str, endpoint: str, bucket: str, fmt: str):
    return validate({"storage": {"client": client, "preset": "minio", "prefixes": ["ds"], "create_bucket": True,
                                 "s3": {"bucket": bucket, "endpoint_url": endpoint, "access_key": "AKIAMOTO",
                                        "secret_key": "motosecret", "max_attempts": 2}},
                     "prepare": {**PREPARE, "format": fmt}})


def samples(storage, fmt_name: str, key: str) -> list[bytes]:
    fmt = FORMATS.get(fmt_name)()
    size = next(o.size for o in storage.list(posixpath.dirname(key))[0] if o.key == key)
    found, _, _ = index_file(storage, fmt, key, size)
    out = []
    for i in range(found.count):
        off, n = int(found.offsets[i]), int(found.lengths[i])
        sample, _, nbytes, why, _ = read.read_record(storage, fmt, key, off, n, (off, n) == (0, size), found.meta, i,
                                                  DecodeSpec())
        assert why == "" and nbytes == n
        out.append(np.asarray(sample).tobytes())
    return out


@pytest.mark.parametrize("fmt", ["tfrecord", "hdf5", "npz"])
def test_prepared_on_s3_read_by_every_client_as_on_a_filesystem(moto_endpoint, tmp_path, fmt):
    cfg = s3_config("boto3", moto_endpoint, f"fmt-{fmt}", fmt)
    stats = prepare_dataset(LoadedConfig(cfg, None, []), NullEvents())
    assert stats.images == 2
    local = validate({"storage": {"root": str(tmp_path), "prefixes": ["ds"]}, "prepare": {**PREPARE, "format": fmt}})
    prepare_dataset(LoadedConfig(local, None, []), NullEvents())
    key = f"ds/train/img_1_of_2.{fmt}"
    want = samples(open_storage(local), fmt, key)
    assert len(want) == 4
    for client in ("boto3", "minio", "s3fs"):
        assert samples(open_storage(s3_config(client, moto_endpoint, f"fmt-{fmt}", fmt)), fmt, key) == want
