"""Plugin registries: register by decorator, look up by name, list with origins.

Built-in entries are declared lazily as ``"module:attr"`` strings so listing
plugins or validating a config imports no framework. A module that defines a
built-in may still use the decorator: registering the very object a lazy entry
points to fills that entry in instead of clashing with it.

A registry may take per-entry facts (its ``spec``): each storage client declares
its kind, options model, secret options and pip package
(:class:`~dnnbench.storage.backends.Backend`; the built-in clients are the table
:data:`~dnnbench.storage.backends.BUILTINS`); each data format its extensions, how its
samples are located and its options model (:class:`~dnnbench.formats.spec.FormatSpec`; the
built-in formats are the table :data:`~dnnbench.formats.spec.BUILTINS`).

Third-party code arrives through the ``plugins:`` config key (module names or
``.py`` paths) or the ``dnnbench.plugins`` entry-point group.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import re
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from dnnbench.errors import PluginError
from dnnbench.formats.spec import BUILTINS as FORMAT_BUILTINS
from dnnbench.formats.spec import FormatSpec
from dnnbench.storage.backends import BUILTINS as STORAGE_BUILTINS
from dnnbench.storage.backends import Backend, install_hint

ENTRY_POINT_GROUP = "dnnbench.plugins"


@dataclass
class Entry:
    """One registered plugin."""

    name: str
    target: Any  # the object, or "module:attr" until first use
    framework: str | None = None
    origin: str = "builtin"
    aliases: tuple[str, ...] = ()
    description: str = ""
    #: what the entry declares about itself, when its registry takes facts (storage: a Backend)
    spec: Any = None
    kind: str = "plugin"
    _loaded: bool = field(default=False, repr=False)

    @property
    def location(self) -> str:
        if isinstance(self.target, str):
            return self.target
        return f"{getattr(self.target, '__module__', '?')}:{getattr(self.target, '__qualname__', '?')}"

    def load(self) -> Any:
        if isinstance(self.target, str):
            module_name, _, attr = self.target.partition(":")
            try:
                module = importlib.import_module(module_name)
            except ImportError as e:
                raise self._import_error(module_name, e) from e
            self.target = getattr(module, attr)
        return self.target

    def _import_error(self, module_name: str, e: ImportError) -> PluginError:
        """A missing library named by the pip package the entry declares; else the module."""
        package = getattr(self.spec, "install", None)
        if package and not (e.name or "").startswith("dnnbench"):
            return PluginError(f"{self.kind} {self.name!r} needs the Python package {package!r}, which is not "
                               f"installed ({e})", hint=install_hint(package))
        return PluginError(f"cannot import {module_name} for plugin {self.name!r}: {e}",
                           hint="install the project's requirements (make setup)")


class Registry:
    """A named table of plugins of one kind (storage, dataset, model, trainer).

    Args:
        kind: what the entries are, for messages ("storage client").
        spec: builds the facts each entry declares from its registration keywords
            (``STORAGE``: :class:`~dnnbench.storage.backends.Backend`); None: no facts.
    """

    def __init__(self, kind: str, spec: Callable[..., Any] | None = None):
        self.kind = kind
        self._spec = spec
        self._entries: dict[tuple[str, str | None], Entry] = {}
        self._aliases: dict[tuple[str, str | None], str] = {}

    # -- registration ---------------------------------------------------
    def register(self, name: str, *, framework: str | None = None, aliases: tuple[str, ...] = (),
                 description: str = "", origin: str | None = None, **facts: Any) -> Callable[[Any], Any]:
        """Decorator: ``@MODELS.register("convnet", framework="pytorch")``; ``facts`` are what the
        registry's spec takes (``@STORAGE.register("azure", kind="other", options=..., secrets=...)``).

        Raises:
            PluginError: the name is already taken by a different object, or the facts are wrong.
        """

        def decorate(obj: Any) -> Any:
            self.add(name, obj, framework=framework, aliases=aliases,
                     description=description or (obj.__doc__ or "").strip().split("\n")[0],
                     origin=origin or _origin_of(obj), **facts)
            return obj

        return decorate

    def add(self, name: str, target: Any, *, framework: str | None = None, aliases: tuple[str, ...] = (),
            description: str = "", origin: str = "builtin", spec: Any = None, **facts: Any) -> None:
        """Add an entry (``spec``: its facts, already built; else built from ``facts``).

        Raises:
            PluginError: the name is already taken by a different object, or the facts are wrong.
        """
        spec = spec if spec is not None else self._make_spec(name, facts)
        key = (name, framework)
        old = self._entries.get(key)
        if old is not None:
            if isinstance(old.target, str) and not isinstance(target, str) and \
                    old.target == f"{target.__module__}:{target.__qualname__}":
                old.target = target  # the lazy built-in has just been imported
                return
            if old.target is target:
                return
            raise PluginError(
                f"{self.kind} {name!r}{_fw(framework)} is already registered by {old.location}",
                hint="choose another name for your plugin")
        self._entries[key] = Entry(name, target, framework, origin, tuple(aliases), description, spec, self.kind)
        for alias in aliases:
            self._aliases[(alias, framework)] = name

    def _make_spec(self, name: str, facts: dict[str, Any]) -> Any:
        if self._spec is None:
            if facts:
                raise PluginError(f"{self.kind} {name!r}: a {self.kind} takes no {', '.join(sorted(facts))}",
                                  hint="register it with name, framework, aliases and description only")
            return None
        try:
            return self._spec(**facts)
        except (TypeError, ValueError) as e:
            raise PluginError(f"{self.kind} {name!r} cannot be registered: {e}",
                              hint=f"see {self._spec.__module__}.{self._spec.__qualname__}") from None

    # -- lookup -----------------------------------------------------------
    def resolve(self, name: str, framework: str | None = None) -> Entry:
        """Find the entry for ``name`` (or an alias), preferring the framework's own.

        Raises:
            PluginError: unknown name; the message lists close matches.
        """
        for fw in ((framework, None) if framework else (None,)):
            real = self._aliases.get((name, fw), name)
            entry = self._entries.get((real, fw))
            if entry is not None:
                return entry
        raise self._unknown(name, framework)

    def get(self, name: str, framework: str | None = None) -> Any:
        return self.resolve(name, framework).load()

    def spec_of(self, name: str, framework: str | None = None) -> Any:
        """The facts ``name`` (or an alias) declared; None when the name is unknown (yet)."""
        try:
            return self.resolve(name, framework).spec
        except PluginError:
            return None

    def canonical(self, name: str, framework: str | None = None) -> str:
        """The registered name of ``name`` or its alias (``name`` itself when unknown)."""
        try:
            return self.resolve(name, framework).name
        except PluginError:
            return name

    def names(self, framework: str | None = None) -> list[str]:
        return sorted({n for (n, fw) in self._entries if framework is None or fw in (framework, None)})

    def entries(self) -> list[Entry]:
        return sorted(self._entries.values(), key=lambda e: (e.name, e.framework or ""))

    def _unknown(self, name: str, framework: str | None) -> PluginError:
        known = self.names(framework)
        aliases = sorted(a for (a, fw) in self._aliases if framework is None or fw in (framework, None))
        close = difflib.get_close_matches(name, known + aliases, n=3, cutoff=0.5)
        close += [k for k in known if name.lower() == k.lower() and k not in close]
        msg = f"unknown {self.kind} {name!r}{_fw(framework)}"
        if close:
            msg += f"; did you mean {', '.join(repr(c) for c in close)}?"
        return PluginError(msg, hint=f"registered: {', '.join(known) or 'none'}; "
                                     "add your own with the `plugins:` config key")


def _fw(framework: str | None) -> str:
    return f" for {framework}" if framework else ""


def _origin_of(obj: Any) -> str:
    module = getattr(obj, "__module__", "") or ""
    if module.startswith("dnnbench."):
        return "builtin"
    return _CURRENT_ORIGIN[-1] if _CURRENT_ORIGIN else f"module {module}"


_CURRENT_ORIGIN: list[str] = []

STORAGE = Registry("storage client", spec=Backend)
DATASETS = Registry("dataset")
MODELS = Registry("model")
TRAINERS = Registry("trainer")
FORMATS = Registry("format", spec=FormatSpec)
REGISTRIES = {"storage": STORAGE, "dataset": DATASETS, "model": MODELS, "trainer": TRAINERS, "format": FORMATS}


# the framework built-ins: (registry, name, "module:Class" under frameworks/<fw>/, aliases, what it is)
_FRAMEWORK_BUILTINS = [
    (DATASETS, "image_folder", "datasets:ImageFolderDataset", ("TorchImageClassificationDataset", "MapStyleDataset"),
     "one read per sample, decoded with OpenCV"),
    (DATASETS, "raw", "datasets:RawBytesDataset", ("PythonReadDataset",), "one read per sample, bytes not decoded"),
    (MODELS, "convnet", "models:ConvNet", ("ConvNet",), "small CNN for any image size, channel and class count"),
    (MODELS, "resnet", "models:ResNet", ("ResNet",), "small ResNet (basic blocks), no torchvision needed"),
    (TRAINERS, "train", "trainers:TrainTrainer", ("RandomAccessDatasetTrain", "DNNTrain"),
     "real forward, backward and optimizer step"),
    (TRAINERS, "read", "trainers:ReadTrainer", (), "drains batches, no compute: measures the loader alone"),
    (TRAINERS, "emulate", "trainers:EmulateTrainer", (),
     "sleeps training.compute_time_s per step in place of an accelerator"),
]
_FRAMEWORKS = ("pytorch", "tensorflow")


def _builtins() -> None:
    for b in STORAGE_BUILTINS:
        STORAGE.add(b.name, b.target, aliases=b.aliases, description=b.description, spec=b.backend)
    for f in FORMAT_BUILTINS:
        FORMATS.add(f.name, f.target, aliases=f.aliases, description=f.description, spec=f.spec)
    for framework in _FRAMEWORKS:
        for registry, name, target, aliases, what in _FRAMEWORK_BUILTINS:
            registry.add(name, f"dnnbench.frameworks.{framework}.{target}", framework=framework,
                         aliases=aliases, description=what)


_builtins()
_loaded_sources: set[str] = set()


def load_plugin_module(spec: str, base_dir: Path | None = None) -> None:
    """Import user plugin code named by a module name or a ``.py`` path.

    Raises:
        PluginError: the module cannot be found or fails to import.
    """
    if spec in _loaded_sources:
        return
    _CURRENT_ORIGIN.append(f"plugins: {spec}")
    try:
        if spec.endswith(".py") or "/" in spec:
            path = Path(spec)
            if not path.is_absolute() and base_dir is not None and not path.exists():
                path = base_dir / path
            if not path.is_file():
                raise PluginError(f"plugin file {spec} not found", reference="plugins",
                                  hint="give a module name on sys.path or a .py path "
                                       "(relative to the working directory or the config file)")
            importlib.import_module(_file_module(path.resolve()))
        else:
            importlib.import_module(spec)
    except PluginError:
        raise
    except Exception as e:  # a broken plugin is named, not fatal in a confusing way
        raise PluginError(f"plugin {spec!r} failed to load: {type(e).__name__}: {e}",
                          reference="plugins", hint="fix or remove the plugin") from e
    finally:
        _CURRENT_ORIGIN.pop()
    _loaded_sources.add(spec)


_SHIM = """# written by dnnbench: the plugin file below under a stable, importable module name, so
# that loader workers started with spawn or forkserver can unpickle its classes
__file__ = {path!r}


