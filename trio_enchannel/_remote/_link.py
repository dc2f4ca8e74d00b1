"""One kernel's websocket, kept up: connect, read, send, ping, reconnect with backoff.

The :class:`KernelLink` owns the websocket to ``/api/kernels/{id}/channels`` of a Jupyter
Server (or gateway). It knows nothing about channels or requests: decoded messages, rejected
frames, drops, reconnections and the kernel's death are reported through callbacks, and
:meth:`KernelLink.send` puts one message on the wire, whole or not at all.

Lifecycle of a connection:

* the first connection happens before :meth:`KernelLink.run` reports itself started, so that
  a wrong token or an unknown kernel fails the caller's ``async with`` immediately;
* when the websocket drops (the server closed it, the network failed, or a ping went
  unanswered), ``on_drop`` is called (the owner fails the requests in flight), then the
  kernel's REST model is checked: a kernel that no longer exists, or that the server calls
  ``dead``, is reported through ``on_dead`` and the link ends; otherwise it reconnects with
  exponential backoff (with jitter), reusing the same ``session_id`` so that Jupyter Server
  replays what it buffered meanwhile;
* a kernel the server reports ``restarting`` (it crashed and is being restarted) is reported
  through ``on_restart``, and the websocket is reopened (a kernel that dies young is restarted
  on new ports, and the server rewires a connection to them only when it is opened);
  ``dead`` is reported through ``on_dead``.
"""

from __future__ import annotations

import logging
import math
import random
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Literal

import attrs
import trio
import trio_websocket

from .._errors import (
    KernelDied,
    RemoteAuthenticationError,
    RemoteKernelNotFound,
    RemoteProtocolError,
    RemoteServerError,
)
from .._io._errors import ConnectionLost
from .._io._stats import RecentIds, decoding_bug
from .._wire._framing import V1_SUBPROTOCOL, decode_frame, encode_frame
from .._wire._message import Message
from ._rest import RemoteServer
from ._wsconnect import HandshakeFailed, open_kernel_websocket

__all__ = ["KernelLink", "LinkState", "SubprotocolChoice"]

logger = logging.getLogger("trio_enchannel.remote")

SubprotocolChoice = Literal["auto", "v1", "legacy"]
LinkState = Literal["connecting", "connected", "reconnecting", "closed", "dead"]

# After a shutdown_reply the kernel leaves the server's list a moment later: check a few times.
_CHECK_DELAYS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)

#: Seconds a connection reopened after a kernel restart has to prove that the new kernel's
#: messages come through before it is reopened again.
VERIFY_WINDOW = 3.0

#: Largest websocket message accepted from the server (kernel outputs can be large images).
DEFAULT_MAX_MESSAGE_SIZE = 256 * 1024 * 1024

#: Messages :meth:`KernelLink.send_nowait` queues for the connection's writer at most.
SEND_QUEUE = 1000


def _describe_close(reason: trio_websocket.CloseReason | None) -> str:
    if reason is None:
        return "the connection ended"
    text = f"closed with code {reason.code} ({reason.name})"
    return f"{text}: {reason.reason}" if reason.reason else text


