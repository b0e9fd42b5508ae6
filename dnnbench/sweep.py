"""Sweeps: several runs in one invocation.

A config with a ``sweep:`` section (a cartesian ``grid`` over dotted keys, or a list of
named ``variants``) and/or ``repeat: N`` becomes a list of variants, each the base config
with its overrides applied and validated on its own. Every variant is validated before
anything runs; then each variant runs ``repeat`` times as a full run (its own run
directory and ``results/summary.csv`` row, tagged ``sweep_id``, ``variant``, ``repeat``).
Repeats are interleaved (A1 B1 A2 B2 ...) so slow drift (page cache, a noisy neighbour)
spreads over every variant instead of biasing one. A variant that fails is recorded
with its reason, and the sweep goes on; Ctrl-C stops it.

The sweep id names ``<output_dir>/compare-<sweep id>/``, reserved with an atomic
mkdir at the start (so ids are unique); it holds ``sweep.json`` (the plan and the run
ids) and, written by the caller, the comparison of the sweep.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dnnbench.config.legacy import is_legacy, translate_legacy
from dnnbench.config.loading import LoadedConfig, apply_override, interpolate, read_file, validate
from dnnbench.config.redact import redact, secret_values
from dnnbench.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, BenchError, ConfigError
from dnnbench.events import Events, NullEvents
from dnnbench.metrics.results import append_summary, create_run_dir, write_row_csv
from dnnbench.reporting.columns import empty_row

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


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


@dataclass
class VariantRun:
    """The outcome of one run of one variant."""

    variant: str
    repeat: int
    run_dir: Path | None
    exit_code: int
    status: str
    reason: str | None = None


@dataclass
class SweepResult:
    sweep_id: str
    compare_dir: Path
    runs: list[VariantRun] = field(default_factory=list)
    interrupted: bool = False

    @property
    def failed(self) -> list[VariantRun]:
        return [r for r in self.runs if r.status != "ok"]

    @property
    def run_dirs(self) -> list[Path]:
        return [r.run_dir for r in self.runs if r.run_dir is not None]

    @property
    def exit_code(self) -> int:
        """130 when interrupted, 1 when any run failed (whatever its own code), else 0."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if self.failed else EXIT_OK


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
    from dnnbench.config.redact import SECRET_KEYS

    keys = list(grid)
    short = [k.rsplit(".", 1)[-1] for k in keys]
    names = [s if short.count(s) == 1 else k for k, s in zip(keys, short)]
    axes = []
    for key, name in zip(keys, names):
        values = grid[key]
        if isinstance(values, dict):
            axes.append([(str(label), v) for label, v in values.items()])
        else:
            secret = bool(SECRET_KEYS.search(key))
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


class _VariantEvents:
    """Forwards a run's events, but keeps its big summary table back: the sweep prints one
    line per run and the comparison at the end."""

    def __init__(self, inner: Events):
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def summary(self, row: dict[str, Any], run_dir: str, unmeasured: dict[str, str]) -> None:
        pass


def _emit(events: Any, name: str, *args: Any) -> None:
    """Sweep progress goes to the UI when it draws it (``RichEvents``); other sinks ignore it."""
    fn = getattr(events, name, None)
    if fn is not None:
        fn(*args)


