"""The checkpoint workload's TensorFlow engine: ``tf.train.Checkpoint`` of uint8 variables
written to and read from a local directory (TensorFlow has no s3:// filesystem: refused at
validation). ``checkpoint.fsync``: every file written is fsync'd inside the timed save
(TensorFlow's writer does not). Bytes are the checkpoint files' sizes: the data and index
files, which ``read`` reads whole. The first bytes of the first variable carry the index.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from dnnbench.checkpoint.sizes import tensor_sizes
from dnnbench.errors import RunFailed
from dnnbench.frameworks.tensorflow._tf import tf

STAMP = 8


class TfEngine:
    """One process's checkpoint through tf.train.Checkpoint (see the module)."""

    def __init__(self, directory: Path, total: int, tensors: int, seed: int, fsync: bool):
        self.directory, self.seed, self.fsync = Path(directory), seed, fsync
        self.payload_bytes = total
        self.sizes = tensor_sizes(total, tensors)
        self.source: list[np.ndarray] = []

    def generate(self) -> None:
        rng = np.random.default_rng(self.seed)
        self.source = [rng.integers(0, 256, n, dtype=np.uint8) for n in self.sizes]
        self.saved = tf.train.Checkpoint(**{f"t{i}": tf.Variable(a) for i, a in enumerate(self.source)})
        self.loaded_vars = {f"t{i}": tf.Variable(np.zeros(n, np.uint8)) for i, n in enumerate(self.sizes)}
        self.loaded = tf.train.Checkpoint(**self.loaded_vars)

    def _stamp(self, index: int) -> None:
        first = self.source[0]
        n = min(STAMP, first.size)
        first[:n] = np.frombuffer(index.to_bytes(STAMP, "little"), np.uint8)[:n]

    def _prefix(self, index: int) -> str:
        return str(self.directory / f"save-{index}" / "ckpt")

    def _files(self, index: int) -> list[Path]:
        return sorted((self.directory / f"save-{index}").glob("ckpt.*"))

    def save(self, index: int) -> int:
        self._stamp(index)
        n = min(STAMP, self.sizes[0])
        self.saved.t0[:n].assign(self.source[0][:n])  # the stamp alone: 8 bytes
        try:
            self.saved.write(self._prefix(index))
            files = self._files(index)
            if self.fsync:
                for path in files:
                    fd = os.open(path, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
        except (OSError, tf.errors.OpError) as e:
            raise RunFailed(f"checkpoint save to {self.directory} failed: {e}", reference="storage.root") from None
        return sum(p.stat().st_size for p in files)

    def load(self, index: int) -> int:
        try:
            self.loaded.read(self._prefix(index)).assert_consumed()
        except (OSError, tf.errors.OpError, AssertionError) as e:
            raise RunFailed(f"checkpoint load from {self.directory} failed: {e}", reference="storage.root") from None
        return sum(p.stat().st_size for p in self._files(index))

    def verify(self, index: int) -> bool:
        self._stamp(index)
        return all(np.array_equal(self.loaded_vars[f"t{i}"].numpy(), a) for i, a in enumerate(self.source))

    def local_files(self) -> list[str]:
        return [str(p) for p in sorted(self.directory.glob("save-*/ckpt.*"))]

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
