"""The kernel end of the protocol: bound sockets for writing kernels and test doubles.

:func:`open_kernel_channels` binds a ROUTER socket for shell, control and stdin, an XPUB
socket for IOPub (greeting every new subscriber with ``iopub_welcome``) and a ROUTER heartbeat
echo, and hands out Trio channels of verified :class:`~trio_enchannel.Message` values. Requests
keep their routing identities, so a reply built with :meth:`Session.reply` goes back to the
client that asked.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

import attrs
import trio

from ._connection import ConnectionInfo
from ._errors import LocalProtocolError, RemoteProtocolError
from ._message import ChannelName, Message
from ._session import Session
from ._zmq import TrioSocket

__all__ = [
    "IOPubPublisher",
    "KernelChannelStatistics",
    "KernelChannels",
    "KernelEndpoint",
    "KernelReject",
    "KernelStatistics",
    "open_kernel_channels",
]

RouterChannel = Literal["shell", "control", "stdin"]
_ROUTER_CHANNELS: tuple[RouterChannel, ...] = ("shell", "control", "stdin")

_Frames = Sequence[bytes | bytearray | memoryview]


@attrs.frozen
class KernelReject:
    """A message a client sent that the kernel side rejected (never delivered as valid).

    Attributes:
        channel: the channel it arrived on.
        error: why it was rejected (``error.reason`` is the counted reason).
        identities: the routing identities of the client that sent it, when they could be
            read (useful to tell which client misbehaves).
    """

    channel: ChannelName
    error: RemoteProtocolError
    identities: tuple[bytes, ...] = ()


@attrs.frozen
class KernelChannelStatistics:
    """Counters of one kernel-side channel.

    Attributes:
        received: valid messages received.
        sent: messages sent (replies, broadcasts, input requests, raw frames).
        rejected: rejected incoming messages, by reason (``"invalid_signature"``, ...).
        buffered: received messages waiting to be taken by the application.
    """

    received: int = 0
    sent: int = 0
    rejected: Mapping[str, int] = attrs.field(factory=dict)
    buffered: int = 0

    @property
    def rejected_total(self) -> int:
        """The number of rejected messages, all reasons together."""
        return sum(self.rejected.values())


@attrs.frozen
class KernelStatistics:
    """A snapshot of the counters of :class:`KernelChannels`.

    Attributes:
        shell, control, stdin, iopub: per-channel counters.
        subscriptions: IOPub subscription events seen (each new subscriber counts once per
            topic it subscribes to).
        unsubscriptions: IOPub unsubscription events seen.
        welcomes_sent: ``iopub_welcome`` messages published.
        heartbeats_echoed: heartbeat pings echoed back.
        heartbeats_dropped: heartbeat pings dropped while the heartbeat was paused.
    """

    shell: KernelChannelStatistics
    control: KernelChannelStatistics
    stdin: KernelChannelStatistics
    iopub: KernelChannelStatistics
    subscriptions: int = 0
    unsubscriptions: int = 0
    welcomes_sent: int = 0
    heartbeats_echoed: int = 0
    heartbeats_dropped: int = 0

    @property
    def rejected_total(self) -> int:
        """Rejected messages over every channel."""
        return sum(s.rejected_total for s in (self.shell, self.control, self.stdin, self.iopub))


@attrs.define(eq=False)
class _Counters:
    received: int = 0
    sent: int = 0
    rejected: dict[str, int] = attrs.field(factory=dict)

    def snapshot(self, buffered: int) -> KernelChannelStatistics:
        return KernelChannelStatistics(
            received=self.received,
            sent=self.sent,
            rejected=dict(self.rejected),
            buffered=buffered,
        )


class KernelEndpoint(trio.abc.Channel[Message]):
    """The kernel end of a shell, control or stdin channel.

    :meth:`receive` yields the clients' requests (with :attr:`Message.identities` set to the
    sender's routing identities and :attr:`Message.channel` to this channel); :meth:`send`
    routes a message to the client named by its identities. Build replies with
    :meth:`Session.reply` (or :meth:`KernelChannels.reply`), which copies them from the request.

    Any number of tasks may send concurrently; a message is sent whole or not at all.
    """

    def __init__(
        self,
        owner: KernelChannels,
        name: RouterChannel,
        socket: TrioSocket,
        receive_channel: trio.MemoryReceiveChannel[Message],
    ) -> None:
        self._owner = owner
        self._name: RouterChannel = name
        self._socket = socket
        self._receive = receive_channel
        self._closed = False

    def __repr__(self) -> str:
        return f"<KernelEndpoint {self._name}{' closed' if self._closed else ''}>"

    @property
    def name(self) -> RouterChannel:
        """The channel's name: ``"shell"``, ``"control"`` or ``"stdin"``."""
        return self._name

    async def send(self, value: Message) -> None:
        """Send ``value`` to the client named by its identities.

        A message whose :attr:`~Message.channel` is ``None`` is sent here as is; one that names
        another channel is refused. A client that is no longer connected silently loses the
        message (ZeroMQ ROUTER semantics).

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
        frames = self._owner.session.serialize(value)
        await self.send_frames(frames)

    async def send_frames(self, frames: _Frames) -> None:
        """Send raw frames as they are, bypassing the codec (for fault injection in tests).

        The first frame(s) must be the routing identities of the target client.

        Raises:
            ValueError: ``frames`` is empty.
            trio.ClosedResourceError: the endpoint or the kernel channels are closed.
            trio.BrokenResourceError: the socket failed.
        """
        if self._closed:
            raise trio.ClosedResourceError(f"the {self._name} endpoint is closed")
        await self._socket.send_multipart(frames)
        self._owner._counters[self._name].sent += 1

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

        Idempotent. The socket itself stays open until the kernel channels close.
        """
        self._closed = True
        self._receive.close()
        await trio.lowlevel.checkpoint()


