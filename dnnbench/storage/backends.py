"""How a storage backend joins dnnbench: the one place.

A backend is a :class:`~dnnbench.storage.base.Storage` subclass registered in
``dnnbench.registry.STORAGE`` with what it declares about itself (:class:`Backend`):
its kind (what part of the ``storage`` section configures it), its options model
(``storage.options`` is validated against it, unknown keys being errors), which of
those options are secrets (never written anywhere), the pip package it needs, and
the one framework it imports, if any.

- a built-in is one row of :data:`BUILTINS` below (``"module:Class"``: nothing is
  imported until a run uses it, so ``validate`` and ``--help`` import no client library);
- a plugin registers its class with the same facts::

      @STORAGE.register("azure", kind="other", options=AzureOptions,
                        secrets=("account_key", "connection_string"), install="azure-storage-blob")
      class AzureStorage(Storage): ...

Everything that knows about client names (schema checks, options, redaction, the
dss-style layout, the contract tests) reads this table or the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict

#: kinds of backend: which part of the ``storage`` section configures it
FILESYSTEM = "filesystem"  # files under storage.root
S3 = "s3"  # a bucket described by storage.s3
OTHER = "other"  # configured by storage.options alone (a plugin's own store)
KINDS = (FILESYSTEM, S3, OTHER)


class NoOptions(BaseModel):
    """A backend that takes no options: the configuration it needs has its own keys."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Backend:
    """What a storage backend declares when it registers.

    Args:
        kind: ``filesystem`` (needs ``storage.root``), ``s3`` (needs ``storage.s3``) or
            ``other`` (configured by ``storage.options`` alone).
        options: pydantic model of ``storage.options`` (``extra="forbid"``); the validated
            instance reaches the backend's constructor as ``options=``. None: free-form
            options, passed on unchecked (plugins written before options models).
        secrets: names of option fields whose values are secrets: redacted in every file,
            log and message, like ``storage.s3.secret_key``.
        install: the pip package the backend's library comes from (named when it is missing).
        framework: the one framework the backend imports (a run of the other is refused).
    """

    kind: str = OTHER
    options: type[BaseModel] | None = None
    secrets: tuple[str, ...] = ()
    install: str | None = None
    framework: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.options is not None and not (isinstance(self.options, type) and issubclass(self.options, BaseModel)):
            raise ValueError("options must be a pydantic model class")
        if isinstance(self.secrets, str) or not all(isinstance(s, str) for s in self.secrets):
            raise ValueError("secrets must be a tuple of option names")
        object.__setattr__(self, "secrets", tuple(self.secrets))
        unknown = [s for s in self.secrets if self.options is not None and s not in self.options.model_fields]
        if unknown:
            raise ValueError(f"secrets {unknown} are not fields of {self.options.__name__}")

    def parse_options(self, options: dict[str, Any]) -> BaseModel | None:
        """The validated ``storage.options`` (None when the backend declares no model).

        Raises:
            pydantic.ValidationError: unknown keys or bad values.
        """
        return None if self.options is None else self.options.model_validate(options)


class Builtin(NamedTuple):
    """One built-in backend: registry name, ``"module:Class"``, aliases, description, facts."""

    name: str
    target: str
    aliases: tuple[str, ...]
    description: str
    backend: Backend


#: the built-in backends, in the order messages list them
BUILTINS: tuple[Builtin, ...] = (
    Builtin("fs", "dnnbench.storage.fs:FileSystemStorage", ("file", "local"),
            "local or network filesystem (POSIX files)", Backend(FILESYSTEM, NoOptions)),
    Builtin("boto3", "dnnbench.storage.s3_boto3:Boto3Storage", ("s3",),
            "S3 (AWS or S3-compatible) through boto3", Backend(S3, NoOptions, install="boto3")),
    Builtin("minio", "dnnbench.storage.s3_minio:MinioStorage", (),
            "S3 (AWS or S3-compatible) through the MinIO Python SDK", Backend(S3, NoOptions, install="minio")),
    Builtin("s3fs", "dnnbench.storage.s3_s3fs:S3FSStorage", (),
            "S3 through s3fs/aiobotocore (whole-object cat_file, no HEAD)", Backend(S3, NoOptions, install="s3fs")),
    Builtin("s3torchconnector", "dnnbench.storage.s3_torchconnector:S3TorchConnectorStorage", ("s3torch",),
            "S3 through AWS's CRT-based s3torchconnector client",
            Backend(S3, NoOptions, install="s3torchconnector", framework="pytorch")),
)

#: the client ``storage.preset`` picks when none is given
DEFAULT_S3_CLIENT = "boto3"


def builtin_names(kind: str | None = None, framework: str | None = None) -> list[str]:
    """Names of the built-in backends (of ``kind``; usable with ``framework``), in table order."""
    return [b.name for b in BUILTINS if kind in (None, b.backend.kind)
            and (framework is None or b.backend.framework in (None, framework))]


def spoken_list(names: list[str], word: str = "or") -> str:
    """``a, b, c or d``: names as a message lists them."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {word} {names[-1]}"


def install_hint(package: str) -> str:
    """What to run when a backend's library is missing (fsspec-style: name the package)."""
    return (f"pip install {package} (or `make setup`: requirements.txt pins the versions that work "
            "together)")
