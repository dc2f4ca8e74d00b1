"""The channels of a remote kernel, over one Jupyter Server websocket.

:func:`open_remote_channels` yields a :class:`RemoteChannels` with the interface of
:class:`~trio_enchannel.Channels` — the same :class:`~trio_enchannel.MessageChannel`,
:class:`~trio_enchannel.IOPubChannel` and :class:`~trio_enchannel.MultiplexedChannel` views,
statistics, rejects and kernel-death signalling — so the client, the CLI and user code do not
care which transport is underneath. Only the reader differs: one websocket carries all four
channels, and :class:`~trio_enchannel._remote._link.KernelLink` keeps it up.
"""

from __future__ import annotations

import logging
import ssl
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager

import attrs
import trio

from .._channels._core import ChannelHub, check_message
from .._channels._interfaces import ChannelsListener, RejectListener
from .._channels._views import (
    ChannelStatistics,
    IOPubChannel,
    MessageChannel,
    MultiplexedChannel,
    RejectedMessage,
    is_view,
)
from .._errors import KernelDied, RemoteProtocolError
from .._io._errors import ConnectionLost
from .._io._overflow import IOPUB_BUFFER_BYTES, IOPUB_BUFFER_SIZE, BufferOptions, IOPubOverflow
from .._io._stats import PerChannel
from .._util import unwrap_single, worth_logging
from .._validate import (
    check_bool,
    check_choice,
    check_seconds,
    merged_options,
)
from .._wire._framing import peek_channel
from .._wire._message import ChannelName, Message
from .._wire._session import Session
from ._link import KernelLink, LinkState, SubprotocolChoice
from ._rest import RemoteServer, check_connection_options, check_kernel_id, open_remote_server

__all__ = [
    "REMOTE_CHANNEL_DEFAULTS",
    "RemoteChannelOptions",
    "RemoteChannels",
    "RemoteChannelsStatistics",
    "RemoteConnectionStatistics",
    "open_remote_channels",
]

logger = logging.getLogger("trio_enchannel.remote")


@attrs.frozen
class RemoteConnectionStatistics:
    """A snapshot of the websocket connection of :class:`RemoteChannels`.

    Attributes:
        state: ``"connected"``, ``"reconnecting"``, ``"closed"`` or ``"dead"``.
        subprotocol: the framing in use (``"v1.kernel.websocket.jupyter.org"``, or ``None``
            for the legacy JSON framing).
        connections: successful websocket connections (1 + reconnections).
        drops: times the websocket dropped.
        rejected_unknown_channel: rejected frames too broken to tell their channel.
    """

    state: LinkState
    subprotocol: str | None
    connections: int
    drops: int
    rejected_unknown_channel: int = 0


@attrs.frozen
class RemoteChannelsStatistics(PerChannel):
    """A snapshot of every channel's counters, returned by :meth:`RemoteChannels.statistics`.

    Attributes:
        shell, control, stdin, iopub: per-channel :class:`~trio_enchannel.ChannelStatistics`.
        connection: the websocket's :class:`RemoteConnectionStatistics`.
        rejects_unreported: rejects that did not fit in :attr:`RemoteChannels.rejects`.
    """

    shell: ChannelStatistics
    control: ChannelStatistics
    stdin: ChannelStatistics
    iopub: ChannelStatistics
    connection: RemoteConnectionStatistics
    rejects_unreported: int = 0

    @property
    def rejected_total(self) -> int:
        """Rejected frames over all channels (and those of unknown channel)."""
        return super().rejected_total + self.connection.rejected_unknown_channel


#: The options of :func:`open_remote_channels` a ``channel_options`` dict may give, and their
#: defaults (``subprotocol`` and the connection's options are separate arguments there).
REMOTE_CHANNEL_DEFAULTS: Mapping[str, object] = {
    "session": None,
    "buffer_size": 1000,
    "iopub_buffer_size": IOPUB_BUFFER_SIZE,
    "iopub_buffer_bytes": IOPUB_BUFFER_BYTES,
    "iopub_overflow": "drop",
    "multiplexed": False,
    "report_rejects": False,
    "rejects_buffer_size": 100,
    "connect_timeout": 60.0,
    "reconnect": True,
    "reconnect_timeout": 60.0,
    "ping_interval": 10.0,
    "kernel_check_interval": None,
}


