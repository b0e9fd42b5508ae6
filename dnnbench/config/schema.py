"""The one config schema. Unknown keys are errors (``extra="forbid"``).

Key paths used by docs, examples and checks: ``framework.name``,
``framework.batch_size``, ``framework.num_workers``, ``training.trainer``,
``training.epochs``, ``dataset.access``, ``dataset.decode``, ``storage.client``.
"""

from __future__ import annotations

import os
import re
import types
import typing
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationInfo, field_validator, model_validator

from dnnbench.config.checkpoint import CHECKPOINT_WORKLOAD, checkpoint_problem
from dnnbench.config.limits import check_limits
from dnnbench.formats.spec import prepare_format_names
from dnnbench.registry import STORAGE
from dnnbench.storage.backends import DEFAULT_S3_CLIENT, FILESYSTEM, S3, builtin_names, spoken_list


class Strict(BaseModel):
    """Unknown keys are errors; NaN and infinities are refused in every float; a boolean is
    never taken as a number (``batch_size: true``, ``epochs: yes`` would otherwise be 1)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, v: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and _bool_in_number(v, field.annotation):
            raise ValueError("a boolean is not accepted here (YAML reads yes/no/on/off/true/false as "
                             "booleans): write the number, or quote the word")
        return v


#: seeds reach numpy (``np.random.seed``: 0 to 2**32 - 1) and torch: this range fits both
Seed = Annotated[int, Field(ge=0, le=2**32 - 1, description="0 to 4294967295 (2**32 - 1), numpy's seed range")]


def _bool_in_number(v: Any, tp: Any) -> bool:
    """True when ``v`` is (or a list/tuple ``v`` holds) a boolean where ``tp`` takes none."""
    if isinstance(v, bool):
        return not _takes_bool(tp)
    if isinstance(v, (list, tuple)) and any(isinstance(x, bool) for x in v):
        for member in union_members(tp):
            if typing.get_origin(member) in (list, tuple):
                args = [a for a in typing.get_args(member) if a is not Ellipsis]
                return not any(_takes_bool(a) for a in args)
    return False


def _takes_bool(tp: Any) -> bool:
    for member in union_members(tp):
        if member is bool or member is Any:
            return True
        origin = typing.get_origin(member)
        if origin is Literal and any(isinstance(a, bool) for a in typing.get_args(member)):
            return True
        if origin is typing.Annotated and _takes_bool(typing.get_args(member)[0]):
            return True
        if origin in (dict, list, tuple) or (isinstance(member, type) and issubclass(member, BaseModel)):
            return True  # containers: their items are checked where they are validated
    return False


def union_members(tp: Any) -> tuple[Any, ...]:
    """The alternatives of a Union / Optional (the type itself otherwise)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return tuple(a for m in typing.get_args(tp) for a in union_members(m))
    return (tp,)


def relative_prefix(v: str, what: str = "the prefix") -> str:
    """A key prefix inside the storage (under ``storage.root`` or the bucket), ``/``-trimmed.

    ``''`` and ``'/'`` are the root itself. Refused, as they would leave the root (the rule
    of ``dnnbench.storage.keys.unsafe_key``): an absolute path, a ``..`` part, a NUL byte.

    Raises:
        ValueError: saying why; ``what`` names the value (``entry 'x'`` in a list).
    """
    if v in ("", "/"):
        return ""
    if "\x00" in v:
        raise ValueError(f"{what} has a NUL byte")
    if v.startswith(("/", "\\")) or (len(v) > 1 and v[1] == ":" and v[0].isalpha()):
        raise ValueError(f"{what} is an absolute path: prefixes are relative to storage.root (fs) or the "
                         f"bucket (S3); put the directory in storage.root, or drop the leading '/'")
    if ".." in v.replace("\\", "/").split("/"):
        raise ValueError(f"{what} has a '..' part: prefixes must stay inside storage.root or the bucket; "
                         "point storage.root higher instead")
    return v.strip("/")


def distinct_prefixes(prefixes: list[str]) -> list[str]:
    """Refuse a prefix listed twice or lying inside another: its samples would be read twice.

    Raises:
        ValueError: naming the two entries.
    """
    for i, a in enumerate(prefixes):
        for b in prefixes[i + 1:]:
            if a == b:
                raise ValueError(f"entry {a or '(the root)'!r} is listed twice: its samples would be read twice")
            outer, inner = (a, b) if len(a) <= len(b) else (b, a)
            if outer == "" or inner.startswith(outer + "/"):
                raise ValueError(f"entry {inner!r} lies inside {outer or '(the root)'!r}: its samples would be "
                                 "read twice; keep one of them")
    return prefixes


#: ``storage.preset``: defaults filled into ``storage.s3`` (explicit keys win)
S3_PRESETS: dict[str, dict[str, Any]] = {
    "aws": {},  # AWS itself: no endpoint, virtual-hosted addressing, region/credentials from the AWS chain
    "dss": {"addressing_style": "path", "region": "us-east-1"},
    "minio": {"addressing_style": "path", "region": "us-east-1"},
}


