"""Validation of received messages against jupyter_kernel_test's message schemas.

``jupyter_kernel_test.msgspec_v5.validate_message`` checks the message structure and, for the
message types it knows, the content. Protocol 5.5 types it does not know yet (subshells,
``iopub_welcome``, comms, debug) get the same treatment from the fragments below, written in
the same JSON-schema style from the protocol documentation.

:class:`ReceivedMessages` is what the autouse ``received_messages`` fixture (conftest.py) feeds
every message a real-kernel test decodes. Deviations of upstream kernels are listed in
:data:`DEVIATIONS` (or handled where named below), each as narrow as possible and documented
in docs/reliability.rst ("Real kernels and their deviations").
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Any

import attrs
import trio
from jsonschema import Draft4Validator, ValidationError  # type: ignore[import-untyped]
from jupyter_kernel_test import msgspec_v5

from trio_enchannel import Message, Session

_OBJECT = {"type": "object"}
_STRING = {"type": "string"}

_EXTRA_FRAGMENTS: dict[str, dict[str, Any]] = {
    "iopub_welcome": {"properties": {"subscription": _STRING}},
    # msgspec_v5 types ``password`` as a number; the protocol (and every kernel) says boolean.
    "input_request": {
        "properties": {"prompt": _STRING, "password": {"type": ["boolean", "number"]}},
        "required": ["prompt", "password"],
    },
    "comm_open": {
        "properties": {"comm_id": _STRING, "target_name": _STRING, "data": _OBJECT},
        "required": ["comm_id", "target_name", "data"],
    },
    "comm_msg": {"properties": {"comm_id": _STRING, "data": _OBJECT}, "required": ["comm_id"]},
    "comm_close": {"properties": {"comm_id": _STRING, "data": _OBJECT}, "required": ["comm_id"]},
    "debug_reply": {"properties": {}, "required": []},
    "debug_event": {"properties": {}, "required": []},
    "create_subshell_reply": {
        "properties": {"status": {"enum": ["ok", "error"]}, "subshell_id": _STRING},
        "required": ["status"],
    },
    "delete_subshell_reply": {
        "properties": {"status": {"enum": ["ok", "error"]}},
        "required": ["status"],
    },
    # Requests: the in-process kernel side of some tests receives them.
    "create_subshell_request": {"properties": {}, "required": []},
    "delete_subshell_request": {
        "properties": {"subshell_id": _STRING},
        "required": ["subshell_id"],
    },
    "list_subshell_request": {"properties": {}, "required": []},
    "debug_request": {"properties": {}, "required": []},
    "usage_request": {"properties": {}, "required": []},
    # ipykernel's resource usage (jupyter-resource-usage's request on control): hostname and
    # pid always, the figures when psutil is installed.
    "usage_reply": {
        "properties": {
            "hostname": _STRING,
            "pid": {"type": "integer"},
            "kernel_cpu": {"type": "number"},
            "kernel_memory": {"type": "number"},
            "host_cpu_percent": {"type": "number"},
            "cpu_count": {"type": ["integer", "null"]},
            "host_virtual_memory": _OBJECT,
        },
        "required": ["hostname", "pid"],
    },
    "list_subshell_reply": {
        "properties": {
            "status": {"enum": ["ok", "error"]},
            "subshell_id": {"type": "array", "items": _STRING},
        },
        "required": ["status"],
    },
}


#: Documented upstream deviations, each as narrow as possible: a message type that is not in
#: the protocol but whose content is exactly that of a protocol type is validated as that type.
#: Every entry names the kernel and what it does (docs/testing.rst lists them too).
DEVIATIONS: dict[str, tuple[str, str]] = {
    # xeus-python 0.19 publishes the IOPub copy of its shutdown_reply (which ipykernel sends
    # as "shutdown_reply") under the type "shutdown".
    "shutdown": ("shutdown_reply", "xeus-python: IOPub copy of shutdown_reply typed 'shutdown'"),
}


_ABORTED = Draft4Validator(
    {
        "type": "object",
        "properties": {"status": {"enum": ["abort", "aborted"]}},
        "required": ["status"],
    }
)


@functools.cache
def _extra_validator(msg_type: str) -> Draft4Validator:
    schema: dict[str, Any] = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "additionalProperties": True,
        **_EXTRA_FRAGMENTS[msg_type],
    }
    return Draft4Validator(schema)


def as_dict(msg: Message) -> dict[str, Any]:
    """``msg`` in the shape of jupyter_client's message dicts (what the schemas describe)."""
    return {
        "header": msg.header.to_dict(),
        "parent_header": msg.parent_header,
        "metadata": msg.metadata,
        "content": msg.content,
        "buffers": list(msg.buffers),
    }


