"""DLIO's size model and file naming: what a generated dataset holds, before any byte is written.

DLIO 2.0 (``data_generator.py``) sizes every file from ``record_length`` (nominal bytes per
sample) and ``record_length_stdev``: a sample is a ``dim1 x dim2`` uint8 array, the sides drawn
once for all files with numpy's legacy generator seeded 10::

    dimension = int(sqrt(record_length)); dimension_stdev = record_length_stdev / 2 / sqrt(record_length)
    np.random.seed(10); sides = np.random.normal(dimension, dimension_stdev, 2 * total_files)  # stdev > 0
    file i: dim1, dim2 = max(int(sides[2i]), 1), max(int(sides[2i + 1]), 1)

so the shapes here are DLIO's exactly (train files first, then valid). Names are
``{data_folder}/{train|valid}/[{s}/]{prefix}_{i}_of_{N}.{ext}``, ``i`` zero-padded to
``len(str(N))`` digits and ``s = i % subfolders`` (when more than one) to ``len(str(subfolders))``.

The bytes inside each file are dnnbench's own: seeded per file (``seed``, the file's position),
so the same model writes the same dataset whatever the thread count.
"""

from __future__ import annotations

import dataclasses
import math
import posixpath
from dataclasses import dataclass

import numpy as np

from dnnbench.formats.base import FileSpec, random_array

#: DLIO's fixed seed of the shape draw
SHAPE_SEED = 10


@dataclass(frozen=True)
class SizeModel:
    """DLIO's ``dataset`` keys that decide what is written (defaults: DLIO 2.0's)."""

    record_length: float = 65536
    record_length_stdev: float = 0
    num_samples_per_file: int = 1
    num_files: int = 8
    num_files_eval: int = 0
    num_subfolders: int = 0
    num_subfolders_eval: int = 0
    file_prefix: str = "img"

    @property
    def dimension(self) -> int:
        """The nominal side of a sample (DLIO's ``dimension``)."""
        return int(math.sqrt(self.record_length))

    @property
    def dimension_stdev(self) -> float:
        return self.record_length_stdev / 2.0 / math.sqrt(self.record_length)

    @property
    def total_files(self) -> int:
        return self.num_files + self.num_files_eval


def dlio_shapes(model: SizeModel) -> list[tuple[int, int]]:
    """``(dim1, dim2)`` of every file, train then valid, exactly as DLIO 2.0 draws them."""
    n = model.total_files
    if model.dimension_stdev > 0:
        sides = np.random.RandomState(SHAPE_SEED).normal(model.dimension, model.dimension_stdev, 2 * n)
        dims = [max(int(d), 1) for d in sides]
    else:
        dims = [model.dimension] * (2 * n)
    return [(dims[2 * i], dims[2 * i + 1]) for i in range(n)]


def file_name(prefix: str, i: int, n: int, ext: str) -> str:
    """DLIO's ``{prefix}_{i}_of_{n}.{ext}``, ``i`` padded to the digits of ``n``."""
    return f"{prefix}_{str(i).rjust(len(str(n)), '0')}_of_{n}.{ext}"


def split_keys(root: str, split: str, n: int, subfolders: int, prefix: str, ext: str) -> list[str]:
    """The keys of one split's ``n`` files, round-robin into subfolders when there are more than one."""
    keys = []
    for i in range(n):
        parts = [root, split]
        if subfolders > 1:
            parts.append(str(i % subfolders).rjust(len(str(subfolders)), "0"))
        parts.append(file_name(prefix, i, n, ext))
        keys.append(posixpath.join(*[p for p in parts if p]))
    return keys


@dataclass(frozen=True)
class PlannedFile:
    """One file to generate: where, its samples' shape, and the seed of its bytes."""

    key: str
    split: str
    number: int  # position within its split
    position: int  # position among all files (train first): the shape and the seed
    dim1: int
    dim2: int
    samples: int
    dimension: int  # the nominal side (tfrecord's ``size`` feature)
    seed: int
    label: int = 0  # the class layout's class

    @property
    def sample_bytes(self) -> int:
        return self.dim1 * self.dim2

    def rng(self) -> np.random.Generator:
        """This file's own generator of bytes (SFC64: fast), the same whoever writes it, in any order."""
        return np.random.Generator(np.random.SFC64([self.seed, self.position]))

    def file_spec(self) -> FileSpec:
        """What a format generates for this file: ``samples`` uint8 arrays of ``dim1 x dim2``."""
        return FileSpec(self.samples, (self.dim1, self.dim2), "uint8", self.label)

    def random_samples(self) -> np.ndarray:
        """``uint8 (samples, dim1, dim2)``: the samples a format's generator draws for this file
        (DLIO draws 0..254, which storage cannot tell apart)."""
        return random_array(self.rng(), (self.samples, self.dim1, self.dim2), "uint8")


def plan(model: SizeModel, root: str, ext: str, seed: int = 0) -> list[PlannedFile]:
    """Every file of the dataset, train then valid (DLIO's order: the shape draw follows it)."""
    shapes = dlio_shapes(model)
    keys = (split_keys(root, "train", model.num_files, model.num_subfolders, model.file_prefix, ext)
            + split_keys(root, "valid", model.num_files_eval, model.num_subfolders_eval, model.file_prefix, ext))
    specs = []
    for pos, (key, (d1, d2)) in enumerate(zip(keys, shapes)):
        train = pos < model.num_files
        specs.append(PlannedFile(key, "train" if train else "valid", pos if train else pos - model.num_files, pos,
                              d1, d2, model.num_samples_per_file, model.dimension, seed))
    return specs


#: prepare.layout values: where the files of a generated dataset go
LAYOUTS = ("classes", "flat", "dlio")


def file_extension(name: str, extensions: tuple[str, ...], layout: str) -> str:
    """A generated file's extension (no dot): the format's name under the dlio layout (DLIO
    writes ``.jpeg``, ``.hdf5``: the format value verbatim), else its first declared extension."""
    return name if layout == "dlio" and f".{name}" in extensions else extensions[0].lstrip(".")


def class_folder(c: int) -> str:
    """The class layout's folder of class ``c`` (today's synthetic sets' names)."""
    return f"class_{c:03d}"


def plan_layout(layout: str, model: SizeModel, root: str, ext: str, *, classes: int = 1,
                seed: int = 0) -> list[PlannedFile]:
    """Every file of a dataset in ``layout`` (sizes from :func:`dlio_shapes` in every layout):

    - ``dlio``: :func:`plan` (``train/`` and ``valid/`` splits, subfolders, DLIO's names);
    - ``flat``: ``{root}/{prefix}_{i}_of_{n}.{ext}``, label 0;
    - ``classes``: file ``i`` in ``{root}/class_{i % classes:03d}/{i // classes:06d}.{ext}``,
      labelled with its class (the shape draw follows ``i``).
    """
    if layout == "dlio":
        return plan(model, root, ext, seed)
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}: use one of {', '.join(LAYOUTS)}")
    flat = SizeModel(model.record_length, model.record_length_stdev, model.num_samples_per_file, model.num_files,
                     file_prefix=model.file_prefix)
    specs = []
    for f in plan(flat, "", ext, seed):
        if layout == "flat":
            key, label = posixpath.join(root, posixpath.basename(f.key)), 0
        else:
            label = f.position % max(1, classes)
            key = posixpath.join(root, class_folder(label), f"{f.position // max(1, classes):06d}.{ext}")
        specs.append(dataclasses.replace(f, key=key.lstrip("/"), label=label))
    return specs
