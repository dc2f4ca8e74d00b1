"""A scripted fake kernel, built on the kernel side, for testing Trio tools without a kernel.

The fake kernel speaks the real protocol over real ZeroMQ sockets (loopback), so the code under
test is exercised end to end; what the kernel answers is scripted by the test, and faults can
be injected on demand.
"""

from __future__ import annotations

import math
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal, cast

import attrs
import trio

from .._errors import ConnectionInfoError, LocalProtocolError, UsageError
from .._kernel._side import KernelChannels, KernelChannelsStatistics, open_kernel_channels
from .._validate import (
    check_bool,
    check_choice,
    check_int,
    check_ip,
    check_mapping,
    check_optional_str,
    check_seconds,
    check_str,
)
from .._wire._connection import ConnectionInfo
from .._wire._message import ChannelName, Message
from .._wire._session import Session
from ._fake_protocol import (
    DEFAULT_KERNEL_INFO,
    RequestRun,
    complete_reply,
    error_args,
    error_content,
    error_output,
    forged_frames,
    frames_of,
    history_reply,
    inspect_reply,
    is_complete_reply,
    malformed_frames,
)
from ._script import (
    ClearOutput,
    CommClose,
    CommMsg,
    CommOpen,
    DelayReply,
    DieMidRequest,
    DisplayData,
    DropReply,
    DuplicateReply,
    Error,
    Fault,
    FloodIopub,
    ForgeSignature,
    Gate,
    Input,
    Malformed,
    Publish,
    ReplaySignature,
    ReplyAfterIdle,
    Result,
    Script,
    Sleep,
    Status,
    Step,
    StopHeartbeat,
    Stream,
    UpdateDisplayData,
)

__all__ = ["FakeKernel", "FakeKernelOptions", "open_fake_kernel", "open_fake_kernel_with"]

CodeMatcher = str | Callable[[str], bool]


@attrs.define(eq=False)
class _Injection:
    fault: Fault
    msg_type: str | None
    remaining: int


class _Died(Exception):
    """Raised inside a handler to unwind after the kernel died."""