@attrs.frozen
class RemoteChannelOptions:
    """The options of :func:`open_remote_channels` (but the server and the kernel), checked
    once by :meth:`build` or :meth:`from_mapping` (use them, not the constructor).

    Attributes:
        buffers: the bounds and policies every opener shares.
        session: the session to build messages with (``None``: a fresh unsigned one).
        subprotocol: the websocket framing to ask for.
        connect_timeout, reconnect, reconnect_timeout, ping_interval, kernel_check_interval:
            see :func:`open_remote_channels`.
    """

    buffers: BufferOptions
    session: Session | None
    subprotocol: SubprotocolChoice
    connect_timeout: float
    reconnect: bool
    reconnect_timeout: float
    ping_interval: float | None
    kernel_check_interval: float | None

    @classmethod
    def build(
        cls,
        *,
        session: object,
        subprotocol: object,
        buffer_size: object,
        iopub_buffer_size: object,
        iopub_buffer_bytes: object,
        iopub_overflow: object,
        multiplexed: object,
        report_rejects: object,
        rejects_buffer_size: object,
        connect_timeout: object,
        reconnect: object,
        reconnect_timeout: object,
        ping_interval: object,
        kernel_check_interval: object,
    ) -> RemoteChannelOptions:
        """The options from :func:`open_remote_channels`' keyword arguments of the same
        names, checked (the error names the argument).

        Raises:
            ConfigurationError: a value is out of range.
            TypeError: a value has the wrong type.
        """
        if session is not None and not isinstance(session, Session):
            raise TypeError(f"session must be a Session or None, got {type(session).__name__}")
        choice: SubprotocolChoice = check_choice(
            "subprotocol", subprotocol, ("auto", "v1", "legacy")
        )
        buffers = BufferOptions.build(
            buffer_size=buffer_size,
            iopub_buffer_size=iopub_buffer_size,
            iopub_buffer_bytes=iopub_buffer_bytes,
            iopub_overflow=iopub_overflow,
            multiplexed=multiplexed,
            report_rejects=report_rejects,
            rejects_buffer_size=rejects_buffer_size,
        )
        return cls(
            buffers=buffers,
            session=session,
            subprotocol=choice,
            reconnect=check_bool("reconnect", reconnect),
            connect_timeout=check_seconds("connect_timeout", connect_timeout, allow_inf=True),
            reconnect_timeout=check_seconds("reconnect_timeout", reconnect_timeout, allow_inf=True),
            ping_interval=_optional_seconds("ping_interval", ping_interval),
            kernel_check_interval=_optional_seconds("kernel_check_interval", kernel_check_interval),
        )

    @classmethod
    def from_mapping(
        cls, label: str, options: object, *, subprotocol: object, connect_timeout: object
    ) -> RemoteChannelOptions:
        """The options from the dict ``options`` (a ``channel_options`` argument named
        ``label``), each key one of :data:`REMOTE_CHANNEL_DEFAULTS`, checked as by
        :meth:`build`; ``connect_timeout`` is the default for the key of that name.

        Raises:
            TypeError: ``options`` is not a dict (or ``None``), a key is unknown, or a value
                has the wrong type.
            ConfigurationError: a value is out of range.
        """
        defaults = {**REMOTE_CHANNEL_DEFAULTS, "connect_timeout": connect_timeout}
        values = merged_options(label, options, defaults)
        return cls.build(**values, subprotocol=subprotocol)


def _optional_seconds(name: str, value: object) -> float | None:
    return None if value is None else check_seconds(name, value)


