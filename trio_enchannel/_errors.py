r"""The exceptions trio-enchannel raises.

Every error the library raises is an :class:`EnchannelError`. The split follows h11: a
:class:`LocalProtocolError` means *you* asked for something the protocol forbids and it was
refused before anything reached the wire; a :class:`RemoteProtocolError` means the *peer* sent
something invalid, and it was rejected (counted, never delivered as valid).

Resource errors (closed channel, broken connection, concurrent misuse) are trio's own:
:class:`trio.ClosedResourceError`, :class:`trio.BrokenResourceError`,
:class:`trio.BusyResourceError`, :class:`trio.EndOfChannel`. Where the library says more than
trio's error would, its error is both: :class:`~trio_enchannel.ConnectionLost` and
:class:`~trio_enchannel.PeerNotConnected` are :class:`trio.BrokenResourceError` too. Those two
live in ``_io/_errors.py``, because this module sits below every layer and imports neither trio
nor pyzmq.

Each error mixes in the standard category a caller may already catch (``ValueError`` for a bad
value, ``LookupError`` for a missing name, ``RuntimeError`` for a call the object's state does
not allow). A wrong *type* is a plain :class:`TypeError`, as everywhere in Python.
"""

from __future__ import annotations

import copyreg
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "CellExecutionError",
    "CellTimeoutError",
    "ConfigurationError",
    "ConnectionInfoError",
    "DuplicateSignature",
    "EnchannelError",
    "EncryptionUnavailable",
    "InvalidKernelSpec",
    "InvalidSignature",
    "KernelDied",
    "KernelError",
    "KernelStartupError",
    "LocalProtocolError",
    "MalformedMessage",
    "NoSuchKernel",
    "NotebookError",
    "NotebookKernelDied",
    "OutputPathError",
    "OutputsLost",
    "ParameterError",
    "RemoteAuthenticationError",
    "RemoteKernelNotFound",
    "RemoteProtocolError",
    "RemoteServerError",
    "SignatureMismatch",
    "UnsignedMessage",
    "UsageError",
]


class EnchannelError(Exception):
    """Base class of every error raised by trio-enchannel.

    Every one pickles and copies with its message and attributes intact (so it crosses
    process boundaries, as with :mod:`multiprocessing`), whatever its constructor's signature.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from ``args`` (the message) and the attributes without calling __init__,
        # whose parameters are not ``args`` (KernelDied(reason) formats its message).
        # copyreg.__newobj__(cls, *args) is cls.__new__(cls, *args), as pickle's own protocol 2.
        newobj = copyreg.__newobj__  # type: ignore[attr-defined]
        return (newobj, (type(self), *self.args), self.__dict__)


class LocalProtocolError(EnchannelError, ValueError):
    """The caller asked to send something the protocol forbids.

    Raised *before* anything is written to a socket: a message that fails validation never
    reaches the wire, not even partially.
    """


class RemoteProtocolError(EnchannelError):
    """The peer sent a message that is not valid.

    Attributes:
        reason: a short, stable, machine-readable code (for example ``"invalid_signature"``)
            under which the rejection is counted in channel statistics.
    """

    reason: str = "remote_protocol_error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class MalformedMessage(RemoteProtocolError):
    """The frames do not form a Jupyter message.

    ``reason`` is one of ``"missing_delimiter"``, ``"too_few_frames"``, ``"bad_utf8"``,
    ``"bad_json"``, ``"not_object"`` or ``"bad_header"``.

    Attributes:
        parent_id: the ``msg_id`` of the request the message answers, when it is known: the
            message was authentic (its signature verified, or nothing is signed) and its
            parent header readable; else ``None``. The channels count such a rejected IOPub
            message against that request (see :meth:`IOPubChannel.dropped_for
            <trio_enchannel.IOPubChannel.dropped_for>`).
    """

    reason = "malformed"
    parent_id: str | None = None


class UnsignedMessage(RemoteProtocolError):
    """A signing key is configured but the message carries an empty signature."""

    reason = "unsigned"


class InvalidSignature(RemoteProtocolError):
    """The message's HMAC signature does not match its content."""

    reason = "invalid_signature"


class DuplicateSignature(RemoteProtocolError):
    """A correctly signed message was received a second time (a replay)."""

    reason = "duplicate_signature"


class SignatureMismatch(RemoteProtocolError):
    """The answer to one of our own requests arrived but was rejected for its signature.

    Raised by the waiting request (instead of letting it wait for a reply that will never
    pass verification). Most likely the kernel signs with another key or another signature
    scheme than this client (check the connection file's ``key`` and ``signature_scheme``),
    or has no key at all; it can also be a forger who knows the request's ``msg_id``.

    Attributes:
        channel: the channel of the rejected message.
        rejected_reason: why it was rejected (``"invalid_signature"`` or ``"unsigned"``).
    """

    reason = "signature_mismatch"

    def __init__(self, channel: str, rejected_reason: str) -> None:
        if rejected_reason == "unsigned":
            cause = (
                "the kernel signs nothing (it has no key) while this client has one; "
                "check the connection file's key"
            )
        else:
            cause = (
                "the kernel most likely signs with another key or signature scheme than "
                "this client; check the connection file's key and signature_scheme"
            )
        super().__init__(
            f"the answer on {channel} to this request was rejected ({rejected_reason}): {cause}"
        )
        self.channel = channel
        self.rejected_reason = rejected_reason


