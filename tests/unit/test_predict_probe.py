"""The probe: its arithmetic on a calibration run's figures, and its measurements of a known latency and CPU cost."""

from __future__ import annotations

import time

import pytest

from dnnbench.predict import machine
from dnnbench.predict import probe as probe_mod
from dnnbench.predict.machine import contention_levels
from dnnbench.predict.model import Level, Point, predict
from dnnbench.predict.probe import (apply_calibration, apply_crowd, ceiling, crowd_steady_batches, crowd_workers,
                                    steady_cores, trimmed_step_wait)
from tests.unit.test_predict_model import probe


def test_a_filesystem_calibration_leaves_the_per_batch_overhead():
    p = probe(fs=True, read_cpu_s=0.001, decode_cpu_s=0.002, levels=[Level(1, 1, 0, 1.0, 0, 0, 0, wait_ms=1.0)])
    apply_calibration(p, {"samples": 320, "wall_s": 2.0, "time_to_first_batch_s": 0.5, "cpu_percent": 50.0,
                          "step_wait_s": 0.16}, batch=32)
    assert p.batch_overhead_s == pytest.approx(0.16 - 32 * 0.004) and p.service_scale == 1.0
    # the steady pace (5 ms a sample) over the run's 320 samples: the rest of its 2 s is its start
    assert p.startup_s == pytest.approx(2.0 - 320 * 0.005)
    assert p.calibration_cores == 0.5 and p.cpu_per_sample_s == pytest.approx(0.5 * 2.0 / 320)
    apply_calibration(p, {"samples": 320, "wall_s": 2.0, "time_to_first_batch_s": 0.5, "cpu_percent": 50.0,
                          "step_wait_s": 0.16, "steady_cores": 0.8}, batch=32)
    assert p.calibration_cores == 0.8 and p.cpu_per_sample_s == pytest.approx(0.8 * 0.005)  # at pace


def test_a_workers_pace_below_the_parts_measured_apart_lowers_the_decode_to_fit():
    # 1 ms latency + 1 ms client + 3 ms decode = 5 ms measured apart; the worker did a sample in 4 ms
    p = probe(fs=True, read_cpu_s=0.001, decode_cpu_s=0.003, levels=[Level(1, 1, 0, 1.0, 0, 0, 0, wait_ms=1.0)])
    apply_calibration(p, {"samples": 320, "wall_s": 2.0, "time_to_first_batch_s": 0.5, "step_wait_s": 0.128}, 32)
    assert p.decode_cpu_s == pytest.approx(0.002) and p.batch_overhead_s == 0.0
    assert predict(p, Point(workers=1, batch_size=32)).terms["little"] == pytest.approx(1 / 0.004)
    # more than the decode to take away: the decode is 0, latency and client CPU stay as measured
    p = probe(fs=True, read_cpu_s=0.001, decode_cpu_s=0.003, levels=[Level(1, 1, 0, 1.0, 0, 0, 0, wait_ms=1.0)])
    apply_calibration(p, {"samples": 320, "wall_s": 2.0, "time_to_first_batch_s": 0.5, "step_wait_s": 0.032}, 32)
    assert p.decode_cpu_s == 0.0 and p.read_cpu_s == 0.001


def test_the_decode_is_timed_warm_the_median_of_its_passes(monkeypatch):
    from types import SimpleNamespace

    calls: list[int] = []
    cpu = iter([0.9, 3.0, 1.0, 1.2])  # the untimed warm-up, then three passes over the blobs

    def fake_decode_all(blobs, mode, size):
        calls.append(len(blobs))
        return len(blobs), next(cpu) * len(blobs)

    monkeypatch.setattr(probe_mod, "decode_all", fake_decode_all)
    loaded = SimpleNamespace(config=SimpleNamespace(dataset=SimpleNamespace(decode="rgb", image_dimension=[32, 32])))
    assert probe_mod.decode_seconds(loaded, [b"a", b"b", b"c"]) == pytest.approx(1.2)
    assert calls == [1, 3, 3, 3]  # the first blob alone, then every blob three times
    loaded.config.dataset.decode = "none"
    assert probe_mod.decode_seconds(loaded, [b"a"]) == 0.0