class RemoteChannels:
    """The channels of a kernel behind a Jupyter Server or Enterprise Gateway.

    What :func:`open_remote_channels` yields; the same interface as
    :class:`~trio_enchannel.Channels`.

    Attributes:
        session: builds the messages you send (its ``session_id`` is the websocket's
            ``session_id``). Messages are not signed on the websocket: the server signs them
            towards the kernel.
        server: the REST client of the server.
        kernel_id: the kernel's id on the server.
        shell: requests and replies (:class:`~trio_enchannel.MessageChannel`).
        control: control requests and replies.
        stdin: ``input_request`` from the kernel, ``input_reply`` to it.
        iopub: outputs and status broadcast by the kernel
            (:class:`~trio_enchannel.IOPubChannel`).
        multiplexed: every channel in one (:class:`~trio_enchannel.MultiplexedChannel`).
    """

    def __init__(
        self,
        server: RemoteServer,
        kernel_id: str,
        session: Session,
        options: BufferOptions,
    ) -> None:
        self.server = server
        self.kernel_id = kernel_id
        self.session = session
        self._closed = False
        self._hub = ChannelHub(
            options,
            send=self._send,
            send_nowait=self._send_nowait,
            opener="open_remote_channels",
            source=f" from kernel {kernel_id}",
        )
        self._listeners: list[ChannelsListener] = []
        self._taps: list[Callable[[Message], None]] = []
        self._death: KernelDied | None = None
        self._link: KernelLink  # set by open_remote_channels
        self.shell = MessageChannel(self._hub, "shell")
        self.control = MessageChannel(self._hub, "control")
        self.stdin = MessageChannel(self._hub, "stdin")
        self.iopub = IOPubChannel(self._hub, "iopub")
        self.multiplexed = MultiplexedChannel(self._hub)

    def __repr__(self) -> str:
        return (
            f"<RemoteChannels {self.state} kernel={self.kernel_id} server={self.server.url} "
            f"{self.session!r}>"
        )

    # -- public API ------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the channels were closed."""
        return self._closed

    @property
    def rejects(self) -> trio.MemoryReceiveChannel[RejectedMessage]:
        """Every frame from the server that could not be decoded, as
        :class:`~trio_enchannel.RejectedMessage` records (``frames`` holds the one websocket
        frame; ``channel`` is ``None`` when the frame is too broken to tell).

        Opt-in: ``open_remote_channels(..., report_rejects=True)``.

        Raises:
            UsageError: the channels were opened without ``report_rejects=True``.
        """
        return self._hub.rejects.receiver

    async def send(self, msg: Message) -> None:
        """Send ``msg`` on the channel named by ``msg.channel`` (shell, control or stdin).

        Waits while the websocket reconnects; the frame is written whole or not at all.

        Raises:
            LocalProtocolError: ``msg.channel`` is ``None`` or ``"iopub"``, or the message
                cannot be encoded (nothing is sent).
            TypeError: ``msg`` is not a :class:`Message`.
            KernelDied: the kernel is gone.
            ConnectionLost: the websocket dropped while the frame was being written.
            trio.ClosedResourceError: the channels (or that channel) were closed.
        """
        await self._hub.send(msg)

    def send_nowait(self, msg: Message) -> None:
        """Send ``msg`` on the channel it names, now, or raise :class:`trio.WouldBlock`.

        The message is encoded at once and queued for the websocket's writer, which writes
        it in order with :meth:`send` (as ZeroMQ queues what ``Channels.send_nowait``
        sends).

        Raises:
            trio.WouldBlock: the websocket is reconnecting, or 1,000 messages already wait
                to be written (nothing was sent).
            LocalProtocolError, TypeError, KernelDied, trio.ClosedResourceError: as for
                :meth:`send`.
        """
        self._hub.send_nowait(msg)

    def statistics(self) -> RemoteChannelsStatistics:
        """A snapshot of every channel's counters and of the websocket connection."""
        link = self._link
        return RemoteChannelsStatistics(
            **self._hub.snapshot(),
            connection=RemoteConnectionStatistics(
                state=link.state,
                subprotocol=link.subprotocol,
                connections=link.connections,
                drops=link.drops,
                rejected_unknown_channel=self._hub.rejects.unknown_channel,
            ),
        )

    @property
    def subprotocol(self) -> str | None:
        """The websocket framing in use (``"v1.kernel.websocket.jupyter.org"``), or ``None``
        for the legacy JSON framing."""
        return self._link.subprotocol

    @property
    def state(self) -> LinkState:
        """``"connected"``, ``"reconnecting"``, ``"closed"`` or ``"dead"``."""
        return self._link.state

    @property
    def died(self) -> KernelDied | None:
        """Why the kernel is dead, once the server says so (reports it ``dead``, or no longer
        has it) or could not be reached for ``reconnect_timeout``; ``None`` while it lives."""
        return self._death

    @property
    def kernel_unresponsive(self) -> bool:
        """Whether the kernel is declared unresponsive, which a remote kernel is only once it
        is dead (:attr:`died`). A websocket that is reconnecting (:attr:`state`) is a passing
        trouble: the kernel lives, and sends wait for the new connection."""
        return self._death is not None

    @property
    def unresponsive_error(self) -> KernelDied | None:
        """The :class:`~trio_enchannel.KernelDied` describing why the kernel is dead, once it
        is (:attr:`died`, what :meth:`wait_unresponsive` returns); ``None`` while it lives."""
        return self._death

    async def wait_unresponsive(self) -> KernelDied:
        """Wait until the kernel is gone: it no longer exists on the server, the server
        reports it ``dead``, or the server could not be reached for ``reconnect_timeout``.

        Passing troubles are not reported here (the kernel is alive and the channels stay
        usable): a dropped websocket, a crashed kernel restarted by the server. Listeners
        (:meth:`add_listener`) are told about those.

        Returns:
            The :class:`KernelDied` describing the death.

        Raises:
            trio.ClosedResourceError: the channels were (or get) closed while the kernel
                lived.
        """
        await self._link.wait_ended()  # dead (reported before waiters run) or closed
        if self._death is None:
            raise trio.ClosedResourceError("the channels are closed")
        return self._death

    async def wait_responsive(self) -> None:
        """Return at once while the kernel lives (a websocket that is reconnecting does not
        make it unresponsive, see :attr:`kernel_unresponsive`).

        Raises:
            KernelDied: the kernel is dead: a remote kernel that is gone never comes back.
            trio.ClosedResourceError: the channels were closed.
        """
        await trio.lowlevel.checkpoint()
        if self._death is not None:
            raise KernelDied(self._death.reason)
        if self._closed:
            raise trio.ClosedResourceError("the channels are closed")

    async def wait_connected(self) -> None:
        """Wait until the websocket is up (at once unless it is reconnecting).

        Raises:
            KernelDied: the kernel is gone.
            trio.ClosedResourceError: the channels were closed.
        """
        await self._link.wait_connected()

    @property
    def iopub_ready(self) -> bool:
        """Whether IOPub messages flow, which they do once connected (see
        :meth:`wait_iopub_ready`)."""
        return self._link.connections > 0

    async def wait_iopub_ready(
        self, *, welcome_grace: float = 0.2, nudge_every: float = 0.5
    ) -> None:
        """Wait until IOPub messages flow.

        The server establishes its subscription to the kernel's IOPub (nudging it with
        ``kernel_info`` requests) before it serves the websocket, so this only waits for the
        connection. ``welcome_grace`` and ``nudge_every`` are checked as by
        :meth:`Channels.wait_iopub_ready <trio_enchannel.Channels.wait_iopub_ready>` and
        otherwise unused: the server does the nudging.

        Raises:
            KernelDied: the kernel is gone.
            trio.ClosedResourceError: the channels were closed.
            ConfigurationError: ``welcome_grace`` is not >= 0 or ``nudge_every`` not > 0.
        """
        check_seconds("welcome_grace", welcome_grace, allow_zero=True, allow_inf=True)
        check_seconds("nudge_every", nudge_every)
        await self._link.wait_connected()

    def add_listener(self, listener: ChannelsListener) -> None:
        """Register an object told about troubles the moment they are noticed.

        Called: ``listener.connection_lost(error)`` when the websocket drops (requests in
        flight should fail with ``error``, a :class:`~trio_enchannel.ConnectionLost`),
        ``listener.kernel_restarted(reason)`` when the server restarted the crashed kernel,
        ``listener.kernel_died(error)`` when the kernel is dead.
        :class:`~trio_enchannel.KernelClient` registers itself. The calls are synchronous,
        from the reader task: keep them short (an exception is logged).
        """
        self._listeners.append(listener)

    def set_consumer(
        self, name: ChannelName, consumer: Callable[[Message], None] | None, *, view: object
    ) -> bool:
        """Hand every message of channel ``name`` to ``consumer`` as it arrives, in place of
        queueing it (``None``: queue again); see :meth:`Channels.set_consumer
        <trio_enchannel.Channels.set_consumer>`."""
        return is_view(view, self._hub, name) and self._hub.set_consumer(name, consumer)

    def add_reject_listener(self, listener: RejectListener) -> None:
        """Accepted for the interface :class:`~trio_enchannel.Channels` shares, never called:
        messages are not signed on the websocket (the server verifies the kernel's), so
        there is nothing to keep."""

    @contextmanager
    def tap(self, callback: Callable[[Message], None]) -> Iterator[None]:
        """Call ``callback`` synchronously with every message received during the block,
        before it is queued for its channel."""
        self._taps.append(callback)
        try:
            yield
        finally:
            self._taps.remove(callback)

    async def aclose(self) -> None:
        """Close the websocket and end the channels; idempotent.

        Messages already received stay receivable; afterwards ``receive`` raises
        :class:`trio.EndOfChannel`.
        """
        if not self._closed:
            self._closed = True
            self._hub.fanout.end()
            await self._link.aclose()
            self._hub.end()
        await trio.lowlevel.checkpoint()

    # -- owner interface of the views -------------------------------------------------------

    async def _send(self, name: ChannelName, msg: Message) -> None:
        if check_message(name, msg).channel is None:
            msg = attrs.evolve(msg, channel=name)
        if self._closed:
            raise trio.ClosedResourceError("the channels are closed")
        await self._link.send(msg)
        self._hub.counters[name].sent += 1

    def _send_nowait(self, name: ChannelName, msg: Message) -> None:
        if check_message(name, msg).channel is None:
            msg = attrs.evolve(msg, channel=name)
        if self._closed:
            raise trio.ClosedResourceError("the channels are closed")
        self._link.send_nowait(msg)
        self._hub.counters[name].sent += 1

    # -- link callbacks ---------------------------------------------------------------------

    async def _deliver(self, msg: Message, nbytes: int) -> None:
        """Hand one message over to its channel's buffer, applying its overflow policy.

        Called by the websocket's only reader: while this waits, nothing else is read. One
        websocket carries every channel: while one consumer lags, the others wait too (and
        pongs queue behind; the server buffers meanwhile).
        """
        name = msg.channel
        assert name is not None
        self._hub.counters[name].received += 1
        for tap in self._taps:
            tap(msg)
        await self._hub.deliver(name, msg, nbytes)

    def _on_repaired(self, msg: Message) -> None:
        """Link callback: ``msg`` held invalid UTF-8, decoded as U+FFFD (counted, logged)."""
        name = msg.channel
        assert name is not None
        count = self._hub.counters[name].repaired()
        if worth_logging(count):
            logger.warning(
                "accepted a %s message from kernel %s on %s with invalid UTF-8, replaced with "
                "U+FFFD (%d so far; statistics().%s.invalid_utf8)",
                msg.msg_type,
                self.kernel_id,
                name,
                count,
                name,
            )

    def _reject(self, frame: str | bytes, error: RemoteProtocolError) -> None:
        """Link callback: ``frame`` could not be decoded (counted, logged, reported)."""
        raw = frame.encode("utf-8", "surrogateescape") if isinstance(frame, str) else frame
        self._hub.reject(peek_channel(frame), (raw,), error)

    def _notify(self, call: Callable[[ChannelsListener], None], what: str) -> None:
        for listener in list(self._listeners):
            try:
                call(listener)
            except Exception:  # a listener's bug must not stop the websocket reader
                logger.exception("listener %r failed in %s", listener, what)

    def _on_connect(self) -> None:
        pass

    def _on_drop(self, error: ConnectionLost) -> None:
        self._notify(lambda listener: listener.connection_lost(error), "connection_lost")

    def _on_restart(self, reason: str) -> None:
        self._notify(lambda listener: listener.kernel_restarted(reason), "kernel_restarted")

    def _on_dead(self, error: KernelDied) -> None:
        self._death = error
        self._hub.fanout.end(error)
        self._notify(lambda listener: listener.kernel_died(error), "kernel_died")


