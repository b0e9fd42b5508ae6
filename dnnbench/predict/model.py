"""The what-if model: a bottleneck / queueing model of the input pipeline, built from a probe's
measurements (:class:`Probe`), that predicts samples/s, MiB/s and AU for one grid point.

Pure arithmetic, no I/O: every term is named, and the smallest one bounds the point.

- ``little``: Little's law, requests in flight / time each request slot is held. A loader worker
  holds its slot for the request's latency (emulated + the storage's own service time at the
  concurrency the storage sees, :func:`at_storage`) plus the worker's CPU per request (read,
  decode, its share of the batch overhead).
- ``cpu``: the cores we get / CPU per sample (the whole process tree, and a local server's share):
  the cores k processes of ours got doing a loader worker's CPU work in the probe (measured at
  1, cores, 2x and 4x cores processes: more processes than cores pay for the contention, and on a
  shared machine more processes take a larger share of it), corrected beyond one process per core
  by what a real loader with many workers did in the probe (:meth:`Probe.cpu_scale`).
- ``storage``: the storage's throughput ceiling, when the probe reached one.
- ``accelerator``: accelerators x batch size / step compute time.
- ``prefetch``: workers x prefetch_factor batches buffered; printed, and it is why a data rate
  above the accelerator's keeps AU at 100 % (the buffer absorbs a slow batch).

A point the model cannot speak for (the page cache running out, concurrency far beyond the probed
levels, many more workers than cores) gets a ``beyond`` reason and no prediction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from dnnbench.predict.simulate import stream_seconds

MiB = 2**20

#: the terms, in the order they are printed
TERMS = ("little", "cpu", "storage", "accelerator")


@dataclass
class Level:
    """The storage measured at one concurrency: request latency (ms) and throughput."""

    concurrency: int
    requests: int
    p50_ms: float
    mean_ms: float
    p99_ms: float
    requests_per_s: float
    MiB_per_s: float  # noqa: N815 - unit in the name
    wait_ms: float | None = None  # mean latency less the client's CPU (None: mean_ms)
    first_cpu_ms: float = 0.0  # a process's first request: the CPU making its client took beyond a GET


@dataclass
class Probe:
    """What the probe measured (or, in tests, what is fabricated). Times are seconds."""

    access: str  # random | sequential | shards | files (dataset.format files read whole, many samples each)
    fs: bool  # a local filesystem (its reads come from the page cache)
    cores: float  # cores this process may run on
    busy_cores: float  # cores other processes kept busy while the probe measured
    levels: list[Level]
    read_cpu_s: float  # worker CPU per request (client)
    decode_cpu_s: float  # worker CPU per sample (decode + resize)
    server_cpu_s: float  # CPU per request spent outside this process (a local server)
    batch_overhead_s: float  # per batch: collate, handoff to the main process (calibrated)
    startup_s: float  # per epoch: the loader's start beyond its workers' (random: and the first batches' excess)
    cpu_per_sample_s: float  # CPU of the whole process tree per sample (calibrated)
    samples: int  # samples per epoch of the base config
    samples_per_request: float  # 1, or the samples of a shard
    sample_bytes: float  # mean storage bytes per sample
    dataset_bytes: int
    requests: int  # requests per epoch (objects or shards)
    page_cache_bytes: int  # memory free for the page cache
    ceiling_MiB_per_s: float | None = None  # noqa: N815 - None: not reached by the probe
    fork_s: float = 0.0  # starting one loader worker (streams: its CPU, with as many as the run it was solved from)
    solo_fork_s: float | None = None  # streams: a worker's start within the one-worker run's (None: fork_s)
    start_processes: int = 0  # streams: processes of the run fork_s was solved from (0: none)
    bare_fork_s: float = 0.0  # a process started and joined, as measured (the start before it was solved)
    end_s: float = 0.0  # an epoch's end after its last batch: the loader's workers stopped (calibrated)
    calibration_cores: float = 0.0  # cores the calibration run's process tree used (it got at least these)
    threads: bool = False  # the loader's workers are threads of one process (tf.data): its Python work on one core
    service_scale: float = 1.0  # the storage's latency in a real loader over the probe's (calibrated)
    wake_s: float = 0.0  # a sleeping worker's wait for a core after an emulated latency
    wake8_s: float | None = None  # the same with 8 of ours sleeping and waking (None: as wake_s)
    shuffle_buffer: int = 0  # shards: samples a worker holds before its first batch; files: 1 = a file's samples held
    cores_at: list[list[float]] = field(default_factory=list)  # [processes, cores they got] (contention)
    load_average: float = 0.0  # the 1-minute load average while the probe ran
    pace: float = 1.0  # a worker's wall time for its CPU work now over the calibration's (see at_load)
    seconds: float = 0.0  # how long the probe took
    calibration_runs: int = 1  # one-worker calibration runs (short ones are repeated; the median is kept)
    crowd_processes: int = 0  # processes of the run with many workers (0: it measured no steady pace)
    crowd_cpu_scale: float = 1.0  # its steady samples/s over the cpu term modelled for it (a CPU-bound run)
    notes: list[str] = field(default_factory=list)

    @property
    def free_cores(self) -> float:
        return max(0.05, self.cores - self.busy_cores)

    def cores_for(self, processes: int) -> float:
        """Cores ``processes`` busy processes of ours get: what that many processes doing a loader
        worker's CPU work got in the probe (linear between the measured counts, flat beyond), or
        what the calibration run used when that was more (a loader that waits now and then is
        favoured over a spinning process); never more than one core each. A loader whose workers
        are threads of one process (``threads``: tf.data, its reads and decodes Python functions
        under one interpreter lock) gets one core for them, or what its one-worker run used when
        that was more (measured: tf.data's shards with 2-8 workers used 1.16-1.28 cores where
        PyTorch's worker processes used 1.88, and taken as processes 2 and 4 workers at 10 ms
        were predicted 45-64 % too fast)."""
        got = self.contention_cores(processes) if self.cores_at else self.free_cores
        if self.threads:
            got = min(got, 1.0)
        return min(float(processes), max(got, self.calibration_cores))

    def cpu_scale(self, processes: int) -> float:
        """The cpu term's correction for ``processes`` of ours: 1 up to one per core, the run with
        many workers' measured over modelled rate (``crowd_cpu_scale``) at its processes and beyond,
        linear between (what more processes than cores lose to switching, or gain over a spinning
        process, grows with how many more there are)."""
        extra = self.crowd_processes - self.cores
        if extra <= 0 or processes <= self.cores:
            return 1.0
        return 1.0 + (self.crowd_cpu_scale - 1.0) * min(1.0, (processes - self.cores) / extra)

    def worker_start_s(self, workers: int) -> float:
        """A streamed worker's start (CPU) with ``workers`` workers: the part of the one-worker run's
        start it can be (``solo_fork_s``) up to one process per core, the start solved from the run
        with many workers (``fork_s``, at ``start_processes``) at its processes and beyond, linear
        between (8 workers of npz files on 2 cores: 35 ms each, where the whole start of one worker
        was 15 ms; more processes than cores fault in their copied pages and switch more)."""
        if self.solo_fork_s is None:
            return self.fork_s
        extra = self.start_processes - self.cores
        processes = workers + 1
        if extra <= 0 or processes <= self.cores:
            return self.solo_fork_s
        return self.solo_fork_s + (self.fork_s - self.solo_fork_s) * min(1.0, (processes - self.cores) / extra)

    def contention_cores(self, processes: int) -> float:
        """The cores ``processes`` of ours got in the probe's contention measurement (interpolated)."""
        pts = sorted((float(k), float(c)) for k, c in self.cores_at)
        if processes <= pts[0][0]:
            return pts[0][1] * processes / pts[0][0]
        for (k0, c0), (k1, c1) in zip(pts, pts[1:]):
            if processes <= k1:
                return c0 + (c1 - c0) * (processes - k0) / (k1 - k0)
        return pts[-1][1]

    def service_s(self, concurrency: float) -> float:
        """The storage's own mean latency at ``concurrency`` (linear between probed levels, flat beyond).

        A level's latency is taken at most as high as keeps the throughput of the level below it
        (latency x concurrency / its concurrency): a closed loop of twice the requests does not
        get fewer done, and a 0.6 s level on a server sharing the cores now and then did (the
        local S3 server at 8 at once: 107-113 requests/s in some probes after 127-134 at 4, and
        150-160 in the others)."""
        pts: list[tuple[float, float]] = []
        for lv in sorted(self.levels, key=lambda lv: lv.concurrency):
            s = self.service_scale * (lv.mean_ms if lv.wait_ms is None else lv.wait_ms) / 1e3
            if pts:
                s = min(s, pts[-1][1] * lv.concurrency / pts[-1][0])
            pts.append((lv.concurrency, s))
        if not pts:
            return 0.0
        if concurrency <= pts[0][0]:
            return pts[0][1]
        for (c0, s0), (c1, s1) in zip(pts, pts[1:]):
            if concurrency <= c1:
                return s0 + (s1 - s0) * (concurrency - c0) / (c1 - c0)
        return pts[-1][1]

    def wake_at(self, processes: int) -> float:
        """A worker's wake-up delay with ``processes`` of ours waking (linear from 1 to 8, flat beyond)."""
        if self.wake8_s is None:
            return self.wake_s
        return self.wake_s + (self.wake8_s - self.wake_s) * (min(processes, 8) - 1) / 7

    @property
    def streams(self) -> bool:
        """Does a worker stream its own requests of many samples (shards, files read whole)?"""
        return self.access in ("shards", "files")

    @property
    def max_concurrency(self) -> int:
        return max((lv.concurrency for lv in self.levels), default=1)