@attrs.define(eq=False)
class KernelLink:
    """The websocket to one remote kernel, reconnecting when it drops.

    Callbacks (all synchronous except ``deliver``):

    * ``deliver(msg, nbytes)``: a decoded message and the size of its websocket frame
      (bytes, or characters for a text frame of the legacy framing); may block to apply
      backpressure (the reader reads nothing meanwhile).
    * ``reject(frame, error)``: a frame that could not be decoded (never delivered).
    * ``on_repaired(msg)``: ``msg`` (about to be delivered) held invalid UTF-8, decoded as
      U+FFFD.
    * ``on_drop(error)``: the connection dropped; requests in flight should fail with it.
    * ``on_restart(reason)``: the server restarted the kernel (it had died).
    * ``on_dead(error)``: the kernel is gone; the link has ended.
    * ``on_connect()``: a (re)connection succeeded.

    ``make_probe()`` builds a ``kernel_info_request`` for the shell channel; with it, the link
    checks after a kernel restart that the new kernel's IOPub reaches it (see ``run``).
    """

    server: RemoteServer
    kernel_id: str
    session_id: str
    deliver: Callable[[Message, int], Awaitable[None]]
    reject: Callable[[str | bytes, RemoteProtocolError], None]
    on_drop: Callable[[ConnectionLost], None]
    on_restart: Callable[[str], None]
    on_dead: Callable[[KernelDied], None]
    on_connect: Callable[[], None] = lambda: None
    on_repaired: Callable[[Message], None] = lambda msg: None
    make_probe: Callable[[], Message] | None = None
    subprotocol_choice: SubprotocolChoice = "auto"
    reconnect: bool = True
    reconnect_timeout: float = 60.0
    backoff_initial: float = 0.05
    backoff_max: float = 5.0
    ping_interval: float | None = 10.0
    ping_timeout: float = 10.0
    kernel_check_interval: float | None = None
    send_timeout: float = 30.0
    connect_timeout: float = 30.0
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    state: LinkState = "connecting"
    subprotocol: str | None = None
    connections: int = 0
    drops: int = 0
    death: KernelDied | None = None
    _ws: trio_websocket.WebSocketConnection | None = None
    _changed: trio.Event = attrs.Factory(trio.Event)
    _send_lock: trio.Lock = attrs.Factory(trio.Lock)
    _cancel: trio.CancelScope | None = None
    _serve_scope: trio.CancelScope | None = None
    _check_now: trio.Event = attrs.Factory(trio.Event)
    _reconnect_started: float = 0.0
    _backoff: float = 0.0
    _in_deliver: bool = False
    _drop_reason: str = ""
    _planned_reconnect: bool = False
    _dropped: bool = False
    _verify_next: bool = False
    _probes: RecentIds = attrs.Factory(RecentIds)
    _probe_live: trio.Event | None = None
    # send_nowait's messages (with their frame and its subprotocol), written in order by the
    # connection's writer task, or by the next send() before its own frame.
    _outbox: deque[tuple[Message, str | bytes, str | None]] = attrs.Factory(deque)
    _writer_wakeup: trio.Event = attrs.Factory(trio.Event)

    @property
    def url(self) -> str:
        """The websocket URL (with the session id, never the token)."""
        return self.server.websocket_url(self.kernel_id, self.session_id)

    # -- sending --------------------------------------------------------------------------

    async def send(self, msg: Message) -> None:
        """Send one message, waiting for the link to be up if it is reconnecting.

        The frame is encoded first (an invalid message raises before anything is sent), then
        written shielded from cancellation, bounded by ``send_timeout``. A websocket message
        is only processed once complete, so a frame the connection broke under was not
        delivered: it is sent again on the next connection. A frame written in full just
        before a drop is the caller's request in flight (see ``on_drop``).

        Raises:
            LocalProtocolError: the message cannot be encoded (nothing was sent).
            KernelDied: the kernel is gone.
            trio.ClosedResourceError: the link was closed.
        """
        frames: dict[str | None, str | bytes] = {}
        while True:
            await self.wait_connected()
            ws = self._ws
            subprotocol = self.subprotocol
            frame = frames.get(subprotocol)
            if frame is None:
                frame = frames[subprotocol] = encode_frame(msg, subprotocol)
            async with self._send_lock:
                if ws is None or ws is not self._ws:
                    continue  # the connection changed while we waited for the lock
                # What send_nowait queued goes first: messages leave in the order sent.
                sent = await self._flush(ws) and await self._write(ws, frame, msg.msg_type)
            if sent:
                return
            while self._ws is ws and self.state == "connected":
                await self._changed.wait()

    def send_nowait(self, msg: Message) -> None:
        """Send one message without waiting: it is encoded now (an invalid message raises
        before anything is queued) and written by the connection's writer task, in order with
        :meth:`send`. Like :meth:`send`, a frame the connection broke under is written again
        on the next connection.

        Raises:
            trio.WouldBlock: the link is not connected (it is reconnecting), or
                :data:`SEND_QUEUE` messages already wait to be written (nothing was queued).
            LocalProtocolError: the message cannot be encoded.
            KernelDied: the kernel is gone.
            trio.ClosedResourceError: the link was closed.
        """
        if self.state == "dead":
            assert self.death is not None
            raise self.death
        if self.state == "closed":
            raise trio.ClosedResourceError("the remote channels are closed")
        if self.state != "connected" or self._ws is None or len(self._outbox) >= SEND_QUEUE:
            raise trio.WouldBlock
        frame = encode_frame(msg, self.subprotocol)
        self._outbox.append((msg, frame, self.subprotocol))
        self._writer_wakeup.set()

    async def _write(
        self, ws: trio_websocket.WebSocketConnection, frame: str | bytes, msg_type: str
    ) -> bool:
        """Write one frame, shielded from cancellation and bounded by ``send_timeout``;
        return whether it was written. The caller holds the send lock."""
        sent = False
        with trio.CancelScope(shield=True):
            with trio.move_on_after(self.send_timeout):
                try:
                    await ws.send_message(frame)
                    sent = True
                except trio_websocket.ConnectionClosed:
                    pass
            if not sent:
                # Broken (or stuck, possibly with a partial frame on the stream): end this
                # connection; the reader reconnects.
                self._drop_reason = f"sending a {msg_type} failed"
                self._abort_connection()
        return sent

    async def _flush(self, ws: trio_websocket.WebSocketConnection) -> bool:
        """Write what :meth:`send_nowait` queued, oldest first; return whether all of it was
        written (what was not stays queued for the next connection). The caller holds the
        send lock."""
        outbox = self._outbox
        while outbox:
            msg, frame, subprotocol = outbox[0]
            if subprotocol != ws.subprotocol:
                frame = encode_frame(msg, ws.subprotocol)
                outbox[0] = (msg, frame, ws.subprotocol)
            if not await self._write(ws, frame, msg.msg_type):
                return False
            outbox.popleft()
        return True

    async def _writer(self, ws: trio_websocket.WebSocketConnection) -> None:
        """One connection's writer of what :meth:`send_nowait` queued (once it is usable)."""
        while True:
            wakeup = self._writer_wakeup
            if self.state in ("closed", "dead"):
                return
            if self.state == "connected" and self._outbox:
                async with self._send_lock:
                    if not await self._flush(ws):
                        return
                continue
            await wakeup.wait()  # a new message, or a change of state (verified, closed...)
            if self._writer_wakeup is wakeup:
                self._writer_wakeup = trio.Event()

    async def wait_connected(self) -> None:
        """Wait until the websocket is up.

        Raises:
            KernelDied: the kernel is gone.
            trio.ClosedResourceError: the link was closed.
        """
        while True:
            if self.state == "connected":
                await trio.lowlevel.checkpoint()
                return
            if self.state == "dead":
                assert self.death is not None
                raise self.death
            if self.state == "closed":
                raise trio.ClosedResourceError("the remote channels are closed")
            await self._changed.wait()

    async def wait_ended(self) -> None:
        """Wait until the link is ``closed`` or ``dead`` (at once if it is)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while self.state not in ("closed", "dead"):
            await self._changed.wait()
        await trio.lowlevel.cancel_shielded_checkpoint()

    # -- lifecycle ------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the websocket gracefully (bounded) and stop the link. Idempotent."""
        if self.state not in ("closed", "dead"):
            self._set_state("closed")
        ws = self._ws
        if ws is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(1.0):
                await ws.aclose()
        if self._cancel is not None:
            self._cancel.cancel()
        await trio.lowlevel.checkpoint()

    def check_kernel_soon(self) -> None:
        """Ask for an immediate REST check of the kernel's existence."""
        self._check_now.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, then keep the link up until :meth:`aclose` or the kernel's death.

        Raises (before reporting started):
            RemoteAuthenticationError: the token was refused.
            RemoteKernelNotFound: the kernel does not exist.
            RemoteServerError: the server cannot be reached, refused the connection, or does
                not offer the required subprotocol.
        """
        with trio.CancelScope() as cancel:
            self._cancel = cancel
            first = True
            while self.state not in ("closed", "dead"):
                connected = False
                try:
                    async with self._open() as ws:
                        connected = True
                        try:
                            self._check_subprotocol(ws)
                        except RemoteServerError as exc:
                            if first:
                                raise
                            self._die(KernelDied(str(exc)))
                            break
                        self._ws = ws
                        self.subprotocol = ws.subprotocol
                        self.connections += 1
                        if not self._verify_next:
                            self._set_state("connected")
                            self.on_connect()
                        # else: stay "reconnecting" until _verify_iopub says the kernel's
                        # messages flow (user sends wait meanwhile).
                        if first:
                            first = False
                            task_status.started()
                        try:
                            await self._serve(ws)
                        finally:
                            self._ws = None
                            # Before the closing handshake: new sends must wait from now on,
                            # and the requests in flight learn about the drop at once.
                            self._connection_ended()
                except HandshakeFailed as exc:
                    assert not connected
                    if first:
                        raise exc.error from exc.__cause__
                    await self._after_failed_reconnect(exc.error)
                    continue
                if self.state in ("closed", "dead"):
                    break
                await self._after_drop()
        self._cancel = None

    # -- internals --------------------------------------------------------------------------

    def _open(self) -> AbstractAsyncContextManager[trio_websocket.WebSocketConnection]:
        offered = [] if self.subprotocol_choice == "legacy" else [V1_SUBPROTOCOL]
        headers = [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in self.server.auth_headers().items()
        ]
        return open_kernel_websocket(
            self.url,
            kernel_id=self.kernel_id,
            subprotocols=offered,
            headers=headers,
            ssl_context=self.server.ssl_context,
            max_message_size=self.max_message_size,
            handshake_timeout=self._handshake_budget(),
        )

    def _handshake_budget(self) -> float:
        # While reconnecting, a handshake may not outlast the reconnection deadline (a peer
        # that closes during the handshake is only noticed at this timeout).
        if self.state != "reconnecting":
            return self.connect_timeout
        left = self._reconnect_started + self.reconnect_timeout - trio.current_time()
        return max(0.2, min(self.connect_timeout, left))

    def _check_subprotocol(self, ws: trio_websocket.WebSocketConnection) -> None:
        if self.subprotocol_choice == "v1" and ws.subprotocol != V1_SUBPROTOCOL:
            raise RemoteServerError(
                f"the server at {self.server.url} does not offer the {V1_SUBPROTOCOL} "
                "websocket subprotocol (subprotocol='v1' was required); use 'auto' to fall "
                "back to the legacy framing",
                method="WEBSOCKET",
                url=self.url.split("?", 1)[0],
            )

    def _set_state(self, state: LinkState) -> None:
        self.state = state
        self._changed.set()
        self._changed = trio.Event()
        self._writer_wakeup.set()

    def _abort_connection(self) -> None:
        # Ending _serve closes the websocket; with a partial frame on the stream the server
        # drops the connection and we reconnect.
        if self._serve_scope is not None:
            self._serve_scope.cancel()

    async def _serve(self, ws: trio_websocket.WebSocketConnection) -> None:
        """Read until the connection drops (returns) or the link ends."""
        async with trio.open_nursery() as nursery:
            self._serve_scope = nursery.cancel_scope
            if self.ping_interval is not None:
                nursery.start_soon(self._pinger, ws, nursery.cancel_scope)
            nursery.start_soon(self._checker, nursery.cancel_scope)
            nursery.start_soon(self._writer, ws)
            if self._verify_next:
                self._verify_next = False
                nursery.start_soon(self._verify_iopub, ws, nursery.cancel_scope)
            try:
                while True:
                    try:
                        frame = await ws.get_message()
                    except trio_websocket.ConnectionClosed as exc:
                        self._drop_reason = _describe_close(exc.reason)
                        break
                    repaired: list[str] = []
                    try:
                        msg = decode_frame(frame, ws.subprotocol, repaired)
                    except RemoteProtocolError as exc:
                        self.reject(frame, exc)
                        continue
                    except Exception as exc:  # a decoding bug must not stop the reader
                        self.reject(frame, decoding_bug(logger, "a websocket frame", exc))
                        continue
                    if msg.parent_id in self._probes:
                        # Caused by our own liveness probes: not the caller's business.
                        if msg.channel == "iopub" and self._probe_live is not None:
                            self._probe_live.set()
                        continue
                    if repaired:
                        self.on_repaired(msg)
                    self._watch_status(msg)
                    self._in_deliver = True
                    try:
                        await self.deliver(msg, len(frame))
                    finally:
                        self._in_deliver = False
                    if self.state == "dead":
                        break
            finally:
                self._serve_scope = None
                nursery.cancel_scope.cancel()

    def _watch_status(self, msg: Message) -> None:
        if msg.channel != "iopub":
            return
        if msg.msg_type == "status":
            state = msg.content.get("execution_state")
            if state == "restarting":
                # Down from now on: sends wait for the new, verified connection.
                self._set_state("reconnecting")
                self.on_restart("the server restarted the kernel (it had died)")
                # A kernel that died young is restarted on new ports, and the server wires a
                # connection's ZeroMQ streams when it is opened: reconnect, as a new session.
                self._planned_reconnect = True
                self._abort_connection()
            elif state == "dead":
                self._die(KernelDied("the server reports the kernel dead (its restart failed)"))
        elif msg.msg_type == "shutdown_reply" and msg.content.get("restart") is False:
            # Someone asked the kernel to shut down: find out whether it is gone.
            self.check_kernel_soon()

    def _die(self, error: KernelDied) -> None:
        if self.state in ("closed", "dead"):
            return
        self.death = error
        self._set_state("dead")
        self.on_dead(error)

    async def _pinger(
        self, ws: trio_websocket.WebSocketConnection, scope: trio.CancelScope
    ) -> None:
        assert self.ping_interval is not None
        while True:
            await trio.sleep(self.ping_interval)
            with trio.move_on_after(self.ping_timeout) as timeout:
                try:
                    await ws.ping()
                except (trio_websocket.ConnectionClosed, trio.BrokenResourceError):
                    scope.cancel()
                    return
            if timeout.cancelled_caught and not self._in_deliver:
                # Half-open connection: treat as dropped. (While our consumer holds the reader
                # up, pongs queue behind unread messages: that is backpressure, not a drop.)
                self._drop_reason = f"no answer to a ping within {self.ping_timeout:g} s"
                scope.cancel()
                return

    async def _verify_iopub(
        self, ws: trio_websocket.WebSocketConnection, scope: trio.CancelScope
    ) -> None:
        """Probe with ``kernel_info_request`` until IOPub carries a message caused by a probe;
        then the link is up. Otherwise reconnect (as a new session) and verify again."""
        assert self.make_probe is not None
        live = self._probe_live = trio.Event()
        interval = 0.05
        with trio.move_on_after(VERIFY_WINDOW):
            while not live.is_set():
                probe = self.make_probe()
                self._probes.add(probe.msg_id)
                frame = encode_frame(probe, ws.subprotocol)
                async with self._send_lock:
                    with trio.CancelScope(shield=True), trio.move_on_after(self.send_timeout):
                        try:
                            await ws.send_message(frame)
                        except trio_websocket.ConnectionClosed:
                            return  # the reader notices the drop
                with trio.move_on_after(interval):
                    await live.wait()
                interval = min(interval * 2, 0.5)
        self._probe_live = None
        if self.state != "reconnecting":
            return  # closed, dead, or restarted again meanwhile
        if live.is_set():
            self._set_state("connected")
            self.on_connect()
        else:
            self._planned_reconnect = True
            self._drop_reason = "the restarted kernel's messages did not come through"
            scope.cancel()

    async def _checker(self, scope: trio.CancelScope) -> None:
        """Check the kernel's REST model when asked to, and every kernel_check_interval."""
        while True:
            asked = False
            with trio.move_on_after(
                math.inf if self.kernel_check_interval is None else self.kernel_check_interval
            ):
                await self._check_now.wait()
                asked = True
            self._check_now = trio.Event()
            for delay in _CHECK_DELAYS if asked else (0.0,):
                await trio.sleep(delay)
                gone = await self._kernel_gone()
                if gone is not None:
                    self._die(gone)
                    scope.cancel()
                    return

    async def _kernel_gone(self) -> KernelDied | None:
        """A KernelDied when the server says the kernel no longer exists or is dead.

        While reconnecting, bounded by what is left of the reconnection deadline.
        """
        budget = math.inf
        if self.state == "reconnecting":
            left = self._reconnect_started + self.reconnect_timeout - trio.current_time()
            budget = max(0.2, left)
        try:
            with trio.fail_after(budget):
                model = await self.server.get_kernel(self.kernel_id)
        except trio.TooSlowError:
            return None
        except RemoteKernelNotFound:
            return KernelDied(f"kernel {self.kernel_id} no longer exists on {self.server.url}")
        except (RemoteServerError, trio.ClosedResourceError):
            return None
        if model.execution_state == "dead":
            return KernelDied(f"the server reports kernel {self.kernel_id} dead")
        return None

    def _connection_ended(self) -> None:
        """The connection is over (dropped, aborted, or closed by us): mark the link down."""
        if self.state in ("closed", "dead"):
            return
        self._reconnect_started = trio.current_time()
        self._backoff = self.backoff_initial
        if self._planned_reconnect:
            # After a restart, a fresh websocket session: the server then builds new streams
            # to the kernel's current ports instead of restoring the buffered ones (nothing
            # buffered from the dead kernel is worth replaying). Jupyter Server announces
            # "restarting" *before* it restarts the kernel, so a connection opened at once
            # may still be wired to the old ports: the next one is verified before use.
            self._planned_reconnect = False
            self._verify_next = self.make_probe is not None
            self.session_id = uuid.uuid4().hex
            self._drop_reason = ""
            self._set_state("reconnecting")
            return
        self.drops += 1
        self._set_state("reconnecting")
        reason = self._drop_reason or "the connection ended"
        self._drop_reason = ""
        logger.info("websocket to kernel %s dropped (%s); reconnecting", self.kernel_id, reason)
        self._dropped = True
        self.on_drop(
            ConnectionLost(
                f"the websocket to kernel {self.kernel_id} on {self.server.url} dropped "
                f"({reason}); the request may or may not have run, and its reply is lost"
            )
        )
        if not self.reconnect:
            self._die(KernelDied(f"the websocket to kernel {self.kernel_id} dropped"))

    async def _after_drop(self) -> None:
        """Between a drop and the next connection attempt: is the kernel still there?"""
        if not self._dropped:
            await trio.lowlevel.checkpoint()
            return
        self._dropped = False
        gone = await self._kernel_gone()
        if gone is not None:
            self._die(gone)

    async def _after_failed_reconnect(self, error: RemoteServerError) -> None:
        if isinstance(error, (RemoteKernelNotFound, RemoteAuthenticationError)):
            self._die(KernelDied(f"cannot reconnect to kernel {self.kernel_id}: {error}"))
            return
        if trio.current_time() - self._reconnect_started > self.reconnect_timeout:
            self._die(
                KernelDied(
                    f"lost contact with kernel {self.kernel_id}: no connection for "
                    f"{self.reconnect_timeout:g} s ({error})"
                )
            )
            return
        delay = min(self._backoff, self.backoff_max)
        self._backoff = min(self._backoff * 2, self.backoff_max)
        await trio.sleep(delay * (0.5 + random.random()))  # backoff with jitter
        gone = await self._kernel_gone()
        if gone is not None:
            self._die(gone)
