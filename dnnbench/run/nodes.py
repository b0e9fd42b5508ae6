"""Where and when each rank of a run ran: its host, its node, the node's memory, its clock
against rank 0's, and its train phase in rank 0's clock.

Hosts do not share a results folder: each node keeps its own ranks' files (the coordinator
creates the run directory on every node). torchrun numbers the nodes itself (``GROUP_RANK``,
the rendezvous's node rank): two launchers on one machine are two nodes. Without it (ranks
started by hand with ``RANK``/``WORLD_SIZE``) a node is a host name.

Rank 0 receives every rank's :class:`RankTiming` (over torch.distributed, never a shared
folder) and turns them into each rank's own columns (:func:`rank_columns`): the skew of the
clocks and of the train starts, and the bytes each rank had read when the first rank finished
(elbencho's "first done"). Pure Python apart from reading this process's host and memory.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class Member:
    """One rank, as it answers the roll call at the start of a run.

    Attributes:
        rank: its global rank.
        local_rank: its rank on its node (torchrun's ``LOCAL_RANK``).
        host: the machine's host name.
        group_rank: torchrun's node rank (``GROUP_RANK``), None when not launched by torchrun.
        memory_bytes: the machine's physical memory (None when it cannot be read).
    """

    rank: int
    local_rank: int
    host: str
    group_rank: int | None
    memory_bytes: int | None


def host_memory_bytes() -> int | None:
    """This machine's physical memory (None when psutil cannot tell)."""
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:  # noqa: BLE001 - an unreadable figure is left empty, never a failed run
        return None


def this_member(rank: int, local_rank: int) -> Member:
    """This process's answer to the roll call."""
    try:
        group = int(os.environ["GROUP_RANK"])
    except (KeyError, ValueError):
        group = None
    return Member(rank, local_rank, socket.gethostname(), group, host_memory_bytes())


def assign_nodes(members: list[Member]) -> list[int]:
    """Each rank's node index (rank order): torchrun's node rank when every rank has one, else
    the hosts numbered in order of their lowest rank."""
    if all(m.group_rank is not None for m in members):
        return [int(m.group_rank) for m in members]  # type: ignore[arg-type]
    hosts = list(dict.fromkeys(m.host for m in sorted(members, key=lambda m: m.rank)))
    return [hosts.index(m.host) for m in members]


@dataclass(frozen=True)
class Clock:
    """This rank's wall clock against rank 0's, measured at the start of the measured phases.

    Attributes:
        offset_s: rank 0's ``time.time()`` minus this rank's (0 on rank 0).
        error_s: the bound of that offset: half the shortest round trip of the exchange.
        perf_to_wall_s: ``time.time() - time.perf_counter()`` on this rank, to turn the run's
            perf_counter times into wall times.
    """

    offset_s: float = 0.0
    error_s: float = 0.0
    perf_to_wall_s: float = 0.0

    def to_main(self, perf: float | None) -> float | None:
        """A perf_counter time of this rank in rank 0's wall clock."""
        return None if perf is None else perf + self.perf_to_wall_s + self.offset_s


@dataclass(frozen=True)
class RankTiming:
    """What rank 0 needs of one rank to place it: where it ran and when its train phase read,
    every time already in rank 0's wall clock.

    Attributes:
        member: the rank's roll call.
        clock: its clock against rank 0's (None: not measured, the train phase never started).
        start: its train phase's start.
        end: its train phase's end.
        reads: (time a batch arrived, its bytes) of each training step.
    """

    member: Member
    clock: Clock | None
    start: float | None
    end: float | None
    reads: tuple[tuple[float, int], ...] = ()


def offset_from_pings(pings: list[tuple[float, float, float]]) -> tuple[float, float]:
    """(offset, error) from (sent, rank 0's time, received) round trips: the round trip with the
    shortest time, Cristian's algorithm: rank 0's time minus the midpoint, half the round trip."""
    sent, main, back = min(pings, key=lambda p: p[2] - p[0])
    return main - (sent + back) / 2, (back - sent) / 2


def rank_columns(timings: list[RankTiming]) -> list[dict[str, object]]:
    """Each rank's own columns (rank order): rank, node, host, clock offset and error, its train
    start after the earliest rank's, its end after that start (``done_s``) and the bytes it had
    read when the first rank finished (``first_done_bytes``)."""
    nodes = assign_nodes([t.member for t in timings])
    starts = [t.start for t in timings if t.start is not None]
    ends = [t.end for t in timings if t.end is not None]
    t0 = min(starts) if starts else None
    first = min(ends) if ends and len(ends) == len(timings) else None
    return [_rank_row(t, node, t0, first) for t, node in zip(timings, nodes)]


def _rank_row(t: RankTiming, node: int, t0: float | None, first: float | None) -> dict[str, object]:
    def ms(v: float | None) -> float | None:
        return None if v is None else v * 1e3

    m = t.member
    return {
        "rank": m.rank, "local_rank": m.local_rank, "node": node, "host": m.host,
        "client_memory_bytes": m.memory_bytes,
        "clock_offset_ms": ms(t.clock.offset_s) if t.clock else None,
        "clock_error_ms": ms(t.clock.error_s) if t.clock else None,
        "start_offset_ms": ms(t.start - t0) if t.start is not None and t0 is not None else None,
        "done_s": t.end - t0 if t.end is not None and t0 is not None else None,
        "first_done_bytes": sum(b for when, b in t.reads if when <= first) if first is not None else None,
    }
