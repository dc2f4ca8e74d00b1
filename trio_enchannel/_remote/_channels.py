"""The channels of a remote kernel, over one Jupyter Server websocket.

:func:`open_remote_channels` gives the same interface as :func:`~trio_enchannel.open_channels`
(``shell``, ``control``, ``stdin``, ``iopub``, ``send``, ``statistics()``, ``rejects``, kernel
death signalling), so the client and user code do not care which transport is underneath.
"""

from __future__ import annotations

import collections
import math
import ssl
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import attrs
import trio

from .._errors import KernelDied, LocalProtocolError, MalformedMessage, RemoteProtocolError
from .._message import CHANNEL_NAMES, ChannelName, Message
from .._queue import DroppingQueue
from .._session import Session
from ._errors import ConnectionLost
from ._link import KernelLink, LinkState, SubprotocolChoice
from ._rest import RemoteServer, open_remote_server
from ._util import unwrap_single

__all__ = [
    "RemoteChannelStatistics",
    "RemoteChannels",
    "RemoteReject",
    "RemoteStatistics",
    "open_remote_channels",
]

DEFAULT_BUFFER_SIZE = 1000


@attrs.frozen
class RemoteReject:
    """A frame from the server that could not be decoded (never delivered as a message).

    Attributes:
        channel: the channel it claimed to be on, when that much could be read, else ``None``.
        error: why it was rejected (``error.reason`` is the counted reason).
    """

    channel: ChannelName | None
    error: RemoteProtocolError


@attrs.frozen
class RemoteChannelStatistics:
    """Counters of one channel.

    Attributes:
        sent: messages sent on it.
        received: valid messages received on it.
        dropped: received messages discarded because nobody read them in time (IOPub only:
            the oldest unread ones go first, as with a ZeroMQ SUB socket at its high-water mark).
        buffered: received messages waiting to be read.
    """

    sent: int
    received: int
    dropped: int
    buffered: int


@attrs.frozen
class RemoteStatistics:
    """A snapshot of a :class:`RemoteChannels`' counters.

    Attributes:
        channels: per-channel counters.
        rejected: frames rejected, by reason (``"bad_json"``, ``"bad_framing"``, ...).
        connections: successful websocket connections (1 + reconnections).
        drops: times the websocket dropped.
        subprotocol: the framing in use (``"v1.kernel.websocket.jupyter.org"`` or ``None``
            for the legacy JSON framing).
        state: ``"connected"``, ``"reconnecting"``, ``"closed"`` or ``"dead"``.
    """

    channels: Mapping[ChannelName, RemoteChannelStatistics]
    rejected: Mapping[str, int]
    connections: int
    drops: int
    subprotocol: str | None
    state: LinkState

    @property
    def total_rejected(self) -> int:
        """All rejected frames."""
        return sum(self.rejected.values())

    def __getitem__(self, channel: ChannelName) -> RemoteChannelStatistics:
        return self.channels[channel]


class _Endpoint(trio.abc.Channel[Message]):
    """One channel of a remote kernel: send requests, receive what the kernel sends on it."""

    def __init__(self, owner: RemoteChannels, name: ChannelName, queue: DroppingQueue[Message]):
        self._owner = owner
        self.name: ChannelName = name
        self._queue = queue
        self._closed = False

    async def send(self, value: Message) -> None:
        """Send ``value`` on this channel (its ``channel`` must be unset or this one).

        Raises:
            LocalProtocolError: the message is for another channel, or cannot be encoded.
            KernelDied: the kernel is gone.
            ConnectionLost: the connection dropped while the frame was being written.
            trio.ClosedResourceError: this endpoint or the channels were closed.
        """
        if self._closed:
            raise trio.ClosedResourceError(f"the {self.name} channel was closed")
        if value.channel is None:
            value = attrs.evolve(value, channel=self.name)
        elif value.channel != self.name:
            raise LocalProtocolError(
                f"a message for the {value.channel} channel cannot be sent on {self.name}"
            )
        await self._owner.send(value)

    async def receive(self) -> Message:
        """The next message the kernel sent on this channel.

        Raises:
            trio.EndOfChannel: the channels were closed and everything was received.
            KernelDied: the kernel is gone (after everything it sent was received).
            trio.ClosedResourceError: this endpoint was closed.
        """
        return await self._queue.receive()

    def receive_nowait(self) -> Message:
        """The next message, without waiting.

        Raises:
            trio.WouldBlock: nothing is waiting.
            trio.EndOfChannel: the channels were closed and everything was received.
            KernelDied: the kernel is gone (after everything it sent was received).
            trio.ClosedResourceError: this endpoint was closed.
        """
        return self._queue.receive_nowait()

    async def aclose(self) -> None:
        """Close this endpoint (both directions). Idempotent."""
        self._closed = True
        self._queue.close()
        await trio.lowlevel.checkpoint()


