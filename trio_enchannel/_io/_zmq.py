"""The ZeroMQ adapter: Trio-native, non-blocking ZeroMQ sockets.

This is the only module of trio-enchannel that imports :mod:`zmq`. It follows the rule for
waiting on a ZeroMQ socket in Trio (the descriptor is shared by both directions and
edge-triggered, and any libzmq call may consume its edge):

* every libzmq call is non-blocking (``zmq.NOBLOCK``); ``zmq.Again`` means "wait";
* exactly one task at a time waits on a socket's file descriptor; other tasks that need to
  wait (a second receiver, a sender held back by the high-water mark) park on a
  :class:`trio.lowlevel.ParkingLot` and are woken by whoever observes the event they need;
* the descriptor is edge-triggered (any libzmq call may consume the edge), so after every
  libzmq call made while somebody waits, ``EVENTS`` is read again and the waiters whose event
  is now ready are woken (the descriptor waiter through
  :func:`trio.lowlevel.notify_closing`, which ends its ``wait_readable`` far more cheaply than
  a cancel scope around every wait would);
* closing marks the socket closed, calls :func:`trio.lowlevel.notify_closing` (which wakes the
  descriptor waiter with :class:`trio.ClosedResourceError`), wakes every parked task, then
  closes the socket with a finite linger;
* ZeroMQ errors are translated at this boundary: a closed socket or terminated context becomes
  :class:`trio.ClosedResourceError`, anything else :class:`trio.BrokenResourceError`, always
  chained with ``raise ... from``.
"""

from __future__ import annotations

import itertools
import os
import struct
import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Literal, TypeAlias, cast

import attrs
import trio
import zmq

from .._errors import ConfigurationError, EncryptionUnavailable, LocalProtocolError, UsageError
from .._util import ScheduleBudget

__all__ = [
    "ZERO_COPY_THRESHOLD",
    "Frame",
    "SocketEvent",
    "SocketKind",
    "SocketMonitor",
    "TrioSocket",
    "curve_keypair",
    "curve_public",
    "has_curve",
    "zmq_context",
    "zmq_version",
]

#: A message frame: ``bytes``, or a zero-copy ``memoryview`` for large frames.
Frame: TypeAlias = "bytes | memoryview"

#: The ZeroMQ socket types this adapter creates.
SocketKind = Literal["DEALER", "ROUTER", "SUB", "XSUB", "PUB", "XPUB", "REQ", "REP", "PAIR"]

#: Frames of at least this many bytes are sent and (by default) received without copying.
#: Below it copying is cheaper than keeping a zero-copy frame alive.
ZERO_COPY_THRESHOLD = 65536

# Plain ints: arithmetic on pyzmq's enum.Flag members costs microseconds per operation.
_NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE = int(zmq.SNDMORE)
_POLLIN = int(zmq.POLLIN)
_POLLOUT = int(zmq.POLLOUT)
_EVENTS = int(zmq.EVENTS)
_MORE = _NOBLOCK | _SNDMORE
#: How many messages of a batch are followed by an EVENTS check rather than a receive that
#: may fail with EAGAIN.
_EVENTS_PROBES = 4
_CLOSED_ERRNOS = frozenset({zmq.ENOTSOCK, zmq.ETERM})
#: pyzmq's own send, called unbound: ``zmq.Socket.send`` wraps it in Python (for the draft
#: socket types' routing ids and groups, which these sockets never use) at about 1 us per
#: frame, two thirds of what sending a small frame costs.
_send_frame: Callable[..., object] = zmq.backend.Socket.send
#: pyzmq's getsockopt, called unbound (``EVENTS`` is read after most calls: no bound method
#: and no ``typing.cast`` call per read).
_get_option: Callable[..., Any] = zmq.backend.Socket.get

#: libzmq reports handshakes (EVENT_HANDSHAKE_*) from 4.3 on; before, "connected" is the best
#: there is.
HANDSHAKE_EVENTS = zmq.zmq_version_info() >= (4, 3)

