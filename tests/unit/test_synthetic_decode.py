"""Synthetic dataset generation and OpenCV decoding."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from dnnbench.config.schema import StorageConfig
from dnnbench.data.decode import DecodeError, decode_image
from dnnbench.data.synthetic import generate, make_image
from dnnbench.storage.fs import FileSystemStorage


def digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_deterministic_layout_and_varied_sizes(tmp_path):
    stats = []
    for name, workers in (("a", 1), ("b", 4)):
        s = FileSystemStorage(StorageConfig(root=str(tmp_path / name)))
        stats.append(generate(s, "train", 2, 5, width=(20, 60), height=(20, 60), seed=7, workers=workers))
    assert digest(tmp_path / "a") == digest(tmp_path / "b")  # same bytes whatever the threads
    files = sorted((tmp_path / "a" / "train").rglob("*.jpg"))
    assert [str(f.relative_to(tmp_path / "a")) for f in files][:2] == [
        "train/class_000/000000.jpg", "train/class_000/000001.jpg"]
    assert len(files) == 10 and len({f.stat().st_size for f in files}) > 5
    assert stats[0].images == 10 and stats[0].bytes == sum(f.stat().st_size for f in files)
    assert stats[0].MB_per_s > 0


def test_png_and_other_seed(tmp_path):
    a = make_image(1, 0, 0, (30, 30), (30, 30), "png")
    assert a[:4] == b"\x89PNG"
    assert make_image(1, 0, 0, (30, 30), (30, 30)) != make_image(2, 0, 0, (30, 30), (30, 30))


@pytest.mark.parametrize("mode,channels", [("rgb", 3), ("gray", 1)])
def test_decode_resizes(mode, channels):
    img = decode_image(make_image(0, 1, 2, (40, 40), (30, 30)), mode, (16, 24))
    assert img.shape == (16, 24, channels) and img.dtype == np.uint8


_JPG = make_image(0, 0, 0, (40, 40), (40, 40))
_PNG = make_image(0, 0, 0, (40, 40), (40, 40), "png")


@pytest.mark.parametrize("data", [b"", b"not an image", _JPG[:40], _JPG[: len(_JPG) * 3 // 4],
                                  _PNG[: len(_PNG) - 20]], ids=["empty", "text", "jpeg-header", "jpeg-3/4",
                                                                "png-truncated"])
def test_corrupt_images_raise(data):
    with pytest.raises(DecodeError):
        decode_image(data, "rgb", (8, 8))
