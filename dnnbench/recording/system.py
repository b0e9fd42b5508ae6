"""System sampler: CPU and memory of the whole process tree (loader workers
included), sampled on a background thread."""

from __future__ import annotations

import os
import threading
import time

import psutil

SYSTEM_COLUMNS = ["t", "cpu_percent", "rss_MiB", "processes", "read_MiB", "system_cpu_percent", "cpu_s"]


class SystemSampler:
    """Samples CPU seconds and RSS of this process and all its descendants."""

    def __init__(self, interval_s: float = 0.5):
        self.interval = interval_s
        self.rows: list[list] = []
        self.peak_rss = 0
        self._proc = psutil.Process(os.getpid())
        self._known: dict[int, psutil.Process] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.perf_counter()
        self._cpu0 = self._cpu_seconds()
        self._last = (self._t0, self._cpu0)

    def _tree(self) -> list[psutil.Process]:
        procs = [self._proc]
        try:
            for child in self._proc.children(recursive=True):
                procs.append(self._known.setdefault(child.pid, child))
        except psutil.Error:
            pass
        return procs

    def _cpu_seconds(self) -> float:
        total = 0.0
        for i, p in enumerate(self._tree()):
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system
            if i == 0:  # exited, reaped children (e.g. non-persistent loader workers)
                total += t.children_user + t.children_system
        return total

    def sample(self) -> None:
        now = time.perf_counter()
        cpu = self._cpu_seconds()
        rss = 0
        read = 0
        procs = self._tree()
        for p in procs:
            try:
                rss += p.memory_info().rss
                read += getattr(p.io_counters(), "read_chars", 0)
            except (psutil.Error, AttributeError):
                continue
        self.peak_rss = max(self.peak_rss, rss)
        last_t, last_cpu = self._last
        dt = now - last_t
        cpu_pct = 100.0 * (cpu - last_cpu) / dt if dt > 0 else 0.0
        self._last = (now, cpu)
        self.rows.append([now, round(max(cpu_pct, 0.0), 1), round(rss / 2**20, 1), len(procs),
                          round(read / 2**20, 1), psutil.cpu_percent(interval=None), round(cpu, 3)])

    def start(self) -> "SystemSampler":
        psutil.cpu_percent(interval=None)
        self.sample()
        self._thread = threading.Thread(target=self._run, name="system-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sample()

    def cpu_percent_between(self, t_start: float, t_end: float) -> float | None:
        """Average CPU %% of the process tree over a window (100 = one core busy)."""
        before = [r for r in self.rows if r[0] <= t_start]
        after = [r for r in self.rows if r[0] >= t_end]
        a = before[-1] if before else (self.rows[0] if self.rows else None)
        b = after[0] if after else (self.rows[-1] if self.rows else None)
        if a is None or b is None or b[0] - a[0] <= 0:
            return None
        return 100.0 * (b[6] - a[6]) / (b[0] - a[0])
