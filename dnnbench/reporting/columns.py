"""The column catalogue: every column of a run's summary row, declared once.

A :class:`Column` says what the column is (name with its unit, unit, type, role), how the
ranks of a multi-rank run combine into it (:class:`Ranks`), which way is better, whether
the regression gate checks it, and how it is shown (digits, a short title, its place in
``compare``). Every consumer reads it from here:

- the report writer: :data:`SUMMARY_COLUMNS` is the column order of summary.csv;
- the multi-rank aggregate (:mod:`dnnbench.reporting.aggregate`): each column's ``ranks``;
- compare and comparison.csv: :func:`compared` (order, title, digits, better direction),
  :data:`LIKE` (the identity fields that make two runs comparable);
- the gate: :func:`gated`;
- the console (:mod:`dnnbench.ui`): each figure's digits and title, the compare table's
  priorities when the terminal is narrow, which phase a figure belongs to.

Adding a metric is one :class:`Column` below plus the code that measures it (a recorder,
the report, or a phase's result whose field has the column's name): summary.csv, the rank
aggregate, compare and the gate follow. The end-of-run console table is a curated layout
(``dnnbench.ui.summary.LAYOUT``): a figure appears there once it is put on a line.

Pure Python: importing this module loads neither pandas nor numpy (``validate`` stays light).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# -- roles ------------------------------------------------------------------------
RUN = "run"            # the run's own record: id, status, why it failed, when it started
IDENTITY = "identity"  # what ran (framework, storage, client...): built once, see reporting.identity
MEASURE = "measure"    # a measured figure
TAG = "tag"            # the sweep's labels (sweep_id, variant, repeat)
RANKS = "ranks"        # only in a multi-rank run's aggregate row (the spread over ranks)
PER_RANK = "per_rank"  # only in one rank's own row of a multi-rank run (ranks.csv): who, where, when
RULE = "rule"          # a run rule's verdict: pass, fail or not_applicable (dnnbench.reporting.rules)

HIGHER, LOWER = "higher", "lower"


@dataclass(frozen=True)
class Ranks:
    """How the per-rank values of a column become the multi-rank run's value.

    ``how`` is one of :data:`RANK_RULES`; ``of`` is the column combined (default the column
    itself), ``by`` the weights (``weighted``) or the denominator (``ratio``), and
    ``otherwise`` the value when no rank has one or the ranks disagree (``same``,
    ``verdict``; for ``ratio``, ``"first"`` falls back to rank 0's value); ``scale`` divides
    a ``ratio`` or ``rate`` (2**20: bytes per second in MiB/s).
    """

    how: str
    of: str | None = None
    by: str | None = None
    otherwise: Any = None
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.how not in RANK_RULES:
            raise ValueError(f"unknown rank rule {self.how!r}: one of {', '.join(RANK_RULES)}")


#: each rule, in words (README "Several ranks under torchrun" says the same)
RANK_RULES = {
    "first": "rank 0's value (the same on every rank, or rank 0 speaks for the run)",
    "status": "ok when every rank is; else interrupted, failed, or the first other status, with the "
              "first failing rank's phase and reason",
    "sum": "the total over ranks (empty when no rank has it)",
    "sum_rates": "the sum over ranks, empty unless every rank measured it",
    "slowest": "the largest value of any rank (times, latency percentiles, peak memory)",
    "fastest": "the smallest value of any rank",
    "mean": "the mean over the ranks that have it",
    "weighted": "the mean weighted by another column (``by``)",
    "mean_per_request": "the mean over every rank's successful requests (requests - errors), the plain "
                        "mean when request counts are sampled",
    "ratio": "``of`` / ``by`` of the combined values (after every other rule)",
    "same": "the ranks' common value, else ``otherwise``",
    "verdict": "ok when every rank says ok, mismatch when any does, else not_checked",
    "count": "the number of ranks",
    "distinct": "the number of distinct values of ``of`` (nodes)",
    "spread": "the largest minus the smallest value of ``of`` (clock and start skew)",
    "sum_hosts": "the sum over machines, each host's value once (the memory of the client machines)",
    "rate": "the ranks' sum of ``of`` over the combined ``by`` (after every other rule)",
    "meets": "true when the combined ``of`` (AU) is at least the combined ``by`` (its target), false when "
             "below, empty when either is empty (after every other rule)",
}

FIRST = Ranks("first")
STATUS = Ranks("status")
SUM = Ranks("sum")
SUM_RATES = Ranks("sum_rates")
SLOWEST = Ranks("slowest")
MEAN = Ranks("mean")


@dataclass(frozen=True)
class Compared:
    """A column ``compare`` reduces (mean, stdev, min, max, ratio to the baseline).

    ``order``: its place in comparison.csv and the table; ``table``: shown in the table (else
    comparison.csv only); ``keep``: the table's priority when the terminal is narrow (1 is left
    out last); ``digits``: the table's digits when they differ from the column's.
    """

    order: int
    table: bool = False
    keep: int = 0
    digits: int | None = None


@dataclass(frozen=True)
class Column:
    """One column of the summary row.

    Attributes:
        name: the CSV header; ends with its unit where it has one (``_s``, ``_ms``, ``_MiB_per_s``).
        unit: the unit in words (``MiB/s``, ``s``, ``%``, ``bytes``...); empty for labels.
        type: ``int``, ``float`` or ``str``.
        role: :data:`RUN`, :data:`IDENTITY`, :data:`MEASURE`, :data:`TAG` or :data:`RANKS`.
        ranks: how the ranks of a multi-rank run combine (:class:`Ranks`).
        better: :data:`HIGHER`, :data:`LOWER` or None (neither: CPU, memory).
        gate: what the regression gate calls it (``throughput``); None: not gated.
        title: the short header of tables (compare, au-search); default the name.
        digits: decimals shown on the console.
        compared: its place in ``compare`` (None: not compared).
        like: an identity field in which two runs must agree to be compared like with like.
        phase: the phase that measures it (list, train, inference, checkpoint; None: the run).
        needs_compute: meaningless without compute (the ``read`` trainer): hidden in compare then.
    """

    name: str
    unit: str
    type: type
    role: str = MEASURE
    ranks: Ranks = FIRST
    better: str | None = None
    gate: str | None = None
    title: str = ""
    digits: int = 2
    compared: Compared | None = None
    like: bool = False
    phase: str | None = None
    needs_compute: bool = False

    @property
    def header(self) -> str:
        """The short header of a table: the title, else the name."""
        return self.title or self.name

    @property
    def table_digits(self) -> int:
        """Decimals in the compare table."""
        return self.compared.digits if self.compared and self.compared.digits is not None else self.digits


def _identity(name: str, type_: type = str, like: bool = True) -> Column:
    return Column(name, "", type_, IDENTITY, like=like, digits=0)


def _count(name: str, unit: str, phase: str | None, better: str | None = None, ranks: Ranks = SUM) -> Column:
    return Column(name, unit, int, ranks=ranks, better=better, phase=phase, digits=0)


def _ms(name: str, title: str = "", compared: Compared | None = None, gate: str | None = None) -> Column:
    """A request latency percentile: the slowest rank's, lower is better."""
    return Column(name, "ms", float, ranks=SLOWEST, better=LOWER, gate=gate, title=title, digits=3,
                  compared=compared, phase="train")