class IOPubPublisher(trio.abc.SendChannel[Message]):
    """The kernel end of IOPub: broadcasts messages to every subscribed client.

    Each message is sent under a topic (the frames before the delimiter): its
    :attr:`~Message.identities` when set, else ``kernel.<session id>.<msg_type>``. Like every
    PUB socket, IOPub never blocks: a subscriber that cannot keep up loses messages.
    """

    def __init__(self, owner: KernelChannels, socket: TrioSocket) -> None:
        self._owner = owner
        self._socket = socket
        self._closed = False

    def __repr__(self) -> str:
        return f"<IOPubPublisher{' closed' if self._closed else ''}>"

    def topic(self, msg_type: str) -> bytes:
        """The default topic of a message of type ``msg_type``."""
        return f"kernel.{self._owner.session.session_id}.{msg_type}".encode()

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
        frames = self._owner.session.serialize(value, identities)
        await self.send_frames(frames)

    async def send_frames(self, frames: _Frames) -> None:
        """Publish raw frames as they are, bypassing the codec (for fault injection).

        Raises:
            ValueError: ``frames`` is empty.
            trio.ClosedResourceError: the publisher or the kernel channels are closed.
            trio.BrokenResourceError: the socket failed.
        """
        if self._closed:
            raise trio.ClosedResourceError("the iopub publisher is closed")
        await self._socket.send_multipart(frames)
        self._owner._counters["iopub"].sent += 1

    async def aclose(self) -> None:
        """Stop publishing: further sends raise ClosedResourceError. Idempotent."""
        self._closed = True
        await trio.lowlevel.checkpoint()


@attrs.define(eq=False)
class _InputWaiter:
    identities: tuple[bytes, ...]
    event: trio.Event = attrs.field(factory=trio.Event)
    reply: Message | None = None


