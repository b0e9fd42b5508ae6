"""A deterministic synthetic image-classification dataset.

Every image is a function of (seed, class, index) alone, so the same config
always writes the same bytes whatever the thread count. Each class has its own
colour and stripe frequency (a model can learn it); sizes are drawn from the
configured ranges, so object sizes vary as in real datasets.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from dnnbench.storage.base import Storage


@dataclass
class PrepareStats:
    images: int
    bytes: int
    seconds: float

    @property
    def MB_per_s(self) -> float:  # noqa: N802 - units in the name
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0

    @property
    def MiB_per_s(self) -> float:  # noqa: N802
        return self.bytes / 2**20 / self.seconds if self.seconds > 0 else 0.0


def class_names(n: int) -> list[str]:
    return [f"class_{i:03d}" for i in range(n)]


def make_image(seed: int, cls: int, idx: int, width: tuple[int, int], height: tuple[int, int],
               fmt: str = "jpg", quality: int = 90) -> bytes:
    """Encode one synthetic image; identical output for identical arguments."""
    rng = np.random.default_rng([seed, cls, idx])
    w = int(rng.integers(width[0], width[1] + 1))
    h = int(rng.integers(height[0], height[1] + 1))
    hue = (cls * 47) % 180
    base = np.array(cv2.cvtColor(np.uint8([[[hue, 200, 200]]]), cv2.COLOR_HSV2BGR)[0, 0], dtype=np.float32)
    freq = 2 + cls % 7
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (xx / max(w, 1) + 0.3 * yy / max(h, 1)))
    img = base[None, None, :] * (0.6 + 0.4 * stripes[..., None])
    img += rng.normal(0, 18, size=(h, w, 3)).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if fmt == "png":
        ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    else:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode a synthetic image")
    return buf.tobytes()


def generate(storage: Storage, prefix: str, classes: int, images_per_class: int, *,
             width: tuple[int, int], height: tuple[int, int], fmt: str = "jpg", quality: int = 90,
             seed: int = 0, workers: int = 4,
             progress: Callable[[int, int], None] | None = None) -> PrepareStats:
    """Write ``classes x images_per_class`` images as ``<prefix>/<class>/<id>.<fmt>``.

    Args:
        progress: called with (images done so far, bytes of this image) after each write.
    """
    names = class_names(classes)
    jobs = [(c, i) for c in range(classes) for i in range(images_per_class)]
    t0 = time.perf_counter()

    def one(job: tuple[int, int]) -> int:
        c, i = job
        data = make_image(seed, c, i, width, height, fmt, quality)
        key = "/".join(p for p in (prefix, names[c], f"{i:06d}.{fmt}") if p)
        storage.put(key, data)
        return len(data)

    total = 0
    done = 0
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prepare") as pool:
        for n in pool.map(one, jobs):
            total += n
            done += 1
            if progress is not None:
                progress(done, n)
    return PrepareStats(len(jobs), total, time.perf_counter() - t0)
