"""Resource bounds of a config, checked at validation so that nothing a config says can
hang the tool or take the machine's memory without a clear refusal.

Each bound is a key of the config's ``limits:`` section (:class:`~dnnbench.config.schema.LimitsConfig`),
so a user with a bigger machine raises the one named in the message. Memory is checked
against ``limits.memory_MiB``, by default this machine's physical memory. Pure arithmetic
on the validated config: nothing is imported, allocated or started.
"""

from __future__ import annotations

import math
import os
from typing import Any

#: bytes of one decoded value: images reach the model as float32
_VALUE_BYTES = 4


def machine_memory_MiB() -> int | None:
    """Physical memory of this machine in MiB (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    except (AttributeError, ValueError, OSError):
        return None


def check_limits(cfg: Any) -> None:
    """Every bound of ``cfg.limits`` against the config.

    Raises:
        ValueError: the first bound exceeded, naming the setting, its value and the limit.
    """
    lim = cfg.limits
    _at_most("framework.num_workers", cfg.framework.num_workers, lim.workers, "workers")
    _at_most("execution.listing_workers", cfg.execution.listing_workers, lim.workers, "workers")
    _at_most("prepare.workers", cfg.prepare.workers, lim.workers, "workers")
    _at_most("framework.tensorflow.cycle_length", cfg.framework.tensorflow.cycle_length, lim.workers, "workers")
    _at_most("framework.prefetch_factor", cfg.framework.prefetch_factor, lim.prefetch_factor, "prefetch_factor")
    _check_in_flight(cfg)
    emulate = cfg.storage.emulate
    if emulate is not None:
        _at_most("storage.emulate.latency_ms", emulate.latency_ms, lim.latency_ms, "latency_ms")
    durations = [("training.compute_time_s", cfg.training.compute_time_s),
                 ("metrics.system_interval_s", cfg.metrics.system_interval_s)]
    if cfg.storage.s3 is not None:
        durations += [("storage.s3.connect_timeout_s", cfg.storage.s3.connect_timeout_s),
                      ("storage.s3.read_timeout_s", cfg.storage.s3.read_timeout_s)]
    for name, value in durations:
        _at_most(name, value, lim.duration_s, "duration_s")
    _check_runs(cfg)
    _check_memory(cfg)


def _at_most(name: str, value: float | None, limit: float, key: str) -> None:
    if value is not None and value > limit:
        raise ValueError(f"{name} {value:,} is over the limit of {limit:,} (limits.{key}); "
                         f"if this machine can take it, raise limits.{key}")


def _check_in_flight(cfg: Any) -> None:
    """``dataset.requests_in_flight``: threads in all, and no more than the S3 connection pool."""
    k = cfg.dataset.requests_in_flight
    if k == 1:
        return
    workers = max(1, cfg.framework.num_workers)
    limit = cfg.limits.requests_in_flight
    if k * workers > limit:
        raise ValueError(f"dataset.requests_in_flight {k:,} x {workers:,} loader workers = {k * workers:,} requests "
                         f"in flight (a thread each) is over the limit of {limit:,} (limits.requests_in_flight); "
                         "lower one of them, or raise limits.requests_in_flight if this machine can take it")
    s3 = cfg.storage.s3
    if s3 is not None and k > s3.max_pool_connections:
        raise ValueError(f"dataset.requests_in_flight {k:,} is more than storage.s3.max_pool_connections "
                         f"{s3.max_pool_connections:,}: the requests over it would wait for a connection; "
                         "raise storage.s3.max_pool_connections to at least dataset.requests_in_flight")


def _check_runs(cfg: Any) -> None:
    """A sweep's variants x repeat, counted without expanding the grid."""
    sweep = cfg.sweep
    if sweep is None:
        variants, what = 1, "repeat"
    elif sweep.grid is not None:
        variants = math.prod(len(v) for v in sweep.grid.values())
        what = "sweep.grid (the product of its value counts) x repeat"
    else:
        variants, what = len(sweep.variants), "sweep.variants x repeat"
    runs = variants * cfg.repeat
    if runs > cfg.limits.sweep_runs:
        raise ValueError(f"{what} is {runs:,} runs: over the limit of {cfg.limits.sweep_runs:,} "
                         "(limits.sweep_runs); split the sweep, or raise limits.sweep_runs")


def _check_memory(cfg: Any) -> None:
    memory = cfg.limits.memory_MiB or machine_memory_MiB()
    if memory is None:
        return
    source = "limits.memory_MiB" if cfg.limits.memory_MiB else "limits.memory_MiB, this machine's memory"
    h, w = cfg.dataset.image_dimension
    channels = 1 if cfg.dataset.decode == "gray" else 3
    per_sample = h * w * channels * _VALUE_BYTES
    batch = max(cfg.framework.batch_size, cfg.inference.batch_size or 0)
    batches = _batches_in_flight(cfg)
    held = per_sample * batch * batches + per_sample * (cfg.framework.tensorflow.shuffle_buffer or 0)
    if held > memory * 2**20:
        raise ValueError(
            f"dataset.image_dimension [{h}, {w}] with framework.batch_size {batch}: the decoded batches in flight "
            f"({batches:,} batches of {batch:,} x {h:,} x {w:,} x {channels} float32) need {held / 2**20:,.0f} MiB, "
            f"more than {memory:,} MiB ({source}); lower the image size, the batch size or "
            "num_workers x prefetch_factor")
    ckpt = cfg.checkpoint.size_MiB
    if 2 * ckpt > memory:
        raise ValueError(f"checkpoint.size_MiB {ckpt:,.0f}: the checkpoint is held in memory when written and "
                         f"again when read back ({2 * ckpt:,.0f} MiB), more than {memory:,} MiB ({source})")


def _batches_in_flight(cfg: Any) -> int:
    """Batches a loader holds at once: PyTorch's workers x prefetch_factor (at least one
    being built), tf.data's prefetch buffer, plus the one the trainer holds."""
    fw = cfg.framework
    batches = max(1, fw.num_workers) * (fw.prefetch_factor or 2)
    if fw.name == "tensorflow" and isinstance(fw.tensorflow.prefetch, int):
        batches = max(batches, fw.tensorflow.prefetch)
    return batches + 1