@attrs.define(eq=False)
class KernelChannels:
    """The kernel end of a connection: what :func:`open_kernel_channels` yields.

    Attributes:
        connection_info: where the sockets are bound (ports chosen by the system are filled
            in) and the key; hand it to clients, e.g. with :func:`write_connection_file`.
        session: the kernel's :class:`Session`; build every outgoing message with it.
        shell, control, stdin: :class:`KernelEndpoint` of each ROUTER channel.
        iopub: the :class:`IOPubPublisher`.
        rejects: when opened with ``report_rejects=True``, a receive channel of
            :class:`KernelReject` records (newest dropped when nobody reads); else ``None``.
    """

    connection_info: ConnectionInfo
    session: Session
    _sockets: dict[str, TrioSocket] = attrs.field(repr=False)
    _welcome: bool = attrs.field(repr=False)
    shell: KernelEndpoint = attrs.field(init=False, repr=False)
    control: KernelEndpoint = attrs.field(init=False, repr=False)
    stdin: KernelEndpoint = attrs.field(init=False, repr=False)
    iopub: IOPubPublisher = attrs.field(init=False, repr=False)
    rejects: trio.MemoryReceiveChannel[KernelReject] | None = attrs.field(
        init=False, default=None, repr=False
    )
    _counters: dict[str, _Counters] = attrs.field(init=False, repr=False)
    _senders: dict[str, trio.MemorySendChannel[Message]] = attrs.field(init=False, repr=False)
    _reject_sender: trio.MemorySendChannel[KernelReject] | None = attrs.field(
        init=False, default=None, repr=False
    )
    _input_waiters: dict[str, _InputWaiter] = attrs.field(init=False, factory=dict, repr=False)
    _heartbeat_paused: bool = attrs.field(init=False, default=False, repr=False)
    _subscriptions: int = attrs.field(init=False, default=0, repr=False)
    _unsubscriptions: int = attrs.field(init=False, default=0, repr=False)
    _welcomes: int = attrs.field(init=False, default=0, repr=False)
    _hb_echoed: int = attrs.field(init=False, default=0, repr=False)
    _hb_dropped: int = attrs.field(init=False, default=0, repr=False)
    _subscribed_lot: trio.lowlevel.ParkingLot = attrs.field(
        init=False, factory=trio.lowlevel.ParkingLot, repr=False
    )
    _heartbeat_lot: trio.lowlevel.ParkingLot = attrs.field(
        init=False, factory=trio.lowlevel.ParkingLot, repr=False
    )
    _closed: bool = attrs.field(init=False, default=False, repr=False)

    def _setup(self, buffer_size: int | float, report_rejects: bool) -> None:
        self._counters = {name: _Counters() for name in (*_ROUTER_CHANNELS, "iopub")}
        self._senders = {}
        endpoints: dict[str, KernelEndpoint] = {}
        for name in _ROUTER_CHANNELS:
            send, receive = trio.open_memory_channel[Message](buffer_size)
            self._senders[name] = send
            endpoints[name] = KernelEndpoint(self, name, self._sockets[name], receive)
        self.shell = endpoints["shell"]
        self.control = endpoints["control"]
        self.stdin = endpoints["stdin"]
        self.iopub = IOPubPublisher(self, self._sockets["iopub"])
        if report_rejects:
            reject_send, reject_receive = trio.open_memory_channel[KernelReject](1000)
            self._reject_sender = reject_send
            self.rejects = reject_receive

    # -- state --------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the channels are closed (the ``async with`` block was left)."""
        return self._closed

    def statistics(self) -> KernelStatistics:
        """A snapshot of every counter."""

        def buffered(name: str) -> int:
            if name not in self._senders:
                return 0
            return self._senders[name].statistics().current_buffer_used

        snap = {name: c.snapshot(buffered(name)) for name, c in self._counters.items()}
        return KernelStatistics(
            shell=snap["shell"],
            control=snap["control"],
            stdin=snap["stdin"],
            iopub=snap["iopub"],
            subscriptions=self._subscriptions,
            unsubscriptions=self._unsubscriptions,
            welcomes_sent=self._welcomes,
            heartbeats_echoed=self._hb_echoed,
            heartbeats_dropped=self._hb_dropped,
        )

    # -- heartbeat ----------------------------------------------------------------------

    @property
    def heartbeat_paused(self) -> bool:
        """Whether heartbeat pings are currently dropped instead of echoed."""
        return self._heartbeat_paused

    def pause_heartbeat(self) -> None:
        """Stop echoing heartbeat pings (clients will soon consider the kernel dead)."""
        self._heartbeat_paused = True

    def resume_heartbeat(self) -> None:
        """Echo heartbeat pings again."""
        self._heartbeat_paused = False

    async def wait_for_heartbeats(self, count: int = 1) -> None:
        """Wait until ``count`` heartbeat pings have arrived in total (echoed or dropped).

        Raises:
            trio.ClosedResourceError: the channels are closed.
        """
        while self._hb_echoed + self._hb_dropped < count:
            if self._closed:
                raise trio.ClosedResourceError("the kernel channels are closed")
            await self._heartbeat_lot.park()
        await trio.lowlevel.checkpoint()

    def abort(self) -> None:
        """Close every socket at once, dropping unsent messages (linger 0): a crash.

        Used to simulate a kernel that dies. Idempotent; afterwards every send raises
        :class:`trio.ClosedResourceError` and receives end with :class:`trio.EndOfChannel`.
        """
        self._close()
        for sock in self._sockets.values():
            sock.close(linger=0)

    # -- iopub subscriptions ------------------------------------------------------------

    async def wait_for_subscriptions(self, count: int = 1) -> None:
        """Wait until IOPub has seen ``count`` subscription events in total.

        A client's SUB socket that subscribes to ``b""`` produces one event. Use it to make
        sure a client will see what is published next.

        Raises:
            trio.ClosedResourceError: the channels are closed.
        """
        while self._subscriptions < count:
            if self._closed:
                raise trio.ClosedResourceError("the kernel channels are closed")
            await self._subscribed_lot.park()
        await trio.lowlevel.checkpoint()

    # -- sending ------------------------------------------------------------------------

    def endpoint(self, name: ChannelName) -> KernelEndpoint | IOPubPublisher:
        """The endpoint of channel ``name``.

        Raises:
            LocalProtocolError: ``name`` is not a channel name.
        """
        if name == "iopub":
            return self.iopub
        if name in _ROUTER_CHANNELS:
            endpoint: KernelEndpoint = getattr(self, name)
            return endpoint
        raise LocalProtocolError(f"unknown channel {name!r}")

    async def send(self, msg: Message) -> None:
        """Send ``msg`` on the channel named by its :attr:`~Message.channel`.

        Raises:
            LocalProtocolError: the message has no channel, no identities on a ROUTER channel,
                or cannot be encoded.
            trio.ClosedResourceError: the channels are closed.
            trio.BrokenResourceError: the socket failed.
        """
        if msg.channel is None:
            raise LocalProtocolError(
                f"{msg.msg_type} message has no channel; set channel= or send on an endpoint"
            )
        await self.endpoint(msg.channel).send(msg)

    async def reply(
        self,
        request: Message,
        content: Mapping[str, Any] | None = None,
        *,
        msg_type: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        buffers: Sequence[bytes | memoryview] = (),
    ) -> Message:
        """Build the reply to ``request`` and send it to the client that asked.

        The reply goes on the request's channel, with its identities, and has the request as
        parent. ``msg_type`` defaults to the request's type with ``_request`` replaced by
        ``_reply``. Returns the message sent.

        Raises:
            LocalProtocolError: the reply type cannot be derived, the request has no channel
                or identities, or the content cannot be encoded.
            trio.ClosedResourceError: the channels are closed.
            trio.BrokenResourceError: the socket failed.
        """
        msg = self.session.reply(
            request, content, msg_type=msg_type, metadata=metadata, buffers=buffers
        )
        await self.send(msg)
        return msg

    async def publish(
        self,
        msg_type: str,
        content: Mapping[str, Any] | None = None,
        *,
        parent: Message | Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        buffers: Sequence[bytes | memoryview] = (),
        topic: bytes | None = None,
    ) -> Message:
        """Build a message and publish it on IOPub. Returns the message sent.

        Args:
            msg_type: e.g. ``"stream"``, ``"display_data"``, ``"status"``.
            content: the content dict.
            parent: the request this output belongs to (or its header).
            metadata: the metadata dict.
            buffers: raw binary buffers.
            topic: the topic; default ``kernel.<session id>.<msg_type>``.

        Raises:
            LocalProtocolError: the message cannot be encoded.
            trio.ClosedResourceError: the channels are closed.
            trio.BrokenResourceError: the socket failed.
        """
        msg = self.session.message(
            msg_type,
            content,
            parent=parent,
            metadata=metadata,
            buffers=buffers,
            channel="iopub",
            identities=(topic,) if topic is not None else (),
        )
        await self.iopub.send(msg)
        return msg

    async def publish_status(
        self, state: str, parent: Message | Mapping[str, Any] | None = None
    ) -> Message:
        """Publish ``status`` with ``execution_state`` ``state`` (``"busy"``, ``"idle"``, ...).

        Raises:
            LocalProtocolError: the message cannot be encoded.
            trio.ClosedResourceError: the channels are closed.
            trio.BrokenResourceError: the socket failed.
        """
        return await self.publish("status", {"execution_state": state}, parent=parent)

    @asynccontextmanager
    async def busy(self, parent: Message) -> AsyncIterator[None]:
        """Publish ``busy`` for ``parent`` on entry and ``idle`` on exit, whatever happens.

        ``idle`` is published even when the block raises or is cancelled (unless the channels
        are closed by then), so clients never wait forever for the end of the output.

        Raises:
            trio.ClosedResourceError: the channels are closed on entry.
            trio.BrokenResourceError: the socket failed.
        """
        await self.publish_status("busy", parent)
        try:
            yield
        finally:
            with trio.CancelScope(shield=True):
                if not self._closed:
                    try:
                        await self.publish_status("idle", parent)
                    except trio.ClosedResourceError:
                        pass

    async def input_request(
        self, parent: Message, prompt: str = "", *, password: bool = False
    ) -> str:
        """Ask the client that sent ``parent`` for a line of input, and wait for it.

        Sends ``input_request`` on stdin to the client whose identities ``parent`` carries
        (clients share one identity between shell and stdin) and returns the ``value`` of
        its ``input_reply``. Replies are matched by parent id, or, for clients that send
        replies without a parent header (jupyter_client), by the client's identity.

        Raises:
            LocalProtocolError: ``parent`` has no identities, or it is an
                ``execute_request`` whose ``allow_stdin`` is false.
            RemoteProtocolError: the reply's ``value`` is not a string.
            trio.ClosedResourceError: the channels are closed.
            trio.BrokenResourceError: the socket failed.
        """
        if not parent.identities:
            raise LocalProtocolError("the parent request has no routing identities")
        if parent.msg_type == "execute_request" and not parent.content.get("allow_stdin", True):
            raise LocalProtocolError("the client does not allow stdin for this request")
        msg = self.session.message(
            "input_request",
            {"prompt": prompt, "password": password},
            parent=parent,
            channel="stdin",
            identities=parent.identities,
        )
        waiter = _InputWaiter(parent.identities)
        self._input_waiters[msg.msg_id] = waiter
        try:
            await self.stdin.send(msg)
            await waiter.event.wait()
        finally:
            self._input_waiters.pop(msg.msg_id, None)
        if waiter.reply is None:
            raise trio.ClosedResourceError("the kernel channels closed while waiting for input")
        value = waiter.reply.content.get("value")
        if not isinstance(value, str):
            raise RemoteProtocolError(
                f"input_reply value is {type(value).__name__}, not a string", reason="bad_reply"
            )
        return value

    # -- background tasks -----------------------------------------------------------------

    def _reject(self, name: ChannelName, error: RemoteProtocolError, frames: Sequence[Any]) -> None:
        counts = self._counters[name].rejected
        counts[error.reason] = counts.get(error.reason, 0) + 1
        if self._reject_sender is not None:
            identities: list[bytes] = []
            for frame in frames:
                raw = bytes(frame)
                if raw == b"<IDS|MSG>":
                    break
                identities.append(raw)
            else:
                identities = []
            try:
                self._reject_sender.send_nowait(KernelReject(name, error, tuple(identities)))
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    def _route_input_reply(self, msg: Message) -> bool:
        if msg.msg_type != "input_reply":
            return False
        waiter = self._input_waiters.get(msg.parent_id or "")
        if waiter is None:
            for candidate in self._input_waiters.values():
                if candidate.identities == msg.identities and not candidate.event.is_set():
                    waiter = candidate
                    break
        if waiter is None or waiter.event.is_set():
            return False
        waiter.reply = msg
        waiter.event.set()
        return True

    async def _router_reader(self, name: RouterChannel) -> None:
        socket = self._sockets[name]
        sender = self._senders[name]
        counters = self._counters[name]
        session = self.session
        try:
            while True:
                await socket.wait_receivable()
                for frames in socket.receive_batch_nowait():
                    try:
                        msg = session.deserialize(frames, channel=name)
                    except RemoteProtocolError as exc:
                        self._reject(name, exc, frames)
                        continue
                    counters.received += 1
                    if name == "stdin" and self._route_input_reply(msg):
                        continue
                    try:
                        sender.send_nowait(msg)
                    except trio.WouldBlock:
                        await sender.send(msg)
                    except trio.BrokenResourceError:
                        pass  # the application closed this endpoint: nobody listens
        except trio.ClosedResourceError:
            pass

    async def _iopub_reader(self) -> None:
        socket = self._sockets["iopub"]
        try:
            while True:
                await socket.wait_receivable()
                for frames in socket.receive_batch_nowait():
                    event = bytes(frames[0]) if frames else b""
                    if not event:
                        continue
                    if event[0] == 1:
                        self._subscriptions += 1
                        self._subscribed_lot.unpark_all()
                        if self._welcome:
                            await self._send_welcome(event[1:])
                    elif event[0] == 0:
                        self._unsubscriptions += 1
        except trio.ClosedResourceError:
            pass

    async def _send_welcome(self, topic: bytes) -> None:
        subscription = topic.decode("utf-8", errors="replace")
        msg = self.session.message("iopub_welcome", {"subscription": subscription})
        # Under the subscribed topic, so that exactly the new subscriber's filter passes it.
        identities = (topic,) if topic else (self.iopub.topic("iopub_welcome"),)
        try:
            await self.iopub.send_frames(self.session.serialize(msg, identities))
        except trio.ClosedResourceError:
            return
        self._welcomes += 1

    async def _heartbeat(self) -> None:
        socket = self._sockets["hb"]
        try:
            while True:
                await socket.wait_receivable()
                for frames in socket.receive_batch_nowait():
                    if self._heartbeat_paused:
                        self._hb_dropped += 1
                    else:
                        await socket.send_multipart(frames)
                        self._hb_echoed += 1
                    self._heartbeat_lot.unpark_all()
        except trio.ClosedResourceError:
            pass

    def _close(self) -> None:
        self._closed = True
        for sender in self._senders.values():
            sender.close()
        if self._reject_sender is not None:
            self._reject_sender.close()
        for waiter in self._input_waiters.values():
            waiter.event.set()
        self._subscribed_lot.unpark_all()
        self._heartbeat_lot.unpark_all()
        self.shell._closed = self.control._closed = self.stdin._closed = True
        self.iopub._closed = True


