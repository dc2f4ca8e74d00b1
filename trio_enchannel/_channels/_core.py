"""The transport-neutral channel core: what :class:`~trio_enchannel.Channels` (ZeroMQ) and
:class:`~trio_enchannel.RemoteChannels` (websocket) share.

A :class:`ChannelHub` holds, for the four channels, the buffers received messages wait in
(one per channel, or one shared in multiplexed mode), the counters, the bounds and overflow
policy, the IOPub subscriptions, the rejected messages, the statistics and the checks every
send makes. A transport owns a hub and keeps only what is really its own: how it reads (the
ZeroMQ sockets with their per-socket backpressure and receive fast path, or the one websocket
with its reconnection) and how it writes (the two callables the hub is given).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable
from typing import TypedDict

import trio

from .._errors import LocalProtocolError, RemoteProtocolError
from .._io._fanout import Fanout
from .._io._inbox import Inbox
from .._io._overflow import BufferOptions, DropLog, must_drop
from .._io._stats import ChannelStatistics, Counters, Frame, Rejects
from .._wire._message import CHANNEL_NAMES, ChannelName, Message

__all__ = ["ChannelHub", "HubStatistics", "check_message", "routed_channel"]

#: The channels a client sends on.
SENDING: tuple[ChannelName, ...] = ("shell", "control", "stdin")

logger = logging.getLogger("trio_enchannel.channels")


def check_message(name: ChannelName, msg: object) -> Message:
    """``msg`` itself, checked for sending on channel ``name``.

    Raises:
        TypeError: ``msg`` is not a :class:`Message`.
        LocalProtocolError: ``msg`` names another channel.
    """
    if not isinstance(msg, Message):
        raise TypeError(f"expected a Message, got {type(msg).__name__}")
    if msg.channel is not None and msg.channel != name:
        raise LocalProtocolError(
            f"a {msg.msg_type} message meant for {msg.channel!r} cannot go on {name!r}"
        )
    return msg


def routed_channel(msg: object) -> ChannelName:
    """The channel ``msg`` names, which a client may send on.

    Raises:
        TypeError: ``msg`` is not a :class:`Message`.
        LocalProtocolError: ``msg.channel`` is ``None`` or ``"iopub"``.
    """
    if not isinstance(msg, Message):
        raise TypeError(f"expected a Message, got {type(msg).__name__}")
    name = msg.channel
    if name is None or name not in SENDING:
        raise LocalProtocolError(
            f"cannot route a {msg.msg_type} message with channel={name!r}: "
            "it must be 'shell', 'control' or 'stdin'"
        )
    return name


class HubStatistics(TypedDict):
    """What every transport's statistics snapshot takes from its hub (the transport adds its
    own: the heartbeat's, the websocket's): ``Snapshot(**hub.snapshot(), ...)``."""

    shell: ChannelStatistics
    control: ChannelStatistics
    stdin: ChannelStatistics
    iopub: ChannelStatistics
    rejects_unreported: int


class ChannelHub:
    """The buffers, counters, bounds, overflow policy, rejects and statistics of the four
    channels of one connection, whatever carries them.

    Args:
        options: the bounds and policies (checked by the opener).
        send: sends a checked message on a channel (the transport's way).
        send_nowait: the same now, or raises :class:`trio.WouldBlock`.
        opener: the opener's name, for messages that point to its options.
        source: what rejection warnings say the messages came from.
    """

    def __init__(
        self,
        options: BufferOptions,
        *,
        send: Callable[[ChannelName, Message], Awaitable[None]],
        send_nowait: Callable[[ChannelName, Message], None],
        opener: str,
        source: str = "",
    ) -> None:
        self.options = options
        self.send_on = send
        self.send_on_nowait = send_nowait
        self.counters = {name: Counters() for name in CHANNEL_NAMES}
        #: The channels whose view the user closed (``await ch.shell.aclose()``).
        self.closed_views: set[ChannelName] = set()
        # Received messages wait for their consumer in one inbox per channel, or in one shared
        # inbox in multiplexed mode (the views find them in receivers / multiplexed_receiver).
        self.inboxes: dict[ChannelName, Inbox[Message]] = {}
        self.receivers: dict[ChannelName, Inbox[Message]] = {}
        self.multiplexed_receiver: Inbox[Message] | None = None
        if options.multiplexed:
            shared = Inbox[Message](senders=len(CHANNEL_NAMES))
            self.multiplexed_receiver = shared
            self.inboxes = dict.fromkeys(CHANNEL_NAMES, shared)
        else:
            for name in CHANNEL_NAMES:
                self.inboxes[name] = self.receivers[name] = Inbox[Message]()
        # A channel's sole consumer, when it takes every message synchronously from the
        # reader (set_consumer): the buffer is then bypassed.
        self.consumers: dict[ChannelName, Callable[[Message], None]] = {}
        # IOPub subscriptions (ch.iopub.subscribe): copies handed over by the reader.
        self.fanout = Fanout()
        self.counters["iopub"].fanout = self.fanout
        self.drop_log = DropLog(logger, opener)
        self.rejects = Rejects(
            logger,
            self.counters,
            options.rejects_buffer_size,
            disabled=f"ch.rejects needs {opener}(..., report_rejects=True)",
            source=source,
        )

    def limits(self, name: ChannelName) -> tuple[int, int]:
        """(messages, bytes) the buffer of channel ``name`` holds; bytes 0: no byte bound."""
        return self.options.limits(name)

    def drops(self, name: ChannelName) -> bool:
        """Whether channel ``name``'s reader drops (rather than waits) when it is full."""
        return name == "iopub" and self.options.iopub_overflow == "drop"

    def set_consumer(self, name: ChannelName, consumer: Callable[[Message], None] | None) -> bool:
        """Make ``consumer`` channel ``name``'s sole consumer (``None``: stop): the reader
        calls it with each message in place of queueing it. What the buffer already holds is
        handed to it first, in order, so nothing overtakes. The consumer must not block or
        raise, and keeps its own bounds (the buffer's bound and overflow policy no longer
        apply: nothing waits in it). Subscriptions still get their copies first; the
        buffer's end or failure still reaches its receivers.

        Returns:
            ``False`` (nothing changed) in multiplexed mode, or when the buffer's receiving
            side is closed.
        """
        inbox = self.receivers.get(name)
        if inbox is None or inbox.closed:
            return False
        if consumer is None:
            self.consumers.pop(name, None)
            return True
        while len(inbox):
            consumer(inbox.receive_nowait())
        self.consumers[name] = consumer
        return True

    def statistics(self, name: ChannelName) -> ChannelStatistics:
        """A snapshot of channel ``name``'s counters and buffer."""
        inbox = self.inboxes[name]
        return self.counters[name].snapshot(name, len(inbox), inbox.nbytes, self.limits(name))

    def snapshot(self) -> HubStatistics:
        """A snapshot of every channel (:meth:`statistics`) and of the unreported rejects."""
        return HubStatistics(
            shell=self.statistics("shell"),
            control=self.statistics("control"),
            stdin=self.statistics("stdin"),
            iopub=self.statistics("iopub"),
            rejects_unreported=self.rejects.unreported,
        )

    async def send(self, msg: Message) -> None:
        """Send ``msg`` on the channel it names (see :func:`routed_channel`), unless the user
        closed that channel's view (:class:`trio.ClosedResourceError`)."""
        await self.send_on(self._open_channel(msg), msg)

    def send_nowait(self, msg: Message) -> None:
        """Send ``msg`` on the channel it names now, or raise :class:`trio.WouldBlock`."""
        self.send_on_nowait(self._open_channel(msg), msg)

    def _open_channel(self, msg: Message) -> ChannelName:
        name = routed_channel(msg)
        if name in self.closed_views:
            raise trio.ClosedResourceError(f"the {name} channel was closed")
        return name

    def reject(
        self, name: ChannelName | None, frames: tuple[Frame, ...], error: RemoteProtocolError
    ) -> None:
        """Count, log and report one rejected message (see :class:`Rejects`)."""
        self.rejects.reject(name, frames, error)

    async def deliver(self, name: ChannelName, msg: Message, nbytes: int) -> None:
        """Hand one received message (of wire size ``nbytes``) over to channel ``name``'s
        buffer, applying its overflow policy: ``"drop"`` counts and drops what does not
        fit; otherwise a full buffer makes the caller (the reader) wait until it is half
        empty. IOPub subscriptions get their copy first.

        The ZeroMQ readers apply the same policy inline, per socket (see ``_Reader``).
        """
        counters = self.counters[name]
        if name == "iopub" and self.fanout.subscriptions:
            self.fanout.publish(msg, nbytes)
        inbox = self.inboxes[name]
        consumer = self.consumers.get(name)
        if consumer is not None:
            if inbox.closed:
                counters.discarded += 1
            else:
                consumer(msg)
            return
        max_items, max_bytes = self.limits(name)
        if self.drops(name):
            if must_drop(len(inbox), inbox.nbytes, nbytes, msg.msg_type, max_items, max_bytes):
                counters.drop(msg.parent_id)
                self.drop_log.dropped(name, max_items, max_bytes)
                return
        else:
            max_bytes = max_bytes or sys.maxsize
            if not inbox.closed and (len(inbox) >= max_items or inbox.nbytes >= max_bytes):
                counters.stalls += 1
                await inbox.wait_room(max_items // 2, max_bytes // 2)
        if not inbox.put(msg, nbytes):
            counters.discarded += 1

    def end(self) -> None:
        """Nothing more will arrive: every buffer ends (:class:`trio.EndOfChannel` once
        drained), and so does the rejects stream."""
        for name in CHANNEL_NAMES:  # the shared inbox of multiplexed mode: once per channel
            self.inboxes[name].close_sender()
        self.rejects.close()

    def fail(self, error: Callable[[], BaseException]) -> None:
        """Nothing can ever arrive, for the reason ``error()``: consumers get it once their
        buffer is drained (see :meth:`Inbox.fail`)."""
        for inbox in {id(i): i for i in self.inboxes.values()}.values():
            inbox.fail(error)

    def any_received(self) -> bool:
        """Whether any valid message arrived on any channel."""
        return any(c.received for c in self.counters.values())