def test_a_servers_calibration_stretches_its_latency_instead():
    p = probe(levels=[Level(1, 1, 0, 10.0, 0, 0, 0)])
    apply_calibration(p, {"samples": 320, "wall_s": 8.0, "time_to_first_batch_s": 1.0, "step_wait_s": 0.64}, 32)
    assert p.service_scale == pytest.approx(2.0) and p.batch_overhead_s == 0.0


def test_a_servers_calibration_measures_its_latency_from_the_loaders_own_gets(tmp_path):
    p = probe(levels=[Level(1, 1, 0, 10.0, 0, 0, 0)], read_cpu_s=0.002)
    apply_calibration(p, {"samples": 320, "wall_s": 8.0, "time_to_first_batch_s": 1.0, "step_wait_s": 0.64,
                          "get_ms": 17.0}, 32)
    assert p.service_scale == pytest.approx((0.017 - 0.002) / 0.010)  # the loader's GETs, less the client CPU
    assert p.batch_overhead_s == pytest.approx((0.020 - 0.017) * 32)  # the rest of a sample's 20 ms
    (tmp_path / "requests.csv").write_text("op,latency_ms\nlist,100\nget,90\nget,10\nget,20\n")
    assert probe_mod.loader_get_ms(tmp_path / "requests.csv") == pytest.approx(15.0)  # the first GET left out
    (tmp_path / "requests.csv").write_text("op,latency_ms\nget,90\n")
    assert probe_mod.loader_get_ms(tmp_path / "requests.csv") is None
    assert probe_mod.loader_get_ms(tmp_path / "missing.csv") is None


def test_the_ceiling_is_taken_only_where_the_curve_flattened():
    lv = [Level(c, 1, 0, 0, 0, 0, mib) for c, mib in ((1, 10.0), (2, 19.0), (4, 30.0), (8, 32.0))]
    assert ceiling(lv) == 32.0
    assert ceiling(lv[:3]) is None and ceiling(lv[:1]) is None


def test_the_step_wait_leaves_out_the_first_step_and_the_tails(tmp_path):
    rows = ["epoch,step,t_s,wait_s"] + [f"0,{i},0,{w}" for i, w in enumerate([9.0] + [0.1] * 18 + [5.0, 0.0])]
    (tmp_path / "steps.csv").write_text("\n".join(rows) + "\n")
    assert trimmed_step_wait(tmp_path / "steps.csv") == pytest.approx(0.1)
    rows = ["epoch,step,t_s,wait_s"] + [f"0,{i},0,{w}" for i, w in enumerate([9.0] + [0.1] * 8 + [0.001, 0.0005])]
    (tmp_path / "steps.csv").write_text("\n".join(rows) + "\n")
    assert trimmed_step_wait(tmp_path / "steps.csv", tail=2) == pytest.approx(0.1)  # the free batches left out
    assert trimmed_step_wait(tmp_path / "steps.csv") < 0.09
    assert trimmed_step_wait(tmp_path / "missing.csv") is None


def test_one_sample_a_request_takes_the_median_wait_the_workers_pace(tmp_path):
    # a run of ten batches: the first, one the worker had ready, two slow ones, then the pace
    waits = [30.0, 0.3, 2.5, 3.5, 1.0, 1.1, 0.9, 1.0, 1.0, 1.0]
    rows = ["epoch,step,t_s,wait_s"] + [f"0,{i},0,{w / 1e3}" for i, w in enumerate(waits)]
    (tmp_path / "steps.csv").write_text("\n".join(rows) + "\n")
    assert trimmed_step_wait(tmp_path / "steps.csv", window=1) == pytest.approx(0.001)
    assert trimmed_step_wait(tmp_path / "steps.csv") == pytest.approx(sum(waits[1:]) / 9 / 1e3)  # nothing to trim


def test_a_stream_takes_the_median_over_the_batches_of_one_unit(tmp_path):
    # files of four batches: one waits for the file (4 ms), the next three come at once; a slow one first
    waits = [30.0, 9.0, 0.0, 0.1, 0.0, 4.0, 0.0, 0.0, 0.0, 3.9, 0.1, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0]
    rows = ["epoch,step,t_s,wait_s"] + [f"0,{i},0,{w / 1e3}" for i, w in enumerate(waits)]
    (tmp_path / "steps.csv").write_text("\n".join(rows) + "\n")
    assert trimmed_step_wait(tmp_path / "steps.csv", window=4) == pytest.approx(0.001)  # 4 ms a file of 4 batches
    assert trimmed_step_wait(tmp_path / "steps.csv", window=1) == 0.0  # one batch at a time: the bursts


