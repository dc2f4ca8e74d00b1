"""open_channels(): the Jupyter channels of a running kernel, as Trio channels.

One reader task per socket drains every ready message per wake-up, verifies and decodes it with
the connection's :class:`Session`, and hands it over in order through a bounded memory
channel. Invalid messages are counted, logged and (on request) reported, never delivered.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

import trio

from .._errors import (
    REASON_HANDSHAKE_FAILED,
    REASON_KEY_MISSING,
    ConnectionInfoError,
    EncryptionUnavailable,
    KernelDied,
    RemoteProtocolError,
)
from .._io._connection_file import load_connection_info
from .._io._fanout import Fanout
from .._io._overflow import (
    IOPUB_BUFFER_BYTES,
    IOPUB_BUFFER_SIZE,
    IOPubOverflow,
    must_drop,
)
from .._io._stats import Counters, RecentIds, decoding_bug
from .._io._zmq import (
    HANDSHAKE_EVENTS,
    Frame,
    SocketEvent,
    SocketKind,
    SocketMonitor,
    TrioSocket,
    curve_keypair,
    has_curve,
)
from .._util import unwrap_single, worth_logging
from .._validate import check_seconds
from .._wire._connection import ConnectionInfo, SocketName
from .._wire._message import CHANNEL_NAMES, ChannelName, Message
from .._wire._session import DELIMITER, Session, warn_if_unsigned
from ._core import ChannelHub, check_message
from ._heartbeat import Heartbeat
from ._interfaces import ChannelsListener, RejectListener
from ._options import IOPUB_HWM, ChannelOptions
from ._views import (
    ChannelsStatistics,
    ChannelStatistics,
    IOPubChannel,
    MessageChannel,
    MultiplexedChannel,
    RejectedMessage,
    is_view,
)

__all__ = [
    "ChannelStatistics",
    "Channels",
    "ChannelsStatistics",
    "IOPubChannel",
    "IOPubOverflow",
    "MessageChannel",
    "MultiplexedChannel",
    "RejectedMessage",
    "open_channels",
]

logger = logging.getLogger("trio_enchannel.channels")

_SOCKET_KIND: dict[ChannelName, SocketKind] = {
    "shell": "DEALER",
    "control": "DEALER",
    "stdin": "DEALER",
    "iopub": "SUB",
}
_BATCH = 1000
#: The channels whose kernel end is a ROUTER, which drops messages for unknown peers.
_ROUTED: tuple[ChannelName, ...] = ("shell", "control", "stdin")
#: Handshakes failed without detail in a row, on a socket that never completed one, after
#: which the failure is final. libzmq retries every 100-200 ms and reports such a failure at
#: each attempt when the kernel refuses our CurveZMQ keys (a wrong ``curve_publickey``); one
#: alone may be a kernel that went away mid-handshake.
HANDSHAKE_ATTEMPTS = 3
#: The sockets whose handshakes are watched.
_MONITORED: tuple[SocketName, ...] = (*CHANNEL_NAMES, "hb")
#: Rejection reasons that say the kernel signs differently from us (see add_reject_listener).
_SIGNATURE_REASONS = frozenset(("invalid_signature", "unsigned"))
#: The largest parent header a rejected message may have for its claimed parent to be read.
_CLAIM_LIMIT = 4096


class Channels:
    """The channels of one kernel connection; what :func:`open_channels` yields.

    Attributes:
        session: the :class:`Session` that signs outgoing and verifies incoming messages;
            build every message you send with it (``ch.session.message(...)``).
        info: the connection info.
        identity: the ZeroMQ routing id of the shell, control and stdin sockets.
        shell: requests and replies (:class:`MessageChannel`).
        control: control requests and replies (:class:`MessageChannel`).
        stdin: ``input_request`` from the kernel, ``input_reply`` to it
            (:class:`MessageChannel`).
        iopub: outputs and status broadcast by the kernel (:class:`IOPubChannel`).
        multiplexed: every channel in one (:class:`MultiplexedChannel`).
        heartbeat: the heartbeat monitor (:class:`Heartbeat`).
    """

    def __init__(
        self,
        info: ConnectionInfo,
        session: Session,
        identity: bytes,
        options: ChannelOptions,
        curve: tuple[str, str] | None,
        heartbeat: Heartbeat,
    ) -> None:
        self.info = info
        self.session = session
        self.identity = identity
        self._options = options
        self._curve = curve
        self._closed = False
        self._sockets: dict[SocketName, TrioSocket] = {}
        self._scopes: list[trio.CancelScope] = []
        self._hub = ChannelHub(
            options.buffers,
            send=self._send,
            send_nowait=self._send_nowait,
            opener="open_channels",
        )
        self._iopub_ready = False
        self._iopub_wakeup = trio.Event()
        # wait_iopub_ready's kernel_info nudges: what they cause is not delivered.
        self._nudges = RecentIds()
        self._nudge_lock = trio.Lock()
        # Every socket's handshakes are watched: IOPub's and the heartbeat's (across the
        # sockets it makes, until one succeeds) for _fail_handshake only, the routed ones for
        # wait_connected too.
        self._monitors: dict[SocketName, SocketMonitor] = {}
        self._connected: dict[ChannelName, bool] = dict.fromkeys(_ROUTED, False)
        self._handshake_failures: dict[SocketName, SocketEvent] = {}
        # Final: a socket that never completed a handshake failed in a way retrying will not
        # fix. Every waiter gets it (see _fail_handshake).
        self._handshake_error: str | None = None
        # Its ConnectionInfoError.reason: "key_missing" when the kernel signs and we have no
        # key (see _unverified), which fails the routed channels only.
        self._handshake_reason = REASON_HANDSHAKE_FAILED
        self._handshake_misses: dict[SocketName, int] = dict.fromkeys(_MONITORED, 0)
        self._ever_connected: set[SocketName] = set()
        self._send_scopes: set[trio.CancelScope] = set()
        self._reject_listeners: list[RejectListener] = []
        self._listeners: list[ChannelsListener] = []
        self._signature_rejected: tuple[ChannelName, RemoteProtocolError] | None = None
        self._connection_changed = trio.Event()
        self.shell = MessageChannel(self._hub, "shell")
        self.control = MessageChannel(self._hub, "control")
        self.stdin = MessageChannel(self._hub, "stdin")
        self.iopub = IOPubChannel(self._hub, "iopub")
        self.multiplexed = MultiplexedChannel(self._hub)
        self.heartbeat = heartbeat

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Channels {state} {self.info.transport}://{self.info.ip} {self.session!r}>"

    # -- public API ------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the channels were closed."""
        return self._closed

    @property
    def rejects(self) -> trio.MemoryReceiveChannel[RejectedMessage]:
        """Every rejected message with its error, as :class:`RejectedMessage` records.

        Opt-in: ``open_channels(..., report_rejects=True)``. When its buffer is full further
        rejects are only counted (``statistics().rejects_unreported``); readers never wait.

        Raises:
            UsageError: the channels were opened without ``report_rejects=True``.
        """
        return self._hub.rejects.receiver

    async def send(self, msg: Message) -> None:
        """Send ``msg`` on the channel named by ``msg.channel`` (shell, control or stdin).

        Raises:
            LocalProtocolError: ``msg.channel`` is ``None`` or ``"iopub"``, or the message
                cannot be encoded (nothing is sent).
            TypeError: ``msg`` is not a :class:`Message`.
            trio.ClosedResourceError: the channels (or that channel) were closed.
            trio.BrokenResourceError: the socket failed.
        """
        await self._hub.send(msg)

    def send_nowait(self, msg: Message) -> None:
        """Send ``msg`` on the channel it names, now, or raise :class:`trio.WouldBlock`.

        Raises:
            trio.WouldBlock: ZeroMQ's queue is full (nothing was sent).
            LocalProtocolError, TypeError, trio.ClosedResourceError,
            trio.BrokenResourceError: as for :meth:`send`.
        """
        self._hub.send_nowait(msg)

    def statistics(self) -> ChannelsStatistics:
        """A snapshot of every channel's counters and the heartbeat's state."""
        return ChannelsStatistics(**self._hub.snapshot(), heartbeat=self.heartbeat.statistics())

    @property
    def kernel_unresponsive(self) -> bool:
        """Whether the heartbeat currently declares the kernel unresponsive."""
        return self.heartbeat.state == "unresponsive"

    async def wait_unresponsive(self) -> KernelDied:
        """Wait until the heartbeat declares the kernel unresponsive (see
        :meth:`Heartbeat.wait_unresponsive`).

        Returns:
            A :class:`KernelDied` describing the silence.

        Raises:
            trio.ClosedResourceError: the channels were closed while waiting.
        """
        return await self.heartbeat.wait_unresponsive()

    @property
    def unresponsive_error(self) -> KernelDied | None:
        """The :class:`KernelDied` describing the silence while the heartbeat declares the
        kernel unresponsive (what :meth:`wait_unresponsive` returns), else ``None``."""
        return self.heartbeat.unresponsive_error

    async def wait_responsive(self) -> None:
        """Wait until the kernel answers a heartbeat ping (at once if the last one was, or
        without heartbeat monitoring: nothing then says it does not answer).

        Raises:
            trio.ClosedResourceError: the channels were closed while waiting.
        """
        if not self.heartbeat.enabled:
            if self._closed:
                raise trio.ClosedResourceError("the channels are closed")
            await trio.lowlevel.checkpoint()
            return
        await self.heartbeat.wait_responsive()

    def add_listener(self, listener: ChannelsListener) -> None:
        """Register a listener (an object with ``connection_lost(error)``,
        ``kernel_restarted(reason)`` and ``kernel_died(error)`` methods), as
        :meth:`RemoteChannels.add_listener <trio_enchannel.RemoteChannels.add_listener>` does.
        ZeroMQ channels never call it: ZeroMQ reconnects without losing what is queued, and a
        launcher, not the channels, learns that the kernel process died (it tells the client
        with :meth:`KernelClient.declare_dead <trio_enchannel.KernelClient.declare_dead>`).
        """
        self._listeners.append(listener)

    @property
    def iopub_ready(self) -> bool:
        """Whether a valid IOPub message has arrived, so the subscription is ready."""
        return self._iopub_ready

    async def wait_iopub_ready(
        self, *, welcome_grace: float = 0.2, nudge_every: float = 0.5
    ) -> None:
        """Wait until the IOPub subscription is ready: messages published from now on reach
        :attr:`iopub`.

        A kernel speaking protocol 5.5 with an XPUB socket (ipykernel 7) announces the
        subscription with ``iopub_welcome``; that (or any valid IOPub message) ends the wait.
        If nothing arrives within ``welcome_grace`` seconds, a ``kernel_info_request`` is sent
        on shell every ``nudge_every`` seconds until IOPub traffic arrives. Those internal
        requests' replies, and the IOPub messages they cause, are not delivered.

        Raises:
            ConnectionInfoError: the ZeroMQ handshake failed for good (see
                :meth:`wait_connected`).
            KernelDied: the heartbeat declares the kernel unresponsive (at once if it
                already does, else within ``nudge_every`` seconds of the verdict).
            trio.ClosedResourceError: the channels were closed while waiting.
            ConfigurationError: ``welcome_grace`` is not >= 0 or ``nudge_every`` not > 0
                (``0`` would flood the kernel with requests).
        """
        check_seconds("welcome_grace", welcome_grace, allow_zero=True, allow_inf=True)
        check_seconds("nudge_every", nudge_every)
        if self._iopub_ready:
            await trio.lowlevel.checkpoint()
            return
        if self._closed:
            raise trio.ClosedResourceError("the channels are closed")
        self._check_handshake()
        self._check_unresponsive()
        with trio.move_on_after(welcome_grace):
            await self._iopub_wakeup.wait()
        async with self._nudge_lock:
            while not self._iopub_ready:
                if self._closed:
                    raise trio.ClosedResourceError("the channels are closed")
                self._check_handshake()
                self._check_unresponsive()
                nudge = self.session.message("kernel_info_request", channel="shell")
                self._nudges.add(nudge.msg_id)
                await self._send("shell", nudge)
                with trio.move_on_after(nudge_every):
                    await self._iopub_wakeup.wait()

    @property
    def connected(self) -> bool:
        """Whether shell, control and stdin have all completed their ZeroMQ handshake with the
        kernel (see :meth:`wait_connected`)."""
        return all(self._connected.values())

    async def wait_connected(self) -> None:
        """Wait until shell, control and stdin have all completed their ZeroMQ handshake with
        the kernel (at once if they have).

        The kernel's ROUTER sockets silently drop what they send to a client whose
        connection is not complete yet. Replies cannot be lost that way (the request came
        through the same connection), but a message the *kernel* starts, such as an
        ``input_request`` on stdin, can: the client's sockets connect independently, and
        one may still be retrying (every 100-200 ms) while the kernel already answers on
        another. After this returns, all three are connected (a kernel that restarts
        resets it until they reconnect). :meth:`KernelClient.wait_ready
        <trio_enchannel.KernelClient.wait_ready>` calls it. Opening the channels
        never waits for this (a launcher connects before the kernel binds); bound the wait
        with :func:`trio.fail_after`.

        Raises:
            ConnectionInfoError: the handshake failed for a reason that retrying will not
                fix: the peer does not speak ZeroMQ, or not with our security mechanism,
                or it refused our CurveZMQ keys (wrong ``curve_publickey``). When that
                happens on a socket that never completed a handshake, the failure is final
                (:meth:`handshake_error`): every send, receive and wait of these channels
                raises it too.
            KernelDied: no socket ever reached the kernel and the heartbeat declares it
                unresponsive (a stale connection file: nothing listens).
            trio.ClosedResourceError: the channels were (or get) closed.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            if self._closed:
                raise trio.ClosedResourceError("the channels are closed")
            self._check_handshake()
            failed = [(n, e) for n, e in self._handshake_failures.items() if n in _ROUTED]
            if failed:
                name, event = failed[0]
                raise ConnectionInfoError(
                    _describe_handshake_failure(name, event), reason=REASON_HANDSHAKE_FAILED
                )
            self._check_never_reached()
            if all(self._connected.values()):
                await trio.lowlevel.cancel_shielded_checkpoint()
                return
            await self._connection_changed.wait()

    def set_consumer(
        self, name: ChannelName, consumer: Callable[[Message], None] | None, *, view: object
    ) -> bool:
        """Hand every message of channel ``name`` to ``consumer`` from the reader, in place
        of queueing it for ``ch.<name>.receive()`` (``None``: queue again). For a sole
        reader whose handling is synchronous and never blocks (the client's dispatcher):
        it saves a task switch per message. What is already queued is handed over first;
        the end of the channel still reaches ``receive()``. ``view`` is what the consumer
        would otherwise receive from: nothing changes unless it is ``ch.<name>`` itself (a
        wrapper that intercepts ``receive()`` is never bypassed).

        Returns:
            Whether anything changed (``False`` for another ``view``, in multiplexed mode,
            or once ``ch.<name>`` was closed).
        """
        return is_view(view, self._hub, name) and self._hub.set_consumer(name, consumer)

    def add_reject_listener(self, listener: RejectListener) -> None:
        """Call ``listener(channel, parent_id, error)`` for every message rejected for its
        signature (``error.reason`` ``"invalid_signature"`` or ``"unsigned"``): what a
        kernel that signs with another key or scheme sends.

        ``parent_id`` is the ``msg_id`` its parent header *claims* (read from at most 4 KiB,
        ``None`` if there is none): unverified, so use it only to tell a request that an
        answer to it was rejected, never as information. Called synchronously by the
        reader that rejected the message: keep it short. A
        :class:`~trio_enchannel.KernelClient` registers itself to fail the calls waiting
        for such answers with :class:`~trio_enchannel.SignatureMismatch`.

        If messages were rejected for their signature before any valid message arrived,
        ``listener`` is called at once for the last of them (with ``parent_id`` ``None``):
        a kernel that signs differently may never send anything else.
        """
        self._reject_listeners.append(listener)
        rejected = self._signature_rejected
        if rejected is not None and not self._hub.any_received():
            listener(rejected[0], None, rejected[1])

    @property
    def handshake_error(self) -> ConnectionInfoError | None:
        """Why these channels can never talk to the kernel, once that is known; else ``None``.

        Set (``reason`` ``"handshake_failed"``) when a ZeroMQ handshake of any socket
        (shell, control, stdin, IOPub or the heartbeat's) fails on a socket that never
        completed one, in a way retrying will not fix: at the first failure that names a
        protocol or an authentication problem (a plain client and an encrypting kernel, or
        the reverse), or after three failures in a row without detail
        (what libzmq reports when the kernel cannot decrypt our greeting: a wrong
        ``curve_publickey``; the heartbeat's count across the sockets it makes). From then on
        every send, every receive once the messages already received are consumed,
        :meth:`wait_connected` and :meth:`wait_iopub_ready` raise it (a fresh
        :class:`ConnectionInfoError` each time), and so does every call of a
        :class:`~trio_enchannel.KernelClient` on these channels.

        Also set (``reason`` ``"key_missing"``) when these channels have no key and a signed
        message arrives on IOPub before any on shell, control or stdin: the kernel signs, so
        it drops every message we send unsigned. Then sends on shell, control and stdin,
        their receives once drained and :meth:`wait_connected` raise it, and so does every
        request of a client; IOPub keeps delivering (listening needs no key). Counted in
        ``statistics().iopub.unverified`` and logged once. In multiplexed mode the one
        receiver (:attr:`multiplexed`) is not failed: it keeps delivering what arrives on
        every channel, while sends on shell, control and stdin still raise.
        """
        if self._handshake_error is None:
            return None
        return ConnectionInfoError(self._handshake_error, reason=self._handshake_reason)

    async def aclose(self) -> None:
        """Close every socket and stop the readers and the heartbeat; idempotent.

        Messages already received stay receivable; afterwards :meth:`MessageChannel.receive`
        raises :class:`trio.EndOfChannel`.
        """
        self._close()
        await trio.lowlevel.checkpoint()

    # -- internals ------------------------------------------------------------------------

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for scope in self._scopes:
            scope.cancel()
        for sock in self._sockets.values():
            sock.close()
        self._iopub_wakeup.set()
        self._connection_changed.set()
        self._hub.fanout.end()
        self._hub.rejects.close()

    def _frames(self, name: ChannelName, msg: Message) -> list[bytes | memoryview]:
        return self.session.serialize(check_message(name, msg), identities=())

    def _socket_for(self, name: ChannelName) -> TrioSocket:
        sock = self._sockets.get(name)
        if sock is None or self._closed:
            raise trio.ClosedResourceError("the channels are closed")
        return sock

    def _check_handshake(self) -> None:
        if self._handshake_error is not None:
            raise ConnectionInfoError(self._handshake_error, reason=self._handshake_reason)

    async def _send(self, name: ChannelName, msg: Message) -> None:
        # _frames and _socket_for, inline: every message sent comes here.
        frames = self.session.serialize(check_message(name, msg), identities=())
        sock = self._sockets.get(name)
        if sock is None or self._closed:
            raise trio.ClosedResourceError("the channels are closed")
        if self._handshake_error is not None:
            self._check_handshake()  # raises
        if self._connected.get(name, True):
            await sock.send_multipart(frames)
        else:
            # Not connected yet: a DEALER without a peer waits to send, and would wait
            # forever if the handshake cannot succeed; _fail_handshake wakes it.
            with trio.CancelScope() as scope:
                self._send_scopes.add(scope)
                try:
                    await sock.send_multipart(frames)
                finally:
                    self._send_scopes.discard(scope)
            if scope.cancelled_caught:  # nothing was sent
                self._check_handshake()
        self._hub.counters[name].sent += 1

    def _send_nowait(self, name: ChannelName, msg: Message) -> None:
        frames = self._frames(name, msg)
        sock = self._socket_for(name)
        self._check_handshake()
        sock.send_multipart_nowait(frames)
        self._hub.counters[name].sent += 1

    def _fail_handshake(self, name: SocketName, event: SocketEvent) -> None:
        """The handshake of ``name`` failed for good: tell every waiter."""
        if self._handshake_error is not None:
            return
        text = _describe_handshake_failure(name, event)
        if event.name == "handshake_failed":
            text += f" ({HANDSHAKE_ATTEMPTS} attempts in a row)"
        if name == "hb":
            # Failing at once beats the heartbeat's later "no heartbeat reply", which would
            # blame the kernel; but the other sockets may work: say what does without it.
            text += (
                "; only the heartbeat socket failed (the others may work): open the "
                "channels or client with heartbeat=False to do without it"
            )
        else:
            text += "; these channels cannot talk to the kernel"
        self._hub.fail(self._give_up(text, REASON_HANDSHAKE_FAILED))
        self._iopub_wakeup.set()

    def _give_up(self, text: str, reason: str) -> Callable[[], ConnectionInfoError]:
        """Record why these channels can never reach the kernel (:meth:`handshake_error`),
        log it once and stop the sends waiting for a peer; return what makes the error each
        waiter gets."""
        self._handshake_error = text
        self._handshake_reason = reason
        logger.error("%s", text)
        for scope in self._send_scopes:
            scope.cancel()
        return lambda: ConnectionInfoError(text, reason=reason)

    def _unverified(self, name: ChannelName, new: int) -> None:
        """``new`` messages of channel ``name`` carried a signature that our empty key
        could not verify: the kernel signs. Count them; at the first on IOPub (unless the
        kernel has answered us, which a kernel that verifies would not), the kernel is known
        to drop every request we send: refuse to send and fail the routed channels' waiters
        with ``ConnectionInfoError`` (``reason`` ``"key_missing"``). IOPub keeps delivering:
        listening needs no key."""
        self._hub.counters[name].unverified += new
        if (
            name != "iopub"
            or self._handshake_error is not None
            or any(self._hub.counters[routed].received for routed in _ROUTED)
        ):
            return
        text = (
            "the kernel signs its messages and this connection has no key, so the kernel "
            "drops every request sent to it unsigned; give the client the key the kernel "
            "was started with (a kernel started with an empty key that signs all the same, "
            "as xeus-python does, must be started with a key); listening to IOPub works "
            "without it"
        )
        error = self._give_up(text, REASON_KEY_MISSING)
        inboxes = self._hub.inboxes
        for routed in _ROUTED:
            if inboxes[routed] is not inboxes["iopub"]:  # (multiplexed: one inbox)
                inboxes[routed].fail(error)
        self._notify_connection_changed()

    def _reject(
        self, name: ChannelName, frames: Sequence[Frame], error: RemoteProtocolError
    ) -> None:
        self._hub.reject(name, tuple(frames), error)
        if error.reason in _SIGNATURE_REASONS:
            self._signature_rejected = (name, error)
            if self._reject_listeners:
                parent_id = claimed_parent_id(frames)
                for listener in self._reject_listeners:
                    listener(name, parent_id, error)

    def _make_socket(self, kind: SocketKind, name: SocketName) -> TrioSocket:
        options = self._options
        url = self.info.url(name)
        sock = TrioSocket(kind, linger=options.linger)
        try:
            if self._curve is not None:
                assert self.info.curve_publickey is not None
                public, secret = self._curve
                sock.set_curve_client(
                    self.info.curve_publickey, public_key=public, secret_key=secret
                )
            if kind == "DEALER":
                sock.set_identity(self.identity)
                # Never let the kernel's ROUTER drop a reply for want of room on our side:
                # replies are bounded by our own requests.
                sock.set_option("RCVHWM", 0)
            elif kind == "SUB":
                sock.set_option("RCVHWM", options.iopub_hwm)
                for topic in options.iopub_topics:
                    sock.subscribe(topic)
            # A ROUTER drops what it sends to a peer whose handshake is not complete: watch
            # ours (see wait_connected), and every socket's for a handshake that cannot
            # succeed (_fail_handshake) until it succeeds once. Opened before connecting:
            # no event missed.
            if name in _ROUTED or name not in self._ever_connected:
                self._monitors[name] = sock.open_monitor()
            try:
                sock.connect(url)
            except trio.BrokenResourceError as exc:
                raise ConnectionInfoError(
                    f"cannot connect the {name} socket to {url}: {exc}"
                ) from exc
        except BaseException:
            sock.close(linger=0)
            monitor = self._monitors.pop(name, None)
            if monitor is not None:
                monitor.close()
            raise
        self._sockets[name] = sock
        return sock

    async def _watch_connection(self, name: SocketName) -> None:
        """Follow the handshakes of socket ``name`` (see :meth:`wait_connected` and
        :meth:`handshake_error`), and of the sockets that replace it (the heartbeat makes a
        new one after each missed echo; its failures count across them)."""
        monitor = self._monitors.get(name)
        if monitor is None:  # (gone already: a heartbeat socket that failed to open took it)
            return
        scope = trio.CancelScope()
        self._scopes.append(scope)
        if self._closed:
            scope.cancel()
        with scope:
            while True:
                try:
                    await self._follow(name, monitor)
                finally:
                    monitor.close()
                replaced = self._monitors.get(name)
                if replaced is None or replaced is monitor or self._closed:
                    return
                monitor = replaced

    async def _follow(self, name: SocketName, monitor: SocketMonitor) -> None:
        """The events of one socket of ``name``, until its monitor stops."""
        succeeded = "handshake_succeeded" if HANDSHAKE_EVENTS else "connected"
        routed = name in _ROUTED
        while True:
            try:
                event = await monitor.receive()
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                return
            if event.name == succeeded:
                if routed:
                    self._connected[cast(ChannelName, name)] = True
                self._ever_connected.add(name)
                self._handshake_misses[name] = 0
                self._handshake_failures.pop(name, None)
                if name == "hb":
                    # Its failures are never final now: its later sockets go unwatched.
                    # (IOPub's monitor stays until the channels close: a call on the
                    # socket from this task would run the reader's receive hook.)
                    return
            elif event.name == "disconnected":
                if routed:
                    self._connected[cast(ChannelName, name)] = False
            elif event.name in ("handshake_failed_protocol", "handshake_failed_auth"):
                if name not in self._handshake_failures:
                    logger.warning(
                        "the ZeroMQ handshake of the %s socket with %s failed (%s)",
                        "heartbeat" if name == "hb" else name,
                        event.endpoint,
                        event.name,
                    )
                self._handshake_failures[name] = event
                if name not in self._ever_connected:
                    self._fail_handshake(name, event)
            elif event.name == "handshake_failed":
                self._handshake_misses[name] += 1
                if (
                    name not in self._ever_connected
                    and self._handshake_misses[name] >= HANDSHAKE_ATTEMPTS
                ):
                    self._handshake_failures[name] = event
                    self._fail_handshake(name, event)
            elif event.name == "monitor_stopped":
                return
            else:
                continue
            self._notify_connection_changed()

    async def _run_heartbeat(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        scope = trio.CancelScope()
        self._scopes.append(scope)
        if self._closed:
            scope.cancel()
        with scope:
            await self.heartbeat.run(task_status=task_status)

    async def _watch_verdict(self) -> None:
        """Wake wait_connected() when the heartbeat declares the kernel unresponsive (a
        kernel never reached is then known to be dead)."""
        try:
            while True:
                await self.heartbeat.wait_unresponsive()
                self._notify_connection_changed()
                await self.heartbeat.wait_responsive()
        except trio.ClosedResourceError:
            return

    def _notify_connection_changed(self) -> None:
        """Wake every task waiting for the connection's state to change."""
        changed, self._connection_changed = self._connection_changed, trio.Event()
        changed.set()

    def _check_unresponsive(self) -> None:
        died = self.heartbeat.unresponsive_error
        if died is not None:
            raise KernelDied(died.reason)

    def _check_never_reached(self) -> None:
        """Raise KernelDied if the heartbeat declares a kernel dead that no socket ever
        reached (a stale connection file, a kernel that died before we connected)."""
        died = self.heartbeat.unresponsive_error
        if died is not None and not self._ever_connected:
            raise KernelDied(died.reason)

    async def _reader(
        self, name: ChannelName, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        sock = self._make_socket(_SOCKET_KIND[name], name)
        reader = _Reader(self, name, sock)
        scope = trio.CancelScope()
        self._scopes.append(scope)
        if self._closed:
            scope.cancel()
        task_status.started()
        try:
            with scope:
                await reader.run()
        finally:
            sock.set_receive_hook(None)
            sock.close()
            reader.inbox.close_sender()


class _Reader:
    """What one channel's reader does with what its socket receives: verify and decode,
    count, apply the buffer's policy, hand over. Run by the reader task, and also by any
    task whose call on the socket finds messages ready while the reader sleeps (the
    socket's receive hook): that saves waking the reader, a schedule point per wake-up."""

    def __init__(self, owner: Channels, name: ChannelName, sock: TrioSocket) -> None:
        self.owner = owner
        self.name: ChannelName = name
        self.sock = sock
        hub = owner._hub
        self.hub = hub
        self.inbox = hub.inboxes[name]
        self.counters = hub.counters[name]
        self.is_iopub = name == "iopub"
        self.drop = hub.drops(name)
        # Subscriptions get their copy before ch.iopub's own policy applies.
        self.fanout = hub.fanout if self.is_iopub else Fanout()
        max_items, max_bytes = hub.limits(name)
        self.max_items = max_items
        self.max_bytes = max_bytes or sys.maxsize
        # The "wait" policy: stop reading at the bound, resume once drained to half of it.
        self.low_items, self.low_bytes = max_items // 2, self.max_bytes // 2
        sock.set_receive_hook(self.hook)

    def room(self) -> int:
        """How many messages may be taken from the socket now (0: the buffer is full)."""
        inbox = self.inbox
        if self.drop or inbox.closed:
            return _BATCH
        if inbox.nbytes >= self.max_bytes:
            return 0
        room = self.max_items - len(inbox)  # (no min/max calls: once per batch, hot)
        return _BATCH if room > _BATCH else room if room > 0 else 0

    async def run(self) -> None:
        sock, inbox, counters = self.sock, self.inbox, self.counters
        while True:
            limit = self.room()
            if not limit:
                counters.stalls += 1
                await inbox.wait_room(self.low_items, self.low_bytes)
                continue
            try:
                # The room is asked again after the wait: the receive hook may have filled
                # the buffer while this task slept.
                batch = await sock.receive_batch(self.room)
            except trio.ClosedResourceError:
                return
            if batch:
                self.process(batch)

    def hook(self) -> bool:
        """The socket's receive hook: take in what is ready if there is room; return whether
        the socket is drained (if not, the socket wakes the reader task)."""
        limit = self.room()
        if not limit:
            return False
        self.process(self.sock.receive_ready_nowait(limit))
        return self.sock.drained

    def process(self, batch: list[list[Frame]]) -> None:
        """Take in one batch. Synchronous, so what holds for the batch (the session's count of
        repaired messages, IOPub's readiness, the open subscriptions) is checked once per
        batch, not per message: the loop does only what each message needs."""
        owner, name, inbox, counters = self.owner, self.name, self.inbox, self.counters
        session = owner.session
        deserialize = session.deserialize
        nudges = owner._nudges
        fanout = self.fanout
        subscribed = bool(fanout.subscriptions)
        drop, max_items, max_bytes = self.drop, self.max_items, self.max_bytes
        repaired = session.invalid_utf8
        unverified = session.unverified
        received = counters.received
        consumer = self.hub.consumers.get(name)
        for frames in batch:
            try:
                msg = deserialize(frames, channel=name)
            except RemoteProtocolError as exc:
                owner._reject(name, frames, exc)
                continue
            except Exception as exc:  # a decoding bug must not stop the reader
                owner._reject(name, frames, decoding_bug(logger, f"a {name} message", exc))
                continue
            received += 1
            if nudges and msg.parent_id in nudges:
                continue  # caused by wait_iopub_ready's kernel_info nudges
            if consumer is not None:  # the client's dispatcher: no buffer, no hand-over
                if subscribed:
                    fanout.publish(msg, sum(map(len, frames)))
                if inbox.closed:
                    counters.discarded += 1
                else:
                    consumer(msg)
                continue
            nbytes = sum(map(len, frames))
            if subscribed:
                fanout.publish(msg, nbytes)
            if drop:
                # must_drop's first test inline: a function call only when the buffer is full.
                queued = len(inbox)
                if (
                    queued >= max_items or (queued and inbox.nbytes + nbytes > max_bytes)
                ) and must_drop(
                    queued, inbox.nbytes, nbytes, msg.header.msg_type, max_items, max_bytes
                ):
                    counters.drop(msg.parent_id)
                    self.hub.drop_log.dropped(name, max_items, max_bytes)
                    continue
            if not inbox.put(msg, nbytes):
                counters.discarded += 1
        if received != counters.received:
            counters.received = received
            if self.is_iopub and not owner._iopub_ready:
                owner._iopub_ready = True
                owner._iopub_wakeup.set()
        if session.invalid_utf8 != repaired:
            _log_repaired(name, counters, session.invalid_utf8 - repaired)
        if session.unverified != unverified:
            owner._unverified(name, session.unverified - unverified)


def _describe_handshake_failure(name: SocketName, event: SocketEvent) -> str:
    if event.name == "handshake_failed_auth":
        reason = "the kernel refused our CurveZMQ keys, or curve_publickey is wrong"
    elif event.name == "handshake_failed":
        reason = (
            "the kernel closed the connection during the handshake; most likely it encrypts "
            "with CurveZMQ and curve_publickey is not its public key"
        )
    else:
        reason = "the peer does not speak ZeroMQ, or not with our security mechanism"
    socket = "heartbeat" if name == "hb" else name
    return f"the ZeroMQ handshake of the {socket} socket with {event.endpoint} failed: {reason}"


def claimed_parent_id(frames: Sequence[Frame]) -> str | None:
    """The ``msg_id`` the parent header of a (rejected, so unverified) message claims, read
    only from a parent header of at most 4 KiB; ``None`` when there is none."""
    at = next(
        (i for i, f in enumerate(frames) if len(f) == len(DELIMITER) and bytes(f) == DELIMITER),
        None,
    )
    if at is None or at + 3 >= len(frames) or len(frames[at + 3]) > _CLAIM_LIMIT:
        return None
    try:
        parent = json.loads(bytes(frames[at + 3]))
    except ValueError:
        return None
    msg_id = parent.get("msg_id") if isinstance(parent, dict) else None
    return msg_id if isinstance(msg_id, str) and msg_id else None


def _log_repaired(name: str, counters: Counters, new: int) -> None:
    """Count ``new`` messages of one batch accepted with invalid UTF-8 replaced; warn if the
    count passed a logging point (the first ten, then powers of two)."""
    first = counters.invalid_utf8 + 1
    counters.invalid_utf8 += new
    count = counters.invalid_utf8
    if any(worth_logging(n) for n in range(first, count + 1)):
        logger.warning(
            "accepted %d message(s) on %s with invalid UTF-8, replaced with U+FFFD (%d so far; "
            "statistics().%s.invalid_utf8)",
            new,
            name,
            count,
            name,
        )


@asynccontextmanager
async def open_channels(
    info: ConnectionInfo | str | os.PathLike[str] | Mapping[str, Any],
    *,
    session: Session | None = None,
    iopub_topic: bytes | Sequence[bytes] = b"",
    heartbeat: bool = True,
    hb_interval: float = 1.0,
    hb_deadline: float = 5.0,
    hb_startup_deadline: float = 30.0,
    buffer_size: int = 1000,
    iopub_buffer_size: int | None = IOPUB_BUFFER_SIZE,
    iopub_buffer_bytes: int = IOPUB_BUFFER_BYTES,
    iopub_overflow: IOPubOverflow = "drop",
    iopub_hwm: int = IOPUB_HWM,
    multiplexed: bool = False,
    report_rejects: bool = False,
    rejects_buffer_size: int = 100,
    identity: bytes | None = None,
    curve_client_keys: tuple[str, str] | None = None,
    linger: float = 1.0,
) -> AsyncIterator[Channels]:
    """Connect to a running kernel's channels; yields :class:`Channels`.

    ``shell``, ``control`` and ``stdin`` are DEALER sockets sharing one routing identity,
    ``iopub`` a SUB socket, the heartbeat a REQ socket. Each socket gets a reader task,
    started before the body runs (so invalid addresses fail here); leaving the block closes
    every socket and stops every task. Messages already received stay receivable until the
    channel is exhausted (:class:`trio.EndOfChannel`).

    Backpressure: each channel hands messages over through a bounded buffer. When a shell,
    control or stdin buffer is full the reader waits for the consumer (those sockets have no
    receive high-water mark, so the kernel never drops a reply). IOPub, whose kernel end
    drops what it cannot send, is never silently lossy by default:

    * ``iopub_overflow="drop"`` (default): the reader keeps draining the socket, so the
      kernel never has a reason to drop. When the buffer holds ``iopub_buffer_size``
      messages or ``iopub_buffer_bytes`` bytes, a new message is dropped and counted
      (``statistics().iopub.dropped``, :attr:`IOPubChannel.dropped`,
      :meth:`IOPubChannel.wait_dropped`) and a warning is logged (at the first drop, then
      at most every 10 s). ``status`` messages are kept even then (a client waits for
      ``idle`` to end an execution), up to 1,000 beyond the bound. An empty buffer takes
      any message, whatever its size; :meth:`IOPubChannel.dropped_for` counts the drops
      of one request.
    * ``iopub_overflow="wait"``: the reader stops reading while the buffer is full and
      resumes once it is half empty. Meanwhile up to ``iopub_hwm`` messages queue in the
      SUB socket; past that, TCP pushes back and the kernel's PUB socket drops messages
      for this subscriber at its own high-water mark: nothing counts those. Use it only
      where the kernel's rate is known to be bounded or losses do not matter.

    Args:
        info: the connection info, or a connection file path, or its dict.
        session: the codec to use; default ``Session.from_connection_info(info)``.
        iopub_topic: the IOPub subscription(s); ``b""`` receives everything.
        heartbeat: whether to monitor the heartbeat (see :class:`Heartbeat`).
        hb_interval: seconds between heartbeat pings.
        hb_deadline: seconds without an echo before the kernel is declared unresponsive.
        hb_startup_deadline: the same before the kernel's first echo (counted from the
            opening), so that a kernel still starting is not declared unresponsive.
        buffer_size: messages buffered per channel for shell, control and stdin (at least
            1: ``0`` means 1, as in every opener; in multiplexed mode, how full the shared
            buffer may be before those readers wait).
        iopub_buffer_size: messages buffered for IOPub (at least 1, ``0`` means 1;
            ``None``: the default).
        iopub_buffer_bytes: bytes (wire size of the messages) buffered for IOPub.
        iopub_overflow: ``"drop"`` or ``"wait"``, see above.
        iopub_hwm: the SUB socket's receive high-water mark, in messages (``0``:
            unlimited): how much a burst ZeroMQ absorbs while the reader cannot run.
        multiplexed: deliver every received message to :attr:`Channels.multiplexed` instead
            of the per-channel views.
        report_rejects: make :attr:`Channels.rejects` available.
        rejects_buffer_size: how many unread rejects :attr:`Channels.rejects` holds.
        identity: the routing id of shell, control and stdin (default: random).
        curve_client_keys: this client's CurveZMQ ``(public, secret)`` keys when the
            connection info carries a ``curve_publickey`` (default: a fresh pair).
        linger: seconds unsent messages may linger after the sockets close.

    Raises:
        ConfigurationError: an option is invalid (the message names it), checked before
            anything is read or connected.
        TypeError: an argument has the wrong type.
        ConnectionInfoError: the connection info is invalid or a socket cannot connect.
        EncryptionUnavailable: the connection needs CurveZMQ and libzmq lacks it.
    """
    if session is not None and not isinstance(session, Session):
        raise TypeError(f"session must be a Session or None, got {type(session).__name__}")
    options = ChannelOptions.build(
        iopub_topic=iopub_topic,
        heartbeat=heartbeat,
        hb_interval=hb_interval,
        hb_deadline=hb_deadline,
        hb_startup_deadline=hb_startup_deadline,
        iopub_hwm=iopub_hwm,
        identity=identity,
        curve_client_keys=curve_client_keys,
        linger=linger,
        buffer_size=buffer_size,
        iopub_buffer_size=iopub_buffer_size,
        iopub_buffer_bytes=iopub_buffer_bytes,
        iopub_overflow=iopub_overflow,
        multiplexed=multiplexed,
        report_rejects=report_rejects,
        rejects_buffer_size=rejects_buffer_size,
    )
    conn = await load_connection_info(info)
    async with open_channels_with(conn, session, options) as ch:
        yield ch


@asynccontextmanager
async def open_channels_with(
    conn: ConnectionInfo, session: Session | None, options: ChannelOptions
) -> AsyncIterator[Channels]:
    """:func:`open_channels` with its options already checked (by
    :meth:`ChannelOptions.build`): the entry point of the openers above this layer."""
    curve: tuple[str, str] | None = None
    if conn.curve_publickey is not None:
        if not has_curve():
            raise EncryptionUnavailable(
                "the connection info has a curve_publickey (CurveZMQ encryption) but this "
                "libzmq was built without curve support"
            )
        curve = options.curve_client_keys or curve_keypair()
    if session is None:
        session = Session.from_connection_info(conn)
    warn_if_unsigned(session, logger, "open_channels")
    ch: Channels

    def make_hb_socket() -> TrioSocket:
        return ch._make_socket("REQ", "hb")

    hb = Heartbeat(
        interval=options.hb_interval,
        deadline=options.hb_deadline,
        startup_deadline=options.hb_startup_deadline,
        make_socket=make_hb_socket if options.heartbeat else None,
    )
    ch = Channels(
        conn,
        session,
        options.identity or uuid.uuid4().hex.encode("ascii"),
        options,
        curve,
        hb,
    )
    with unwrap_single():
        async with trio.open_nursery() as nursery:
            try:
                for name in CHANNEL_NAMES:
                    await nursery.start(ch._reader, name)
                for name in CHANNEL_NAMES:
                    nursery.start_soon(ch._watch_connection, name)
                if options.heartbeat:
                    await nursery.start(ch._run_heartbeat)
                    nursery.start_soon(ch._watch_connection, "hb")
                    nursery.start_soon(ch._watch_verdict)
                yield ch
            finally:
                ch._close()
    for sock in ch._sockets.values():
        sock.close()
