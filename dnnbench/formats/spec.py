"""How a data format joins dnnbench: the one place (light: no numpy, no h5py, no pyarrow).

A format is a class satisfying :class:`dnnbench.formats.base.Format`, registered in
``dnnbench.registry.FORMATS`` with what it declares about itself (:class:`FormatSpec`): the
file extensions listing keeps, whether each object is one sample read by the per-object
datasets (``dataset.name``: jpeg, png, raw), whether a sample can be located inside a file
(an index, a header or footer) for ranged reads, its options model (``dataset.format_options``
is validated against it at ``validate``) and the pip package it needs.

- a built-in is one row of :data:`BUILTINS` below (``"module:Class"``: nothing is imported
  until a run uses it, so ``validate`` and ``--help`` import neither numpy nor h5py);
- a plugin registers its class with the same facts::

      @FORMATS.register("myrec", extensions=(".myrec",), options=MyRecOptions)
      class MyRecFormat(FileFormat): ...

The options models of the built-in formats live here too, so that validation stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field


class NoFormatOptions(BaseModel):
    """A format that takes no options."""

    model_config = ConfigDict(extra="forbid")


class ArrayOptions(NoFormatOptions):
    """npy / npz: where the samples are in the stored array."""

    sample_axis: Literal["first", "last"] = Field(
        "first", description="the array axis that counts samples: first (n, ...) lets a sample be one ranged "
                             "read; last (..., n) is DLIO's npz/npy layout (a sample is strided: whole-file reads)")


class NpzOptions(ArrayOptions):
    """npz: the member holding the samples."""

    array: str = Field("x", min_length=1, description="the npz member holding the samples (DLIO: x)")


class Hdf5Options(NoFormatOptions):
    """hdf5: the dataset holding the samples (first axis = samples)."""

    dataset: str = Field("records", min_length=1, description="the HDF5 dataset holding the samples (DLIO: records)")


class TfrecordOptions(NoFormatOptions):
    """tfrecord: which ``tf.train.Example`` features hold a sample and its label."""

    feature: str = Field("image", min_length=1, description="the bytes feature holding a sample (DLIO: image)")
    label_feature: str | None = Field("label", description="an int64 feature holding the label, when present "
                                                           "(else the layout's label)")
    encoded: bool = Field(False, description="the feature holds an encoded image (JPEG/PNG) decoded per "
                                             "dataset.decode; false: raw bytes handed on as uint8 (DLIO)")
    verify_crc: bool = Field(True, description="check every record's CRC32C (as tf.data does)")


class ParquetOptions(NoFormatOptions):
    """parquet: the columns of a sample and its label; how generated files are cut."""

    column: str = Field("image", min_length=1, description="the binary column holding a sample")
    label_column: str | None = Field("label", description="an int column holding the label, when present")
    row_group_size: int = Field(1024, ge=1, description="generated files: rows per row group")
    compression: Literal["none", "snappy", "zstd", "gzip", "lz4"] = Field(
        "none", description="generated files: the column compression")


@dataclass(frozen=True)
class FormatSpec:
    """What a format declares when it registers.

    Args:
        extensions: file extensions (``.npz``) listing keeps when ``dataset.extensions`` is not given.
        per_object: every object is one sample, read whole by the ``dataset.name`` datasets and
            decoded by their ``transform`` (jpeg, png, raw): today's image path.
        ranged: a sample can be located inside a file (an index, a header, a footer), so random
            access reads it with one ranged GET; False: files are read whole, in order (tar).
        options: pydantic model of ``dataset.format_options`` (``extra="forbid"``); the validated
            instance reaches the format's constructor as ``options=``.
        install: the pip package the format's library comes from (named when it is missing).
    """

    extensions: tuple[str, ...] = ()
    per_object: bool = False
    ranged: bool = True
    options: type[BaseModel] = NoFormatOptions
    install: str | None = None

    def __post_init__(self) -> None:
        exts = (self.extensions,) if isinstance(self.extensions, str) else tuple(self.extensions)
        if not exts or not all(isinstance(e, str) and e.startswith(".") and len(e) > 1 for e in exts):
            raise ValueError("extensions must be a tuple of at least one '.ext'")
        object.__setattr__(self, "extensions", tuple(e.lower() for e in exts))
        if not (isinstance(self.options, type) and issubclass(self.options, BaseModel)):
            raise ValueError("options must be a pydantic model class")

    def parse_options(self, options: dict[str, Any]) -> BaseModel:
        """The validated ``dataset.format_options``.

        Raises:
            pydantic.ValidationError: unknown keys or bad values.
        """
        return self.options.model_validate(options)


class Builtin(NamedTuple):
    """One built-in format: registry name, ``"module:Class"``, aliases, description, facts."""

    name: str
    target: str
    aliases: tuple[str, ...]
    description: str
    spec: FormatSpec


#: the built-in formats, in the order messages list them
BUILTINS: tuple[Builtin, ...] = (
    Builtin("jpeg", "dnnbench.formats.jpeg:JpegFormat", ("jpg",),
            "one image per object, decoded with OpenCV",
            FormatSpec((".jpg", ".jpeg"), per_object=True)),
    Builtin("png", "dnnbench.formats.png:PngFormat", (),
            "one PNG image per object, decoded with OpenCV", FormatSpec((".png",), per_object=True)),
    Builtin("raw", "dnnbench.formats.raw:RawFormat", ("bytes",),
            "one sample per object, its bytes passed on undecoded", FormatSpec((".bin",), per_object=True)),
    Builtin("tar", "dnnbench.formats.tar:TarFormat", ("webdataset",),
            "WebDataset tar shards: <key>.<ext> + <key>.cls members, streamed",
            FormatSpec((".tar",), ranged=False)),
    Builtin("npy", "dnnbench.formats.npy:NpyFormat", (),
            "one numpy array per file, samples along one axis", FormatSpec((".npy",), options=ArrayOptions)),
    Builtin("npz", "dnnbench.formats.npz:NpzFormat", (),
            "numpy .npz archive, samples along one axis of one member", FormatSpec((".npz",), options=NpzOptions)),
    Builtin("hdf5", "dnnbench.formats.hdf5:Hdf5Format", ("h5",),
            "HDF5 file (h5py), samples along the first axis of one dataset",
            FormatSpec((".hdf5", ".h5"), options=Hdf5Options, install="h5py")),
    Builtin("tfrecord", "dnnbench.formats.tfrecord:TfrecordFormat", ("tfrecords",),
            "TFRecord files of tf.train.Example records; random access through a DALI index or a header scan",
            FormatSpec((".tfrecord", ".tfrecords"), options=TfrecordOptions)),
    Builtin("parquet", "dnnbench.formats.parquet:ParquetFormat", (),
            "Parquet files (pyarrow), a sample per row, read a row group per ranged GET",
            FormatSpec((".parquet",), options=ParquetOptions, install="pyarrow")),
)

#: ``dataset.extensions`` when neither it nor ``dataset.format`` is given (today's image folders)
DEFAULT_EXTENSIONS = (".jpg", ".jpeg", ".png")


def builtin_names() -> list[str]:
    """Names of the built-in formats, in table order."""
    return [b.name for b in BUILTINS]


def prepare_format_names() -> list[str]:
    """What ``prepare.format`` accepts beside jpg/png: every built-in format's name and alias."""
    return [n for b in BUILTINS for n in (b.name, *b.aliases)]
