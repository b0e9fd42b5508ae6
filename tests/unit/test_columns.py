"""The column catalogue: one declaration per column, read by the CSV writer, the rank
aggregate, compare, the gate and the console; the run's typed identity."""

from __future__ import annotations

import dataclasses

import pytest

from dnnbench.config.loading import validate
from dnnbench.reporting import columns
from dnnbench.reporting.aggregate import aggregate
from dnnbench.reporting.columns import CATALOGUE, COLUMNS, IDENTITY, LIKE, RANKS, SUMMARY_COLUMNS, TAG, Compared, Ranks
from dnnbench.reporting.identity import RunIdentity, run_identity

#: summary.csv's header (README, DESIGN §6): the order is part of the format
HEADER = (
    "run_id status failed_phase reason started_at config framework storage client access decode dataset model "
    "trainer workers batch_size requests_in_flight epochs steps samples bytes wall_s samples_per_s MiB_per_s MB_per_s "
    "steady_MiB_per_s au_percent au_target_percent au_meets_target time_to_first_batch_s list_s objects_listed "
    "bytes_listed objects_listed_per_s samples_listed bytes_indexed requests request_mean_bytes samples_per_request "
    "request_p50_ms request_p90_ms request_p99_ms request_p999_ms request_max_ms request_ttfb_p50_ms "
    "request_ttfb_p99_ms decode_p50_ms read_share_percent first_epoch_MiB_per_s last_epoch_MiB_per_s "
    "cpu_percent peak_rss_MiB errors retries skipped_samples cache byte_check bytes_planned emulated "
    "infer_samples infer_bytes infer_wall_s infer_samples_per_s infer_MiB_per_s accuracy_percent infer_failed "
    "checkpoint_bytes checkpoint_save_s checkpoint_load_s checkpoint_save_MB_per_s checkpoint_load_MB_per_s "
    "checkpoint_verified ckpt_size_bytes ckpt_ranks ckpt_saves ckpt_save_bytes ckpt_save_total_s ckpt_save_longest_s "
    "ckpt_save_GB_per_s ckpt_save_slowest_rank_GB_per_s ckpt_loads ckpt_load_bytes ckpt_load_total_s "
    "ckpt_load_longest_s ckpt_load_GB_per_s ckpt_load_slowest_rank_GB_per_s ckpt_read_cache ckpt_verified "
    "sweep_id variant repeat epoch_steps_min client_memory_bytes dataset_memory_ratio "
    "cache_assisted rule_dataset_size rule_steps_per_epoch rule_repeats").split()


def test_summary_columns_in_order_with_the_inference_bytes_and_failures():
    assert SUMMARY_COLUMNS == HEADER
    assert [c.name for c in CATALOGUE if c.role == RANKS] == [
        "au_min_percent", "rank_min_MiB_per_s", "rank_max_MiB_per_s", "ranks", "nodes", "clock_skew_ms",
        "start_skew_ms", "first_done_s", "last_done_s", "first_done_MiB_per_s", "last_done_MiB_per_s"]
    assert columns.RANK_COLUMNS == ["rank", "local_rank", "node", "host", "clock_offset_ms", "clock_error_ms",
                                    "start_offset_ms", "done_s", "first_done_bytes"]
    assert len(COLUMNS) == len(CATALOGUE) == len(HEADER) + 11 + 9  # no name declared twice


#: a unit in the column's name: the suffix each physical unit must end with
UNIT_SUFFIX = {"s": "_s", "ms": "_ms", "%": "_percent", "MiB": "_MiB", "MiB/s": "MiB_per_s", "MB/s": "MB_per_s",
               "samples/s": "samples_per_s", "objects/s": "_per_s"}


@pytest.mark.parametrize("col", [c for c in CATALOGUE if c.unit in UNIT_SUFFIX], ids=lambda c: c.name)
def test_a_measured_unit_is_in_the_name(col):
    assert col.name.endswith(UNIT_SUFFIX[col.unit])


def test_each_declaration_is_complete():
    for c in CATALOGUE:
        assert c.type in (int, float, str), c.name
        assert c.ranks.of is None or c.ranks.of in COLUMNS, c.name
        assert c.ranks.by is None or c.ranks.by in COLUMNS, c.name
        assert c.better in (None, columns.HIGHER, columns.LOWER), c.name
        assert not c.gate or (c.compared and c.better), c.name  # gated: compared, in a direction
        assert not c.like or c.role == IDENTITY, c.name
    with pytest.raises(ValueError, match="unknown rank rule 'median'"):
        Ranks("median")


