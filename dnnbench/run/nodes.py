"""Where each rank of a run runs: its host, its node, the node's memory, and which rank makes
the node's run directory.

Hosts do not share a results folder: each node keeps its own ranks' files, so on each node one
rank (its leader, the lowest rank there) creates the run directory. torchrun numbers the nodes
itself (``GROUP_RANK``, the rendezvous's node rank): two launchers on one machine are two nodes.
Without it (ranks started by hand with ``RANK``/``WORLD_SIZE``) a node is a host name.

Pure Python apart from reading this process's host (:func:`this_member`); the assignment of
nodes is a pure function of every rank's :class:`Member`.
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


def leaders(nodes: list[int]) -> set[int]:
    """The ranks that create their node's run directory: the lowest rank of each node."""
    first: dict[int, int] = {}
    for rank, node in enumerate(nodes):
        first.setdefault(node, rank)
    return set(first.values())