def test_steady_cores_leave_out_the_start_before_the_first_batch(tmp_path):
    steps = ["epoch,step,t_s,wait_s,compute_s"] + [f"0,{i},{1.0 + i * 0.5},0.5,0" for i in range(6)]
    # the start (0-1.5 s) used 1 core; from the second step on (1.5-4.0 s) half a core
    system = ["t_s,cpu_percent", "0.0,0", "1.0,100", "1.5,100", "2.5,50", "3.5,50", "4.0,50"]
    (tmp_path / "steps.csv").write_text("\n".join(steps) + "\n")
    (tmp_path / "system.csv").write_text("\n".join(system) + "\n")
    assert steady_cores(tmp_path) == pytest.approx(0.5)
    (tmp_path / "system.csv").write_text("t_s,cpu_percent\n0.0,0\n")
    assert steady_cores(tmp_path) is None


def test_contention_is_measured_at_one_the_cores_and_two_and_four_times_the_cores():
    assert contention_levels(2) == [1, 2, 4, 8] and contention_levels(1) == [1, 2, 4]
    assert contention_levels(32) == [1, 32, 64]


def test_contention_reports_the_cores_each_process_count_got_never_more_than_one_each(monkeypatch):
    monkeypatch.setattr(machine.os, "sched_getaffinity", lambda pid: {0})  # 1 core: 1, 2, 4 processes
    got = machine.contention([], "none", (8, 8), seconds=0.05)
    assert [k for k, _ in got] == [1, 2, 4] and all(0 < c <= k for k, c in got)


def test_a_workers_start_is_solved_from_the_run_with_more_workers_than_cores():
    p = probe(fs=True, decode_cpu_s=0.001, cpu_per_sample_s=0.001, startup_s=0.1, fork_s=0.01,
              levels=[Level(1, 1, 0, 0.0, 0, 0, 0)],
              cores_at=[[1, 1.0], [2, 2.0], [8, 1.6]])
    # 8 workers: 9 processes got 1.6 cores -> 1600 samples/s; 320 samples take 0.2 s of a 1.1 s run
    apply_crowd(p, {"wall_s": 1.1, "samples": 320}, workers=8, batch=32)
    assert p.fork_s == pytest.approx((1.1 - 0.1 - 0.2) / 8)
    apply_crowd(p, {"wall_s": 0.38, "samples": 320}, workers=8, batch=32)  # below the bare fork: the run's
    assert p.fork_s == pytest.approx((0.38 - 0.1 - 0.2) / 8)
    apply_crowd(p, {"wall_s": 0.25, "samples": 320}, workers=8, batch=32)  # faster than the model: no start
    assert p.fork_s == 0.0
    p.fork_s = 0.01
    apply_crowd(p, {}, workers=8, batch=32)
    assert p.fork_s == pytest.approx(0.01) and "the run with 8 workers measured nothing" in p.notes[-1]
    assert crowd_workers(probe(requests=1000)) == 8 and crowd_workers(probe(requests=3)) == 3
    assert crowd_workers(probe(cores=64.0, requests=1000)) == 16


def test_a_streamed_workers_start_is_solved_keeping_the_one_worker_start():
    p = probe(access="shards", fs=True, samples=64, requests=8, samples_per_request=8.0, decode_cpu_s=0.001,
              cpu_per_sample_s=0.001, startup_s=0.05, fork_s=0.01, levels=[Level(1, 1, 0, 0.0, 0, 0, 0)],
              cores_at=[[1, 1.0], [2, 2.0], [8, 2.0]])
    one = predict(p, Point(workers=1, batch_size=8)).wall_s
    assert one == pytest.approx(0.05 + 0.01 + 64 * 0.001)
    # 8 workers on 2 cores: 8 starts (4 x start), then 64 ms of CPU (32 ms); the loader's own start is
    # 60 ms less the worker start: 0.06 - s + 4 s + 0.032 = 0.2
    apply_crowd(p, {"wall_s": 0.2, "samples": 64}, workers=8, batch=8)
    assert p.fork_s == pytest.approx(0.108 / 3) and p.startup_s == pytest.approx(0.06 - 0.108 / 3)
    assert p.solo_fork_s == p.fork_s and p.start_processes == 9
    assert predict(p, Point(workers=1, batch_size=8)).wall_s == pytest.approx(one)  # one worker as measured
    assert predict(p, Point(workers=8, batch_size=8)).wall_s == pytest.approx(0.2)
    # a run with many workers slower than a one-worker start explains: each start up to the one
    # worker's (60 ms) is part of it, and the rest grows with the processes beyond the cores
    apply_crowd(p, {"wall_s": 0.5, "samples": 64}, workers=8, batch=8)
    assert p.startup_s == 0.0 and p.solo_fork_s == pytest.approx(0.06)
    assert p.fork_s == pytest.approx((0.5 - 0.032) / 4)  # 0 + 4 x start + 32 ms = 0.5
    assert predict(p, Point(workers=1, batch_size=8)).wall_s == pytest.approx(one)
    assert predict(p, Point(workers=8, batch_size=8)).wall_s == pytest.approx(0.5)
    assert p.worker_start_s(1) == pytest.approx(0.06) and p.worker_start_s(8) == pytest.approx(p.fork_s)
    assert p.worker_start_s(4) == pytest.approx(0.06 + (p.fork_s - 0.06) * 3 / 7)  # 5 processes of 9, 2 cores


