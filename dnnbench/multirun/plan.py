"""A sweep's plan: a config with a ``sweep:`` section (a cartesian ``grid`` over dotted keys,
or a list of named ``variants``) and/or ``repeat: N`` becomes a list of variants, each the
base config with its overrides applied and validated on its own, before anything runs.

Config only: ``validate`` plans a sweep without loading the run engine (``dnnbench.multirun.sweep``
runs the plan).
"""

from __future__ import annotations

import copy
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dnnbench.config.legacy import is_legacy, translate_legacy
from dnnbench.config.loading import LoadedConfig, apply_override, interpolate, read_file, validate
from dnnbench.errors import ConfigError
from dnnbench.events import Events, NullEvents


@dataclass
class Variant:
    """One point of a sweep: a label, its overrides and its validated config."""

    label: str
    overrides: dict[str, Any]
    loaded: LoadedConfig


@dataclass
class SweepPlan:
    """Every variant of a config (one, labelled with the config's name, when it has no sweep)."""

    base: LoadedConfig
    variants: list[Variant]
    repeat: int
    kind: str  # grid | variants | repeat

    @property
    def runs(self) -> int:
        return len(self.variants) * self.repeat


def is_sweep(loaded: LoadedConfig) -> bool:
    """True when the config asks for more than one run."""
    return loaded.config.sweep is not None or loaded.config.repeat > 1


def raw_config(path: str | Path | None, overrides: list[str] | None = None,
               environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The config mapping as ``load_config`` sees it just before validation
    (legacy layout translated, ``--set`` applied, ``${VAR}`` resolved)."""
    p = Path(path) if path is not None else None
    data = read_file(p) if p is not None else {}
    if is_legacy(data):
        data, _ = translate_legacy(data, source=str(p))
    for assignment in overrides or []:
        apply_override(data, assignment)
    return interpolate(data, environ=environ)


def plan(loaded: LoadedConfig, overrides: list[str] | None = None,
         environ: dict[str, str] | None = None) -> SweepPlan:
    """Expand the config's sweep into validated variants.

    Raises:
        ConfigError: any variant is invalid; every problem of every variant is listed,
            each prefixed with the variant's path and label, before anything runs.
    """
    data = raw_config(loaded.path, overrides, environ)
    data.pop("sweep", None)
    data.pop("repeat", None)
    sweep = loaded.config.sweep
    if sweep is None:
        points = [(loaded.stem, "config", {})]
        kind = "repeat"
    elif sweep.grid is not None:
        points = [(label, "sweep.grid", o) for label, o in grid_points(sweep.grid)]
        kind = "grid"
    else:
        points = [(v.label, f"sweep.variants[{i}]", dict(v.set)) for i, v in enumerate(sweep.variants)]
        kind = "variants"
    variants, problems = [], []
    for label, where, over in points:
        try:
            variants.append(Variant(label, over, _variant_config(loaded, data, over)))
        except ConfigError as e:
            lines = e.details or [e.message if e.reference in (None, "config", "--set")
                                  else f"{e.reference}: {e.message}"]
            problems += [f"{where} ({label}): {line}" for line in lines]
    if problems:
        raise ConfigError(problems[0] if len(problems) == 1 else f"{len(problems)} problems in the sweep's variants",
                          reference=str(loaded.path or "config"), details=problems if len(problems) > 1 else [],
                          hint="each variant is the base config with its overrides; fix the key or value "
                               "named (nothing has run)")
    return SweepPlan(loaded, variants, loaded.config.repeat, kind)


def check_plugins(p: SweepPlan, events: Events | None = None) -> None:
    """Load each variant's plugins and resolve its plugin names, before anything runs.

    Raises:
        ConfigError: an unknown name in any variant (all of them listed).
    """
    from dnnbench.config.plugins import check_plugin_names, load_plugins

    problems = []
    for v in p.variants:
        try:
            load_plugins(v.loaded, events or NullEvents())
            check_plugin_names(v.loaded.config)
        except ConfigError as e:
            problems.append(f"{v.label}: {e}")
    if problems:
        raise ConfigError(problems[0] if len(problems) == 1 else f"{len(problems)} variants name unknown plugins",
                          reference="sweep", details=problems if len(problems) > 1 else [],
                          hint="`benchmark.py plugins` lists what is registered (nothing has run)")


def grid_points(grid: dict[str, list[Any] | dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Every combination of the grid, in order, each with a label such as
    ``num_workers=2,batch_size=8``: the last part of each key (the whole key where two keys
    end alike) and the value. Named values (``{name: value}``) are labelled by the name
    alone; a section, a long list, or any value under a secret-looking key by its position
    (``storage=#2``), so labels stay short and never carry a secret."""
    from dnnbench.config.redact import is_secret_key

    keys = list(grid)
    short = [k.rsplit(".", 1)[-1] for k in keys]
    names = [s if short.count(s) == 1 else k for k, s in zip(keys, short)]
    axes = []
    for key, name in zip(keys, names):
        values = grid[key]
        if isinstance(values, dict):
            axes.append([(str(label), v) for label, v in values.items()])
        else:
            secret = is_secret_key(key)
            axes.append([(f"{name}={_value_text(v, i, secret)}", v) for i, v in enumerate(values, start=1)])
    out = []
    for combo in itertools.product(*axes):
        out.append((",".join(text for text, _ in combo), {k: v for k, (_, v) in zip(keys, combo)}))
    return out


def _value_text(v: Any, position: int, secret: bool) -> str:
    if secret or isinstance(v, dict):
        return f"#{position}"
    if isinstance(v, str):
        return v
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, int):
        return str(v)
    text = json.dumps(v, separators=(",", ":"))
    return text if len(text) <= 30 and not any(isinstance(x, (dict, list)) for x in v) else f"#{position}"


def _variant_config(base: LoadedConfig, data: dict[str, Any], overrides: dict[str, Any]) -> LoadedConfig:
    d = copy.deepcopy(data)
    for key, value in overrides.items():
        apply_override(d, f"{key}={json.dumps(value)}")  # JSON is YAML: the value round-trips exactly
    return LoadedConfig(validate(d, source="config"), base.path, [])
