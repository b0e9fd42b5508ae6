"""The run rules (MLPerf Storage's), checked and reported for every run: each rule says
``pass``, ``fail`` or ``not_applicable`` in its own summary column (``rule_*``).

- **dataset size** (``rule_dataset_size``): the dataset (``bytes_listed``) is at least
  :data:`MEMORY_MULTIPLE` times the client machines' total memory (``client_memory_bytes``: the
  sum of each node's physical memory, or ``rules.client_memory_GiB``). Below it a page cache
  can hold much of the data, so the run is labelled ``cache_assisted`` = ``yes``, unless the
  caches were dropped before every epoch and checked cold (``execution.drop_caches`` and
  ``cache`` = ``cold``).
- **steps per epoch** (``rule_steps_per_epoch``): every rank runs at least :data:`MIN_STEPS`
  steps in each epoch (``epoch_steps_min``).
- **repeats** (``rule_repeats``): a variant run ``repeat`` > 1 times has at least
  :data:`MIN_REPEATS` successful runs whose throughput (samples/s) lies within
  :data:`MAX_SPREAD_PERCENT` (max - min over the mean). One run alone: not applicable; a
  sweep's verdict per variant is :func:`repeats_verdict`.

``rules.enforce: mlperf`` (``--rules mlperf``) turns a failed rule into exit 4
(:class:`dnnbench.errors.RuleViolation`). Pure functions of the summary row: no I/O.
"""

from __future__ import annotations

from typing import Any

from dnnbench.errors import RuleViolation
from dnnbench.reporting.columns import as_number

PASS, FAIL, NA = "pass", "fail", "not_applicable"
#: MLPerf Storage: the dataset is at least 5x the client machines' memory
MEMORY_MULTIPLE = 5.0
#: MLPerf Storage: at least 500 steps per epoch
MIN_STEPS = 500
#: MLPerf Storage: a result is 5 runs ...
MIN_REPEATS = 5
#: ... within 5 % of each other
MAX_SPREAD_PERCENT = 5.0
#: the figure whose repeats must agree
REPEAT_METRIC = "samples_per_s"




def check_rules(row: dict[str, Any], config: Any) -> dict[str, str]:
    """Fill the rule columns of the run's ``row`` in place; returns why a figure a rule reads
    could not be measured (column -> reason, for ``unmeasured``)."""
    why: dict[str, str] = {}
    memory = config.rules.client_memory_GiB
    if memory is not None:
        row["client_memory_bytes"] = int(memory * 2**30)
    trained = config.execution.phases.train and as_number(row.get("steps"))
    row["rule_dataset_size"] = _dataset_size(row, config.execution.drop_caches, why) if trained else NA
    row["rule_steps_per_epoch"] = _steps(row, why) if trained else NA
    row["rule_repeats"] = NA
    return why


def _dataset_size(row: dict[str, Any], dropped: bool, why: dict[str, str]) -> str:
    data, memory = as_number(row.get("bytes_listed")), as_number(row.get("client_memory_bytes"))
    if data is None or not memory:
        why["dataset_memory_ratio"] = "the dataset's bytes or the client machines' memory are unknown " \
                                      "(set rules.client_memory_GiB)"
        return NA
    ratio = data / memory
    row["dataset_memory_ratio"] = ratio
    checked_cold = dropped and row.get("cache") == "cold"
    row["cache_assisted"] = "no" if ratio >= MEMORY_MULTIPLE or checked_cold else "yes"
    return PASS if ratio >= MEMORY_MULTIPLE else FAIL


def _steps(row: dict[str, Any], why: dict[str, str]) -> str:
    steps = as_number(row.get("epoch_steps_min"))
    if steps is None:
        why["epoch_steps_min"] = "no complete epoch"
        return NA
    return PASS if steps >= MIN_STEPS else FAIL


def repeats_verdict(values: list[float], repeat: int) -> tuple[str, float | None]:
    """A variant's repeats: (verdict, spread in % of the mean) from its successful runs'
    throughputs; ``repeat`` 1 (no repeats asked for) is not applicable."""
    if repeat <= 1:
        return NA, None
    known = [v for v in (as_number(x) for x in values) if v is not None]
    mean = sum(known) / len(known) if known else 0.0
    spread = 100.0 * (max(known) - min(known)) / mean if mean > 0 else None
    ok = len(known) >= MIN_REPEATS and spread is not None and spread <= MAX_SPREAD_PERCENT
    return (PASS if ok else FAIL), spread


def failed_rules(row: dict[str, Any]) -> list[str]:
    """The names of the rules ``row`` fails (``rule_`` left off)."""
    return [k[len("rule_"):] for k, v in row.items() if k.startswith("rule_") and v == FAIL]


def enforce(failed: list[str], enforced: str, where: str) -> None:
    """Under ``rules.enforce: mlperf``, a failed rule is an error (exit 4).

    Raises:
        RuleViolation: naming the failed rules and where they are reported.
    """
    if enforced == "mlperf" and failed:
        raise RuleViolation(f"the run breaks MLPerf Storage's run rules: {', '.join(failed)}",
                            reference=where,
                            hint="see the rule_* columns and README 'Run rules'; without --rules mlperf "
                                 "they are reported only")
