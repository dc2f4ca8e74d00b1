"""IOPub for many listeners: independent, filtered, bounded copies of every IOPub message.

A :class:`Fanout` belongs to one IOPub reader (the ZeroMQ IOPub reader task, the websocket
reader of remote channels). Its :meth:`Fanout.subscribe` opens a :class:`Subscription`: a
receive channel of its own, bounded and with its own overflow policy and drop count, that
gets a copy of every IOPub message arriving while it is open and passing its filters. The
single-consumer ``ch.iopub`` stream and the client's routing are untouched: a subscription
adds a copy, it never takes a message away.

The rules that keep one slow listener from hurting anybody else:

* :meth:`Fanout.publish` never waits: each subscription's buffer is an
  :class:`~trio_enchannel._io._inbox.Inbox` whose ``put`` hands the message to a waiting receiver
  or queues it. When the buffer is full, the subscription's policy drops a message and counts
  it (on the subscription, on the fanout, in the channel statistics) and warns. There is no
  ``"wait"`` policy: the reader is shared by ``ch.iopub``, the client's dispatcher and every
  other subscription, and over ZeroMQ a reader that stops lets the kernel drop messages
  unseen at its high-water mark.
* Without a subscription the reader's cost is one falsy check
  (``if fanout.subscriptions:``); with N it is one dict lookup (the subscriptions that want
  this message type), their other filter checks and at most N hand-overs.
* The subscription list is copied on write: :meth:`publish` iterates a snapshot, and
  subscribing or unsubscribing (from any task, at any time) never disturbs a hand-over.
* A filter predicate runs synchronously in the reader; if it raises, that subscription ends
  with the exception (its receiver sees it once the queue is drained) and the reader goes
  on.
* :meth:`Fanout.end` ends every subscription: with :class:`trio.EndOfChannel` when the
  channels close, or with an error (:class:`~trio_enchannel.KernelDied`) when the kernel is
  gone for good; either way after the messages already queued are received.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Literal, Protocol, runtime_checkable

import attrs
import trio

from .._errors import ConfigurationError
from .._wire._message import Message
from ._inbox import Inbox
from ._overflow import IOPUB_BUFFER_BYTES, IOPUB_BUFFER_SIZE, DropLog, must_drop

__all__ = [
    "Fanout",
    "Subscribable",
    "Subscription",
    "SubscriptionOverflow",
    "SubscriptionStatistics",
]

logger = logging.getLogger("trio_enchannel.channels")

#: What a :class:`Subscription` does when its buffer is full and a new message matches:
#: ``"drop"`` (the default, the rule of ``iopub_overflow="drop"``: the new message is
#: dropped and counted; ``status`` messages are kept up to 1,000 beyond the bound) or
#: ``"drop_oldest"`` (the oldest queued messages are dropped and counted to make room: a
#: listener that wants the latest state rather than the first). There is no ``"wait"``: a
#: subscriber never slows the reader.
SubscriptionOverflow = Literal["drop", "drop_oldest"]


@attrs.frozen
class SubscriptionStatistics:
    """A snapshot of one :class:`Subscription`'s counters.

    Attributes:
        matched: messages that passed the filters while the subscription was open (each is
            either delivered, queued, or counted in ``dropped``).
        dropped: messages dropped because the buffer was full (see
            :data:`SubscriptionOverflow`).
        queued: messages waiting to be received.
        queued_bytes: their wire size, in bytes.
        buffer_size: the buffer's bound in messages.
        buffer_bytes: the buffer's bound in bytes.
        overflow: the overflow policy.
    """

    matched: int
    dropped: int
    queued: int
    queued_bytes: int
    buffer_size: int
    buffer_bytes: int
    overflow: SubscriptionOverflow


class Subscription(trio.abc.ReceiveChannel[Message]):
    """An independent, filtered copy of the IOPub stream; what ``subscribe()`` yields.

    Receive from it as from any Trio receive channel (``async for msg in sub``).
    :meth:`receive` raises :class:`trio.EndOfChannel` once the channels closed and every
    queued message was received, the error the stream ended with (e.g.
    :class:`~trio_enchannel.KernelDied` when a remote kernel is gone, or the exception a
    ``predicate`` raised) in the same place, and :class:`trio.ClosedResourceError` after the
    ``async with`` block (or :meth:`aclose`). Cancelling a :meth:`receive` never loses a
    message. Messages it misses because its buffer is full are counted in :attr:`dropped`.
    """

    def __init__(
        self,
        fanout: Fanout,
        msg_types: frozenset[str] | None,
        parent: str | None,
        predicate: Callable[[Message], bool] | None,
        buffer_size: int,
        buffer_bytes: int,
        overflow: SubscriptionOverflow,
    ) -> None:
        self._fanout = fanout
        self._msg_types = msg_types
        self._parent = parent
        self._predicate = predicate
        self._filtered = parent is not None or predicate is not None
        self._max_items = buffer_size
        self._max_bytes = buffer_bytes
        self._overflow: SubscriptionOverflow = overflow
        self._drop_oldest = overflow == "drop_oldest"
        self._inbox = Inbox[Message]()
        self._error: BaseException | None = None
        self._ended = False
        self._matched = 0
        self._dropped = 0
        self._drop_lot = trio.lowlevel.ParkingLot()
        self._drop_log = DropLog(logger, "subscribe", option="buffer_size")
        # Set by an owner that knows when nothing can arrive for now (a client that knows
        # the kernel is dead): raises instead of letting receive() wait on an empty queue.
        self._check: Callable[[], None] | None = None

    def __repr__(self) -> str:
        state = "closed" if self._inbox.closed else "ended" if self._ended else "open"
        return (
            f"<Subscription {state} {len(self._inbox)} queued, {self._dropped} dropped, "
            f"msg_types={sorted(self._msg_types) if self._msg_types else None}>"
        )

    # -- the consumer's side -----------------------------------------------------------

    async def receive(self) -> Message:
        """The next matching IOPub message, waiting for one if needed.

        Raises:
            trio.EndOfChannel: the channels closed and every queued message was received.
            KernelDied: the kernel is gone for good (remote channels), and every queued
                message was received.
            Exception: what the ``predicate`` raised (it ended the subscription).
            trio.ClosedResourceError: the subscription was closed (its block exited).
        """
        check, inbox = self._check, self._inbox
        if check is not None and not self._ended and not len(inbox) and not inbox.closed:
            await trio.lowlevel.checkpoint()
            check()
        try:
            return await inbox.receive()
        except trio.EndOfChannel:
            if self._error is not None:
                raise self._error from None
            raise

    def receive_nowait(self) -> Message:
        """The next matching IOPub message if one is queued.

        Raises:
            trio.WouldBlock: nothing is queued.
            trio.EndOfChannel, KernelDied, Exception, trio.ClosedResourceError: as for
                :meth:`receive`.
        """
        try:
            return self._inbox.receive_nowait()
        except trio.EndOfChannel:
            if self._error is not None:
                raise self._error from None
            raise

    async def aclose(self) -> None:
        """Stop the subscription now: it gets no more copies, queued messages are discarded,
        later receives raise :class:`trio.ClosedResourceError`. Idempotent; leaving the
        ``subscribe()`` block does it."""
        self._fanout._remove(self)
        self._inbox.close()
        await trio.lowlevel.checkpoint()

    @property
    def dropped(self) -> int:
        """How many matching messages this subscription dropped because its buffer was full
        (its consumer was slower than the kernel)."""
        return self._dropped

    async def wait_dropped(self, above: int = 0) -> int:
        """Wait until more than ``above`` messages have been dropped (at once if so).

        Returns:
            The number dropped so far (:attr:`dropped`).
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while self._dropped <= above:
            await self._drop_lot.park()
        await trio.lowlevel.cancel_shielded_checkpoint()
        return self._dropped

    def statistics(self) -> SubscriptionStatistics:
        """A snapshot of this subscription's counters."""
        return SubscriptionStatistics(
            matched=self._matched,
            dropped=self._dropped,
            queued=len(self._inbox),
            queued_bytes=self._inbox.nbytes,
            buffer_size=self._max_items,
            buffer_bytes=self._max_bytes,
            overflow=self._overflow,
        )

    def _interrupt(self, error: BaseException) -> None:
        """Wake the tasks waiting in :meth:`receive` now with ``error`` (the owner learnt that
        nothing can arrive for now); the subscription stays open."""
        self._inbox.interrupt(error)

    # -- the reader's side -------------------------------------------------------------

    def _offer(self, msg: Message, nbytes: int) -> None:
        """Filter ``msg``; queue it, or drop (and count) by the policy. Never waits."""
        if self._filtered and not self._matches(msg):
            return
        self._matched += 1
        if not self._inbox.put_within(msg, nbytes, self._max_items, self._max_bytes):
            self._full(msg, nbytes)

    def _matches(self, msg: Message) -> bool:
        # (The message type was matched by Fanout.publish.)
        if self._parent is not None and msg.parent_header.get("msg_id") != self._parent:
            return False
        if self._predicate is not None:
            try:
                return bool(self._predicate(msg))
            except Exception as exc:
                logger.warning("an IOPub subscription's predicate raised %r: it ends", exc)
                self._end(exc)
                return False
        return True

    def _full(self, msg: Message, nbytes: int) -> None:
        """The buffer is full: apply the overflow policy."""
        inbox, max_items, max_bytes = self._inbox, self._max_items, self._max_bytes
        if self._drop_oldest:
            if nbytes > max_bytes:  # alone larger than the whole buffer
                self._count_drop()
                return
            while len(inbox) >= max_items or inbox.nbytes + nbytes > max_bytes:
                inbox.receive_nowait()  # the oldest (the queue is not empty here)
                self._count_drop()
        elif must_drop(len(inbox), inbox.nbytes, nbytes, msg.msg_type, max_items, max_bytes):
            self._count_drop()
            return
        inbox.put(msg, nbytes)

    def _count_drop(self) -> None:
        self._dropped += 1
        self._fanout.dropped += 1
        if self._drop_lot:
            self._drop_lot.unpark_all()
        self._drop_log.dropped("IOPub subscription", self._max_items, self._max_bytes)

    def _end(self, error: BaseException | None) -> None:
        """No more copies: the receiver meets ``error`` (or the end) once drained."""
        if self._ended:
            return
        self._ended = True
        self._error = error
        self._fanout._remove(self)
        self._inbox.close_sender()


