"""The storage contract (tests/storage_contract.py) for every registered built-in backend: the
filesystem, latency emulation around it, and each S3 client against moto's in-memory S3 server
(fast, no signatures; tests/integration/test_s3_storage.py runs the S3 clients against a real one).

A backend joins by being registered: the fixture for its kind is :data:`FIXTURES`' (a new kind
of backend adds its fixture there)."""

from __future__ import annotations

import pytest

from dnnbench.config.loading import validate
from dnnbench.config.schema import StorageConfig
from dnnbench.registry import STORAGE
from dnnbench.storage import create_storage
from dnnbench.storage.backends import FILESYSTEM, S3
from tests.storage_contract import ContractFixture, StorageContract, unique

pytest.importorskip("moto.server")


class FsFixture(ContractFixture):
    """Folders under a temporary directory."""

    def __init__(self, name: str, base):
        self.name, self.base, self.family = name, base, f"fs:{base}"

    def new_location(self) -> str:
        path = self.base / unique("root")
        path.mkdir()
        return str(path)

    def open(self, location, recorder=None):
        return create_storage(StorageConfig(client=self.name, root=location), recorder=recorder)

    def missing(self):
        return self.open(str(self.base / "no-such-folder"))


class EmulatedFixture(FsFixture):
    """The filesystem behind the latency-emulation wrapper (no delay: the wrapper's behaviour alone)."""

    def open(self, location, recorder=None):
        cfg = StorageConfig(client="fs", root=location, emulate={"latency_ms": 0})
        return create_storage(cfg, recorder=recorder)


class MotoFixture(ContractFixture):
    """Buckets on moto's S3 server; stocked with boto3."""

    page_size = 1000

    def __init__(self, name: str, endpoint: str):
        self.name, self.endpoint, self.family = name, endpoint, f"moto:{endpoint}"

    def new_location(self) -> str:
        bucket = unique("contract")
        assert self.open(bucket, client="boto3").ensure_bucket() is True
        return bucket

    def open(self, location, recorder=None, client=None):
        cfg = validate({"storage": {"client": client or self.name, "preset": "minio", "s3": {
            "bucket": location, "endpoint_url": self.endpoint, "access_key": "AKIAMOTO", "secret_key": "motosecret",
            "max_attempts": 2}}})
        return create_storage(cfg.storage, recorder=recorder)

    def writer(self, location):
        return self.open(location, client="boto3")

    def missing(self):
        return self.open("moto-never-created")


#: how the contract gets stores of each kind of backend
FIXTURES = {FILESYSTEM: lambda name, request: FsFixture(name, request.getfixturevalue("tmp_path_factory")
                                                        .mktemp("contract")),
            S3: lambda name, request: MotoFixture(name, request.getfixturevalue("moto_endpoint"))}
#: every built-in backend, and latency emulation (a wrapper around any of them)
BACKENDS = [e.name for e in STORAGE.entries() if e.origin == "builtin"] + ["fs+emulate"]


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request) -> ContractFixture:
    name = request.param
    if name == "fs+emulate":
        return EmulatedFixture(name, request.getfixturevalue("tmp_path_factory").mktemp("contract"))
    kind = STORAGE.spec_of(name).kind
    if kind not in FIXTURES:
        pytest.fail(f"storage backend {name!r} (kind {kind}) has no contract fixture: add one to FIXTURES")
    return FIXTURES[kind](name, request)


class TestStorageContract(StorageContract):
    pass


def test_every_builtin_backend_is_in_the_contract():
    assert set(BACKENDS) >= {"fs", "boto3", "minio", "s3fs", "s3torchconnector", "fs+emulate"}
