"""User-facing errors: a reference (what), a message, and a hint (how to fix).

The CLI is the one place that renders them and turns them into exit codes.
Every class can also be built from a single string, so an error raised inside a
loader worker survives being re-raised by the framework in the main process.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_REGRESSION = 3
#: a run rule failed under ``--rules mlperf`` (the run itself went well; its result does not qualify)
EXIT_RULES = 4
EXIT_INTERRUPTED = 130


class BenchError(Exception):
    """Base of all errors meant for the user.

    Args:
        message: what went wrong, one sentence.
        reference: the config field path, file, key or endpoint it concerns.
        hint: what the user can do about it.
    """

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, reference: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.reference = reference
        self.hint = hint

    def __str__(self) -> str:
        head = f"{self.reference}: {self.message}" if self.reference else self.message
        return f"{head} (hint: {self.hint})" if self.hint else head


class ConfigError(BenchError):
    """The configuration is invalid; nothing has run yet."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, *, reference: str | None = None, hint: str | None = None,
                 details: list[str] | None = None):
        super().__init__(message, reference=reference, hint=hint)
        self.details = details or []


class PluginError(ConfigError):
    """An unknown or broken plugin name."""


class DataError(BenchError):
    """The dataset is missing, empty or unreadable (bad input: exit 2)."""

    exit_code = EXIT_BAD_INPUT


class StorageError(BenchError):
    """Storage is unreachable, refuses access, or a request failed."""

    exit_code = EXIT_FAILED


class SampleError(BenchError):
    """A sample could not be read or decoded."""

    exit_code = EXIT_FAILED


class Interrupted(KeyboardInterrupt):
    """SIGTERM, handled exactly like Ctrl-C: whatever catches KeyboardInterrupt stops the
    run and keeps what was measured; the CLI exits 130 with one line, no traceback."""


class RunFailed(BenchError):
    """The run started but could not finish."""

    exit_code = EXIT_FAILED


class RuleViolation(BenchError):
    """A run rule failed under ``--rules mlperf``: the figures stand, but not as a result
    the rule set accepts (exit 4)."""

    exit_code = EXIT_RULES


class RecordingError(OSError):
    """The request log could not be written (a full disk): the run cannot be measured."""


#: ends the message of an error raised on one rank for another rank's failure
#: (:func:`dnnbench.run.coordinator.rebuild`); the rank aggregate recognises such relayed errors
RELAYED = " (from rank {rank})"