@runtime_checkable
class Subscribable(Protocol):
    """What offers IOPub subscriptions: the IOPub view of both transports
    (:class:`~trio_enchannel.IOPubChannel`); the client requires it of its channels' ``iopub``
    for :meth:`~trio_enchannel.KernelClient.subscribe`."""

    def subscribe(
        self,
        msg_types: str | Iterable[str] | None = None,
        *,
        parent: str | Message | None = None,
        predicate: Callable[[Message], bool] | None = None,
        buffer_size: int = IOPUB_BUFFER_SIZE,
        buffer_bytes: int = IOPUB_BUFFER_BYTES,
        overflow: SubscriptionOverflow = "drop",
    ) -> AbstractAsyncContextManager[Subscription]: ...


class Fanout:
    """The IOPub subscriptions of one reader (see the module docstring).

    The reader calls ``if fanout.subscriptions: fanout.publish(msg, nbytes)`` for every
    IOPub message it keeps; the owner calls :meth:`end` when the stream can deliver nothing
    more.
    """

    def __init__(self) -> None:
        self.subscriptions: tuple[Subscription, ...] = ()
        """The open subscriptions (a new tuple on every change: falsy when there is none)."""
        # Who gets a message of a given type: rebuilt on every change, so that publish()
        # does one dict lookup instead of one type check per subscription.
        self._by_type: dict[str, tuple[Subscription, ...]] = {}
        self._any_type: tuple[Subscription, ...] = ()
        self.dropped = 0
        """Messages dropped by subscriptions (open or not) because their buffer was full."""
        self._ended = False
        self._error: BaseException | None = None

    def __repr__(self) -> str:
        return f"<Fanout {len(self.subscriptions)} subscriptions, {self.dropped} dropped>"

    def publish(self, msg: Message, nbytes: int) -> None:
        """Offer ``msg`` (of ``nbytes`` on the wire) to every subscription; never waits."""
        for sub in self._by_type.get(msg.header.msg_type, self._any_type):
            sub._offer(msg, nbytes)

    def end(self, error: BaseException | None = None) -> None:
        """End every subscription, now and to come: each receiver meets
        :class:`trio.EndOfChannel` (or ``error``) once it has received what is queued.
        Idempotent (the first call decides)."""
        if self._ended:
            return
        self._ended = True
        self._error = error
        for sub in self.subscriptions:
            sub._end(error)
        self._set(())

    def subscribe(
        self,
        msg_types: str | Iterable[str] | None = None,
        *,
        parent: str | Message | None = None,
        predicate: Callable[[Message], bool] | None = None,
        buffer_size: int = IOPUB_BUFFER_SIZE,
        buffer_bytes: int = IOPUB_BUFFER_BYTES,
        overflow: SubscriptionOverflow = "drop",
    ) -> AbstractAsyncContextManager[Subscription]:
        """Open a :class:`Subscription` for the block's duration.

        The arguments are checked at the call, before anything is registered; the
        subscription starts receiving when the block is entered and stops (its queue is
        discarded) when it exits, however it exits.

        Args:
            msg_types: keep only messages of this type (``"status"``) or these types.
            parent: keep only messages whose parent is this request (its ``msg_id``, or
                the request :class:`~trio_enchannel.Message` itself).
            predicate: keep only messages for which it returns true. It runs in the reader
                task, synchronously: keep it short. If it raises, the subscription ends with
                that exception.
            buffer_size: how many messages may wait to be received (at least 1).
            buffer_bytes: how many bytes (wire size) may wait to be received (at least 1).
            overflow: what to drop when the buffer is full (:data:`SubscriptionOverflow`).

        Raises:
            ConfigurationError: ``buffer_size``, ``buffer_bytes`` or ``overflow`` is
                invalid (``"wait"`` included: a subscriber may not slow the reader).
            TypeError: a filter has the wrong type.
        """
        types: frozenset[str] | None
        if msg_types is None:
            types = None
        elif isinstance(msg_types, str):
            types = frozenset((msg_types,))
        else:
            types = frozenset(msg_types)
            if not all(isinstance(t, str) for t in types):
                raise TypeError("msg_types must be a str or an iterable of str")
            if not types:
                raise ConfigurationError("msg_types is empty: nothing would match")
        if isinstance(parent, Message):
            parent = parent.msg_id
        elif parent is not None and not isinstance(parent, str):
            raise TypeError(f"parent must be a msg_id or a Message, not {type(parent).__name__}")
        if predicate is not None and not callable(predicate):
            raise TypeError(f"predicate must be callable, not {type(predicate).__name__}")
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or buffer_size < 1:
            raise ConfigurationError(f"buffer_size must be an int >= 1, not {buffer_size!r}")
        if isinstance(buffer_bytes, bool) or not isinstance(buffer_bytes, int) or buffer_bytes < 1:
            raise ConfigurationError(f"buffer_bytes must be an int >= 1, not {buffer_bytes!r}")
        if overflow not in ("drop", "drop_oldest"):
            asked: str = overflow
            hint = (
                " (a subscription never makes the reader wait: that would slow the kernel, "
                "ch.iopub and every other listener)"
                if asked == "wait"
                else ""
            )
            raise ConfigurationError(
                f"overflow must be 'drop' or 'drop_oldest', not {overflow!r}{hint}"
            )
        sub = Subscription(self, types, parent, predicate, buffer_size, buffer_bytes, overflow)
        return self._open(sub)

    @asynccontextmanager
    async def _open(self, sub: Subscription) -> AsyncIterator[Subscription]:
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._ended:
            if self._error is not None:
                raise self._error
            raise trio.ClosedResourceError("the channels are closed")
        self._set((*self.subscriptions, sub))
        try:
            yield sub
        finally:
            self._remove(sub)
            sub._inbox.close()

    def _remove(self, sub: Subscription) -> None:
        if sub in self.subscriptions:
            self._set(tuple(s for s in self.subscriptions if s is not sub))

    def _set(self, subscriptions: tuple[Subscription, ...]) -> None:
        """Replace the subscription list and the routes by message type (in order)."""
        types = {t for sub in subscriptions if sub._msg_types for t in sub._msg_types}
        self._by_type = {
            t: tuple(s for s in subscriptions if s._msg_types is None or t in s._msg_types)
            for t in types
        }
        self._any_type = tuple(s for s in subscriptions if s._msg_types is None)
        self.subscriptions = subscriptions
