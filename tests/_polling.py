"""Waiting for conditions that only real I/O in libzmq's own threads can make true."""

from __future__ import annotations

from collections.abc import Callable

import trio


async def poll_until(condition: Callable[[], bool], *, interval: float = 0.002) -> None:
    """Wait until ``condition()`` holds. Callers bound the wait with ``trio.fail_after``.

    No Trio event exists for "libzmq's I/O thread got there", so this polls; it never stands
    in for an ordering that an event could give."""
    while not condition():  # noqa: ASYNC110 - see the docstring
        await trio.sleep(interval)