def test_a_cpu_bound_run_with_many_workers_corrects_the_cpu_term_by_its_steady_pace():
    p = probe(fs=True, decode_cpu_s=0.001, cpu_per_sample_s=0.001, startup_s=0.1, fork_s=0.01,
              levels=[Level(1, 1, 0, 0.0, 0, 0, 0)], cores_at=[[1, 1.0], [2, 2.0], [8, 2.0]])
    # modelled: 9 processes, 2 cores -> 2000 samples/s; the run's steady pace was 1600
    apply_crowd(p, {"wall_s": 1.1, "samples": 640, "steady_rate": 1600.0}, workers=8, batch=32)
    assert p.crowd_processes == 9 and p.crowd_cpu_scale == pytest.approx(0.8)
    assert p.fork_s == pytest.approx((1.1 - 0.1 - 640 / 1600) / 8)  # the start solved at the measured pace
    q = probe(fs=True, decode_cpu_s=0.001, cpu_per_sample_s=0.001, levels=[Level(1, 1, 0, 0.0, 0, 0, 0)],
              cores_at=[[1, 1.0], [2, 2.0], [8, 2.0]])
    apply_crowd(q, {"wall_s": 1.0, "samples": 640, "steady_rate": 100.0}, workers=8, batch=32)
    assert q.crowd_cpu_scale == 0.5  # bounded: a run disturbed by other work does not halve every point
    lat = probe(decode_cpu_s=0.001, cpu_per_sample_s=0.001, levels=[Level(1, 1, 0, 50.0, 0, 0, 0)],
                cores_at=[[1, 1.0], [2, 2.0], [8, 2.0]])
    apply_crowd(lat, {"wall_s": 3.0, "samples": 640, "steady_rate": 100.0}, workers=8, batch=32)
    assert lat.crowd_processes == 0 and lat.crowd_cpu_scale == 1.0  # bound by the latency: not the CPU's pace
    capped = probe(decode_cpu_s=0.001, cpu_per_sample_s=0.001, levels=[Level(1, 1, 0, 1.0, 0, 0, 0)],
                   cores_at=[[1, 1.0], [2, 2.0], [8, 2.0]], ceiling_MiB_per_s=0.1, sample_bytes=1024.0)
    apply_crowd(capped, {"wall_s": 1.0, "samples": 640, "steady_rate": 200.0}, workers=8, batch=32)
    assert capped.ceiling_MiB_per_s == pytest.approx(200.0 * 1024 / 2**20) and "ceiling raised" in capped.notes[-1]
    shards = probe(access="shards", fs=True, decode_cpu_s=0.001, cpu_per_sample_s=0.001, samples=640, requests=10,
                   samples_per_request=64.0, levels=[Level(1, 1, 0, 0.0, 0, 0, 0)], cores_at=[[1, 1.0], [2, 2.0], [8, 2.0]])
    apply_crowd(shards, {"wall_s": 1.0, "samples": 640, "steady_rate": 1000.0}, workers=8, batch=32)
    assert shards.crowd_processes == 0  # streamed: its batches come in bursts, no pace (its epoch is simulated)
    assert crowd_steady_batches(shards, 8, 32) == 0