_EVENT_NAMES: dict[int, str] = {
    int(zmq.EVENT_CONNECTED): "connected",
    int(zmq.EVENT_DISCONNECTED): "disconnected",
    int(zmq.EVENT_MONITOR_STOPPED): "monitor_stopped",
}
if HANDSHAKE_EVENTS:
    _EVENT_NAMES.update(
        {
            int(zmq.EVENT_HANDSHAKE_SUCCEEDED): "handshake_succeeded",
            int(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL): "handshake_failed",
            int(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL): "handshake_failed_protocol",
            int(zmq.EVENT_HANDSHAKE_FAILED_AUTH): "handshake_failed_auth",
        }
    )
_EVENT_MASK = sum(_EVENT_NAMES)
_monitor_ids = itertools.count()

_context_lock = threading.Lock()
_context: zmq.Context[zmq.Socket[bytes]] | None = None
_context_pid = 0


def zmq_context() -> zmq.Context[zmq.Socket[bytes]]:
    """The ZeroMQ context shared by every socket of this process.

    Created on first use (and again in a forked child, which must not reuse its parent's).
    It is never terminated: every socket is closed with a finite linger instead.
    """
    global _context, _context_pid
    pid = os.getpid()
    with _context_lock:
        if _context is None or _context_pid != pid:
            ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
            ctx.setsockopt(zmq.LINGER, 1000)
            ctx.set(zmq.MAX_SOCKETS, 32768)
            _context, _context_pid = ctx, pid
        return _context


def has_curve() -> bool:
    """Whether the libzmq in use supports CurveZMQ encryption."""
    return bool(zmq.has("curve"))


def _require_curve() -> None:
    if not has_curve():
        raise EncryptionUnavailable(
            f"CurveZMQ encryption is required but this libzmq ({zmq.zmq_version()}) was built "
            "without curve support"
        )


def curve_keypair() -> tuple[str, str]:
    """A new CurveZMQ key pair ``(public, secret)`` as Z85 text (40 characters each).

    Raises:
        EncryptionUnavailable: libzmq was built without curve support.
    """
    _require_curve()
    public, secret = zmq.curve_keypair()
    return public.decode("ascii"), secret.decode("ascii")


def curve_public(secret_key: str) -> str:
    """The Z85 public key that belongs to the Z85 ``secret_key``.

    Raises:
        EncryptionUnavailable: libzmq was built without curve support.
        ConfigurationError: the secret key is not a 40-character Z85 string.
    """
    _require_curve()
    try:
        return zmq.curve_public(secret_key.encode("ascii")).decode("ascii")
    except (zmq.ZMQError, ValueError) as exc:  # pyzmq: ValueError for a wrong length
        raise ConfigurationError("not a valid Z85 CurveZMQ secret key") from exc


def zmq_version() -> str:
    """The versions in use, e.g. ``"pyzmq 27.3.0, libzmq 4.3.5"``."""
    return f"pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()}"


def _translate(exc: zmq.ZMQError) -> trio.ClosedResourceError | trio.BrokenResourceError:
    if exc.errno in _CLOSED_ERRNOS:
        return trio.ClosedResourceError(f"the ZeroMQ socket is closed: {exc}")
    return trio.BrokenResourceError(f"ZeroMQ error: {exc}")


def _nbytes(frame: bytes | bytearray | memoryview) -> int:
    return frame.nbytes if isinstance(frame, memoryview) else len(frame)