def _workload_columns() -> tuple[Column, ...]:
    """The checkpoint workload's figures (``training.trainer: checkpoint``), for saves and loads:
    storage bytes, the rank's total and longest time, its GB/s (aggregate: all ranks' bytes over the
    slowest rank's time) and the slowest rank's GB/s (MLPerf Storage's figure)."""
    cols = [_count("ckpt_size_bytes", "bytes", "workload", ranks=FIRST),
            _count("ckpt_ranks", "ranks", "workload", ranks=Ranks("count"))]
    for op in ("save", "load"):
        cols += [
            _count(f"ckpt_{op}s", op + "s", "workload", ranks=FIRST),
            _count(f"ckpt_{op}_bytes", "bytes", "workload"),
            Column(f"ckpt_{op}_total_s", "s", float, ranks=SLOWEST, better=LOWER, digits=3, phase="workload"),
            Column(f"ckpt_{op}_longest_s", "s", float, ranks=SLOWEST, better=LOWER, digits=3, phase="workload"),
            Column(f"ckpt_{op}_GB_per_s", "GB/s", float, better=HIGHER, digits=3, phase="workload",
                   ranks=Ranks("ratio", of=f"ckpt_{op}_bytes", by=f"ckpt_{op}_total_s", scale=1e9),
                   title=f"ckpt {op} GB/s", compared=Compared(20 if op == "save" else 21)),
            Column(f"ckpt_{op}_slowest_rank_GB_per_s", "GB/s", float, better=HIGHER, digits=3, phase="workload",
                   ranks=Ranks("fastest", of=f"ckpt_{op}_GB_per_s"), title=f"slowest rank {op} GB/s",
                   compared=Compared(22 if op == "save" else 23)),
        ]
    cols += [Column("ckpt_read_cache", "", str, ranks=Ranks("same", otherwise="mixed"), phase="workload"),
             Column("ckpt_verified", "", str, ranks=Ranks("verdict"), phase="workload")]
    return tuple(cols)


