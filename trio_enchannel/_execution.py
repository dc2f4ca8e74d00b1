"""A running execution: its IOPub messages, its stdin prompts, its result."""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, TypeAlias

import attrs
import trio

from ._message import Message
from ._outputs import OutputAccumulator
from ._queue import DroppingQueue
from ._results import ExecuteResult

if sys.version_info < (3, 11):  # pragma: no cover - trio depends on exceptiongroup there
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found,unused-ignore]

if TYPE_CHECKING:
    from ._router import Router

__all__ = ["Execution", "InputRequest", "StdinHandler"]


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
StdinHandler: TypeAlias = Callable[[InputRequest], "str | Awaitable[str]"]


class _Request:
    """A request in flight: the router fills its inbox, the waiting task drains it."""

    __slots__ = ("failed", "inbox", "msg", "probe", "replied")

    def __init__(self, msg: Message | None, *, probe: bool = False) -> None:
        self.msg = msg
        # A readiness probe outlives heartbeat silence (a starting kernel may not answer
        # pings yet); only an explicit fail_pending() ends it.
        self.probe = probe
        self.replied = False  # the waiting task took the reply out of the inbox
        self.failed = trio.Event()
        self.inbox: DroppingQueue[Message] = DroppingQueue()

    def fail(self, exc: BaseException) -> None:
        self.inbox.close_producer(exc)
        self.failed.set()


class Execution(trio.abc.ReceiveChannel[Message]):
    """A running ``execute_request``: iterate its IOPub messages as they arrive.

    Obtained from :meth:`~trio_enchannel.KernelClient.stream_execute`. Receiving ends
    (:exc:`trio.EndOfChannel`) once both the request's ``idle`` status and its reply have
    arrived; :attr:`result` is then available. Stdin prompts are answered by the handler
    while you iterate.

    Attributes:
        request: the ``execute_request`` message that was sent.
        outputs: the :class:`OutputAccumulator` fed with the messages received so far.
    """

    def __init__(
        self, router: Router, req: _Request, request: Message, stdin: StdinHandler | None
    ) -> None:
        self._router = router
        self._req = req
        self.request = request
        self._stdin = stdin
        self.outputs = OutputAccumulator()
        self._messages: list[Message] = []
        self._reply: Message | None = None
        self._idle = False
        self._result: ExecuteResult | None = None
        self._closed = False

    @property
    def msg_id(self) -> str:
        """The request's ``msg_id``."""
        return self.request.msg_id

    @property
    def reply(self) -> Message | None:
        """The ``execute_reply`` once it arrived, else ``None``."""
        return self._reply

    @property
    def done(self) -> bool:
        """Whether the reply and the ``idle`` status have both arrived."""
        if self._reply is None:
            return False
        # An aborted request may get no idle status (older kernels): the reply ends it.
        return self._idle or self._reply.content.get("status") == "aborted"

    @property
    def result(self) -> ExecuteResult:
        """The :class:`ExecuteResult`, once :attr:`done`.

        Raises:
            RuntimeError: the execution has not finished yet.
        """
        if self._result is None:
            if not self.done:
                raise RuntimeError("the execution has not finished yet (iterate it first)")
            assert self._reply is not None
            self._result = ExecuteResult.build(self._reply, self.outputs, self._messages)
        return self._result

    async def receive(self) -> Message:
        """The request's next IOPub message.

        Raises:
            trio.EndOfChannel: the execution finished (see :attr:`result`).
            KernelDied: the kernel died before the execution finished.
            Exception: whatever the stdin handler raised.
        """
        if self._closed:
            raise trio.ClosedResourceError("this execution stream was closed")
        while not self.done:
            msg = await self._req.inbox.receive()
            self._messages.append(msg)
            if msg.channel == "iopub":
                self.outputs.feed(msg)
                if msg.msg_type == "status" and msg.content.get("execution_state") == "idle":
                    self._idle = True
                return msg
            if msg.channel == "stdin":
                if msg.msg_type == "input_request":
                    await self._answer(msg)
            elif msg.msg_type == "execute_reply":
                self._reply = msg
                self._req.replied = True
        await trio.lowlevel.checkpoint()
        raise trio.EndOfChannel

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
        router = self._router
        if handler is None:
            router.stdin_refused += 1
            await router.send_input_reply(msg, "")
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
                    await router.send_input_reply(msg, value)


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
