"""Result types: :class:`Reply`, :class:`KernelInfo` and :class:`ExecuteResult` (sans-I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from .._errors import KernelError, OutputsLost
from .._wire._message import Message
from .._wire._outputs import ErrorInfo, OutputAccumulator, stream_text

__all__ = ["ABORTED_STATUSES", "ErrorInfo", "ExecuteResult", "KernelInfo", "Reply"]

#: The reply statuses that mean the kernel skipped the request: ``"aborted"`` (ipykernel)
#: and ``"abort"`` (the message schemas' spelling, and bash_kernel's).
ABORTED_STATUSES = frozenset(("aborted", "abort"))


@attrs.frozen
class Reply:
    """The reply to a request, with typed access to the common fields.

    Attributes:
        message: the reply message itself (``message.content`` holds the reply's fields).
    """

    message: Message

    @property
    def content(self) -> dict[str, Any]:
        """The reply's content dict."""
        return self.message.content

    @property
    def msg_type(self) -> str:
        """The reply's message type, e.g. ``"complete_reply"``."""
        return self.message.msg_type

    @property
    def status(self) -> str:
        """The reply's ``status`` (``"ok"``, ``"error"``, ``"aborted"`` or ``"abort"``; for
        ``is_complete_reply``: ``"complete"``, ``"incomplete"``, ...), ``""`` if missing."""
        value = self.message.content.get("status")
        return value if isinstance(value, str) else ""

    @property
    def ok(self) -> bool:
        """Whether the reply does not report an error or an abort (``"aborted"`` or
        ``"abort"``)."""
        status = self.status
        return status != "error" and status not in ABORTED_STATUSES

    @property
    def error(self) -> ErrorInfo | None:
        """The error the reply reports (``status: "error"``), else ``None``."""
        if self.status != "error":
            return None
        return ErrorInfo.from_content(self.message.content)

    def __getitem__(self, key: str) -> Any:
        """``reply["matches"]`` is ``reply.content["matches"]``.

        Raises:
            KeyError: the content has no such field.
        """
        return self.message.content[key]

    def get(self, key: str, default: Any = None) -> Any:
        """``reply.content.get(key, default)``."""
        return self.message.content.get(key, default)

    def raise_for_status(self) -> Reply:
        """Return ``self`` when the reply is ok, else raise.

        Raises:
            KernelError: the reply's status is ``"error"`` (carrying ename/evalue/traceback)
                or ``"aborted"``/``"abort"`` (ename ``"Aborted"``).
        """
        status = self.status
        if status == "error":
            raise ErrorInfo.from_content(self.message.content).to_exception()
        if status in ABORTED_STATUSES:
            raise KernelError("Aborted", f"{self.msg_type} was aborted by the kernel")
        return self


@attrs.frozen
class ExecuteResult:
    """Everything an ``execute_request`` produced.

    Attributes:
        status: the reply's status: ``"ok"``, ``"error"`` or ``"aborted"`` (the kernel skipped
            the request because an earlier one failed; some kernels spell it ``"abort"``, see
            :attr:`aborted`).
        execution_count: the execution counter, or ``None`` when the kernel did not say.
        outputs: the outputs as a notebook shows them: nbformat v4 output dicts with stream
            text merged, clears and display updates applied.
        reply: the ``execute_reply`` message.
        messages: every message received for the request, in arrival order (IOPub messages,
            stdin ``input_request`` messages and the reply).
        error: the error, from the reply (``status: "error"``) or else from the last ``error``
            output; ``None`` when the execution succeeded.
        iopub_dropped: how many of the request's IOPub messages never reached it: dropped
            by the channels because their IOPub buffer was full (the consumer was slower
            than the kernel), or rejected as malformed although authentic. When not 0,
            :attr:`outputs` and :attr:`messages` are incomplete (see :attr:`complete`,
            :meth:`raise_for_incomplete`).
        stdin_refused: how many of the execution's input prompts were answered with an
            empty line because no stdin handler was given (the code read ``""``).
    """

    status: str
    execution_count: int | None
    outputs: list[dict[str, Any]]
    reply: Message
    messages: tuple[Message, ...] = ()
    error: ErrorInfo | None = None
    iopub_dropped: int = 0
    stdin_refused: int = 0

    @classmethod
    def from_messages(cls, reply: Message, messages: Iterable[Message]) -> ExecuteResult:
        """Build a result from the reply and the messages of the request (arrival order).

        ``messages`` may or may not include ``reply``; IOPub messages among them are fed to an
        :class:`OutputAccumulator`.
        """
        msgs = tuple(messages)
        acc = OutputAccumulator()
        for msg in msgs:
            if msg.channel in ("iopub", None) and msg is not reply:
                acc.feed(msg)
        if not any(m is reply for m in msgs):
            msgs = (*msgs, reply)
        return cls.build(reply, acc, msgs)

    @classmethod
    def build(
        cls,
        reply: Message,
        acc: OutputAccumulator,
        messages: Sequence[Message],
        *,
        iopub_dropped: int = 0,
        stdin_refused: int = 0,
    ) -> ExecuteResult:
        """Build a result from the reply and an accumulator that saw the IOPub messages
        (``iopub_dropped``: how many others were dropped before reaching it;
        ``stdin_refused``: prompts answered with an empty line for want of a handler)."""
        content = reply.content
        status = content.get("status")
        status = status if isinstance(status, str) else ""
        count = content.get("execution_count")
        if not isinstance(count, int) or isinstance(count, bool):
            count = acc.execution_count
        error: ErrorInfo | None = None
        if status == "error":
            error = ErrorInfo.from_content(content)
            if not error.ename and acc.error is not None:
                error = acc.error
        return cls(
            status=status,
            execution_count=count,
            outputs=acc.outputs,
            reply=reply,
            messages=tuple(messages),
            error=error,
            iopub_dropped=iopub_dropped,
            stdin_refused=stdin_refused,
        )

    @property
    def ok(self) -> bool:
        """Whether the execution succeeded (``status == "ok"``)."""
        return self.status == "ok"

    @property
    def complete(self) -> bool:
        """Whether every IOPub message of the execution reached the result
        (:attr:`iopub_dropped` is 0). ``ok`` says nothing about this: check both, or call
        :meth:`raise_for_incomplete`."""
        return self.iopub_dropped == 0

    def raise_for_incomplete(self) -> ExecuteResult:
        """Return ``self`` when the outputs are complete, else raise.

        Raises:
            OutputsLost: some of the execution's IOPub messages were dropped
                (:attr:`iopub_dropped`).
        """
        if self.iopub_dropped:
            raise OutputsLost(self.iopub_dropped)
        return self

    @property
    def aborted(self) -> bool:
        """Whether the kernel skipped the execution (status ``"aborted"`` or ``"abort"``)."""
        return self.status in ABORTED_STATUSES

    @property
    def stdout(self) -> str:
        """All text written to stdout, as shown (merged, control characters applied)."""
        return stream_text(self.outputs, "stdout")

    @property
    def stderr(self) -> str:
        """All text written to stderr, as shown (merged, control characters applied)."""
        return stream_text(self.outputs, "stderr")

    @property
    def data(self) -> dict[str, Any] | None:
        """The mime bundle of the ``execute_result`` output (the value of the last
        expression), or ``None``."""
        for out in reversed(self.outputs):
            if out.get("output_type") == "execute_result":
                data = out.get("data")
                return data if isinstance(data, dict) else {}
        return None

    @property
    def payload(self) -> list[Any]:
        """The reply's ``payload`` list (deprecated by the protocol, still used by IPython's
        ``?`` help and ``%load``)."""
        value = self.reply.content.get("payload")
        return value if isinstance(value, list) else []

    @property
    def user_expressions(self) -> dict[str, Any]:
        """The reply's evaluated ``user_expressions``."""
        value = self.reply.content.get("user_expressions")
        return value if isinstance(value, dict) else {}

    def raise_for_error(self) -> ExecuteResult:
        """Return ``self`` when the execution succeeded, else raise.

        Raises:
            KernelError: the status is ``"error"`` (with the kernel's ename, evalue and
                traceback) or ``"aborted"``/``"abort"`` (ename ``"Aborted"``).
        """
        if self.status == "error":
            info = self.error or ErrorInfo("", "")
            raise info.to_exception()
        if self.aborted:
            raise KernelError(
                "Aborted", "the kernel aborted the execution because an earlier one failed"
            )
        return self


def _str(content: dict[str, Any], key: str) -> str:
    value = content.get(key)
    return value if isinstance(value, str) else ""


@attrs.frozen
class KernelInfo:
    """What a kernel says about itself in its ``kernel_info_reply``.

    Attributes:
        reply: the ``kernel_info_reply`` message (all fields are in ``reply.content``).
    """

    reply: Message

    @property
    def content(self) -> dict[str, Any]:
        """The reply's content dict."""
        return self.reply.content

    @property
    def protocol_version(self) -> str:
        """The messaging protocol version the kernel implements, e.g. ``"5.5"``."""
        return _str(self.reply.content, "protocol_version")

    @property
    def implementation(self) -> str:
        """The kernel implementation's name, e.g. ``"ipython"``."""
        return _str(self.reply.content, "implementation")

    @property
    def implementation_version(self) -> str:
        """The kernel implementation's version."""
        return _str(self.reply.content, "implementation_version")

    @property
    def banner(self) -> str:
        """The kernel's banner text."""
        return _str(self.reply.content, "banner")

    @property
    def language_info(self) -> dict[str, Any]:
        """The ``language_info`` dict (``name``, ``version``, ``mimetype``,
        ``file_extension``, ...)."""
        value = self.reply.content.get("language_info")
        return value if isinstance(value, dict) else {}

    @property
    def language(self) -> str:
        """The language's name (``language_info["name"]``), e.g. ``"python"``."""
        value = self.language_info.get("name")
        return value if isinstance(value, str) else ""

    @property
    def help_links(self) -> list[dict[str, Any]]:
        """The kernel's help links (dicts with ``text`` and ``url``)."""
        value = self.reply.content.get("help_links")
        return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []

    @property
    def supported_features(self) -> frozenset[str]:
        """Optional protocol features (protocol 5.5), e.g. ``"kernel subshells"``,
        ``"debugger"``. A kernel that predates the field and declares ``debugger: true``
        gets ``"debugger"`` here too."""
        value = self.reply.content.get("supported_features")
        features = {str(x) for x in value} if isinstance(value, list) else set()
        if self.reply.content.get("debugger") is True:
            features.add("debugger")
        return frozenset(features)

    @property
    def supports_subshells(self) -> bool:
        """Whether the kernel supports subshells (``"kernel subshells"`` feature)."""
        return "kernel subshells" in self.supported_features