def reserve_id(output_dir: str | Path, wanted: str | None, stem: str, prefix: str = "compare") -> tuple[str, Path]:
    """A unique id and its folder ``<output_dir>/<prefix>-<id>``, made with an atomic mkdir.

    Raises:
        ConfigError: an explicit id is taken already or not a plain name.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if wanted is not None:
        if _SAFE.sub("", wanted) != wanted or wanted in ("", ".", ".."):
            raise ConfigError(f"id {wanted!r} must be a plain name (letters, digits, . _ -)", reference="--run-id")
        try:
            (out / f"{prefix}-{wanted}").mkdir()
        except FileExistsError:
            raise ConfigError(f"{out / f'{prefix}-{wanted}'} exists already; results are never overwritten",
                              reference="--run-id", hint="choose another --run-id or leave it out") from None
        return wanted, out / f"{prefix}-{wanted}"
    base = f"{time.strftime('%Y%m%d-%H%M%S')}-{_SAFE.sub('_', stem)[:60]}"
    for n in range(1, 10_000):
        sid = base if n == 1 else f"{base}-{n}"
        try:
            (out / f"{prefix}-{sid}").mkdir()
            return sid, out / f"{prefix}-{sid}"
        except FileExistsError:
            continue
    raise RuntimeError("could not find a free id")


def run_sweep(p: SweepPlan, events: Events | None = None, sweep_id: str | None = None,
              argv: list[str] | None = None) -> SweepResult:
    """Run every variant ``repeat`` times (interleaved); record failures and go on.

    Raises:
        ConfigError: an explicit ``sweep_id`` is taken already.
    """
    from dnnbench.executor import Executor

    events = events or NullEvents()
    check_plugins(p, events)
    out = p.base.config.metrics.output_dir
    sid, cdir = reserve_id(out, sweep_id, p.base.stem)
    result = SweepResult(sid, cdir)
    total = p.runs
    _emit(events, "sweep_start", sid, [v.label for v in p.variants], p.repeat)
    n = 0
    for rep in range(1, p.repeat + 1):
        for i, v in enumerate(p.variants):
            n += 1
            run_id = _run_id(sid, i, v.label, rep, p.repeat)
            tags = {"sweep_id": sid, "variant": v.label, "repeat": rep}
            _emit(events, "variant_start", n, total, v.label, rep, p.repeat)
            try:
                outcome = Executor(v.loaded, _VariantEvents(events), run_id=run_id, argv=argv, tags=tags).run()
                run = VariantRun(v.label, rep, outcome.run_dir, outcome.exit_code,
                                 str(outcome.row.get("status") or "failed"), outcome.row.get("reason"))
                if outcome.error is not None and run.reason is None:
                    run.reason = str(outcome.error)
            except KeyboardInterrupt:  # Ctrl-C, and SIGTERM (errors.Interrupted is one)
                result.interrupted = True
                break
            except Exception as e:  # noqa: BLE001 - a failing variant is recorded; the sweep goes on
                code = e.exit_code if isinstance(e, BenchError) else EXIT_FAILED
                reason = str(e) if isinstance(e, BenchError) else f"{type(e).__name__}: {e}"
                run = VariantRun(v.label, rep, record_failure(v.loaded, run_id, tags, reason), code, "failed", reason)
            result.runs.append(run)
            _emit(events, "variant_end", n, total, v.label, rep, p.repeat, run.status, run.reason,
                  str(run.run_dir) if run.run_dir else None, _row_of(run.run_dir))
            _write_manifest(p, result)
            if run.exit_code == EXIT_INTERRUPTED:
                result.interrupted = True
                break
        if result.interrupted:
            break
    _write_manifest(p, result)
    return result


def _run_id(sid: str, index: int, label: str, rep: int, repeats: int) -> str:
    name = _SAFE.sub("_", label).strip("_")[:40] or "variant"
    return f"{sid}-v{index + 1}-{name}" + (f"-r{rep}" if repeats > 1 else "")


def _row_of(run_dir: Path | None) -> dict[str, Any]:
    import csv

    if run_dir is None or not (run_dir / "summary.csv").is_file():
        return {}
    with open(run_dir / "summary.csv", newline="") as f:
        return next(csv.DictReader(f), {})


def record_failure(loaded: LoadedConfig, run_id: str | None, tags: dict[str, Any], reason: str) -> Path:
    """A run that failed before it started (missing prefix, unreachable endpoint, ...): write
    its run directory (summary.csv marked failed, with the reason; config.yaml) and append its
    summary row, so the sweep's record has every variant."""
    cfg = loaded.config
    out = cfg.metrics.output_dir
    try:
        run_dir = create_run_dir(out, run_id, loaded.stem)
    except ConfigError:
        run_dir = create_run_dir(out, None, loaded.stem)
    raw = cfg.model_dump(mode="json")
    secrets = secret_values(raw)
    s = cfg.storage
    storage = s.name or (f"fs:{s.root}" if s.root is not None else f"s3://{s.s3.bucket}" if s.s3 else s.client)
    row: dict[str, Any] = empty_row()
    row.update(run_id=run_dir.name, status="failed", failed_phase="setup", reason=redact(reason, secrets),
               started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), config=loaded.stem, framework=cfg.framework.name,
               storage=storage, client=s.client, access=cfg.dataset.access, decode=cfg.dataset.decode,
               dataset=cfg.dataset.name, trainer=cfg.training.trainer, workers=cfg.framework.num_workers,
               batch_size=cfg.framework.batch_size, epochs=cfg.training.epochs, **tags)
    write_row_csv(run_dir / "summary.csv", row)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(redact(raw, secrets), sort_keys=False))
    append_summary(out, row)
    return run_dir


def _write_manifest(p: SweepPlan, result: SweepResult) -> None:
    """``compare-<id>/sweep.json``: the plan (overrides redacted) and what ran, as it goes."""
    raw = p.base.config.model_dump(mode="json")
    secrets = secret_values(raw)
    doc = {
        "sweep_id": result.sweep_id, "config": str(p.base.path) if p.base.path else None, "kind": p.kind,
        "repeat": p.repeat, "interrupted": result.interrupted,
        "variants": [{"label": v.label, "set": redact(v.overrides, secrets)} for v in p.variants],
        "runs": [{"variant": r.variant, "repeat": r.repeat, "run_dir": str(r.run_dir) if r.run_dir else None,
                  "status": r.status, "exit_code": r.exit_code, "reason": r.reason} for r in result.runs],
    }
    tmp = result.compare_dir / ".sweep.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2, default=str))
    tmp.replace(result.compare_dir / "sweep.json")
