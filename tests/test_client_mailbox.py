"""The inbox of a request in flight (trio_enchannel._client._queue.Mailbox): one receiver,
items handed over directly, nothing lost to cancellation, closing wakes the receiver."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_enchannel._client._queue import Mailbox


async def test_items_arrive_in_order_kept_or_handed_over() -> None:
    box: Mailbox[int] = Mailbox()
    assert box.put_nowait(1) and box.put_nowait(2)
    assert len(box) == 2
    assert await box.receive() == 1
    assert box.receive_nowait() == 2
    with pytest.raises(trio.WouldBlock):
        box.receive_nowait()
    got: list[int] = []

    async def receiver() -> None:
        got.append(await box.receive())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await trio.testing.wait_all_tasks_blocked()
        assert box.put_nowait(3)  # handed to the waiting receiver, not kept
        assert len(box) == 0
    assert got == [3]


async def test_a_cancelled_receive_loses_nothing_and_leaves_no_waiter() -> None:
    box: Mailbox[int] = Mailbox()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(box.receive)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert box.put_nowait(1)  # kept: nobody waits any more
    assert len(box) == 1
    assert await box.receive() == 1


async def test_a_receive_under_an_expired_scope_raises_cancelled_and_leaves_no_waiter() -> None:
    # Waiting is the cancel point: a receive that starts already cancelled never waits,
    # and a later receive finds the mailbox free and the item kept.
    box: Mailbox[int] = Mailbox()
    with trio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(trio.Cancelled):
            await box.receive()
        with pytest.raises(trio.Cancelled):
            await box.receive()
    assert box.put_nowait(1)  # kept: nobody waits
    assert await box.receive() == 1
    with trio.CancelScope() as scope:  # an item kept: still a cancel point
        box.put_nowait(2)
        scope.cancel()
        with pytest.raises(trio.Cancelled):
            await box.receive()
    assert box.receive_nowait() == 2


async def test_one_receiver_at_a_time() -> None:
    box: Mailbox[int] = Mailbox()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(box.receive)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await box.receive()
        box.put_nowait(1)


async def test_the_producer_error_comes_after_the_kept_items() -> None:
    box: Mailbox[int] = Mailbox()
    box.put_nowait(1)
    box.close_producer(KeyError("gone"))
    box.close_producer(ValueError("ignored: idempotent"))
    assert not box.put_nowait(2)  # refused once the producer closed
    assert await box.receive() == 1
    with pytest.raises(KeyError):
        await box.receive()
    ended: Mailbox[int] = Mailbox()
    ended.close_producer()
    with pytest.raises(trio.EndOfChannel):
        ended.receive_nowait()


async def test_closing_wakes_the_receiver_and_refuses_later_items() -> None:
    box: Mailbox[int] = Mailbox()
    errors: list[BaseException] = []

    async def receiver() -> None:
        try:
            await box.receive()
        except trio.ClosedResourceError as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await trio.testing.wait_all_tasks_blocked()
        box.close()
    assert len(errors) == 1
    assert not box.put_nowait(1)  # a late reply: the dispatcher keeps it as unclaimed
    box.close()  # idempotent
    with pytest.raises(trio.ClosedResourceError):
        box.receive_nowait()
    left: Mailbox[int] = Mailbox()
    left.put_nowait(1)
    left.put_nowait(2)
    assert left.drain_nowait() == [1, 2]
    assert left.drain_nowait() == [] and len(left) == 0