def test_compare_and_gate_read_the_catalogue():
    from dnnbench.reporting import compare, gate

    names = [m.name for m in compare.CSV_METRICS]
    assert names[:10] == ["MiB_per_s", "samples_per_s", "request_p50_ms", "request_p99_ms", "time_to_first_batch_s",
                          "au_percent", "cpu_percent", "infer_samples_per_s", "checkpoint_save_MB_per_s",
                          "checkpoint_load_MB_per_s"]
    assert [m.name for m in columns.compared(table_only=True)] == names[:10] and len(names) == 23
    assert sorted(m.compared.order for m in compare.CSV_METRICS) == list(range(1, 24))
    table = columns.compared(table_only=True)
    assert sorted(m.compared.keep for m in table) == list(range(1, 11))
    assert [(g.name, g.gate, g.better) for g in gate.GATED] == [
        ("MiB_per_s", "throughput", "higher"), ("request_p99_ms", "p99 request latency", "lower"),
        ("time_to_first_batch_s", "time to first batch", "lower")]
    assert LIKE == ("framework", "storage", "client", "access", "decode", "dataset", "trainer", "workers",
                    "batch_size", "requests_in_flight", "emulated")
    assert compare.IDENTITY == ["config", *LIKE]
    assert COLUMNS["samples_per_s"].table_digits == 0 and COLUMNS["samples_per_s"].digits == 1
    assert Compared(1).table is False


def rank(**values) -> dict:
    return {"status": "ok", **values}


@pytest.mark.parametrize("col", [c for c in CATALOGUE if c.ranks.how in ("sum", "sum_rates", "slowest", "fastest",
                                                                           "mean")], ids=lambda c: c.name)
def test_every_column_combines_over_ranks_as_declared(col):
    source = col.ranks.of or col.name
    agg = aggregate([rank(**{source: 2}), rank(**{source: 6}), rank(**{source: 4})])
    want = {"sum": 12, "sum_rates": 12, "slowest": 6, "fastest": 2, "mean": 4}[col.ranks.how]
    assert agg[col.name] == want
    partial = aggregate([rank(**{source: 2}), rank()])  # one rank did not measure it
    assert partial[col.name] == {"sum": 2, "sum_rates": None, "slowest": 2, "fastest": 2, "mean": 2}[col.ranks.how]


def test_inference_bytes_and_failures_are_totals_over_ranks():
    agg = aggregate([rank(infer_bytes=100, infer_failed=1, rank=0), rank(infer_bytes=250, infer_failed=0, rank=1)])
    assert agg["infer_bytes"] == 350 and agg["infer_failed"] == 1 and agg["ranks"] == 2 and "rank" not in agg


def test_rank_zero_speaks_for_identity_and_listing():
    agg = aggregate([rank(framework="pytorch", workers=2, objects_listed=10, epochs=3),
                     rank(framework="other", workers=4, objects_listed=99, epochs=1)])
    assert (agg["framework"], agg["workers"], agg["objects_listed"], agg["epochs"]) == ("pytorch", 2, 10, 3)


def test_identity_fields_are_the_identity_and_tag_columns():
    fields = [f.name for f in dataclasses.fields(RunIdentity)]
    assert fields == [c.name for c in CATALOGUE if c.role in (IDENTITY, TAG)]


def test_run_identity_names_what_ran_by_canonical_names(tmp_path):
    cfg = validate({"storage": {"root": str(tmp_path), "client": "file",
                                "emulate": {"latency_ms": 5, "jitter_ms": 1, "bandwidth_MBps": 100}},
                    "training": {"trainer": "read", "epochs": 3}, "framework": {"num_workers": 2, "batch_size": 4}})
    ident = run_identity(cfg, "quick", "fs:data", {"sweep_id": "S", "variant": "v", "repeat": 2, "other": 1})
    assert ident.row() == {
        "config": "quick", "framework": "pytorch", "storage": "fs:data", "client": "fs", "access": "random",
        "decode": "rgb", "dataset": "image_folder", "model": None, "trainer": "read", "workers": 2, "batch_size": 4,
        "requests_in_flight": 1, "epochs": 3, "emulated": "yes:5+-1ms,100MBps", "sweep_id": "S", "variant": "v", "repeat": 2}
    with pytest.raises(dataclasses.FrozenInstanceError):
        ident.workers = 3  # type: ignore[misc]
    trained = run_identity(validate({"storage": {"root": str(tmp_path)}, "training": {"trainer": "train"}}), "q", "fs")
    assert trained.model == "convnet" and trained.emulated == "no" and trained.sweep_id is None
