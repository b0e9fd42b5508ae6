"""The run rules (MLPerf Storage's) on fabricated facts: each rule passes, fails, or does not
apply; --rules mlperf turns a failure into exit 4."""

from __future__ import annotations

import pytest

from dnnbench.config.loading import validate
from dnnbench.errors import EXIT_RULES, RuleViolation
from dnnbench.reporting import rules
from tests.conftest import base_config

GiB = 2**30


def config(tmp_path, **sections):
    return validate(base_config(tmp_path, tmp_path / "results", **sections))


def row(**values):
    base = {"steps": 1000, "bytes_listed": 10 * GiB, "client_memory_bytes": 2 * GiB, "epoch_steps_min": 500,
            "cache": "warm"}
    return {**base, **values}


def test_a_run_that_follows_every_rule_passes(tmp_path):
    r = row()
    assert rules.check_rules(r, config(tmp_path)) == {}
    assert (r["rule_dataset_size"], r["rule_steps_per_epoch"], r["rule_repeats"]) == ("pass", "pass",
                                                                                      "not_applicable")
    assert r["dataset_memory_ratio"] == 5.0 and r["cache_assisted"] == "no"
    assert rules.failed_rules(r) == []


def test_a_small_dataset_fails_and_is_cache_assisted_unless_dropped_and_cold(tmp_path):
    r = row(bytes_listed=GiB)
    rules.check_rules(r, config(tmp_path))
    assert r["rule_dataset_size"] == "fail" and r["dataset_memory_ratio"] == 0.5 and r["cache_assisted"] == "yes"
    dropped = row(bytes_listed=GiB, cache="cold")
    rules.check_rules(dropped, config(tmp_path, execution={"drop_caches": True}))
    assert dropped["rule_dataset_size"] == "fail" and dropped["cache_assisted"] == "no"
    # dropped but not checked cold (the drop did not take): still cache-assisted
    warm = row(bytes_listed=GiB, cache="partial")
    rules.check_rules(warm, config(tmp_path, execution={"drop_caches": True}))
    assert warm["cache_assisted"] == "yes"


def test_fewer_than_500_steps_in_an_epoch_fail(tmp_path):
    r = row(epoch_steps_min=499)
    rules.check_rules(r, config(tmp_path))
    assert r["rule_steps_per_epoch"] == "fail" and rules.failed_rules(r) == ["steps_per_epoch"]


def test_configured_client_memory_replaces_the_measured_one(tmp_path):
    r = row(bytes_listed=5 * GiB, client_memory_bytes=64 * GiB)
    rules.check_rules(r, config(tmp_path, rules={"client_memory_GiB": 1}))
    assert r["client_memory_bytes"] == GiB and r["rule_dataset_size"] == "pass"


def test_rules_do_not_apply_without_training_or_without_figures(tmp_path):
    untrained = row(steps=0)
    rules.check_rules(untrained, config(tmp_path))
    assert untrained["rule_dataset_size"] == untrained["rule_steps_per_epoch"] == "not_applicable"
    unknown = row(client_memory_bytes=None, epoch_steps_min=None)
    why = rules.check_rules(unknown, config(tmp_path))
    assert unknown["rule_dataset_size"] == unknown["rule_steps_per_epoch"] == "not_applicable"
    assert set(why) == {"dataset_memory_ratio", "epoch_steps_min"}
    assert unknown.get("cache_assisted") is None


@pytest.mark.parametrize("values,repeat,want", [
    ([100.0] * 5, 5, ("pass", 0.0)),
    ([100, 101, 102, 103, 104.9], 5, ("pass", pytest.approx(4.9 / 102.18 * 100))),
    ([100, 100, 100, 100, 106], 5, "fail"),  # 5.9 % apart
    ([100.0] * 4, 4, "fail"),  # fewer than 5 runs
    ([100.0, "", None, 100.0, 100.0, 100.0], 6, "fail"),  # failed runs do not count
    ([100.0], 1, ("not_applicable", None)),
])
def test_repeats_need_five_runs_within_five_percent(values, repeat, want):
    got = rules.repeats_verdict(values, repeat)
    assert (got[0] if isinstance(want, str) else got) == want


def test_enforce_mlperf_turns_a_failed_rule_into_exit_4():
    rules.enforce([], "mlperf", "x")
    rules.enforce(["steps_per_epoch"], "none", "x")
    with pytest.raises(RuleViolation) as e:
        rules.enforce(["dataset_size", "steps_per_epoch"], "mlperf", "results/r/summary.csv")
    assert e.value.exit_code == EXIT_RULES == 4
    assert "dataset_size, steps_per_epoch" in str(e.value) and e.value.reference == "results/r/summary.csv"
