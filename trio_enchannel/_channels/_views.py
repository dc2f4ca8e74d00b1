"""The user-facing views of a :class:`~._core.ChannelHub` (what :class:`Channels` and
:class:`RemoteChannels` expose): per-channel endpoints, the multiplexed view, and the ZeroMQ
channels' statistics snapshot. ``ChannelStatistics`` and ``RejectedMessage`` are shared with the
kernel side and live in the I/O layer; they are re-exported here."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager

import attrs
import trio

from .._errors import UsageError
from .._io._fanout import Subscription, SubscriptionOverflow
from .._io._inbox import Inbox
from .._io._overflow import IOPUB_BUFFER_BYTES, IOPUB_BUFFER_SIZE
from .._io._stats import ChannelStatistics, PerChannel, RejectedMessage
from .._validate import check_int
from .._wire._message import ChannelName, Message
from ._core import ChannelHub
from ._heartbeat import HeartbeatStatistics

__all__ = [
    "ChannelStatistics",
    "ChannelsStatistics",
    "IOPubChannel",
    "MessageChannel",
    "MultiplexedChannel",
    "RejectedMessage",
]


@attrs.frozen
class ChannelsStatistics(PerChannel):
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


class _Endpoint:
    """What the per-channel views share: a name, the hub's buffer and counters."""

    def __init__(self, hub: ChannelHub, name: ChannelName) -> None:
        self._hub = hub
        self._name: ChannelName = name
        self._closed = False

    @property
    def name(self) -> ChannelName:
        """The channel's name."""
        return self._name

    def statistics(self) -> ChannelStatistics:
        """A snapshot of this channel's counters (see :class:`ChannelStatistics`)."""
        return self._hub.statistics(self._name)

    def _receiver(self) -> Inbox[Message]:
        if self._closed:
            raise trio.ClosedResourceError(f"the {self._name} channel was closed")
        receiver: Inbox[Message] | None = self._hub.receivers.get(self._name)
        if receiver is None:
            raise UsageError(
                f"open_channels(multiplexed=True) delivers every message to ch.multiplexed; "
                f"ch.{self._name} can only send"
            )
        return receiver

    async def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self._hub.closed_views.add(self._name)
            receiver = self._hub.receivers.get(self._name)
            if receiver is not None:
                receiver.close()
        await trio.lowlevel.checkpoint()


def is_view(view: object, hub: ChannelHub, name: ChannelName) -> bool:
    """Whether ``view`` is ``ch.<name>`` of the channels whose hub is ``hub`` (for
    ``set_consumer``: a wrapper that intercepts ``receive()`` is never bypassed)."""
    return isinstance(view, _Endpoint) and view._hub is hub and view._name == name


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
        await self._hub.send_on(self._name, value)

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
        self._hub.send_on_nowait(self._name, value)

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
        return self._hub.counters[self._name].dropped

    def dropped_for(self, msg_id: str) -> int:
        """How many IOPub messages caused by the request ``msg_id`` (their parent) never
        reached this channel's consumer: dropped because the buffer was full (see
        :attr:`dropped`), or rejected as malformed although authentic (see
        :class:`~trio_enchannel.MalformedMessage`). :class:`~trio_enchannel.KernelClient`
        puts it in :attr:`ExecuteResult.iopub_dropped
        <trio_enchannel.ExecuteResult.iopub_dropped>`. The counts of the last 4,096
        requests that lost messages are remembered."""
        return self._hub.counters[self._name].dropped_for(msg_id)

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
        return await self._hub.counters[self._name].wait_dropped(above)

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
        return self._hub.fanout.subscribe(
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

    def __init__(self, hub: ChannelHub) -> None:
        self._hub = hub
        self._closed = False

    def _receiver(self) -> Inbox[Message]:
        if self._closed:
            raise trio.ClosedResourceError("the multiplexed channel was closed")
        receiver: Inbox[Message] | None = self._hub.multiplexed_receiver
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
        await self._hub.send(value)

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
            receiver = self._hub.multiplexed_receiver
            if receiver is not None:
                receiver.close()
        await trio.lowlevel.checkpoint()
