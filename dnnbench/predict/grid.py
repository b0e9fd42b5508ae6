"""The what-if grid: ``--grid key=v1,v2`` arguments -> a sweep grid (the same dotted keys and
the same labels as a config's ``sweep.grid``) -> validated points the model can read.

Each point is validated as a sweep variant is (``dnnbench.multirun.plan``): a bad key or value is
exit 2 naming it, before anything is probed. ``accelerators`` is the one key that is not a config
key: the number of emulated accelerators, each with its own loader (as ``au-search`` runs them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from dnnbench.config.loading import LoadedConfig, load_config
from dnnbench.errors import ConfigError
from dnnbench.predict.model import Point

ACCELERATORS = "accelerators"

#: the keys whose effect the model knows, and the Point field each one sets
MODELLED = {
    "framework.num_workers": "workers",
    "storage.emulate.latency_ms": "latency_ms",
    "storage.emulate.bandwidth_MBps": "bandwidth_MBps",
    "dataset.requests_in_flight": "requests_in_flight",
    "training.compute_time_s": "compute_time_s",
    "framework.batch_size": "batch_size",
    "framework.prefetch_factor": "prefetch_factor",
    ACCELERATORS: "accelerators",
}


@dataclass
class GridPoint:
    """One point of the grid: its sweep label, its overrides, its validated config and the
    model's view of it."""

    label: str
    overrides: dict[str, Any]
    loaded: LoadedConfig
    point: Point


def split_values(text: str) -> list[str]:
    """``1,2,[3,4]`` -> ``["1", "2", "[3,4]"]``: commas inside brackets or braces stay."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [*out, cur]


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["framework.num_workers=1,2", "storage.emulate.latency_ms=0,20"]`` -> a sweep grid.

    Values are YAML, as ``--set`` reads them.

    Raises:
        ConfigError: no ``=``, an empty value, a key given twice, or a key the model does not know.
    """
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise ConfigError(f"--grid expects dotted.key=v1,v2,..., got {item!r}", reference="--grid",
                              hint="e.g. --grid framework.num_workers=1,2,4,8")
        if key not in MODELLED:
            raise ConfigError(f"--grid {key}: the model does not know how this key changes throughput",
                              reference="--grid", hint="keys it models: " + ", ".join(MODELLED))
        if key in grid:
            raise ConfigError(f"--grid {key} is given twice", reference="--grid",
                              hint="give every value of a key in one --grid key=v1,v2")
        values = [_scalar(v, key) for v in split_values(raw)]
        if len({json.dumps(v) for v in values}) != len(values):
            raise ConfigError(f"--grid {key}: a value is listed twice", reference="--grid")
        grid[key] = values
    return grid


def _scalar(text: str, key: str) -> Any:
    try:
        return yaml.safe_load(text.strip())
    except yaml.YAMLError:
        raise ConfigError(f"--grid {key}: {text!r} is not a value", reference="--grid") from None


def plan_points(loaded: LoadedConfig, overrides: list[str], grid: dict[str, list[Any]]) -> list[GridPoint]:
    """Every point of ``grid`` (the base config alone when empty), each validated as a sweep variant.

    Raises:
        ConfigError: a point's config is invalid (every problem listed, nothing has run).
    """
    from dnnbench.multirun import plan as sweep_plan

    refuse_unmodelled(loaded)
    accel = grid.get(ACCELERATORS, [1])
    if any(not isinstance(a, int) or isinstance(a, bool) or a < 1 for a in accel):
        raise ConfigError("--grid accelerators: give whole numbers >= 1", reference="--grid")
    keys = {k: v for k, v in grid.items() if k != ACCELERATORS}
    combos = sweep_plan.grid_points({**keys, ACCELERATORS: accel} if ACCELERATORS in grid else keys) \
        if grid else [(loaded.stem, {})]
    variants = [{"label": label, "set": {k: v for k, v in o.items() if k != ACCELERATORS}} for label, o in combos]
    sweep = f"sweep={json.dumps({'variants': variants})}"
    with_sweep = load_config(loaded.path, [*overrides, sweep, "repeat=1"])
    p = sweep_plan.plan(with_sweep, [*overrides, sweep, "repeat=1"])
    return [GridPoint(v.label, o, v.loaded, point_of(v.loaded, int(o.get(ACCELERATORS, 1))))
            for v, (_, o) in zip(p.variants, combos)]


def refuse_unmodelled(loaded: LoadedConfig) -> None:
    """The workloads the probe measures and the model reads are loaders reading a dataset: image
    folders (random or sequential access), tar shards, and files of many samples
    (``dataset.format``, random or sequential). A checkpoint workload writes instead.

    Raises:
        ConfigError: a checkpoint workload.
    """
    if loaded.config.training.trainer == "checkpoint":
        raise ConfigError("predict models a loader reading a dataset; training.trainer: checkpoint writes and "
                          "reads checkpoints instead", reference="training.trainer",
                          hint="run the checkpoint workload itself (benchmark.py run) to measure it")


def point_of(loaded: LoadedConfig, accelerators: int = 1) -> Point:
    """The model's view of a validated config."""
    cfg = loaded.config
    emulate = cfg.storage.emulate
    compute = cfg.training.compute_time_s if cfg.training.trainer == "emulate" else 0.0
    return Point(workers=cfg.framework.num_workers, latency_ms=emulate.latency_ms if emulate else 0.0,
                 requests_in_flight=cfg.dataset.requests_in_flight, compute_time_s=compute,
                 accelerators=accelerators, batch_size=cfg.framework.batch_size,
                 prefetch_factor=cfg.framework.prefetch_factor or 2,
                 bandwidth_MBps=(emulate.bandwidth_MBps or None) if emulate else None,
                 epochs=cfg.training.epochs, warmup_steps=cfg.training.warmup_steps,
                 max_steps=cfg.training.max_steps)