def test_the_steady_pace_is_the_samples_between_a_long_and_a_short_run_over_their_walls(monkeypatch, tmp_path):
    asked = []

    def fake(loaded, overrides, out_dir, events, workers=1, name=None, epoch_samples=None, steady_batches=0, **_):
        asked.append((name, steady_batches))
        return {"wall_s": 0.9, "samples": 1280.0} if steady_batches else {"wall_s": 0.4, "samples": 320.0}

    monkeypatch.setattr(probe_mod, "calibrate", fake)
    got = probe_mod.calibrate_steady(None, [], tmp_path, None, workers=8, steady_batches=32)
    assert asked == [("calibration-8w", 32), ("calibration-8w-2", 0), ("calibration-8w-3", 32)]  # 2.2 s in all
    assert got["wall_s"] == 0.9 and got["samples"] == 1280.0 and "short" not in got  # the long run is kept
    assert got["steady_rate"] == pytest.approx((1280 - 320) / (0.9 - 0.4)) and got["calibration_runs"] == 3.0
    asked.clear()
    monkeypatch.setattr(probe_mod, "calibrate", lambda *a, **k: {"wall_s": 2.0, "samples": 320.0})
    assert "steady_rate" not in probe_mod.calibrate_steady(None, [], tmp_path, None, workers=8, steady_batches=32)
    p = probe(fs=True, decode_cpu_s=0.001, cpu_per_sample_s=0.001, levels=[Level(1, 1, 0, 0.0, 0, 0, 0)],
              cores_at=[[1, 1.0], [2, 2.0], [8, 2.0]])
    assert crowd_steady_batches(p, 8, 32) == 8 * 4  # 2000 samples/s: 0.5 s is 4 rounds of 8 batches
    slow = probe(decode_cpu_s=0.001, cpu_per_sample_s=0.001, levels=[Level(1, 1, 0, 100.0, 0, 0, 0)])
    assert crowd_steady_batches(slow, 8, 32) == 8  # one round at least


class _SpinningStore:
    """A store whose every GET burns a known CPU time and returns 1 KiB."""

    def __init__(self, cpu_s: float):
        self.cpu_s = cpu_s

    def get(self, key: str) -> tuple[bytes, None]:
        end = time.process_time() + self.cpu_s
        while time.process_time() < end:
            pass
        return b"x" * 1024, None


def test_the_probe_recovers_a_known_emulated_latency(tmp_path):
    """A level measured on emulated storage of 20 ms a request reads at least those 20 ms (the
    store adds no more than scheduling), and its rate is bounded by concurrency / latency."""
    from dnnbench.config.schema import StorageConfig
    from dnnbench.storage.factory import create_storage

    for i in range(8):
        (tmp_path / f"k{i}").write_bytes(b"y" * 2048)
    storage = create_storage(StorageConfig(client="fs", root=str(tmp_path), prefixes=["."],
                                           emulate={"latency_ms": 20}))
    level, _ = probe_mod.measure_level(storage, [f"k{i}" for i in range(8)], 2, 0.3)
    assert 20.0 <= level.p50_ms < 20.0 * 3  # within tolerance of the known latency
    assert level.requests_per_s <= 2 / 0.020 * 1.01  # Little's law: 2 in flight, 20 ms each
    assert level.MiB_per_s == pytest.approx(level.requests_per_s * 2048 / 2**20, rel=1e-6)


def test_the_probe_recovers_a_known_cpu_cost_per_request():
    level, cpu = probe_mod.measure_level(_SpinningStore(0.004), [f"k{i}" for i in range(4)], 1, 0.2)
    assert 0.004 <= cpu < 0.004 * 2  # the client CPU per request, as burned
    assert level.requests >= 4


