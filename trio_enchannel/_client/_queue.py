"""Queues fed synchronously by the dispatcher: a bounded receive channel that never blocks
its producer (when full it drops the oldest item and counts it), and a request's unbounded
mailbox with a single receiver.

Used for messages nobody is obliged to read (unclaimed replies and IOPub broadcasts, comm
messages): the dispatcher that feeds it (from a channel's reader) must never wait on a slow or
absent reader, and the reader must be able to tell that it missed something
(:attr:`DroppingQueue.dropped`).
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable
from typing import Generic, TypeVar

import outcome
import trio
from trio.lowlevel import Abort, RaiseCancelT, Task

from .._errors import ConfigurationError

__all__ = ["DroppingQueue", "Mailbox"]

T = TypeVar("T")


def _take(
    items: collections.deque[T] | None,
    consumer_closed: bool,
    producer_closed: bool,
    error: BaseException | None,
) -> T:
    """``receive_nowait`` of both queues: the oldest item, or raise what their state says
    (see :meth:`DroppingQueue.receive_nowait`)."""
    if consumer_closed:
        raise trio.ClosedResourceError("this receive channel was closed")
    if items:
        return items.popleft()
    if producer_closed:
        if error is not None:
            raise error
        raise trio.EndOfChannel
    raise trio.WouldBlock


class DroppingQueue(trio.abc.ReceiveChannel[T], Generic[T]):
    """A receive channel fed synchronously, bounded by dropping its oldest items.

    Args:
        max_size: how many undelivered items to keep (``math.inf`` for no bound).
        check: called by :meth:`receive` before it waits on an empty, open queue; it raises
            when no item can be expected now (the producer's source is known to be gone
            for the moment, e.g. a dead kernel), so the receiver fails at once instead of
            waiting. See also :meth:`fail_waiters`.
    """

    def __init__(
        self, max_size: float = math.inf, *, check: Callable[[], None] | None = None
    ) -> None:
        if max_size < 1:
            raise ConfigurationError("max_size must be at least 1")
        self.max_size = max_size
        self._check = check
        self._items: collections.deque[T] = collections.deque()
        # Receivers waiting for an item, oldest first: the producer hands the next item to
        # the first of them directly (it wakes with the item, not to look for one).
        self._waiters: collections.OrderedDict[Task, None] = collections.OrderedDict()
        self._producer_closed = False
        self._producer_error: BaseException | None = None
        self._consumer_closed = False
        self.dropped = 0
        """How many items were dropped because the queue was full."""
        self.delivered = 0
        """How many items were put into the queue (kept or later dropped)."""

    # -- producer side ------------------------------------------------------------------

    def put_nowait(self, item: T) -> bool:
        """Append ``item``; drop the oldest item when full. Return False (and drop ``item``)
        when the queue is closed."""
        if self._producer_closed or self._consumer_closed:
            self.dropped += 1
            return False
        self.delivered += 1
        waiters = self._waiters
        if waiters:
            task, _ = waiters.popitem(last=False)
            trio.lowlevel.reschedule(task, outcome.Value(item))
            return True
        self._items.append(item)
        if len(self._items) > self.max_size:
            self._items.popleft()
            self.dropped += 1
        return True

    def close_producer(self, error: BaseException | None = None) -> None:
        """No more items: once the queue is drained, receivers get
        :exc:`trio.EndOfChannel` (or ``error`` when one is given). Idempotent."""
        if self._producer_closed:
            return
        self._producer_closed = True
        self._producer_error = error
        self._wake_all(lambda: error if error is not None else trio.EndOfChannel())

    def fail_waiters(self, error: BaseException) -> None:
        """Wake every receiver waiting now with ``error``; the queue stays open
        (later items are delivered as before). For a producer whose source is gone for the
        moment: nobody should wait for an item that cannot come."""
        self._wake_all(lambda: error)

    @property
    def producer_closed(self) -> bool:
        """Whether :meth:`close_producer` was called."""
        return self._producer_closed

    def __len__(self) -> int:
        return len(self._items)

    def drain_nowait(self) -> list[T]:
        """Remove and return every buffered item (for a producer taking its items back)."""
        items = list(self._items)
        self._items.clear()
        return items

    # -- consumer side ------------------------------------------------------------------

    def receive_nowait(self) -> T:
        """The oldest item, without waiting.

        Raises:
            trio.WouldBlock: the queue is empty but still open.
            trio.EndOfChannel: the producer finished and everything was received.
            trio.ClosedResourceError: this receive channel was closed.
            Exception: the error the producer finished with, if any.
        """
        return _take(
            self._items, self._consumer_closed, self._producer_closed, self._producer_error
        )

    async def receive(self) -> T:
        """The oldest item, waiting for one if needed.

        Raises:
            trio.EndOfChannel: the producer finished and everything was received.
            trio.ClosedResourceError: this receive channel was closed (also while waiting).
            Exception: the error the producer finished with, if any; or, when the queue
                is empty, what ``check`` raised or :meth:`fail_waiters` woke it with.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._items or self._producer_closed or self._consumer_closed:
            item = self.receive_nowait()  # or raise
            await trio.lowlevel.cancel_shielded_checkpoint()
            return item
        if self._check is not None:
            try:
                self._check()
            except BaseException:
                await trio.lowlevel.cancel_shielded_checkpoint()
                raise
        # Wait for put_nowait to hand an item over: waking up with it, this task needs no
        # further schedule point (waiting was one), and a cancellation that comes after the
        # hand-over finds the item already returned, never lost.
        task = trio.lowlevel.current_task()
        self._waiters[task] = None

        def abort(_: RaiseCancelT) -> Abort:
            self._waiters.pop(task, None)
            return Abort.SUCCEEDED

        value: T = await trio.lowlevel.wait_task_rescheduled(abort)
        return value

    def close(self) -> None:
        """Close the receive side: pending items are discarded, waiting receivers get
        :exc:`trio.ClosedResourceError`. Idempotent."""
        if self._consumer_closed:
            return
        self._consumer_closed = True
        self.dropped += len(self._items)
        self._items.clear()
        self._wake_all(lambda: trio.ClosedResourceError("this receive channel was closed"))

    async def aclose(self) -> None:
        """Close the receive side (see :meth:`close`)."""
        self.close()
        await trio.lowlevel.checkpoint()

    def _wake_all(self, error: Callable[[], BaseException]) -> None:
        waiters = self._waiters
        while waiters:
            task, _ = waiters.popitem(last=False)
            trio.lowlevel.reschedule(task, outcome.Error(error()))


