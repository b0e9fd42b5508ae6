"""Run under torchrun by tests/e2e/test_distributed.py: one dnnbench run (``benchmark.py -q
--config ARGV[1]``) in this process, then how many references to the run's process group
remain besides this script's own. 0: the run released it, so ``destroy_process_group()`` joined
gloo's threads while the interpreter was whole; more: the group outlives the run, to be torn
down during the interpreter's finalization (where a gloo thread can abort the rank)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch.distributed as dist  # noqa: E402

from dnnbench.cli import main  # noqa: E402

groups = []
init = dist.init_process_group


def init_and_keep(*args, **kwargs):
    init(*args, **kwargs)
    groups.append(dist.group.WORLD)


dist.init_process_group = init_and_keep
code = main(["-q", "--config", sys.argv[1]])
held = sys.getrefcount(groups[0]) - 2  # less the list's reference and getrefcount's argument
groups.clear()  # the last reference: the group is destroyed here, its threads joined
print(f"exit {code} held {held}", flush=True)
sys.exit(code)
