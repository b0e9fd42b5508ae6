"""The what-if model's arithmetic on fabricated probe measurements (no I/O, no timing)."""

from __future__ import annotations

import math

import pytest

from dnnbench.predict.model import (MiB, Level, Point, Probe, at_load, fill_samples, one_process_share, predict,
                                    terms)


def probe(**kw) -> Probe:
    """A probe whose every cost is zero unless given: 10 ms storage at every concurrency."""
    base = dict(access="random", fs=False, cores=2.0, busy_cores=0.0,
                levels=[Level(1, 10, 10.0, 10.0, 10.0, 100.0, 1.0), Level(8, 80, 10.0, 10.0, 10.0, 800.0, 8.0)],
                read_cpu_s=0.0, decode_cpu_s=0.0, server_cpu_s=0.0, batch_overhead_s=0.0, startup_s=0.0,
                cpu_per_sample_s=0.0, samples=1000, samples_per_request=1.0, sample_bytes=1024.0,
                dataset_bytes=1024 * 1000, requests=1000, page_cache_bytes=10 * 2**30)
    base.update(kw)
    return Probe(**base)


def test_littles_law_term_is_requests_in_flight_over_the_time_each_is_held():
    t = terms(probe(), Point(workers=4, latency_ms=20.0))
    assert t["little"] == pytest.approx(4 / 0.030)  # 4 in flight, 20 ms emulated + 10 ms service
    t2 = terms(probe(), Point(workers=4, latency_ms=20.0, requests_in_flight=3))
    assert t2["little"] == pytest.approx(12 / 0.030)
    t3 = terms(probe(read_cpu_s=0.002, decode_cpu_s=0.003, batch_overhead_s=0.032), Point(workers=2, batch_size=32))
    assert t3["little"] == pytest.approx(2 / (0.010 + 0.002 + 0.003 + 0.001))  # CPU holds the slot too


def test_service_time_is_interpolated_between_probed_concurrencies():
    p = probe(levels=[Level(1, 1, 0, 10.0, 0, 0, 0), Level(4, 1, 0, 40.0, 0, 0, 0)])
    assert p.service_s(1) == pytest.approx(0.010) and p.service_s(2) == pytest.approx(0.020)
    assert p.service_s(4) == pytest.approx(0.040) and p.service_s(64) == pytest.approx(0.040)
    assert probe(levels=[Level(1, 1, 0, 10.0, 0, 0, 0, wait_ms=7.0)]).service_s(1) == pytest.approx(0.007)
    # a level slower than keeps the throughput of the one below is taken at that throughput
    fell = probe(levels=[Level(1, 1, 0, 10.0, 0, 0, 0), Level(4, 1, 0, 30.0, 0, 0, 0), Level(8, 1, 0, 75.0, 0, 0, 0)])
    assert fell.service_s(8) == pytest.approx(0.060) and fell.service_s(4) == pytest.approx(0.030)


def test_each_bound_wins_where_it_should():
    slow = predict(probe(), Point(workers=1, latency_ms=50.0))
    assert slow.bound == "little"
    cpu = predict(probe(cpu_per_sample_s=0.004, levels=[Level(8, 1, 0, 0.01, 0, 0, 0)]), Point(workers=8))
    assert cpu.bound == "cpu" and cpu.terms["cpu"] == pytest.approx(2 / 0.004)
    storage = predict(probe(ceiling_MiB_per_s=0.5), Point(workers=8))
    assert storage.bound == "storage" and storage.terms["storage"] == pytest.approx(0.5 * MiB / 1024)
    acc = predict(probe(), Point(workers=8, compute_time_s=1.0, batch_size=32))
    assert acc.bound == "accelerator" and acc.terms["accelerator"] == pytest.approx(32.0)
    assert acc.au_percent == pytest.approx(100.0)


def test_au_is_compute_over_the_step_when_data_is_the_bound():
    # 2 workers x 10 ms: 200 samples/s; 32 per step -> 0.16 s per step for 0.08 s of compute
    pred = predict(probe(), Point(workers=2, compute_time_s=0.08, batch_size=32))
    assert pred.bound == "little" and pred.au_percent == pytest.approx(50.0)


def test_samples_and_mib_per_s_include_the_first_batch_and_are_consistent():
    pred = predict(probe(startup_s=1.0, fork_s=0.5), Point(workers=2, batch_size=10))
    wall = 1.0 + 2 * 0.5 + 1000 / 200.0  # start, 2 workers started, every sample at 2 / 10 ms
    assert pred.wall_s == pytest.approx(wall)
    assert pred.samples_per_s == pytest.approx(1000 / wall)
    assert pred.MiB_per_s == pytest.approx(pred.samples_per_s * 1024 / MiB)
    capped = predict(probe(), Point(workers=2, batch_size=10, max_steps=5, epochs=2))
    assert capped.wall_s == pytest.approx(2 * 50 / 200.0)
    one_batch = predict(probe(), Point(workers=8, batch_size=100, max_steps=1))  # 100 samples, 1 worker fills them
    assert one_batch.wall_s == pytest.approx(100 * 0.010)