class _IOPub(trio.abc.ReceiveChannel[Message]):
    """The IOPub broadcast of a remote kernel."""

    def __init__(self, queue: DroppingQueue[Message]):
        self._queue = queue

    async def receive(self) -> Message:
        """The next IOPub message.

        Raises:
            trio.EndOfChannel: the channels were closed and everything was received.
            KernelDied: the kernel is gone (after everything it sent was received).
            trio.ClosedResourceError: this channel was closed.
        """
        return await self._queue.receive()

    def receive_nowait(self) -> Message:
        """The next IOPub message, without waiting.

        Raises:
            trio.WouldBlock: nothing is waiting.
            trio.EndOfChannel: the channels were closed and everything was received.
            KernelDied: the kernel is gone.
            trio.ClosedResourceError: this channel was closed.
        """
        return self._queue.receive_nowait()

    async def aclose(self) -> None:
        """Stop receiving IOPub (unread messages are discarded). Idempotent."""
        self._queue.close()
        await trio.lowlevel.checkpoint()


@attrs.define(eq=False)
class RemoteChannels:
    """The four channels of a kernel behind a Jupyter Server or Enterprise Gateway.

    Same interface as the ZeroMQ :class:`~trio_enchannel.Channels`; get one from
    :func:`open_remote_channels`.

    Attributes:
        session: builds the messages you send (its ``session_id`` is the websocket's
            ``session_id``; messages are not signed on the websocket, the server signs them).
        server: the REST client of the server.
        kernel_id: the kernel's id on the server.
        shell: requests and replies.
        control: control requests and replies.
        stdin: the kernel's ``input_request`` and your ``input_reply``.
        iopub: everything the kernel broadcasts.
    """

    session: Session
    server: RemoteServer
    kernel_id: str
    _link: KernelLink = attrs.field(init=False)
    _queues: dict[ChannelName, DroppingQueue[Message]] = attrs.field(init=False)
    shell: _Endpoint = attrs.field(init=False)
    control: _Endpoint = attrs.field(init=False)
    stdin: _Endpoint = attrs.field(init=False)
    iopub: _IOPub = attrs.field(init=False)
    _sent: collections.Counter[str] = attrs.field(init=False, factory=collections.Counter)
    _received: collections.Counter[str] = attrs.field(init=False, factory=collections.Counter)
    _rejected: collections.Counter[str] = attrs.field(init=False, factory=collections.Counter)
    _rejects: DroppingQueue[RemoteReject] | None = attrs.field(init=False, default=None)
    _trouble: trio.Event = attrs.field(init=False, factory=trio.Event)
    _trouble_reason: str = attrs.field(init=False, default="")
    _death: KernelDied | None = attrs.field(init=False, default=None)
    _listeners: list[Any] = attrs.field(init=False, factory=list)
    _taps: list[Callable[[Message], None]] = attrs.field(init=False, factory=list)

    # -- sending ----------------------------------------------------------------------------

    async def send(self, msg: Message) -> None:
        """Send ``msg`` on the channel named by ``msg.channel``.

        Waits while the websocket is reconnecting. The frame is written whole or not at all.

        Raises:
            LocalProtocolError: ``msg.channel`` is unset or ``iopub``, or the message cannot
                be encoded (nothing was sent).
            KernelDied: the kernel is gone.
            ConnectionLost: the connection dropped while the frame was being written.
            trio.ClosedResourceError: the channels were closed.
        """
        channel = msg.channel
        if channel not in ("shell", "control", "stdin"):
            raise LocalProtocolError(
                f"messages are sent on shell, control or stdin; this one has channel={channel!r}"
            )
        await self._link.send(msg)
        self._sent[channel] += 1

    # -- state ------------------------------------------------------------------------------

    @property
    def subprotocol(self) -> str | None:
        """The websocket framing in use: ``"v1.kernel.websocket.jupyter.org"`` or ``None``
        (legacy JSON)."""
        return self._link.subprotocol

    @property
    def state(self) -> LinkState:
        """``"connected"``, ``"reconnecting"``, ``"closed"`` or ``"dead"``."""
        return self._link.state

    @property
    def kernel_died(self) -> KernelDied | None:
        """Why the kernel is gone, once it is; ``None`` while it lives."""
        return self._death

    @property
    def kernel_unresponsive(self) -> bool:
        """Whether the kernel cannot be reached right now (websocket down, or kernel gone)."""
        return self._link.state != "connected"

    @property
    def unresponsive_reason(self) -> str:
        """What the last trouble was (a drop, a restart by the server, the kernel's death)."""
        return self._trouble_reason

    async def wait_unresponsive(self) -> None:
        """Wait for the next trouble: the websocket drops, the server restarts the crashed
        kernel, or the kernel is gone (see :attr:`unresponsive_reason`).

        Requests in flight at that moment will not get their replies. Returns at once while
        the kernel is known to be gone.
        """
        await self._trouble.wait()

    async def wait_responsive(self) -> None:
        """Wait until the websocket is up again after a trouble.

        Never returns once the kernel is gone (use :meth:`wait_unresponsive` to learn that).
        """
        if self._death is not None:
            await trio.sleep_forever()
        try:
            await self._link.wait_connected()
        except (KernelDied, trio.ClosedResourceError):
            await trio.sleep_forever()

    async def wait_connected(self) -> None:
        """Wait until the websocket is up (immediately unless it is reconnecting).

        Raises:
            KernelDied: the kernel is gone.
            trio.ClosedResourceError: the channels were closed.
        """
        await self._link.wait_connected()

    async def wait_iopub_ready(self) -> None:
        """Wait until IOPub messages flow.

        The server establishes the kernel's IOPub subscription (with ``kernel_info``
        nudges) before it serves the websocket, so this only waits for the connection.

        Raises:
            KernelDied: the kernel is gone.
            trio.ClosedResourceError: the channels were closed.
        """
        await self._link.wait_connected()

    def add_listener(self, listener: Any) -> None:
        """Register an object told about drops and deaths (the client uses this).

        ``listener.connection_lost(error)`` is called when the websocket drops (requests in
        flight should fail with ``error``), ``listener.kernel_restarted(reason)`` when the
        server restarted a crashed kernel, ``listener.kernel_died(error)`` when it is gone.
        Missing methods are skipped.
        """
        self._listeners.append(listener)

    @contextmanager
    def tap(self, callback: Callable[[Message], None]) -> Iterator[None]:
        """Call ``callback`` (synchronously) with every message received in the block,
        before it is queued for its channel."""
        self._taps.append(callback)
        try:
            yield
        finally:
            self._taps.remove(callback)

    @property
    def rejects(self) -> trio.abc.ReceiveChannel[RemoteReject]:
        """Frames the server sent that could not be decoded (opt-in: created on first use;
        the last ``buffer_size`` are kept)."""
        if self._rejects is None:
            self._rejects = DroppingQueue(DEFAULT_BUFFER_SIZE)
        return self._rejects

    def statistics(self) -> RemoteStatistics:
        """A snapshot of the counters."""
        return RemoteStatistics(
            channels={
                name: RemoteChannelStatistics(
                    sent=self._sent[name],
                    received=self._received[name],
                    dropped=self._queues[name].dropped,
                    buffered=len(self._queues[name]),
                )
                for name in CHANNEL_NAMES
            },
            rejected=dict(self._rejected),
            connections=self._link.connections,
            drops=self._link.drops,
            subprotocol=self._link.subprotocol,
            state=self._link.state,
        )

    async def aclose(self) -> None:
        """Close the websocket and the channels. Idempotent."""
        await self._link.aclose()
        self._finish()

    # -- link callbacks ---------------------------------------------------------------------

    async def _deliver(self, msg: Message) -> None:
        assert msg.channel is not None
        self._received[msg.channel] += 1
        for tap in self._taps:
            tap(msg)
        self._queues[msg.channel].put_nowait(msg)
        await trio.lowlevel.checkpoint()

    def _reject(self, error: MalformedMessage) -> None:
        self._rejected[error.reason] += 1
        if self._rejects is not None:
            self._rejects.put_nowait(RemoteReject(None, error))

    def _notify(self, method: str, arg: object) -> None:
        for listener in list(self._listeners):
            fn = getattr(listener, method, None)
            if fn is not None:
                fn(arg)

    def _raise_trouble(self, reason: str, *, lasting: bool) -> None:
        self._trouble_reason = reason
        self._trouble.set()
        if not lasting:
            self._trouble = trio.Event()

    def _on_connect(self) -> None:
        if self._trouble.is_set() and self._death is None:
            self._trouble = trio.Event()

    def _on_drop(self, error: ConnectionLost) -> None:
        self._notify("connection_lost", error)
        self._raise_trouble(str(error), lasting=True)

    def _on_restart(self, reason: str) -> None:
        self._notify("kernel_restarted", reason)
        self._raise_trouble(reason, lasting=False)

    def _on_dead(self, error: KernelDied) -> None:
        self._death = error
        self._notify("kernel_died", error)
        self._raise_trouble(error.reason, lasting=True)

    def _finish(self) -> None:
        for queue in self._queues.values():
            queue.close_producer()
        if self._rejects is not None:
            self._rejects.close_producer()


