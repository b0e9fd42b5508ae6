"""At 80 columns every table and progress bar fits, and no word is cut: the least important
columns are left out (and named) instead (issue 11.8)."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from dnnbench.ui.console import RichEvents, au_search_table, comparison_table, plugins_table, summary_table
from dnnbench.ui.fit import Col, fit_table

_BOX = re.compile(r"[\u2500-\u257f]")  # box-drawing characters


def render(renderable, width: int = 80) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, force_terminal=False).print(renderable)
    return buf.getvalue()


def tokens(text: str) -> set[str]:
    return set(_BOX.sub(" ", text).split())


def assert_fits_whole(text: str, words: list[str], width: int = 80) -> None:
    assert max(len(line) for line in text.splitlines()) <= width, text
    missing = [w for w in words if w not in tokens(text)]
    assert not missing, f"cut or missing: {missing}\n{text}"


def test_fit_keeps_words_whole_drops_the_least_important_first_and_never_a_kept_column():
    cols = [Col("name", ["s3torchconnector", "fs"]), Col("note", ["a b c d e f g h"] * 2, drop=1),
            Col("long", ["TorchImageClassificationDataset, MapStyleDataset", ""], drop=2),
            Col("what", ["sleeps training.compute_time_s per step in place of an accelerator", "x"])]
    wide = fit_table(cols, 200)
    assert wide.dropped == [] and len(wide.table.columns) == 4
    narrow = fit_table(cols, 60)
    assert narrow.dropped == ["long"] and [c.header for c in narrow.table.columns] == ["name", "note", "what"]
    assert_fits_whole(render(narrow.table, 60), ["s3torchconnector", "training.compute_time_s", "accelerator"], 60)
    tiny = fit_table(cols, 30)
    assert tiny.dropped == ["long", "note"]  # the kept columns stay even when they cannot fit


def test_progress_bar_is_one_line_at_80_columns():
    buf = io.StringIO()
    clock = type("Clock", (), {"t": 0.0, "__call__": lambda self: self.t})()
    ev = RichEvents(Console(file=buf, width=80, force_terminal=False), get_time=clock)
    ev.task_start("epoch 10/10", total=123_456)
    clock.t = 2.0
    ev.task_advance(61_728, 61_728 * 200_000)
    ev._progress.refresh()
    ev.task_end()
    lines = [ln for ln in buf.getvalue().splitlines() if ln.strip()]
    assert len(lines) == 1 and len(lines[0]) <= 80, lines
    assert_fits_whole(lines[0], ["epoch", "10/10", "61728/123456", "30,864", "samples/s", "5,886.8", "MiB/s",
                                 "0:00:02"])


def _comparison(tmp_path):
    from dnnbench.reporting import compare
    from tests.unit.test_compare import fake_run

    labels = ["client=boto3,num_workers=16,batch_size=128", "client=s3torchconnector,num_workers=16,batch_size=128"]
    for rep in (1, 2):
        fake_run(tmp_path, f"a{rep}", labels[0], 1234.5 + rep, p99=12.5, ttfb=0.2, repeat=rep)
        fake_run(tmp_path, f"b{rep}", labels[1], 2345.5 + rep, p99=8.25, ttfb=0.1, repeat=rep)
    fake_run(tmp_path, "c1", "client=minio", 0, status="failed")
    return compare.compare(compare.select_runs(tmp_path, ["S1"]))


def test_compare_table_at_80_columns_drops_columns_not_words(tmp_path):
    c = _comparison(tmp_path)
    text = render(comparison_table(c, width=80))
    words = ["client=boto3,", "num_workers=16,", "batch_size=128", "client=s3torchconnector,", "client=minio",
             "(baseline)", "1,236.00", "±0.71", "2,347.00", "1.90x", "12.500", "8.250", "0.66x", "storage.prefixes:",
             "nothing", "stored", "under", "prefix", "'nope'"]
    assert_fits_whole(text, words)
    caption = " ".join(text.split("(baseline)")[-1].split())
    assert "not shown for width: CPU %, samples/s, req p50 ms" in caption
    assert "samples/s" not in text.split("not shown")[0]
    assert_fits_whole(render(comparison_table(c, width=200), 200), [*words, "samples/s", "CPU", "%"], 200)


def test_au_search_table_at_80_columns(tmp_path):
    rows = [{"accelerators": 1, "measurements": 1, "passed": True, "au_percent": 95.25, "au_stdev": None,
             "au_low": 95.25, "au_high": 95.25, "samples_per_s": 1234.5, "MiB_per_s": 123.45,
             "request_p99_ms": 12.345},
            {"accelerators": 16, "measurements": 3, "passed": False, "au_percent": 85.5, "au_stdev": 2.25,
             "au_low": 83.0, "au_high": 87.5, "samples_per_s": 22345.5, "MiB_per_s": 2234.5, "request_p99_ms": 22.5,
             "failed": 1, "reason": "storage.prefixes: nothing stored under prefix 'nope' and a longer explanation "
                                    "of what went wrong there"}]
    text = render(au_search_table(rows, 90, "min", width=80))
    assert_fits_whole(text, ["accelerators", "16", "95.2", "85.5", "2.2", "83.0-87.5", "2,234.50", "feeds", "failed:",
                             "storage.prefixes:", "'nope'", "and", "a", "…"])  # the reason shortened between words
    assert "not shown for width: req p99 ms, samples/s, runs" in " ".join(text.split())


def test_plugins_table_at_80_columns_names_what_it_left_out():
    from dnnbench import executor  # noqa: F401  - registers the built-in plugins
    from dnnbench.registry import REGISTRIES

    rows = [(kind, e.name, e.framework or "any", ", ".join(e.aliases), "builtin", e.description)
            for kind, registry in REGISTRIES.items() for e in registry.entries() if e.origin == "builtin"]
    text = render(plugins_table(rows, width=80))
    assert "not shown for width: aliases (a wider terminal shows them)" in " ".join(text.split())
    assert_fits_whole(text, [w for r in rows for cell in (r[0], r[1], r[2], r[4], r[5]) for w in cell.split()])
    # a user's plugin file: a long path is a word that cannot wrap; the origin column goes too
    mine = ("dataset", "my_dataset", "pytorch", "", "plugins: /home/someone/projects/loader/my_plugins.py", "mine")
    text = render(plugins_table([*rows, mine], width=80))
    assert "not shown for width: aliases, origin" in " ".join(text.split())
    assert_fits_whole(text, ["my_dataset", "mine", "training.compute_time_s", "s3torchconnector"])
    wide = render(plugins_table([*rows, mine], width=220), 220)
    assert_fits_whole(wide, [w for r in [*rows, mine] for cell in r for w in cell.split()], 220)


ROW = {"run_id": "20261202-081116-quickstart-v1-threads_1_auto-r1", "status": "ok", "framework": "pytorch",
       "trainer": "train", "storage": "fs:/tmp/r1ux/data/quickstart", "client": "fs", "access": "random",
       "decode": "rgb", "workers": 2, "batch_size": 32, "epochs": 2, "steps": 64, "samples": 2048,
       "bytes": 13203370, "wall_s": 4.072, "samples_per_s": 502.9, "MiB_per_s": 3.09, "MB_per_s": 3.24,
       "time_to_first_batch_s": 0.19, "list_s": 0.012, "objects_listed": 1024, "request_p50_ms": 0.022,
       "request_p99_ms": 0.39, "au_percent": 79.4, "read_share_percent": 14.3, "cache": "warm",
       "byte_check": "ok", "cpu_percent": 52.0, "peak_rss_MiB": 970.0, "errors": 0, "retries": 0}


@pytest.mark.parametrize("width", [80, 140])
def test_summary_table_fits_without_cutting_a_word(width):
    text = render(summary_table(ROW, width=width), width)
    assert_fits_whole(text, ["20261202-081116-quickstart-v1-threads_1_auto-r1", "time_to_first_batch_s", "0.190",
                             "fs:/tmp/r1ux/data/quickstart", "13,203,370", "3.09", "(3.24)", "first", "last",
                             "epoch", "MiB_per_s", "read_share_percent", "14.3", "peak_rss_MiB", "970"], width)
