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
import logging
import os
import uuid
import warnings
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

import attrs
import trio

from .._errors import ConnectionInfoError, LocalProtocolError, RemoteProtocolError
from .._io._errors import PeerNotConnected
from .._io._overflow import BufferOptions
from .._io._stats import Counters, RejectedMessage, Rejects, decoding_bug
from .._io._zmq import TrioSocket
from .._validate import (
    check_bool,
    check_bytes,
    check_choice,
    check_ip,
    check_optional_str,
    check_seconds,
    check_str,
)
from .._wire._connection import ConnectionInfo
from .._wire._message import CHANNEL_NAMES, ChannelName, Message
from .._wire._session import Session, warn_if_unsigned
from ._endpoints import (
    IOPubPublisher,
    KernelChannelsStatistics,
    KernelEndpoint,
    RouterChannel,
)

__all__ = [
    "IOPubPublisher",
    "KernelChannels",
    "KernelChannelsStatistics",
    "KernelEndpoint",
    "open_kernel_channels",
]

logger = logging.getLogger("trio_enchannel.kernel_side")

_ROUTER_CHANNELS: tuple[RouterChannel, ...] = ("shell", "control", "stdin")

_Frames = Sequence[bytes | bytearray | memoryview]


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
        shell: the :class:`KernelEndpoint` of shell (a ROUTER socket).
        control: the :class:`KernelEndpoint` of control (a ROUTER socket).
        stdin: the :class:`KernelEndpoint` of stdin (a ROUTER socket).
        iopub: the :class:`IOPubPublisher`.
    """

    connection_info: ConnectionInfo
    session: Session
    _sockets: dict[str, TrioSocket] = attrs.field(repr=False)
    _welcome: bool = attrs.field(repr=False)
    shell: KernelEndpoint = attrs.field(init=False, repr=False)
    control: KernelEndpoint = attrs.field(init=False, repr=False)
    stdin: KernelEndpoint = attrs.field(init=False, repr=False)
    iopub: IOPubPublisher = attrs.field(init=False, repr=False)
    _counters: dict[ChannelName, Counters] = attrs.field(init=False, repr=False)
    _senders: dict[str, trio.MemorySendChannel[Message]] = attrs.field(init=False, repr=False)
    _rejects: Rejects = attrs.field(init=False, repr=False)
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

    def _setup(self, options: BufferOptions) -> None:
        self._counters = {name: Counters() for name in CHANNEL_NAMES}
        self._senders = {}
        endpoints: dict[str, KernelEndpoint] = {}
        for name in _ROUTER_CHANNELS:
            send, receive = trio.open_memory_channel[Message](options.buffer_size)
            self._senders[name] = send
            endpoints[name] = KernelEndpoint(
                name, self._sockets[name], self.session, self._counters[name], receive
            )
        self.shell = endpoints["shell"]
        self.control = endpoints["control"]
        self.stdin = endpoints["stdin"]
        self.iopub = IOPubPublisher(self._sockets["iopub"], self.session, self._counters["iopub"])
        self._rejects = Rejects(
            logger,
            self._counters,
            options.rejects_buffer_size,
            disabled="rejects needs open_kernel_channels(..., report_rejects=True)",
        )

    @property
    def rejects(self) -> trio.MemoryReceiveChannel[RejectedMessage]:
        """Every rejected incoming message with its error, as
        :class:`~trio_enchannel.RejectedMessage` records (the client side's record).

        Opt-in: ``open_kernel_channels(..., report_rejects=True)``. When its buffer is full,
        further rejects are only counted (``statistics().rejects_unreported``).

        Raises:
            UsageError: the channels were opened without ``report_rejects=True``.
        """
        return self._rejects.receiver

    # -- state --------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the channels are closed (the ``async with`` block was left)."""
        return self._closed

    def statistics(self) -> KernelChannelsStatistics:
        """A snapshot of every counter."""
        endpoints = {"shell": self.shell, "control": self.control, "stdin": self.stdin}
        return KernelChannelsStatistics(
            shell=endpoints["shell"].statistics(),
            control=endpoints["control"].statistics(),
            stdin=endpoints["stdin"].statistics(),
            iopub=self.iopub.statistics(),
            subscriptions=self._subscriptions,
            unsubscriptions=self._unsubscriptions,
            welcomes_sent=self._welcomes,
            heartbeats_echoed=self._hb_echoed,
            heartbeats_dropped=self._hb_dropped,
            rejects_unreported=self._rejects.unreported,
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

    async def wait_heartbeats(self, count: int = 1) -> None:
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

    async def wait_subscriptions(self, count: int = 1) -> None:
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

    async def wait_for_subscriptions(self, count: int = 1) -> None:
        """Deprecated alias of :meth:`wait_subscriptions`."""
        warnings.warn(
            "KernelChannels.wait_for_subscriptions() is deprecated, use wait_subscriptions()",
            DeprecationWarning,
            stacklevel=2,
        )
        await self.wait_subscriptions(count)

    # -- sending ------------------------------------------------------------------------

    def endpoint(self, name: ChannelName) -> KernelEndpoint | IOPubPublisher:
        """The endpoint of channel ``name``.

        Raises:
            LocalProtocolError: ``name`` is not a channel name.
        """
        if name == "iopub":
            return self.iopub
        if name == "shell":
            return self.shell
        if name == "control":
            return self.control
        if name == "stdin":
            return self.stdin
        raise LocalProtocolError(f"unknown channel {name!r}")

    async def send(self, msg: Message) -> None:
        """Send ``msg`` on the channel named by its :attr:`~Message.channel`.

        Raises:
            LocalProtocolError: the message has no channel, no identities on a ROUTER channel,
                or cannot be encoded.
            trio.ClosedResourceError: the channels are closed.
            trio.BrokenResourceError: the socket failed.
            TypeError: ``msg`` is not a :class:`Message`.
        """
        if not isinstance(msg, Message):
            raise TypeError(f"msg must be a Message, got {type(msg).__name__}")
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
            TypeError: ``request`` is not a :class:`Message`, or content of the wrong type.
        """
        if not isinstance(request, Message):
            raise TypeError(f"request must be a Message, got {type(request).__name__}")
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
            TypeError: an argument has the wrong type.
        """
        if topic is not None:
            check_bytes("topic", topic)
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
        """Publish ``status`` with ``execution_state`` ``state`` (``"busy"``, ``"idle"`` or
        ``"starting"``).

        Raises:
            LocalProtocolError: ``state`` is none of those, or the message cannot be encoded.
            trio.ClosedResourceError: the channels are closed.
            trio.BrokenResourceError: the socket failed.
        """
        check_choice("state", state, ("busy", "idle", "starting"), error=LocalProtocolError)
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
        self,
        parent: Message,
        prompt: str = "",
        *,
        password: bool = False,
        connect_grace: float = 10.0,
    ) -> str:
        """Ask the client that sent ``parent`` for a line of input, and wait for it.

        Sends ``input_request`` on stdin to the client whose identities ``parent`` carries
        (clients share one identity between shell and stdin) and returns the ``value`` of
        its ``input_reply``. Replies are matched by parent id, or, for clients that send
        replies without a parent header (jupyter_client), by the client's identity.

        A client's stdin socket may connect a little after its shell socket (a client that
        connected before the kernel started reconnects each socket on its own timer): the
        request is retried until the client's stdin is connected, for up to
        ``connect_grace`` seconds.

        Raises:
            LocalProtocolError: ``parent`` has no identities, or it is an
                ``execute_request`` whose ``allow_stdin`` is false.
            RemoteProtocolError: the reply's ``value`` is not a string.
            trio.ClosedResourceError: the channels are closed.
            PeerNotConnected: the client's stdin was not connected within
                ``connect_grace`` seconds (a :class:`trio.BrokenResourceError` too).
            trio.BrokenResourceError: the socket failed.
            TypeError: an argument has the wrong type.
            ConfigurationError: ``connect_grace`` is not a number of seconds >= 0.
        """
        if not isinstance(parent, Message):
            raise TypeError(f"parent must be a Message, got {type(parent).__name__}")
        check_str("prompt", prompt)
        check_bool("password", password)
        check_seconds("connect_grace", connect_grace, allow_zero=True, allow_inf=True)
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
            await self._send_to_stdin(msg, connect_grace)
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

    async def _send_to_stdin(self, msg: Message, connect_grace: float) -> None:
        delay = 0.005
        deadline = trio.current_time() + connect_grace
        while True:
            try:
                await self.stdin.send(msg)
                return
            except PeerNotConnected:
                if trio.current_time() + delay > deadline:
                    raise
            # ZeroMQ tells nothing when a peer connects: poll, backing off to 100 ms.
            await trio.sleep(delay)
            delay = min(delay * 2, 0.1)

    # -- background tasks -----------------------------------------------------------------

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
                    repaired, unverified = session.invalid_utf8, session.unverified
                    try:
                        msg = session.deserialize(frames, channel=name)
                    except RemoteProtocolError as exc:
                        self._rejects.reject(name, tuple(frames), exc)
                        continue
                    except Exception as exc:  # a decoding bug must not stop the reader
                        error = decoding_bug(logger, f"a {name} message", exc)
                        self._rejects.reject(name, tuple(frames), error)
                        continue
                    counters.received += 1
                    if session.invalid_utf8 != repaired:
                        counters.invalid_utf8 += 1  # decoded as U+FFFD, delivered
                    if session.unverified != unverified:
                        counters.unverified += 1  # signed, but this kernel has no key
                    if name == "stdin" and self._route_input_reply(msg):
                        continue
                    try:
                        sender.send_nowait(msg)
                    except trio.WouldBlock:
                        counters.stalls += 1
                        try:
                            await sender.send(msg)
                        except (trio.BrokenResourceError, trio.ClosedResourceError):
                            counters.discarded += 1
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        counters.discarded += 1  # the application closed this endpoint
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
        self._rejects.close()
        for waiter in self._input_waiters.values():
            waiter.event.set()
        self._subscribed_lot.unpark_all()
        self._heartbeat_lot.unpark_all()
        for endpoint in (self.shell, self.control, self.stdin):
            endpoint._closed = True
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
            if kind == "ROUTER" and name != "hb":
                # A client that reuses a routing identity takes it over, as in ipykernel:
                # jupyter_client's clients of one manager share its session, whose id is their
                # identity, and a reconnecting client may arrive before the ROUTER noticed that
                # its old connection is gone. Without handover the newcomer is never routed.
                sock.set_option("ROUTER_HANDOVER", 1)
            if name == "stdin":
                # Refuse input requests for clients that are not (yet) connected to stdin
                # instead of dropping them: input_request waits for the client to connect.
                sock.set_option("ROUTER_MANDATORY", 1)
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
    buffer_size: int = 1000,
    report_rejects: bool = False,
    rejects_buffer_size: int = 100,
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
            before the reader waits (and ZeroMQ queues); at least 1: ``0`` means 1, as in
            every opener.
        report_rejects: expose :attr:`KernelChannels.rejects`.
        rejects_buffer_size: how many unread rejects it holds (more are only counted).
        linger: seconds unsent messages may linger when closing.

    Raises:
        OSError: a port is already in use (``errno.EADDRINUSE``).
        ConfigurationError: the signature scheme is unknown, or an option is invalid.
        ConnectionInfoError: ``ip`` is not an address to listen on.
        EncryptionUnavailable: the info asks for CurveZMQ and libzmq lacks it.
        trio.BrokenResourceError: a socket could not be bound for another reason.
        TypeError: an argument has the wrong type.
    """
    if info is not None and not isinstance(info, ConnectionInfo):
        raise TypeError(f"info must be a ConnectionInfo or None, got {type(info).__name__}")
    if session is not None and not isinstance(session, Session):
        raise TypeError(f"session must be a Session or None, got {type(session).__name__}")
    check_choice("transport", transport, ("tcp", "ipc"))
    if info is None and transport == "tcp":
        check_ip("ip", ip, bindable=True, error=ConnectionInfoError)
    check_optional_str("key", key)
    check_str("signature_scheme", signature_scheme)
    for name, flag in (
        ("iopub_welcome", iopub_welcome),
        ("heartbeat", heartbeat),
    ):
        check_bool(name, flag)
    options = BufferOptions.build(
        buffer_size=buffer_size,
        report_rejects=report_rejects,
        rejects_buffer_size=rejects_buffer_size,
    )
    check_seconds("linger", linger, allow_zero=True)
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
    warn_if_unsigned(session, logger, "open_kernel_channels")
    sockets, bound = _open_sockets(info, linger)
    channels = KernelChannels(bound, session, sockets, iopub_welcome)
    channels._setup(options)
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