#: summary.csv, in column order; then the aggregate's columns over ranks
CATALOGUE: tuple[Column, ...] = (
    Column("run_id", "", str, RUN),
    Column("status", "", str, RUN, STATUS),
    Column("failed_phase", "", str, RUN, STATUS),
    Column("reason", "", str, RUN, STATUS),
    Column("started_at", "", str, RUN),
    _identity("config", like=False),  # the file's name: the same setup may live in two files
    _identity("framework"),
    _identity("storage"),
    _identity("client"),
    _identity("access"),
    _identity("decode"),
    _identity("dataset"),
    _identity("model", like=False),
    _identity("trainer"),
    _identity("workers", int),
    _identity("batch_size", int),
    _identity("requests_in_flight", int),  # GETs each loader worker keeps outstanding
    _identity("epochs", int, like=False),
    _count("steps", "steps", "train"),
    _count("samples", "samples", "train"),
    _count("bytes", "bytes", "train"),
    Column("wall_s", "s", float, ranks=SLOWEST, better=LOWER, title="wall s", digits=3, phase="train",
           compared=Compared(13)),
    Column("samples_per_s", "samples/s", float, ranks=SUM_RATES, better=HIGHER, title="samples/s", digits=1,
           phase="train", compared=Compared(2, table=True, keep=9, digits=0)),
    Column("MiB_per_s", "MiB/s", float, ranks=SUM_RATES, better=HIGHER, gate="throughput", title="MiB/s",
           phase="train", compared=Compared(1, table=True, keep=1)),
    Column("MB_per_s", "MB/s", float, ranks=SUM_RATES, better=HIGHER, title="MB/s", phase="train",
           compared=Compared(11)),
    Column("steady_MiB_per_s", "MiB/s", float, ranks=SUM_RATES, better=HIGHER, title="steady MiB/s",
           phase="train", compared=Compared(12)),
    Column("au_percent", "%", float, ranks=MEAN, better=HIGHER, title="AU %", digits=1, phase="train",
           compared=Compared(6, table=True, keep=7), needs_compute=True),
    # the AU the run must reach (training.au_target_percent; a DLIO workload's metric.au) and the verdict
    Column("au_target_percent", "%", float, ranks=FIRST, title="AU target %", digits=1, phase="train"),
    Column("au_meets_target", "", str, ranks=Ranks("meets", of="au_percent", by="au_target_percent"),
           title="AU meets target", phase="train"),
    Column("time_to_first_batch_s", "s", float, ranks=SLOWEST, better=LOWER, gate="time to first batch",
           title="first batch s", digits=3, phase="train", compared=Compared(5, table=True, keep=3)),
    Column("list_s", "s", float, ranks=SLOWEST, better=LOWER, title="list s", digits=3, phase="list",
           compared=Compared(17)),
    _count("objects_listed", "objects", "list", ranks=FIRST),  # every rank lists the whole dataset
    _count("bytes_listed", "bytes", "list", ranks=FIRST),
    Column("objects_listed_per_s", "objects/s", float, ranks=Ranks("ratio", "objects_listed", "list_s", "first"),
           better=HIGHER, phase="list"),
    _count("samples_listed", "samples", "list", ranks=FIRST),  # files holding many samples: their index's count
    _count("bytes_indexed", "bytes", "list", ranks=FIRST),  # ranged reads that located the samples in files
    _count("requests", "requests", "train"),
    Column("request_mean_bytes", "bytes", float, ranks=Ranks("mean_per_request"), phase="train"),
    Column("samples_per_request", "samples/request", float, ranks=Ranks("ratio", "samples", "requests"),
           phase="train"),
    _ms("request_p50_ms", "req p50 ms", Compared(3, table=True, keep=8)),
    _ms("request_p90_ms", "req p90 ms", Compared(14)),
    _ms("request_p99_ms", "req p99 ms", Compared(4, table=True, keep=2), gate="p99 request latency"),
    _ms("request_p999_ms"),
    _ms("request_max_ms", "req max ms", Compared(15)),
    _ms("request_ttfb_p50_ms", "ttfb p50 ms", Compared(16)),
    _ms("request_ttfb_p99_ms"),
    _ms("decode_p50_ms"),
    Column("read_share_percent", "%", float, ranks=MEAN, digits=1, phase="train"),
    Column("first_epoch_MiB_per_s", "MiB/s", float, ranks=SUM_RATES, better=HIGHER, phase="train"),
    Column("last_epoch_MiB_per_s", "MiB/s", float, ranks=SUM_RATES, better=HIGHER, phase="train"),
    Column("cpu_percent", "%", float, ranks=SUM_RATES, title="CPU %", digits=0, phase="train",
           compared=Compared(7, table=True, keep=10)),
    Column("peak_rss_MiB", "MiB", float, ranks=SLOWEST, title="peak RSS MiB", digits=0,
           compared=Compared(18)),
    Column("errors", "requests", int, ranks=SUM, better=LOWER, title="errors", digits=0, phase="train",
           compared=Compared(19)),
    _count("retries", "retries", "train", LOWER),
    _count("skipped_samples", "samples", "train", LOWER),
    Column("cache", "", str, ranks=Ranks("same", otherwise="unknown"), phase="train"),
    Column("byte_check", "", str, ranks=Ranks("verdict", otherwise="not_checked"), phase="train"),
    _count("bytes_planned", "bytes", "train"),  # what the access plan asked storage for (byte_check's expectation)
    _identity("emulated"),
    _count("infer_samples", "samples", "inference"),
    _count("infer_bytes", "bytes", "inference"),
    Column("infer_wall_s", "s", float, ranks=SLOWEST, better=LOWER, digits=3, phase="inference"),
    Column("infer_samples_per_s", "samples/s", float, ranks=SUM_RATES, better=HIGHER, title="infer samples/s",
           digits=1, phase="inference", compared=Compared(8, table=True, keep=6)),
    Column("infer_MiB_per_s", "MiB/s", float, ranks=SUM_RATES, better=HIGHER, phase="inference"),
    Column("accuracy_percent", "%", float, ranks=Ranks("weighted", by="infer_samples"), better=HIGHER, digits=1,
           phase="inference"),
    _count("infer_failed", "samples", "inference", LOWER),
    _count("checkpoint_bytes", "bytes", "checkpoint"),
    Column("checkpoint_save_s", "s", float, ranks=SLOWEST, better=LOWER, digits=3, phase="checkpoint"),
    Column("checkpoint_load_s", "s", float, ranks=SLOWEST, better=LOWER, digits=3, phase="checkpoint"),
    Column("checkpoint_save_MB_per_s", "MB/s", float, ranks=SUM_RATES, better=HIGHER, title="ckpt save MB/s",
           digits=1, phase="checkpoint", compared=Compared(9, table=True, keep=4)),
    Column("checkpoint_load_MB_per_s", "MB/s", float, ranks=SUM_RATES, better=HIGHER, title="ckpt load MB/s",
           digits=1, phase="checkpoint", compared=Compared(10, table=True, keep=5)),
    Column("checkpoint_verified", "", str, ranks=Ranks("verdict"), phase="checkpoint"),
    *_workload_columns(),
    Column("sweep_id", "", str, TAG),
    Column("variant", "", str, TAG),
    Column("repeat", "", int, TAG, digits=0),
    # the run rules (dnnbench.reporting.rules): what they read, then their verdicts on the run's row
    _count("epoch_steps_min", "steps", "train", ranks=Ranks("fastest")),  # the fewest steps of a complete epoch
    Column("client_memory_bytes", "bytes", int, ranks=Ranks("sum_hosts"), digits=0),  # every machine's, summed
    Column("dataset_memory_ratio", "x", float, digits=6),  # bytes_listed / client_memory_bytes
    Column("cache_assisted", "", str),  # yes: under 5x memory, caches not dropped and checked cold
    Column("rule_dataset_size", "", str, RULE),
    Column("rule_steps_per_epoch", "", str, RULE),
    Column("rule_repeats", "", str, RULE),
    # a multi-rank run's aggregate row only
    Column("au_min_percent", "%", float, RANKS, Ranks("fastest", of="au_percent"), HIGHER, digits=1),
    Column("rank_min_MiB_per_s", "MiB/s", float, RANKS, Ranks("fastest", of="MiB_per_s"), HIGHER),
    Column("rank_max_MiB_per_s", "MiB/s", float, RANKS, Ranks("slowest", of="MiB_per_s"), HIGHER),
    Column("ranks", "ranks", int, RANKS, Ranks("count"), digits=0),
    Column("nodes", "nodes", int, RANKS, Ranks("distinct", of="node"), digits=0),
    Column("clock_skew_ms", "ms", float, RANKS, Ranks("spread", of="clock_offset_ms"), LOWER, digits=3),
    Column("start_skew_ms", "ms", float, RANKS, Ranks("spread", of="start_offset_ms"), LOWER, digits=3),
    Column("first_done_s", "s", float, RANKS, Ranks("fastest", of="done_s"), digits=3),
    Column("last_done_s", "s", float, RANKS, Ranks("slowest", of="done_s"), LOWER, digits=3),
    Column("first_done_MiB_per_s", "MiB/s", float, RANKS,
           Ranks("rate", of="first_done_bytes", by="first_done_s", scale=2**20), HIGHER),
    Column("last_done_MiB_per_s", "MiB/s", float, RANKS, Ranks("rate", of="bytes", by="last_done_s", scale=2**20),
           HIGHER),
    # one rank's own row only (ranks.csv): who and where it ran, and its train phase in rank 0's clock
    Column("rank", "", int, PER_RANK, digits=0),
    Column("local_rank", "", int, PER_RANK, digits=0),
    Column("node", "", int, PER_RANK, digits=0),
    Column("host", "", str, PER_RANK),
    Column("clock_offset_ms", "ms", float, PER_RANK, digits=3),  # rank 0's clock minus this rank's
    Column("clock_error_ms", "ms", float, PER_RANK, digits=3),  # the offset's bound: half a round trip
    Column("start_offset_ms", "ms", float, PER_RANK, digits=3),  # train start after the earliest rank's
    Column("done_s", "s", float, PER_RANK, digits=3),  # train end after the earliest rank's start
    Column("first_done_bytes", "bytes", int, PER_RANK, digits=0),  # read when the first rank finished
)

