"""Batch buffers that cross from loader workers to the main process once, then by reference.

A loader worker writes each batch into the next slot of its own ring of shared-memory
buffers (``slots`` of them, reused round-robin). Sending a shared tensor through the
DataLoader's queue passes a file descriptor over a socket and maps it again in the main
process: at hundreds of batches per second that alone costs a large share of the read
path. So a slot's buffer is sent whole only the first time (or after it grew); later
batches in that slot send ``(pid, slot, token)`` and a shape, and the main process takes a
view of the buffer it already holds.

Safety: a worker has at most ``prefetch_factor`` batches in flight and the main process
consumes one at a time, so with ``slots >= prefetch_factor + 2`` a slot is never rewritten
while its batch is in use. A trainer that keeps batch tensors beyond its step must copy them.

In the main process (``num_workers: 0``) the ring holds plain tensors, reused the same way.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import torch
from torch.utils.data import get_worker_info

_SLOTS = 4


class _Ring:
    def __init__(self, slots: int, shared: bool):
        self.pid = os.getpid()
        self.shared = shared
        self.next = 0
        self.buffers: list[torch.Tensor | None] = [None] * slots
        self.tokens: list[int] = [0] * slots
        self.sent: list[int] = [0] * slots  # the token last sent whole to the main process


_RING: _Ring | None = None
#: main process: (worker pid, slot) -> (token, buffer) of the buffers received so far
_RECEIVED: dict[tuple[int, int], tuple[int, torch.Tensor]] = {}


def configure(slots: int) -> None:
    """Slots per ring (call before the first batch; loader workers call it from worker_init)."""
    global _SLOTS, _RING
    _SLOTS = max(2, int(slots))
    _RING = None


def _ring() -> _Ring:
    global _RING
    ring = _RING
    if ring is None or ring.pid != os.getpid() or len(ring.buffers) != _SLOTS:
        ring = _RING = _Ring(_SLOTS, shared=get_worker_info() is not None)
    return ring


def take(nbytes: int) -> tuple[torch.Tensor, tuple[int, int, int] | None]:
    """A uint8 tensor of ``nbytes`` in the next ring slot, and its ticket (None in the main process)."""
    ring = _ring()
    slot = ring.next % len(ring.buffers)
    ring.next += 1
    buf = ring.buffers[slot]
    if buf is None or buf.numel() < nbytes:
        size = max(nbytes, 1) * 5 // 4 + 4096  # headroom: batch sizes in bytes vary
        if ring.shared:
            storage = torch.UntypedStorage._new_shared(size)
            buf = torch.empty(0, dtype=torch.uint8).set_(storage)
        else:
            buf = torch.empty(size, dtype=torch.uint8)
        ring.buffers[slot] = buf
        ring.tokens[slot] = time.monotonic_ns()
    return buf[:nbytes], ((ring.pid, slot, ring.tokens[slot]) if ring.shared else None)


class SlotRef:
    """Pickles a batch tensor that lives in a ring slot: the buffer once, then a reference."""

    __slots__ = ("data", "ticket")

    def __init__(self, data: torch.Tensor, ticket: tuple[int, int, int]):
        self.data = data
        self.ticket = ticket

    def __reduce__(self) -> tuple[Any, tuple]:
        pid, slot, token = self.ticket
        ring = _RING
        if ring is None or ring.pid != pid or ring.tokens[slot] != token:
            return _plain, (self.data,)  # not (or no longer) this process's slot: send the tensor itself
        whole = None
        if ring.sent[slot] != token:
            whole = ring.buffers[slot]
            ring.sent[slot] = token
        return _rebuild, (pid, slot, token, tuple(self.data.shape), self.data.dtype, whole)


def _plain(data: torch.Tensor) -> torch.Tensor:
    return data


def _rebuild(pid: int, slot: int, token: int, shape: tuple[int, ...], dtype: torch.dtype,
             whole: torch.Tensor | None) -> torch.Tensor:
    if whole is not None:
        _RECEIVED[(pid, slot)] = (token, whole)
    else:
        got = _RECEIVED.get((pid, slot))
        if got is None or got[0] != token:
            raise RuntimeError(f"batch buffer {pid}/{slot} was never received (released too early?)")
        whole = got[1]
    n = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    return whole[:n].view(dtype).view(shape)


def wrap(data: torch.Tensor, ticket: tuple[int, int, int] | None) -> Any:
    """What a Batch pickles for ``data``."""
    return data if ticket is None else SlotRef(data, ticket)


def release() -> None:
    """Forget received buffers (main process: after non-persistent workers end, and at close)."""
    _RECEIVED.clear()
