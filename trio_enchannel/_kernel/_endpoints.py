"""The kernel side's endpoints (ROUTER channels, the IOPub publisher) and its statistics."""

from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import Literal

import attrs
import trio

from .._errors import LocalProtocolError
from .._io._errors import PeerNotConnected
from .._io._stats import ChannelStatistics, Counters, PerChannel
from .._io._zmq import TrioSocket
from .._wire._message import Message
from .._wire._session import Session

__all__ = [
    "IOPubPublisher",
    "KernelChannelsStatistics",
    "KernelEndpoint",
    "RouterChannel",
]

RouterChannel = Literal["shell", "control", "stdin"]

_Frames = Sequence[bytes | bytearray | memoryview]


@attrs.frozen
class KernelChannelsStatistics(PerChannel):
    """A snapshot of the counters of :class:`~trio_enchannel.KernelChannels`.

    Attributes:
        shell, control, stdin, iopub: per-channel :class:`~trio_enchannel.ChannelStatistics`
            (the same record the client side uses; IOPub only sends).
        subscriptions: IOPub subscription events seen (each new subscriber counts once per
            topic it subscribes to).
        unsubscriptions: IOPub unsubscription events seen.
        welcomes_sent: ``iopub_welcome`` messages published.
        heartbeats_echoed: heartbeat pings echoed back.
        heartbeats_dropped: heartbeat pings dropped while the heartbeat was paused.
        rejects_unreported: rejects that did not fit in the ``rejects`` buffer.
    """

    shell: ChannelStatistics
    control: ChannelStatistics
    stdin: ChannelStatistics
    iopub: ChannelStatistics
    subscriptions: int = 0
    unsubscriptions: int = 0
    welcomes_sent: int = 0
    heartbeats_echoed: int = 0
    heartbeats_dropped: int = 0
    rejects_unreported: int = 0


class KernelEndpoint(trio.abc.Channel[Message]):
    """The kernel end of a shell, control or stdin channel; reachable as
    :attr:`KernelChannels.shell`, :attr:`~KernelChannels.control` and
    :attr:`~KernelChannels.stdin`.

    :meth:`receive` yields the clients' requests (with :attr:`Message.identities` set to the
    sender's routing identities and :attr:`Message.channel` to this channel); :meth:`send`
    routes a message to the client named by its identities. Build replies with
    :meth:`Session.reply` (or :meth:`KernelChannels.reply`), which copies them from the request.

    Any number of tasks may send concurrently; a message is sent whole or not at all.
    """

    def __init__(
        self,
        name: RouterChannel,
        socket: TrioSocket,
        session: Session,
        counters: Counters,
        receive_channel: trio.MemoryReceiveChannel[Message],
    ) -> None:
        self._name: RouterChannel = name
        self._socket = socket
        self._session = session
        self._counters = counters
        self._receive = receive_channel
        self._closed = False

    def __repr__(self) -> str:
        return f"<KernelEndpoint {self._name}{' closed' if self._closed else ''}>"

    @property
    def name(self) -> RouterChannel:
        """The channel's name, ``"shell"``, ``"control"`` or ``"stdin"``."""
        return self._name

    def statistics(self) -> ChannelStatistics:
        """This channel's counters."""
        stats = self._receive.statistics()
        limits = (int(stats.max_buffer_size), 0)
        return self._counters.snapshot(self._name, stats.current_buffer_used, 0, limits)

    async def send(self, value: Message) -> None:
        """Send ``value`` to the client named by its identities.

        A message whose :attr:`~Message.channel` is ``None`` is sent here as is; one that names
        another channel is refused. On shell and control a client that is no longer
        connected silently loses the message (ZeroMQ ROUTER semantics); stdin refuses it with
        :class:`trio.BrokenResourceError`.

        Raises:
            LocalProtocolError: the message names another channel, has no routing
                identities, or cannot be encoded.
            trio.ClosedResourceError: the endpoint or the kernel channels are closed.
            trio.BrokenResourceError: the socket failed.
        """
        if value.channel is not None and value.channel != self._name:
            raise LocalProtocolError(
                f"{value.msg_type} message is meant for the {value.channel} channel, "
                f"not {self._name}"
            )
        if not value.identities:
            raise LocalProtocolError(
                f"{value.msg_type} message on {self._name} has no routing identities; build it "
                "with session.reply(request) or pass identities=request.identities"
            )
        await self.send_frames(self._session.serialize(value))

    async def send_frames(self, frames: _Frames) -> None:
        """Send raw frames as they are, bypassing the codec (for fault injection in tests).

        The first frame(s) must be the routing identities of the target client.

        Raises:
            LocalProtocolError: ``frames`` is empty.
            PeerNotConnected: on stdin, no client with that identity is connected (stdin
                refuses unroutable messages instead of dropping them silently); a
                :class:`trio.BrokenResourceError` too.
            trio.ClosedResourceError: the endpoint or the kernel channels are closed.
            trio.BrokenResourceError: the socket failed.
        """
        if self._closed:
            raise trio.ClosedResourceError(f"the {self._name} endpoint is closed")
        try:
            await self._socket.send_multipart(frames)
        except trio.BrokenResourceError as exc:
            if getattr(exc.__cause__, "errno", None) == errno.EHOSTUNREACH:
                raise PeerNotConnected(
                    f"the client {bytes(frames[0])!r} is not connected to {self._name}"
                ) from exc
            raise
        self._counters.sent += 1

    async def receive(self) -> Message:
        """The next request from any client.

        Raises:
            trio.EndOfChannel: the kernel channels were closed and every message was taken.
            trio.ClosedResourceError: this endpoint was closed.
        """
        return await self._receive.receive()

    def receive_nowait(self) -> Message:
        """The next request if one is waiting.

        Raises:
            trio.WouldBlock: no request is waiting.
            trio.EndOfChannel: the kernel channels were closed and every message was taken.
            trio.ClosedResourceError: this endpoint was closed.
        """
        return self._receive.receive_nowait()

    async def aclose(self) -> None:
        """Stop using this endpoint: further sends and receives raise ClosedResourceError.

        Idempotent. The socket itself stays open until the kernel channels close; requests
        that arrive afterwards are counted as ``discarded``.
        """
        self._close()
        await trio.lowlevel.checkpoint()

    def _close(self) -> None:
        self._closed = True
        self._receive.close()


