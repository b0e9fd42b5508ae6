"""Rank x worker splitting: no item lost or read twice, uneven splits balanced."""

from __future__ import annotations

import pytest

from dnnbench.data.split import block, split


@pytest.mark.parametrize("n", [0, 1, 5, 7, 64, 1001])
@pytest.mark.parametrize("world,workers", [(1, 1), (1, 4), (2, 3), (3, 2), (4, 4), (8, 1)])
def test_every_item_exactly_once(n, world, workers):
    seen = []
    sizes = []
    for rank in range(world):
        for worker in range(workers):
            r = split(n, rank, world, worker, workers)
            seen.extend(r)
            sizes.append(len(r))
    assert sorted(seen) == list(range(n))
    per_rank = [sum(sizes[r * workers:(r + 1) * workers]) for r in range(world)]
    assert max(per_rank) - min(per_rank) <= 1


def test_blocks_are_contiguous_and_ordered():
    assert [list(block(7, 3, p)) for p in range(3)] == [[0, 1, 2], [3, 4], [5, 6]]
    assert list(split(10, rank=1, world=2, worker=0, workers=2)) == [5, 6, 7]


def test_fewer_items_than_workers_gives_empty_ranges():
    assert [len(split(2, 0, 1, w, 4)) for w in range(4)] == [1, 1, 0, 0]


def test_bad_part():
    with pytest.raises(ValueError):
        block(3, 2, 2)