def test_shards_pay_the_latency_once_per_shard():
    p = probe(access="shards", samples_per_request=100.0, requests=10)
    assert terms(p, Point(workers=2, latency_ms=90.0))["little"] == pytest.approx(2 * 100 / 0.100)
    assert terms(p, Point(workers=50))["little"] == pytest.approx(10 * 100 / 0.010)  # 10 shards: 10 readers


def test_a_shard_reader_hands_its_first_batch_after_its_buffer_and_a_batch_less_one():
    p = probe(access="shards", samples_per_request=100.0, requests=10, shuffle_buffer=64)
    assert fill_samples(p, Point(workers=1, batch_size=32)) == 64 + 32 - 1  # then one out for each one read
    assert fill_samples(p, Point(workers=10, batch_size=80)) == 100  # no more than its shard
    assert fill_samples(probe(), Point(workers=1, batch_size=32)) == 32  # random access: a batch


def test_the_cpu_term_has_the_cores_the_probe_got_and_one_core_per_process_at_most():
    p = probe(busy_cores=1.5, cpu_per_sample_s=0.001)  # 2 spinners got half a core beside other work
    assert p.cores_for(2) == pytest.approx(0.5) and p.cores_for(9) == pytest.approx(0.5)
    assert terms(p, Point(workers=8))["cpu"] == pytest.approx(500.0)
    assert probe().cores_for(1) == pytest.approx(1.0) and probe().cores_for(8) == pytest.approx(2.0)
    assert probe(busy_cores=1.5, calibration_cores=0.8).cores_for(4) == pytest.approx(0.8)  # it got that much


def test_a_loader_of_threads_gets_one_core_or_what_its_one_worker_run_used():
    threads = probe(threads=True, cpu_per_sample_s=0.001)
    assert threads.cores_for(1) == pytest.approx(1.0) and threads.cores_for(9) == pytest.approx(1.0)
    assert terms(threads, Point(workers=8))["cpu"] == pytest.approx(1000.0)  # processes: 2,000
    assert terms(probe(cpu_per_sample_s=0.001), Point(workers=8))["cpu"] == pytest.approx(2000.0)
    assert probe(threads=True, calibration_cores=1.2).cores_for(8) == pytest.approx(1.2)
    # streamed: 4 workers of shards whose CPU is the bound share one core, not two
    shards = dict(access="shards", samples_per_request=100.0, requests=40, samples=4000, cpu_per_sample_s=0.001,
                  decode_cpu_s=0.001, levels=[Level(1, 1, 0, 0.0, 0, 0, 0), Level(8, 1, 0, 0.0, 0, 0, 0)])
    one, two = predict(probe(threads=True, **shards), Point(workers=4)), predict(probe(**shards), Point(workers=4))
    assert one.wall_s == pytest.approx(4.0, rel=0.02) and two.wall_s == pytest.approx(2.0, rel=0.02)
    # the main loop is the same interpreter: its share of the tree's CPU is in the worker's pace, not
    # a process beside it (one worker of threads: 4,000 samples at 1 ms, whatever the tree's CPU)
    tree = {**shards, "cpu_per_sample_s": 0.002}
    assert predict(probe(threads=True, **tree), Point(workers=1)).wall_s == pytest.approx(4.0, rel=0.02)


def test_points_beyond_the_model_get_a_reason_and_no_prediction():
    cache = predict(probe(fs=True, page_cache_bytes=1000), Point(workers=2))
    assert cache.samples_per_s is None and cache.bound is None and "page cache" in cache.beyond
    far = predict(probe(), Point(workers=8, requests_in_flight=8))  # 64 in flight, probed up to 8
    assert far.samples_per_s is None and "more than 4x the probed 8" in far.beyond
    crowd = predict(probe(), Point(workers=17, accelerators=1))
    assert crowd.samples_per_s is None and "17 loader processes on 2 cores" in crowd.beyond
    assert predict(probe(), Point(workers=16)).beyond is None


def test_no_compute_means_no_accelerator_limit_and_no_au():
    pred = predict(probe(), Point(workers=1))
    assert math.isinf(pred.terms["accelerator"]) and pred.au_percent is None
    assert math.isinf(pred.terms["storage"])  # no ceiling reached


def test_an_epoch_starts_with_the_calibrated_start_and_one_fork_per_worker():
    p = probe(fork_s=0.01, startup_s=0.5)
    pred = predict(p, Point(workers=4, batch_size=10))
    assert pred.wall_s == pytest.approx(0.5 + 4 * 0.01 + 1000 / 400.0)


def test_the_calibrated_service_scale_stretches_the_storage_latency_at_every_concurrency():
    p = probe(service_scale=2.0)
    assert p.service_s(1) == pytest.approx(0.020) and p.service_s(8) == pytest.approx(0.020)
    assert terms(p, Point(workers=4, latency_ms=10.0))["little"] == pytest.approx(4 / 0.030)