class S3Config(Strict):
    """An S3 bucket on AWS or any S3-compatible endpoint. Keys are never written anywhere:
    give them as ``${ENV}`` references, or leave them out to use the AWS credential chain."""

    bucket: str = Field(..., description="bucket name (prefixes go in storage.prefixes)")
    endpoint_url: str | None = Field(None, description="http(s)://host:port of an S3-compatible server; absent = AWS")
    region: str | None = Field(None, description="signing region; default: profile/env (AWS) or us-east-1")
    profile: str | None = Field(None, description="profile in ~/.aws/config and ~/.aws/credentials")
    access_key: str | None = Field(None, repr=False, description="prefer ${ENV}; absent = AWS credential chain")
    secret_key: str | None = Field(None, repr=False, description="prefer ${ENV}; absent = AWS credential chain")
    session_token: str | None = Field(None, repr=False, description="temporary credentials' token")
    addressing_style: Literal["auto", "path", "virtual"] | None = Field(
        None, description="default: path with endpoint_url, virtual on AWS")
    verify_tls: bool = Field(True, description="verify the server's TLS certificate")
    ca_bundle: str | None = Field(None, description="PEM file of CA certificates to verify the server with")
    max_pool_connections: PositiveInt = Field(32, description="HTTP connections kept per process")
    connect_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(60.0, gt=0)
    retry_mode: Literal["standard", "adaptive", "legacy"] = "standard"
    max_attempts: int = Field(3, ge=1, le=20, description="attempts per request, the first included")

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        # ``${VAR:-}`` gives "": treat it as "not set" (the credential chain is used then)
        if isinstance(data, dict):
            return {k: (None if v == "" and k != "bucket" else v) for k, v in data.items()}
        return data

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: str) -> str:
        if v.startswith("s3://"):
            raise ValueError("give the bare bucket name, without s3://")
        if not v or "/" in v or any(c.isspace() for c in v):
            raise ValueError("a bucket name has no '/' or spaces: put the path part in storage.prefixes")
        return v

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is None:
            return v
        example = "e.g. http://127.0.0.1:9000 or https://s3.example.com"
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, {example}")
        if any(c.isspace() for c in v):
            raise ValueError(f"a URL has no spaces, {example}")
        try:
            url = urlsplit(v)
            port = url.port  # ValueError when not a number in 0-65535
        except ValueError:
            raise ValueError(f"not a valid URL (host or port), {example}") from None
        if not url.hostname:
            raise ValueError(f"has no host, {example}")
        if url.username is not None or url.password is not None:
            raise ValueError("holds credentials (user:password@): give them as storage.s3.access_key / "
                             "secret_key (${ENV} references) instead")
        if port == 0:
            raise ValueError(f"port 0 is not a server port, {example}")
        if url.query or url.fragment:
            raise ValueError(f"has a ?query or #fragment, {example}")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _pairs(self) -> "S3Config":
        if (self.access_key is None) != (self.secret_key is None):
            raise ValueError("set both access_key and secret_key, or neither (the AWS credential chain is used then)")
        if self.profile and self.access_key:
            raise ValueError("set either profile or access_key/secret_key, not both")
        if self.ca_bundle and not self.verify_tls:
            raise ValueError("ca_bundle is for verifying TLS: drop it or set verify_tls: true")
        return self


class EmulateConfig(Strict):
    """User-space emulation of a remote store around any backend."""

    latency_ms: float = Field(0.0, ge=0, description="added before every request's first byte")
    jitter_ms: float = Field(0.0, ge=0, description="uniform +- jitter on the latency")
    bandwidth_MBps: float | None = Field(None, gt=0, description="cap on each request's transfer rate, 10^6 B/s")

    @model_validator(mode="after")
    def _jitter(self) -> "EmulateConfig":
        if self.jitter_ms > self.latency_ms:
            raise ValueError(f"jitter_ms {self.jitter_ms} is larger than latency_ms {self.latency_ms}")
        return self


class ShardsConfig(Strict):
    """Tar shards (WebDataset layout) for ``dataset.access: shards`` and ``prepare --shards``."""

    prefix: str = Field("shards", description="where the shards live in the storage (under root/bucket)")
    max_bytes: PositiveInt = Field(10_000_000, description="cut a shard before it exceeds this many bytes")
    max_samples: PositiveInt = Field(1000, description="cut a shard at this many samples")
    seed: Seed = Field(0, description="the random sample order of packing")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        return relative_prefix(v)


