"""The end-of-run summary shows the figures of the phases that ran: a checkpoint-only or
inference-only run is never ``ok: 0.00 MiB/s`` (issue 11.10)."""

from __future__ import annotations

import io

from rich.console import Console

from dnnbench.ui.console import RichEvents
from dnnbench.ui.summary import headline, ran, summary_table

BASE = {"run_id": "r", "status": "ok", "framework": "pytorch", "trainer": "train", "storage": "fs:/d", "client": "fs",
        "access": "random", "decode": "rgb", "workers": 2, "batch_size": 32, "epochs": 2, "list_s": 0.02,
        "objects_listed": 1024, "errors": 0, "retries": 0}
# what the executor writes when training did not run: zero steps, samples and bytes, no rates
NO_TRAIN = {**BASE, "steps": 0, "samples": 0, "bytes": 0, "requests": 0, "byte_check": "not_checked"}
CKPT = {"checkpoint_bytes": 192205, "checkpoint_save_s": 0.0112, "checkpoint_load_s": 0.0064,
        "checkpoint_save_MB_per_s": 458.728, "checkpoint_load_MB_per_s": 3316.8, "checkpoint_verified": "ok"}
INFER = {"infer_samples": 102, "infer_wall_s": 1.589, "infer_samples_per_s": 64.2027, "infer_MiB_per_s": 0.403715,
         "accuracy_percent": 29.4118}
TRAIN = {"steps": 64, "samples": 2048, "bytes": 13203370, "wall_s": 4.07, "samples_per_s": 502.9, "MiB_per_s": 3.09,
         "MB_per_s": 3.24, "au_percent": 79.4, "requests": 2048, "byte_check": "ok"}


def table_text(row: dict) -> str:
    buf = io.StringIO()
    Console(file=buf, width=140).print(summary_table(row, width=140))
    return " ".join(buf.getvalue().split())


def test_a_checkpoint_only_run_shows_its_checkpoint_figures():
    row = {**NO_TRAIN, **CKPT}
    assert ran(row) == {"train": False, "inference": False, "checkpoint": True, "workload": False}
    assert headline(row) == "checkpoint save 458.7 MB/s, load 3,316.8 MB/s (verified ok)"
    text = table_text(row)
    assert "checkpoint save / load MB_per_s │ 458.7 / 3,316.8" in text and "checkpoint_bytes │ 192,205" in text
    assert "MiB_per_s" not in text and "samples_per_s" not in text and "au_percent" not in text


def test_an_inference_only_run_shows_its_inference_figures():
    row = {**NO_TRAIN, **INFER}
    assert headline(row) == "inference 64.2 samples/s (0.40 MiB/s), accuracy 29.4 %"
    text = table_text(row)
    assert "infer samples_per_s / MiB_per_s │ 64.2 / 0.40" in text and "accuracy_percent │ 29.4" in text
    assert "first / last epoch" not in text


def test_training_with_both_phases_shows_all_three_and_a_failed_start_shows_training():
    row = {**BASE, **TRAIN, **INFER, **CKPT}
    assert headline(row) == ("3.09 MiB/s, 502.9 samples/s; inference 64.2 samples/s (0.40 MiB/s), accuracy 29.4 %; "
                             "checkpoint save 458.7 MB/s, load 3,316.8 MB/s (verified ok)")
    text = table_text(row)
    assert "MiB_per_s (MB_per_s) │ 3.09 (3.24)" in text and "checkpoint_verified │ ok" in text
    failed = {**BASE, "status": "failed", "reason": "storage.prefixes: nothing stored"}
    assert ran(failed)["train"] and headline(failed) == "0.00 MiB/s, 0.0 samples/s"
    assert "samples_per_s" in table_text(failed) and "nothing stored" in table_text(failed)


def test_quiet_mode_prints_the_phases_that_ran():
    buf = io.StringIO()
    RichEvents(Console(file=buf, width=200), quiet=True).summary({**NO_TRAIN, **CKPT}, "results/r", {})
    assert buf.getvalue() == "ok: checkpoint save 458.7 MB/s, load 3,316.8 MB/s (verified ok), results in results/r\n"


def test_a_checkpoint_workload_run_shows_its_figures():
    row = {**NO_TRAIN, "trainer": "checkpoint", "ckpt_size_bytes": 105_000_000, "ckpt_ranks": 2, "ckpt_saves": 3,
           "ckpt_loads": 2, "ckpt_save_bytes": 315_012_000, "ckpt_load_bytes": 210_008_000,
           "ckpt_save_GB_per_s": 0.5, "ckpt_load_GB_per_s": 1.25, "ckpt_save_slowest_rank_GB_per_s": 0.25,
           "ckpt_load_slowest_rank_GB_per_s": 0.6, "ckpt_save_longest_s": 0.4, "ckpt_load_longest_s": 0.2,
           "ckpt_read_cache": "dropped", "ckpt_verified": "ok"}
    assert ran(row) == {"train": False, "inference": False, "checkpoint": False, "workload": True}
    assert headline(row) == ("checkpoints save 0.500 GB/s (slowest rank 0.250), load 1.250 GB/s "
                             "(dropped; verified ok)")
    text = table_text(row)
    assert "slowest rank save / load GB_per_s │ 0.250 / 0.600" in text and "ckpt_read_cache │ dropped" in text
    assert "MiB_per_s" not in text and "au_percent" not in text