def test_short_calibration_runs_are_repeated_and_the_median_is_kept(monkeypatch, tmp_path):
    waits = iter([0.30, 0.10, 0.20, 0.25, 0.05])
    names = []

    def fake(loaded, overrides, out_dir, events, workers=1, name=None, epoch_samples=None, steady_batches=0, **_):
        names.append(name)
        assert workers == 1
        return {"wall_s": 0.2, "step_wait_s": next(waits)}

    monkeypatch.setattr(probe_mod, "calibrate", fake)
    cal = probe_mod.calibrate_steady(None, [], tmp_path, None)
    assert names == [None, "calibration-2", "calibration-3", "calibration-4", "calibration-5"]  # own folders
    assert cal["step_wait_s"] == 0.20 and cal["calibration_runs"] == 5.0

    walls = iter([0.3, 0.2, 0.35, 0.25, 0.28])
    names.clear()

    def crowd(loaded, overrides, out_dir, events, workers=1, name=None, epoch_samples=None, steady_batches=0, **_):
        names.append((workers, name))
        return {"wall_s": next(walls), "step_wait_s": 1.0}

    monkeypatch.setattr(probe_mod, "calibrate", crowd)
    assert probe_mod.calibrate_steady(None, [], tmp_path, None, workers=8)["wall_s"] == 0.28  # the median wall
    assert names == [(8, "calibration-8w"), *((8, f"calibration-8w-{i}") for i in range(2, 6))]

    # one worker: the kept run is the one of the median pace, its start, end and wall each the runs' median
    runs = iter([{"wall_s": 0.30, "step_wait_s": 0.02, "time_to_first_batch_s": 0.09, "end_s": 0.05},
                 {"wall_s": 0.20, "step_wait_s": 0.03, "time_to_first_batch_s": 0.03, "end_s": 0.01},
                 {"wall_s": 0.21, "step_wait_s": 0.01, "time_to_first_batch_s": 0.04, "end_s": 0.02},
                 {"wall_s": 0.22, "step_wait_s": 0.04, "time_to_first_batch_s": 0.05, "end_s": 0.03},
                 {"wall_s": 0.23, "step_wait_s": 0.05, "time_to_first_batch_s": 0.06, "end_s": 0.04}])
    monkeypatch.setattr(probe_mod, "calibrate", lambda *a, **k: next(runs))
    assert probe_mod.calibrate_steady(None, [], tmp_path, None) == {
        "wall_s": 0.22, "step_wait_s": 0.03, "time_to_first_batch_s": 0.05, "end_s": 0.03, "calibration_runs": 5.0}

    long_runs = iter([{"wall_s": 5.0, "step_wait_s": 0.4}])
    monkeypatch.setattr(probe_mod, "calibrate", lambda *a, **k: next(long_runs))
    assert probe_mod.calibrate_steady(None, [], tmp_path, None) == {"wall_s": 5.0, "step_wait_s": 0.4,
                                                                     "calibration_runs": 1.0}


def test_a_first_calibration_run_mostly_warm_up_is_followed_by_longer_ones(monkeypatch, tmp_path):
    from types import SimpleNamespace

    loaded = SimpleNamespace(config=SimpleNamespace(framework=SimpleNamespace(batch_size=32)))
    asked = []

    def fake(loaded, overrides, out_dir, events, workers=1, name=None, samples=320, **_):
        asked.append(samples)
        if samples == 320:  # 10 ms at pace after a 30 ms first batch, then 10 ms to end
            return {"wall_s": 0.05, "time_to_first_batch_s": 0.03, "end_s": 0.01, "step_wait_s": 0.003}
        return {"wall_s": 0.2, "time_to_first_batch_s": 0.03, "end_s": 0.01, "step_wait_s": 0.001,
                "samples": float(samples)}

    monkeypatch.setattr(probe_mod, "calibrate", fake)
    cal = probe_mod.calibrate_steady(loaded, [], tmp_path, None)
    assert asked == [320, 2560, 2560, 2560, 2560]  # 0.15 s at the first run's pace: 8x at most
    assert cal["step_wait_s"] == 0.001 and cal["samples"] == 2560.0  # the first, short run is not kept
    assert cal["calibration_runs"] == 5.0 and "length" not in cal
    asked.clear()
    probe_mod.calibrate_steady(loaded, [], tmp_path, None, epoch_samples=1000)
    assert asked[1:] == [1024] * 4  # the epoch's at most, whole batches
    assert probe_mod.grown_samples({"wall_s": 0.095, "time_to_first_batch_s": 0.02, "end_s": 0.005}, None,
                                   loaded) == 704  # 70 ms at pace: 2.14x 320 = 686, whole batches
    assert probe_mod.grown_samples({"wall_s": 0.3, "time_to_first_batch_s": 0.05}, None, loaded) == 320


