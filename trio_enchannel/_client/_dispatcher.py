"""The routing core of a :class:`~trio_enchannel.KernelClient`.

A :class:`Dispatcher` hands every received message (given by the channel's reader where the
channels allow it, else read by one task per channel) to the request that owns it (by the
``msg_id`` of its parent, see :mod:`._tracking`), to a comm, or to the unclaimed stores; it
answers orphan stdin prompts, watches the kernel's liveness and fails pending requests when
the kernel is unresponsive or dead. The client's request methods are built on
:meth:`Dispatcher.ask`, or :meth:`Dispatcher.in_flight` and :meth:`Dispatcher.wait_reply`.
What it needs of the channels is declared in :mod:`.._channels._interfaces`.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

import attrs
import trio

from .._channels._interfaces import ClientChannels
from .._errors import (
    REASON_KEY_MISSING,
    ConnectionInfoError,
    KernelDied,
    LocalProtocolError,
    RemoteProtocolError,
    SignatureMismatch,
)
from .._io._fanout import Subscription
from .._wire._message import ChannelName, Message
from ._comm import Comm
from ._execution import _ExecRequest, _Request
from ._queue import DroppingQueue
from ._results import KernelInfo
from ._tracking import _FRAMING_TYPES, RequestTracker, Route

__all__ = ["ClientStatistics", "Dispatcher"]

_Buffer = bytes | bytearray | memoryview
_COMM_TYPES = frozenset(("comm_open", "comm_msg", "comm_close"))
_REPLY_CHANNELS = frozenset(("shell", "control"))


@attrs.frozen
class ClientStatistics:
    """Counters of a :class:`KernelClient` (a snapshot).

    Attributes:
        pending: requests waiting for their reply.
        unclaimed_replies: replies nobody waited for, buffered in
            :attr:`KernelClient.unclaimed_replies`.
        unclaimed_replies_dropped: such replies dropped because the buffer was full.
        unclaimed_iopub: IOPub messages of no request of this client, buffered in
            :attr:`KernelClient.unclaimed_iopub`.
        unclaimed_iopub_dropped: such messages dropped because the buffer was full.
        late_dropped: ``status``/``execute_input`` messages that frame requests other than
            executions (which gather no outputs), trailing ones of requests that had already
            returned, and late replies of readiness probes: dropped by design.
        stdin_refused: ``input_request`` messages answered with an empty line because no
            handler was given or the request they belong to is gone.
        comms: comms currently open.
        unrouted: messages the channels' readers handed over after that channel's routing
            failed (a bug of ours; the pending requests then failed, and later calls fail,
            with :class:`trio.BrokenResourceError`), not delivered to anyone.
    """

    pending: int
    unclaimed_replies: int
    unclaimed_replies_dropped: int
    unclaimed_iopub: int
    unclaimed_iopub_dropped: int
    late_dropped: int
    stdin_refused: int
    comms: int
    unrouted: int = 0


class _Receiver(Protocol):
    async def receive(self) -> Message: ...


class Dispatcher:
    """Routes every message of a client's channels to its owner; see the module docstring.

    Args:
        channels: the channels to read (the dispatcher must be their only reader).
        unclaimed_buffer: size of each unclaimed store before the oldest is dropped.
        comm_buffer: how many unread messages a comm keeps.
    """

    def __init__(
        self, channels: ClientChannels, *, unclaimed_buffer: int, comm_buffer: float = math.inf
    ) -> None:
        self.channels = channels
        self.session = channels.session
        self.tracker: RequestTracker[_Request] = RequestTracker()
        # A receiver of these waits only while a message may come: not while the kernel is
        # known dead or unreachable (check_usable), and fail() wakes the waiting ones.
        self.unclaimed_replies: DroppingQueue[Message] = DroppingQueue(
            unclaimed_buffer, check=self.check_usable
        )
        self.unclaimed_iopub: DroppingQueue[Message] = DroppingQueue(
            unclaimed_buffer, check=self.check_listening
        )
        self.comms: dict[str, Comm] = {}
        self.comm_targets: dict[str, DroppingQueue[Comm]] = {}
        self.comm_buffer = comm_buffer
        # The open KernelClient.subscribe() subscriptions: woken, like the queues, by fail().
        self.subscriptions: set[Subscription] = set()
        self.iopub_event = trio.Event()
        # The channels' own readiness check counts only for the first kernel process: after a
        # death or restart, IOPub must prove itself ready again (a new process means a new
        # subscription, and whatever it publishes before that subscription arrives is lost).
        self.trust_channels_ready = True
        self.unresponsive: KernelDied | None = None
        # Why the channels can never reach the kernel (a ZeroMQ handshake that failed for
        # good, or a kernel that signs while we have no key): every call fails with it, for
        # good (but listening, for "key_missing": see check_listening).
        self.unreachable: ConnectionInfoError | None = None
        # Messages rejected for their signature before the kernel's first valid one: it
        # signs differently (another key or scheme); calls fail with it until a valid one.
        self.missigned: SignatureMismatch | None = None
        self.verified = False  # a valid message has arrived
        # When ``unresponsive`` is the verdict of the channels' watch (not a death reported by
        # a listener or a launcher): whether the kernel is responsive again (a request made
        # right after the verdict was lifted must not wait for watch_liveness to run and
        # clear the flag).
        self.responsive_again: Callable[[], bool] | None = None
        # A new kernel process is starting (reset_readiness): heartbeat silence does not make
        # the readiness probe fail at once (the new process may not answer pings yet).
        self.starting = False
        self.stdin_refused = 0
        self.unrouted = 0
        # A channel's routing ended for good while the client is open and never resumes:
        # its routing failed (a BrokenResourceError: a bug of ours), or the channels (or the
        # view of shell, control or IOPub) were closed under the client (a
        # ClosedResourceError). Every call fails with it at once instead of waiting for what
        # can no longer be routed; a verdict on the kernel known at the same time comes first.
        self.broken: trio.BrokenResourceError | trio.ClosedResourceError | None = None
        # The stdin view was closed under the client: prompts can be neither answered nor
        # refused, so executions that allow them fail (everything else goes on).
        self.stdin_lost: trio.ClosedResourceError | None = None
        self.closed = False
        self.nursery: trio.Nursery | None = None

    def statistics(self) -> ClientStatistics:
        """A snapshot of the counters."""
        return ClientStatistics(
            pending=len({id(r) for r in self.tracker}),
            unclaimed_replies=len(self.unclaimed_replies),
            unclaimed_replies_dropped=self.unclaimed_replies.dropped,
            unclaimed_iopub=len(self.unclaimed_iopub),
            unclaimed_iopub_dropped=self.unclaimed_iopub.dropped,
            late_dropped=sum(self.tracker.dropped.values()),
            stdin_refused=self.stdin_refused,
            comms=len(self.comms),
            unrouted=self.unrouted,
        )

    def iopub_dropped_for(self, msg_id: str) -> int:
        """How many IOPub messages of the request ``msg_id`` never reached the client (the
        channels' buffer was full, or they were malformed)."""
        return self.channels.iopub.dropped_for(msg_id)

    # -- lifecycle ----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The routing tasks, one per channel, and the liveness watcher."""
        ch = self.channels
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            nursery.start_soon(self.route, "shell", ch.shell)
            nursery.start_soon(self.route, "control", ch.control)
            nursery.start_soon(self.route, "stdin", ch.stdin)
            nursery.start_soon(self.route, "iopub", ch.iopub)
            nursery.start_soon(self.watch_liveness)
            ch.add_listener(self)
            ch.add_reject_listener(self.rejected)
            task_status.started()

    def shutdown(self, exc: BaseException) -> None:
        """Close the bookkeeping (synchronous; called when the client closes)."""
        if self.closed:
            return
        self.closed = True
        # The queues end first (their receivers get EndOfChannel once drained, as for any
        # channel that closed), then the requests and comms fail with ``exc``.
        self.unclaimed_replies.close_producer()
        self.unclaimed_iopub.close_producer()
        for queue in self.comm_targets.values():
            queue.close_producer()
        self.fail(exc)

    def fail(self, exc: BaseException, *, probes: bool = True) -> int:
        """Fail the pending requests (readiness probes too unless ``probes`` is false) and
        the open comms with ``exc``, and wake the other receivers with it
        (:meth:`wake_receivers`); return how many requests failed."""
        failed = {id(req): req for req in self.tracker if probes or not req.probe}
        for req in failed.values():
            req.fail(exc)
        for comm in list(self.comms.values()):
            comm._fail(exc)
        self.comms.clear()
        self.wake_receivers(exc)
        return len(failed)

    def wake_receivers(self, exc: BaseException) -> None:
        """Nothing can arrive for now: whoever waits on an unclaimed store, an accepted comm
        target or a subscription gets ``exc`` (they stay open: a restarted kernel feeds them
        again)."""
        self.unclaimed_replies.fail_waiters(exc)
        self.unclaimed_iopub.fail_waiters(exc)
        for queue in list(self.comm_targets.values()):
            queue.fail_waiters(exc)
        if not self.closed:
            for subscription in list(self.subscriptions):
                subscription._interrupt(exc)

    # -- routing (one task per channel) -------------------------------------------------

    async def route(self, name: ChannelName, channel: _Receiver) -> None:
        # Where the channels allow it, their reader hands each message straight to
        # dispatch() (a task switch less per message: the waiting request is woken by the
        # reader itself); this task then only waits for the channel's end or failure.
        channels = self.channels
        with trio.CancelScope() as scope:
            direct = channels.set_consumer(
                name, self.consumer(name, channel, channels, scope), view=channel
            )
            try:
                await self.receive_loop(name, channel)
            finally:
                if direct:
                    channels.set_consumer(name, None, view=channel)

    def consumer(
        self,
        name: ChannelName,
        view: _Receiver,
        channels: ClientChannels,
        scope: trio.CancelScope,
    ) -> Callable[[Message], None]:
        """What the reader of channel ``name`` calls with each of its messages."""
        dispatch = self.dispatch
        failed = False

        def consume(msg: Message) -> None:
            nonlocal failed
            if failed:  # the rest of a batch, after a failure below: counted
                self.unrouted += 1
                return
            try:
                dispatch(msg, name)
            except Exception as exc:  # a routing bug must not stop the reader
                # This channel's routing ends, as when its routing task failed.
                failed = True
                channels.set_consumer(name, None, view=view)
                scope.cancel()
                if not self.closed:
                    self.end_routing(
                        trio.BrokenResourceError(f"the {name} channel failed: {exc!r}")
                    )

        return consume

    def end_routing(self, error: trio.BrokenResourceError | trio.ClosedResourceError) -> None:
        """A channel's routing ended for good while the client is open: record why (the first
        reason is kept, see :attr:`broken`) and fail what is pending with it."""
        if self.broken is None:
            self.broken = error
        self.fail(error)

    def lose_stdin(self) -> None:
        """The stdin view was closed under the client: fail the pending executions that
        allow prompts (nothing can answer or refuse them); later ones fail at once
        (:meth:`check_stdin`)."""
        error = self.stdin_lost = trio.ClosedResourceError(
            "the stdin channel was closed under the client: prompts cannot be answered"
        )
        for req in {id(r): r for r in self.tracker}.values():
            if req.msg is not None and req.msg.content.get("allow_stdin") is True:
                req.fail(error)

    def check_stdin(self) -> None:
        """Raise if prompts can no longer be answered (see :meth:`lose_stdin`)."""
        if self.stdin_lost is not None:
            raise trio.ClosedResourceError(str(self.stdin_lost))

    async def receive_loop(self, name: ChannelName, channel: _Receiver) -> None:
        try:
            while True:
                try:
                    msg = await channel.receive()
                except trio.EndOfChannel:
                    break
                self.dispatch(msg, name)
        except KernelDied as exc:  # channels that know the kernel is dead (remote)
            if not self.closed:
                self.unresponsive = exc
                self.responsive_again = None
                self.fail(exc)
            return
        except ConnectionInfoError as exc:  # a handshake that cannot succeed (local)
            if not self.closed:
                if self.unreachable is None:
                    self.unreachable = exc
                if exc.reason == REASON_KEY_MISSING:
                    # The kernel hears nothing we send, but we hear it: fail what waits for
                    # an answer, and the comms we opened (the kernel dropped their
                    # comm_open); leave the listeners (IOPub, the comms it opened) alone.
                    for req in {id(r): r for r in self.tracker}.values():
                        req.fail(exc)
                    self.unclaimed_replies.fail_waiters(exc)
                    for comm in list(self.comms.values()):
                        if comm.open_message.channel != "iopub":
                            del self.comms[comm.comm_id]
                            comm._fail(exc)
                else:
                    self.fail(exc)
            return
        except trio.ClosedResourceError:  # the user closed the view the client reads
            if self.closed:
                return
            if name == "stdin":
                self.lose_stdin()
            else:
                text = f"the {name} channel was closed under the client"
                self.end_routing(trio.ClosedResourceError(text))
            return
        except Exception as exc:
            if not self.closed:
                self.end_routing(trio.BrokenResourceError(f"the {name} channel failed: {exc!r}"))
            return
        if not self.closed:
            self.end_routing(trio.ClosedResourceError("the channels are closed"))

    def dispatch(self, msg: Message, name: ChannelName) -> None:
        # The kernel just proved it is responsive (and that it signs as we do).
        self.unresponsive = self.responsive_again = None
        self.starting = False
        self.verified = True
        self.missigned = None
        channel = msg.channel or name
        if channel != "iopub":
            # The common case first: the reply of a request in flight.
            parent = msg.parent_id
            owner = self.tracker.owner(parent) if parent is not None else None
            if owner is not None:
                if not owner.deliver(msg):  # a duplicate reply
                    self.unclaimed_replies.put_nowait(msg)
                return
            self.deliver(msg, channel, False)
            return
        if not self.iopub_event.is_set():
            self.iopub_event.set()
        comm_handled = msg.msg_type in _COMM_TYPES and self.dispatch_comm(msg)
        self.deliver(msg, channel, comm_handled)

    def deliver(self, msg: Message, channel: ChannelName, comm_handled: bool) -> None:
        parent = msg.parent_id
        if channel != "iopub" and parent is not None:
            # The common case first: the reply of a request in flight.
            owner = self.tracker.owner(parent)
            if owner is not None:
                if not owner.deliver(msg):  # a duplicate reply
                    self.unclaimed_replies.put_nowait(msg)
                return
        routing = self.tracker.route(msg)
        if routing.route is Route.REQUEST:
            owner = routing.owner
            assert owner is not None
            if channel == "iopub" and not isinstance(owner, _ExecRequest):
                # A request other than an execution gathers no outputs: what it causes on
                # IOPub (debug_event, a stream printed during inspect, the IOPub copy of
                # shutdown_reply) is nobody's yet; keep it where such messages go.
                if comm_handled:
                    return
                if msg.msg_type in _FRAMING_TYPES:
                    self.tracker.dropped["request_status"] += 1
                else:
                    self.unclaimed_iopub.put_nowait(msg)
            elif not owner.deliver(msg):  # a duplicate reply
                self.unclaimed_replies.put_nowait(msg)
        elif routing.route is Route.UNCLAIMED:
            if channel == "iopub":
                if not comm_handled:
                    self.unclaimed_iopub.put_nowait(msg)
            elif channel == "stdin":
                self.refuse_input(msg)
            else:
                self.unclaimed_replies.put_nowait(msg)

    def finish(self, msg_ids: Sequence[str], req: _Request, *, quiet: bool = False) -> None:
        """Stop tracking a request; what it left unread is routed as late messages."""
        for msg_id in msg_ids:
            self.tracker.release(msg_id, quiet=quiet, replied=req.replied)
        if len(req.inbox):
            self.route_left(req.inbox.drain_nowait())
        req.inbox.close()

    def route_left(self, messages: list[Message]) -> None:
        """Route the messages a finished request left unread, as late messages."""
        for left in messages:
            channel = left.channel or "iopub"
            handled = left.msg_type in _COMM_TYPES and left.content.get("comm_id") in self.comms
            self.deliver(left, channel, handled)

    def dispatch_comm(self, msg: Message) -> bool:
        content = msg.content
        comm_id = content.get("comm_id")
        if not isinstance(comm_id, str):
            return False
        if msg.msg_type == "comm_open":
            target = content.get("target_name")
            queue = self.comm_targets.get(target) if isinstance(target, str) else None
            if queue is None or comm_id in self.comms:
                return False
            assert isinstance(target, str)
            comm = Comm(self, comm_id, target, msg, max_buffer=self.comm_buffer)
            self.comms[comm_id] = comm
            queue.put_nowait(comm)
            return True
        known = self.comms.get(comm_id)
        if known is None:
            return False
        if msg.msg_type == "comm_close":
            del self.comms[comm_id]
        known._deliver(msg)
        return True

    def refuse_input(self, msg: Message) -> None:
        # Nobody will answer this prompt; answer it with an empty line so the kernel does not
        # block forever in input().
        self.stdin_refused += 1
        if self.nursery is not None and not self.closed:
            self.nursery.start_soon(self.send_input_reply, msg, "")

    async def refuse_prompt(self, msg: Message) -> None:
        """Answer the prompt ``msg`` with an empty line, counted as refused (nobody handles
        it)."""
        self.stdin_refused += 1
        await self.send_input_reply(msg, "")

    async def send_input_reply(self, request: Message, value: str) -> None:
        # The protocol's content is {"value": ...}; "status" as well, like JupyterLab's
        # replies, because some kernels (async-kernel) read it as they would any reply's.
        reply = self.session.message(
            "input_reply", {"status": "ok", "value": value}, parent=request, channel="stdin"
        )
        try:
            await self.channels.stdin.send(reply)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    async def watch_liveness(self) -> None:
        """Fail the pending requests (not the readiness probes) when the channels declare
        the kernel unresponsive, and forget the verdict when it is responsive again."""
        ch = self.channels
        try:
            while True:
                died = await ch.wait_unresponsive()
                self.unresponsive = died
                # Set for every verdict of the channels (not for a reported death):
                # check_usable tells the two apart.
                self.responsive_again = self.verdict_lifted
                self.fail(died, probes=False)
                await ch.wait_responsive()
                self.unresponsive = None
                self.responsive_again = None
        except (trio.ClosedResourceError, KernelDied):
            return  # the channels closed, or the kernel is dead (it never answers again)

    def verdict_lifted(self) -> bool:
        """Whether the channels no longer declare the kernel unresponsive."""
        return self.channels.unresponsive_error is None

    def rejected(self, channel: str, parent_id: str | None, error: RemoteProtocolError) -> None:
        """Channels callback: a message was rejected for its signature.

        Before the kernel's first valid message, the kernel most likely signs with another
        key or scheme: every unanswered request fails, and later calls fail at once, with
        :class:`SignatureMismatch` until a valid message arrives. Afterwards only the
        unanswered request the message claims to answer fails. Either way a forger gains
        nothing it could not do by withholding the answer (see SECURITY.md).
        """
        if self.closed:
            return
        mismatch = SignatureMismatch(channel, error.reason)
        if not self.verified:
            self.missigned = mismatch
            for req in {id(r): r for r in self.tracker}.values():
                if not req.replied:
                    req.fail(mismatch)
            self.wake_receivers(mismatch)
            return
        owner = self.tracker.owner(parent_id) if parent_id is not None else None
        if owner is not None and not owner.replied:
            owner.fail(mismatch)

    # ChannelsListener: the channels report trouble by callback (remote channels do).

    def connection_lost(self, error: BaseException) -> None:
        """Channels callback: the connection dropped; pending requests fail with ``error``."""
        self.fail(error)

    def kernel_restarted(self, reason: str) -> None:
        """Channels callback: the kernel was restarted; pending requests fail."""
        self.forget_iopub_ready()
        self.fail(KernelDied(reason))

    def kernel_died(self, error: KernelDied) -> None:
        """Channels callback (and :meth:`KernelClient.declare_dead`): the kernel is dead;
        pending and later requests fail."""
        self.unresponsive = error
        self.responsive_again = None  # gone for good: a heartbeat does not bring it back
        self.fail(error)

    def new_process(self) -> None:
        """A new kernel process is about to start (a launcher's restart): forget the reported
        death of the previous one, and that IOPub was ready. A heartbeat verdict stands until
        the heartbeat (or a message) says otherwise, but no longer fails readiness probes."""
        if self.responsive_again is None:
            self.unresponsive = None
        self.starting = True
        self.forget_iopub_ready()

    def forget_iopub_ready(self) -> None:
        """A new kernel process will need a new IOPub subscription: probe again before the
        next request whose outputs matter."""
        if self.iopub_event.is_set():
            self.iopub_event = trio.Event()
        self.trust_channels_ready = False

    # -- sending ------------------------------------------------------------------------

    def check_open(self, *, listening: bool = False) -> None:
        """Raise if the client is closed, or its channels can never reach the kernel (for
        ``listening``, see :meth:`check_listening`)."""
        if self.closed:
            raise trio.ClosedResourceError("the client is closed")
        unreachable = self.unreachable
        if unreachable is not None and not (listening and unreachable.reason == REASON_KEY_MISSING):
            raise ConnectionInfoError(str(unreachable), reason=unreachable.reason)
        missigned = self.missigned
        if missigned is not None:
            raise SignatureMismatch(missigned.channel, missigned.rejected_reason)

    def check_routing(self) -> None:
        """Raise (a new error of the same type, with the same text) if a channel's routing
        ended for good (:attr:`broken`)."""
        broken = self.broken
        if broken is not None:
            raise type(broken)(str(broken))

    def check_listening(self) -> None:
        """:meth:`check_usable` for a receiver of what the kernel publishes (IOPub, the comms
        it opens): a kernel that drops our unsigned requests (``key_missing``) still talks."""
        self.check_usable(listening=True)

    def check_usable(self, *, probing: bool = False, listening: bool = False) -> None:
        """Raise if no request can succeed now: the client is closed, a channel's routing
        ended, or the kernel is known to be dead (reported by a launcher or the channels) or
        unresponsive (declared by the channels' heartbeat and not responsive again). Every
        path that sends to the kernel or waits on it starts here, so a verdict known before
        the call fails the call at once, with the same error.

        ``probing``: the call is a readiness probe; while a new process starts
        (:meth:`new_process`), heartbeat silence does not count (a reported death does).
        ``listening``: see :meth:`check_listening`.
        """
        if not (
            self.closed
            or self.broken is not None
            or self.unreachable is not None
            or self.missigned is not None
            or self.unresponsive is not None
            or self.channels.unresponsive_error is not None
        ):
            return  # nothing is known against the call (every request passes here)
        self.check_open(listening=listening)
        died = self.known_death(probing)
        if died is not None:
            raise KernelDied(died.reason)
        self.check_routing()

    def known_death(self, probing: bool) -> KernelDied | None:
        """The kernel's death as known now (reported, or the heartbeat's verdict not lifted
        since), or ``None``; see :meth:`check_usable` for ``probing``."""
        died = self.unresponsive
        if died is None:
            # The channels' verdict counts from the moment it is given, not only once the
            # watcher task has run.
            verdict = self.channels.unresponsive_error
            if verdict is None:
                return None
            died = self.unresponsive = verdict
            self.responsive_again = self.verdict_lifted
        responsive_again = self.responsive_again
        if responsive_again is not None:
            if responsive_again():
                self.unresponsive = self.responsive_again = None
                return None
            if probing and self.starting:
                return None
        return died

    async def send(self, msg: Message) -> None:
        channel = msg.channel
        if channel == "shell":
            await self.channels.shell.send(msg)
        elif channel == "control":
            await self.channels.control.send(msg)
        elif channel == "stdin":
            await self.channels.stdin.send(msg)
        else:
            raise LocalProtocolError(
                f"cannot send {msg.msg_type} on channel {channel!r}: a client sends on "
                "'shell', 'control' or 'stdin'"
            )

    @asynccontextmanager
    async def in_flight(self, msg: Message, req: _Request | None = None) -> AsyncIterator[_Request]:
        """Track ``msg`` (as ``req``, default a plain request), send it, and stop tracking
        it when the block exits."""
        self.check_usable()
        if req is None:
            req = _Request(msg)
        self.tracker.register(msg.msg_id, req)
        try:
            await self.send(msg)
            yield req
        finally:
            self.finish((msg.msg_id,), req)

    async def ask(self, msg: Message) -> Message:
        """Send the request ``msg`` and return its reply: :meth:`in_flight` and
        :meth:`wait_reply` in one call (what most request methods do, without the cost of a
        context manager per request).

        The round trip users make most: a reply that comes first is returned without
        entering :meth:`wait_reply`'s loop.
        """
        self.check_usable()
        req = _Request(msg)
        self.tracker.register(msg.msg_id, req)
        try:
            if msg.channel == "shell":  # (send, inline for its common case)
                await self.channels.shell.send(msg)
            else:
                await self.send(msg)
            reply = await req.inbox.receive()
            if reply.channel in _REPLY_CHANNELS:
                req.replied = True
                return reply
            return await self.wait_reply(req, reply)
        finally:
            self.finish((msg.msg_id,), req)

    async def wait_reply(self, req: _Request, first: Message | None = None) -> Message:
        """The reply of ``req`` (its messages before it are stdin prompts: refused, since
        only executions have stdin handlers); ``first``: its first message, already
        received."""
        msg = first if first is not None else await req.inbox.receive()
        while True:
            if msg.channel in _REPLY_CHANNELS:
                req.replied = True
                return msg
            if msg.channel == "stdin" and msg.msg_type == "input_request":
                await self.refuse_prompt(msg)
            msg = await req.inbox.receive()

    async def probe_ready(self, *, survive_heartbeat: bool) -> KernelInfo:
        # A death known now fails the call now; one declared by the heartbeat while waiting
        # fails it only without survive_heartbeat (see _Request.probe).
        self.check_usable(probing=survive_heartbeat)
        probe = _Request(None, probe=survive_heartbeat)
        sent: list[str] = []
        interval = 0.05
        reply: Message | None = None
        # Control answers even while the shell runs a long cell (a late joiner), and its
        # probes make the kernel publish status on IOPub too: ask there first, and on both
        # channels from the second round on unless control has answered (kernels that serve
        # kernel_info only on shell; late replies of probes are dropped quietly).
        channels: tuple[ChannelName, ...] = ("control",)
        control_answered = False
        # Channels whose last probe has no answer yet. Such a probe is most likely queued for
        # a kernel that does not listen yet: it is delivered when it does, and the kernel
        # answers every copy, so another is sent only at the slowest pace (in case the first
        # was lost with a process that died).
        unanswered: set[ChannelName] = set()
        try:
            while True:
                if reply is None or not self.iopub_ready:
                    self.check_open()
                    for channel in channels:
                        if channel in unanswered and interval < 1.0:
                            continue
                        msg = self.session.message("kernel_info_request", {}, channel=channel)
                        self.tracker.register(msg.msg_id, probe)
                        sent.append(msg.msg_id)
                        unanswered.add(channel)
                        await self.send(msg)
                with trio.move_on_after(interval):
                    while True:
                        # IOPub may come alive through a message that is not routed to the
                        # probe (iopub_welcome after the last reply): check before waiting.
                        if reply is not None and self.iopub_ready:
                            info = KernelInfo(reply)
                            self.unresponsive = self.responsive_again = None
                            self.starting = False
                            return info
                        got = await probe.inbox.receive()
                        if got.msg_type != "kernel_info_reply":
                            continue
                        unanswered.discard(got.channel)
                        if got.channel == "shell":
                            reply = got
                        elif got.channel == "control" and got.content.get("status") == "ok":
                            # (a kernel that does not serve kernel_info on control may
                            # answer with an error: not a kernel info)
                            reply = got
                            control_answered = True
                interval = min(interval * 2, 1.0)
                channels = ("control",) if control_answered else ("shell", "control")
        finally:
            self.finish(sent, probe, quiet=True)

    @property
    def iopub_ready(self) -> bool:
        """Whether IOPub is known to deliver (see :attr:`KernelClient.iopub_ready`)."""
        return self.iopub_event.is_set() or (
            self.trust_channels_ready and self.channels.iopub_ready
        )

    async def send_comm(
        self,
        msg_type: str,
        content: Mapping[str, Any],
        *,
        metadata: Mapping[str, Any] | None = None,
        buffers: Sequence[_Buffer] = (),
    ) -> None:
        self.check_usable()
        msg = self.session.message(
            msg_type, content, metadata=metadata, buffers=buffers, channel="shell"
        )
        self.tracker.remember(msg.msg_id)
        await self.send(msg)

    def forget_comm(self, comm_id: str) -> None:
        """Stop routing messages to the comm ``comm_id``."""
        self.comms.pop(comm_id, None)

    def release_comm(self, comm: Comm) -> None:
        """A comm the kernel opened that nobody will receive (its accept queue overflowed or
        was closed): stop routing to it, and keep what it got as unclaimed IOPub messages
        (its ``comm_open`` first), like the messages of comms of no accepted target."""
        if self.comms.get(comm.comm_id) is comm:
            del self.comms[comm.comm_id]
        self.unclaimed_iopub.put_nowait(comm.open_message)
        for msg in comm._take_messages():
            self.unclaimed_iopub.put_nowait(msg)