_SOCKET_KINDS: dict[str, Literal["ROUTER", "XPUB"]] = {
    "shell": "ROUTER",
    "control": "ROUTER",
    "stdin": "ROUTER",
    "iopub": "XPUB",
    "hb": "ROUTER",
}


def _bound_port(endpoint: str, transport: str, requested: int) -> int:
    if transport != "tcp":
        return requested
    return int(endpoint.rsplit(":", 1)[1])


def _open_sockets(
    info: ConnectionInfo, linger: float
) -> tuple[dict[str, TrioSocket], ConnectionInfo]:
    sockets: dict[str, TrioSocket] = {}
    ports: dict[str, int] = {}
    try:
        for name, kind in _SOCKET_KINDS.items():
            sock = TrioSocket(kind, linger=linger)
            sockets[name] = sock
            if info.curve_secretkey:
                sock.set_curve_server(info.curve_secretkey)
            if kind == "XPUB":
                # Pass every subscription (not only the first per topic) so that each new
                # subscriber is welcomed.
                sock.set_option("XPUB_VERBOSE", 1)
            port_name: Any = name
            requested = info.port(port_name)
            try:
                endpoint = sock.bind(info.url(port_name, bind=True))
            except trio.BrokenResourceError as exc:
                cause = exc.__cause__
                if getattr(cause, "errno", None) == errno.EADDRINUSE:
                    raise OSError(
                        errno.EADDRINUSE,
                        f"cannot bind the {name} socket: {info.url(port_name)} is in use",
                    ) from exc
                raise
            ports[f"{name}_port"] = _bound_port(endpoint, info.transport, requested)
    except BaseException:
        for sock in sockets.values():
            sock.close(linger=0)
        raise
    bound = attrs.evolve(
        info,
        shell_port=ports["shell_port"],
        iopub_port=ports["iopub_port"],
        stdin_port=ports["stdin_port"],
        control_port=ports["control_port"],
        hb_port=ports["hb_port"],
    )
    return sockets, bound