class TrioSocket:
    """A ZeroMQ socket usable from Trio tasks without blocking the event loop.

    Any number of tasks may send and receive concurrently. A multipart message is always sent
    or received whole. All methods must be called from the Trio thread that uses the socket
    (ZeroMQ sockets are not thread-safe).

    Args:
        kind: the ZeroMQ socket type, e.g. ``"DEALER"``.
        linger: seconds :meth:`close` lets pending outgoing messages linger (never infinite).
        zero_copy_threshold: received frames of at least this many bytes are delivered as
            ``memoryview`` without copying; ``None`` always copies into ``bytes``. Zero-copy
            receiving turns itself on after a large frame arrives and off again after a run
            of small messages, so small-message traffic keeps the faster copying path.

    Raises:
        trio.BrokenResourceError: the socket could not be created.
    """

    def __init__(
        self,
        kind: SocketKind,
        *,
        linger: float = 1.0,
        zero_copy_threshold: int | None = ZERO_COPY_THRESHOLD,
    ) -> None:
        try:
            sock = zmq_context().socket(getattr(zmq, kind))
        except zmq.ZMQError as exc:
            raise _translate(exc) from exc
        sock.setsockopt(zmq.LINGER, max(0, int(linger * 1000)))
        self._sock: zmq.Socket[bytes] = sock
        self._kind: SocketKind = kind
        self._fd: int = cast(int, sock.getsockopt(zmq.FD))
        self._linger = linger
        self._closed = False
        self._zero_copy_threshold = zero_copy_threshold
        # Whether a task waits on the descriptor, and the events it waits for.
        self._fd_waiting = False  # a task waits on the descriptor (wait_readable)
        self._fd_mask = 0
        # Other tasks waiting for a receivable / sendable socket.
        self._recv_lot = trio.lowlevel.ParkingLot()
        self._send_lot = trio.lowlevel.ParkingLot()
        self._parked = 0  # tasks parked in either lot (a ParkingLot's truth is a Python call)
        self._monitor: SocketMonitor | None = None
        # Every libzmq call counts in _ops; _quiet is its value when EVENTS (or EAGAIN) last
        # showed no message: while they are equal nothing can have consumed the descriptor's
        # edge, so a message arriving since will make the descriptor readable.
        self._ops = 0
        self._quiet = -1
        self._receive_hook: Callable[[], bool] | None = None
        self._send_budget = ScheduleBudget()
        self._hooking = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<TrioSocket {self._kind} {state}>"

    # -- properties and options ----------------------------------------------------------

    @property
    def kind(self) -> SocketKind:
        """The ZeroMQ socket type."""
        return self._kind

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def _check_open(self) -> zmq.Socket[bytes]:
        if self._closed:
            raise trio.ClosedResourceError("the ZeroMQ socket is closed")
        return self._sock

    def set_option(self, name: str, value: int | bytes | str) -> None:
        """Set the ZeroMQ socket option ``name`` (e.g. ``"SNDHWM"``, ``"ROUTING_ID"``).

        Raises:
            ConfigurationError: there is no such option.
            trio.ClosedResourceError: the socket is closed.
            trio.BrokenResourceError: ZeroMQ refused the value.
        """
        sock = self._check_open()
        option = getattr(zmq, name.upper(), None)
        if not isinstance(option, int):
            raise ConfigurationError(f"unknown ZeroMQ socket option {name!r}")
        if isinstance(value, str):
            value = value.encode("utf-8")
        try:
            sock.setsockopt(option, value)
        except zmq.ZMQError as exc:
            raise _translate(exc) from exc
        finally:
            self._after_call()

    def get_option(self, name: str) -> int | bytes:
        """Read the ZeroMQ socket option ``name``.

        Raises:
            ConfigurationError: there is no such option.
            trio.ClosedResourceError: the socket is closed.
            trio.BrokenResourceError: ZeroMQ refused the request.
        """
        sock = self._check_open()
        option = getattr(zmq, name.upper(), None)
        if not isinstance(option, int):
            raise ConfigurationError(f"unknown ZeroMQ socket option {name!r}")
        try:
            value = sock.getsockopt(option)
        except zmq.ZMQError as exc:
            raise _translate(exc) from exc
        finally:
            self._after_call()
        return value if isinstance(value, (int, bytes)) else str(value).encode()

    def set_identity(self, identity: bytes) -> None:
        """Set the routing id peers see (call before :meth:`connect`).

        Raises:
            trio.ClosedResourceError: the socket is closed.
            trio.BrokenResourceError: ZeroMQ refused the identity.
        """
        self.set_option("ROUTING_ID", identity)

    def set_curve_client(self, server_key: str, *, public_key: str, secret_key: str) -> None:
        """Encrypt with CurveZMQ as a client of the server whose public key is ``server_key``.

        Call before :meth:`connect`. Keys are Z85 text.

        Raises:
            EncryptionUnavailable: libzmq was built without curve support.
            trio.ClosedResourceError: the socket is closed.
            trio.BrokenResourceError: a key was refused.
        """
        _require_curve()
        self.set_option("CURVE_SERVERKEY", server_key)
        self.set_option("CURVE_PUBLICKEY", public_key)
        self.set_option("CURVE_SECRETKEY", secret_key)

    def set_curve_server(self, secret_key: str) -> None:
        """Encrypt with CurveZMQ as a server with the Z85 ``secret_key`` (before :meth:`bind`).

        Raises:
            EncryptionUnavailable: libzmq was built without curve support.
            trio.ClosedResourceError: the socket is closed.
            trio.BrokenResourceError: the key was refused.
        """
        _require_curve()
        self.set_option("CURVE_SERVER", 1)
        self.set_option("CURVE_SECRETKEY", secret_key)

    def subscribe(self, topic: bytes = b"") -> None:
        """Subscribe a SUB socket to messages starting with ``topic`` (``b""``: all).

        Raises:
            trio.ClosedResourceError: the socket is closed.
            trio.BrokenResourceError: this is not a SUB socket.
        """
        self.set_option("SUBSCRIBE", topic)

    def connect(self, url: str) -> None:
        """Connect to ``url`` (``tcp://host:port`` or ``ipc://path``); does not wait.

        Raises:
            trio.ClosedResourceError: the socket is closed.
            trio.BrokenResourceError: the address is invalid.
        """
        sock = self._check_open()
        try:
            sock.connect(url)
        except zmq.ZMQError as exc:
            raise _translate(exc) from exc
        finally:
            self._after_call()

    def bind(self, url: str) -> str:
        """Bind to ``url`` and return the endpoint actually bound.

        A tcp port of ``0`` or ``*`` binds a free port; the returned endpoint names it.

        Raises:
            trio.ClosedResourceError: the socket is closed.
            trio.BrokenResourceError: the address is invalid or in use.
        """
        sock = self._check_open()
        if url.startswith("tcp://") and url.endswith(":0"):
            url = url[:-2] + ":*"
        try:
            sock.bind(url)
            endpoint = sock.getsockopt(zmq.LAST_ENDPOINT)
        except zmq.ZMQError as exc:
            raise _translate(exc) from exc
        finally:
            self._after_call()
        assert isinstance(endpoint, bytes)
        return endpoint.decode("utf-8")

    # -- the waiting machinery ------------------------------------------------------------

    def _dispatch(self, events: int) -> None:
        # Wake everybody whose event ``events`` shows; a receive hook may take the messages
        # first, saving the descriptor waiter a wake-up.
        if (
            self._fd_waiting
            and events & self._fd_mask
            and not (self._fd_mask == _POLLIN and self._run_receive_hook())
        ):
            self._wake_fd_waiter()
        if self._parked:
            if events & _POLLIN and self._recv_lot:
                self._recv_lot.unpark_all()
            if events & _POLLOUT and self._send_lot:
                self._send_lot.unpark_all()

    def _run_receive_hook(self) -> bool:
        hook = self._receive_hook
        if hook is None or self._hooking or self._closed:
            return False
        self._hooking = True
        try:
            return hook()
        except Exception:  # the waiter is woken and meets the problem itself
            return False
        finally:
            self._hooking = False

    def _wake_all(self) -> None:
        self._wake_fd_waiter()
        self._recv_lot.unpark_all()
        self._send_lot.unpark_all()

    def _after_call(self) -> None:
        # A libzmq call may have consumed the descriptor's edge: re-read EVENTS for waiters.
        self._ops += 1
        if not self._fd_waiting and not self._parked:
            return
        if self._closed:
            self._wake_all()
            return
        try:
            events: int = _get_option(self._sock, _EVENTS)
        except zmq.ZMQError:
            self._wake_all()  # let each waiter meet the error itself
            return
        self._dispatch(events)

    def _check_events(self) -> int:
        """Read ``EVENTS`` (itself a libzmq call) and wake whoever it lets proceed.

        Raises:
            trio.ClosedResourceError, trio.BrokenResourceError: the translated ZMQError.
        """
        try:
            events: int = _get_option(self._sock, _EVENTS)
        except zmq.ZMQError as exc:
            raise _translate(exc) from exc
        self._ops += 1
        self._dispatch(events)
        return events

    async def _wait(self, mask: int) -> bool:
        """Wait until ``EVENTS`` shows ``mask``; return whether the task yielded."""
        yielded = False
        while True:
            if self._closed:
                raise trio.ClosedResourceError("the ZeroMQ socket was closed")
            events = self._check_events()
            if events & mask:
                return yielded
            yielded = True
            await self._sleep(mask)

    async def _sleep(self, mask: int) -> None:
        # Wait on the descriptor, or behind the task that already does; the caller re-reads
        # EVENTS afterwards.
        if not self._fd_waiting:
            self._fd_waiting = True
            self._fd_mask = mask
            try:
                await trio.lowlevel.wait_readable(self._fd)
            except trio.ClosedResourceError as exc:
                if self._closed:
                    raise trio.ClosedResourceError("the ZeroMQ socket was closed") from exc
                # Woken by _wake_fd_waiter: another call may have consumed the edge.
            finally:
                self._fd_waiting = False
                self._quiet = -1
                # Whoever is parked must now take over the descriptor.
                if self._parked:
                    self._recv_lot.unpark_all()
                    self._send_lot.unpark_all()
        else:
            self._parked += 1
            try:
                await (self._recv_lot if mask == _POLLIN else self._send_lot).park()
            finally:
                self._parked -= 1
            self._quiet = -1

    def _wake_fd_waiter(self) -> None:
        # Trio offers two ways to end another task's wait_readable: cancel a scope around it
        # (a CancelScope per wait costs more than the rest of a wait) or notify_closing, which
        # wakes the waiter with ClosedResourceError and unregisters the descriptor; the next
        # wait registers it again. _sleep tells this wake-up from a real close by _closed.
        if self._fd_waiting:
            try:
                trio.lowlevel.notify_closing(self._fd)
            except RuntimeError:  # not inside trio.run: nobody can be waiting
                pass

    # -- sending --------------------------------------------------------------------------

    def send_multipart_nowait(self, frames: Sequence[bytes | bytearray | memoryview]) -> None:
        """Send one multipart message now, or raise :class:`trio.WouldBlock`.

        Frames of :data:`ZERO_COPY_THRESHOLD` bytes or more are sent without copying: do not
        modify such a buffer after sending it.

        Raises:
            trio.WouldBlock: the high-water mark is reached (nothing was sent).
            LocalProtocolError: ``frames`` is empty.
            trio.ClosedResourceError: the socket is closed.
            trio.BrokenResourceError: ZeroMQ refused the message.
        """
        if self._closed:  # (_check_open, inline: this is the hot path)
            raise trio.ClosedResourceError("the ZeroMQ socket is closed")
        sock = self._sock
        if not frames:
            raise LocalProtocolError("a message needs at least one frame")
        last = len(frames) - 1
        index = 0
        send = _send_frame
        try:
            for index, frame in enumerate(frames):
                flags = _NOBLOCK if index == last else _MORE
                if type(frame) is bytes and len(frame) < ZERO_COPY_THRESHOLD:
                    send(sock, frame, flags)  # copied: the usual frame, at C speed
                else:
                    send(sock, frame, flags, _nbytes(frame) < ZERO_COPY_THRESHOLD)
        except zmq.Again:
            if index == 0:
                raise trio.WouldBlock from None
            # libzmq never refuses a later part of a message it accepted; if it ever did, the
            # socket would hold half a message: refuse to use it any further.
            self.close()
            raise trio.BrokenResourceError(
                "ZeroMQ refused part of a multipart message; the socket was closed"
            ) from None
        except zmq.ZMQError as exc:
            raise _translate(exc) from exc
        finally:
            self._after_call()

    async def send_multipart(self, frames: Sequence[bytes | bytearray | memoryview]) -> None:
        """Send one multipart message, waiting while the high-water mark is reached.

        Cancellation leaves nothing half-sent: the message is sent whole or not at all. A
        cancel point; a schedule point when it waits, and every
        :data:`~trio_enchannel._util.SCHEDULE_EVERY` sends in a row that do not.

        Raises:
            LocalProtocolError: ``frames`` is empty.
            trio.ClosedResourceError: the socket is (or gets) closed.
            trio.BrokenResourceError: ZeroMQ refused the message.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        waited = False
        while True:
            try:
                self.send_multipart_nowait(frames)
            except trio.WouldBlock:
                waited = await self._wait(_POLLOUT) or waited
                continue
            if waited:
                self._send_budget.reset()
            elif self._send_budget.spend():
                await trio.lowlevel.cancel_shielded_checkpoint()
            return

    # -- receiving ------------------------------------------------------------------------

    def _recv_one(self) -> list[Frame]:
        # One whole message; raises zmq.Again when none is ready. Every frame is received
        # without copying and then copied only if it is small: Frame.more avoids a
        # getsockopt(RCVMORE) per frame (pyzmq's recv_multipart), and a large frame is never
        # copied, not even the first one of a burst.
        recv = self._sock.recv
        threshold = self._zero_copy_threshold
        frames: list[Frame] = []
        append = frames.append
        more = True
        while more:
            part = recv(_NOBLOCK, copy=False)
            more = part.more
            if threshold is not None and len(part) >= threshold:
                append(part.buffer)
            else:
                append(part.bytes)
        return frames

    def receive_multipart_nowait(self) -> list[Frame]:
        """Receive one whole multipart message if one is ready.

        Raises:
            trio.WouldBlock: no message is ready.
            trio.ClosedResourceError: the socket is closed.
            trio.BrokenResourceError: ZeroMQ reported an error.
        """
        self._check_open()
        try:
            return self._recv_one()
        except zmq.Again:
            raise trio.WouldBlock from None
        except zmq.ZMQError as exc:
            raise _translate(exc) from exc
        finally:
            self._after_call()

    def receive_batch_nowait(self, limit: int = 1000) -> list[list[Frame]]:
        """Receive every ready message, up to ``limit``, in order; ``[]`` when none is ready.

        This is the reader's hot path: one call drains the socket without a schedule point
        per message.

        Raises:
            trio.ClosedResourceError: the socket is closed (and nothing was received).
            trio.BrokenResourceError: ZeroMQ reported an error (and nothing was received).
        """
        self._check_open()
        batch: list[list[Frame]] = []
        recv = self._recv_one
        try:
            while len(batch) < limit:
                batch.append(recv())
        except zmq.Again:
            pass
        except zmq.ZMQError as exc:
            if not batch:
                raise _translate(exc) from exc
            # Hand over what was received; the next call meets the error again.
        finally:
            self._after_call()
        return batch

    async def receive_batch(self, limit: int | Callable[[], int] = 1000) -> list[list[Frame]]:
        """Wait until a message can be received, then receive every ready one, up to
        ``limit``, in order. A checkpoint.

        ``limit`` may be a function, asked just before receiving (after any wait): a reader
        whose room can shrink while it sleeps (a receive hook took messages in meanwhile)
        takes no more than the room left. When it gives 0, nothing is received and ``[]`` is
        returned; the next call looks at the socket again before waiting.

        The reader's hot path: one schedule point per batch, no ``EVENTS`` read before
        waiting when the last one already showed the socket drained, and ZeroMQ's
        ``EVENTS`` rather than an ``EAGAIN`` exception to find the end of a small batch.
        Cancellation never loses a message: messages leave the socket only in the
        synchronous step that returns them.

        Raises:
            trio.ClosedResourceError: the socket is (or gets) closed.
            trio.BrokenResourceError: ZeroMQ reported an error (and nothing was received).
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        yielded = False
        woken = False
        while True:
            if self._closed:
                raise trio.ClosedResourceError("the ZeroMQ socket is closed")
            # After a wake-up, receive at once: the wake-up almost always means a message,
            # and a receive that finds none tells as much as EVENTS would (EAGAIN: drained,
            # so waiting again is safe), while a message saves the EVENTS read. Waiters
            # parked behind this one are served by the receive's own EVENTS check
            # (_after_call), which runs only when somebody waits.
            if woken or self._quiet != self._ops:
                if woken or self._check_events() & _POLLIN:
                    woken = False
                    room = limit if isinstance(limit, int) else limit()
                    if room <= 0:
                        # Messages may be ready and the wake-up's edge is spent: not drained.
                        self._quiet = -1
                        if not yielded:
                            await trio.lowlevel.cancel_shielded_checkpoint()
                        return []
                    batch = self._drain(room)
                    if batch:
                        if not yielded:
                            await trio.lowlevel.cancel_shielded_checkpoint()
                        return batch
                    continue
                self._quiet = self._ops
            yielded = True
            await self._sleep(_POLLIN)
            woken = True

    def set_receive_hook(self, hook: Callable[[], bool] | None) -> None:
        """Install (or remove, with ``None``) a receive hook.

        When a task's call on this socket (a send, an option, ...) finds a message ready
        while another task waits on the descriptor for one, ``hook()`` is called right there,
        synchronously, before that waiter is woken: it may take the ready messages with
        :meth:`receive_ready_nowait`; when it returns ``True`` with the socket
        :attr:`drained`, the waiter is left asleep (it is woken when the next message
        arrives). Returning ``False`` (or raising) wakes the waiter as usual. The hook is not
        re-entered and must not wait.
        """
        self._receive_hook = hook

    @property
    def drained(self) -> bool:
        """Whether the last receive found no further message and no call happened since (so
        the next arrival makes the descriptor readable)."""
        return self._quiet == self._ops

    def receive_ready_nowait(self, limit: int = 1000) -> list[list[Frame]]:
        """Receive the messages that are ready, up to ``limit``, in order (``[]``: none).

        Like :meth:`receive_batch_nowait`, ending small batches with an ``EVENTS`` probe
        rather than an ``EAGAIN`` exception; afterwards :attr:`drained` tells whether the
        socket is empty.

        Raises:
            trio.ClosedResourceError: the socket is closed (and nothing was received).
            trio.BrokenResourceError: ZeroMQ reported an error (and nothing was received).
        """
        if self._closed:
            raise trio.ClosedResourceError("the ZeroMQ socket is closed")
        return self._drain(limit)

    def _drain(self, limit: int) -> list[list[Frame]]:
        # Messages are ready: receive them until none is, or ``limit``.
        sock = self._sock
        recv = self._recv_one
        batch: list[list[Frame]] = []
        quiet = False
        probed = -1  # EVENTS as the last call (a probe) showed it, when it ended the batch
        try:
            while len(batch) < limit:
                batch.append(recv())
                # Small batches: asking EVENTS costs less than the exception of an empty
                # read; past a few messages, one exception per batch costs less.
                if len(batch) <= _EVENTS_PROBES:
                    events: int = _get_option(sock, _EVENTS)
                    if not events & _POLLIN:
                        probed = events
                        break
        except zmq.Again:
            quiet = True
        except zmq.ZMQError as exc:
            if not batch:
                raise _translate(exc) from exc
            # Hand over what was received; the next call meets the error again.
        finally:
            if probed < 0:
                self._after_call()
            else:
                # The probe was the last libzmq call: what it shows is current, so the
                # waiters are served from it without reading EVENTS again (_after_call).
                self._ops += 1
                quiet = True
                self._dispatch(probed)
        if quiet:
            self._quiet = self._ops
        return batch

    async def wait_receivable(self) -> None:
        """Wait until a message can be received (returns at once if one is ready).

        Raises:
            trio.ClosedResourceError: the socket is (or gets) closed.
            trio.BrokenResourceError: ZeroMQ reported an error.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        if not await self._wait(_POLLIN):
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def receive_multipart(self) -> list[Frame]:
        """Receive one whole multipart message, waiting until one arrives.

        Cancellation never loses a message: a message is taken from the socket only when it
        is returned.

        Raises:
            trio.ClosedResourceError: the socket is (or gets) closed.
            trio.BrokenResourceError: ZeroMQ reported an error.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                frames = self.receive_multipart_nowait()
            except trio.WouldBlock:
                await self._wait(_POLLIN)
                continue
            await trio.lowlevel.cancel_shielded_checkpoint()
            return frames

    def readiness(self) -> tuple[bool, bool]:
        """``(receivable, sendable)`` right now, from ZeroMQ's ``EVENTS``.

        Raises:
            trio.ClosedResourceError: the socket is closed.
            trio.BrokenResourceError: ZeroMQ reported an error.
        """
        sock = self._check_open()
        try:
            events = cast(int, sock.getsockopt(_EVENTS))
        except zmq.ZMQError as exc:
            raise _translate(exc) from exc
        self._ops += 1
        self._dispatch(events)
        return bool(events & _POLLIN), bool(events & _POLLOUT)

    # -- monitoring -----------------------------------------------------------------------

    def open_monitor(self) -> SocketMonitor:
        """Start reporting this socket's connection events (ZeroMQ's socket monitor).

        Call it before :meth:`connect` to see every event; receive the events promptly
        (libzmq's I/O thread blocks when a monitor's queue is full). Closing either this
        socket or the monitor stops monitoring, in the order libzmq needs (disable the
        monitor, close its socket, then close this one; any other order leaks descriptors
        or can hang the I/O thread).

        Raises:
            UsageError: the socket is already monitored.
            trio.ClosedResourceError: the socket is closed.
            trio.BrokenResourceError: ZeroMQ refused to monitor it.
        """
        sock = self._check_open()
        if self._monitor is not None:
            raise UsageError("this socket is already monitored")
        address = f"inproc://trio-enchannel-monitor-{os.getpid()}-{next(_monitor_ids)}"
        try:
            sock.monitor(address, _EVENT_MASK)
        except zmq.ZMQError as exc:
            raise _translate(exc) from exc
        finally:
            self._after_call()
        pair = TrioSocket("PAIR", linger=0)
        try:
            pair.set_option("RCVHWM", 0)
            pair.connect(address)
        except BaseException:
            pair.close()
            self._disable_monitor()
            raise
        self._monitor = SocketMonitor(self, pair)
        return self._monitor

    def _disable_monitor(self) -> None:
        if self._closed:
            return
        try:
            self._sock.disable_monitor()
        except zmq.ZMQError:
            pass
        finally:
            self._after_call()

    # -- closing --------------------------------------------------------------------------

    def close(self, linger: float | None = None) -> None:
        """Close the socket; idempotent.

        Every task waiting on the socket is woken with :class:`trio.ClosedResourceError`.
        Unsent messages linger for ``linger`` seconds (default: the constructor's) at most.
        """
        if self._closed:
            return
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.close()  # first: see open_monitor
        self._closed = True
        try:
            trio.lowlevel.notify_closing(self._fd)
        except RuntimeError:  # not inside trio.run: nobody can be waiting
            pass
        self._wake_all()
        seconds = self._linger if linger is None else linger
        self._sock.close(linger=max(0, int(seconds * 1000)))

    async def aclose(self) -> None:
        """Close the socket (see :meth:`close`); a checkpoint; idempotent."""
        self.close()
        await trio.lowlevel.checkpoint()

    def __enter__(self) -> TrioSocket:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