def test_the_run_with_many_workers_ends_as_an_epoch_ends(tmp_path):
    """More workers: fewer samples, not fewer steps, so every worker runs out and exits as in the
    predicted runs (a run stopped at max_steps stops its workers in the middle of their batches)."""
    from dnnbench.config.loading import load_config

    cfg = tmp_path / "c.yaml"
    cfg.write_text("storage: {client: fs, root: /tmp, prefixes: [train]}\nframework: {batch_size: 32}\n")
    loaded = load_config(cfg, [])
    crowd = probe_mod.calibration_overrides(loaded, tmp_path, workers=8)
    assert "training.max_steps=null" in crowd and "dataset.max_samples=320" in crowd  # 8 first batches + 2
    one = probe_mod.calibration_overrides(loaded, tmp_path, workers=1)
    assert "training.max_steps=null" in one and "dataset.max_samples=320" in one  # 320 samples, then the end
    assert "metrics.system_interval_s=0.05" in one  # the CPU of a run of tenths of a second, sampled
    assert not any(o.startswith("metrics.system_interval_s") for o in crowd)  # 9 processes: it would slow them
    assert "training.max_steps=10" in probe_mod.calibration_overrides(load_config(cfg, ["dataset.access=shards"]),
                                                                      tmp_path, workers=1)
    capped = load_config(cfg, ["training.max_steps=4"])
    assert "training.max_steps=4" in probe_mod.calibration_overrides(capped, tmp_path, workers=8)
    shards = load_config(cfg, ["dataset.access=shards"])
    assert not any(o.startswith("dataset.max_samples") for o in probe_mod.calibration_overrides(shards, tmp_path, 8))
    # a short epoch of shards is read whole (a stream stopped at a step ends as no epoch ends), its
    # shuffle buffer's last batches, let out without reading, left out of the worker's pace
    assert "training.max_steps=null" in probe_mod.calibration_overrides(shards, tmp_path, 1, epoch_samples=640)
    assert "training.max_steps=10" in probe_mod.calibration_overrides(shards, tmp_path, 1, epoch_samples=641)
    assert "training.max_steps=10" in probe_mod.calibration_overrides(shards, tmp_path, 1)  # not listed yet
    # the run with many workers reads a short epoch of streams whole (stopped at a step, its workers
    # stop in the middle of their next files); 8 workers x 32 batches of a 1000-sample buffer + 2 = 258 steps
    whole = 4 * 258 * 32
    assert "training.max_steps=null" in probe_mod.calibration_overrides(shards, tmp_path, 8, epoch_samples=whole)
    assert "training.max_steps=258" in probe_mod.calibration_overrides(shards, tmp_path, 8, epoch_samples=whole + 1)
    assert "training.max_steps=258" in probe_mod.calibration_overrides(shards, tmp_path, 8)  # not listed yet
    # a longer one-worker run (after a first one mostly warm-up): its samples, or the whole epoch
    assert "dataset.max_samples=640" in probe_mod.calibration_overrides(loaded, tmp_path, 1, samples=640)
    assert "training.max_steps=null" in probe_mod.calibration_overrides(shards, tmp_path, 1, epoch_samples=2000,
                                                                        samples=1024)
    small = load_config(cfg, ["dataset.access=shards", "dataset.shuffle_buffer=64"])
    assert probe_mod.free_tail_batches(small, 1, 512) == 2 and probe_mod.free_tail_batches(small, 1, 4096) == 0
    assert probe_mod.free_tail_batches(loaded, 1, 512) == 0  # random access: nothing comes free


def test_the_epochs_end_is_what_its_wall_took_after_the_last_step(tmp_path):
    steps = ["epoch,step,t_s,wait_s,compute_s", "0,0,10.0,0.5,0.0", "0,1,10.5,0.2,0.1", "0,2,10.8,0.1,0.1"]
    (tmp_path / "steps.csv").write_text("\n".join(steps) + "\n")
    assert probe_mod.epoch_end_s(tmp_path, 1.3) == pytest.approx(1.3 - 1.0)  # the last step ended 1.0 s in
    assert probe_mod.epoch_end_s(tmp_path, None) is None
    assert probe_mod.epoch_end_s(tmp_path / "none", 1.0) is None
    p = probe(fs=True, levels=[Level(1, 1, 0, 1.0, 0, 0, 0, wait_ms=1.0)])
    apply_calibration(p, {"samples": 320, "wall_s": 2.0, "time_to_first_batch_s": 0.5, "step_wait_s": 0.16,
                          "end_s": 0.05}, batch=32)
    assert p.end_s == 0.05