def _validate_buffer_size(buffer_size: float) -> None:
    if not (buffer_size >= 1):
        raise ValueError(f"buffer_size must be at least 1, got {buffer_size!r}")


@asynccontextmanager
async def open_remote_channels(
    server: str | RemoteServer,
    kernel_id: str,
    *,
    token: str | None = None,
    session: Session | None = None,
    subprotocol: SubprotocolChoice = "auto",
    buffer_size: float = DEFAULT_BUFFER_SIZE,
    reconnect: bool = True,
    reconnect_timeout: float = 60.0,
    ping_interval: float | None = 10.0,
    kernel_check_interval: float | None = None,
    ssl_context: ssl.SSLContext | None = None,
    headers: Mapping[str, str] | None = None,
) -> AsyncIterator[RemoteChannels]:
    """Connect to the channels of kernel ``kernel_id`` on a Jupyter Server or gateway.

    ::

        async with open_remote_channels("http://gateway:8888", kernel_id, token=t) as ch:
            await ch.shell.send(ch.session.message("kernel_info_request"))
            reply = await ch.shell.receive()

    Args:
        server: the server's URL, or an open :class:`RemoteServer` (then ``token``,
            ``ssl_context`` and ``headers`` come from it).
        kernel_id: the kernel's id (from :meth:`RemoteServer.start_kernel` or
            :meth:`RemoteServer.list_kernels`).
        token: the server's token.
        session: the :class:`Session` to build messages with (a fresh unsigned one by
            default; its ``session_id`` becomes the websocket's ``session_id``).
        subprotocol: ``"auto"`` (the binary ``v1.kernel.websocket.jupyter.org`` framing when
            the server offers it, else legacy JSON), ``"v1"`` (required) or ``"legacy"``.
        buffer_size: how many unread IOPub messages are kept (the oldest are dropped
            beyond that, and counted); replies and stdin requests are never dropped.
        reconnect: reconnect when the websocket drops while the kernel lives.
        reconnect_timeout: give up (the kernel is declared dead) after this long without a
            connection.
        ping_interval: seconds between websocket pings (a ping unanswered for as long means
            the connection is dead); ``None`` disables them.
        kernel_check_interval: seconds between REST checks that the kernel still exists
            (``None``: only when a drop or a ``shutdown_reply`` suggests it).
        ssl_context: TLS settings for ``https``/``wss`` servers.
        headers: extra HTTP headers for the REST calls and the websocket handshake.

    Raises:
        RemoteAuthenticationError: the token was refused.
        RemoteKernelNotFound: the server has no such kernel.
        RemoteServerError: the server is unreachable, refused the websocket, or does not
            offer the required subprotocol.
        ValueError: an invalid option.
    """
    _validate_buffer_size(buffer_size)
    if subprotocol not in ("auto", "v1", "legacy"):
        raise ValueError(f"subprotocol must be 'auto', 'v1' or 'legacy', got {subprotocol!r}")
    async with _server_for(server, token, ssl_context, headers) as rest:
        session = session if session is not None else Session(session_id=uuid.uuid4().hex)
        channels = RemoteChannels(session, rest, kernel_id)
        queues: dict[ChannelName, DroppingQueue[Message]] = {
            name: DroppingQueue(buffer_size if name == "iopub" else math.inf)
            for name in CHANNEL_NAMES
        }
        channels._queues = queues
        channels.shell = _Endpoint(channels, "shell", queues["shell"])
        channels.control = _Endpoint(channels, "control", queues["control"])
        channels.stdin = _Endpoint(channels, "stdin", queues["stdin"])
        channels.iopub = _IOPub(queues["iopub"])
        link = KernelLink(
            server=rest,
            kernel_id=kernel_id,
            session_id=session.session_id,
            deliver=channels._deliver,
            reject=channels._reject,
            on_drop=channels._on_drop,
            on_restart=channels._on_restart,
            on_dead=channels._on_dead,
            on_connect=channels._on_connect,
            subprotocol_choice=subprotocol,
            reconnect=reconnect,
            reconnect_timeout=reconnect_timeout,
            ping_interval=ping_interval,
            kernel_check_interval=kernel_check_interval,
        )
        channels._link = link
        with unwrap_single():
            async with trio.open_nursery() as nursery:
                await nursery.start(link.run)
                try:
                    yield channels
                finally:
                    with trio.CancelScope(shield=True):
                        await channels.aclose()


@asynccontextmanager
async def _server_for(
    server: str | RemoteServer,
    token: str | None,
    ssl_context: ssl.SSLContext | None,
    headers: Mapping[str, str] | None,
) -> AsyncIterator[RemoteServer]:
    if isinstance(server, RemoteServer):
        yield server
        return
    async with open_remote_server(
        server, token=token, ssl_context=ssl_context, headers=headers
    ) as rest:
        yield rest
