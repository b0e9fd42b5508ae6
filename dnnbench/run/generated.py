"""``prepare`` of a format dataset: the ``prepare:`` keys -> DLIO's size model -> every file's
name, shape and seed (:mod:`dnnbench.formats.sizes`) -> the format's generator writing them in
parallel (:mod:`dnnbench.formats.generate`). Today's image folders (``prepare.format`` jpg/png
with none of the file-shape keys) stay with :mod:`dnnbench.data.synthetic`.

Generation is never measured: it runs on the storage without latency emulation, before a run.
"""

from __future__ import annotations

from typing import Any, Callable

from dnnbench.data.synthetic import PrepareStats
from dnnbench.formats.base import Format
from dnnbench.formats.generate import format_builder, generate, make_split_folders
from dnnbench.formats.sizes import PlannedFile, SizeModel, file_extension, plan_layout
from dnnbench.registry import FORMATS
from dnnbench.storage.base import Storage


def format_name(p: Any) -> str:
    """The registered name of ``prepare.format`` (jpg -> jpeg)."""
    return FORMATS.canonical(p.format)


def format_options(cfg: Any) -> dict[str, Any]:
    """The options the files are generated with: ``dataset.format_options`` when ``dataset.format``
    is the format prepare writes (so a run reads what prepare wrote), else the format's defaults."""
    dataset_format = getattr(cfg.dataset, "format", None)
    if dataset_format and FORMATS.canonical(dataset_format) == format_name(cfg.prepare):
        return dict(cfg.dataset.format_options or {})
    return {}


def record_length(p: Any) -> int:
    """Mean bytes per sample: ``record_length_bytes``, else the mean width x mean height (one byte a pixel)."""
    if p.record_length_bytes:
        return int(p.record_length_bytes)
    return max(1, int((p.width[0] + p.width[1]) / 2 * (p.height[0] + p.height[1]) / 2))


def size_model(p: Any) -> SizeModel:
    """DLIO's size model of the ``prepare:`` keys (no valid split: DLIO's ``valid/`` stays empty)."""
    return SizeModel(record_length=record_length(p), record_length_stdev=p.record_length_bytes_stdev,
                     num_samples_per_file=p.samples_per_file,
                     num_files=total_files(p), num_subfolders=p.num_subfolders)


def plan_prefix(p: Any, prefix: str, seed: int) -> list[PlannedFile]:
    """Every file prepare writes under ``prefix``."""
    name = format_name(p)
    ext = file_extension(name, FORMATS.spec_of(name).extensions, p.layout)
    return plan_layout(p.layout, size_model(p), prefix, ext, classes=p.classes, seed=seed)


def generated_params(cfg: Any, seed: int) -> dict[str, Any]:
    """What a generated dataset is a function of (recorded beside it, compared by a later prepare)."""
    p = cfg.prepare
    return {"kind": "generated", "format": format_name(p), "format_options": format_options(cfg),
            "layout": p.layout, "num_files": total_files(p),
            "samples_per_file": p.samples_per_file, "record_length_bytes": record_length(p),
            "record_length_bytes_stdev": p.record_length_bytes_stdev, "num_subfolders": p.num_subfolders,
            "classes": p.classes, "seed": seed}


def build_format(cfg: Any) -> Format:
    """The format prepare writes, built with its validated options."""
    name = format_name(cfg.prepare)
    return FORMATS.get(name)(FORMATS.spec_of(name).parse_options(format_options(cfg)))


def write_prefix(cfg: Any, storage: Storage, prefix: str, seed: int,
                 progress: Callable[[int, int], None] | None = None) -> PrepareStats:
    """Generate the dataset under ``prefix``; DLIO's (empty) ``valid/`` beside ``train/`` where the
    storage has folders. Returns files written, bytes (sidecars included), seconds."""
    p = cfg.prepare
    specs = plan_prefix(p, prefix, seed)
    if p.layout == "dlio":
        make_split_folders(storage, prefix)
    stats = generate(storage, specs, format_builder(build_format(cfg)), workers=p.workers, progress=progress)
    return PrepareStats(stats.files, stats.bytes, stats.seconds)


def total_files(p: Any) -> int:
    """Files per prefix."""
    return p.num_files or p.classes * p.images_per_class
