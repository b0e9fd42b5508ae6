"""The PyTorch engine of the checkpoint workload on a filesystem, in one process: what it
writes is what it reads back (bytes and tensors); a load of another checkpoint, or a changed
byte in the file, fails verification."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytestmark = pytest.mark.slow  # torch.distributed.checkpoint: ~10 s to import and run on 2 busy cores

from dnnbench.frameworks.pytorch.dcp import DcpEngine, FsPlace  # noqa: E402


def engine(tmp_path, total=10_003, rank=0, world=1):
    e = DcpEngine(FsPlace(tmp_path / "ckpt", fsync=True), total, rank, world, tensors=3, seed=7)
    e.generate()
    return e


def test_round_trip_bytes_and_tensors(tmp_path):
    e = engine(tmp_path)
    assert e.payload_bytes == 10_003 and sum(e.sizes) == 10_003
    written = [e.save(0), e.save(1)]
    assert written[0] == written[1] > 10_003  # the tensors plus DCP's framing
    assert e.load(1) == written[1]
    assert e.verify(1)
    assert not e.verify(0)  # the stamp: checkpoint 1 is not checkpoint 0
    assert e.load(0) == written[0] and e.verify(0)
    assert len(e.local_files()) == 2
    e.remove()
    assert not (tmp_path / "ckpt").exists()


def test_a_changed_byte_fails_verification(tmp_path):
    e = engine(tmp_path)
    e.save(0)
    (path,) = e.local_files()
    data = bytearray(open(path, "rb").read())
    tensor_bytes = bytes(e.state["rank0/t2"][-16:].numpy())
    at = data.rfind(tensor_bytes)  # inside the last tensor's stored bytes
    assert at > 0
    data[at] ^= 0xFF
    open(path, "wb").write(bytes(data))
    e.load(0)
    assert not e.verify(0)


def test_each_rank_has_its_own_share(tmp_path):
    shares = [DcpEngine(FsPlace(tmp_path, False), 10, r, 3, 4, 0).payload_bytes for r in range(3)]
    assert shares == [4, 3, 3]
