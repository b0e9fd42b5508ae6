"""The probe: a short, bounded measurement of what the model needs.

1. a calibration run: the config itself, one loader worker, no emulated latency, a few steps
   (a real run through the executor, in the predict folder): worker start-up, per-sample worker
   time, CPU of the process tree per sample; the per-batch overhead (collate, handoff to the main
   process) is what the run took beyond the read and decode the probe measured;
2. the CPU this machine gives us now (shared machines: other people's work takes the rest);
3. the storage without emulation at a few concurrency levels (1, 2, 4, 8 processes issuing GETs):
   the latency distribution, requests/s and MiB/s per level (the highest = the ceiling when the
   curve flattened) and the client's CPU per request (a local server's own CPU is not measured:
   it shows as latency rising with concurrency);
4. decode CPU per sample, as a loader worker decodes (OpenCV, the config's mode and size).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from dataclasses import replace
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from dnnbench.config.loading import LoadedConfig, load_config
from dnnbench.errors import BenchError
from dnnbench.events import Events
from dnnbench.formats.select import is_file_format
from dnnbench.predict import files as format_files
from dnnbench.predict.machine import (available_cores, contention, decode_all, fork_seconds, mp_context,
                                      wake_seconds)
from dnnbench.predict.model import TERMS, Level, Point, Probe, epoch_wall, fill_samples, terms, worker_seconds

LEVELS = (1, 2, 4, 8)
LEVEL_SECONDS = 0.6  # each concurrency level (at 100 requests/s, 0.3 s was 30 requests: one slow one moved the mean)
CALIBRATION_SAMPLES = 320  # at most, in the calibration run
#: the one-worker run's process tree sampled this often (a run of tenths of a second); not the run
#: with many workers: sampling 9 processes every 50 ms in the main process slowed its start by a sixth
CALIBRATION_SAMPLING_S = 0.05


def run_probe(loaded: LoadedConfig, overrides: list[str], out_dir: Path, events: Events) -> Probe:
    """Measure everything the model needs; seconds, not minutes.

    Raises:
        BenchError: the calibration run failed (its reason), or the storage cannot be read.
    """
    t0 = time.perf_counter()
    events.notice("probe: CPU this machine gives us now")
    free = available_cores(0.5)  # next to the calibration run: the load moves within a minute
    try:  # first: the client library imported here, as before any real run's workers fork
        opened = open_dataset(loaded)
    except BenchError:  # not there yet: the calibration run prepares it (prepare.auto) or says why
        opened = None
    facts0 = opened[2] if opened else {}
    cal = calibrate_steady(loaded, overrides, out_dir, events, epoch_samples=facts0.get("samples"),
                           unit_batches=unit_batches(loaded, facts0))
    storage, keys, facts = opened or open_dataset(loaded)
    timing = {"fork_s": fork_seconds(), "wake_s": wake_seconds(1), "wake8_s": wake_seconds(8)}
    events.notice(f"probe: storage at concurrency {', '.join(map(str, LEVELS))}")
    levels, read_cpu = measure_levels(storage, keys)
    if "files" in facts:  # a dataset.format: its own decode; contention measured on a fixed loop
        blobs, mode, decode_cpu = [], "none", format_files.decode_seconds(loaded, storage, facts)
    else:
        blobs, mode = sample_blobs(storage, keys, facts["access"]), loaded.config.dataset.decode
        decode_cpu = decode_seconds(loaded, blobs)
    events.notice("probe: contention (1 to 4x cores processes doing a worker's CPU work)")
    cores_at = contention(blobs, mode, tuple(loaded.config.dataset.image_dimension))
    free = (free + available_cores(0.5)) / 2  # the load moves: once before, once after the storage
    probe = assemble(loaded, facts, cal, levels, read_cpu, decode_cpu, free)
    probe.fork_s, probe.wake_s, probe.wake8_s = timing["fork_s"], timing["wake_s"], timing["wake8_s"]
    probe.bare_fork_s = timing["fork_s"]
    probe.cores_at, probe.load_average = cores_at, os.getloadavg()[0]
    apply_calibration(probe, cal, loaded.config.framework.batch_size)
    crowd = crowd_workers(probe)
    batch = loaded.config.framework.batch_size
    events.notice(f"probe: a short run with {crowd} loader workers (more than the cores: their start and pace)")
    apply_crowd(probe, calibrate_steady(loaded, overrides, out_dir, events, crowd, epoch_samples=facts.get("samples"),
                                        steady_batches=crowd_steady_batches(probe, crowd, batch)), crowd, batch)
    probe.seconds = time.perf_counter() - t0
    return probe


def calibration_overrides(loaded: LoadedConfig, out_dir: Path, workers: int = 1,
                          epoch_samples: int | None = None, steady_batches: int = 0,
                          samples: int = CALIBRATION_SAMPLES) -> list[str]:
    """The base config, reduced to a short run without emulated latency (one worker: at most
    ``samples``; more: until each worker has filled its first batch, and ``steady_batches`` more,
    at least two).
    Shards of an epoch of ``epoch_samples`` at most twice that: the whole epoch (a shard stream
    cannot be cut short by samples, and one stopped at a step ends as no epoch ends); with more
    workers, an epoch of streams at most ``CROWD_WHOLE`` times the run's samples."""
    cfg = loaded.config
    stream = streamed(loaded)
    steps = max(4, math.ceil(samples / cfg.framework.batch_size)) if workers == 1 else \
        workers * math.ceil(max(cfg.framework.batch_size, cfg.dataset.shuffle_buffer if cfg.dataset.access == "shards"
                                else 0) / cfg.framework.batch_size) + max(2, steady_batches)
    if cfg.training.max_steps is not None:
        steps = min(steps, cfg.training.max_steps)
    limit = [f"training.max_steps={steps}"]
    if cfg.training.max_steps is None and not stream and not is_file_format(cfg.dataset):
        # fewer samples, not fewer steps: the epoch ends as the predicted runs' epochs end (every
        # worker runs out and exits), not with workers stopped in the middle of their next batches
        samples = steps * cfg.framework.batch_size
        limit = ["training.max_steps=null", f"dataset.max_samples={min(samples, cfg.dataset.max_samples or samples)}"]
    elif whole_shard_epoch(loaded, workers, epoch_samples, samples) or whole_crowd_epoch(loaded, workers, epoch_samples,
                                                                                          steps):
        limit = ["training.max_steps=null"]
    return ["sweep=null", "repeat=1", "storage.emulate=null", f"framework.num_workers={workers}",
            "training.trainer=read", "training.epochs=1", *limit, "training.warmup_steps=0",
            "dataset.requests_in_flight=1", "execution.phases.inference=false",
            "execution.phases.checkpoint=false", "metrics.requests=all", f"metrics.output_dir={out_dir}",
            *([f"metrics.system_interval_s={CALIBRATION_SAMPLING_S}"] if workers == 1 else [])]


