"""Why a sample could not be delivered, told apart by the reason's first words, which cross
loader processes and tf.data as plain strings:

- a **bad sample** (``read failed:``, ``decode failed:``): missing, truncated, changed since
  listing, not an image, too large to decode. ``dataset.on_error: skip`` applies to these.
- an **outage** (``storage failed:``): the store stopped answering (connection refused or
  reset, timeouts, 5xx or throttling after the client's retries, access refused). The run ends, whatever
  ``on_error`` says: skipping every sample of an unreachable store measures nothing.
- a **recording failure** (``recording failed:``): the request log could not be written (a full
  disk). The run ends too.
"""

from __future__ import annotations

import errno

from dnnbench.errors import BenchError, RecordingError, RunFailed, StorageError

BAD_READ = "read failed: "
BAD_DECODE = "decode failed: "
BAD_SHARD = "shard read failed: "
OUTAGE = "storage failed: "
RECORDING = "recording failed: "
DISK_HINT = "free space on the device of metrics.output_dir (or point it elsewhere), then run again"

#: errno values of a filesystem that stopped answering (a network mount gone), not of one bad file
_OUTAGE_ERRNOS = {errno.ENOTCONN, errno.ESTALE, errno.EHOSTDOWN, errno.EHOSTUNREACH, errno.ENETDOWN,
                  errno.ENETUNREACH, errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.ETIMEDOUT}


def is_outage_error(e: BaseException) -> bool:
    """Storage that stopped answering, as opposed to one bad object."""
    if isinstance(e, (StorageError, ConnectionError, TimeoutError)):  # StorageError: after the client's retries
        return True
    return isinstance(e, OSError) and e.errno in _OUTAGE_ERRNOS


def read_failure(e: BaseException, bad: str = BAD_READ) -> str:
    """The reason of a sample (or shard: ``bad`` names it) whose read raised ``e``."""
    text = f"{type(e).__name__}: {e}"
    if isinstance(e, RecordingError):
        return RECORDING + text
    return (OUTAGE if is_outage_error(e) else bad) + text


def is_fatal(reason: str) -> bool:
    """Does this failure end the run whatever ``dataset.on_error`` says?"""
    return reason.startswith((OUTAGE, RECORDING))


def is_outage(reason: str) -> bool:
    return reason.startswith(OUTAGE)


def fatal_error(key: str, reason: str) -> BenchError:
    """The error that ends the run for a fatal failure (see :func:`is_fatal`) of sample ``key``."""
    detail = reason.split(": ", 1)[1]
    if is_outage(reason):
        return StorageError(f"the storage failed while reading this sample: {detail}", reference=key,
                            hint="the store did not answer after the client's retries and timeouts "
                                 "(storage.s3.max_attempts, connect_timeout_s, read_timeout_s): check the "
                                 "server and the network, then run again")
    return RunFailed(f"the requests of the run cannot be recorded: {detail}", reference=key, hint=DISK_HINT)


def raise_if_fatal(bad: list) -> None:
    """Raise :func:`fatal_error` for the first fatal failure among ``bad`` (objects with ``key``
    and ``reason``), if any: the run ends whatever ``dataset.on_error`` says.

    Raises:
        StorageError: an outage.
        RunFailed: the request log could not be written.
    """
    fatal = next((f for f in bad if is_fatal(f.reason)), None)
    if fatal is not None:
        raise fatal_error(fatal.key, fatal.reason)
