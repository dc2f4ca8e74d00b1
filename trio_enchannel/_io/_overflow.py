"""What an IOPub reader does when its consumer is slower than the kernel: the policy, the
bounds and the drop rule shared by the ZeroMQ channels and the websocket (remote) channels."""

from __future__ import annotations

import logging
import sys
import time
from typing import Literal

__all__ = [
    "DROP_LOG_INTERVAL",
    "IOPUB_BUFFER_BYTES",
    "IOPUB_BUFFER_SIZE",
    "STATUS_RESERVE",
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