@asynccontextmanager
async def open_kernel_channels(
    info: ConnectionInfo | None = None,
    *,
    session: Session | None = None,
    ip: str = "127.0.0.1",
    transport: Literal["tcp", "ipc"] = "tcp",
    key: str | None = None,
    signature_scheme: str = "hmac-sha256",
    iopub_welcome: bool = True,
    heartbeat: bool = True,
    buffer_size: int | float = 1000,
    report_rejects: bool = False,
    linger: float = 1.0,
) -> AsyncIterator[KernelChannels]:
    """Bind the five kernel sockets and serve them until the block ends.

    Shell, control and stdin are ROUTER sockets, IOPub is an XPUB socket that publishes
    ``iopub_welcome`` to each new subscriber (protocol 5.5), and the heartbeat echoes every
    ping (a ROUTER echo, like ipykernel's). Incoming messages are verified with the session:
    invalid ones are counted in :meth:`KernelChannels.statistics` (and reported on
    :attr:`KernelChannels.rejects` when asked), never delivered.

    Args:
        info: where to bind. A port of 0 lets the system choose (the chosen ports are in
            :attr:`KernelChannels.connection_info`). ``None``: bind free ports on ``ip`` with a
            fresh key (``ip``/``transport``/``key``/``signature_scheme`` are used only then).
            When ``info`` has ``curve_secretkey``, every socket is a CurveZMQ server.
        session: the kernel's session; default one with the key and scheme of ``info``.
        ip, transport, key, signature_scheme: used when ``info`` is ``None``.
        iopub_welcome: publish ``iopub_welcome`` on each new subscription.
        heartbeat: run the heartbeat echo (when false the hb socket is bound but silent).
        buffer_size: how many received requests each channel buffers for the application
            before the reader waits (and ZeroMQ queues).
        report_rejects: expose :attr:`KernelChannels.rejects`.
        linger: seconds unsent messages may linger when closing.

    Raises:
        OSError: a port is already in use (``errno.EADDRINUSE``).
        ConfigurationError: the signature scheme is unknown.
        EncryptionUnavailable: the info asks for CurveZMQ and libzmq lacks it.
        trio.BrokenResourceError: a socket could not be bound for another reason.
    """
    ipc_directory: str | None = None
    if info is None:
        if transport == "ipc":
            info = ConnectionInfo.allocate(
                transport="ipc", key=key, signature_scheme=signature_scheme
            )
            ipc_directory = os.path.dirname(info.ip)
        else:
            info = ConnectionInfo(
                shell_port=0,
                iopub_port=0,
                stdin_port=0,
                control_port=0,
                hb_port=0,
                ip=ip,
                key=uuid.uuid4().hex if key is None else key,
                transport="tcp",
                signature_scheme=signature_scheme,
            )
    if session is None:
        session = Session.from_connection_info(info)
    if not (buffer_size == math.inf or (isinstance(buffer_size, int) and buffer_size >= 0)):
        raise ValueError("buffer_size must be a non-negative integer or math.inf")
    sockets, bound = _open_sockets(info, linger)
    channels = KernelChannels(bound, session, sockets, iopub_welcome)
    channels._setup(buffer_size, report_rejects)
    try:
        async with trio.open_nursery() as nursery:
            for name in _ROUTER_CHANNELS:
                nursery.start_soon(channels._router_reader, name, name=f"kernel-{name}-reader")
            nursery.start_soon(channels._iopub_reader, name="kernel-iopub-subscriptions")
            if heartbeat:
                nursery.start_soon(channels._heartbeat, name="kernel-heartbeat")
            try:
                yield channels
            finally:
                channels._close()
                nursery.cancel_scope.cancel()
    finally:
        channels._close()
        for sock in sockets.values():
            sock.close()
        if ipc_directory is not None:
            for path in bound.ipc_paths():
                path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                os.rmdir(ipc_directory)