@dataclass
class Point:
    """One grid point: the knobs the model understands."""

    workers: int
    latency_ms: float = 0.0
    requests_in_flight: int = 1
    compute_time_s: float = 0.0
    accelerators: int = 1
    batch_size: int = 32
    prefetch_factor: int = 2
    bandwidth_MBps: float | None = None  # noqa: N815
    epochs: int = 1
    warmup_steps: int = 0
    max_steps: int | None = None


@dataclass
class Prediction:
    """The model's answer for one point: named terms (samples/s), the bound, the figures."""

    terms: dict[str, float]
    bound: str | None
    samples_per_s: float | None
    MiB_per_s: float | None  # noqa: N815
    au_percent: float | None
    wall_s: float | None
    hold_ms: float  # how long one request slot is held (latency + worker time per request)
    in_flight: int
    prefetch_batches: int
    beyond: str | None = None


def beyond_model(p: Probe, pt: Point) -> str | None:
    """Why the model cannot speak for ``pt`` (None: it can)."""
    if p.fs and p.dataset_bytes > p.page_cache_bytes:
        return (f"page cache: the dataset ({p.dataset_bytes / MiB:,.0f} MiB) exceeds the free memory "
                f"({p.page_cache_bytes / MiB:,.0f} MiB); the probe read from the cache")
    in_flight = pt.accelerators * max(1, pt.workers) * pt.requests_in_flight
    if in_flight > 4 * p.max_concurrency and not p.fs:
        return f"{in_flight} requests in flight: more than 4x the probed {p.max_concurrency}"
    if pt.accelerators * max(1, pt.workers) > 8 * p.cores:
        return f"{pt.accelerators * pt.workers} loader processes on {p.cores:g} cores"
    return None