class Mailbox(Generic[T]):
    """A request's inbox: fed synchronously, unbounded, read by one task at a time (the
    task that awaits the request).

    What a request in flight costs matters (one is made per round trip), so this keeps only
    what one receiver needs: no waiter queue, no buffer until a second item waits. Its
    receiver semantics are :class:`DroppingQueue`'s (the producer hands an item to the
    waiting receiver directly; a cancellation after the hand-over finds the item returned,
    never lost).
    """

    __slots__ = ("_consumer_closed", "_error", "_items", "_producer_closed", "_waiter")

    def __init__(self) -> None:
        self._items: collections.deque[T] | None = None
        self._waiter: Task | None = None
        self._producer_closed = False
        self._error: BaseException | None = None
        self._consumer_closed = False

    def put_nowait(self, item: T) -> bool:
        """Hand ``item`` to the waiting receiver, or keep it. Return False (and drop
        ``item``) when the mailbox is closed."""
        if self._producer_closed or self._consumer_closed:
            return False
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            trio.lowlevel.reschedule(waiter, outcome.Value(item))
            return True
        items = self._items
        if items is None:
            items = self._items = collections.deque()
        items.append(item)
        return True

    def close_producer(self, error: BaseException | None = None) -> None:
        """No more items: once the kept ones are received, the receiver gets
        :exc:`trio.EndOfChannel` (or ``error`` when one is given). Idempotent."""
        if self._producer_closed:
            return
        self._producer_closed = True
        self._error = error
        self._wake(error if error is not None else trio.EndOfChannel())

    def __len__(self) -> int:
        return len(self._items) if self._items else 0

    def drain_nowait(self) -> list[T]:
        """Remove and return every kept item."""
        items = self._items
        if not items:
            return []
        self._items = None
        return list(items)

    def receive_nowait(self) -> T:
        """The oldest item, without waiting.

        Raises:
            trio.WouldBlock: the mailbox is empty but still open.
            trio.EndOfChannel: the producer finished and everything was received.
            trio.ClosedResourceError: the mailbox was closed.
            Exception: the error the producer finished with, if any.
        """
        return _take(self._items, self._consumer_closed, self._producer_closed, self._error)

    async def receive(self) -> T:
        """The oldest item, waiting for one if needed.

        Raises:
            trio.EndOfChannel: the producer finished and everything was received.
            trio.ClosedResourceError: the mailbox was closed (also while waiting).
            trio.BusyResourceError: another task is already waiting.
            Exception: the error the producer finished with, if any.
        """
        if self._items or self._producer_closed or self._consumer_closed:
            await trio.lowlevel.checkpoint_if_cancelled()
            item = self.receive_nowait()  # or raise
            await trio.lowlevel.cancel_shielded_checkpoint()
            return item
        if self._waiter is not None:
            await trio.lowlevel.checkpoint_if_cancelled()
            raise trio.BusyResourceError("another task is already receiving")
        # Waiting is itself the cancel point (Trio delivers a pending cancellation as the
        # task parks, through abort below): no separate check before it.
        task = self._waiter = trio.lowlevel.current_task()

        def abort(_: RaiseCancelT) -> Abort:
            if self._waiter is task:
                self._waiter = None
            return Abort.SUCCEEDED

        value: T = await trio.lowlevel.wait_task_rescheduled(abort)
        return value

    def close(self) -> None:
        """Close the receive side: kept items are discarded, a waiting receiver gets
        :exc:`trio.ClosedResourceError`. Idempotent."""
        if self._consumer_closed:
            return
        self._consumer_closed = True
        self._items = None
        if self._waiter is not None:  # (the error is made only for a waiter: once per request)
            self._wake(trio.ClosedResourceError("this receive channel was closed"))

    def _wake(self, error: BaseException) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            trio.lowlevel.reschedule(waiter, outcome.Error(error))