#: The :attr:`ConnectionInfoError.reason` codes, defined once here for every layer.
REASON_INVALID = "invalid"
REASON_HANDSHAKE_FAILED = "handshake_failed"
REASON_KEY_MISSING = "key_missing"


class ConfigurationError(EnchannelError, ValueError):
    """A setting is invalid (for example an unknown signature scheme).

    Most are raised when the object is configured, before any I/O. Some settings can only be
    found wrong by talking to the kernel: a :class:`ConnectionInfoError` whose ``reason`` is
    ``"handshake_failed"`` or ``"key_missing"`` is raised later, once a failed ZeroMQ
    handshake or the kernel's first signed message has shown it.
    """


class ConnectionInfoError(ConfigurationError):
    """Connection information (a connection file or dict) is missing or invalid.

    The message names the offending field and, when known, the file it came from.

    Attributes:
        reason: a short, stable, machine-readable code: ``"invalid"`` (the default: a field
            is missing or invalid, or the connection file cannot be read or written),
            ``"handshake_failed"`` (a ZeroMQ handshake with the kernel failed for good:
            wrong ``curve_publickey``, encryption on one side only, not a ZeroMQ peer) or
            ``"key_missing"`` (the kernel signs its messages and this side has no key: the
            kernel drops every request sent unsigned).
    """

    reason: str = REASON_INVALID

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class UsageError(EnchannelError, RuntimeError):
    r"""The object cannot do this in its state or configuration: the feature was turned off
    when it was opened (``rejects`` without ``report_rejects=True``, a heartbeat wait with
    ``heartbeat=False``, the client of a kernel opened with ``connect=False``), or the call
    comes too early (the result of an execution that has not finished, a fake kernel that is
    not running).

    A programming error, which trio would report with a :class:`RuntimeError` (and a
    :class:`RuntimeError` too); the message says what to change.
    """