def at_storage(in_flight: int, latency_ms: float) -> float:
    """The concurrency whose probed latency a request meets at the storage. Without an emulated
    wait the slots go back to the storage at once, as the probe's processes did: all of them.
    With one, every request waits the same fixed time, so the slots stay together: they reach the
    storage as one burst, answered in turn, and the mean request waits for half of it,
    (in flight + 1) / 2 (measured on the local S3 server at 8 workers and 50 ms: the GETs took
    the probe's latency at 4 to 5 at once, not at 8)."""
    return (in_flight + 1) / 2 if latency_ms > 0 else float(in_flight)


def request_seconds(p: Probe, pt: Point) -> tuple[float, float]:
    """(a request's wait: emulated latency, wake-up, the storage's own latency at the concurrency
    it sees, transfer; a worker's CPU per sample: read, decode, its share of the batch overhead), s."""
    concurrency = pt.accelerators * max(1, pt.workers) * pt.requests_in_flight
    request_bytes = p.sample_bytes * p.samples_per_request
    transfer = request_bytes / (pt.bandwidth_MBps * 1e6) if pt.bandwidth_MBps else 0.0
    wake = p.wake_at(pt.accelerators * max(1, pt.workers)) if pt.latency_ms > 0 else 0.0
    latency = pt.latency_ms / 1e3 + wake + p.service_s(at_storage(concurrency, pt.latency_ms)) + transfer
    cpu = p.pace * (p.read_cpu_s / p.samples_per_request + p.decode_cpu_s + p.batch_overhead_s / pt.batch_size)
    return latency, cpu


