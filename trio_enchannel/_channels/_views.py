"""The user-facing views of :class:`Channels`: per-channel endpoints, the multiplexed view,
rejected-message records and statistics snapshots."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol

import attrs
import trio

from .._errors import RemoteProtocolError, UsageError
from .._io._fanout import Fanout, Subscription, SubscriptionOverflow
from .._io._overflow import IOPUB_BUFFER_BYTES, IOPUB_BUFFER_SIZE
from .._io._zmq import Frame
from .._validate import check_int
from .._wire._message import CHANNEL_NAMES, ChannelName, Message
from ._heartbeat import HeartbeatStatistics

if TYPE_CHECKING:
    from ._channels import Channels

__all__ = [
    "ChannelStatistics",
    "ChannelsStatistics",
    "IOPubChannel",
    "MessageChannel",
    "MultiplexedChannel",
    "RejectedMessage",
]


@attrs.frozen
class RejectedMessage:
    """A message that failed verification or decoding (see :attr:`Channels.rejects`).

    Attributes:
        channel: the channel it arrived on.
        error: why it was rejected; ``error.reason`` is the counted reason.
        frames: the raw frames as received.
    """

    channel: ChannelName
    error: RemoteProtocolError
    frames: tuple[Frame, ...] = attrs.field(repr=False)

    @property
    def reason(self) -> str:
        """The rejection reason (``error.reason``)."""
        return self.error.reason


@attrs.frozen
class ChannelStatistics:
    """A snapshot of one channel's counters.

    Attributes:
        name: the channel.
        received: valid messages received (delivered or not).
        sent: messages sent.
        rejected: rejected messages by reason (``"invalid_signature"``, ``"bad_json"``, ...).
        queued: messages received and waiting for the consumer.
        buffer_size: the capacity of the buffer they wait in, in messages.
        stalls: times the reader found the buffer full and waited for the consumer.
        dropped: messages discarded because the buffer was full (IOPub with
            ``iopub_overflow="drop"``, the default, only).
        discarded: messages that arrived after the consumer closed this channel.
        queued_bytes: the wire size of the queued messages, in bytes.
        buffer_bytes: the capacity of the buffer in bytes (``0``: bounded in messages only).
        subscriptions: IOPub subscriptions open now (:meth:`IOPubChannel.subscribe`).
        subscriber_dropped: copies that IOPub subscriptions (open or closed since) dropped
            because their own buffer was full; not included in ``dropped``, which counts
            the channel's own buffer.
        invalid_utf8: messages accepted (and delivered) although a JSON part held bytes that
            are not valid UTF-8: those were decoded as U+FFFD replacement characters, as
            jupyter_client does (a kernel's ``print('\\udcff')`` sends such a byte).
    """

    name: ChannelName
    received: int = 0
    sent: int = 0
    rejected: Mapping[str, int] = attrs.field(factory=dict)
    queued: int = 0
    buffer_size: int = 0
    stalls: int = 0
    dropped: int = 0
    discarded: int = 0
    queued_bytes: int = 0
    buffer_bytes: int = 0
    subscriptions: int = 0
    subscriber_dropped: int = 0
    invalid_utf8: int = 0

    @property
    def rejected_total(self) -> int:
        """All rejected messages, whatever the reason."""
        return sum(self.rejected.values())


@attrs.frozen
class ChannelsStatistics:
    """A snapshot of every channel's counters, returned by :meth:`Channels.statistics`.

    Attributes:
        shell, control, stdin, iopub: per-channel :class:`ChannelStatistics`.
        heartbeat: the heartbeat monitor's :class:`HeartbeatStatistics`.
        rejects_unreported: rejects that did not fit in :attr:`Channels.rejects`' buffer.
    """

    shell: ChannelStatistics
    control: ChannelStatistics
    stdin: ChannelStatistics
    iopub: ChannelStatistics
    heartbeat: HeartbeatStatistics
    rejects_unreported: int = 0

    def __getitem__(self, name: ChannelName) -> ChannelStatistics:
        """The statistics of channel ``name``.

        Raises:
            KeyError: not a channel name.
        """
        if name not in CHANNEL_NAMES:
            raise KeyError(name)
        value: ChannelStatistics = getattr(self, name)
        return value

    @property
    def rejected_total(self) -> int:
        """Rejected messages over all channels."""
        return sum(self[name].rejected_total for name in CHANNEL_NAMES)


#: How many requests' drop counts :meth:`_Counters.drop` remembers (the oldest are forgotten).
DROPS_REMEMBERED = 4096


class _Counters:
    """One channel's counters. Assigning ``dropped`` wakes :meth:`wait_dropped`."""

    __slots__ = (
        "_drop_event",
        "_dropped",
        "_dropped_by_parent",
        "discarded",
        "fanout",
        "invalid_utf8",
        "received",
        "rejected",
        "sent",
        "stalls",
    )

    def __init__(self) -> None:
        self.received = 0
        self.sent = 0
        self.rejected: dict[str, int] = {}
        self.stalls = 0
        self._dropped = 0
        self._dropped_by_parent: collections.OrderedDict[str, int] = collections.OrderedDict()
        self.discarded = 0
        self.invalid_utf8 = 0
        self._drop_event: trio.Event | None = None
        self.fanout: Fanout | None = None  # IOPub's subscriptions, set by the owner

    def drop(self, parent_id: str | None) -> None:
        """Count one dropped message, and remember it against the request that caused it
        (its parent's ``msg_id``), so that request's result can say it is incomplete."""
        self.lost(parent_id)
        self.dropped += 1

    def lost(self, parent_id: str | None) -> None:
        """Remember one message of the request ``parent_id`` that will never be delivered
        (dropped, or rejected although authentic)."""
        if parent_id is not None:
            by_parent = self._dropped_by_parent
            by_parent[parent_id] = by_parent.get(parent_id, 0) + 1
            by_parent.move_to_end(parent_id)
            if len(by_parent) > DROPS_REMEMBERED:
                by_parent.popitem(last=False)

    def dropped_for(self, parent_id: str) -> int:
        """How many messages of the request ``parent_id`` were lost (see :meth:`lost`)."""
        return self._dropped_by_parent.get(parent_id, 0)

    def __repr__(self) -> str:
        return (
            f"<_Counters received={self.received} sent={self.sent} dropped={self._dropped} "
            f"stalls={self.stalls} discarded={self.discarded} rejected={self.rejected}>"
        )

    def snapshot(
        self, name: ChannelName, queued: int, queued_bytes: int, limits: tuple[int, int]
    ) -> ChannelStatistics:
        """These counters as a :class:`ChannelStatistics`, with the buffer's state: its
        ``queued`` messages and ``queued_bytes``, and its ``limits`` (messages, bytes)."""
        return ChannelStatistics(
            name=name,
            received=self.received,
            sent=self.sent,
            rejected=dict(self.rejected),
            queued=queued,
            buffer_size=limits[0],
            stalls=self.stalls,
            dropped=self._dropped,
            discarded=self.discarded,
            queued_bytes=queued_bytes,
            buffer_bytes=limits[1],
            subscriptions=len(self.fanout.subscriptions) if self.fanout is not None else 0,
            subscriber_dropped=self.fanout.dropped if self.fanout is not None else 0,
            invalid_utf8=self.invalid_utf8,
        )

    def repaired(self) -> int:
        """Count one message accepted with invalid UTF-8 replaced; return the count (callers
        log the first ten, then at powers of two)."""
        self.invalid_utf8 += 1
        return self.invalid_utf8

    @property
    def dropped(self) -> int:
        return self._dropped

    @dropped.setter
    def dropped(self, value: int) -> None:
        self._dropped = value
        event = self._drop_event
        if event is not None:
            self._drop_event = None
            event.set()

    async def wait_dropped(self, above: int) -> int:
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._dropped > above:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return self._dropped
        while self._dropped <= above:
            if self._drop_event is None:
                self._drop_event = trio.Event()
            await self._drop_event.wait()
        return self._dropped


class _Receiving(Protocol):
    """What the views need from the buffer their owner hands messages over in (an
    :class:`~trio_enchannel._io._inbox.Inbox`, or a :class:`trio.MemoryReceiveChannel`)."""

    async def receive(self) -> Message: ...

    def receive_nowait(self) -> Message: ...

    def close(self) -> None: ...


class _Endpoint:
    """What the per-channel and multiplexed views share: a name, a socket, counters."""

    def __init__(self, owner: Channels, name: ChannelName) -> None:
        self._owner = owner
        self._name: ChannelName = name
        self._closed = False

    @property
    def name(self) -> ChannelName:
        """The channel's name."""
        return self._name

    def statistics(self) -> ChannelStatistics:
        """A snapshot of this channel's counters (see :class:`ChannelStatistics`)."""
        return self._owner._channel_statistics(self._name)

    def _receiver(self) -> _Receiving:
        if self._closed:
            raise trio.ClosedResourceError(f"the {self._name} channel was closed")
        receiver: _Receiving | None = self._owner._receivers.get(self._name)
        if receiver is None:
            raise UsageError(
                f"open_channels(multiplexed=True) delivers every message to ch.multiplexed; "
                f"ch.{self._name} can only send"
            )
        return receiver

    async def _close(self) -> None:
        if not self._closed:
            self._closed = True
            receiver = self._owner._receivers.get(self._name)
            if receiver is not None:
                receiver.close()
        await trio.lowlevel.checkpoint()


class MessageChannel(_Endpoint, trio.abc.Channel[Message]):
    """A two-way channel (``shell``, ``control`` or ``stdin``) of :class:`Channels`.

    Follows trio's channel conventions: :meth:`receive` raises :class:`trio.EndOfChannel`
    once the channels are closed and every queued message was received, and
    :class:`trio.ClosedResourceError` after :meth:`aclose`. ``async for msg in channel``
    iterates until the channels close. Cancelling a :meth:`receive` never loses a message.
    """

    async def send(self, value: Message) -> None:
        """Sign and send ``value`` on this channel, waiting while ZeroMQ's queue is full.

        The message must have been built by :attr:`Channels.session` (for its session id)
        with ``channel`` either ``None`` or this channel's name.

        Raises:
            LocalProtocolError: the message is meant for another channel or cannot be
                encoded (nothing is sent).
            TypeError: ``value`` is not a :class:`Message`.
            trio.ClosedResourceError: this channel or the channels were closed.
            trio.BrokenResourceError: the socket failed.
        """
        if self._closed:
            raise trio.ClosedResourceError(f"the {self._name} channel was closed")
        await self._owner._send(self._name, value)

    def send_nowait(self, value: Message) -> None:
        """Sign and send ``value`` now, or raise :class:`trio.WouldBlock`.

        Raises:
            trio.WouldBlock: ZeroMQ's queue is full (nothing was sent).
            LocalProtocolError: see :meth:`send`.
            TypeError: ``value`` is not a :class:`Message`.
            trio.ClosedResourceError: this channel or the channels were closed.
            trio.BrokenResourceError: the socket failed.
        """
        if self._closed:
            raise trio.ClosedResourceError(f"the {self._name} channel was closed")
        self._owner._send_nowait(self._name, value)

    async def receive(self) -> Message:
        """The next message received on this channel, waiting for one if needed.

        Raises:
            trio.EndOfChannel: the channels are closed and every message was received.
            trio.ClosedResourceError: this channel was closed with :meth:`aclose`.
            UsageError: the channels deliver to :attr:`Channels.multiplexed` instead.
        """
        return await self._receiver().receive()

    def receive_nowait(self) -> Message:
        """The next message if one is waiting.

        Raises:
            trio.WouldBlock: no message is waiting.
            trio.EndOfChannel: the channels are closed and every message was received.
            trio.ClosedResourceError: this channel was closed with :meth:`aclose`.
            UsageError: the channels deliver to :attr:`Channels.multiplexed` instead.
        """
        return self._receiver().receive_nowait()

    async def aclose(self) -> None:
        """Stop using this channel: later sends and receives raise
        :class:`trio.ClosedResourceError`, later arrivals are discarded (and counted).
        Idempotent; the other channels stay open."""
        await self._close()


class IOPubChannel(_Endpoint, trio.abc.ReceiveChannel[Message]):
    """The receive-only IOPub channel of :class:`Channels` (same conventions as
    :class:`MessageChannel`)."""

    async def receive(self) -> Message:
        """The next IOPub message, waiting for one if needed.

        Raises:
            trio.EndOfChannel: the channels are closed and every message was received.
            trio.ClosedResourceError: this channel was closed with :meth:`aclose`.
            UsageError: the channels deliver to :attr:`Channels.multiplexed` instead.
        """
        return await self._receiver().receive()

    def receive_nowait(self) -> Message:
        """The next IOPub message if one is waiting.

        Raises:
            trio.WouldBlock: no message is waiting.
            trio.EndOfChannel: the channels are closed and every message was received.
            trio.ClosedResourceError: this channel was closed with :meth:`aclose`.
            UsageError: the channels deliver to :attr:`Channels.multiplexed` instead.
        """
        return self._receiver().receive_nowait()

    @property
    def dropped(self) -> int:
        """How many IOPub messages were dropped so far because this channel's buffer was full
        (the consumer was slower than the kernel): ``statistics().dropped``.

        Compare it before and after receiving to learn that messages are missing; see
        :meth:`wait_dropped` to be told.
        """
        return self._owner._counters[self._name].dropped

    def dropped_for(self, msg_id: str) -> int:
        """How many IOPub messages caused by the request ``msg_id`` (their parent) never
        reached this channel's consumer: dropped because the buffer was full (see
        :attr:`dropped`), or rejected as malformed although authentic (see
        :class:`~trio_enchannel.MalformedMessage`). :class:`~trio_enchannel.KernelClient`
        puts it in :attr:`ExecuteResult.iopub_dropped
        <trio_enchannel.ExecuteResult.iopub_dropped>`. The counts of the last 4,096
        requests that lost messages are remembered."""
        return self._owner._counters[self._name].dropped_for(msg_id)

    async def wait_dropped(self, above: int = 0) -> int:
        """Wait until more than ``above`` IOPub messages have been dropped (at once if that
        is already the case), e.g. in a task that warns the user or marks outputs as
        incomplete.

        Returns:
            The number of messages dropped so far (:attr:`dropped`).

        Raises:
            TypeError: ``above`` is not an int.
        """
        check_int("above", above)
        return await self._owner._counters[self._name].wait_dropped(above)

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
        """Receive a copy of every IOPub message that arrives while the block is open::

            async with ch.iopub.subscribe("status") as statuses:
                async for msg in statuses:
                    print(msg.content["execution_state"])

        Any number of subscriptions may be open at once, from any tasks, next to
        :meth:`receive` (or a :class:`~trio_enchannel.KernelClient` reading this channel):
        each gets its own copy, in arrival order, and takes nothing away from the others.
        Each has its own buffer and drops (and counts, :attr:`Subscription.dropped`) what
        does not fit: a slow subscriber never slows the reader, the kernel or anybody else.
        Copies are taken as the reader receives the messages, before this channel's own
        buffer policy (``iopub_overflow``) applies, so they also work with
        ``multiplexed=True`` and after :meth:`aclose`.

        The stream ends (:class:`trio.EndOfChannel`, once what is queued was received)
        when the channels close; for remote channels, with
        :class:`~trio_enchannel.KernelDied` when the kernel is gone for good. A local kernel
        that dies does not end it: the channels may outlive the process (a restart), and
        the death is reported by the heartbeat, the launcher and the client.

        Args:
            msg_types: keep only messages of this type (``"status"``) or these types.
            parent: keep only messages caused by this request (its ``msg_id``, or the
                request :class:`~trio_enchannel.Message` itself).
            predicate: keep only messages for which it returns true; called synchronously
                by the reader (keep it short). If it raises, the subscription ends with
                that exception.
            buffer_size: how many messages may wait to be received (default 10,000).
            buffer_bytes: how many bytes (wire size) may wait to be received (default
                32 MiB).
            overflow: ``"drop"`` (the newest message, as ``iopub_overflow="drop"``;
                ``status`` messages are kept up to 1,000 beyond the bound) or
                ``"drop_oldest"`` (see :data:`~trio_enchannel.SubscriptionOverflow`).

        Raises:
            ConfigurationError: an invalid bound or policy (checked at the call).
            TypeError: a filter of the wrong type (checked at the call).
            trio.ClosedResourceError: the channels are closed (when the block is entered).
            KernelDied: the remote kernel is gone (when the block is entered).
        """
        fanout: Fanout = self._owner._iopub_fanout
        return fanout.subscribe(
            msg_types,
            parent=parent,
            predicate=predicate,
            buffer_size=buffer_size,
            buffer_bytes=buffer_bytes,
            overflow=overflow,
        )

    async def aclose(self) -> None:
        """Stop receiving IOPub: later receives raise :class:`trio.ClosedResourceError` and
        later arrivals are discarded (and counted). Idempotent. Open subscriptions
        (:meth:`subscribe`) are not affected."""
        await self._close()


class MultiplexedChannel(trio.abc.Channel[Message]):
    """Every channel in one: receives every message of every channel (each tagged with its
    :attr:`Message.channel`), sends each message on the channel it names.

    Receiving needs ``open_channels(..., multiplexed=True)``; sending always works.
    """

    def __init__(self, owner: Channels) -> None:
        self._owner = owner
        self._closed = False

    def _receiver(self) -> _Receiving:
        if self._closed:
            raise trio.ClosedResourceError("the multiplexed channel was closed")
        receiver: _Receiving | None = self._owner._multiplexed_receiver
        if receiver is None:
            raise UsageError(
                "receiving from ch.multiplexed needs open_channels(..., multiplexed=True)"
            )
        return receiver

    async def send(self, value: Message) -> None:
        """Send ``value`` on the channel named by ``value.channel``.

        Raises:
            LocalProtocolError: ``value.channel`` is ``None`` or ``"iopub"``, or the message
                cannot be encoded.
            TypeError: ``value`` is not a :class:`Message`.
            trio.ClosedResourceError: the channels were closed.
            trio.BrokenResourceError: the socket failed.
        """
        if self._closed:
            raise trio.ClosedResourceError("the multiplexed channel was closed")
        await self._owner.send(value)

    async def receive(self) -> Message:
        """The next message of any channel, in arrival order within each channel.

        Raises:
            trio.EndOfChannel: the channels are closed and every message was received.
            trio.ClosedResourceError: this view was closed with :meth:`aclose`.
            UsageError: the channels were not opened with ``multiplexed=True``.
        """
        return await self._receiver().receive()

    def receive_nowait(self) -> Message:
        """The next message of any channel if one is waiting.

        Raises:
            trio.WouldBlock: no message is waiting.
            trio.EndOfChannel: the channels are closed and every message was received.
            trio.ClosedResourceError: this view was closed with :meth:`aclose`.
            UsageError: the channels were not opened with ``multiplexed=True``.
        """
        return self._receiver().receive_nowait()

    async def aclose(self) -> None:
        """Stop using this view (later arrivals are discarded and counted). Idempotent."""
        if not self._closed:
            self._closed = True
            receiver = self._owner._multiplexed_receiver
            if receiver is not None:
                receiver.close()
        await trio.lowlevel.checkpoint()
