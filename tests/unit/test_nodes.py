"""Several nodes, as rank 0 sees them: which node each rank ran on, the clocks' offsets from
round trips, each rank's train phase in rank 0's clock, and the aggregate's node columns
(first done / last done throughput, skews, the client machines' memory)."""

from __future__ import annotations

import pytest

from dnnbench.reporting.aggregate import aggregate, by_node
from dnnbench.run.nodes import Clock, Member, RankTiming, assign_nodes, offset_from_pings, rank_columns

MiB = 2**20


def member(rank, host="a", group=None, memory=8 * 2**30, local=None):
    return Member(rank, rank if local is None else local, host, group, memory)


def test_nodes_are_torchruns_node_ranks_else_hosts_in_rank_order():
    assert assign_nodes([member(0, "a", 0), member(1, "a", 0), member(2, "a", 1), member(3, "a", 1)]) == [0, 0, 1, 1]
    assert assign_nodes([member(0, "x"), member(1, "y"), member(2, "x")]) == [0, 1, 0]


def test_the_shortest_round_trip_sets_the_offset_and_its_error():
    # this rank's clock is 10 s behind rank 0's; the second exchange is the shortest (2 ms)
    pings = [(100.0, 110.004, 100.010), (101.0, 111.001, 101.002), (102.0, 112.0, 102.006)]
    offset, error = offset_from_pings(pings)
    assert offset == pytest.approx(10.0) and error == pytest.approx(0.001)
    assert Clock(offset, error, perf_to_wall_s=1000.0).to_main(5.0) == pytest.approx(1015.0)


def timing(rank, start, end, reads, node, offset=0.0):
    return RankTiming(member(rank, group=node, local=rank % 2, host=f"h{node}"), Clock(offset / 1e3, 0.0001),
                      start, end, tuple(reads))


def test_rank_columns_place_each_rank_in_rank_zeros_clock():
    timings = [timing(0, 10.0, 14.0, [(11.0, 100), (12.0, 100), (13.5, 100)], 0),
               timing(1, 10.2, 12.0, [(11.0, 50), (12.0, 50)], 0, offset=-3.0),
               timing(2, 10.1, 13.0, [(11.5, 70), (12.5, 70)], 1, offset=5.0)]
    rows = rank_columns(timings)
    assert [r["node"] for r in rows] == [0, 0, 1] and [r["host"] for r in rows] == ["h0", "h0", "h1"]
    assert [r["start_offset_ms"] for r in rows] == pytest.approx([0.0, 200.0, 100.0])
    assert [r["done_s"] for r in rows] == pytest.approx([4.0, 2.0, 3.0])
    # the first rank done at 12.0: what each had read by then
    assert [r["first_done_bytes"] for r in rows] == [200, 100, 70]
    assert [r["clock_offset_ms"] for r in rows] == pytest.approx([0.0, -3.0, 5.0])


def test_a_rank_that_never_trained_leaves_its_times_empty():
    rows = rank_columns([timing(0, 1.0, 2.0, [(1.5, 10)], 0), RankTiming(member(1), None, None, None)])
    assert rows[1]["done_s"] is None and rows[1]["clock_offset_ms"] is None
    assert rows[0]["first_done_bytes"] is None  # no first-done time without every rank's end


def rank_row(rank, node, host, nbytes, done, first_bytes, mib, offset=0.0, start=0.0, memory=8 * 2**30):
    return {"rank": rank, "node": node, "host": host, "status": "ok", "bytes": nbytes, "MiB_per_s": mib,
            "samples": 10, "done_s": done, "first_done_bytes": first_bytes, "clock_offset_ms": offset,
            "start_offset_ms": start, "client_memory_bytes": memory, "epoch_steps_min": 10 + rank}


def test_the_aggregate_gives_first_and_last_done_throughput_skews_and_memory_per_machine():
    rows = [rank_row(0, 0, "a", 4 * MiB, 4.0, 2 * MiB, 1.0, 0.0, 0.0),
            rank_row(1, 0, "a", 2 * MiB, 2.0, 2 * MiB, 1.0, -0.4, 3.0),
            rank_row(2, 1, "b", 3 * MiB, 3.0, 1 * MiB, 1.0, 1.1, 1.5, memory=16 * 2**30),
            rank_row(3, 1, "b", 3 * MiB, 3.0, 1 * MiB, 1.0, 1.2, 0.5, memory=16 * 2**30)]
    agg = aggregate(rows)
    assert agg["ranks"] == 4 and agg["nodes"] == 2 and "rank" not in agg and "host" not in agg
    assert agg["first_done_s"] == 2.0 and agg["last_done_s"] == 4.0
    assert agg["first_done_MiB_per_s"] == pytest.approx(6 / 2.0)  # every rank still reading
    assert agg["last_done_MiB_per_s"] == pytest.approx(12 / 4.0)  # the whole run
    assert agg["clock_skew_ms"] == pytest.approx(1.6) and agg["start_skew_ms"] == pytest.approx(3.0)
    assert agg["client_memory_bytes"] == 24 * 2**30  # each machine once
    assert agg["epoch_steps_min"] == 10 and agg["bytes"] == 12 * MiB
    nodes = by_node(rows)
    assert [(n["node"], n["host"], n["bytes"], n["client_memory_bytes"]) for n in nodes] == [
        (0, "a", 6 * MiB, 8 * 2**30), (1, "b", 6 * MiB, 16 * 2**30)]
    assert all("first_done_MiB_per_s" not in n and "nodes" not in n for n in nodes)


def test_two_launchers_on_one_machine_count_its_memory_once():
    rows = [rank_row(k, k // 2, "same", MiB, 1.0, MiB, 1.0) for k in range(4)]
    assert aggregate(rows)["client_memory_bytes"] == 8 * 2**30 and aggregate(rows)["nodes"] == 2


def test_ranks_csv_puts_the_rank_columns_first_and_keeps_every_other(tmp_path):
    import csv

    from dnnbench.results import write_rows_csv

    write_rows_csv(tmp_path / "ranks.csv", [{"status": "ok", "rank": 0, "host": "a", "x_s": 1.5},
                                            {"status": "ok", "rank": 1, "host": "b", "y": None}],
                   ["rank", "local_rank", "host"])
    rows = list(csv.reader(open(tmp_path / "ranks.csv")))
    assert rows == [["rank", "host", "status", "x_s", "y"], ["0", "a", "ok", "1.5", ""], ["1", "b", "ok", "", ""]]