def streamed(loaded: LoadedConfig) -> bool:
    """Does a loader worker stream requests of many samples (tar shards, dataset.format files read
    whole)? Such a stream cannot be cut short by samples (``dataset.max_samples`` counts files)."""
    cfg = loaded.config
    return cfg.dataset.access == "shards" or (cfg.dataset.access == "sequential" and is_file_format(cfg.dataset))


def whole_shard_epoch(loaded: LoadedConfig, workers: int, epoch_samples: int | None,
                      samples: int = CALIBRATION_SAMPLES) -> bool:
    """Does the one-worker calibration run of ``samples`` read a whole epoch of streamed shards or
    files (one at most twice that)?"""
    cfg = loaded.config
    return (workers == 1 and streamed(loaded) and cfg.training.max_steps is None
            and epoch_samples is not None and epoch_samples <= 2 * samples)


#: the run with many workers reads a whole epoch of streams of at most this many times its samples
CROWD_WHOLE = 4


def whole_crowd_epoch(loaded: LoadedConfig, workers: int, epoch_samples: int | None, steps: int) -> bool:
    """Does the run with many workers read a whole epoch of streamed shards or files (one of at most
    ``CROWD_WHOLE`` times the ``steps`` it would read)? Stopped at a step, 8 workers of npz files
    stop in the middle of their next files, and the start solved from it left the rest of the
    epoch at the one-worker pace: 10 steps took 159-219 ms and the epoch of 32 files 212-263 ms
    in the same rounds, and the 8-worker epoch was predicted 15-22 % too fast in three rounds."""
    cfg = loaded.config
    return (workers > 1 and streamed(loaded) and cfg.training.max_steps is None and epoch_samples is not None
            and epoch_samples <= CROWD_WHOLE * steps * cfg.framework.batch_size)


def free_tail_batches(loaded: LoadedConfig, workers: int, epoch_samples: int | None,
                      samples: int = CALIBRATION_SAMPLES) -> int:
    """Batches at the end of a whole epoch of shards that cost no reading: the shuffle buffer's
    samples, let out after the stream's last sample."""
    cfg = loaded.config
    if cfg.dataset.access != "shards" or not whole_shard_epoch(loaded, workers, epoch_samples, samples):
        return 0
    return math.ceil((cfg.dataset.shuffle_buffer - 1) / cfg.framework.batch_size)


#: a one-worker calibration run shorter than this (s) is run again, up to CALIBRATION_RUNS in all
STEADY_WALL_S = 1.5
CALIBRATION_RUNS = 5
#: a one-worker run that read at pace (after its first batch, before its end) for less than this
#: (s) is followed by longer ones, up to CALIBRATION_GROW times its samples (or the whole epoch)
CALIBRATION_STEADY_S = 0.15
CALIBRATION_GROW = 8