@attrs.frozen
class SocketEvent:
    """A connection event of a monitored socket (see :meth:`TrioSocket.open_monitor`).

    Attributes:
        name: ``"connected"`` (TCP/IPC connection made), ``"handshake_succeeded"`` (the
            ZeroMQ handshake completed: the peer knows this socket now),
            ``"handshake_failed"``, ``"handshake_failed_protocol"`` (the peer does not speak
            ZMTP or not with our security mechanism), ``"handshake_failed_auth"`` (CurveZMQ
            keys refused), ``"disconnected"``, ``"monitor_stopped"`` (the socket was closed).
        value: the event's value (a file descriptor or an error code, depending on the event).
        endpoint: the peer's address.
    """

    name: str
    value: int
    endpoint: str


class SocketMonitor:
    """The receiving end of a socket's connection events (from
    :meth:`TrioSocket.open_monitor`)."""

    def __init__(self, owner: TrioSocket, pair: TrioSocket) -> None:
        self._owner: TrioSocket | None = owner
        self._pair = pair

    async def receive(self) -> SocketEvent:
        """The next event, waiting for one.

        Raises:
            trio.ClosedResourceError: the monitor was closed.
            trio.BrokenResourceError: ZeroMQ reported an error.
        """
        while True:
            frames = await self._pair.receive_multipart()
            if len(frames) < 2 or len(frames[0]) < 6:
                continue  # not an event frame: never happens with libzmq's monitor
            event, value = struct.unpack("=HI", bytes(frames[0])[:6])
            name = _EVENT_NAMES.get(event, f"event_{event}")
            return SocketEvent(name, value, bytes(frames[1]).decode("utf-8", "replace"))

    def close(self) -> None:
        """Stop monitoring and receiving events; idempotent."""
        owner, self._owner = self._owner, None
        if owner is not None:
            owner._monitor = None
            owner._disable_monitor()
        self._pair.close()
