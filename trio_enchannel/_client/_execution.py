"""A running execution: its IOPub messages, its stdin prompts, its result."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, TypeAlias

import attrs
import trio

from .._errors import UsageError
from .._util import BaseExceptionGroup
from .._wire._message import Message
from .._wire._outputs import OutputAccumulator
from ._queue import DroppingQueue, Mailbox
from ._results import ABORTED_STATUSES, ExecuteResult

__all__ = ["Execution", "ExecutionOwner", "InputRequest", "StdinHandler"]


@attrs.frozen
class InputRequest:
    """The kernel asks for a line of input (``input()``, ``getpass()``).

    Attributes:
        prompt: the prompt to show.
        password: whether the input is a password (do not echo it).
        message: the ``input_request`` message itself.
    """

    prompt: str
    password: bool
    message: Message

    @classmethod
    def from_message(cls, msg: Message) -> InputRequest:
        """Read an ``input_request`` message (never raises on odd content)."""
        prompt = msg.content.get("prompt")
        return cls(
            prompt=prompt if isinstance(prompt, str) else "",
            password=bool(msg.content.get("password", False)),
            message=msg,
        )


#: A stdin handler: called with the :class:`InputRequest`, returns the line typed (a ``str``)
#: directly or as an awaitable (an ``async def`` handler).
StdinHandler: TypeAlias = Callable[[InputRequest], str | Awaitable[str]]


class _Request:
    """A request in flight: the dispatcher fills its inbox, the waiting task drains it."""

    # One is made per round trip: only what every request needs (see _ExecRequest).
    __slots__ = ("failure", "inbox", "msg", "probe", "replied")

    def __init__(self, msg: Message | None, *, probe: bool = False) -> None:
        self.msg = msg
        # A readiness probe outlives heartbeat silence (a starting kernel may not answer
        # pings yet); only an explicit fail_pending() ends it.
        self.probe = probe
        self.replied = False  # the reply reached the request
        self.failure: BaseException | None = None
        self.inbox: Mailbox[Message] = Mailbox()

    def deliver(self, msg: Message) -> bool:
        """Take a message routed to this request (dispatcher side); False: not taken."""
        return self.inbox.put_nowait(msg)

    def fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
        self.inbox.close_producer(exc)


class _ExecRequest(_Request):
    """An execution whose state the dispatcher keeps up to date as messages arrive.

    The outputs, the reply and the idle status are recorded on arrival, so the execution
    ends on time and its outputs are complete however slowly its reader iterates; only the
    queue of messages waiting to be iterated is bounded (oldest dropped, counted).
    """

    __slots__ = (
        "failed",
        "gather_outputs",
        "idle",
        "live",
        "lot",
        "messages",
        "outputs",
        "refused",
        "reply",
    )

    def __init__(
        self,
        msg: Message,
        *,
        keep_messages: bool,
        live_buffer: int | None,
        gather_outputs: bool = True,
    ) -> None:
        super().__init__(msg)
        self.failed = trio.Event()  # for the stdin handler's watcher
        self.outputs = OutputAccumulator()
        self.gather_outputs = gather_outputs
        self.messages: list[Message] | None = [] if keep_messages else None
        self.reply: Message | None = None
        self.idle = False
        self.live: DroppingQueue[Message] | None = (
            DroppingQueue(live_buffer) if live_buffer is not None else None
        )
        self.lot = trio.lowlevel.ParkingLot()
        self.refused = 0  # input prompts answered with an empty line: no stdin handler

    @property
    def done(self) -> bool:
        if self.reply is None:
            return False
        # An aborted request may get no idle status (older kernels): the reply ends it.
        return self.idle or self.reply.content.get("status") in ABORTED_STATUSES

    def deliver(self, msg: Message) -> bool:
        if msg.channel == "iopub":
            if self.gather_outputs:
                self.outputs.feed(msg)
            if msg.msg_type == "status" and msg.content.get("execution_state") == "idle":
                self.idle = True
            if self.live is not None:
                self.live.put_nowait(msg)
        elif msg.channel == "stdin":
            self.inbox.put_nowait(msg)
        elif self.reply is None:
            self.reply = msg
            self.replied = True
        else:
            return False  # a second reply: not ours to take (it goes to unclaimed_replies)
        if self.messages is not None:
            self.messages.append(msg)
        self.lot.unpark_all()
        return True

    def fail(self, exc: BaseException) -> None:
        super().fail(exc)
        self.failed.set()
        self.lot.unpark_all()


class ExecutionOwner(Protocol):
    """What an execution needs of the client's dispatcher (declared here so that the
    dispatcher imports this module, never the reverse)."""

    def iopub_dropped_for(self, msg_id: str) -> int:
        """How many IOPub messages of the request ``msg_id`` never reached the client."""
        ...

    async def refuse_prompt(self, msg: Message) -> None:
        """Answer the prompt ``msg`` with an empty line, counted as refused."""

    async def send_input_reply(self, request: Message, value: str) -> None:
        """Answer the prompt ``request`` with ``value``."""


class Execution(trio.abc.ReceiveChannel[Message]):
    """A running ``execute_request``: iterate its IOPub messages as they arrive.

    Obtained from :meth:`~trio_enchannel.KernelClient.stream_execute`. Receiving ends
    (:exc:`trio.EndOfChannel`) once both the request's ``idle`` status and its reply have
    arrived; :attr:`result` is then available. Stdin prompts are answered by the handler
    while you iterate.

    The execution's state is kept up to date as messages arrive, whether or not you iterate:
    :attr:`outputs` is always complete and the execution ends on time. Only the messages
    waiting to be iterated are bounded: a reader that falls behind by more than the
    ``live_buffer`` of :meth:`~trio_enchannel.KernelClient.stream_execute` misses the oldest
    ones (counted in :attr:`dropped`).

    Attributes:
        request: the ``execute_request`` message that was sent.
    """

    def __init__(
        self,
        owner: ExecutionOwner,
        req: _ExecRequest,
        request: Message,
        stdin: StdinHandler | None,
    ) -> None:
        self._owner = owner
        self._req = req
        self.request = request
        self._stdin = stdin
        self._result: ExecuteResult | None = None
        self._closed = False

    @property
    def msg_id(self) -> str:
        """The request's ``msg_id``."""
        return self.request.msg_id

    @property
    def outputs(self) -> OutputAccumulator:
        """The outputs so far (an :class:`OutputAccumulator` fed on arrival)."""
        return self._req.outputs

    @property
    def reply(self) -> Message | None:
        """The ``execute_reply`` once it arrived, else ``None``."""
        return self._req.reply

    @property
    def done(self) -> bool:
        """Whether the reply and the ``idle`` status have both arrived."""
        return self._req.done

    @property
    def dropped(self) -> int:
        """IOPub messages that arrived while the reader lagged more than ``live_buffer``
        behind, and were not delivered to it (they still count in :attr:`outputs`). Messages
        lost before reaching the client (the channels' IOPub buffer overflowed) are counted
        in the result's :attr:`~trio_enchannel.ExecuteResult.iopub_dropped` instead."""
        live = self._req.live
        return live.dropped if live is not None else 0

    @property
    def result(self) -> ExecuteResult:
        """The :class:`ExecuteResult`, once :attr:`done`.

        Raises:
            UsageError: the execution has not finished yet.
        """
        if self._result is None:
            req = self._req
            if not req.done:
                raise UsageError("the execution has not finished yet (iterate it first)")
            assert req.reply is not None
            messages = req.messages if req.messages is not None else (req.reply,)
            self._result = ExecuteResult.build(
                req.reply,
                req.outputs,
                messages,
                iopub_dropped=self._owner.iopub_dropped_for(self.msg_id),
                stdin_refused=req.refused,
            )
        return self._result

    async def receive(self) -> Message:
        """The request's next IOPub message.

        Raises:
            trio.EndOfChannel: the execution finished (see :attr:`result`).
            trio.ClosedResourceError: :meth:`aclose` was called.
            KernelDied: the kernel died before the execution finished.
            Exception: whatever the stdin handler raised.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        req = self._req
        while True:
            if self._closed:
                raise trio.ClosedResourceError("this execution stream was closed")
            if len(req.inbox):
                prompt = req.inbox.receive_nowait()
                if prompt.msg_type == "input_request":
                    await self._answer(prompt)
                continue
            if req.live is not None and len(req.live):
                msg = req.live.receive_nowait()
                await trio.lowlevel.cancel_shielded_checkpoint()
                return msg
            if req.done:
                await trio.lowlevel.cancel_shielded_checkpoint()
                raise trio.EndOfChannel
            if req.failure is not None:
                raise req.failure
            await req.lot.park()

    async def wait(self) -> ExecuteResult:
        """Receive (and discard) the remaining messages; return the :attr:`result`.

        Raises:
            KernelDied: the kernel died before the execution finished.
            Exception: whatever the stdin handler raised.
        """
        async for _ in self:
            pass
        return self.result

    async def aclose(self) -> None:
        """Stop receiving: further :meth:`receive` calls raise
        :exc:`trio.ClosedResourceError` (the request stays tracked until its
        ``stream_execute`` block exits). Idempotent."""
        self._closed = True
        await trio.lowlevel.checkpoint()

    async def _answer(self, msg: Message) -> None:
        handler = self._stdin
        owner = self._owner
        if handler is None:
            self._req.refused += 1
            await owner.refuse_prompt(msg)
            return
        value = ""
        try:
            async with _single_errors(), trio.open_nursery() as nursery:

                async def abandon_if_the_kernel_dies() -> None:
                    # Nobody will read the answer: stop waiting for the user.
                    await self._req.failed.wait()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(abandon_if_the_kernel_dies)
                got = handler(InputRequest.from_message(msg))
                if inspect.isawaitable(got):
                    got = await got
                if not isinstance(got, str):
                    raise TypeError(f"stdin handler returned {type(got).__name__}, not str")
                value = got
                nursery.cancel_scope.cancel()
        finally:
            # Always answer (unless the request failed): a prompt left unanswered blocks
            # the kernel for good.
            if not self._req.failed.is_set():
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await owner.send_input_reply(msg, value)


@contextlib.asynccontextmanager
async def _single_errors() -> AsyncIterator[None]:
    # The handler's own exception, not a group around it (our nursery has only a watcher).
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) != 1:
            raise
        exc = group.exceptions[0]
        try:
            raise exc
        finally:
            del exc
