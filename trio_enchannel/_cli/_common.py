"""What every subcommand shares: the exit statuses, the one-line error it reports
(:class:`CommandError`), and how the command ends (:func:`exit_status`).

Imports no Trio, so that ``trio-enchannel kernels`` and ``--help`` start fast.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

__all__ = [
    "DEFAULT_KERNEL",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_KERNEL_DIED",
    "EXIT_OK",
    "EXIT_OUTPUT_LOST",
    "EXIT_STATUSES",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "PROG",
    "CommandError",
    "exit_status",
    "reading_stdin",
]

#: Success.
EXIT_OK = 0
#: The code raised an error (a notebook cell failed).
EXIT_ERROR = 1
#: Bad usage: unknown option, unknown kernel, missing or unreadable file.
EXIT_USAGE = 2
#: The kernel failed to start or died while running.
EXIT_KERNEL_DIED = 3
#: The code ran, but some of its output was lost: the kernel published faster than it could
#: be received or shown, and messages were dropped (never silently: this status says so).
EXIT_OUTPUT_LOST = 4
#: A timeout expired (kernel startup, execution, or a reply).
EXIT_TIMEOUT = 124
#: Interrupted with Ctrl-C (128 + SIGINT, like a shell).
EXIT_INTERRUPTED = 130

EXIT_STATUSES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_ERROR: "the code raised an error (or a notebook cell failed)",
    EXIT_USAGE: "bad usage: unknown option or kernel, missing or unreadable file",
    EXIT_KERNEL_DIED: "the kernel failed to start or died",
    EXIT_OUTPUT_LOST: "some output was lost (dropped because it came faster than it was read)",
    EXIT_TIMEOUT: "a timeout expired",
    EXIT_INTERRUPTED: "interrupted with Ctrl-C",
}

PROG = "trio-enchannel"

#: The kernel used when neither ``-k`` nor the notebook names one.
DEFAULT_KERNEL = "python3"


class CommandError(Exception):
    """A failure to report as one line on stderr, with the exit status to return."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


#: Whether a thread was left blocked reading standard input (a prompt cancelled by Ctrl-C or
#: a timeout). Such a thread holds stdin's lock, and the interpreter aborts when it finalizes
#: stdin at exit, so the command then ends with os._exit (see :func:`exit_status`).
_reader_abandoned = False


@contextlib.contextmanager
def reading_stdin() -> Iterator[None]:
    """Wrap the wait for a worker thread that reads standard input.

    A block left by an exception (the wait was cancelled, the thread abandoned while still
    blocked) marks the reader abandoned, so that :func:`exit_status` ends the process.
    """
    global _reader_abandoned
    _reader_abandoned = True  # until the thread comes back
    yield
    _reader_abandoned = False


def exit_status(status: int) -> int:
    """Return *status*, or end the process now if a stdin reader thread is still blocked.

    Everything else is finished by then: the kernel is shut down and its files removed.
    """
    if _reader_abandoned:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(status)
    return status
