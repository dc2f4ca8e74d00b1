"""The hand-over buffer between a channel's reader task(s) and its consumers.

A deque with Trio waiting on both ends, cheaper than a memory channel for this one job:

* the reader appends whatever it decided to keep (:meth:`Inbox.put` never waits: the bounds
  and the overflow policy belong to the reader, which knows the channel);
* a consumer waiting in :meth:`Inbox.receive` gets the next item handed directly; otherwise
  the item is queued and counted in messages and bytes;
* a reader that must not go on (the ``"wait"`` policy) parks in :meth:`Inbox.wait_room` until
  consumers have drained the queue to a low mark: hysteresis, so a reader that has stopped
  resumes for a whole batch, not for one message per consumed message.

:meth:`Inbox.receive` is always a cancel point, and cancelling it never loses an item (an item
is taken from the queue only by the task that returns it). It is a schedule point when it
waits; one that finds an item queued yields only every few calls
(:class:`~trio_enchannel._util.ScheduleBudget`).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Generic, TypeVar

import outcome
import trio
from trio.lowlevel import Abort, RaiseCancelT, Task

from .._util import ScheduleBudget

__all__ = ["Inbox"]

T = TypeVar("T")


class Inbox(Generic[T]):
    """A FIFO of items from ``senders`` reader tasks to any number of consumer tasks.

    Args:
        senders: how many readers put items; the inbox ends (:class:`trio.EndOfChannel`
            once drained) after each of them called :meth:`close_sender`.
    """

    def __init__(self, *, senders: int = 1) -> None:
        self._queue: deque[tuple[T, int]] = deque()
        self._nbytes = 0
        self._senders = senders
        self._closed = False
        self._error: Callable[[], BaseException] | None = None
        self._receivers: OrderedDict[Task, None] = OrderedDict()
        # Readers waiting for room: task -> (at most this many items, at most this many bytes).
        self._room: dict[Task, tuple[int, int]] = {}
        self._room_len = -1  # the largest length mark among them (-1: nobody waits)
        self._budget = ScheduleBudget()

    def __repr__(self) -> str:
        return f"<Inbox {len(self._queue)} queued, {self._nbytes} bytes>"

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def nbytes(self) -> int:
        """The bytes queued (as counted by the readers)."""
        return self._nbytes

    @property
    def closed(self) -> bool:
        """Whether the receiving side was closed (later items are refused)."""
        return self._closed

    # -- the reader's side ---------------------------------------------------------------------

    def put(self, item: T, nbytes: int = 0) -> bool:
        """Hand ``item`` to a waiting consumer or queue it; never waits.

        Returns:
            ``False`` when the receiving side is closed (the item is not kept).
        """
        if self._closed:
            return False
        receivers = self._receivers
        if receivers:
            task, _ = receivers.popitem(last=False)
            trio.lowlevel.reschedule(task, outcome.Value(item))
            return True
        self._queue.append((item, nbytes))
        self._nbytes += nbytes
        return True

    def put_within(self, item: T, nbytes: int, max_items: int, max_bytes: int) -> bool:
        """:meth:`put` ``item`` if fewer than ``max_items`` items are queued and ``nbytes``
        more fit in ``max_bytes``; never waits.

        Returns:
            ``False`` when it does not fit (the item is not kept; the caller applies its
            policy), ``True`` otherwise (also when the receiving side is closed: the item is
            then discarded, as by :meth:`put`).
        """
        queue = self._queue
        if len(queue) >= max_items or self._nbytes + nbytes > max_bytes:
            return False
        if self._closed:
            return True
        receivers = self._receivers
        if receivers:
            task, _ = receivers.popitem(last=False)
            trio.lowlevel.reschedule(task, outcome.Value(item))
            return True
        queue.append((item, nbytes))
        self._nbytes += nbytes
        return True

    async def wait_room(self, max_items: int, max_bytes: int) -> None:
        """Wait until at most ``max_items`` items and ``max_bytes`` bytes are queued, or the
        receiving side is closed. A checkpoint."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._closed or (len(self._queue) <= max_items and self._nbytes <= max_bytes):
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        task = trio.lowlevel.current_task()
        self._room[task] = (max_items, max_bytes)
        self._room_len = max(self._room_len, max_items)

        def abort(_: RaiseCancelT) -> Abort:
            self._room.pop(task, None)
            self._update_room_mark()
            return Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def close_sender(self) -> None:
        """One reader is done; after the last one, consumers meet :class:`trio.EndOfChannel`
        once the queue is drained."""
        self._senders -= 1
        if self._senders <= 0 and not self._queue:
            self._wake_receivers(trio.EndOfChannel())

    def fail(self, error: Callable[[], BaseException]) -> None:
        """Nothing more can ever arrive, for the reason ``error()`` (a fresh exception per
        call): once the queue is drained, consumers get it instead of waiting (or instead of
        :class:`trio.EndOfChannel`). Idempotent (the first reason stays)."""
        if self._error is not None or self._closed:
            return
        self._error = error
        if not self._queue:
            receivers = self._receivers
            while receivers:
                task, _ = receivers.popitem(last=False)
                trio.lowlevel.reschedule(task, outcome.Error(error()))

    def interrupt(self, error: BaseException) -> None:
        """Wake the consumers waiting now with ``error``; the inbox stays open (later items
        are received as before)."""
        self._wake_receivers(error)

    # -- the consumers' side ---------------------------------------------------------------

    def receive_nowait(self) -> T:
        """The next item if one is queued.

        Raises:
            trio.WouldBlock: nothing is queued.
            trio.EndOfChannel: every reader is done and everything was received.
            trio.ClosedResourceError: the receiving side was closed.
            Exception: the inbox failed (:meth:`fail`) and everything was received.
        """
        if self._closed:
            raise trio.ClosedResourceError("this channel was closed")
        queue = self._queue
        if queue:
            item, nbytes = queue.popleft()
            self._nbytes -= nbytes
            if len(queue) <= self._room_len:
                self._wake_room()
            return item
        if self._error is not None:
            raise self._error()
        if self._senders <= 0:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    async def receive(self) -> T:
        """The next item, waiting for one if needed; a cancel point (and a schedule point when
        it waits, or every :data:`~trio_enchannel._util.SCHEDULE_EVERY` calls).

        Raises:
            trio.EndOfChannel: every reader is done and everything was received.
            trio.ClosedResourceError: the receiving side was (or gets) closed.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        queue = self._queue
        if queue and not self._closed:  # receive_nowait's usual case, inline
            item, nbytes = queue.popleft()
            self._nbytes -= nbytes
            if len(queue) <= self._room_len:
                self._wake_room()
            if self._budget.spend():
                await trio.lowlevel.cancel_shielded_checkpoint()
            return item
        if self._closed or self._senders <= 0 or self._error is not None:
            item = self.receive_nowait()  # or raise
            if self._budget.spend():
                await trio.lowlevel.cancel_shielded_checkpoint()
            return item
        self._budget.reset()
        task = trio.lowlevel.current_task()
        self._receivers[task] = None

        def abort(_: RaiseCancelT) -> Abort:
            self._receivers.pop(task, None)
            return Abort.SUCCEEDED

        value: T = await trio.lowlevel.wait_task_rescheduled(abort)
        return value

    def close(self) -> None:
        """Close the receiving side: queued items are discarded, waiting consumers get
        :class:`trio.ClosedResourceError`, waiting readers are released. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        self._nbytes = 0
        self._wake_receivers(trio.ClosedResourceError("this channel was closed"))
        self._wake_room()

    # -- internals -------------------------------------------------------------------------

    def _wake_receivers(self, error: BaseException) -> None:
        receivers = self._receivers
        while receivers:
            task, _ = receivers.popitem(last=False)
            trio.lowlevel.reschedule(task, outcome.Error(error))

    def _update_room_mark(self) -> None:
        self._room_len = max((items for items, _ in self._room.values()), default=-1)

    def _wake_room(self) -> None:
        queued, nbytes, closed = len(self._queue), self._nbytes, self._closed
        for task, (max_items, max_bytes) in list(self._room.items()):
            if closed or (queued <= max_items and nbytes <= max_bytes):
                del self._room[task]
                trio.lowlevel.reschedule(task)
        self._update_room_mark()
