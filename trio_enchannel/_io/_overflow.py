"""What a reader does when its consumer is slower than the kernel: the policy, the bounds
(:class:`BufferOptions`) and the drop rule shared by the ZeroMQ channels, the websocket
(remote) channels and the kernel side."""

from __future__ import annotations

import logging
import sys
import time
from typing import Literal

import attrs

from .._validate import check_bool, check_choice, check_int

__all__ = [
    "DROP_LOG_INTERVAL",
    "IOPUB_BUFFER_BYTES",
    "IOPUB_BUFFER_SIZE",
    "STATUS_RESERVE",
    "BufferOptions",
    "DropLog",
    "IOPubOverflow",
    "must_drop",
]

#: What the IOPub reader does when the consumer is slower than the kernel and the IOPub
#: buffer is full: ``"drop"`` (the default: keep reading, discard the new message and count
#: it; status messages are kept) or ``"wait"`` (stop reading; past ZeroMQ's high-water marks
#: the kernel then drops messages without anybody knowing). See :func:`open_channels`.
IOPubOverflow = Literal["wait", "drop"]

#: Default IOPub buffer bounds: messages, and bytes (wire size).
IOPUB_BUFFER_SIZE = 10_000
IOPUB_BUFFER_BYTES = 32 * 2**20
#: Status messages kept past a full IOPub buffer (policy "drop"), beyond its bound.
STATUS_RESERVE = 1000
#: Seconds between two warnings about dropped IOPub messages.
DROP_LOG_INTERVAL = 10.0


def must_drop(
    queued: int, queued_bytes: int, nbytes: int, msg_type: str, max_items: int, max_bytes: int
) -> bool:
    """The ``"drop"`` policy: whether a message of ``nbytes`` and ``msg_type`` is dropped
    from a buffer holding ``queued`` messages of ``queued_bytes``.

    A full buffer (in messages or in bytes) keeps only status messages (an execution ends with
    ``idle``, which busy/idle tracking must not miss), and those only up to
    :data:`STATUS_RESERVE` beyond the bound. An empty buffer takes any message, whatever its
    size: a message larger than the byte bound says nothing about a slow consumer, and
    dropping it would lose output for no reason (the memory it takes is already allocated).
    """
    if queued < max_items and (queued == 0 or queued_bytes + nbytes <= max_bytes):
        return False
    return msg_type != "status" or queued >= max_items + STATUS_RESERVE


class DropLog:
    """Warns about dropped IOPub messages: at the first drop, then at most every
    :data:`DROP_LOG_INTERVAL` seconds with the count since the last warning.

    Args:
        logger: where the warnings go.
        opener: the function whose option the warning points to.
        option: that option.
    """

    def __init__(
        self, logger: logging.Logger, opener: str, *, option: str = "iopub_overflow"
    ) -> None:
        self._logger = logger
        self._opener = opener
        self._option = option
        self._since = 0
        self._total = 0
        self._next = 0.0

    def dropped(self, name: str, max_items: int, max_bytes: int) -> None:
        """Count one dropped message of channel ``name``; warn if it is time to."""
        self._since += 1
        self._total += 1
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + DROP_LOG_INTERVAL
        bound = f"{max_items} messages" + (
            f" or {max_bytes} bytes" if max_bytes < sys.maxsize else ""
        )
        self._logger.warning(
            "the %s consumer is slower than the kernel: dropped %d message(s) since the last "
            "warning, %d in total (the buffer holds %s; see %s' %s)",
            name,
            self._since,
            self._total,
            bound,
            self._opener,
            self._option,
        )
        self._since = 0


@attrs.frozen
class BufferOptions:
    """How a reader hands received messages over, and reports rejected ones: the options
    every opener shares, checked once by :meth:`build` (use it, not the constructor).

    Attributes:
        buffer_size: messages buffered per channel for shell, control and stdin (at least 1:
            ``0`` means 1 in every opener, a buffer always holds the message at hand).
        iopub_buffer_size: messages buffered for IOPub (at least 1, likewise).
        iopub_buffer_bytes: bytes (wire size) buffered for IOPub.
        iopub_overflow: the IOPub policy, ``"drop"`` or ``"wait"``.
        multiplexed: every channel delivers to one shared buffer.
        rejects_buffer_size: how many unread rejected messages are reported; ``None``: they
            are not reported, only counted.
    """

    buffer_size: int = 1000
    iopub_buffer_size: int = IOPUB_BUFFER_SIZE
    iopub_buffer_bytes: int = IOPUB_BUFFER_BYTES
    iopub_overflow: IOPubOverflow = "drop"
    multiplexed: bool = False
    rejects_buffer_size: int | None = None

    @classmethod
    def build(
        cls,
        *,
        buffer_size: object = 1000,
        iopub_buffer_size: object = IOPUB_BUFFER_SIZE,
        iopub_buffer_bytes: object = IOPUB_BUFFER_BYTES,
        iopub_overflow: object = "drop",
        multiplexed: object = False,
        report_rejects: object = False,
        rejects_buffer_size: object = 100,
    ) -> BufferOptions:
        """The options from an opener's keyword arguments of the same names, checked (the
        error names the argument); ``iopub_buffer_size=None`` is the default.

        Raises:
            ConfigurationError: a value is out of range.
            TypeError: a value has the wrong type.
        """
        size = check_int("buffer_size", buffer_size, at_least=0)
        if iopub_buffer_size is None:
            iopub_buffer_size = IOPUB_BUFFER_SIZE
        iopub_size = check_int("iopub_buffer_size", iopub_buffer_size, at_least=0)
        iopub_bytes = check_int("iopub_buffer_bytes", iopub_buffer_bytes, at_least=1)
        overflow = check_choice("iopub_overflow", iopub_overflow, ("wait", "drop"))
        check_bool("multiplexed", multiplexed)
        report = check_bool("report_rejects", report_rejects)
        rejects = check_int("rejects_buffer_size", rejects_buffer_size, at_least=1)
        return cls(
            buffer_size=max(1, size),
            iopub_buffer_size=max(1, iopub_size),
            iopub_buffer_bytes=iopub_bytes,
            iopub_overflow=overflow,
            multiplexed=bool(multiplexed),
            rejects_buffer_size=rejects if report else None,
        )

    def limits(self, name: str) -> tuple[int, int]:
        """(messages, bytes) the buffer of channel ``name`` holds; bytes 0: no byte bound."""
        if name == "iopub":
            return self.iopub_buffer_size, self.iopub_buffer_bytes
        return self.buffer_size, 0