class FakeKernel:
    """A kernel whose behaviour a test scripts, with faults injected on demand.

    Use :func:`open_fake_kernel` (or the ``fake_kernel`` pytest fixture) to get a running
    one. It answers ``kernel_info``, ``execute`` (running the script registered for the code,
    see :meth:`script`), ``complete``, ``inspect``, ``is_complete``, ``history``,
    ``comm_info``, comm messages, ``shutdown``, ``interrupt``, ``debug`` and the subshell
    requests of protocol 5.5, publishing ``status`` busy/idle around each, like a real kernel.

    Everything it receives is kept in :attr:`requests`; every valid message it sends is kept in
    :attr:`sent`.

    Attributes:
        timeout: default deadline (seconds) of the ``wait_*`` methods.
        requests: every valid message received from clients, in order (shell, control, stdin).
        sent: every valid message sent (replies, outputs, input requests), in order.
        input_values: values received in answer to :class:`Input` steps.
        faults_applied: the injected faults that took effect, in order.
        execution_count: the current execution count.
        default_execution: the script of code that matches no :meth:`script`
            (default: status ``ok``, no output).
        completions: candidate words for ``complete_request`` (matched by prefix).
        inspections: mime bundles for ``inspect_request``, by name.
        comm_targets: target names whose ``comm_open`` is accepted (others are closed at once).
        comms: the open comms, ``comm_id -> target_name``.
        subshells: ids of the live subshells.
    """

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        kernel_info: Mapping[str, Any] | None = None,
        exit_on_shutdown: bool = True,
    ) -> None:
        self.timeout = timeout
        self._kernel_info = {**DEFAULT_KERNEL_INFO, **(kernel_info or {})}
        self._exit_on_shutdown = exit_on_shutdown
        self.requests: list[Message] = []
        self.sent: list[Message] = []
        self.input_values: list[str] = []
        self.faults_applied: list[Fault] = []
        self.execution_count = 0
        self.default_execution = Script()
        self.completions: list[str] = []
        self.inspections: dict[str, Mapping[str, Any]] = {}
        self.comm_targets: set[str] = set()
        self.comms: dict[str, str] = {}
        self.subshells: dict[str, trio.MemorySendChannel[Message]] = {}
        self._scripts: list[tuple[CodeMatcher, Script]] = []
        self._injections: list[_Injection] = []
        self._history: list[tuple[str, str]] = []
        self._unclaimed: list[Message] = []
        self._arrivals = trio.lowlevel.ParkingLot()
        self._channels: KernelChannels | None = None
        self._life: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._dead = trio.Event()
        self._died = False
        self._shutdown = False
        self._interruptible: set[trio.CancelScope] = set()

    def __repr__(self) -> str:
        state = "dead" if self._dead.is_set() else "running"
        return f"<FakeKernel {state} requests={len(self.requests)}>"

    # -- state ----------------------------------------------------------------------------

    @property
    def channels(self) -> KernelChannels:
        """The kernel-side channels the fake kernel serves (for sending raw extras).

        Raises:
            UsageError: the fake kernel was not started.
        """
        if self._channels is None:
            raise UsageError("the fake kernel is not running; use open_fake_kernel()")
        return self._channels

    @property
    def connection_info(self) -> ConnectionInfo:
        """Where the fake kernel listens, and its key; give it to the code under test.

        Raises:
            UsageError: the fake kernel was not started.
        """
        return self.channels.connection_info

    @property
    def session(self) -> Session:
        """The kernel's session (its key signs everything the fake kernel sends).

        Raises:
            UsageError: the fake kernel was not started.
        """
        return self.channels.session

    @property
    def is_alive(self) -> bool:
        """Whether the fake kernel still serves (it has not died or shut down)."""
        return self._channels is not None and not self._dead.is_set()

    @property
    def died(self) -> bool:
        """Whether the fake kernel died (:meth:`die` or :class:`DieMidRequest`)."""
        return self._died

    @property
    def shut_down(self) -> bool:
        """Whether the fake kernel exited after a ``shutdown_request``."""
        return self._shutdown

    def statistics(self) -> KernelChannelsStatistics:
        """The kernel-side counters (messages received, sent, rejected by reason, ...).

        Raises:
            UsageError: the fake kernel was not started.
        """
        return self.channels.statistics()

    # -- scripting ------------------------------------------------------------------------

    def script(
        self,
        code: CodeMatcher,
        *steps: Step,
        status: Literal["ok", "error", "aborted", "abort"] | None = None,
        reply: Mapping[str, Any] | None = None,
    ) -> Script:
        """Script what executing ``code`` does.

        Args:
            code: the exact code, or a predicate on the code. The latest matching script wins.
            steps: outputs and actions, in order (:class:`Stream`, :class:`DisplayData`,
                :class:`Result`, :class:`Error`, :class:`Input`, :class:`Gate`,
                ...).
            status: the reply's status (default: ``"error"`` if a step is an :class:`Error`).
            reply: extra keys for the ``execute_reply`` content.

        Returns:
            The registered :class:`Script`.

        Raises:
            TypeError: ``code`` is neither a str nor callable, or ``reply`` not a dict.
            ConfigurationError: ``status`` is not one of those.
        """
        if not (isinstance(code, str) or callable(code)):
            raise TypeError(f"code must be a str or a predicate, got {type(code).__name__}")
        if status is not None:
            check_choice("status", status, ("ok", "error", "aborted", "abort"))
        check_mapping("reply", reply)
        execution = Script(steps, status=status, reply=reply or {})
        self._scripts.append((code, execution))
        return execution

    def _execution_for(self, code: str) -> Script:
        for matcher, execution in reversed(self._scripts):
            if (matcher == code) if isinstance(matcher, str) else matcher(code):
                return execution
        return self.default_execution

    # -- faults ---------------------------------------------------------------------------

    def inject(
        self, *faults: Fault, msg_type: str | None = "execute_request", times: int = 1
    ) -> None:
        """Inject ``faults`` into the handling of the next request(s) of type ``msg_type``.

        Args:
            faults: :class:`DelayReply`, :class:`DropReply`, :class:`DuplicateReply`,
                :class:`ReplyAfterIdle`, :class:`Malformed`, :class:`ForgeSignature`,
                :class:`ReplaySignature`, :class:`FloodIopub`, :class:`StopHeartbeat`,
                :class:`DieMidRequest`; several may apply to one request.
            msg_type: the request type they apply to; ``None``: any shell or control request.
            times: how many matching requests they apply to.

        Raises:
            ConfigurationError: ``times`` is less than 1 (a :class:`ValueError`).
            TypeError: an argument has the wrong type.
        """
        check_int("times", times, at_least=1)
        check_optional_str("msg_type", msg_type, nonempty=True)
        for fault in faults:
            self._injections.append(_Injection(fault, msg_type, times))

    def _faults_for(self, request: Message) -> list[Fault]:
        faults: list[Fault] = []
        for injection in list(self._injections):
            if injection.msg_type is None or injection.msg_type == request.msg_type:
                faults.append(injection.fault)
                injection.remaining -= 1
                if injection.remaining <= 0:
                    self._injections.remove(injection)
        return faults

    def stop_heartbeat(self) -> None:
        """Stop echoing heartbeat pings now (clients will declare the kernel dead)."""
        self.channels.pause_heartbeat()

    def resume_heartbeat(self) -> None:
        """Echo heartbeat pings again."""
        self.channels.resume_heartbeat()

    async def die(self) -> None:
        """Die at once: every socket closes (linger 0) and nothing is answered any more.

        Idempotent; returns when the sockets are closed.
        """
        self._die_now()
        await self._dead.wait()

    def _die_now(self) -> None:
        if self._died or self._dead.is_set():
            return
        self._died = True
        if self._channels is not None:
            self._channels.abort()
        if self._life is not None:
            self._life.cancel()

    # -- waiting --------------------------------------------------------------------------

    async def wait_request(
        self,
        msg_type: str | None = None,
        *,
        channel: ChannelName | None = None,
    ) -> Message:
        """The oldest received request of ``msg_type`` not yet returned by this method.

        Waits for it if it has not arrived yet.

        Raises:
            trio.TooSlowError: nothing matching arrived within :attr:`timeout` seconds.
        """
        with trio.fail_after(self.timeout):
            while True:
                for msg in self._unclaimed:
                    if (msg_type is None or msg.msg_type == msg_type) and (
                        channel is None or msg.channel == channel
                    ):
                        self._unclaimed.remove(msg)
                        await trio.lowlevel.checkpoint()
                        return msg
                await self._arrivals.park()

    async def wait_for_request(
        self,
        msg_type: str | None = None,
        *,
        channel: ChannelName | None = None,
    ) -> Message:
        """Deprecated alias of :meth:`wait_request`."""
        warnings.warn(
            "FakeKernel.wait_for_request() is deprecated, use wait_request()",
            DeprecationWarning,
            stacklevel=2,
        )
        return await self.wait_request(msg_type, channel=channel)

    async def wait_subscriptions(self, count: int = 1) -> None:
        """Wait until ``count`` IOPub subscriptions have arrived in total.

        Raises:
            trio.TooSlowError: not within :attr:`timeout` seconds.
            trio.ClosedResourceError: the kernel is dead.
        """
        with trio.fail_after(self.timeout):
            await self.channels.wait_subscriptions(count)

    async def wait_dead(self) -> None:
        """Wait until the kernel died or shut down and its sockets are closed.

        Raises:
            trio.TooSlowError: not within :attr:`timeout` seconds.
        """
        with trio.fail_after(self.timeout):
            await self._dead.wait()

    # -- sending, with faults -------------------------------------------------------------

    async def _send_raw(self, channel: ChannelName, frames: Sequence[bytes]) -> None:
        await self.channels.endpoint(channel).send_frames(frames)

    async def _deliver(
        self, run: RequestRun | None, msg: Message, on: Literal["reply", "iopub"]
    ) -> None:
        """Send ``msg`` (a reply or an output), applying the faults of ``run`` that target it."""
        channel: ChannelName = msg.channel or "iopub"
        if channel == "iopub":
            identities: tuple[bytes, ...] = msg.identities or (
                self.channels.iopub.topic(msg.msg_type),
            )
        else:
            identities = msg.identities
        replace = False
        if run is not None:
            for fault in run.take(Malformed, on):
                self.faults_applied.append(fault)
                await self._send_raw(
                    channel, malformed_frames(self.session, fault, msg, identities)
                )
                replace = replace or fault.replace
            if replace:
                return
            forged = run.take(ForgeSignature, on)
            if forged:
                self.faults_applied.append(forged[0])
                await self._send_raw(
                    channel, forged_frames(self.session, forged[0], msg, identities)
                )
                return
        frames = frames_of(self.session, msg, identities)
        await self._send_raw(channel, frames)
        self.sent.append(msg)
        if run is not None:
            for fault in run.take(ReplaySignature, on):
                self.faults_applied.append(fault)
                await self._send_raw(channel, frames)

    async def _publish(
        self,
        run: RequestRun | None,
        msg_type: str,
        content: Mapping[str, Any],
        *,
        parent: Message | None,
        metadata: Mapping[str, Any] | None = None,
        buffers: Sequence[bytes] = (),
        faultable: bool = True,
    ) -> None:
        msg = self.session.message(
            msg_type,
            content,
            parent=parent,
            metadata=metadata,
            buffers=buffers,
            channel="iopub",
        )
        await self._deliver(run if faultable else None, msg, "iopub")

    async def _reply(self, run: RequestRun, content: Mapping[str, Any]) -> None:
        request = run.request
        for fault in run.take(DelayReply):
            self.faults_applied.append(fault)
            await trio.sleep(fault.seconds)
        dropped = run.take(DropReply)
        if dropped:
            self.faults_applied.append(dropped[0])
            return
        msg = self.session.reply(request, content)
        await self._deliver(run, msg, "reply")
        for fault in run.take(DuplicateReply):
            self.faults_applied.append(fault)
            await self._deliver(None, self.session.reply(request, content), "reply")

    # -- request handling -----------------------------------------------------------------

    def _record(self, msg: Message) -> None:
        self.requests.append(msg)
        self._unclaimed.append(msg)
        self._arrivals.unpark_all()

    async def _handle(
        self, request: Message, drain: Callable[[], list[Message]] | None = None
    ) -> list[Message]:
        """Handle one shell or control request: busy, work, reply, idle.

        After a failed execution (with ``stop_on_error``), the executions already queued
        (``drain()``) are aborted before ``idle`` is published, like ipykernel does; the other
        queued requests are returned, to be handled next.
        """
        run = RequestRun(request, self._faults_for(request))
        for fault in run.take(StopHeartbeat):
            self.faults_applied.append(fault)
            self.channels.pause_heartbeat()
        await self._publish(None, "status", {"execution_state": "busy"}, parent=request)
        die = run.take(DieMidRequest)
        if die and (request.msg_type != "execute_request" or die[0].after_steps == 0):
            self.faults_applied.append(die[0])
            await self._die_inside()
        for fault in run.take(FloodIopub):
            self.faults_applied.append(fault)
            for _ in range(fault.count):
                await self._publish(
                    None,
                    "stream",
                    {"name": "stdout", "text": fault.text},
                    parent=request,
                    faultable=False,
                )
        content = await self._answer(run, die[0] if die else None)
        if content is None:  # not a request that gets a reply (comm messages)
            await self._publish(None, "status", {"execution_state": "idle"}, parent=request)
            return []
        abort = (
            drain is not None
            and request.msg_type == "execute_request"
            and request.content.get("stop_on_error", True)
            and content.get("status") == "error"
        )
        deferred: list[Message] = []
        after_idle = run.take(ReplyAfterIdle)
        if after_idle:
            self.faults_applied.append(after_idle[0])
            if abort and drain is not None:
                deferred = await self._abort_queued(drain())
            await self._publish(run, "status", {"execution_state": "idle"}, parent=request)
            await self._reply(run, content)
        else:
            await self._reply(run, content)
            if abort and drain is not None:
                deferred = await self._abort_queued(drain())
            await self._publish(run, "status", {"execution_state": "idle"}, parent=request)
        if request.msg_type == "shutdown_request" and self._exit_on_shutdown:
            self._shutdown = True
            if self._life is not None:
                self._life.cancel()
        return deferred

    async def _abort_queued(self, queued: list[Message]) -> list[Message]:
        # Like ipykernel: the executions queued behind a failed one are not run.
        others: list[Message] = []
        for request in queued:
            if request.msg_type != "execute_request":
                others.append(request)
                continue
            await self._publish(None, "status", {"execution_state": "busy"}, parent=request)
            await self._deliver(None, self.session.reply(request, {"status": "aborted"}), "reply")
            await self._publish(None, "status", {"execution_state": "idle"}, parent=request)
        return others

    async def _die_inside(self) -> None:
        self._die_now()
        await trio.lowlevel.checkpoint()
        raise _Died  # pragma: no cover - the checkpoint raises Cancelled

    async def _answer(self, run: RequestRun, die: DieMidRequest | None) -> Mapping[str, Any] | None:
        request = run.request
        kind = request.msg_type
        content = request.content
        if kind == "execute_request":
            return await self._execute(run, die)
        if kind == "kernel_info_request":
            return dict(self._kernel_info)
        if kind == "complete_request":
            return complete_reply(self.completions, content)
        if kind == "inspect_request":
            return inspect_reply(self.inspections, content)
        if kind == "is_complete_request":
            return is_complete_reply(content)
        if kind == "history_request":
            return history_reply(self._history, content)
        if kind == "comm_info_request":
            target = content.get("target_name")
            comms = {
                cid: {"target_name": name}
                for cid, name in self.comms.items()
                if not target or name == target
            }
            return {"status": "ok", "comms": comms}
        if kind == "comm_open":
            await self._comm_open(run)
            return None
        if kind == "comm_close":
            self.comms.pop(str(content.get("comm_id", "")), None)
            return None
        if kind == "comm_msg":
            return None
        if kind == "shutdown_request":
            return {"status": "ok", "restart": bool(content.get("restart", False))}
        if kind == "interrupt_request":
            for scope in self._interruptible:
                scope.cancel()
            return {"status": "ok"}
        if kind == "debug_request":
            return {
                "type": "response",
                "request_seq": content.get("seq", 0),
                "seq": 0,
                "success": False,
                "command": content.get("command", ""),
                "message": "the fake kernel has no debugger",
            }
        if kind == "create_subshell_request":
            return self._create_subshell()
        if kind == "delete_subshell_request":
            subshell_id = str(content.get("subshell_id", ""))
            sender = self.subshells.pop(subshell_id, None)
            if sender is None:
                return error_content("SubshellNotFound", f"no subshell {subshell_id!r}")
            sender.close()
            return {"status": "ok"}
        if kind == "list_subshell_request":
            return {"status": "ok", "subshell_id": list(self.subshells)}
        return None

    async def _comm_open(self, run: RequestRun) -> None:
        content = run.request.content
        comm_id = str(content.get("comm_id", ""))
        target = str(content.get("target_name", ""))
        if target in self.comm_targets:
            self.comms[comm_id] = target
        else:  # the spec: an unknown target closes the comm at once
            await self._publish(
                None, "comm_close", {"comm_id": comm_id, "data": {}}, parent=run.request
            )

    async def _execute(self, run: RequestRun, die: DieMidRequest | None) -> dict[str, Any]:
        request = run.request
        code = str(request.content.get("code", ""))
        silent = bool(request.content.get("silent", False))
        store_history = bool(request.content.get("store_history", True)) and not silent
        if store_history:
            self.execution_count += 1
        count = self.execution_count
        if not silent:
            await self._publish(
                None,
                "execute_input",
                {"code": code, "execution_count": count},
                parent=request,
            )
        execution = self._execution_for(code)
        errors: list[Error] = []
        output: list[str] = []
        with trio.CancelScope() as scope:
            self._interruptible.add(scope)
            try:
                for index, step in enumerate(execution.steps):
                    if die is not None and index == die.after_steps:
                        self.faults_applied.append(die)
                        await self._die_inside()
                    await self._run_step(run, step, count, silent, errors, output)
                if die is not None:
                    self.faults_applied.append(die)
                    await self._die_inside()
            finally:
                self._interruptible.discard(scope)
        if scope.cancelled_caught:
            interrupted = Error("KeyboardInterrupt", "", ("KeyboardInterrupt",))
            errors.append(interrupted)
            await self._publish(run, "error", error_output(interrupted), parent=request)
        if store_history:
            self._history.append((code, "".join(output)))
        status = execution.status or ("error" if errors else "ok")
        reply: dict[str, Any] = {"status": status, "execution_count": count}
        if status == "error":
            first = errors[0] if errors else Error("Error", "scripted error")
            reply.update(error_content(*error_args(first)))
            reply["status"] = "error"
        elif status == "ok":
            reply.update(user_expressions={}, payload=[])
        reply.update(execution.reply)
        return reply

    async def _run_step(
        self,
        run: RequestRun,
        step: Step,
        count: int,
        silent: bool,
        errors: list[Error],
        output: list[str],
    ) -> None:
        request = run.request

        async def publish(msg_type: str, content: Mapping[str, Any], **kw: Any) -> None:
            await self._publish(run, msg_type, content, parent=request, **kw)

        if isinstance(step, Stream):
            output.append(step.text)
            await publish("stream", {"name": step.name, "text": step.text})
        elif isinstance(step, DisplayData):
            transient = {"display_id": step.display_id} if step.display_id else {}
            await publish(
                "display_data",
                {"data": dict(step.data), "metadata": dict(step.metadata), "transient": transient},
            )
        elif isinstance(step, UpdateDisplayData):
            await publish(
                "update_display_data",
                {
                    "data": dict(step.data),
                    "metadata": dict(step.metadata),
                    "transient": {"display_id": step.display_id},
                },
            )
        elif isinstance(step, Result):
            if not silent:
                await publish(
                    "execute_result",
                    {
                        "data": dict(step.data),
                        "metadata": dict(step.metadata),
                        "execution_count": count,
                    },
                )
        elif isinstance(step, Error):
            errors.append(step)
            await publish("error", error_output(step))
        elif isinstance(step, Input):
            await self._input(run, step, errors, output)
        elif isinstance(step, ClearOutput):
            await publish("clear_output", {"wait": step.wait})
        elif isinstance(step, CommOpen):
            self.comms[step.comm_id] = step.target_name
            await publish(
                "comm_open",
                {"comm_id": step.comm_id, "target_name": step.target_name, "data": dict(step.data)},
                metadata=step.metadata,
            )
        elif isinstance(step, CommMsg):
            await publish(
                "comm_msg",
                {"comm_id": step.comm_id, "data": dict(step.data)},
                metadata=step.metadata,
                buffers=step.buffers,
            )
        elif isinstance(step, CommClose):
            self.comms.pop(step.comm_id, None)
            await publish("comm_close", {"comm_id": step.comm_id, "data": dict(step.data)})
        elif isinstance(step, Status):
            await publish("status", {"execution_state": step.state})
        elif isinstance(step, Publish):
            await self._publish(
                run,
                step.msg_type,
                step.content,
                parent=request if step.parent else None,
                metadata=step.metadata,
                buffers=step.buffers,
            )
        elif isinstance(step, Sleep):
            await trio.sleep(step.seconds)
        elif isinstance(step, Gate):
            await step._pass()
        else:  # pragma: no cover - guarded by the Step type
            raise LocalProtocolError(f"unknown script step {step!r}")

    async def _input(
        self, run: RequestRun, step: Input, errors: list[Error], output: list[str]
    ) -> None:
        request = run.request
        if not request.content.get("allow_stdin", True):
            error = Error(
                "StdinNotImplementedError",
                "raw_input was called, but this frontend does not support input requests.",
            )
            errors.append(error)
            await self._publish(run, "error", error_output(error), parent=request)
            return
        value = await self.channels.input_request(request, step.prompt, password=step.password)
        self.input_values.append(value)
        if step.echo:
            output.append(value + "\n")
            await self._publish(
                run, "stream", {"name": "stdout", "text": value + "\n"}, parent=request
            )

    def _create_subshell(self) -> dict[str, Any]:
        assert self._nursery is not None
        subshell_id = uuid.uuid4().hex
        send, receive = trio.open_memory_channel[Message](math.inf)
        self.subshells[subshell_id] = send
        self._nursery.start_soon(self._serve_queue, receive, name=f"fake-subshell-{subshell_id}")
        return {"status": "ok", "subshell_id": subshell_id}

    # -- serving --------------------------------------------------------------------------

    async def _serve_queue(self, receive: trio.MemoryReceiveChannel[Message]) -> None:
        def drain() -> list[Message]:
            return _drain(receive)

        async with receive:
            async for request in receive:
                pending = [request]
                while pending:
                    pending = [*await self._handle(pending[0], drain), *pending[1:]]

    async def _serve_shell(self, main: trio.MemorySendChannel[Message]) -> None:
        # Read and record requests as they arrive (even while an execution runs), then queue
        # them for the main shell or their subshell.
        async with main:
            async for request in self.channels.shell:
                self._record(request)
                subshell_id = request.subshell_id
                if subshell_id is None:
                    main.send_nowait(request)
                    continue
                sender = self.subshells.get(subshell_id)
                if sender is None:
                    await self._reply(
                        RequestRun(request, []),
                        error_content("SubshellNotFound", f"no subshell {subshell_id!r}"),
                    )
                else:
                    sender.send_nowait(request)

    async def _serve_control(self) -> None:
        async for request in self.channels.control:
            self._record(request)
            await self._handle(request)

    async def _serve_stdin(self) -> None:
        async for msg in self.channels.stdin:
            self._record(msg)

    async def _run(
        self,
        open_channels: Callable[[], AbstractAsyncContextManager[KernelChannels]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        try:
            async with open_channels() as channels:
                self._channels = channels
                with trio.CancelScope() as life:
                    self._life = life
                    async with trio.open_nursery() as nursery:
                        self._nursery = nursery
                        main_send, main_receive = trio.open_memory_channel[Message](math.inf)
                        nursery.start_soon(self._serve_shell, main_send, name="fake-kernel-shell")
                        nursery.start_soon(self._serve_queue, main_receive, name="fake-kernel-main")
                        nursery.start_soon(self._serve_control, name="fake-kernel-control")
                        nursery.start_soon(self._serve_stdin, name="fake-kernel-stdin")
                        task_status.started()
        finally:
            for sender in self.subshells.values():
                sender.close()
            self._dead.set()
            self._arrivals.unpark_all()


def _drain(receive: trio.MemoryReceiveChannel[Message]) -> list[Message]:
    queued: list[Message] = []
    while True:
        try:
            queued.append(receive.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            return queued


@asynccontextmanager
async def open_fake_kernel(
    *,
    wait_timeout: float = 10.0,
    key: str | None = None,
    signature_scheme: str = "hmac-sha256",
    transport: Literal["tcp", "ipc"] = "tcp",
    ip: str = "127.0.0.1",
    info: ConnectionInfo | None = None,
    kernel_info: Mapping[str, Any] | None = None,
    exit_on_shutdown: bool = True,
    iopub_welcome: bool = True,
) -> AsyncIterator[FakeKernel]:
    """Run a :class:`FakeKernel` on free loopback ports until the block ends.

    Args:
        wait_timeout: the start-up deadline, and the deadline of the kernel's ``wait_*``
            methods (:attr:`FakeKernel.timeout`, which may be changed later).
        key: the signing key (default: a fresh random key; ``""``: unsigned messages).
        signature_scheme: e.g. ``"hmac-sha256"``.
        transport: ``"tcp"`` or ``"ipc"``.
        ip: the address to bind (tcp).
        info: bind exactly these ports/key instead (ports of 0 are chosen by the system).
        kernel_info: keys overriding :data:`DEFAULT_KERNEL_INFO` in ``kernel_info_reply``.
        exit_on_shutdown: close all sockets after answering ``shutdown_request``.
        iopub_welcome: greet new IOPub subscribers with ``iopub_welcome`` (protocol 5.5).

    Raises:
        trio.TooSlowError: the sockets were not bound within ``wait_timeout``.
        OSError: a requested port is in use.
        ConfigurationError: an option is invalid (checked before anything is bound).
        TypeError: an argument has the wrong type.
    """
    options = FakeKernelOptions.build(
        wait_timeout=wait_timeout,
        key=key,
        signature_scheme=signature_scheme,
        transport=transport,
        ip=ip,
        info=info,
        kernel_info=kernel_info,
        exit_on_shutdown=exit_on_shutdown,
        iopub_welcome=iopub_welcome,
    )
    async with open_fake_kernel_with(options) as kernel:
        yield kernel


@asynccontextmanager
async def open_fake_kernel_with(options: FakeKernelOptions) -> AsyncIterator[FakeKernel]:
    """:func:`open_fake_kernel` with its options already checked (by
    :meth:`FakeKernelOptions.build`): the entry point of the ``fake_kernel`` fixture."""
    kernel = FakeKernel(
        timeout=options.wait_timeout,
        kernel_info=options.kernel_info,
        exit_on_shutdown=options.exit_on_shutdown,
    )

    def open_channels() -> AbstractAsyncContextManager[KernelChannels]:
        return open_kernel_channels(
            info=options.info,
            ip=options.ip,
            transport=options.transport,
            key=options.key,
            signature_scheme=options.signature_scheme,
            iopub_welcome=options.iopub_welcome,
        )

    async with trio.open_nursery() as nursery:
        with trio.fail_after(options.wait_timeout):
            await nursery.start(kernel._run, open_channels)
        try:
            yield kernel
        finally:
            nursery.cancel_scope.cancel()


def _as_is(name: str) -> str:
    return name


@attrs.frozen
class FakeKernelOptions:
    """The options of :func:`open_fake_kernel`, checked once by :meth:`build` (use it, not
    the constructor); the attributes are its keyword arguments of the same names."""

    wait_timeout: float
    key: str | None
    signature_scheme: str
    transport: Literal["tcp", "ipc"]
    ip: str
    info: ConnectionInfo | None
    kernel_info: Mapping[str, Any] | None
    exit_on_shutdown: bool
    iopub_welcome: bool

    @classmethod
    def build(
        cls,
        *,
        wait_timeout: object,
        key: object,
        signature_scheme: object,
        transport: object,
        ip: object,
        info: object,
        kernel_info: object,
        exit_on_shutdown: object,
        iopub_welcome: object,
        label: Callable[[str], str] = _as_is,
    ) -> FakeKernelOptions:
        """The options from :func:`open_fake_kernel`'s keyword arguments of the same names,
        checked; each error names the argument as ``label(name)`` says (the ``fake_kernel``
        fixture names its ``fake_kernel_options`` entry).

        Raises:
            ConfigurationError: a value is out of range (``ConnectionInfoError`` for an
                ``ip`` this host cannot bind).
            TypeError: a value has the wrong type.
        """
        timeout = check_seconds(label("wait_timeout"), wait_timeout, allow_inf=True)
        secret = check_optional_str(label("key"), key)
        scheme = check_str(label("signature_scheme"), signature_scheme)
        choice: Literal["tcp", "ipc"] = check_choice(label("transport"), transport, ("tcp", "ipc"))
        if info is not None and not isinstance(info, ConnectionInfo):
            raise TypeError(
                f"{label('info')} must be a ConnectionInfo or None, got {type(info).__name__}"
            )
        if info is None and choice == "tcp":
            address = check_ip(label("ip"), ip, bindable=True, error=ConnectionInfoError)
        else:
            address = cast("str", ip)  # unused by ipc and by a given info
        return cls(
            wait_timeout=timeout,
            key=secret,
            signature_scheme=scheme,
            transport=choice,
            ip=address,
            info=info,
            kernel_info=check_mapping(label("kernel_info"), kernel_info),
            exit_on_shutdown=check_bool(label("exit_on_shutdown"), exit_on_shutdown),
            iopub_welcome=check_bool(label("iopub_welcome"), iopub_welcome),
        )
