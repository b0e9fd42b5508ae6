"""System sampler over the process tree, page-cache residency, rich rendering."""

from __future__ import annotations

import io
import multiprocessing as mp
import time

from rich.console import Console

from dnnbench.errors import ConfigError
from dnnbench.recording.system import SystemSampler
from dnnbench.storage import pagecache
from dnnbench.ui.console import RichEvents, render_error, summary_table


def _burn(cpu_seconds):
    """Busy until this process has used ``cpu_seconds`` of CPU (however loaded the machine is)."""
    x = 0
    while time.process_time() < cpu_seconds:
        x += 1


def test_sampler_counts_children():
    s = SystemSampler(0.05).start()
    t0 = time.perf_counter()
    p = mp.get_context("fork").Process(target=_burn, args=(0.4,))
    p.start()
    time.sleep(0.3)
    procs_seen = max(r[3] for r in s.rows)
    p.join()
    t1 = time.perf_counter()
    s.stop()
    assert procs_seen >= 2
    cpu = s.cpu_percent_between(t0, t1)
    # the child's 0.4 CPU-seconds are counted (all but what it burned after the last sample);
    # in CPU-seconds, not percent, so a loaded machine stretching the window changes nothing
    window = [r[0] for r in s.rows if r[0] <= t0][-1:] + [r[0] for r in s.rows if r[0] >= t1][:1]
    assert cpu is not None and len(window) == 2
    assert cpu * (window[1] - window[0]) / 100 >= 0.25
    assert s.peak_rss > 0


def test_resident_fraction_and_drop(tmp_path):
    f = tmp_path / "f.bin"
    f.write_bytes(b"x" * 100_000)
    f.read_bytes()
    frac = pagecache.resident_fraction([str(f)])
    assert frac is not None and frac > 0.5
    done, why = pagecache.drop_caches()
    assert done or why  # either it worked or it says why
    if done:
        assert pagecache.resident_fraction([str(f)]) <= 0.05
    assert pagecache.classify(None) == "unknown" and pagecache.classify(1.0) == "warm"


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_progress_rate_column_with_injected_clock():
    buf = io.StringIO()
    clock = FakeClock()
    ev = RichEvents(Console(file=buf, width=140, force_terminal=False), get_time=clock)
    ev.task_start("epoch 1/1", total=100)
    clock.t = 2.0
    ev.task_advance(50, 50 * 2**20)
    ev._progress.refresh()
    ev.task_end()
    out = buf.getvalue()
    assert "25 samples/s" in out and "25.0 MiB/s" in out


def test_summary_table_and_errors_render():
    buf = io.StringIO()
    c = Console(file=buf, width=140)
    c.print(summary_table({"run_id": "x", "status": "ok", "MiB_per_s": 1.5, "samples": 10}))
    render_error(ConfigError("bad", reference="framework.batch_size", hint="fix it"), c)
    out = buf.getvalue()
    assert "1.50" in out and "framework.batch_size" in out and "hint: fix it" in out
