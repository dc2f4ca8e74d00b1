"""What a fake kernel does: scripted execution steps and injectable faults.

Steps and faults are small frozen values (except :class:`Gate`, which synchronises a test with
a running execution). The fake kernel interprets them; nothing here does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs
import trio

from .._errors import ConfigurationError

__all__ = [
    "ClearOutput",
    "CommClose",
    "CommMsg",
    "CommOpen",
    "DelayReply",
    "DieMidRequest",
    "DisplayData",
    "DropReply",
    "DuplicateReply",
    "Error",
    "Fault",
    "FloodIopub",
    "ForgeSignature",
    "Gate",
    "Input",
    "Malformed",
    "Publish",
    "ReplaySignature",
    "ReplyAfterIdle",
    "Result",
    "Script",
    "Sleep",
    "Status",
    "Step",
    "StopHeartbeat",
    "Stream",
    "UpdateDisplayData",
]


def _dict(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value) if value is not None else {}


def _strings(value: Sequence[str]) -> tuple[str, ...]:
    return tuple(value)


def _buffers(value: Sequence[bytes]) -> tuple[bytes, ...]:
    return tuple(value)


# -- execution steps ------------------------------------------------------------------------


@attrs.frozen
class Stream:
    """Publish a ``stream`` message: ``text`` on ``stdout`` or ``stderr``."""

    name: Literal["stdout", "stderr"]
    text: str


@attrs.frozen
class DisplayData:
    """Publish ``display_data`` with a mime bundle (and ``transient.display_id`` if given)."""

    data: Mapping[str, Any] = attrs.field(converter=_dict)
    metadata: Mapping[str, Any] = attrs.field(factory=dict, converter=_dict)
    display_id: str | None = None


@attrs.frozen
class UpdateDisplayData:
    """Publish ``update_display_data`` for the display ``display_id``."""

    data: Mapping[str, Any] = attrs.field(converter=_dict)
    display_id: str
    metadata: Mapping[str, Any] = attrs.field(factory=dict, converter=_dict)


@attrs.frozen
class Result:
    """Publish ``execute_result`` (with the execution's count) carrying a mime bundle.

    Not published for ``silent`` executions, as in real kernels.
    """

    data: Mapping[str, Any] = attrs.field(converter=_dict)
    metadata: Mapping[str, Any] = attrs.field(factory=dict, converter=_dict)


@attrs.frozen
class Error:
    """Publish an ``error`` output; the ``execute_reply`` then has status ``"error"``.

    Later steps still run (a script may show what happens after an error).
    """

    ename: str
    evalue: str
    traceback: Sequence[str] = attrs.field(default=(), converter=_strings)


@attrs.frozen
class Input:
    """Ask the client for input on stdin and wait for its ``input_reply``.

    The value received is recorded in :attr:`FakeKernel.input_values
    <trio_enchannel.testing.FakeKernel.input_values>`; with ``echo`` it is also published as
    a ``stdout`` stream (followed by a newline). When the request does not allow stdin, an
    ``error`` output (``StdinNotImplementedError``) is produced instead, as ipykernel does.
    """

    prompt: str = ""
    password: bool = False
    echo: bool = False


@attrs.frozen
class ClearOutput:
    """Publish ``clear_output`` (``wait``: clear when the next output arrives)."""

    wait: bool = False


@attrs.frozen
class CommOpen:
    """Open a comm from the kernel side (``comm_open`` on IOPub)."""

    comm_id: str
    target_name: str
    data: Mapping[str, Any] = attrs.field(factory=dict, converter=_dict)
    metadata: Mapping[str, Any] = attrs.field(factory=dict, converter=_dict)


@attrs.frozen
class CommMsg:
    """Send a ``comm_msg`` to the frontend (on IOPub), optionally with binary buffers."""

    comm_id: str
    data: Mapping[str, Any] = attrs.field(factory=dict, converter=_dict)
    metadata: Mapping[str, Any] = attrs.field(factory=dict, converter=_dict)
    buffers: Sequence[bytes] = attrs.field(default=(), converter=_buffers)


@attrs.frozen
class CommClose:
    """Close a comm from the kernel side (``comm_close`` on IOPub)."""

    comm_id: str
    data: Mapping[str, Any] = attrs.field(factory=dict, converter=_dict)


@attrs.frozen
class Status:
    """Publish an extra ``status`` message (busy and idle are published automatically)."""

    state: Literal["busy", "idle", "starting"]


@attrs.frozen
class Publish:
    """Publish any IOPub message, with the execution's request as parent (if ``parent``)."""

    msg_type: str
    content: Mapping[str, Any] = attrs.field(factory=dict, converter=_dict)
    metadata: Mapping[str, Any] = attrs.field(factory=dict, converter=_dict)
    buffers: Sequence[bytes] = attrs.field(default=(), converter=_buffers)
    parent: bool = True


@attrs.frozen
class Sleep:
    """Pause the execution (a Trio sleep: works with ``autojump_clock``)."""

    seconds: float


@attrs.define(eq=False)
class Gate:
    """A point where a scripted execution stops until the test opens it.

    Put the gate in a script, wait until the execution reaches it, do something while the
    kernel is "busy" (interrupt it, cancel the client, send another request), then open it::

        gate = Gate()
        fake_kernel.script("long()", Stream("stdout", "started\\n"), gate)
        ...
        await gate.wait_reached()
        gate.open()

    A gate can be passed (reached and opened) once; scripts that run several times need a
    fresh gate each time.

    Attributes:
        timeout: the deadline of :meth:`wait_reached` in seconds.
    """

    timeout: float = 10.0
    _reached: trio.Event = attrs.field(init=False, factory=trio.Event, repr=False)
    _opened: trio.Event = attrs.field(init=False, factory=trio.Event, repr=False)

    @property
    def reached(self) -> bool:
        """Whether an execution has reached the gate."""
        return self._reached.is_set()

    @property
    def is_open(self) -> bool:
        """Whether :meth:`open` was called."""
        return self._opened.is_set()

    async def wait_reached(self) -> None:
        """Wait until an execution reaches the gate.

        Raises:
            trio.TooSlowError: not reached within :attr:`timeout` seconds.
        """
        with trio.fail_after(self.timeout):
            await self._reached.wait()

    def open(self) -> None:
        """Let the execution go on (idempotent)."""
        self._opened.set()

    async def _pass(self) -> None:
        self._reached.set()
        await self._opened.wait()


#: One step of a scripted execution.
Step = (
    Stream
    | DisplayData
    | UpdateDisplayData
    | Result
    | Error
    | Input
    | ClearOutput
    | CommOpen
    | CommMsg
    | CommClose
    | Status
    | Publish
    | Sleep
    | Gate
)


def _steps(value: Sequence[Step]) -> tuple[Step, ...]:
    return tuple(value)


@attrs.frozen
class Script:
    """The script of one execution: its steps and how the reply looks.

    Attributes:
        steps: run in order between ``busy`` (and ``execute_input``) and the reply.
        status: the reply's status; ``None`` means ``"error"`` if a step is an
            :class:`Error`, else ``"ok"``.
        reply: extra keys merged into the ``execute_reply`` content (``payload``,
            ``user_expressions``, ...).
    """

    steps: tuple[Step, ...] = attrs.field(default=(), converter=_steps)
    status: Literal["ok", "error", "aborted", "abort"] | None = None
    reply: Mapping[str, Any] = attrs.field(factory=dict, converter=_dict)


# -- faults -----------------------------------------------------------------------------------


def _non_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (value >= 0 and math.isfinite(value)):
        raise ConfigurationError(f"{attribute.name} must be a finite number >= 0, got {value!r}")


@attrs.frozen
class DelayReply:
    """Hold the reply back for ``seconds`` (outputs are published on time)."""

    seconds: float = attrs.field(validator=_non_negative)


@attrs.frozen
class DropReply:
    """Never send the reply (outputs and ``idle`` are still published)."""


@attrs.frozen
class DuplicateReply:
    """Send the reply twice: two distinct, validly signed replies to the same request."""


@attrs.frozen
class ReplyAfterIdle:
    """Publish ``status: idle`` before sending the reply (both orders are legal)."""


@attrs.frozen
class Malformed:
    """Send a malformed message to the client, before the reply (or instead of it).

    Args:
        reason: which malformation, named like the client's rejection reasons:
            ``"missing_delimiter"``, ``"too_few_frames"``, ``"bad_json"``, ``"not_object"``,
            ``"bad_utf8"`` or ``"bad_header"``. The damaged JSON parts are signed correctly,
            so only the malformation itself is wrong. ``"bad_utf8"`` puts bytes that are not
            UTF-8 outside any JSON string: a client repairs invalid UTF-8 (U+FFFD, as
            jupyter_client does) and then rejects what is left as ``"bad_json"``.
        frames: send exactly these frames instead (after the client's routing identities, or
            after the topic on IOPub); ``reason`` is then only a label.
        on: ``"reply"``: on the reply's channel to the client that asked; ``"iopub"``: on
            IOPub, before the request's first output.
        replace: send it instead of the reply (or of the output) rather than before it.
    """

    reason: Literal[
        "missing_delimiter", "too_few_frames", "bad_json", "not_object", "bad_utf8", "bad_header"
    ] = "bad_json"
    frames: Sequence[bytes] | None = attrs.field(
        default=None, converter=attrs.converters.optional(_buffers)
    )
    on: Literal["reply", "iopub"] = "reply"
    replace: bool = False


@attrs.frozen
class ForgeSignature:
    """Send the reply (or the request's first output) with a signature that does not verify.

    Args:
        unsigned: send an empty signature instead of a wrong one.
        on: ``"reply"`` or ``"iopub"`` (the request's first output after ``execute_input``).
    """

    unsigned: bool = False
    on: Literal["reply", "iopub"] = "reply"


@attrs.frozen
class ReplaySignature:
    """Send the reply (or the request's first output) a second time, byte for byte.

    A replay carries a signature the client has already accepted; it must be rejected as a
    duplicate.

    Args:
        on: ``"reply"`` or ``"iopub"``.
    """

    on: Literal["reply", "iopub"] = "reply"


@attrs.frozen
class FloodIopub:
    """Publish ``count`` ``stream`` outputs for the request before running its script."""

    count: int = attrs.field(validator=attrs.validators.ge(0))
    text: str = "flood\n"


@attrs.frozen
class StopHeartbeat:
    """Stop echoing heartbeats when the request arrives (and keep silent until resumed)."""


@attrs.frozen
class DieMidRequest:
    """Die while handling the request: after ``busy`` and ``after_steps`` script steps.

    All sockets close at once (linger 0); the kernel answers nothing ever again.
    """

    after_steps: int = attrs.field(default=0, validator=attrs.validators.ge(0))


#: A fault the fake kernel can inject into its handling of a request.
Fault = (
    DelayReply
    | DropReply
    | DuplicateReply
    | ReplyAfterIdle
    | Malformed
    | ForgeSignature
    | ReplaySignature
    | FloodIopub
    | StopHeartbeat
    | DieMidRequest
)