def validate(msg: Message) -> None:
    """Validate one received message.

    Raises:
        jsonschema.ValidationError: the message does not follow the protocol.
    """
    validate_dict(as_dict(msg))


#: Jupyter Server tells websocket clients of a kernel restart, and of a kernel that could not
#: be restarted, with IOPub ``status`` messages it makes up itself ("restarting", "dead");
#: accepted only on messages that came through a Jupyter Server.
SERVER_STATES = ("restarting", "dead")

_SERVER_STATUS = Draft4Validator(
    {
        "type": "object",
        "properties": {"execution_state": {"enum": list(SERVER_STATES)}},
        "required": ["execution_state"],
        "additionalProperties": False,
    }
)


def validate_dict(message: dict[str, Any], *, via_server: bool = False) -> None:
    """Validate one message given as jupyter_client's dict (header, parent_header, metadata,
    content, buffers); ``via_server``: it came through a Jupyter Server's websocket.

    Raises:
        jsonschema.ValidationError: the message does not follow the protocol.
    """
    message = {
        key: message[key]
        for key in ("header", "parent_header", "metadata", "content", "buffers")
        if key in message
    }
    msgspec_v5.msg_structure_validator.validate(message)
    msg_type = message["header"]["msg_type"]
    content = message["content"]
    if msg_type in DEVIATIONS:
        msg_type = DEVIATIONS[msg_type][0]
        message = {**message, "header": {**message["header"], "msg_type": msg_type}}
    if via_server and msg_type == "status" and content.get("execution_state") in SERVER_STATES:
        _SERVER_STATUS.validate(content)
        return
    if msg_type.endswith("_reply") and content.get("status") in ("abort", "aborted"):
        # A request skipped after an earlier error (or interrupted, bash_kernel) is answered
        # with status "aborted" (ipykernel) or the older "abort" (bash_kernel), and no other
        # required field. msgspec_v5 knows only "abort", and its schema for it is a copy of the
        # error reply's (status "error", ename, evalue, traceback): check the status alone.
        _ABORTED.validate(content)
        return
    if msg_type in msgspec_v5.schema_fragments and msg_type not in _EXTRA_FRAGMENTS:
        _validate_known(message, msg_type)
        return
    if msg_type not in _EXTRA_FRAGMENTS:
        raise ValidationError(f"no schema for message type {msg_type!r}")
    _extra_validator(msg_type).validate(content)


def _validate_known(message: dict[str, Any], msg_type: str) -> None:
    """``msgspec_v5.validate_message`` with its validators built once, not per message (it
    compiles a fresh schema for every call: half a millisecond a message, too slow for the
    100,000-message floods of the reliability tests)."""
    match = re.match(r"(\d+)\.(\d+)", message["header"]["version"])
    if not match:
        raise ValidationError(f"version {message['header']['version']!r} is not like 'x.y'")
    minor = int(match.group(2))
    if minor <= msgspec_v5.protocol_version[1]:
        unexpected = set(message["header"]) - set(msgspec_v5.header_part["properties"])
        if unexpected:
            raise ValidationError(f"unexpected keys in header: {unexpected}")
    status = None
    if msg_type in msgspec_v5.reply_msgs_using_status:
        status = message["content"].get("status")
        if status not in ("ok", "error"):
            raise ValidationError(f"status {status!r} should be ok/error/abort")
    _known_validator(msg_type, minor, status).validate(message["content"])


@functools.cache
def _known_validator(msg_type: str, minor: int, status: str | None) -> Draft4Validator:
    if status == "error":
        return msgspec_v5.get_error_reply_validator(minor)
    return msgspec_v5.get_msg_content_validator(msg_type, minor)


