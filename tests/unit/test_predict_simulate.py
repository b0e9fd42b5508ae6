"""The simulated epoch of streamed requests: waits, CPU shared by the processes of ours, starts as CPU."""

from __future__ import annotations

import pytest

from dnnbench.predict import simulate
from dnnbench.predict.model import Point, predict, terms
from dnnbench.predict.simulate import stream_seconds
from tests.unit.test_predict_model import probe


def shards(**kw):
    base = dict(access="shards", fs=True, samples=64, requests=64, samples_per_request=1.0,
                cores_at=[[1, 1.0], [2, 1.0], [8, 1.0]], fork_s=0.0)  # one core, whatever the processes
    base.update(kw)
    return probe(**base)


def test_one_worker_waits_then_works_each_request_in_turn():
    p = shards(cores_at=[[1, 1.0], [2, 2.0]])
    assert stream_seconds(p, Point(workers=1), 10, 0.0, 0.5) == pytest.approx(10 * 0.5)
    assert stream_seconds(p, Point(workers=1), 10, 0.2, 0.5) == pytest.approx(10 * (0.2 + 0.5))
    assert stream_seconds(p, Point(workers=1), 10, 0.2, 0.0) == pytest.approx(10 * 0.2)


def test_workers_that_start_together_wait_together_then_share_the_cores():
    p = shards()  # one core: 2 workers, 2 requests each, wait 1 s, 1 s of CPU each
    assert stream_seconds(p, Point(workers=2), 4, 1.0, 1.0) == pytest.approx(2 * (1.0 + 2 * 1.0))


def test_a_workers_start_is_cpu_on_the_shared_cores():
    one = shards(fork_s=1.0)  # one core: the start, then wait 1 s and work 1 s, twice
    assert stream_seconds(one, Point(workers=1), 2, 1.0, 1.0) == pytest.approx(1.0 + 2 * (1.0 + 1.0))
    # two workers on one core start together: 2 s for both starts, then as they would have from 0
    assert stream_seconds(one, Point(workers=2), 4, 1.0, 1.0) == pytest.approx(2.0 + 2 * (1.0 + 2 * 1.0))
    two = shards(fork_s=1.0, cores_at=[[1, 1.0], [2, 2.0], [8, 2.0]])  # a core each: the starts overlap
    assert stream_seconds(two, Point(workers=2), 4, 1.0, 1.0) == pytest.approx(1.0 + 2 * (1.0 + 1.0))
    # 4 workers on 2 cores: 2 s of starts; one request each then waits together and shares the cores
    assert stream_seconds(two, Point(workers=4), 4, 1.0, 1.0) == pytest.approx(2.0 + 1.0 + 2.0)


def test_the_main_process_takes_its_share_of_the_cores():
    p = shards(cpu_per_sample_s=1.5)  # the process tree: 0.5 s a sample beyond the worker's 1 s
    assert stream_seconds(p, Point(workers=1), 1, 0.0, 1.0) == pytest.approx(1.5)  # alone after the worker
    two = shards(cpu_per_sample_s=1.5, cores_at=[[1, 1.0], [2, 2.0]])
    assert stream_seconds(two, Point(workers=1), 4, 0.0, 1.0) == pytest.approx(4.5)  # on the other core meanwhile


def test_a_long_epoch_is_simulated_in_part_and_continued_at_its_pace(monkeypatch):
    p = shards(fork_s=0.3, cores_at=[[1, 1.0], [2, 2.0], [8, 2.0]])
    full = stream_seconds(p, Point(workers=4), 400, 0.2, 0.1)
    monkeypatch.setattr(simulate, "SIMULATED_REQUESTS", 200)
    assert stream_seconds(p, Point(workers=4), 400, 0.2, 0.1) == pytest.approx(full, rel=0.01)


def test_streamed_epochs_are_predicted_by_the_simulation_random_ones_by_the_terms():
    p = shards(samples=512, requests=8, samples_per_request=64.0, decode_cpu_s=0.001, cpu_per_sample_s=0.001,
               levels=[probe().levels[0]], cores_at=[[1, 1.0], [2, 2.0], [8, 2.0]])
    pt = Point(workers=8, latency_ms=50.0, batch_size=32)
    t = terms(p, pt)
    assert min(t["little"], t["cpu"]) == pytest.approx(t["cpu"])  # the terms: 2 cores / 1 ms
    # all 8 workers wait 60 ms together, then share 2 cores for 8 x 64 ms of CPU: 316 ms, not 256 ms
    assert predict(p, pt).wall_s == pytest.approx(0.060 + 8 * 0.064 / 2)
    r = probe(samples=512, requests=512, decode_cpu_s=0.001, cpu_per_sample_s=0.001,
              cores_at=[[1, 1.0], [2, 2.0], [8, 2.0]])
    assert predict(r, pt).wall_s == pytest.approx(512 / min(terms(r, pt)["little"], terms(r, pt)["cpu"]))