def worker_seconds(p: Probe, pt: Point) -> tuple[float, float]:
    """(hold time of one request slot, worker time per sample), seconds."""
    latency, cpu = request_seconds(p, pt)
    per_sample = latency / (pt.requests_in_flight * p.samples_per_request) + cpu
    return latency + cpu * p.samples_per_request, per_sample


def terms(p: Probe, pt: Point) -> dict[str, float]:
    """Each term's samples/s for the whole point (all accelerators); inf = no limit."""
    workers = max(1, pt.workers)
    if p.streams:
        workers = min(workers, max(1, p.requests))  # a worker with no shard or file reads nothing
    _, per_sample = worker_seconds(p, pt)
    processes = pt.accelerators * (workers + 1)
    cpu = max(p.cpu_per_sample_s, p.read_cpu_s / p.samples_per_request + p.decode_cpu_s) \
        + p.server_cpu_s / p.samples_per_request
    return {
        "little": pt.accelerators * workers / per_sample,
        "cpu": p.cores_for(processes) * p.cpu_scale(processes) / cpu if cpu > 0 else math.inf,
        "storage": p.ceiling_MiB_per_s * MiB / p.sample_bytes if p.ceiling_MiB_per_s else math.inf,
        "accelerator": pt.accelerators * pt.batch_size / pt.compute_time_s if pt.compute_time_s > 0 else math.inf,
    }


def predict(p: Probe, pt: Point) -> Prediction:
    """The model's prediction for ``pt`` (or why there is none: ``beyond``)."""
    hold, per_sample = worker_seconds(p, pt)
    workers = max(1, pt.workers)
    t = terms(p, pt)
    base = dict(terms=t, hold_ms=hold * 1e3, in_flight=pt.accelerators * workers * pt.requests_in_flight,
                prefetch_batches=workers * pt.prefetch_factor)
    why = beyond_model(p, pt)
    if why is not None:
        return Prediction(bound=None, samples_per_s=None, MiB_per_s=None, au_percent=None, wall_s=None,
                          beyond=why, **base)
    bound = min(TERMS, key=lambda k: t[k])
    data_rate = min(t["little"], t["cpu"], t["storage"])
    wall = epoch_wall(p, pt, t, per_sample) * pt.epochs
    total = samples_per_epoch(p, pt) * pt.epochs * pt.accelerators
    rate = total / wall
    au = None
    if pt.compute_time_s > 0:
        step = max(pt.compute_time_s, pt.accelerators * pt.batch_size / data_rate)
        au = 100.0 * pt.compute_time_s / step
    return Prediction(bound=bound, samples_per_s=rate, MiB_per_s=rate * p.sample_bytes / MiB, au_percent=au,
                      wall_s=wall, **base)