COLUMNS: dict[str, Column] = {c.name: c for c in CATALOGUE}
#: summary.csv's columns, in order (a multi-rank aggregate adds the RANKS columns after them)
SUMMARY_COLUMNS: list[str] = [c.name for c in CATALOGUE if c.role not in (RANKS, PER_RANK)]
#: a rank's own row of a multi-rank run: these first (ranks.csv), then the summary columns
RANK_COLUMNS: list[str] = [c.name for c in CATALOGUE if c.role == PER_RANK]
#: the run rules' verdict columns
RULE_COLUMNS: list[str] = [c.name for c in CATALOGUE if c.role == RULE]
#: identity fields in which runs must agree to be compared (``config``, the file's name, is not one)
LIKE: tuple[str, ...] = tuple(c.name for c in CATALOGUE if c.like)
#: epochs.csv's columns, in order
EPOCH_COLUMNS = ["epoch", "complete", "steps", "samples", "bytes", "wall_s", "samples_per_s", "MiB_per_s",
                 "MB_per_s", "first_batch_s", "wait_s", "compute_s", "au_percent", "requests", "request_p50_ms",
                 "request_p99_ms", "failed_samples", "cache"]


#: checkpoints.csv's columns (the checkpoint workload): one row per rank and save/load, then one
#: per save/load over every rank (rank ``all``: bytes summed, the longest time, the slowest rank)
CHECKPOINT_COLUMNS = ["op", "index", "rank", "payload_bytes", "bytes", "duration_s", "GB_per_s",
                      "slowest_rank_GB_per_s", "read_cache", "verified"]


