"""Tests of the hand-over buffer between reader tasks and consumers (trio_enchannel._io._inbox)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from tests._polling import assert_yields_every_few_calls
from trio_enchannel._io._inbox import Inbox


async def test_fifo_bytes_and_end_of_channel_after_every_sender() -> None:
    inbox = Inbox[int](senders=2)
    for i in range(3):
        assert inbox.put(i, 10)
    assert (len(inbox), inbox.nbytes) == (3, 30)
    inbox.close_sender()
    assert await inbox.receive() == 0
    assert inbox.receive_nowait() == 1
    inbox.close_sender()  # the last sender: what is queued is still delivered, then the end
    assert inbox.receive_nowait() == 2
    assert (len(inbox), inbox.nbytes) == (0, 0)
    with pytest.raises(trio.EndOfChannel):
        await inbox.receive()
    with pytest.raises(trio.EndOfChannel):
        inbox.receive_nowait()


async def test_waiting_receivers_are_handed_items_in_order_and_woken_by_the_end() -> None:
    inbox = Inbox[int]()
    got: list[tuple[str, object]] = []

    async def consumer(name: str) -> None:
        while True:
            try:
                got.append((name, await inbox.receive()))
            except trio.EndOfChannel:
                got.append((name, "end"))
                return

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consumer, "a")
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(consumer, "b")
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.WouldBlock):
                inbox.receive_nowait()
            inbox.put(1)  # straight to the first waiter
            inbox.put(2)  # and to the second
            assert len(inbox) == 0
            await trio.testing.wait_all_tasks_blocked()
            inbox.close_sender()
    assert [v for n, v in got if n == "a"] == [1, "end"]
    assert [v for n, v in got if n == "b"] == [2, "end"]


async def test_cancelled_receive_loses_nothing() -> None:
    inbox = Inbox[int]()
    with trio.move_on_after(0.01) as scope:
        await inbox.receive()
    assert scope.cancelled_caught
    inbox.put(7)  # nobody waits any more: queued, not handed to the cancelled task
    assert len(inbox) == 1
    with trio.CancelScope() as scope:
        scope.cancel()
        await inbox.receive()  # cancelled at its checkpoint, before taking anything
    assert len(inbox) == 1
    assert await inbox.receive() == 7


async def test_close_discards_refuses_and_wakes_everybody() -> None:
    queued = Inbox[int]()
    idle = Inbox[int]()
    outcomes: list[str] = []

    async def consumer() -> None:
        with pytest.raises(trio.ClosedResourceError):
            await idle.receive()
        outcomes.append("consumer")

    async def reader() -> None:
        await queued.wait_room(0, 0)
        outcomes.append("reader")

    queued.put(1, 5)
    queued.put(2, 5)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consumer)
            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            assert outcomes == []
            queued.close()
            idle.close()
            idle.close()  # idempotent
    assert sorted(outcomes) == ["consumer", "reader"]
    assert (len(queued), queued.nbytes, queued.closed) == (0, 0, True)
    assert queued.put(3) is False
    with pytest.raises(trio.ClosedResourceError):
        queued.receive_nowait()


async def test_wait_room_resumes_at_the_low_mark_of_items_and_bytes() -> None:
    inbox = Inbox[int]()
    for i in range(10):
        inbox.put(i, 100)
    woken_at: list[tuple[int, int]] = []

    async def reader() -> None:
        await inbox.wait_room(4, 700)
        woken_at.append((len(inbox), inbox.nbytes))

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            while not woken_at:
                inbox.receive_nowait()
                await trio.testing.wait_all_tasks_blocked()
    assert woken_at == [(4, 400)]
    # Room already: returns at once (still a checkpoint).
    with trio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(trio.Cancelled):
            await inbox.wait_room(4, 400)
    await inbox.wait_room(4, 400)
    # A cancelled wait leaves nothing behind: later receives do not try to wake it.
    with trio.move_on_after(0.01):
        await inbox.wait_room(0, 0)
    assert inbox.receive_nowait() == 6


async def test_receive_of_a_queued_item_is_a_cancel_point_and_yields_every_few_calls() -> None:
    """A receive that finds an item queued skips its schedule point, except every
    SCHEDULE_EVERY-th in a row: a consumer that keeps finding items never starves others;
    a cancelled consumer is told at once and loses nothing."""
    from trio_enchannel._util import SCHEDULE_EVERY

    inbox = Inbox[int]()
    n = SCHEDULE_EVERY * 5
    for i in range(n):
        inbox.put(i)
    await assert_yields_every_few_calls(inbox.receive, n, SCHEDULE_EVERY)
    inbox.put(99)
    with trio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(trio.Cancelled):
            await inbox.receive()
    assert inbox.receive_nowait() == 99


async def test_put_within_keeps_only_what_fits_and_hands_over_to_a_waiting_receiver() -> None:
    inbox = Inbox[int]()
    assert inbox.put_within(1, 10, 2, 25)
    assert inbox.put_within(2, 10, 2, 25)
    assert not inbox.put_within(3, 1, 2, 25)  # two items queued: full in items
    assert inbox.receive_nowait() == 1
    assert not inbox.put_within(3, 16, 2, 25)  # 10 + 16 bytes: full in bytes
    assert (len(inbox), inbox.nbytes) == (1, 10)
    assert inbox.receive_nowait() == 2
    got: list[int] = []

    async def consumer() -> None:
        got.append(await inbox.receive())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        await trio.testing.wait_all_tasks_blocked()
        assert inbox.put_within(4, 10, 1, 10)  # handed over directly, nothing queued
    assert got == [4] and (len(inbox), inbox.nbytes) == (0, 0)
    inbox.close()
    assert inbox.put_within(5, 1, 1, 1)  # closed: accepted and discarded, like put()
    assert len(inbox) == 0