@asynccontextmanager
async def open_remote_channels(
    server: str | RemoteServer,
    kernel_id: str,
    *,
    token: str | None = None,
    session: Session | None = None,
    subprotocol: SubprotocolChoice = "auto",
    buffer_size: int = 1000,
    iopub_buffer_size: int | None = IOPUB_BUFFER_SIZE,
    iopub_buffer_bytes: int = IOPUB_BUFFER_BYTES,
    iopub_overflow: IOPubOverflow = "drop",
    multiplexed: bool = False,
    report_rejects: bool = False,
    rejects_buffer_size: int = 100,
    connect_timeout: float = 60.0,
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

    The websocket (``/api/kernels/{id}/channels``) is connected before the body runs, so a
    wrong token or an unknown kernel fails here. When it drops while the kernel lives, it is
    reconnected with exponential backoff: requests in flight fail (listeners are told, see
    :meth:`RemoteChannels.add_listener`), sends wait for the new connection, and the server
    replays what it buffered meanwhile. When the server reports the kernel ``dead``, or it no
    longer exists, the kernel is declared gone (:meth:`RemoteChannels.wait_unresponsive`).

    Backpressure: each channel hands messages over through a bounded buffer, as with
    :func:`~trio_enchannel.open_channels`, but one websocket carries every channel and one
    reader task reads it, in order. When a shell, control or stdin buffer is full (it holds
    ``buffer_size`` messages) the reader waits for that consumer, resuming once the buffer is
    half empty: replies are never dropped, but nothing else is read meanwhile. For IOPub
    there is no ZeroMQ high-water mark on this path to drop messages unseen: every IOPub
    frame that arrives on the websocket is either buffered or counted as dropped here. (The
    server applies its own policy before that: Jupyter Server, by default, stops forwarding
    IOPub output above 1,000 messages/s or 1 MB/s of stream data, its
    ``iopub_msg_rate_limit`` and ``iopub_data_rate_limit``, and says so in a stderr
    ``stream`` message; what it withholds is not counted here.)

    * ``iopub_overflow="drop"`` (default): the reader never waits for the IOPub consumer; it
      keeps reading the websocket (replies on the other channels and pongs keep flowing).
      When the IOPub buffer holds ``iopub_buffer_size`` messages or ``iopub_buffer_bytes``
      bytes (the websocket frames' sizes), each new IOPub message is dropped and counted
      (``statistics().iopub.dropped``, :attr:`~trio_enchannel.IOPubChannel.dropped`,
      :meth:`~trio_enchannel.IOPubChannel.wait_dropped`) and a warning is logged on the
      ``trio_enchannel.channels`` logger (at the first drop, then at most every 10 s).
      ``status`` messages are kept even then (a client waits for ``idle`` to end an
      execution), up to 1,000 beyond the bound. The oldest messages are kept, the newest
      dropped; an empty buffer takes any message, whatever its size, and
      :meth:`~trio_enchannel.IOPubChannel.dropped_for` counts the drops of one request.
      Memory on this side stays bounded by the buffers and the one websocket message being
      read.
    * ``iopub_overflow="wait"``: while the IOPub buffer is full the reader stops reading the
      websocket, resuming once the buffer is half empty. Nothing is dropped on this side,
      but the replies of the other channels wait behind IOPub (a ping unanswered meanwhile
      is not taken for a dead connection), and what the kernel publishes meanwhile piles up
      in TCP buffers and then in the server's memory (Jupyter Server does not bound it).

    Args:
        server: the server's URL, or an open :class:`RemoteServer` (then ``token``,
            ``ssl_context`` and ``headers`` come from it).
        kernel_id: the kernel's id (from :meth:`RemoteServer.start_kernel` or
            :meth:`RemoteServer.list_kernels`).
        token: the server's token.
        session: the :class:`Session` to build messages with (a fresh unsigned one by
            default); its ``session_id`` becomes the websocket's ``session_id``, reused on
            every reconnection.
        subprotocol: ``"auto"`` (the binary ``v1.kernel.websocket.jupyter.org`` framing when
            the server offers it, else legacy JSON), ``"v1"`` (required) or ``"legacy"``.
        buffer_size: messages buffered per channel for shell, control and stdin (at least
            1: ``0`` means 1, as in every opener; in multiplexed mode, how full the shared
            buffer may be before the reader waits for a message of those channels).
        iopub_buffer_size: messages buffered for IOPub (at least 1; ``None``: the default,
            10,000).
        iopub_buffer_bytes: bytes (the websocket frames' sizes) buffered for IOPub
            (default 32 MiB).
        iopub_overflow: ``"drop"`` or ``"wait"``, see above.
        multiplexed: deliver every message to :attr:`RemoteChannels.multiplexed`.
        report_rejects: make :attr:`RemoteChannels.rejects` available.
        rejects_buffer_size: how many unread rejects it holds.
        connect_timeout: seconds allowed for the websocket handshake. The server answers it
            only once the kernel replies to ``kernel_info`` (Jupyter Server waits up to its
            ``kernel_info_timeout``, 60 s), so a kernel still starting takes a while.
        reconnect: reconnect when the websocket drops while the kernel lives (``False``:
            a drop declares the kernel gone).
        reconnect_timeout: seconds without a connection before the kernel is declared gone.
        ping_interval: seconds between websocket pings; a ping unanswered within as long
            means a dead connection. ``None`` disables pings.
        kernel_check_interval: seconds between REST checks that the kernel still exists
            (``None``: only when a drop or a ``shutdown_reply`` suggests it).
        ssl_context: TLS settings for ``https``/``wss`` servers.
        headers: extra HTTP headers for the REST calls and the websocket handshake.

    Raises:
        RemoteAuthenticationError: the token was refused.
        RemoteKernelNotFound: the server has no such kernel.
        RemoteServerError: the server is unreachable, refused the websocket, or does not
            offer the required subprotocol.
        ConfigurationError: an option is invalid (the message names it), checked before
            anything is read or connected.
        TypeError: an argument has the wrong type.
    """
    check_connection_options(server=server, token=token, ssl_context=ssl_context, headers=headers)
    check_kernel_id(kernel_id)
    options = RemoteChannelOptions.build(
        session=session,
        subprotocol=subprotocol,
        buffer_size=buffer_size,
        iopub_buffer_size=iopub_buffer_size,
        iopub_buffer_bytes=iopub_buffer_bytes,
        iopub_overflow=iopub_overflow,
        multiplexed=multiplexed,
        report_rejects=report_rejects,
        rejects_buffer_size=rejects_buffer_size,
        connect_timeout=connect_timeout,
        reconnect=reconnect,
        reconnect_timeout=reconnect_timeout,
        ping_interval=ping_interval,
        kernel_check_interval=kernel_check_interval,
    )
    async with (
        _server_for(server, token, ssl_context, headers) as rest,
        open_remote_channels_with(rest, kernel_id, options) as channels,
    ):
        yield channels


@asynccontextmanager
async def open_remote_channels_with(
    rest: RemoteServer, kernel_id: str, options: RemoteChannelOptions
) -> AsyncIterator[RemoteChannels]:
    """:func:`open_remote_channels` on an open server, with its options already checked
    (:class:`RemoteChannelOptions`): the entry point of ``open_remote_kernel``."""
    session = options.session
    if session is None:
        session = Session(session_id=uuid.uuid4().hex)
    channels = RemoteChannels(rest, kernel_id, session, options.buffers)
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
        on_repaired=channels._on_repaired,
        make_probe=lambda: session.message("kernel_info_request", channel="shell"),
        subprotocol_choice=options.subprotocol,
        connect_timeout=options.connect_timeout,
        reconnect=options.reconnect,
        reconnect_timeout=options.reconnect_timeout,
        ping_interval=options.ping_interval,
        ping_timeout=options.ping_interval if options.ping_interval is not None else 10.0,
        kernel_check_interval=options.kernel_check_interval,
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
        await trio.lowlevel.checkpoint()
        yield server
        return
    async with open_remote_server(
        server, token=token, ssl_context=ssl_context, headers=headers
    ) as rest:
        yield rest
