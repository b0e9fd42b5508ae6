"""An epoch of streamed requests (tar shards, ``dataset.format`` files read whole), simulated.

A worker that streams a request of many samples waits for it (the emulated latency and the
storage's own), then spends the whole request's CPU (read, decode, its share of the batch
overhead) before it sends the next one. Workers that start together wait together and then
compete for the cores together: the waits and the CPU do not overlap as the closed-form terms
assume (``little`` and ``cpu`` each as if the other were free), and the workers' starts, spread
by the cores they share, undo part of that. Measured on the filesystem's shards, 8 workers at 50 ms: the closed form was
31 % too high, the max of the two terms is not what happens.

So the epoch is simulated: every worker starts at once with its start as CPU work
(:meth:`Probe.worker_start_s`:
making the process and its copy-on-write pages, its storage client, its first use of the format;
measured: 8 workers of npz files on 2 cores used 240-264 ms of CPU in a run of 176-209 ms, 25 to
30 ms each beyond their reading, and began their first reads 55 ms after the loader's start, not
one fork apart), then alternates a wait (fixed) and its CPU work (processor sharing: the busy
processes of ours split the cores the probe measured for that many, :meth:`Probe.cores_for`, at
most one each; the main process is one of them while it has batches to take in, at the process
tree's CPU per sample beyond the worker's; workers that are threads of one process, tf.data's,
share one core, :meth:`Probe.cores_for`, and their main loop is the same interpreter, its work
in the worker's measured pace). A start taken as a fixed delay between workers instead
(each starting one fork after the one before, reading alone) put the last of 8 workers 129 ms in,
with its 4 files read at the one-worker pace: 28 % above a measured epoch of npz files. Deterministic
and pure, no I/O. Requests one sample each (random access) keep the closed form: their waits and CPU
interleave finely, and the closed form held there.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dnnbench.predict.model import Point, Probe

#: requests simulated in full; an epoch with more is simulated at this and half of it, and the
#: rest taken at the pace between the two (the fill and the start are in both)
SIMULATED_REQUESTS = 4096
_EPS = 1e-12


def stream_seconds(p: Probe, pt: Point, samples: int, wait_s: float, worker_cpu_s: float) -> float:
    """Seconds from the first worker's start to the last request's end, for an epoch of
    ``samples`` streamed in requests of ``p.samples_per_request`` (dealt to the workers in turn),
    each request waiting ``wait_s`` and then costing ``worker_cpu_s`` per sample in its worker."""
    spr = max(1.0, p.samples_per_request)
    requests = math.ceil(samples / spr)
    if requests <= SIMULATED_REQUESTS:
        return _simulate(p, pt, requests, samples, wait_s, worker_cpu_s)
    half = SIMULATED_REQUESTS // 2
    t1 = _simulate(p, pt, half, half * spr, wait_s, worker_cpu_s)
    t2 = _simulate(p, pt, SIMULATED_REQUESTS, SIMULATED_REQUESTS * spr, wait_s, worker_cpu_s)
    return t2 + (requests - SIMULATED_REQUESTS) * (t2 - t1) / (SIMULATED_REQUESTS - half)


def _simulate(p: Probe, pt: Point, requests: int, samples: float, wait_s: float, worker_cpu_s: float) -> float:
    workers = max(1, min(max(1, pt.workers), requests))
    spr = max(1.0, p.samples_per_request)
    sizes = [min(spr, samples - r * spr) for r in range(requests)]
    dealt = [sizes[w::workers] for w in range(workers)]
    tree = max(p.cpu_per_sample_s, worker_cpu_s)
    main_cpu = 0.0 if p.threads else max(0.0, tree - worker_cpu_s)
    # each worker: [phase, until (wait: an absolute time) or CPU left (s), next request]; it starts
    # with its own start (CPU), then waits for its first request
    start = p.pace * p.worker_start_s(workers)
    state: list[list] = [["start", start, 0] if start > 0 else ["wait", wait_s, 0] for _ in range(workers)]
    t, main = 0.0, 0.0
    while True:
        busy = [s for s in state if s[0] in ("cpu", "start")]
        n = len(busy) + (main > _EPS)
        share = min(1.0, p.cores_for(n) * p.cpu_scale(n) / n) if n else 0.0
        dt = math.inf
        for s in state:
            if s[0] == "wait":
                dt = min(dt, s[1] - t)
            elif s[0] in ("cpu", "start"):
                dt = min(dt, s[1] / share)
        if main > _EPS:
            dt = min(dt, main / share)
        if math.isinf(dt):
            return t
        dt = max(0.0, dt)
        t += dt
        main = max(0.0, main - share * dt)
        for w, s in enumerate(state):
            if s[0] == "start":
                s[1] -= share * dt
                if s[1] <= _EPS:
                    s[:] = ["wait", t + wait_s, 0]
            elif s[0] == "cpu":
                s[1] -= share * dt
                if s[1] <= _EPS:
                    main += dealt[w][s[2]] * main_cpu
                    s[2] += 1
                    s[:] = ["wait", t + wait_s, s[2]] if s[2] < len(dealt[w]) else ["done", 0.0, s[2]]
            elif s[0] == "wait" and s[1] - t <= _EPS:
                s[:] = ["cpu", dealt[w][s[2]] * worker_cpu_s, s[2]]