@attrs.define(eq=False)
class ReceivedMessages:
    """Every message decoded while a test runs (by trio-enchannel or by jupyter_client, on
    any thread), validated as it arrives: problems are collected, never raised into the code
    that decoded the message.

    jsonschema takes about 0.3 ms a message, so floods are sampled: after the first ``full``
    messages of a type, one in ``sample`` is validated (the others are counted in
    :attr:`sampled_out`). ``full=None`` validates everything."""

    full: int | None = None
    sample: int = 1
    problems: list[str] = attrs.field(factory=list)
    validated: dict[str, int] = attrs.field(factory=dict)
    sampled_out: dict[str, int] = attrs.field(factory=dict)
    _seen: dict[str, int] = attrs.field(factory=dict)
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def _wanted(self, msg_type: str) -> bool:
        with self._lock:
            seen = self._seen[msg_type] = self._seen.get(msg_type, 0) + 1
            if self.full is None or seen <= self.full or seen % self.sample == 0:
                return True
            self.sampled_out[msg_type] = self.sampled_out.get(msg_type, 0) + 1
            return False

    def check(self, message: Message | dict[str, Any], *, via_server: bool = False) -> None:
        """Validate ``message``; ``via_server``: it came through a Jupyter Server."""
        if isinstance(message, Message):
            if not self._wanted(message.msg_type):
                return
            where: str = message.channel or "?"
            message = as_dict(message)
        else:
            where = "jupyter_client"
            header = message.get("header")
            kind = header.get("msg_type", "?") if isinstance(header, dict) else "?"
            if not self._wanted(kind):
                return
        header = message.get("header")
        msg_type = header.get("msg_type", "?") if isinstance(header, dict) else "?"
        if not isinstance(message.get("content"), dict):
            return  # jupyter_client asked not to decode the content
        problem: str | None = None
        try:
            validate_dict(message, via_server=via_server)
        except ValidationError as exc:
            problem = f"{where} {msg_type}: {exc.message}\n{message.get('content')!r}"[:2000]
        with self._lock:
            self.validated[msg_type] = self.validated.get(msg_type, 0) + 1
            if problem is not None:
                self.problems.append(problem)


class _ValidatingReceiver(trio.abc.Channel[Message]):
    def __init__(self, inner: Any, owner: ValidatingChannels) -> None:
        self._inner = inner
        self._owner = owner

    async def send(self, value: Message) -> None:
        await self._inner.send(value)

    async def receive(self) -> Message:
        msg: Message = await self._inner.receive()
        self._owner.check(msg)
        return msg

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __getattr__(self, name: str) -> Any:
        # dropped_for, statistics, ...: those of the wrapped channel.
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._inner, name)


@attrs.define(eq=False)
class ValidatingChannels:
    """Wraps a Channels: every received message is validated (failures are collected in
    :attr:`problems`, the message is still delivered) and counted by type."""

    inner: Any
    problems: list[str] = attrs.field(factory=list)
    validated: dict[str, int] = attrs.field(factory=dict)
    shell: _ValidatingReceiver = attrs.field(init=False)
    control: _ValidatingReceiver = attrs.field(init=False)
    stdin: _ValidatingReceiver = attrs.field(init=False)
    iopub: _ValidatingReceiver = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.shell = _ValidatingReceiver(self.inner.shell, self)
        self.control = _ValidatingReceiver(self.inner.control, self)
        self.stdin = _ValidatingReceiver(self.inner.stdin, self)
        self.iopub = _ValidatingReceiver(self.inner.iopub, self)

    @property
    def session(self) -> Session:
        session: Session = self.inner.session
        return session

    def __getattr__(self, name: str) -> Any:
        # heartbeat, wait_unresponsive, statistics, ...: those of the wrapped channels.
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def check(self, msg: Message) -> None:
        self.validated[msg.msg_type] = self.validated.get(msg.msg_type, 0) + 1
        try:
            validate(msg)
        except ValidationError as exc:
            self.problems.append(f"{msg.channel} {msg.msg_type}: {exc.message}\n{msg.content!r}")

    def assert_valid(self) -> None:
        """Fail if any received message was invalid (or nothing was validated at all)."""
        assert self.validated, "no message was received"
        assert not self.problems, "invalid messages:\n" + "\n".join(self.problems)
