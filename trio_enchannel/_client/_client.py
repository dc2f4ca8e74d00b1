"""The kernel client: requests that get exactly their own replies, even many at once.

:func:`open_client` starts a dispatcher that consumes every channel of its channels
(:class:`~trio_enchannel.Channels`, :class:`~trio_enchannel.RemoteChannels`) and hands each
message to the request that owns it (by the ``msg_id`` of its parent). Each request method
sends one request and waits for its reply; ``execute`` also gathers the request's IOPub
outputs and answers its stdin prompts.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal

import trio

from .._channels._interfaces import ClientChannels
from .._channels._options import IOPUB_HWM
from .._errors import ConfigurationError, KernelDied, LocalProtocolError
from .._io._connection_file import load_connection_info
from .._io._fanout import Subscription, SubscriptionOverflow
from .._io._overflow import IOPUB_BUFFER_BYTES, IOPUB_BUFFER_SIZE, IOPubOverflow
from .._util import unwrap_single
from .._validate import (
    check_bool,
    check_buffers,
    check_callable,
    check_choice,
    check_int,
    check_mapping,
    check_optional_str,
    check_str,
)
from .._wire._connection import ConnectionInfo
from .._wire._message import Message
from .._wire._session import Session
from ._comm import Comm
from ._dispatcher import ClientStatistics, Dispatcher
from ._execution import Execution, InputRequest, StdinHandler, _ExecRequest, _Request
from ._options import ClientOptions
from ._queue import DroppingQueue
from ._results import ExecuteResult, KernelInfo, Reply

__all__ = [
    "ClientStatistics",
    "Execution",
    "InputRequest",
    "KernelClient",
    "StdinHandler",
    "open_client",
]

_Buffer = bytes | bytearray | memoryview
#: Seconds a cancelled or finished block may spend, shielded, undoing what it created in the
#: kernel (a subshell).
_CLEANUP_TIMEOUT = 5.0


class KernelClient:
    """Talks to one kernel: one method per request of the messaging protocol (5.5).

    Obtain one with :func:`open_client`. Every method may be called from any number of tasks
    at once: each request gets its own reply (routed by the parent ``msg_id``), its own
    outputs and its own stdin prompts. Wrap calls in :func:`trio.fail_after` /
    :func:`trio.move_on_after` to bound them; a cancelled request leaves no bookkeeping
    behind (its late reply, if any, goes to :attr:`unclaimed_replies`).

    When the kernel dies (heartbeat lost, or the launcher reports its process exited) every
    pending request fails with :class:`~trio_enchannel.KernelDied`, and so does every later
    call (:meth:`wait_ready` included) until the kernel answers again: a call whose
    outcome is known never waits. Likewise, when the channels' ZeroMQ handshake has failed
    for good (:attr:`Channels.handshake_error <trio_enchannel.Channels.handshake_error>`:
    wrong ``curve_publickey``, encryption on one side only), every pending and later call
    fails with :class:`~trio_enchannel.ConnectionInfoError`.
    """

    def __init__(
        self,
        channels: ClientChannels,
        *,
        stdin: StdinHandler | None = None,
        unclaimed_buffer: int = 1000,
        comm_buffer: float = math.inf,
    ) -> None:
        self._dispatcher = Dispatcher(
            channels, unclaimed_buffer=unclaimed_buffer, comm_buffer=comm_buffer
        )
        self._session = channels.session
        self.stdin_handler = stdin
        """The default stdin handler for :meth:`execute` (``None``: prompts are refused)."""
        self.unclaimed_replies: DroppingQueue[Message] = self._dispatcher.unclaimed_replies
        """Replies (shell and control) that no request waits for.

        Replies to requests sent with :meth:`send`, or that arrived after their caller gave
        up, or duplicates. Bounded: when full the oldest is dropped and counted
        (:meth:`statistics`).

        Once what is queued is received, ``receive()`` raises
        :class:`~trio_enchannel.KernelDied` while the kernel is known dead (a task waiting
        when the death becomes known is woken with it; the queue stays open for a restarted
        kernel), and :class:`trio.EndOfChannel` once the client is closed. The same holds
        for :attr:`unclaimed_iopub`."""
        self.unclaimed_iopub: DroppingQueue[Message] = self._dispatcher.unclaimed_iopub
        """IOPub messages that belong to no request of this client.

        Other clients' work, broadcasts (``iopub_welcome``, ``starting``), outputs that
        arrived after their request returned. Bounded: when full the oldest is dropped and
        counted."""
        self._debug_seq = 0
        self.kernel_info_cache: KernelInfo | None = None
        """The last :class:`KernelInfo` received (by :meth:`wait_ready` or
        :meth:`kernel_info`), or ``None``."""

    def __repr__(self) -> str:
        dispatcher = self._dispatcher
        state = "closed" if dispatcher.closed else f"{len(dispatcher.tracker)} pending"
        return f"<KernelClient session={self._session.session_id} {state}>"

    # -- properties ---------------------------------------------------------------------

    @property
    def channels(self) -> ClientChannels:
        """The channels this client talks over."""
        return self._dispatcher.channels

    @property
    def session(self) -> Session:
        """The session that builds and signs this client's messages."""
        return self._session

    @property
    def closed(self) -> bool:
        """Whether the client was closed."""
        return self._dispatcher.closed

    def statistics(self) -> ClientStatistics:
        """A snapshot of the client's counters."""
        return self._dispatcher.statistics()

    # -- lifecycle ----------------------------------------------------------------------

    def fail_pending(self, exc: BaseException) -> int:
        """Fail every request waiting for a reply, and every open comm, with ``exc``; the
        tasks waiting on :attr:`unclaimed_replies`, :attr:`unclaimed_iopub`, an
        :meth:`accept_comms` queue or a :meth:`subscribe` subscription get ``exc`` too (those
        stay open).

        The launcher calls it when the kernel process exits; the client calls it when the
        heartbeat is lost. Messages already received for a request are still processed
        before its caller sees ``exc``. Requests sent afterwards are not affected (so a
        restarted kernel can be used again).

        Returns:
            how many requests were failed.
        """
        return self._dispatcher.fail(exc)

    def declare_dead(self, error: KernelDied) -> None:
        """Declare the kernel dead: fail every pending request (and open comm) with
        ``error``, and make later requests fail at once with a
        :class:`~trio_enchannel.KernelDied` too, until the kernel answers again (a message
        arrives) or :meth:`reset_readiness` announces a new process.

        For launchers that see the kernel process exit; :func:`open_kernel` calls it.
        (Channels that learn of a death themselves, such as
        :class:`~trio_enchannel.RemoteChannels`, report it to the client on their own.)
        """
        self._dispatcher.kernel_died(error)

    def kernel_died(self, error: KernelDied) -> None:
        """Deprecated alias of :meth:`declare_dead`."""
        warnings.warn(
            "KernelClient.kernel_died() is deprecated, use declare_dead()",
            DeprecationWarning,
            stacklevel=2,
        )
        self.declare_dead(error)

    def reset_readiness(self) -> None:
        """Forget that IOPub was ready, and that the kernel was dead: a new kernel process is
        about to start.

        A new process means a new IOPub subscription, and whatever it publishes before the
        subscription reaches it is lost; so the next :meth:`wait_ready` (and the next
        request whose outputs matter) probes again until IOPub delivers. Requests no longer
        fail at once for the old process's reported death, and the next
        :meth:`wait_ready` waits through heartbeat silence until the new process
        answers.
        :func:`open_kernel` calls it on restart, after the old process has exited.
        """
        self._dispatcher.new_process()

    async def send(self, msg: Message) -> None:
        """Send ``msg`` without waiting for an answer.

        Its reply will be in :attr:`unclaimed_replies`; its outputs in
        :attr:`unclaimed_iopub`. Build ``msg`` with :attr:`session`, with ``channel`` set.

        Raises:
            LocalProtocolError: ``msg`` has no channel a client sends on, or cannot be
                encoded.
            KernelDied: the kernel is known to be dead (nothing is sent).
            trio.ClosedResourceError: the client or its channels are closed.
            TypeError: ``msg`` is not a :class:`~trio_enchannel.Message`.
        """
        _check_message(msg)
        dispatcher = self._dispatcher
        dispatcher.check_usable()
        dispatcher.tracker.remember(
            msg.msg_id, quiet=False, expect_reply=msg.msg_type.endswith("_request")
        )
        await dispatcher.send(msg)

    async def request(self, msg: Message) -> Reply:
        """Send the request ``msg`` (shell or control) and return its reply.

        For message types without a dedicated method, or to set fields the methods do not
        offer. Build ``msg`` with :attr:`session` (``client.session.message(...,
        channel="shell")``).

        Raises:
            LocalProtocolError: ``msg`` is not for the shell or control channel, or cannot be
                encoded.
            KernelDied: the kernel died before replying.
            trio.ClosedResourceError: the client or its channels are closed.
            TypeError: ``msg`` is not a :class:`~trio_enchannel.Message`.
        """
        _check_message(msg)
        if msg.channel not in ("shell", "control"):
            raise LocalProtocolError(
                f"request(): {msg.msg_type} must be built with channel='shell' or 'control'"
            )
        return Reply(await self._dispatcher.ask(msg))

    async def _simple(
        self,
        msg_type: str,
        content: Mapping[str, Any],
        channel: Literal["shell", "control"],
        subshell_id: str | None = None,
    ) -> Reply:
        msg = self._session.message(msg_type, content, channel=channel, subshell_id=subshell_id)
        return Reply(await self._dispatcher.ask(msg))

    # -- shell requests -----------------------------------------------------------------

    async def execute(
        self,
        code: str,
        *,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: Mapping[str, str] | None = None,
        allow_stdin: bool | None = None,
        stop_on_error: bool = True,
        stdin: StdinHandler | None = None,
        subshell_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        raise_on_error: bool = False,
        keep_messages: bool = True,
    ) -> ExecuteResult:
        """Run ``code`` and return its reply with everything it output.

        Waits for the reply and for the end of the request's outputs (its ``idle`` status),
        answering ``input_request`` prompts with the stdin handler meanwhile.

        Args:
            code: the code to run.
            silent: run without broadcasting outputs and without counting the execution.
            store_history: record the code in the kernel's history.
            user_expressions: names mapped to expressions to evaluate after the code; their
                results are in :attr:`ExecuteResult.user_expressions`.
            allow_stdin: whether the kernel may prompt for input; by default true exactly
                when a stdin handler is available (so without one, ``input()`` fails in the
                kernel with a clear error instead of blocking).
            stop_on_error: abort the requests queued behind this one if it fails.
            stdin: the handler for this execution's prompts; default :attr:`stdin_handler`.
            subshell_id: run in this subshell (see :meth:`create_subshell`).
            metadata: the request's metadata dict.
            raise_on_error: raise :class:`~trio_enchannel.KernelError` when the execution
                fails instead of returning the failed result.
            keep_messages: keep every message of the request in
                :attr:`ExecuteResult.messages`; with ``False`` only the reply is kept (for
                executions that publish a great many messages: the outputs are gathered
                either way).

        Returns:
            the :class:`ExecuteResult`.

        Raises:
            KernelError: the execution failed and ``raise_on_error`` is true.
            KernelDied: the kernel died before the execution finished.
            LocalProtocolError: an argument cannot be encoded as JSON.
            trio.ClosedResourceError: the client or its channels are closed.
            Exception: whatever the stdin handler raised (the prompt is then answered with
                an empty line so that the kernel does not block).
            TypeError: an argument has the wrong type (``code`` must be a ``str``).
        """
        check_bool("raise_on_error", raise_on_error)
        async with self._execution(
            code,
            silent=silent,
            store_history=store_history,
            user_expressions=user_expressions,
            allow_stdin=allow_stdin,
            stop_on_error=stop_on_error,
            stdin=stdin,
            subshell_id=subshell_id,
            metadata=metadata,
            keep_messages=keep_messages,
            live_buffer=None,
        ) as execution:
            result = await execution.wait()
        if raise_on_error:
            result.raise_for_error()
        return result

    @asynccontextmanager
    async def stream_execute(
        self,
        code: str,
        *,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: Mapping[str, str] | None = None,
        allow_stdin: bool | None = None,
        stop_on_error: bool = True,
        stdin: StdinHandler | None = None,
        subshell_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        keep_messages: bool = False,
        live_buffer: int = 10_000,
        gather_outputs: bool = True,
    ) -> AsyncIterator[Execution]:
        """Run ``code`` and iterate its IOPub messages as they arrive (for live UIs)::

            async with client.stream_execute("for i in range(3): print(i)") as run:
                async for msg in run:
                    ...                       # status, execute_input, stream, ...
            print(run.result.stdout)

        Iteration ends once both the request's ``idle`` status and its reply have arrived.
        Leaving the block early stops tracking the request (the kernel keeps running it).
        Arguments as for :meth:`execute`, and:

        Args:
            keep_messages: also keep every message for :attr:`ExecuteResult.messages` (by
                default only the reply: you see the messages as they arrive).
            live_buffer: how many messages may wait for a reader that lags behind; beyond
                that the oldest are not delivered to it (:attr:`Execution.dropped`). The
                outputs and the end of the execution are tracked regardless.
            gather_outputs: build :attr:`Execution.outputs` (and the result's outputs) as
                messages arrive. ``False`` is for readers that build their own from the
                messages they iterate (the notebook runner does): the outputs then stay
                empty and a large output is not held twice. Such a reader must not miss
                messages: give it a ``live_buffer`` it cannot exceed and check
                :attr:`Execution.dropped`.

        Raises:
            KernelDied: the kernel died before the execution finished (from iteration).
            LocalProtocolError: an argument cannot be encoded as JSON.
            trio.ClosedResourceError: the client or its channels are closed.
        """
        async with self._execution(
            code,
            silent=silent,
            store_history=store_history,
            user_expressions=user_expressions,
            allow_stdin=allow_stdin,
            stop_on_error=stop_on_error,
            stdin=stdin,
            subshell_id=subshell_id,
            metadata=metadata,
            keep_messages=keep_messages,
            live_buffer=live_buffer,
            gather_outputs=gather_outputs,
        ) as execution:
            yield execution

    @asynccontextmanager
    async def _execution(
        self,
        code: str,
        *,
        silent: bool,
        store_history: bool,
        user_expressions: Mapping[str, str] | None,
        allow_stdin: bool | None,
        stop_on_error: bool,
        stdin: StdinHandler | None,
        subshell_id: str | None,
        metadata: Mapping[str, Any] | None,
        keep_messages: bool,
        live_buffer: int | None,
        gather_outputs: bool = True,
    ) -> AsyncIterator[Execution]:
        check_str("code", code)
        for name, flag in (
            ("silent", silent),
            ("store_history", store_history),
            ("stop_on_error", stop_on_error),
            ("keep_messages", keep_messages),
        ):
            check_bool(name, flag)
        if allow_stdin is not None:
            check_bool("allow_stdin", allow_stdin)
        _check_str_mapping("user_expressions", user_expressions)
        check_callable("stdin", stdin)
        _check_subshell_id(subshell_id)
        check_mapping("metadata", metadata)
        if live_buffer is not None:
            check_int("live_buffer", live_buffer, at_least=1)
        handler = stdin if stdin is not None else self.stdin_handler
        if allow_stdin is None:
            allow_stdin = handler is not None
        if allow_stdin:
            self._dispatcher.check_stdin()
        content = {
            "code": code,
            "silent": silent,
            "store_history": store_history,
            "user_expressions": dict(user_expressions or {}),
            "allow_stdin": allow_stdin,
            "stop_on_error": stop_on_error,
        }
        msg = self._session.message(
            "execute_request", content, channel="shell", metadata=metadata, subshell_id=subshell_id
        )
        await self._ensure_iopub()
        req = _ExecRequest(
            msg, keep_messages=keep_messages, live_buffer=live_buffer, gather_outputs=gather_outputs
        )
        async with self._dispatcher.in_flight(msg, req):
            yield Execution(self._dispatcher, req, msg, handler)

    async def kernel_info(self, *, channel: Literal["shell", "control"] = "shell") -> KernelInfo:
        """Ask the kernel about itself (protocol version, language, features).

        ``channel="control"`` (protocol 5.5) gets an answer even while the shell is busy.

        Raises:
            KernelDied: the kernel died before replying.
            trio.ClosedResourceError: the client or its channels are closed.
        """
        check_choice("channel", channel, ("shell", "control"), error=LocalProtocolError)
        reply = await self._simple("kernel_info_request", {}, channel)
        info = KernelInfo(reply.message)
        self.kernel_info_cache = info
        return info

    async def inspect(
        self,
        code: str,
        cursor_pos: int | None = None,
        *,
        detail_level: Literal[0, 1] = 0,
        subshell_id: str | None = None,
    ) -> Reply:
        """Ask for information about the object at ``cursor_pos`` (default: end of code).

        The reply has ``found``, ``data`` (a mime bundle) and ``metadata``.

        Raises:
            KernelDied: the kernel died before replying.
            trio.ClosedResourceError: the client or its channels are closed.
        """
        check_choice("detail_level", detail_level, (0, 1), error=LocalProtocolError)
        _check_subshell_id(subshell_id)
        content = {
            "code": code,
            "cursor_pos": _cursor_pos(code, cursor_pos),
            "detail_level": detail_level,
        }
        return await self._simple("inspect_request", content, "shell", subshell_id)

    async def complete(
        self, code: str, cursor_pos: int | None = None, *, subshell_id: str | None = None
    ) -> Reply:
        """Ask for completions at ``cursor_pos`` (default: end of code).

        The reply has ``matches``, ``cursor_start``, ``cursor_end`` and ``metadata``.

        Raises:
            KernelDied: the kernel died before replying.
            trio.ClosedResourceError: the client or its channels are closed.
        """
        _check_subshell_id(subshell_id)
        content = {"code": code, "cursor_pos": _cursor_pos(code, cursor_pos)}
        return await self._simple("complete_request", content, "shell", subshell_id)

    async def history(
        self,
        *,
        hist_access_type: Literal["range", "tail", "search"] = "range",
        output: bool = False,
        raw: bool = True,
        session: int | None = None,
        start: int | None = None,
        stop: int | None = None,
        n: int | None = None,
        pattern: str | None = None,
        unique: bool | None = None,
        subshell_id: str | None = None,
    ) -> Reply:
        """Ask for the kernel's execution history.

        ``range`` uses ``session`` (0: this one, negative: earlier ones), ``start`` and
        ``stop``; ``tail`` uses ``n``; ``search`` uses ``pattern`` (glob), ``n`` and
        ``unique``. Arguments left ``None`` are not sent. The reply's ``history`` is a list
        of ``(session, line_number, input)`` — or ``(session, line, (input, output))`` with
        ``output=True``.

        Raises:
            KernelDied: the kernel died before replying.
            trio.ClosedResourceError: the client or its channels are closed.
        """
        check_choice(
            "hist_access_type",
            hist_access_type,
            ("range", "tail", "search"),
            error=LocalProtocolError,
        )
        check_bool("output", output)
        check_bool("raw", raw)
        for name, number in (("session", session), ("start", start), ("stop", stop), ("n", n)):
            if number is not None:
                check_int(name, number, error=LocalProtocolError)
        if n is not None:
            check_int("n", n, at_least=0, error=LocalProtocolError)
        check_optional_str("pattern", pattern)
        if unique is not None:
            check_bool("unique", unique)
        _check_subshell_id(subshell_id)
        content: dict[str, Any] = {
            "hist_access_type": hist_access_type,
            "output": output,
            "raw": raw,
        }
        if hist_access_type == "range":
            content["session"] = 0 if session is None else session
            content["start"] = 0 if start is None else start
        if hist_access_type == "tail" and n is None:
            n = 10
        if hist_access_type == "search" and pattern is None:
            pattern = "*"
        for key, value in (
            ("session", session),
            ("start", start),
            ("stop", stop),
            ("n", n),
            ("pattern", pattern),
            ("unique", unique),
        ):
            if value is not None:
                content[key] = value
        return await self._simple("history_request", content, "shell", subshell_id)

    async def is_complete(self, code: str, *, subshell_id: str | None = None) -> Reply:
        """Ask whether ``code`` is complete (``reply.status``: ``"complete"``,
        ``"incomplete"`` with ``indent``, ``"invalid"`` or ``"unknown"``).

        Raises:
            KernelDied: the kernel died before replying.
            trio.ClosedResourceError: the client or its channels are closed.
        """
        check_str("code", code)
        _check_subshell_id(subshell_id)
        return await self._simple("is_complete_request", {"code": code}, "shell", subshell_id)

    async def comm_info(
        self, target_name: str | None = None, *, subshell_id: str | None = None
    ) -> Reply:
        """List the kernel's open comms (``reply["comms"]``: comm id -> ``{"target_name"}``),
        optionally only those of ``target_name``.

        Raises:
            KernelDied: the kernel died before replying.
            trio.ClosedResourceError: the client or its channels are closed.
        """
        check_optional_str("target_name", target_name)
        _check_subshell_id(subshell_id)
        content = {} if target_name is None else {"target_name": target_name}
        return await self._simple("comm_info_request", content, "shell", subshell_id)

    # -- control requests ---------------------------------------------------------------

    async def shutdown(self, *, restart: bool = False) -> Reply:
        """Ask the kernel to shut down (or to prepare a restart) on the control channel.

        The kernel exits after replying; a launcher reaps it (:func:`open_kernel` does all
        of this for you).

        Raises:
            KernelDied: the kernel died before replying.
            trio.ClosedResourceError: the client or its channels are closed.
        """
        check_bool("restart", restart)
        return await self._simple("shutdown_request", {"restart": restart}, "control")

    async def interrupt(self) -> Reply:
        """Interrupt the current execution with an ``interrupt_request`` on control.

        For kernels whose spec says ``interrupt_mode: "message"``; others (``"signal"``)
        are interrupted by their launcher with SIGINT (``kernel.interrupt()`` chooses).

        Raises:
            KernelDied: the kernel died before replying.
            trio.ClosedResourceError: the client or its channels are closed.
        """
        return await self._simple("interrupt_request", {}, "control")

    async def debug_request(
        self, command: str | Mapping[str, Any], arguments: Mapping[str, Any] | None = None
    ) -> Reply:
        """Send a Debug Adapter Protocol request; the reply's content is the DAP response.

        ``command`` is the DAP command name (``"initialize"``, ``"attach"``, ...) with its
        ``arguments``, or a complete DAP request dict (sent as is). DAP events arrive on
        IOPub as ``debug_event`` messages (in :attr:`unclaimed_iopub`).

        Raises:
            KernelDied: the kernel died before replying.
            trio.ClosedResourceError: the client or its channels are closed.
        """
        check_mapping("arguments", arguments)
        if isinstance(command, Mapping):
            content = dict(command)
        else:
            check_str("command", command, nonempty=True, error=LocalProtocolError)
            self._debug_seq += 1
            content = {
                "type": "request",
                "seq": self._debug_seq,
                "command": command,
                "arguments": dict(arguments or {}),
            }
        return await self._simple("debug_request", content, "control")

    async def create_subshell(self) -> str:
        """Create a subshell (protocol 5.5) and return its id.

        Requests sent with ``subshell_id=`` run in it, concurrently with the main shell and
        other subshells. Needs a kernel whose :attr:`KernelInfo.supported_features` has
        ``"kernel subshells"`` (ipykernel 7). Cancelled once the request is sent, it still
        waits (shielded, up to 5 seconds) for the subshell the kernel creates, and deletes
        it: nobody else would learn its id.

        Raises:
            KernelError: the kernel refused.
            LocalProtocolError: the kernel does not support subshells (asked first with a
                ``kernel_info`` probe when no :class:`KernelInfo` is known yet: kernels
                without subshells may never answer the request).
            KernelDied: the kernel died before replying.
        """
        await self._require_subshells()
        dispatcher = self._dispatcher
        msg = self._session.message("create_subshell_request", {}, channel="control")
        async with dispatcher.in_flight(msg) as req:
            try:
                reply = Reply(await dispatcher.wait_reply(req))
            except BaseException:
                # The request went out (in_flight sent it): the kernel creates the subshell
                # whether or not we are still waiting, and nobody would ever delete it (a
                # thread in ipykernel, for the kernel's lifetime). Wait for its id, shielded
                # and bounded, and delete it.
                with trio.CancelScope(shield=True), trio.move_on_after(_CLEANUP_TIMEOUT):
                    await self._delete_created_subshell(req)
                raise
        reply.raise_for_status()
        subshell_id = reply.get("subshell_id")
        if not isinstance(subshell_id, str):
            raise LocalProtocolError("create_subshell_reply carries no subshell_id")
        return subshell_id

    async def _delete_created_subshell(self, req: _Request) -> None:
        try:
            reply = Reply(await self._dispatcher.wait_reply(req))
            subshell_id = reply.get("subshell_id")
            if reply.ok and isinstance(subshell_id, str):
                await self.delete_subshell(subshell_id)
        except (KernelDied, trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    async def delete_subshell(self, subshell_id: str) -> Reply:
        """Delete the subshell ``subshell_id``.

        Raises:
            KernelDied: the kernel died before replying.
            LocalProtocolError: the kernel does not support subshells.
        """
        check_str("subshell_id", subshell_id, nonempty=True, error=LocalProtocolError)
        await self._require_subshells()
        return await self._simple(
            "delete_subshell_request", {"subshell_id": subshell_id}, "control"
        )

    async def list_subshell(self) -> list[str]:
        """The ids of the kernel's subshells.

        Raises:
            KernelError: the kernel refused.
            KernelDied: the kernel died before replying.
            LocalProtocolError: the kernel does not support subshells.
        """
        await self._require_subshells()
        reply = (await self._simple("list_subshell_request", {}, "control")).raise_for_status()
        ids = reply.get("subshell_id")
        return [str(x) for x in ids] if isinstance(ids, list) else []

    @asynccontextmanager
    async def open_subshell(self) -> AsyncIterator[str]:
        """Create a subshell for the duration of the block, yielding its id.

        The subshell is deleted when the block ends, however it ends: also when it is
        cancelled while the subshell is being created (the creation is then awaited,
        shielded, for up to 5 seconds, so that what the kernel creates is deleted).

        Raises:
            KernelError: the kernel refused to create it.
            LocalProtocolError: the kernel does not support subshells.
        """
        subshell_id = await self.create_subshell()
        try:
            yield subshell_id
        finally:
            with trio.move_on_after(_CLEANUP_TIMEOUT) as scope:
                scope.shield = True
                try:
                    await self.delete_subshell(subshell_id)
                except (KernelDied, trio.ClosedResourceError, trio.BrokenResourceError):
                    pass

    async def _require_subshells(self) -> None:
        # A kernel without subshells may never answer a subshell request (xeus-python does
        # not): learn what it supports first, rather than wait for an answer in vain.
        info = self.kernel_info_cache
        if info is None:
            info = self.kernel_info_cache = await self._dispatcher.probe_ready(
                survive_heartbeat=False
            )
        if not info.supports_subshells:
            raise LocalProtocolError(
                f"kernel {info.implementation!r} does not support subshells "
                "(no 'kernel subshells' in supported_features)"
            )

    # -- readiness ----------------------------------------------------------------------

    async def wait_ready(self) -> KernelInfo:
        """Wait until the kernel answers ``kernel_info`` and IOPub delivers messages.

        IOPub is ready once any message arrives on it (``iopub_welcome`` from 5.5 kernels,
        or the status messages of the probes); until then ``kernel_info_request`` is
        repeated (every 50 ms, backing off to 1 s) to nudge a slow subscription. The probes
        go to control first (which answers even while the shell runs a long cell: a kernel
        busy with another client's work is ready without waiting for it), and to shell too
        from the second round on unless control has answered. A probe not answered yet is
        sent again only once the pace is down to once a second: a kernel that is still
        starting receives the queued probes all at once and would answer every copy. Then it
        waits until every channel's connection is complete (``wait_connected()`` of the
        channels), so that the kernel's first ``input_request`` cannot be lost. Bound it
        with :func:`trio.fail_after`.

        A kernel already known to be dead when it is called (reported dead, or declared
        unresponsive by the heartbeat, for example a stale connection file) fails it at
        once with :class:`~trio_enchannel.KernelDied`, like every other request. Heartbeat
        silence that begins *while* it waits does not end it (a kernel still starting may
        not answer pings yet); a reported death does. After :meth:`reset_readiness` (a
        restart) it waits through heartbeat silence until the new process answers.

        Returns:
            the kernel's :class:`KernelInfo` (also kept in :attr:`kernel_info_cache`).

        Raises:
            trio.ClosedResourceError: the client or its channels are closed.
            KernelDied: the kernel was known to be dead, or the launcher reported it dead
                while waiting.
            ConnectionInfoError: a channel's ZeroMQ handshake failed for good (see
                :meth:`Channels.wait_connected <trio_enchannel.Channels.wait_connected>`),
                or the kernel signs its messages and this client has no key (``reason``
                ``"key_missing"``: see :attr:`Channels.handshake_error
                <trio_enchannel.Channels.handshake_error>`).
        """
        info = await self._dispatcher.probe_ready(survive_heartbeat=True)
        # The kernel's first message on stdin or control must find us connected (its ROUTER
        # drops what it sends to a peer whose ZeroMQ handshake is not complete).
        await self._dispatcher.channels.wait_connected()
        self.kernel_info_cache = info
        return info

    async def wait_for_ready(self) -> KernelInfo:
        """Deprecated alias of :meth:`wait_ready`."""
        warnings.warn(
            "KernelClient.wait_for_ready() is deprecated, use wait_ready()",
            DeprecationWarning,
            stacklevel=2,
        )
        return await self.wait_ready()

    async def _ensure_iopub(self) -> None:
        """Before a request whose outputs matter: make sure IOPub delivers (a SUB socket
        misses everything published before its subscription reaches the kernel)."""
        if not self.iopub_ready:
            self.kernel_info_cache = await self._dispatcher.probe_ready(survive_heartbeat=False)

    @property
    def iopub_ready(self) -> bool:
        """Whether IOPub is known to deliver, because a message has arrived on it (the
        subscription is established), here or in the channels' own readiness check
        (:attr:`Channels.iopub_ready <trio_enchannel.Channels.iopub_ready>`)."""
        return self._dispatcher.iopub_ready

    # -- IOPub subscriptions ------------------------------------------------------------

    def subscribe(
        self,
        msg_types: str | Iterable[str] | None = None,
        *,
        parent: str | Message | None = None,
        predicate: Callable[[Message], bool] | None = None,
        buffer_size: int = IOPUB_BUFFER_SIZE,
        buffer_bytes: int = IOPUB_BUFFER_BYTES,
        overflow: SubscriptionOverflow = "drop",
    ) -> AbstractAsyncContextManager[Subscription]:
        """Receive a copy of every IOPub message that arrives while the block is open,
        next to this client's own requests::

            async with client.subscribe("status") as statuses:
                ...  # run requests; statuses receives every busy/idle of the kernel

        The copies are taken by the channels' IOPub reader, before the client routes the
        messages: requests, comms and :attr:`unclaimed_iopub` get everything as before, and
        when a request returns, the IOPub messages it saw are already in every open
        subscription (or counted in its :attr:`~trio_enchannel.Subscription.dropped`). The
        arguments, the bounds and the end of the stream are those of
        :meth:`IOPubChannel.subscribe <trio_enchannel.IOPubChannel.subscribe>`, which this
        calls on :attr:`channels`; the subscription belongs to the channels (it ends when
        they close). While the block is open, the client adds what it knows: once what is
        queued is received, ``receive()`` raises :class:`~trio_enchannel.KernelDied` while
        the kernel is known dead (a task waiting when the death becomes known is woken with
        it), even for a local kernel whose channels would let it wait for a restart; the
        subscription stays open and delivers the restarted kernel's messages.

        Raises:
            TypeError: a filter of the wrong type.
            ConfigurationError: an invalid bound or policy.
            trio.ClosedResourceError: the channels are closed (when the block is entered).
        """
        subscribing = self._dispatcher.channels.iopub.subscribe(
            msg_types,
            parent=parent,
            predicate=predicate,
            buffer_size=buffer_size,
            buffer_bytes=buffer_bytes,
            overflow=overflow,
        )
        return self._watched(subscribing)

    @asynccontextmanager
    async def _watched(
        self, subscribing: AbstractAsyncContextManager[Subscription]
    ) -> AsyncIterator[Subscription]:
        # The channels do not end a subscription when a local kernel dies (it may be
        # restarted); the client knows of the death, so nobody waits on it for nothing.
        dispatcher = self._dispatcher
        async with subscribing as subscription:
            subscription._check = dispatcher.check_listening
            dispatcher.subscriptions.add(subscription)
            try:
                yield subscription
            finally:
                dispatcher.subscriptions.discard(subscription)
                subscription._check = None

    # -- comms --------------------------------------------------------------------------

    async def open_comm(
        self,
        target_name: str,
        data: Mapping[str, Any] | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
        buffers: Sequence[_Buffer] = (),
        comm_id: str | None = None,
    ) -> Comm:
        """Open a comm to the kernel's comm target ``target_name``.

        The kernel closes the comm at once (receiving ends) when it has no such target.

        Raises:
            LocalProtocolError: ``data`` or ``metadata`` cannot be encoded as JSON.
            trio.ClosedResourceError: the client or its channels are closed.
        """
        check_str("target_name", target_name, nonempty=True, error=LocalProtocolError)
        check_mapping("data", data)
        check_mapping("metadata", metadata)
        check_buffers("buffers", buffers)
        check_optional_str("comm_id", comm_id, nonempty=True, error=LocalProtocolError)
        dispatcher = self._dispatcher
        dispatcher.check_usable()
        await self._ensure_iopub()
        comm_id = comm_id or Comm.new_id()
        content = {"comm_id": comm_id, "target_name": target_name, "data": dict(data or {})}
        msg = self._session.message(
            "comm_open", content, metadata=metadata, buffers=buffers, channel="shell"
        )
        comm = Comm(dispatcher, comm_id, target_name, msg, max_buffer=dispatcher.comm_buffer)
        dispatcher.comms[comm_id] = comm
        try:
            dispatcher.tracker.remember(msg.msg_id)
            await dispatcher.send(msg)
        except BaseException:
            dispatcher.comms.pop(comm_id, None)
            raise
        return comm

    def accept_comms(self, target_name: str, *, max_buffer: int = 100) -> DroppingQueue[Comm]:
        """Receive the comms the kernel opens for ``target_name``.

        Returns a receive channel of :class:`Comm` objects; closing it stops accepting (comms
        for an unregistered target stay in :attr:`unclaimed_iopub` as ``comm_open``
        messages). Its ``receive()`` never waits for nothing: once what is queued is
        received, it raises :class:`~trio_enchannel.KernelDied` while the kernel is known dead (as
        :attr:`unclaimed_replies` does), and :class:`trio.EndOfChannel` once the client is
        closed. A comm nobody will receive, the oldest when more than ``max_buffer``
        wait or one still waiting when the channel is closed, is counted in its
        ``dropped`` and released: its ``comm_open``, and every message for it, go to
        :attr:`unclaimed_iopub` too.

        Raises:
            ConfigurationError: ``target_name`` is already registered.
        """
        check_str("target_name", target_name, nonempty=True, error=LocalProtocolError)
        check_int("max_buffer", max_buffer, at_least=1)
        dispatcher = self._dispatcher
        targets = dispatcher.comm_targets
        existing = targets.get(target_name)
        if existing is not None and not existing.producer_closed:
            raise ConfigurationError(f"comm target {target_name!r} is already registered")
        queue = _TargetQueue(dispatcher, target_name, max_buffer)
        targets[target_name] = queue
        return queue


class _TargetQueue(DroppingQueue[Comm]):
    """The comms opened by the kernel for one target; closing it unregisters the target.

    A comm nobody will receive (the oldest when more than ``max_size`` wait, or one still
    waiting when the queue is closed) is released: the dispatcher forgets it, and its messages
    so far (its ``comm_open`` first) and later go to ``unclaimed_iopub``, where comms of no
    accepted target are.
    """

    def __init__(self, dispatcher: Dispatcher, target_name: str, max_size: int) -> None:
        super().__init__(max_size, check=dispatcher.check_listening)
        self._dispatcher = dispatcher
        self._target_name = target_name

    def put_nowait(self, item: Comm) -> bool:
        evicted = self._items[0] if len(self._items) >= self.max_size else None
        taken = super().put_nowait(item)
        if not taken:
            self._dispatcher.release_comm(item)
        elif evicted is not None:
            self._dispatcher.release_comm(evicted)
        return taken

    def close(self) -> None:
        targets = self._dispatcher.comm_targets
        if targets.get(self._target_name) is self:
            del targets[self._target_name]
        for comm in self.drain_nowait():
            self.dropped += 1
            self._dispatcher.release_comm(comm)
        super().close()


@asynccontextmanager
async def open_client(
    info_or_channels: ConnectionInfo | ClientChannels | str | os.PathLike[str] | Mapping[str, Any],
    *,
    stdin: StdinHandler | None = None,
    unclaimed_buffer: int = 1000,
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
    report_rejects: bool = False,
    rejects_buffer_size: int = 100,
    identity: bytes | None = None,
    curve_client_keys: tuple[str, str] | None = None,
    linger: float = 1.0,
) -> AsyncIterator[KernelClient]:
    """Open a :class:`KernelClient` for the block's duration.

    ``info_or_channels`` is a :class:`~trio_enchannel.ConnectionInfo`, the path of a
    connection file or its dict (channels are then opened with
    :func:`~trio_enchannel.open_channels` and closed at the end), or channels you opened
    yourself (:class:`~trio_enchannel.Channels`, :class:`~trio_enchannel.RemoteChannels`, or
    any object with everything the client needs of its channels: the ``ClientChannels``
    protocol of ``trio_enchannel._channels._interfaces``), left open at the end; the client
    must be their only reader.

    The other keyword arguments (``session``, ``iopub_topic``, ``heartbeat``,
    ``hb_interval``, ``hb_deadline``, ``hb_startup_deadline``, ``buffer_size``,
    ``iopub_buffer_size``, ``iopub_buffer_bytes``, ``iopub_overflow``, ``iopub_hwm``,
    ``report_rejects``, ``rejects_buffer_size``, ``identity``, ``curve_client_keys``,
    ``linger``) are the options of :func:`~trio_enchannel.open_channels`, with the same
    defaults, used when the client opens the channels (not ``multiplexed``: the client reads
    every channel on its own).

    Args:
        stdin: the default handler for input prompts (:attr:`KernelClient.stdin_handler`).
        unclaimed_buffer: how many unclaimed replies and unclaimed IOPub messages to keep
            (each) before dropping the oldest.

    Raises:
        ConnectionInfoError: the connection file or dict is missing or invalid.
        TypeError: ``info_or_channels`` is none of these, or a channel option differs from
            its default while channels you opened are given (it would be ignored).
        ConfigurationError: an invalid channel option (see
            :func:`~trio_enchannel.open_channels`).
    """
    options = ClientOptions.build(
        stdin=stdin,
        unclaimed_buffer=unclaimed_buffer,
        session=session,
        iopub_topic=iopub_topic,
        heartbeat=heartbeat,
        hb_interval=hb_interval,
        hb_deadline=hb_deadline,
        hb_startup_deadline=hb_startup_deadline,
        buffer_size=buffer_size,
        iopub_buffer_size=iopub_buffer_size,
        iopub_buffer_bytes=iopub_buffer_bytes,
        iopub_overflow=iopub_overflow,
        iopub_hwm=iopub_hwm,
        report_rejects=report_rejects,
        rejects_buffer_size=rejects_buffer_size,
        identity=identity,
        curve_client_keys=curve_client_keys,
        linger=linger,
    )
    if isinstance(info_or_channels, (str, os.PathLike, Mapping)):
        info_or_channels = await load_connection_info(info_or_channels, name="info_or_channels")
    async with open_client_with(info_or_channels, options) as client:
        yield client


@asynccontextmanager
async def open_client_with(
    info_or_channels: ConnectionInfo | ClientChannels, options: ClientOptions
) -> AsyncIterator[KernelClient]:
    """:func:`open_client` with its options already checked (:class:`ClientOptions`): the
    entry point of the openers above this layer (``open_kernel``, ``open_remote_kernel``).

    Raises:
        TypeError: ``info_or_channels`` is neither, or channel options were given with
            channels (they would be ignored).
    """
    if isinstance(info_or_channels, ConnectionInfo):
        from .._channels._channels import open_channels_with

        async with (
            open_channels_with(info_or_channels, options.session, options.channels) as channels,
            _client_over(channels, options.stdin, options.unclaimed_buffer) as client,
        ):
            yield client
        return
    if not isinstance(info_or_channels, ClientChannels):
        raise TypeError(
            "info_or_channels must be a ConnectionInfo, a connection file path, its dict or "
            f"Channels, got {type(info_or_channels).__name__}"
        )
    if options.channel_options_given:
        raise TypeError(
            f"open_client(channels, ...): channel options {list(options.channel_options_given)} "
            "apply only when the client opens the channels itself"
        )
    async with _client_over(info_or_channels, options.stdin, options.unclaimed_buffer) as client:
        yield client


def _check_message(msg: object) -> None:
    if not isinstance(msg, Message):
        raise TypeError(f"msg must be a Message, got {type(msg).__name__}")


def _check_subshell_id(subshell_id: object) -> None:
    check_optional_str("subshell_id", subshell_id, nonempty=True, error=LocalProtocolError)


def _check_str_mapping(name: str, value: object) -> None:
    mapping = check_mapping(name, value)
    for key, item in (mapping or {}).items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise TypeError(f"{name} must map str to str, got {key!r:.40}: {item!r:.40}")


def _cursor_pos(code: object, cursor_pos: object) -> int:
    """The request's cursor position: ``cursor_pos`` checked against ``code``, or its end."""
    text = check_str("code", code)
    if cursor_pos is None:
        return len(text)
    return check_int(
        "cursor_pos", cursor_pos, at_least=0, at_most=len(text), error=LocalProtocolError
    )


@asynccontextmanager
async def _client_over(
    channels: ClientChannels, stdin: StdinHandler | None, unclaimed_buffer: int
) -> AsyncIterator[KernelClient]:
    client = KernelClient(channels, stdin=stdin, unclaimed_buffer=unclaimed_buffer)
    with unwrap_single():
        async with trio.open_nursery() as nursery:
            await nursery.start(client._dispatcher.run)
            try:
                yield client
            finally:
                client._dispatcher.shutdown(trio.ClosedResourceError("the client was closed"))
                nursery.cancel_scope.cancel()
