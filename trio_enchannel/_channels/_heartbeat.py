"""The heartbeat monitor: pings the kernel's heartbeat socket and tracks whether it answers."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import attrs
import trio

from .._errors import ConfigurationError, KernelDied, UsageError

if TYPE_CHECKING:  # the statistics are transport-neutral: importing them needs no pyzmq
    from .._io._zmq import TrioSocket

__all__ = ["Heartbeat", "HeartbeatState", "HeartbeatStatistics"]

#: ``"off"``: no heartbeat monitoring; ``"waiting"``: no reply yet since the channels opened;
#: ``"responsive"``: the last ping was answered in time; ``"unresponsive"``: no reply for longer
#: than the deadline (the kernel may come back, and the state then returns to
#: ``"responsive"``).
HeartbeatState = Literal["off", "waiting", "responsive", "unresponsive"]


@attrs.frozen
class HeartbeatStatistics:
    """A snapshot of the heartbeat monitor.

    Attributes:
        state: see :data:`HeartbeatState`.
        pings: pings sent.
        replies: echoes received in time.
        misses: pings that got no echo within the interval (each one recreates the socket).
        last_rtt: round-trip time of the last answered ping, in seconds.
        last_reply: :func:`trio.current_time` of the last echo, or ``None``.
        unresponsive_periods: how many times the kernel was declared unresponsive.
    """

    state: HeartbeatState
    pings: int = 0
    replies: int = 0
    misses: int = 0
    last_rtt: float | None = None
    last_reply: float | None = None
    unresponsive_periods: int = 0


class Heartbeat:
    """Watches the kernel's heartbeat; reachable as :attr:`Channels.heartbeat`.

    Every ``interval`` seconds a ping goes out on a REQ socket and the kernel echoes it. A
    ping without an echo within ``interval`` is a *miss*: the REQ socket, now stuck waiting
    for that reply, is closed and recreated. When no echo has arrived for ``deadline``
    seconds since the last one (or, before the first echo, ``startup_deadline`` seconds since
    the channels opened, so that a kernel still starting up is not declared dead), the kernel
    is declared unresponsive: :meth:`wait_unresponsive` returns, so higher layers can fail their
    pending work. If echoes resume, the state goes back to ``"responsive"``.
    """

    def __init__(
        self,
        *,
        interval: float,
        deadline: float,
        startup_deadline: float | None = None,
        make_socket: Callable[[], TrioSocket] | None,
    ) -> None:
        if make_socket is not None and (interval <= 0 or deadline <= 0):
            raise ConfigurationError("hb_interval and hb_deadline must be positive")
        self._interval = interval
        self._deadline = deadline
        self._startup_deadline = deadline if startup_deadline is None else startup_deadline
        self._make_socket = make_socket
        self._state: HeartbeatState = "off" if make_socket is None else "waiting"
        self._closed = False
        self._pings = 0
        self._replies = 0
        self._misses = 0
        self._periods = 0
        self._last_rtt: float | None = None
        self._last_reply: float | None = None
        self._verdict: KernelDied | None = None
        self._changed = trio.Event()  # set (and replaced) at every state change

    @property
    def state(self) -> HeartbeatState:
        """The current state (see :data:`HeartbeatState`)."""
        return self._state

    @property
    def unresponsive_error(self) -> KernelDied | None:
        """The :class:`KernelDied` describing the silence while the kernel is declared
        unresponsive (what :meth:`wait_unresponsive` returns), otherwise ``None``."""
        return self._verdict if self._state == "unresponsive" else None

    @property
    def enabled(self) -> bool:
        """Whether the heartbeat is monitored at all."""
        return self._make_socket is not None

    @property
    def interval(self) -> float:
        """Seconds between pings (and how long each ping waits for its echo)."""
        return self._interval

    @property
    def deadline(self) -> float:
        """Seconds without an echo after which the kernel is declared unresponsive."""
        return self._deadline

    @property
    def startup_deadline(self) -> float:
        """Seconds without any echo since opening after which the kernel is declared
        unresponsive."""
        return self._startup_deadline

    def _current_deadline(self) -> float:
        return self._deadline if self._replies else self._startup_deadline

    def statistics(self) -> HeartbeatStatistics:
        """A snapshot of the counters and state."""
        return HeartbeatStatistics(
            state=self._state,
            pings=self._pings,
            replies=self._replies,
            misses=self._misses,
            last_rtt=self._last_rtt,
            last_reply=self._last_reply,
            unresponsive_periods=self._periods,
        )

    async def wait_unresponsive(self) -> KernelDied:
        """Wait until the kernel is declared unresponsive (at once if it is now).

        Returns:
            A :class:`KernelDied` describing the silence, ready to be raised or handed to
            pending requests. Without heartbeat monitoring this never returns.

        Raises:
            trio.ClosedResourceError: the channels were closed while waiting.
        """
        if self._make_socket is None:
            await trio.sleep_forever()
        await self._wait_state("unresponsive")
        assert self._verdict is not None
        return self._verdict

    async def wait_responsive(self) -> None:
        """Wait until the kernel answers a heartbeat ping (at once if the last one was).

        Raises:
            trio.ClosedResourceError: the channels were closed while waiting.
            UsageError: heartbeat monitoring is off.
        """
        if self._make_socket is None:
            raise UsageError("heartbeat monitoring is off (open_channels(heartbeat=False))")
        await self._wait_state("responsive")

    async def wait_alive(self) -> None:
        """Deprecated alias of :meth:`wait_responsive`."""
        warnings.warn(
            "Heartbeat.wait_alive() is deprecated, use wait_responsive()",
            DeprecationWarning,
            stacklevel=2,
        )
        await self.wait_responsive()

    async def _wait_state(self, state: HeartbeatState) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            if self._closed:
                raise trio.ClosedResourceError("the channels are closed")
            if self._state == state:
                await trio.lowlevel.cancel_shielded_checkpoint()
                return
            await self._changed.wait()

    def _set_state(self, state: HeartbeatState) -> None:
        self._state = state
        self._changed.set()
        self._changed = trio.Event()

    # -- the monitor task ----------------------------------------------------------------

    def _on_reply(self, sent_at: float) -> None:
        now = trio.current_time()
        self._replies += 1
        self._last_rtt = now - sent_at
        self._last_reply = now
        if self._state != "responsive":
            self._set_state("responsive")

    def _declare_unresponsive(self, silent_for: float) -> None:
        self._periods += 1
        self._verdict = KernelDied(f"no heartbeat reply for {silent_for:.1f} s")
        self._set_state("unresponsive")

    def _stop(self) -> None:
        self._closed = True
        self._changed.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The monitor task (started by :func:`open_channels`)."""
        make_socket = self._make_socket
        if make_socket is None:
            task_status.started()
            return
        sock = make_socket()
        task_status.started()
        reference = trio.current_time()
        seq = 0
        try:
            while True:
                seq += 1
                payload = b"ping %d" % seq
                sent_at = trio.current_time()
                window_end = sent_at + self._interval
                try:
                    await sock.send_multipart([payload])
                    self._pings += 1
                    reply = await self._await_echo(sock, window_end, reference)
                except trio.BrokenResourceError:
                    reply = None
                if reply == [payload]:
                    self._on_reply(sent_at)
                    reference = trio.current_time()
                    await trio.sleep_until(window_end)
                    continue
                self._misses += 1
                # A REQ socket that missed its reply can never send again: start afresh.
                sock.close(linger=0)
                sock = make_socket()
                silent = trio.current_time() - reference
                if self._state != "unresponsive" and silent >= self._current_deadline():
                    self._declare_unresponsive(silent)
        except trio.ClosedResourceError:
            return  # the channels were closed
        finally:
            sock.close(linger=0)
            self._stop()

    async def _await_echo(
        self, sock: TrioSocket, window_end: float, reference: float
    ) -> list[bytes] | None:
        while True:
            now = trio.current_time()
            dead_at = reference + self._current_deadline()
            if self._state != "unresponsive" and now >= dead_at:
                self._declare_unresponsive(now - reference)
            if now >= window_end:
                return None
            limit = window_end if self._state == "unresponsive" else min(window_end, dead_at)
            with trio.move_on_at(limit):
                return [bytes(f) for f in await sock.receive_multipart()]
