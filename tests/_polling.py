"""Waiting for conditions that only real I/O in libzmq's own threads can make true."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio


async def poll_until(condition: Callable[[], bool], *, interval: float = 0.002) -> None:
    """Wait until ``condition()`` holds. Callers bound the wait with ``trio.fail_after``.

    No Trio event exists for "libzmq's I/O thread got there", so this polls; it never stands
    in for an ordering that an event could give."""
    while not condition():  # noqa: ASYNC110 - see the docstring
        await trio.sleep(interval)


async def assert_yields_every_few_calls(
    call: Callable[[], Awaitable[object]], calls: int, every: int
) -> None:
    """Make ``calls`` calls of ``call`` (each completing without waiting) while another task
    counts its own turns; assert the caller let it run at least once within every ``2 *
    every`` calls (a yield lets it run in the same scheduler batch, before or after the
    caller) but not at each call (the yields are amortised)."""
    ticks = 0
    seen: list[int] = []

    async def other_task() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other_task)
        await trio.lowlevel.checkpoint()  # the other task is now running
        for _ in range(calls):
            await call()
            seen.append(ticks)
        nursery.cancel_scope.cancel()
    window = 2 * every
    for start in range(calls - window):
        assert seen[start + window] > seen[start], (start, seen)
    assert len(set(seen)) <= calls // every + 2, seen