def test_the_wake_up_delay_grows_with_the_workers_that_wait_together():
    p = probe(wake_s=0.001, wake8_s=0.008)
    assert p.wake_at(1) == pytest.approx(0.001) and p.wake_at(4) == pytest.approx(0.004)
    assert p.wake_at(64) == pytest.approx(0.008)
    assert terms(p, Point(workers=4, latency_ms=20.0))["little"] == pytest.approx(4 / 0.034)
    assert terms(p, Point(workers=4))["little"] == pytest.approx(4 / 0.010)  # no emulated wait: no wake-up


def test_the_cpu_term_has_the_cores_the_contention_measurement_got_for_that_many_processes():
    quiet = probe(cpu_per_sample_s=0.001, cores_at=[[1, 1.0], [2, 2.0], [4, 1.9], [8, 1.6]])
    assert quiet.cores_for(6) == pytest.approx(1.75) and quiet.cores_for(64) == pytest.approx(1.6)
    assert terms(quiet, Point(workers=8))["cpu"] == pytest.approx(1600.0)  # 9 processes on 2 cores pay
    shared = probe(busy_cores=1.7, cpu_per_sample_s=0.001, cores_at=[[1, 0.2], [2, 0.3], [8, 0.9]])
    assert terms(shared, Point(workers=8))["cpu"] == pytest.approx(900.0)  # more processes, larger share
    assert shared.cores_for(1) == pytest.approx(0.2) and probe(cores_at=[[2, 1.0]]).cores_for(1) == 0.5


def test_one_process_gets_its_fair_share_of_what_one_process_per_core_left():
    assert one_process_share(2.0, 2.0) == 1.0 and one_process_share(1.0, 2.0) == pytest.approx(2 / 3)
    assert one_process_share(0.5, 2.0) == pytest.approx(2 / 7)  # 6 others runnable


def test_moving_the_probe_to_another_load_scales_its_cores_and_its_workers_pace():
    p = probe(busy_cores=1.0, calibration_cores=0.5, cores_at=[[1, 0.5], [2, 1.0], [8, 1.2]],
              decode_cpu_s=0.004, startup_s=0.3)
    same = at_load(p, 1.0)
    assert same.pace == 1.0 and same.cores_at == p.cores_at
    assert predict(same, Point(workers=2)) == predict(p, Point(workers=2))
    quiet = at_load(p, 2.0)
    assert quiet.free_cores == 2.0 and quiet.cores_at == [[1, 1.0], [2, 2.0], [8, 2.0]]
    assert quiet.calibration_cores == 1.0 and quiet.pace == pytest.approx(2 / 3)
    assert terms(quiet, Point(workers=1))["little"] == pytest.approx(1 / (0.010 + 0.004 * 2 / 3))
    assert predict(quiet, Point(workers=1, batch_size=10)).wall_s == pytest.approx(0.2 + 1000 * (0.010 + 0.004 * 2 / 3))
    assert p.pace == 1.0 and p.cores_at[2] == [8, 1.2]  # the probe itself is left as it was


def test_requests_that_wait_a_fixed_emulated_latency_reach_the_storage_as_a_burst():
    from dnnbench.predict.model import at_storage

    assert at_storage(8, 0.0) == 8.0  # back to back: all of them at once, as the probe measured
    assert at_storage(8, 50.0) == 4.5 and at_storage(1, 50.0) == 1.0  # a burst answered in turn
    p = probe(levels=[Level(1, 1, 0, 10.0, 0, 0, 0), Level(8, 1, 0, 80.0, 0, 0, 0)])
    assert terms(p, Point(workers=8))["little"] == pytest.approx(8 / 0.080)
    assert terms(p, Point(workers=8, latency_ms=50.0))["little"] == pytest.approx(8 / (0.050 + p.service_s(4.5)))
    assert p.service_s(4.5) == pytest.approx(0.045)


def test_an_epoch_ends_with_its_workers_stopped():
    p = probe(fork_s=0.01, startup_s=0.5, end_s=0.2)
    assert predict(p, Point(workers=4, batch_size=10)).wall_s == pytest.approx(0.5 + 4 * 0.01 + 1000 / 400.0 + 0.2)


def test_a_real_loaders_pace_corrects_the_cpu_term_beyond_one_process_per_core():
    p = probe(fs=True, cores=2.0, decode_cpu_s=0.001, cpu_per_sample_s=0.001,
              cores_at=[[1, 1.0], [2, 2.0], [8, 2.0]], crowd_processes=9, crowd_cpu_scale=0.8)
    assert p.cpu_scale(1) == p.cpu_scale(2) == 1.0  # one process per core: the contention as measured
    assert p.cpu_scale(9) == pytest.approx(0.8) and p.cpu_scale(17) == pytest.approx(0.8)
    assert p.cpu_scale(5) == pytest.approx(1.0 - 0.2 * 3 / 7)  # linear in the processes beyond the cores
    assert terms(p, Point(workers=8))["cpu"] == pytest.approx(2.0 * 0.8 / 0.001)
    assert terms(p, Point(workers=1))["cpu"] == pytest.approx(2.0 / 0.001)
    p.crowd_processes = 0  # no steady pace measured: no correction
    assert terms(p, Point(workers=8))["cpu"] == pytest.approx(2.0 / 0.001)
