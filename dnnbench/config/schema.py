"""The one config schema. Unknown keys are errors (``extra="forbid"``).

Key paths used by docs, examples and checks: ``framework.name``,
``framework.batch_size``, ``framework.num_workers``, ``training.trainer``,
``training.epochs``, ``dataset.access``, ``dataset.decode``, ``storage.client``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class StorageConfig(Strict):
    """Where the dataset lives and which client reads it."""

    client: str = Field("fs", description="storage client plugin: fs (more with the S3 issue)")
    name: str | None = Field(None, description="label for reports; default derived from client and root")
    root: str | None = Field(None, description="fs: base directory that prefixes are relative to")
    prefixes: list[str] = Field(default_factory=lambda: [""],
                                description="dataset roots under root/bucket; each holds <class>/<file>")
    options: dict[str, Any] = Field(default_factory=dict, description="client plugin's own options")

    @field_validator("prefixes")
    @classmethod
    def _prefixes(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one prefix is needed ('' for the root itself)")
        return [p.strip("/") if p not in ("", "/") else "" for p in v]


class PrepareConfig(Strict):
    """Synthetic image-classification dataset for `benchmark.py prepare`."""

    auto: bool = Field(False, description="generate the dataset before a run when it is missing")
    classes: PositiveInt = 4
    images_per_class: PositiveInt = 64
    format: Literal["jpg", "png"] = "jpg"
    width: tuple[PositiveInt, PositiveInt] = (32, 128)
    height: tuple[PositiveInt, PositiveInt] = (32, 128)
    jpeg_quality: int = Field(90, ge=1, le=100)
    seed: int = 0
    workers: PositiveInt = 4

    @model_validator(mode="after")
    def _ranges(self) -> "PrepareConfig":
        for name in ("width", "height"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name}: min {lo} is larger than max {hi}")
        return self


class DatasetConfig(Strict):
    name: str = Field("image_folder", description="dataset plugin")
    access: Literal["random"] = Field("random", description="random: map-style, one read per sample")
    decode: Literal["rgb", "gray", "none"] = "rgb"
    image_dimension: tuple[PositiveInt, PositiveInt] = Field((32, 32), description="[height, width] after resize")
    labels: list[str] | None = Field(None, description="class directories to read, in label order; default all, sorted")
    extensions: list[str] = Field(default_factory=lambda: [".jpg", ".jpeg", ".png"])
    max_samples: PositiveInt | None = Field(None, description="use only the first N samples of the index")
    options: dict[str, Any] = Field(default_factory=dict, description="dataset plugin's own options")

    @field_validator("extensions")
    @classmethod
    def _exts(cls, v: list[str]) -> list[str]:
        return [e.lower() if e.startswith(".") else f".{e.lower()}" for e in v]


class FrameworkConfig(Strict):
    name: Literal["pytorch"] = "pytorch"
    batch_size: PositiveInt = 32
    num_workers: int = Field(2, ge=0)
    shuffle: bool = True
    prefetch_factor: PositiveInt | None = 2
    persistent_workers: bool = False
    pin_memory: bool | Literal["auto"] = "auto"
    drop_last: bool = False
    multiprocessing_context: Literal["fork", "spawn", "forkserver"] | None = None

    @field_validator("name", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v


class ModelConfig(Strict):
    name: str = "convnet"
    options: dict[str, Any] = Field(default_factory=dict, description="model plugin's own options")


class TrainingConfig(Strict):
    trainer: str = Field("train", description="train | read | emulate | plugin")
    epochs: PositiveInt = 1
    max_steps: PositiveInt | None = Field(None, description="cap on steps per epoch")
    warmup_steps: int = Field(0, ge=0, description="first steps excluded from AU and steady-state figures")
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(0.01, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    compute_time_s: float = Field(0.0, ge=0, description="emulate: seconds of 'accelerator' time per step")


class PhasesConfig(Strict):
    list: bool = True
    train: bool = True


class ExecutionConfig(Strict):
    listing_workers: PositiveInt = 8
    phases: PhasesConfig = Field(default_factory=PhasesConfig)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    drop_caches: bool = Field(False, description="drop the OS page cache before each epoch (needs root)")


class MetricsConfig(Strict):
    output_dir: str = "results"
    requests: Literal["all", "sampled", "off"] = "all"
    request_sample_rate: float = Field(0.1, gt=0, le=1)
    system_interval_s: float = Field(0.5, gt=0)


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
    plugins: list[str] = Field(default_factory=list, description="modules or .py files with user plugins")

    @model_validator(mode="after")
    def _cross_checks(self) -> "BenchConfig":
        if self.training.trainer in ("train", "RandomAccessDatasetTrain") and self.dataset.decode == "none":
            raise ValueError("training.trainer 'train' needs decoded images: set dataset.decode "
                             "to rgb or gray, or use the 'read' trainer to measure storage alone")
        if self.framework.num_workers == 0 and self.framework.persistent_workers:
            raise ValueError("framework.persistent_workers needs framework.num_workers > 0")
        return self