def samples_per_epoch(p: Probe, pt: Point) -> int:
    """Samples one accelerator reads per epoch (``training.max_steps`` caps it)."""
    if pt.max_steps is not None:
        return min(p.samples, pt.max_steps * pt.batch_size)
    return p.samples


def start_s(p: Probe, pt: Point) -> float:
    """An epoch's start before the workers read at pace: what the calibration run's start took
    (its worker's storage client made at its first request included), then the loader starts its
    workers one after the other (the clients of more workers are made at once: measured, that
    adds little to the forks)."""
    return p.pace * (p.startup_s + max(1, pt.workers) * p.fork_s)


def one_process_share(free_cores: float, cores: float) -> float:
    """The share of a core one busy process gets when one process per core got ``free_cores`` of
    ``cores``: a fair scheduler gave each of them cores / (cores + others) so the others' runnable
    processes are cores x (cores / free - 1), and one process gets cores / (1 + others), at most 1."""
    free = min(max(free_cores, 0.05), cores)
    others = cores * (cores / free - 1.0)
    return min(1.0, cores / (1.0 + others))


def at_load(p: Probe, free_now: float) -> Probe:
    """The probe moved to another load: the machine now gives one process per core ``free_now``
    cores where the probe saw ``p.free_cores``. Every measured core count scales by their ratio,
    and a worker's CPU work (calibrated at the probe's load: read, decode, per-batch overhead, the
    epoch's start) takes longer or shorter by one process's share of a core then over now."""
    ratio = max(0.05, free_now) / p.free_cores
    pace = one_process_share(p.free_cores, p.cores) / one_process_share(free_now, p.cores)
    return replace(p, busy_cores=max(0.0, p.cores - free_now), pace=p.pace * pace,
                   cores_at=[[k, min(float(k), p.cores, c * ratio)] for k, c in p.cores_at],
                   calibration_cores=min(p.cores, p.calibration_cores * ratio), notes=list(p.notes))


def fill_samples(p: Probe, pt: Point) -> float:
    """Samples one worker reads before its first batch. Shards: its shuffle buffer fills first, and
    then every sample it reads lets one out, so a batch is out after buffer + batch - 1 (the buffer
    comes out at the stream's end without reading: the epoch's last batches are free). Files read
    whole whose samples are held (``sample_shuffle``): whole files, until they hold a batch."""
    if not p.streams:
        return pt.batch_size
    per_worker = p.samples / max(1, min(max(1, pt.workers), p.requests))
    if p.access == "files":
        spr = max(1.0, p.samples_per_request)
        fill = math.ceil(pt.batch_size / spr) * spr if p.shuffle_buffer else pt.batch_size
        return max(1.0, min(fill, per_worker))
    return max(pt.batch_size, min(p.shuffle_buffer + pt.batch_size - 1, per_worker))


def epoch_wall(p: Probe, pt: Point, t: dict[str, float], per_sample: float) -> float:
    """One epoch's wall time (``t``: the point's terms): the workers' start, then every sample at
    the bounding rate (all the workers fill their first batches together, so the first batch is no
    extra time unless one worker's fill outlasts the whole epoch's reading), then its end (the
    workers stopped). Streamed requests of one loader are simulated instead
    (:mod:`dnnbench.predict.simulate`: their waits and CPU do not overlap as the terms assume; the
    workers' starts are in it), no faster than the storage's ceiling or the accelerator allow."""
    n = samples_per_epoch(p, pt) * pt.accelerators
    if p.streams and pt.accelerators == 1:
        floor = n / min(t["storage"], t["accelerator"])
        return p.pace * p.startup_s + max(stream_seconds(p, pt, n, *request_seconds(p, pt)), floor) \
            + p.pace * p.end_s
    rate = min(t[k] for k in TERMS)
    return start_s(p, pt) + max(fill_samples(p, pt) * per_sample, n / rate) + p.pace * p.end_s