class KernelDied(EnchannelError):
    """The kernel is gone: its process exited, or it stopped answering heartbeats.

    Every request still waiting for a reply fails with this error as soon as the death is
    detected, instead of waiting for a timeout.

    Attributes:
        reason: human-readable cause (exit code, heartbeat miss, server status, ...).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"kernel died: {reason}")
        self.reason = reason


class KernelError(EnchannelError):
    """An execution finished with ``status: "error"`` and the caller asked for it to raise.

    Attributes:
        ename: the exception's class name in the kernel.
        evalue: the exception's message in the kernel.
        traceback: the kernel's traceback lines (may contain ANSI colour codes).
    """

    def __init__(self, ename: str, evalue: str, traceback: Sequence[str] = ()) -> None:
        super().__init__(f"{ename}: {evalue}")
        self.ename = ename
        self.evalue = evalue
        self.traceback = list(traceback)


class OutputsLost(EnchannelError):
    """Some of an execution's IOPub messages were dropped (the IOPub consumer was slower
    than the kernel and the buffer was full) or rejected as malformed, so its outputs are
    incomplete; raised by
    :meth:`ExecuteResult.raise_for_incomplete
    <trio_enchannel.ExecuteResult.raise_for_incomplete>` for callers who ask.

    Attributes:
        dropped: how many of the execution's IOPub messages were dropped.
    """

    def __init__(self, dropped: int) -> None:
        super().__init__(
            f"{dropped} IOPub message(s) of the execution were dropped or rejected: its "
            "outputs are incomplete (statistics() of the channels says why: 'dropped' when "
            "the IOPub consumer was slower than the kernel, see open_channels' "
            "iopub_buffer_size, iopub_buffer_bytes and iopub_overflow; 'rejected' when "
            "the kernel sent malformed messages)"
        )
        self.dropped = dropped


class NoSuchKernel(EnchannelError, LookupError):
    """No kernelspec has the requested name.

    Attributes:
        name: the name that was asked for.
        available: the names of the kernelspecs that do exist.
    """

    def __init__(self, name: str, available: Sequence[str]) -> None:
        listing = ", ".join(sorted(available)) or "(none installed)"
        super().__init__(f"no kernel named {name!r}; available kernels: {listing}")
        self.name = name
        self.available = sorted(available)

    def __str__(self) -> str:  # LookupError would otherwise quote the message
        return str(self.args[0])


class InvalidKernelSpec(EnchannelError, ValueError):
    """A ``kernel.json`` file (or a kernelspec dict) is unreadable or malformed.

    The message names the file and the offending field.

    Attributes:
        path: the ``kernel.json`` file, when the spec came from one.
    """

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


class KernelStartupError(EnchannelError):
    """The kernel process failed to start or did not become ready in time.

    Attributes:
        stderr_tail: the last lines the kernel wrote to its standard error, if captured.
    """

    def __init__(self, message: str, *, stderr_tail: str = "") -> None:
        full = message
        if stderr_tail:
            full += "\n--- kernel stderr (tail) ---\n" + stderr_tail
        super().__init__(full)
        self.stderr_tail = stderr_tail


class EncryptionUnavailable(EnchannelError):
    """CurveZMQ encryption was required but the kernel or libzmq cannot provide it."""


class NotebookError(EnchannelError):
    """Running a notebook stopped at a cell (base class of the notebook runner's errors).

    The notebook is not lost: :attr:`notebook` is the notebook as far as it ran (the failing
    cell's outputs included, later cells cleared), ready to be saved.

    Attributes:
        notebook: the partly executed ``nbformat.NotebookNode``.
        cell_index: the index in ``notebook.cells`` of the cell where execution stopped.
    """

    def __init__(self, message: str, *, notebook: Any, cell_index: int) -> None:
        super().__init__(message)
        self.notebook = notebook
        self.cell_index = cell_index


class CellExecutionError(NotebookError):
    """A notebook cell raised and errors were not allowed for it.

    Attributes:
        ename: the exception's class name in the kernel.
        evalue: the exception's message in the kernel.
        traceback: the kernel's traceback lines (may contain ANSI colour codes).
    """

    def __init__(
        self,
        ename: str,
        evalue: str,
        traceback: Sequence[str] = (),
        *,
        notebook: Any,
        cell_index: int,
    ) -> None:
        super().__init__(
            f"cell {cell_index} raised {ename}: {evalue}", notebook=notebook, cell_index=cell_index
        )
        self.ename = ename
        self.evalue = evalue
        self.traceback = list(traceback)


class CellTimeoutError(NotebookError):
    """A notebook cell did not finish within the per-cell timeout.

    Attributes:
        timeout: the timeout in seconds.
    """

    def __init__(self, timeout: float, *, notebook: Any, cell_index: int, detail: str = "") -> None:
        message = f"cell {cell_index} did not finish within {timeout:g} s"
        super().__init__(
            message + (f" ({detail})" if detail else ""), notebook=notebook, cell_index=cell_index
        )
        self.timeout = timeout


class NotebookKernelDied(NotebookError, KernelDied):
    """The kernel died while a notebook cell ran (a :class:`KernelDied` too).

    Attributes:
        reason: human-readable cause, as for :class:`KernelDied`.
    """

    def __init__(self, reason: str, *, notebook: Any, cell_index: int) -> None:
        NotebookError.__init__(
            self,
            f"kernel died in cell {cell_index}: {reason}",
            notebook=notebook,
            cell_index=cell_index,
        )
        self.reason = reason


class ParameterError(EnchannelError, ValueError):
    """A notebook parameter is malformed: a bad name, a value the kernel's language cannot
    hold, a parameters file that is missing or not valid YAML/JSON.

    Raised before any kernel starts.

    Attributes:
        name: the parameter at fault, or ``None`` when the fault is not one parameter's (an
            unreadable file, an unsupported language).
    """

    def __init__(self, message: str, *, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


class OutputPathError(EnchannelError, ValueError):
    """A notebook cannot be written where it was asked to be: the directory is missing or not
    writable, or the path names a directory.

    Raised by the check made before any kernel starts, so no run is wasted.

    Attributes:
        path: the path that was asked for.
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class RemoteServerError(EnchannelError):
    """A Jupyter Server or Enterprise Gateway refused or failed a request, or is unreachable.

    Attributes:
        status_code: the HTTP status, or ``None`` when the server could not be reached.
        method: the HTTP method (``"GET"``, ``"POST"``, ...; ``"WEBSOCKET"`` for the channels).
        url: the URL requested (never includes the token).
        server_message: the ``message`` (or body) the server sent back, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        method: str = "",
        url: str = "",
        server_message: str = "",
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.method = method
        self.url = url
        self.server_message = server_message


class RemoteAuthenticationError(RemoteServerError):
    """The server refused the request: HTTP 401 or 403.

    Usually a wrong or missing token (check the ``token`` argument against the server's
    ``IdentityProvider.token``, or Enterprise Gateway's ``EG_AUTH_TOKEN``); a 403 can also
    be the server's policy (Enterprise Gateway forbids listing kernels unless started with
    ``--EnterpriseGatewayApp.list_kernels=True``, and starting kernels for users it does not
    authorize). The message names the status, the URL and the server's reason.
    """


class RemoteKernelNotFound(RemoteServerError, LookupError):
    """The server has no kernel with the requested id (HTTP 404).

    Attributes:
        kernel_id: the id that was asked for.
    """

    def __init__(
        self,
        message: str,
        *,
        kernel_id: str,
        status_code: int | None = None,
        method: str = "",
        url: str = "",
        server_message: str = "",
    ) -> None:
        super().__init__(
            message,
            status_code=status_code,
            method=method,
            url=url,
            server_message=server_message,
        )
        self.kernel_id = kernel_id

    def __str__(self) -> str:  # LookupError would otherwise quote the message
        return str(self.args[0])