class StorageConfig(Strict):
    """Where the dataset lives and which client reads it."""

    client: str = Field("fs", description=f"storage client plugin: {', '.join(builtin_names())}")
    name: str | None = Field(None, description="label for reports; default derived from client and root")
    root: str | None = Field(None, description="fs: base directory that prefixes are relative to")
    prefixes: list[str] = Field(default_factory=lambda: [""],
                                description="dataset roots under root/bucket; each holds <class>/<file>")
    options: dict[str, Any] = Field(default_factory=dict, description="client plugin's own options")
    preset: Literal["aws", "dss", "minio"] | None = Field(
        None, description="S3 defaults for AWS, DSS or MinIO (client boto3 unless given)")
    s3: S3Config | None = Field(None, description="S3 clients: bucket, endpoint, credentials, retries")
    create_bucket: bool = Field(False, description="prepare: create the S3 bucket when it is missing")
    emulate: EmulateConfig | None = Field(None, description="add per-request latency / a bandwidth cap (no netem "
                                                            "needed); emulated runs are marked as such")

    @field_validator("prefixes")
    @classmethod
    def _prefixes(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one prefix is needed ('' for the root itself)")
        return distinct_prefixes([relative_prefix(p, f"entry {p!r}") for p in v])

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("preset") not in S3_PRESETS:
            return data
        data = dict(data)
        data.setdefault("client", DEFAULT_S3_CLIENT)
        if isinstance(data.get("s3"), dict):
            data["s3"] = {**S3_PRESETS[data["preset"]], **data["s3"]}
        return data

    @model_validator(mode="after")
    def _s3_checks(self) -> "StorageConfig":
        problem = kind_problem(self)
        if problem:
            raise ValueError(problem)
        if self.preset == "aws" and self.s3 is not None and self.s3.endpoint_url:
            raise ValueError("preset aws talks to AWS itself: drop storage.s3.endpoint_url, or use preset "
                             "dss or minio for an S3-compatible server")
        if self.preset in ("dss", "minio") and self.s3 is not None and not self.s3.endpoint_url:
            raise ValueError(f"preset {self.preset} needs storage.s3.endpoint_url (e.g. http://host:9000)")
        return self


def kind_problem(storage: StorageConfig) -> str | None:
    """What the storage section lacks or has too much of for its client's kind (a client not
    registered yet, a plugin still to be loaded, is checked again once it is: see
    :func:`dnnbench.config.plugins.check_plugin_names`)."""
    backend = STORAGE.spec_of(storage.client)
    kind = backend.kind if backend is not None else None
    if kind == S3:
        if storage.s3 is None:
            return f"client {storage.client!r} reads S3: add storage.s3 with at least bucket"
        if storage.root is not None:
            return "storage.root is for the fs client; an S3 dataset is storage.s3.bucket + storage.prefixes"
    elif kind == FILESYSTEM and (storage.s3 is not None or storage.preset):
        return (f"storage.s3 / storage.preset are set but storage.client is {storage.client!r}: "
                f"use {spoken_list(builtin_names(S3))}")
    return None


class PrepareConfig(Strict):
    """Synthetic image-classification dataset for `benchmark.py prepare`."""

    auto: bool = Field(False, description="generate the dataset before a run when it is missing")
    classes: PositiveInt = 4
    images_per_class: PositiveInt = 64
    format: str = Field("jpg", min_length=1, description="file format to generate: jpg | png (image folders) "
                                                         "or a dataset.format name (npz, hdf5, tfrecord...)")
    layout: Literal["classes", "flat", "dlio"] = Field(
        "classes", description="classes: <prefix>/<class>/<file>; flat: files under <prefix>; "
                               "dlio: <prefix>/train/img_<i>_of_<n>.<ext> and an empty valid/")
    num_files: PositiveInt | None = Field(None, description="multi-sample formats: files to write "
                                                            "(default classes x images_per_class)")
    samples_per_file: PositiveInt = Field(1, description="samples each generated file holds")
    record_length_bytes: PositiveInt | None = Field(None, description="mean sample size in bytes (DLIO's "
                                                                      "record_length); default from width/height")
    record_length_bytes_stdev: int = Field(0, ge=0, description="spread of sample sizes (DLIO's record_length_stdev)")
    num_subfolders: int = Field(0, ge=0, description="dlio layout: spread files over this many subfolders")
    width: tuple[PositiveInt, PositiveInt] = (32, 128)
    height: tuple[PositiveInt, PositiveInt] = (32, 128)
    jpeg_quality: int = Field(90, ge=1, le=100)
    seed: Seed = 0
    workers: PositiveInt = 4

    @field_validator("format")
    @classmethod
    def _format(cls, v: str) -> str:
        if v not in ("jpg", "png") and v not in prepare_format_names():
            raise ValueError(f"{v!r} is not a format prepare writes: use jpg or png (today's image folders) or one "
                             f"of {', '.join(prepare_format_names())}")
        return v

    @model_validator(mode="after")
    def _ranges(self) -> "PrepareConfig":
        for name in ("width", "height"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name}: min {lo} is larger than max {hi}")
        if self.samples_per_file > 1 and self.format in ("jpg", "jpeg", "png", "raw", "bytes"):
            raise ValueError(f"samples_per_file: a {self.format} file holds one sample (use npz, hdf5, tfrecord, "
                             "parquet, npy or tar for many samples per file)")
        if self.num_subfolders and self.layout != "dlio":
            raise ValueError("num_subfolders: only the dlio layout spreads files over subfolders")
        return self

    @property
    def image_folders(self) -> bool:
        """Today's synthetic image folders (jpg/png of varied sizes and colours in class folders):
        none of the file-shape keys is set."""
        return (self.format in ("jpg", "png") and self.layout == "classes" and self.num_files is None
                and self.samples_per_file == 1 and self.record_length_bytes is None)


class DatasetConfig(Strict):
    name: str = Field("image_folder", description="dataset plugin")
    access: Literal["random", "sequential", "shards"] = Field(
        "random", description="random: map-style, one read per sample, reshuffled each epoch; sequential: "
                              "one read per object in listing order; shards: tar shards streamed in order")
    shuffle_buffer: PositiveInt = Field(1000, description="shards: samples held to mix shards (bounds memory)")
    decode: Literal["rgb", "gray", "none"] = "rgb"
    image_dimension: tuple[PositiveInt, PositiveInt] = Field((32, 32), description="[height, width] after resize")
    labels: list[str] | None = Field(None, description="class directories to read, in label order; default all, sorted")
    extensions: list[str] = Field(default_factory=lambda: [".jpg", ".jpeg", ".png"])
    max_samples: PositiveInt | None = Field(None, description="use only the first N samples of the index")
    manifest: str | None = Field(None, description="cache the sample index in this file: a re-run with the "
                                                   "same storage, prefixes and extensions skips listing")
    on_error: Literal["fail", "skip"] = Field("fail", description="a sample that is missing, truncated or "
                                              "not an image: fail the run naming it, or skip and count it")
    max_skipped_percent: float = Field(5.0, ge=0, le=100, allow_inf_nan=False,
                                       description="on_error skip: an epoch that skips more than this share of "
                                                   "its samples fails the run")
    options: dict[str, Any] = Field(default_factory=dict, description="dataset plugin's own options")
    format: str | None = Field(None, description="file format: jpeg | png | raw | npy | npz | hdf5 | tfrecord | "
                                                 "parquet | tar or a plugin; default: images by dataset.name")
    format_options: dict[str, Any] = Field(default_factory=dict, description="the format's own options")
    layout: Literal["classes", "flat", "dlio"] = Field(
        "classes", description="classes: one folder per label; flat: files under the prefix, labels from "
                               "labels_file or none; dlio: DLIO's train/ and valid/ folders")
    labels_file: str | None = Field(None, description="flat layout: CSV or JSON lines of key,label")
    file_shuffle: Literal["off", "seed", "random"] = Field(
        "random", description="order of files: off = listing order; seed = one seeded order for every "
                              "epoch; random = a new seeded order each epoch (DLIO's file_shuffle)")
    sample_shuffle: Literal["off", "seed", "random"] = Field(
        "random", description="order of samples within the epoch, as file_shuffle (DLIO's sample_shuffle)")
    requests_in_flight: PositiveInt = Field(1, description="GETs each loader worker keeps outstanding")

    @field_validator("extensions")
    @classmethod
    def _exts(cls, v: list[str]) -> list[str]:
        return [e.lower() if e.startswith(".") else f".{e.lower()}" for e in v]

    @model_validator(mode="before")
    @classmethod
    def _before(cls, data: Any) -> Any:
        """``format: raw`` (one undecoded sample per object) reads with the ``raw`` dataset unless a
        name is given; ``file_shuffle: off`` (YAML reads it as false) is ``"off"``."""
        if not isinstance(data, dict):
            return data
        if data.get("format") in ("raw", "bytes") and "name" not in data:
            data = {**data, "name": "raw"}
        return {**data, **{k: "off" for k in ("file_shuffle", "sample_shuffle") if data.get(k) is False}}

    @model_validator(mode="after")
    def _format_and_layout(self) -> "DatasetConfig":
        """The format, layout and shuffle keys fit together (the format's name and options are
        checked against the FORMATS registry in :mod:`dnnbench.config.options`)."""
        if self.format_options and not self.format:
            raise ValueError("dataset.format_options is given without dataset.format")
        if self.format and self.access == "shards":
            raise ValueError("dataset.access shards packs image folders into tar shards; with dataset.format "
                             "use access random (one read per sample) or sequential (files read whole)")
        if self.labels_file and self.layout != "flat":
            raise ValueError(f"dataset.labels_file labels a flat layout (dataset.layout is {self.layout}: "
                             "classes take their label from the folder, dlio files have none)")
        if self.manifest and self.layout != "classes":
            raise ValueError("dataset.manifest caches the listing of class folders; drop it for a "
                             f"{self.layout} layout")
        return self

    @model_validator(mode="after")
    def _in_flight(self) -> "DatasetConfig":
        """requests_in_flight > 1 reaches the per-object reads (random, sequential), not the
        streamed tar shards nor files of many samples: refused there rather than ignored."""
        if self.requests_in_flight > 1 and (self.access == "shards" or self.format):
            what = "access shards (each worker streams one shard at a time)" if self.access == "shards" \
                else f"dataset.format {self.format} (its files are read by one request at a time per worker)"
            raise ValueError(f"dataset.requests_in_flight {self.requests_in_flight} is not supported with {what}: "
                             "set it to 1, or raise framework.num_workers for more requests in flight")
        return self


class TensorFlowOptions(Strict):
    """tf.data loader settings (``framework.name: tensorflow``; ignored by pytorch).

    ``framework.num_workers`` is the read parallelism of both frameworks: PyTorch's
    loader processes, tf.data's ``num_parallel_calls`` of the read stage. Either way it
    is the number of storage requests in flight, and the ``workers`` column.
    """

    read_unit: Literal["batch", "sample"] = Field(
        "batch", description="one Python read call per batch of indices (tf.data's vectorized map, "
                             "like a PyTorch worker building a batch) or per sample")
    parallelism: Literal["map", "interleave"] = Field(
        "map", description="map: one parallel map over the read units; interleave: the epoch split "
                           "into cycle_length streams read side by side")
    num_parallel_calls: PositiveInt | Literal["autotune"] | None = Field(
        None, description="reads in flight; default framework.num_workers (an int here sets it); "
                          "autotune: tf.data decides, at most framework.num_workers")
    cycle_length: PositiveInt | None = Field(
        None, description="interleave: streams open at once; default the parallelism")
    prefetch: PositiveInt | Literal[0, "autotune"] | None = Field(
        None, description="batches buffered after reading; default num_workers x prefetch_factor "
                                "(what a PyTorch DataLoader keeps in flight); 0: none")
    shuffle_buffer: PositiveInt | None = Field(
        None, description="default: an exact permutation per epoch (the same order as pytorch); "
                          "N: tf.data's Dataset.shuffle with a buffer of N samples")
    deterministic: bool = Field(True, description="false lets later reads overtake slow ones")


class FrameworkConfig(Strict):
    name: Literal["pytorch", "tensorflow"] = "pytorch"
    batch_size: PositiveInt = 32
    num_workers: int = Field(2, ge=0)
    shuffle: bool = True
    prefetch_factor: PositiveInt | None = 2
    persistent_workers: bool = False
    pin_memory: bool | Literal["auto"] = "auto"
    drop_last: bool = False
    multiprocessing_context: Literal["fork", "spawn", "forkserver"] | None = None
    #: compute threads of the training process; auto: OMP_NUM_THREADS, else max(1, (cores - num_workers) // 2)
    intra_op_threads: PositiveInt | Literal["auto"] = "auto"
    tensorflow: TensorFlowOptions = Field(default_factory=TensorFlowOptions)

    @field_validator("name", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v

    @field_validator("intra_op_threads", mode="before")
    @classmethod
    def _threads(cls, v: Any) -> Any:
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            return v
        raise ValueError("use auto or a thread count of at least 1")

    @model_validator(mode="before")
    @classmethod
    def _tf_calls_set_workers(cls, data: Any) -> Any:
        """``tensorflow.num_parallel_calls: N`` alone means ``num_workers: N`` (one parallelism)."""
        if isinstance(data, dict) and "num_workers" not in data and isinstance(data.get("tensorflow"), dict):
            calls = data["tensorflow"].get("num_parallel_calls")
            if isinstance(calls, int) and not isinstance(calls, bool) and calls > 0:
                data = {**data, "num_workers": calls}
        return data

    @model_validator(mode="after")
    def _tf_parallelism(self) -> "FrameworkConfig":
        tf = self.tensorflow
        if self.name != "tensorflow":
            return self
        if isinstance(tf.num_parallel_calls, int) and tf.num_parallel_calls != self.num_workers:
            raise ValueError(f"tensorflow.num_parallel_calls ({tf.num_parallel_calls}) differs from num_workers "
                             f"({self.num_workers}): they are the same setting, give one of them")
        if tf.num_parallel_calls == "autotune" and self.num_workers == 0:
            raise ValueError("tensorflow.num_parallel_calls autotune needs num_workers >= 1 (its upper bound)")
        if tf.cycle_length is not None and tf.parallelism != "interleave":
            raise ValueError("tensorflow.cycle_length is for tensorflow.parallelism: interleave")
        if tf.cycle_length is not None and tf.cycle_length < max(1, self.num_workers):
            raise ValueError(f"tensorflow.cycle_length ({tf.cycle_length}) must be at least num_workers "
                             f"({self.num_workers}): interleave reads at most one element per open stream")
        return self


class ModelConfig(Strict):
    name: str = "convnet"
    options: dict[str, Any] = Field(default_factory=dict, description="model plugin's own options")


class TrainingConfig(Strict):
    trainer: str = Field("train", description="train | read | emulate | checkpoint (the checkpoint workload) "
                                              "| plugin")
    epochs: PositiveInt = 1
    max_steps: PositiveInt | None = Field(None, description="cap on steps per epoch")
    warmup_steps: int = Field(0, ge=0, description="first steps excluded from AU and steady-state figures")
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(0.01, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    compute_time_s: float = Field(0.0, ge=0, description="emulate: seconds of 'accelerator' time per step")
    au_target_percent: float | None = Field(None, gt=0, le=100, description="accelerator utilisation the "
                                                                         "run must reach (MLPerf: 90)")


class PhasesConfig(Strict):
    list: bool = Field(True, description="always true: listing builds the sample index (dataset.manifest "
                                         "skips it on re-runs)")
    train: bool = True
    inference: bool = Field(False, description="evaluate the model on a held-out split after training")
    checkpoint: bool = Field(False, description="save model + optimizer state to the storage, load it back, verify")

    @field_validator("list")
    @classmethod
    def _list(cls, v: bool) -> bool:
        if not v:
            raise ValueError("listing cannot be turned off: it builds the sample index that every phase reads. "
                             "To skip it on re-runs, set dataset.manifest: the index is saved there and read "
                             "back while the storage, prefixes and extensions are the same")
        return v


class InferenceConfig(Strict):
    """The held-out split read by the inference phase, through the same storage."""

    prefixes: list[str] | None = Field(None, description="held-out dataset roots; default: a seeded "
                                                          "holdout_fraction of the listed samples")
    holdout_fraction: float = Field(0.1, gt=0, lt=1, description="share of the listed samples kept out of "
                                                                  "training when prefixes is not given")
    batch_size: PositiveInt | None = Field(None, description="default: framework.batch_size")

    @field_validator("prefixes")
    @classmethod
    def _prefixes(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else distinct_prefixes([relative_prefix(p, f"entry {p!r}") for p in v])


class CheckpointConfig(Strict):
    """Checkpoint I/O through the configured storage: the small ``execution.phases.checkpoint``
    round trip (``prefix``, ``size_MiB``, ``keep``), and the checkpoint workload
    (``training.trainer: checkpoint``: every other key), see :mod:`dnnbench.checkpoint`."""

    prefix: str = Field("checkpoints", description="checkpoints are written as <prefix>/<run-id>.ckpt "
                                                   "(the workload: <prefix>/<run-id>/save-<k>/)")
    size_MiB: float = Field(0.0, ge=0, description="pad the state with this many MiB to benchmark large checkpoints")
    keep: bool = Field(False, description="keep the checkpoint object after the phase (default: delete it)")
    preset: str | None = Field(None, description="workload: the total size of an MLPerf Storage model's "
                                                 "checkpoint: llama3-8b, llama3-70b, llama3-405b, llama3-1t")
    scale: float = Field(1.0, gt=0, le=1, description="workload: the preset's size times this (e.g. 0.01)")
    size_bytes: PositiveInt | None = Field(None, description="workload: the total size over all ranks, in "
                                                             "bytes (instead of preset)")
    saves: PositiveInt = Field(10, description="workload: checkpoints written (MLPerf: 10)")
    loads: int = Field(10, ge=0, description="workload: checkpoints read back and verified, at most saves")
    tensors_per_rank: PositiveInt = Field(8, description="workload: each rank's shard is cut into this many tensors")
    fsync: bool = Field(True, description="workload, fs: fsync every file written (DCP sync_files)")
    drop_caches: bool = Field(True, description="workload: drop the page cache before the reads (needs root; "
                                                "whether it was done is reported)")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        return relative_prefix(v)

    @model_validator(mode="after")
    def _counts(self) -> "CheckpointConfig":
        if self.loads > self.saves:
            raise ValueError(f"loads ({self.loads}) is more than saves ({self.saves}): each load reads one "
                             "checkpoint written before; lower loads or raise saves")
        return self


class ExecutionConfig(Strict):
    listing_workers: PositiveInt = 8
    phases: PhasesConfig = Field(default_factory=PhasesConfig)
    seed: Seed = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    drop_caches: bool = Field(False, description="drop the OS page cache before each epoch (needs root)")


class MetricsConfig(Strict):
    output_dir: str = "results"
    requests: Literal["all", "sampled", "off"] = "all"

    @model_validator(mode="before")
    @classmethod
    def _requests_off(cls, data: Any) -> Any:
        """``requests: off`` unquoted is the boolean false in YAML: it means "off"."""
        if isinstance(data, dict) and data.get("requests") is False:
            data = {**data, "requests": "off"}
        return data
    request_sample_rate: float = Field(0.1, gt=0, le=1)
    system_interval_s: float = Field(0.5, gt=0)

    @field_validator("output_dir")
    @classmethod
    def _output_dir(cls, v: str) -> str:
        path = os.path.expanduser(v)
        while path and not os.path.exists(path):  # the nearest part that exists must be a folder
            parent = os.path.dirname(path.rstrip("/"))
            path = parent if parent != path else ""
        if path and not os.path.isdir(path):
            what = "it is a file" if path == os.path.expanduser(v) else f"{path} is a file"
            raise ValueError(f"{what}: results go in a folder (it is created when missing)")
        return v


_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _check_dotted(keys: list[str]) -> None:
    """Sweep keys are dotted config paths, never ``sweep``/``repeat``, none inside another."""
    for key in keys:
        if not _DOTTED.match(key):
            raise ValueError(f"{key!r} is not a dotted config key such as framework.num_workers")
        if key.split(".")[0] in ("sweep", "repeat"):
            raise ValueError(f"{key!r}: a sweep cannot vary sweep or repeat")
    for a in keys:
        for b in keys:
            if a != b and b.startswith(a + "."):
                raise ValueError(f"{b!r} lies inside {a!r}: give one or the other")


class SweepVariant(Strict):
    """One named variant: the base config with these dotted keys set."""

    label: str = Field(..., min_length=1, description="name of the variant in reports and --baseline")
    set: dict[str, Any] = Field(default_factory=dict, description="dotted.key: value overrides")

    @field_validator("set")
    @classmethod
    def _keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        _check_dotted(list(v))
        return v


class SweepConfig(Strict):
    """Several runs in one invocation: a cartesian ``grid`` or a list of named ``variants``."""

    grid: dict[str, list[Any] | dict[str, Any]] | None = Field(
        None, description="dotted.key: [values] or {name: value}; every combination is one variant")
    variants: list[SweepVariant] | None = Field(None, description="named variants, each a set of overrides")

    @field_validator("grid")
    @classmethod
    def _grid(cls, v: dict[str, list[Any] | dict[str, Any]] | None) -> dict[str, list[Any] | dict[str, Any]] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("give at least one dotted.key: [values]")
        _check_dotted(list(v))
        for key, values in v.items():
            if not values:
                raise ValueError(f"{key}: give at least one value")
            if isinstance(values, dict) and not all(isinstance(k, str) and k for k in values):
                raise ValueError(f"{key}: named values need non-empty string names")
            seen = [repr(x) for x in values] if isinstance(values, list) else []
            if len(set(seen)) != len(seen):
                raise ValueError(f"{key}: a value is listed twice")
        return v

    @field_validator("variants")
    @classmethod
    def _variants(cls, v: list[SweepVariant] | None) -> list[SweepVariant] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("give at least one variant")
        labels = [x.label for x in v]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ValueError(f"variant labels must be unique: {', '.join(dup)} repeated")
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> "SweepConfig":
        if (self.grid is None) == (self.variants is None):
            raise ValueError("give either sweep.grid (a cartesian product) or sweep.variants (a list), "
                             "not both and not neither")
        return self


class LimitsConfig(Strict):
    """Bounds checked at validation, so that no config hangs the tool or takes the machine's
    memory (exit 2 naming the limit). Raise one when your machine can take more."""

    workers: PositiveInt = Field(256, description="framework.num_workers, execution.listing_workers, "
                                                  "prepare.workers, tensorflow.cycle_length")
    prefetch_factor: PositiveInt = Field(64, description="framework.prefetch_factor")
    latency_ms: float = Field(60_000.0, gt=0, description="storage.emulate.latency_ms")
    duration_s: float = Field(3600.0, gt=0, description="each duration: training.compute_time_s, "
                                                        "metrics.system_interval_s, storage.s3 timeouts")
    sweep_runs: PositiveInt = Field(1000, description="a sweep's variants x repeat")
    requests_in_flight: PositiveInt = Field(
        1024, description="storage requests in flight in all (one thread each): "
                          "max(1, framework.num_workers) x dataset.requests_in_flight")
    memory_MiB: PositiveInt | None = Field(
        None, description="what decoded batches in flight, and a checkpoint held twice, may need; "
                          "default: this machine's physical memory")


class RulesConfig(Strict):
    """Run rules (MLPerf Storage's): always checked and reported; ``enforce`` turns a failed
    rule into exit 4 (``--rules mlperf`` sets it)."""

    enforce: Literal["none", "mlperf"] = Field(
        "none", description="mlperf: a failed rule is exit 4; none: rules are reported only")
    client_memory_GiB: float | None = Field(
        None, gt=0, allow_inf_nan=False,
        description="the client machines' total memory for the dataset-size rule; default: measured, "
                    "the sum of each node's physical memory")


class LoggingConfig(Strict):
    """A run log: the notices, warnings, phases and outcome of each command, one timestamped
    line each, in ``<path>/dnnbench-<time>-<name>.log`` (never an existing file)."""

    path: str | None = Field(None, description="folder of the log file; absent: no log file")
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="INFO and DEBUG: everything; WARNING: warnings and the outcome; ERROR: failures")

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.strip().upper() if isinstance(v, str) else v


def root_problem(storage: StorageConfig) -> str | None:
    """A filesystem client without ``storage.root`` (checked at the top level of the config)."""
    backend = STORAGE.spec_of(storage.client)
    if backend is not None and backend.kind == FILESYSTEM and not storage.root:
        return (f"storage.root is needed by the {storage.client} client: the directory the dataset lives in "
                "(never the working directory by default), e.g. root: data/quickstart")
    return None


#: what each framework's runs must not import (one framework per process)
_FRAMEWORK_MODULES = {"pytorch": "torch", "tensorflow": "tensorflow"}


def framework_problem(client: str, framework: str) -> str | None:
    """Why storage ``client`` cannot serve a ``framework`` run (it imports the other framework), or None."""
    backend = STORAGE.spec_of(client)
    if backend is None or backend.framework in (None, framework):
        return None
    imported = _FRAMEWORK_MODULES.get(backend.framework, backend.framework)
    others = builtin_names(S3 if backend.kind == S3 else None, framework)
    return (f"storage.client {STORAGE.canonical(client)} imports {imported}, and a {framework} run stays "
            f"{imported}-free (one framework per process): use {spoken_list(others)}")


#: trainer names that run the model on decoded images (the built-in and its dss-style aliases)
TRAIN_TRAINERS = ("train", "RandomAccessDatasetTrain", "DNNTrain")
#: the trainer name that selects the checkpoint workload (no dataset, no model: dnnbench.checkpoint)
CHECKPOINT_TRAINER = CHECKPOINT_WORKLOAD
#: dataset names that pass the stored bytes on undecoded
RAW_DATASETS = ("raw", "PythonReadDataset")


def followed_prepare_keys(dataset: Any, given: set[str]) -> dict[str, str]:
    """The ``prepare`` keys taken from ``dataset`` because the config does not set them: the format
    (jpeg -> jpg; a plugin format prepare cannot write is left alone) and the layout (a bad one is
    reported once, as dataset.layout's)."""
    get = (dataset.get if isinstance(dataset, dict)
           else (lambda k: getattr(dataset, k, None)) if isinstance(dataset, DatasetConfig) else None)
    if get is None:
        return {}
    out: dict[str, str] = {}
    fmt = get("format")
    if "format" not in given and isinstance(fmt, str) and fmt in prepare_format_names():
        out["format"] = "jpg" if fmt in ("jpeg", "jpg") else fmt
    layout = get("layout")
    if "layout" not in given and layout in typing.get_args(PrepareConfig.model_fields["layout"].annotation):
        out["layout"] = layout
    return out


class BenchConfig(Strict):
    """A whole benchmark run."""

    name: str | None = Field(None, description="run label; default: the config file's name")
    storage: StorageConfig = Field(default_factory=StorageConfig)
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    prepare: PrepareConfig = Field(default_factory=PrepareConfig)
    framework: FrameworkConfig = Field(default_factory=FrameworkConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    shards: ShardsConfig = Field(default_factory=ShardsConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    plugins: list[str] = Field(default_factory=list, description="modules or .py files with user plugins")
    sweep: SweepConfig | None = Field(None, description="several variants in one invocation (dnnbench.multirun.sweep)")
    repeat: PositiveInt = Field(1, description="run each variant this many times (mean/stdev/min/max compared)")
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    rules: RulesConfig = Field(default_factory=RulesConfig)

    @model_validator(mode="before")
    @classmethod
    def _prepare_follows_dataset(cls, data: Any) -> Any:
        """``prepare.format`` / ``prepare.layout`` not given: prepare writes what the run reads
        (``dataset.format``, ``dataset.layout``), so ``prepare.auto`` with ``dataset.format: npz``
        generates npz files, not jpg images."""
        if not isinstance(data, dict):
            return data
        prepare = data.get("prepare")
        given = (prepare.model_fields_set if isinstance(prepare, PrepareConfig)
                 else set(prepare) if isinstance(prepare, dict) else set())
        follow = followed_prepare_keys(data.get("dataset"), given)
        if not follow or not (prepare is None or isinstance(prepare, (dict, PrepareConfig))):
            return data
        if isinstance(prepare, PrepareConfig):
            merged = {**prepare.model_dump(include=given), **follow}
        else:
            merged = {**(prepare or {}), **follow}
        return {**data, "prepare": merged}

    @model_validator(mode="after")
    def _cross_checks(self) -> "BenchConfig":
        problem = root_problem(self.storage)
        if problem:
            raise ValueError(problem)
        self._check_decoding()
        self._check_format()
        check_limits(self)
        if self.framework.num_workers == 0 and self.framework.persistent_workers:
            raise ValueError("framework.persistent_workers needs framework.num_workers > 0")
        problem = framework_problem(self.storage.client, self.framework.name) or checkpoint_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    def _check_format(self) -> None:
        """The inference phase reads a held-out split of image class folders (files of many samples
        are refused when the run starts: ``prepare`` alone takes such a config)."""
        dataset = self.dataset
        if self.execution.phases.inference and dataset.layout != "classes":
            raise ValueError("execution.phases.inference reads a held-out split of image class folders: turn it "
                             f"off for dataset.layout {dataset.layout}")

    def _check_decoding(self) -> None:
        """What needs decoded images gets them: caught here, not after the train phase."""
        trainer, dataset, phases = self.training.trainer, self.dataset, self.execution.phases
        model_phases = [p for p in ("inference", "checkpoint") if getattr(phases, p)]
        if dataset.name in RAW_DATASETS:
            if trainer in TRAIN_TRAINERS and phases.train:
                raise ValueError(f"dataset.name {dataset.name!r} passes the stored bytes on undecoded, and "
                                 f"training.trainer {trainer!r} trains a model on images: use dataset.name "
                                 "image_folder, or training.trainer read to measure storage alone")
            if phases.inference:
                raise ValueError(f"dataset.name {dataset.name!r} passes the stored bytes on undecoded, and "
                                 "execution.phases.inference runs a model on images: use dataset.name "
                                 "image_folder, or turn the inference phase off")
        if trainer == CHECKPOINT_TRAINER:
            return
        if dataset.decode == "none":
            if trainer in TRAIN_TRAINERS:
                raise ValueError("training.trainer 'train' needs decoded images: set dataset.decode "
                                 "to rgb or gray, or use the 'read' trainer to measure storage alone")
            if model_phases:
                raise ValueError(f"execution.phases.{model_phases[0]} needs a model on decoded images: set "
                                 "dataset.decode to rgb or gray, or turn that phase off")