def as_number(v: Any) -> float | None:
    """A cell as a number: None when empty, a boolean, NaN (a CSV's empty cell read back) or not a number."""
    if v is None or v == "" or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f else None


def meets_target(value: Any, target: Any) -> str | None:
    """``"true"`` when ``value`` >= ``target``, ``"false"`` when below, None when either is
    missing (the ``au_meets_target`` column)."""
    try:
        v, t = float(value), float(target)
    except (TypeError, ValueError):
        return None
    if v != v or t != t:
        return None
    return "true" if v >= t else "false"


def empty_row() -> dict[str, Any]:
    """A summary row with every column empty, in column order."""
    return dict.fromkeys(SUMMARY_COLUMNS)


def compared(table_only: bool = False) -> list[Column]:
    """The columns ``compare`` reduces, in comparison.csv's order (``table_only``: the table's)."""
    cols = sorted((c for c in CATALOGUE if c.compared), key=lambda c: c.compared.order)
    return [c for c in cols if c.compared.table] if table_only else cols


def gated() -> list[Column]:
    """The columns the regression gate checks, in compare's order."""
    return [c for c in compared() if c.gate]


def phase_columns(phase: str) -> list[Column]:
    """The columns a phase measures, in column order."""
    return [c for c in CATALOGUE if c.phase == phase]