class IOPubPublisher(trio.abc.SendChannel[Message]):
    """The kernel end of IOPub, reachable as :attr:`KernelChannels.iopub`: broadcasts messages
    to every subscribed client.

    Each message is sent under a topic (the frames before the delimiter): its
    :attr:`~Message.identities` when set, else ``kernel.<session id>.<msg_type>``. Like every
    PUB socket, IOPub never blocks: a subscriber that cannot keep up loses messages.
    """

    def __init__(self, socket: TrioSocket, session: Session, counters: Counters) -> None:
        self._socket = socket
        self._session = session
        self._counters = counters
        self._closed = False

    def __repr__(self) -> str:
        return f"<IOPubPublisher{' closed' if self._closed else ''}>"

    def statistics(self) -> ChannelStatistics:
        """IOPub's counters (``sent``)."""
        return self._counters.snapshot("iopub", 0, 0, (0, 0))

    def topic(self, msg_type: str) -> bytes:
        """The default topic of a message of type ``msg_type``."""
        return f"kernel.{self._session.session_id}.{msg_type}".encode()

    async def send(self, value: Message) -> None:
        """Publish ``value`` to every subscriber.

        Raises:
            LocalProtocolError: the message names another channel or cannot be encoded.
            trio.ClosedResourceError: the publisher or the kernel channels are closed.
            trio.BrokenResourceError: the socket failed.
        """
        if value.channel is not None and value.channel != "iopub":
            raise LocalProtocolError(
                f"{value.msg_type} message is meant for the {value.channel} channel, not iopub"
            )
        identities = value.identities or (self.topic(value.msg_type),)
        await self.send_frames(self._session.serialize(value, identities))

    async def send_frames(self, frames: _Frames) -> None:
        """Publish raw frames as they are, bypassing the codec (for fault injection).

        Raises:
            LocalProtocolError: ``frames`` is empty.
            trio.ClosedResourceError: the publisher or the kernel channels are closed.
            trio.BrokenResourceError: the socket failed.
        """
        if self._closed:
            raise trio.ClosedResourceError("the iopub publisher is closed")
        await self._socket.send_multipart(frames)
        self._counters.sent += 1

    async def aclose(self) -> None:
        """Stop publishing: further sends raise ClosedResourceError. Idempotent."""
        self._closed = True
        await trio.lowlevel.checkpoint()