def grown_samples(run: dict[str, float], epoch_samples: int | None, loaded: LoadedConfig) -> int:
    """Samples of the one-worker calibration runs after ``run`` (one of ``CALIBRATION_SAMPLES``):
    as many as read at its pace for about ``CALIBRATION_STEADY_S``, at most ``CALIBRATION_GROW``
    times as many and the epoch's, whole batches. A run of ten batches of 1 ms is its worker's
    warm-up: npz samples of 32 KiB, batches 2-6 took 2-6 ms and from the sixth on 1.0-1.1 ms, and
    its median batch was a third above the pace of the epoch it predicted (one worker, -24 %)."""
    steady = run.get("wall_s", 0.0) - run.get("time_to_first_batch_s", 0.0) - run.get("end_s", 0.0)
    if steady >= CALIBRATION_STEADY_S:
        return CALIBRATION_SAMPLES
    want = CALIBRATION_SAMPLES * min(float(CALIBRATION_GROW), CALIBRATION_STEADY_S / max(steady, 1e-3))
    if epoch_samples:
        want = min(want, epoch_samples)
    batch = loaded.config.framework.batch_size
    return max(CALIBRATION_SAMPLES, math.ceil(want / batch) * batch)


def calibrate_steady(loaded: LoadedConfig, overrides: list[str], out_dir: Path, events: Events,
                     workers: int = 1, epoch_samples: int | None = None, steady_batches: int = 0,
                     unit_batches: int | None = 1) -> dict[str, float]:
    """A calibration run; while the runs so far took less than ``STEADY_WALL_S`` in all, once more
    (at most ``CALIBRATION_RUNS``): a run of a few tenths of a second moves by a third from one
    run to the next, and every prediction moves with it. The run with the median time per batch
    (one worker) or the median wall (more: their start is solved from it) is kept
    (``calibration_runs``: how many ran). With one worker, the kept run's start, end, wall and
    GET latency are each the median of the runs' (the first run of a probe is often the slowest
    to start: 39 ms against 28-31 ms, npz files read whole, and the run with the median pace
    was that one); a first run that read at pace for less than ``CALIBRATION_STEADY_S`` is
    followed by longer ones (:func:`grown_samples`), and only those are kept.

    With many workers and ``steady_batches``, the runs alternate between that long run and a short
    one (every worker's first batch and two more), at least one of each, and the samples/s between
    the two (``steady_rate``: the median long run's samples less the median short run's, over
    their walls' difference) is what that many loader processes get done once started: both
    epochs start and end alike. Not a window of one run's batches: while the main process takes
    one batch the workers are up to ``prefetch_factor`` batches ahead each, and a window from a
    batch to the epoch's end counted them (measured: 1.55x the true pace)."""
    def name(i: int) -> str | None:
        if workers == 1:
            return None if i == 0 else f"calibration-{i + 1}"
        return f"calibration-{workers}w" if i == 0 else f"calibration-{workers}w-{i + 1}"

    def short(i: int) -> bool:
        return workers > 1 and steady_batches > 0 and i % 2 == 1

    runs: list[dict[str, float]] = []
    length = CALIBRATION_SAMPLES
    while not runs or (len(runs) < CALIBRATION_RUNS and (sum(r.get("wall_s", 0.0) for r in runs) < STEADY_WALL_S
                                                        or (steady_batches and workers > 1 and len(runs) < 2))):
        i = len(runs)
        runs.append({**calibrate(loaded, overrides, out_dir, events, workers, name=name(i), epoch_samples=epoch_samples,
                                 steady_batches=0 if short(i) else steady_batches, unit_batches=unit_batches,
                                 samples=length),
                     "short": float(short(i)), "length": float(length)})
        if workers == 1 and i == 0:
            length = grown_samples(runs[0], epoch_samples, loaded)
    longest = max(r["length"] for r in runs)
    long_runs = [r for r in runs if not r["short"] and r["length"] == longest]
    key = "step_wait_s" if workers == 1 else "wall_s"
    kept = {**_median(long_runs, key), "calibration_runs": float(len(runs))}
    kept.pop("short", None)
    kept.pop("length", None)
    if workers == 1:
        for k in MEDIAN_KEYS:
            values = sorted(r[k] for r in long_runs if k in r)
            if k in kept and values:
                kept[k] = values[(len(values) - 1) // 2]
    short_runs = [r for r in runs if r["short"]]
    if short_runs:
        s = _median(short_runs, "wall_s")
        extra, spent = kept.get("samples", 0.0) - s.get("samples", 0.0), kept.get("wall_s", 0.0) - s.get("wall_s", 0.0)
        if extra > 0 and spent >= STEADY_MIN_S:
            kept["steady_rate"] = extra / spent
    return kept


#: figures of the one-worker runs taken each as the median of the runs (not the kept run's)
MEDIAN_KEYS = ("time_to_first_batch_s", "end_s", "wall_s", "get_ms")


def unit_batches(loaded: LoadedConfig, facts: dict[str, Any]) -> int | None:
    """Batches one request's samples make (shards, files read whole: a stream lets a unit's
    batches out in a burst, and the pace is taken over that many); 1 for one sample a request;
    None when the dataset was not opened yet (the pace is then the trimmed mean)."""
    if not streamed(loaded):
        return 1
    if not facts.get("requests"):
        return None
    per_request = facts["samples"] / facts["requests"]
    return max(1, math.ceil(per_request / loaded.config.framework.batch_size))


def _median(runs: list[dict[str, float]], key: str) -> dict[str, float]:
    ordered = sorted(runs, key=lambda r: r.get(key, r.get("wall_s", 0.0)))
    return ordered[(len(ordered) - 1) // 2]


def calibrate(loaded: LoadedConfig, overrides: list[str], out_dir: Path, events: Events,
              workers: int = 1, name: str | None = None, epoch_samples: int | None = None,
              steady_batches: int = 0, unit_batches: int | None = 1,
              samples: int = CALIBRATION_SAMPLES) -> dict[str, float]:
    """Run the calibration run (``workers`` loader workers; ``epoch_samples``: the base epoch's, when
    known; ``unit_batches``: see :func:`unit_batches`; ``samples``: a one-worker run's at most);
    its summary figures as floats.

    Raises:
        BenchError: it failed (the reason is its own).
    """
    from dnnbench.events import NullEvents
    from dnnbench.multirun.runs import run_in_process, run_tags
    from dnnbench.results import read_row

    cal = load_config(loaded.path, [*overrides, *calibration_overrides(loaded, out_dir, workers, epoch_samples,
                                                                        steady_batches, samples)])
    name = name or ("calibration" if workers == 1 else f"calibration-{workers}w")
    if name == "calibration":
        events.notice("probe: calibration run (1 loader worker, no emulated latency)")
    rec = run_in_process(cal, NullEvents(), name, run_tags("probe", name, 1), None)
    row = read_row(rec.run_dir) or {}
    if rec.status != "ok":
        raise BenchError(f"the probe's calibration run failed: {rec.reason or rec.status}",
                         reference=str(rec.run_dir), hint="run the config on its own to see why")
    out = {k: float(row[k]) for k in ("samples", "wall_s", "time_to_first_batch_s", "cpu_percent",
                                      "batch_size") if row.get(k) not in (None, "")}
    tail = free_tail_batches(loaded, workers, epoch_samples, samples)
    wait = trimmed_step_wait(Path(rec.run_dir) / "steps.csv", tail, window=unit_batches) if rec.run_dir else None
    if wait is not None:
        out["step_wait_s"] = wait
    steady = steady_cores(Path(rec.run_dir)) if rec.run_dir else None
    if steady is not None:
        out["steady_cores"] = steady
    end = epoch_end_s(Path(rec.run_dir), out.get("wall_s")) if rec.run_dir else None
    if end is not None:
        out["end_s"] = end
    get_ms = loader_get_ms(Path(rec.run_dir) / "requests.csv") if rec.run_dir else None
    if get_ms is not None:
        out["get_ms"] = get_ms
    return out


def epoch_end_s(run_dir: Path, wall: float | None) -> float | None:
    """How long the epoch went on after its last batch had been used (the loader's workers
    stopped and joined): the epoch's wall less the time from its start to the last step's end
    (``steps.csv``). None: no steps or no wall."""
    steps = _rows(run_dir / "steps.csv")
    if not steps or not wall:
        return None
    last = steps[-1]
    used = float(last["t_s"]) + float(last["wait_s"] or 0) + float(last["compute_s"] or 0) - float(steps[0]["t_s"])
    return max(0.0, wall - used)


#: the steady part of the run with many workers lasts about this long (s), as the model sees it
CROWD_STEADY_S = 0.5
#: and at least one, at most this many rounds of a batch from every worker
CROWD_STEADY_ROUNDS = 4
#: a long and a short run with many workers closer than this (s) measure no pace
STEADY_MIN_S = 0.05


def crowd_steady_batches(p: Probe, workers: int, batch: int) -> int:
    """Batches the run with ``workers`` workers reads after every worker's first: whole rounds of a
    batch from each worker, about ``CROWD_STEADY_S`` at the rate the model gives it now (one round
    at least, ``CROWD_STEADY_ROUNDS`` at most); none for streamed requests (shards, files read
    whole): a held buffer or a whole file lets their batches out in bursts, and their epoch is
    simulated, not corrected."""
    if p.streams:
        return 0
    t = terms(p, Point(workers=workers, batch_size=batch))
    rate = min(t["little"], t["cpu"], t["storage"])
    rounds = math.ceil(CROWD_STEADY_S * rate / (batch * workers)) if math.isfinite(rate) else CROWD_STEADY_ROUNDS
    return workers * max(1, min(CROWD_STEADY_ROUNDS, rounds))


def loader_get_ms(requests_csv: Path) -> float | None:
    """The mean latency of the loader's GETs in a calibration run (``requests.csv``), its first
    GET left out (it makes the worker's storage client). None: fewer than two GETs recorded."""
    lat = [float(r["latency_ms"]) for r in _rows(requests_csv) if r.get("op") == "get" and r.get("latency_ms")]
    return sum(lat[1:]) / len(lat[1:]) if len(lat) > 1 else None


def _rows(path: Path) -> list[dict[str, str]]:
    import csv

    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def steady_cores(run_dir: Path) -> float | None:
    """Cores the process tree used after the first batch (``system.csv`` over the steps after the
    first; the start, forks and imports, is left out). None: too few samples in that window."""
    steps, system = _rows(run_dir / "steps.csv"), _rows(run_dir / "system.csv")
    if len(steps) < 3 or len(system) < 3:
        return None
    t0 = float(steps[1]["t_s"])
    t1 = float(steps[-1]["t_s"]) + float(steps[-1]["wait_s"] or 0) + float(steps[-1]["compute_s"] or 0)
    cpu = wall = 0.0
    for prev, row in zip(system, system[1:]):
        a, b = max(t0, float(prev["t_s"])), min(t1, float(row["t_s"]))
        if b > a:
            cpu += float(row["cpu_percent"]) / 100.0 * (b - a)
            wall += b - a
    return cpu / wall if wall > 0.5 * (t1 - t0) and wall > 0 else None


def trimmed_step_wait(steps_csv: Path, tail: int = 0, window: int | None = None) -> float | None:
    """The worker's time per batch (one worker, no compute) from the waits for the batches after
    the first and before the last ``tail`` (batches that cost no reading).

    ``window``: the median over every ``window`` batches in a row (sliding), per batch: the
    worker's steady pace. A run of ten batches has no tenth to trim, and its first few after the
    first are not at pace: one the worker had ready comes at once, the next ones take two to three
    times the steady wait (measured: npz samples of 32 KiB, 2.5-3.5 ms for batches 3-4 and 1.0 ms
    from the sixth; the mean of the nine was a third above the pace of a longer epoch). A stream
    lets a unit's batches out in a burst (a shard of 64 samples: two batches, one slow and one at
    once), so its window is the batches of one unit. None: the mean, its highest and lowest tenth
    left out (a moment when other work took the cores does not skew it)."""
    import csv
    import statistics

    if not steps_csv.is_file():
        return None
    with open(steps_csv, newline="") as f:
        waits = [float(r["wait_s"]) for r in csv.DictReader(f) if r.get("wait_s")][1:]
    waits = waits[:len(waits) - tail] if tail else waits
    if not waits:
        return None
    if window is not None and len(waits) >= window:
        return statistics.median(sum(waits[i:i + window]) for i in range(len(waits) - window + 1)) / window
    waits.sort()
    cut = len(waits) // 10
    kept = waits[cut:len(waits) - cut]
    return sum(kept) / len(kept)


def open_dataset(loaded: LoadedConfig) -> tuple[Any, list[str], dict[str, Any]]:
    """The storage without emulation, the keys to probe, and the dataset's figures."""
    from dnnbench.data.layouts import list_layout
    from dnnbench.data.shards import list_shards
    from dnnbench.formats.select import extensions
    from dnnbench.storage.factory import create_storage

    cfg = loaded.config
    storage = create_storage(cfg.storage.model_copy(update={"emulate": None}))
    if is_file_format(cfg.dataset):
        units, facts = format_files.open_files(loaded, storage)
        return storage, units, facts
    if cfg.dataset.access == "shards":
        index, meta = list_shards(storage, cfg.shards.prefix)
        counts = [c for c in getattr(index, "shard_samples", []) if c is not None]
        samples = int(meta.get("samples") or sum(counts) or len(index))
    else:
        index, _ = list_layout(storage, cfg.dataset, cfg.storage.prefixes, cfg.execution.listing_workers,
                               extensions(cfg.dataset))
        if cfg.dataset.max_samples:
            index = index.subset(cfg.dataset.max_samples, cfg.execution.seed)
        samples = len(index)
    keys = list(index.keys)
    facts = {"access": cfg.dataset.access, "samples": samples, "requests": len(keys),
             "bytes": int(index.total_bytes), "fs": cfg.storage.client == "fs"}
    return storage, keys, facts


_STORAGE: Any = None


def _init(storage: Any) -> None:
    global _STORAGE
    _STORAGE = storage


def _read(keys: list[str], seconds: float = 0.0) -> list[tuple[float, float, int]]:
    """In a probe process: GET the keys in turn (again from the first while ``seconds`` last);
    (wall s, CPU s, bytes) per request."""
    out: list[tuple[float, float, int]] = []
    end = time.perf_counter() + seconds
    i = 0
    while keys and (i < len(keys) or time.perf_counter() < end):
        c0, t0 = time.process_time(), time.perf_counter()
        data = fetch(_STORAGE, keys[i % len(keys)])
        out.append((time.perf_counter() - t0, time.process_time() - c0, len(data)))
        i += 1
    return out


def fetch(storage: Any, unit: Any) -> bytes:
    """One request as a loader worker sends it: a key (GET), or (key, offset, length) (a ranged GET)."""
    if isinstance(unit, tuple):
        return storage.get_range(*unit)
    return storage.get(unit)[0]


def _pick(keys: list[str], n: int, offset: int) -> list[str]:
    """``n`` keys, spread over the dataset, starting ``offset`` into it (each level reads other objects)."""
    step = max(1, len(keys) // max(1, n))
    return [keys[(offset + i * step) % len(keys)] for i in range(n)]


def measure_level(storage: Any, keys: list[str], concurrency: int, seconds: float) -> tuple[Level, float]:
    """One concurrency level: ``concurrency`` processes GET their share of ``keys`` for ``seconds``
    (each key at least once), after one GET each that makes their client (its extra CPU is the
    level's ``first_cpu_ms``). Returns the level and the client CPU per request (s)."""
    import numpy as np

    chunks = [keys[i::concurrency] for i in range(concurrency)]
    with ProcessPoolExecutor(concurrency, mp_context=mp_context(), initializer=_init, initargs=(storage,)) as pool:
        first = [r for part in pool.map(_read, [c[:1] for c in chunks]) for r in part]  # clients made
        t0 = time.perf_counter()
        rows = [r for part in pool.map(_read, chunks, [seconds] * concurrency) for r in part]
        wall = time.perf_counter() - t0
    ms = np.array([r[0] for r in rows]) * 1e3
    level = Level(concurrency, len(rows), float(np.percentile(ms, 50)), float(ms.mean()),
                  float(np.percentile(ms, 99)), len(rows) / wall, sum(r[2] for r in rows) / wall / 2**20,
                  wait_ms=float(np.mean([max(0.0, r[0] - r[1]) for r in rows])) * 1e3)
    cpu = float(np.mean([r[1] for r in rows]))
    level.first_cpu_ms = 1e3 * max(0.0, float(np.mean([r[1] for r in first])) - cpu)
    return level, cpu


def measure_levels(storage: Any, keys: list[str], seconds: float = LEVEL_SECONDS) -> tuple[list[Level], float]:
    """Every concurrency level (no more processes than keys); the client CPU per request at concurrency 1."""
    levels: list[Level] = []
    read_cpu = 0.0
    offset = 0
    for c in LEVELS:
        if c > len(keys):
            break
        n = min(len(keys), 2 * c)
        level, cpu = measure_level(storage, _pick(keys, n, offset), c, seconds)
        offset += n
        levels.append(level)
        read_cpu = read_cpu or cpu
    return levels, read_cpu


def sample_blobs(storage: Any, keys: list[str], access: str, n: int = 24) -> list[bytes]:
    """Up to ``n`` samples' bytes as a loader worker gets them (shards: the first shard's members)."""
    if access == "shards":
        from dnnbench.data.shards import iter_shard

        return [data for _, data, _, _ in _first(iter_shard(storage, keys[0]), n)]
    return [storage.get(k)[0] for k in _pick(keys, min(n, len(keys)), 1)]


#: timed passes over the sampled blobs (the median pass is kept)
DECODE_PASSES = 3


def decode_seconds(loaded: LoadedConfig, blobs: list[bytes]) -> float:
    """CPU per sample to decode and resize as a loader worker does once it runs (0 for
    ``decode: none``): the first blob decoded once untimed (a process's first decode pays the
    decoder's first use, which a worker pays once, in its start: measured, a first pass over 24
    JPEGs took 0.19-0.35 ms each, every later one 0.16), then the median of ``DECODE_PASSES``
    passes over all of them."""
    cfg = loaded.config.dataset
    if cfg.decode == "none" or not blobs:
        return 0.0
    size = tuple(cfg.image_dimension)
    decode_all(blobs[:1], cfg.decode, size)
    passes = [cpu / done for done, cpu in (decode_all(blobs, cfg.decode, size) for _ in range(DECODE_PASSES)) if done]
    return statistics.median(passes) if passes else 0.0


def _first(it: Any, n: int) -> list[Any]:
    out = []
    for x in it:
        out.append(x)
        if len(out) >= n:
            break
    return out


def ceiling(levels: list[Level]) -> float | None:
    """The storage's MiB/s ceiling: the highest level's throughput when doubling the concurrency
    gained less than 15 % (the curve flattened); None when it was still rising."""
    if len(levels) < 2:
        return None
    best = max(lv.MiB_per_s for lv in levels)
    return best if levels[-1].MiB_per_s < 1.15 * levels[-2].MiB_per_s else None


def assemble(loaded: LoadedConfig, facts: dict[str, Any], cal: dict[str, float], levels: list[Level],
             read_cpu: float, decode_cpu: float, free_cores: float) -> Probe:
    """The Probe: the measurements, and the calibration run's residuals (batch overhead, start-up)."""
    import psutil

    cfg = loaded.config
    streams = facts["access"] in ("shards", "files")
    spr = facts["samples"] / max(1, facts["requests"]) if streams else 1.0
    hold = cfg.dataset.shuffle_buffer if facts["access"] == "shards" else int(bool(facts.get("hold")))
    probe = Probe(access=facts["access"], fs=facts["fs"], cores=float(len(os.sched_getaffinity(0))),
                  busy_cores=max(0.0, len(os.sched_getaffinity(0)) - free_cores), levels=levels,
                  read_cpu_s=read_cpu, decode_cpu_s=decode_cpu,
                  server_cpu_s=0.0, batch_overhead_s=0.0, startup_s=0.0, cpu_per_sample_s=0.0,
                  samples=facts["samples"], samples_per_request=spr,
                  sample_bytes=facts["bytes"] / max(1, facts["samples"]), dataset_bytes=facts["bytes"],
                  requests=facts["requests"], page_cache_bytes=int(psutil.virtual_memory().available),
                  ceiling_MiB_per_s=ceiling(levels),
                  shuffle_buffer=hold, threads=cfg.framework.name == "tensorflow")
    return probe


def crowd_workers(p: Probe) -> int:
    """Loader workers of the second, short calibration run: 4x the cores (at most 16), no more
    than the requests (a shard per worker)."""
    return max(2, min(16, 4 * int(p.cores), p.requests))


def apply_crowd(p: Probe, cal: dict[str, float], workers: int, batch: int) -> None:
    """What starting one loader worker costs in a real loader (forks, each worker's set-up and its
    storage client, while the others start and read), from the run with ``workers`` workers: the
    model's epoch (the calibrated start, one worker start each, every sample at the modelled
    rate) solved for the worker start. The bare fork measured before (``fork_s``: a process started
    and joined, one after the other) is only the fallback: in a loader the workers start while the
    first ones read, and the joins come at the epoch's end (measured: the solved start was 25 %
    below the bare fork on the filesystem's shards, and the bare fork as a floor under-predicted
    every CPU-bound point with many workers).

    When the model has that run CPU-bound, its requests are one sample each (not streamed), and it
    measured a steady pace (``steady_rate``: between a long and a short run,
    :func:`calibrate_steady`), the cpu term is corrected by that pace over the modelled one
    (``crowd_cpu_scale``, within 0.5-2x) before the start is solved: the contention measured on
    spinning processes does not see what many loader processes lose to switching and handoffs
    (measured before: 8 workers on the filesystem 21-33 % below the cpu term). A pace above the
    storage's ceiling raises the ceiling to it: the probe's GETs reached less than a real loader
    got (the local S3 server at 8 workers: 239 samples/s from the ceiling, 264-302 measured)."""
    wall, samples = cal.get("wall_s", 0.0), cal.get("samples", 0.0)
    if wall <= 0 or samples <= 0:
        p.notes.append(f"the run with {workers} workers measured nothing: a worker's start is the bare fork")
        return
    t = terms(p, Point(workers=workers, batch_size=batch))
    pace = cal.get("steady_rate")
    if pace and p.ceiling_MiB_per_s and pace > t["storage"]:
        # a real loader got more from the storage than the probe's GETs reached: its ceiling is higher
        p.ceiling_MiB_per_s = pace * p.sample_bytes / 2**20
        p.notes.append(f"the storage's ceiling raised to what {workers} loader workers got from it: "
                       f"{p.ceiling_MiB_per_s:,.1f} MiB/s")
        t = terms(p, Point(workers=workers, batch_size=batch))
    if pace and not p.streams and min(TERMS[:3], key=lambda k: t[k]) == "cpu":
        # CPU-bound: its steady pace is what that many processes of a real loader got done (the
        # contention measured on spinning processes does not see what they lose to switching)
        p.crowd_processes = workers + 1
        p.crowd_cpu_scale = min(2.0, max(0.5, pace / t["cpu"]))
    solved = solve_fork(p, Point(workers=workers, batch_size=batch, max_steps=math.ceil(samples / batch)), wall)
    p.fork_s, p.solo_fork_s, p.startup_s = solved.fork_s, solved.solo_fork_s, solved.startup_s
    p.start_processes = solved.start_processes


#: bisection steps solving for a worker's start (the wall is not linear in it where it is simulated)
SOLVE_STEPS = 40


def solve_fork(p: Probe, pt: Point, wall: float) -> Probe:
    """``p`` with the worker start at which the model's epoch for ``pt`` lasts ``wall`` (0 when even
    none is too long: the run was faster than the model).

    Streamed requests (simulated: every worker's start is CPU on the shared cores) keep the
    one-worker run's start as it was measured (``startup_s`` + the bare fork, before): a worker's
    start up to it is part of it (``solo_fork_s``), and the loader's own start (``startup_s``) is
    the rest; a start beyond it is what more processes than cores cost each other
    (:meth:`Probe.worker_start_s`). Without that, a worker start solved from 8 workers on 2 cores
    (25-40 ms each) came on top of the one-worker start it was part of."""
    start1 = p.startup_s + p.fork_s

    def probe_at(fork: float) -> Probe:
        if not p.streams:
            return replace(p, fork_s=fork)
        solo = min(fork, start1)
        return replace(p, fork_s=fork, solo_fork_s=solo, startup_s=start1 - solo, start_processes=pt.workers + 1)

    def wall_at(fork: float) -> float:
        q = probe_at(fork)
        return epoch_wall(q, pt, terms(q, pt), worker_seconds(q, pt)[1])

    lo, hi = 0.0, wall if p.streams else wall / max(1, pt.workers)
    if wall_at(lo) >= wall:
        return probe_at(0.0)
    for _ in range(SOLVE_STEPS):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if wall_at(mid) < wall else (lo, mid)
    return probe_at((lo + hi) / 2)


def apply_calibration(p: Probe, cal: dict[str, float], batch: int) -> None:
    """Per-batch overhead (or, for a server, how much slower it answers a real loader than the
    probe), worker start-up and CPU per sample from the calibration run: one worker, so after its
    first batch the run's pace is the worker's own time per sample. A pace below the latency,
    client CPU and decode measured apart lowers the decode to fit it (never below 0)."""
    samples, wall, first = cal.get("samples", 0.0), cal.get("wall_s", 0.0), cal.get("time_to_first_batch_s", 0.0)
    if samples <= 0 or wall <= 0:
        p.notes.append("calibration run measured nothing: batch overhead and start-up taken as 0")
        return
    per_sample = (wall - first) / (samples - batch) if samples > 2 * batch else wall / samples
    if cal.get("step_wait_s"):
        per_sample = cal["step_wait_s"] / batch
    service = p.service_s(1) / p.samples_per_request
    if not p.fs and not p.streams and service > 0 and cal.get("get_ms"):
        # a server on these cores may answer a real loader more slowly than the probe's bare GETs:
        # the calibration run recorded its GETs, so the factor is measured (the client's CPU left out)
        p.service_scale = max(0.0, cal["get_ms"] / 1e3 - p.read_cpu_s) / p.service_s(1)
    known = (p.service_s(1) + p.read_cpu_s) / p.samples_per_request + p.decode_cpu_s
    if per_sample < known and p.decode_cpu_s > 0 and cal.get("step_wait_s"):
        # the worker's pace is below the parts measured apart: it decoded faster than the probe's
        # loop in the main process did (measured: 0.252 ms a JPEG there, a worker's whole sample
        # 0.216 ms, and the one-worker epoch predicted 17 % too slow); the worker's pace is kept
        p.decode_cpu_s = max(0.0, p.decode_cpu_s - (known - per_sample))
        known = per_sample
    residual = max(0.0, per_sample - known)
    if not p.fs and not p.streams and service > 0 and not cal.get("get_ms"):
        p.service_scale = 1.0 + residual / service  # no GETs recorded: all of what is left is the server's
    else:  # what is left is the loader's own work per sample (collate, handoff; shards: tar, shuffle)
        p.batch_overhead_s = residual * batch
    p.end_s = cal.get("end_s", 0.0)
    if p.access == "shards" or not cal.get("step_wait_s"):  # a shuffle buffer read ahead: from the first batch
        fill = fill_samples(p, Point(workers=1, batch_size=batch))
        p.startup_s = max(0.0, first - fill * per_sample - p.fork_s)
    else:  # per_sample is the steady pace: what the run took beyond it (its first batches) is its start
        p.startup_s = max(0.0, wall - p.end_s - samples * per_sample - p.fork_s)
    p.calibration_runs = int(cal.get("calibration_runs", 1))
    p.calibration_cores = cal.get("cpu_percent", 0.0) / 100.0
    tree = p.calibration_cores * wall / samples
    if cal.get("steady_cores") is not None:  # after the start: the CPU a sample costs at pace
        p.calibration_cores = cal["steady_cores"]
        tree = cal["steady_cores"] * per_sample
    p.cpu_per_sample_s = max(tree, p.read_cpu_s / p.samples_per_request + p.decode_cpu_s)