def __dnnbench_run_plugin(path, namespace):
    with open(path, "rb") as f:
        exec(compile(f.read(), path, "exec", dont_inherit=True), namespace)


__dnnbench_run_plugin(__file__, globals())
del __dnnbench_run_plugin
"""
_shim_dir: list[str] = []


def _file_module(path: Path) -> str:
    """The module name a ``.py`` plugin file is imported under: ``dnnbench_user_<stem>_<digest of
    its path>``, the same in every process. A small module of that name, which runs the file,
    is written to a per-process folder put on ``sys.path``; processes started with spawn or
    forkserver inherit ``sys.path``, so pickles that name the plugin's classes load there too."""
    import hashlib

    stem = re.sub(r"\W", "_", path.stem)
    name = f"dnnbench_user_{stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:12]}"
    if name in sys.modules:
        return name
    if not _shim_dir:
        import atexit
        import shutil
        import tempfile

        folder = tempfile.mkdtemp(prefix="dnnbench-plugins-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _shim_dir.append(folder)
        sys.path.append(folder)
    shim = Path(_shim_dir[0]) / f"{name}.py"
    if not shim.exists():
        tmp = shim.with_suffix(".tmp")
        tmp.write_text(_SHIM.format(path=str(path)), encoding="utf-8")
        os.replace(tmp, shim)
    importlib.invalidate_caches()
    return name


def load_entry_points() -> list[str]:
    """Load every ``dnnbench.plugins`` entry point once; return warnings for broken ones."""
    if "<entry-points>" in _loaded_sources:
        return []
    _loaded_sources.add("<entry-points>")
    problems = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        _CURRENT_ORIGIN.append(f"entry point {ep.name} ({ep.value})")
        try:
            obj = ep.load()
            if callable(obj) and not isinstance(obj, type):
                obj()
        except Exception as e:
            problems.append(f"plugin entry point {ep.name!r} ({ep.value}) failed to load: {e}")
        finally:
            _CURRENT_ORIGIN.pop()
    return problems
