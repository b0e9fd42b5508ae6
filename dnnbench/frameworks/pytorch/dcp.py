"""The checkpoint workload's PyTorch engine: this rank's shard through
``torch.distributed.checkpoint`` (DCP), to a filesystem (``FileSystemWriter``/``Reader``,
``sync_files`` = ``checkpoint.fsync``) or to S3 (s3torchconnector's ``S3StorageWriter``/
``Reader`` on the configured endpoint and credentials).

Each rank's tensors have keys of their own (``rank<r>/t<i>``): DCP deduplicates a key that
several ranks hold, so shared keys would be written once. The first bytes of the first tensor
carry the checkpoint's index, so a load of the wrong checkpoint fails verification. Bytes are
counted where the storage sees them: the lengths DCP's writes report, and the byte ranges of
the data files the reader takes (the small ``.metadata`` is not counted).
"""

from __future__ import annotations

import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException  # a BaseException, not an Exception

from dnnbench.checkpoint.sizes import shard_bytes, tensor_sizes
from dnnbench.errors import RunFailed

#: the bytes of the first tensor that hold the checkpoint's index
STAMP = 8


class _Tally:
    """Bytes counted across the streams of one load."""

    def __init__(self) -> None:
        self.nbytes = 0


def count_reads(reader: Any, tally: _Tally) -> Any:
    """``reader`` with the stored bytes of every item it reads counted in ``tally``: the ranges of
    the data files it takes from the storage (torch.load's re-reads inside a range not counted)."""
    inner = reader._slice_file

    def slice_file(stream: Any, info: Any) -> Any:
        tally.nbytes += info.length
        return inner(stream, info)

    reader._slice_file = slice_file
    return reader


def count_writes(writer: Any, tally: _Tally) -> Any:
    """``writer`` with the lengths of its writes (DCP's WriteResults) counted in ``tally``."""
    inner = writer.write_data

    def write_data(plan: Any, planner: Any) -> Any:
        future = inner(plan, planner)
        tally.nbytes += sum(result.size_in_bytes for result in future.wait())
        return future

    writer.write_data = write_data
    return writer


class DcpEngine:
    """This rank's shard of the checkpoint, saved and loaded through DCP (see the module)."""

    def __init__(self, place: Any, total: int, rank: int, world: int, tensors: int, seed: int):
        self.place, self.rank, self.seed = place, rank, seed
        self.payload_bytes = shard_bytes(total, world, rank)
        self.sizes = tensor_sizes(self.payload_bytes, tensors) if self.payload_bytes else []
        self.state: dict[str, torch.Tensor] = {}
        self.target: dict[str, torch.Tensor] = {}

    def generate(self) -> None:
        gen = torch.Generator().manual_seed(self.seed * 65_537 + self.rank)
        for i, n in enumerate(self.sizes):
            key = f"rank{self.rank}/t{i}"
            words = torch.empty(-(-n // 8), dtype=torch.int64).random_(generator=gen)  # 64 random bits at a time
            data = words.view(torch.uint8)
            self.state[key] = data if data.numel() == n else data[:n].clone()  # a view would save it all
            self.target[key] = torch.zeros(n, dtype=torch.uint8)

    def _stamp(self, index: int) -> None:
        if self.sizes:
            first = next(iter(self.state.values()))
            n = min(STAMP, first.numel())
            first[:n] = torch.frombuffer(bytearray(index.to_bytes(STAMP, "little")), dtype=torch.uint8)[:n]

    def save(self, index: int) -> int:
        self._stamp(index)
        tally = _Tally()
        with self.place.errors("save"), _single_process_quiet():
            dcp.save(self.state, storage_writer=count_writes(self.place.writer(index), tally))
        return tally.nbytes

    def load(self, index: int) -> int:
        tally = _Tally()
        with self.place.errors("load"), _single_process_quiet():
            dcp.load(self.target, storage_reader=count_reads(self.place.reader(index), tally))
        return tally.nbytes

    def verify(self, index: int) -> bool:
        self._stamp(index)
        return all(torch.equal(self.target[k], v) for k, v in self.state.items())

    def local_files(self) -> list[str]:
        return self.place.local_files(self.rank)

    def remove(self) -> None:
        self.place.remove()


@contextmanager
def _single_process_quiet() -> Iterator[None]:
    """DCP without a process group says so on every call: a run of one process is meant that way."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def unwrap(error: BaseException) -> BaseException:
    """The first rank's own exception inside DCP's CheckpointException (else ``error``)."""
    failures = getattr(error, "failures", None)
    if isinstance(failures, dict) and failures:
        inner = next(iter(failures.values()))
        return inner[0] if isinstance(inner, tuple) else inner
    return error


class FsPlace:
    """The checkpoints in ``<directory>/save-<k>/`` on a filesystem."""

    def __init__(self, directory: Path, fsync: bool):
        self.directory, self.fsync = Path(directory), fsync

    def writer(self, index: int) -> Any:
        return dcp.FileSystemWriter(self.directory / f"save-{index}", single_file_per_rank=True,
                                    sync_files=self.fsync, thread_count=1)

    def reader(self, index: int) -> Any:
        return dcp.FileSystemReader(self.directory / f"save-{index}")

    @contextmanager
    def errors(self, op: str) -> Iterator[None]:
        try:
            yield
        except (Exception, CheckpointException) as e:  # noqa: BLE001 - DCP wraps every rank's failure: said once, plainly
            cause = unwrap(e)
            raise RunFailed(f"checkpoint {op} under {self.directory} failed: {type(cause).__name__}: {cause}",
                            reference="storage.root", hint="check the free space and permissions there") from None

    def local_files(self, rank: int) -> list[str]:
        return [str(p) for p in sorted(self.directory.glob(f"save-*/__{rank}_*.distcp"))]

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class S3Place:
    """The checkpoints under ``s3://<bucket>/<prefix>/save-<k>/`` through s3torchconnector's DCP
    writer and reader, on the client of ``storage`` (its endpoint, addressing and credentials)."""

    def __init__(self, storage: Any, prefix: str):
        from s3torchconnector.dcp import S3FileSystem  # the [dcp] extra (tenacity)

        self.storage, self.prefix = storage, prefix.strip("/")
        self.region = storage.settings.region or "us-east-1"
        self._fs = S3FileSystem

    def _uri(self, index: int) -> str:
        return f"s3://{self.storage.settings.bucket}/{self.prefix}/save-{index}"

    def writer(self, index: int) -> Any:
        from s3torchconnector.dcp import S3StorageWriter

        writer = S3StorageWriter(self.region, self._uri(index), thread_count=1)
        writer.fs = self._fs(self.region, s3_client=self.storage.client)
        return writer

    def reader(self, index: int) -> Any:
        from s3torchconnector.dcp import S3StorageReader

        reader = S3StorageReader(self.region, self._uri(index))
        reader.fs = self._fs(self.region, s3_client=self.storage.client,
                             reader_constructor=reader._reader_constructor)
        return reader

    @contextmanager
    def errors(self, op: str) -> Iterator[None]:
        try:
            yield
        except (Exception, CheckpointException) as e:  # noqa: BLE001 - mapped as the storage maps its own errors
            raise self.storage._error(unwrap(e), "put" if op == "save" else "get", self.prefix) from None

    def local_files(self, rank: int) -> list[str]:
        return []

    def remove(self) -> None:
        objects, _ = self.storage.list(self.prefix)
        for obj in objects:
            self.storage.delete(obj.key)
