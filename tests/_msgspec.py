"""Validation of received messages against jupyter_kernel_test's message schemas.

``jupyter_kernel_test.msgspec_v5.validate_message`` checks the message structure and, for the
message types it knows, the content. Protocol 5.5 types it does not know yet (subshells,
``iopub_welcome``, comms, debug) get the same treatment from the fragments below, written in
the same JSON-schema style from the protocol documentation.
"""

from __future__ import annotations

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
    "list_subshell_reply": {
        "properties": {
            "status": {"enum": ["ok", "error"]},
            "subshell_id": {"type": "array", "items": _STRING},
        },
        "required": ["status"],
    },
}


def _extra_validator(msg_type: str) -> Draft4Validator:
    schema: dict[str, Any] = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "additionalProperties": True,
        **_EXTRA_FRAGMENTS[msg_type],
    }
    return Draft4Validator(schema)


def validate(msg: Message) -> None:
    """Validate one received message.

    Raises:
        jsonschema.ValidationError: the message does not follow the protocol.
    """
    as_dict = {
        "header": msg.header.to_dict(),
        "parent_header": msg.parent_header,
        "metadata": msg.metadata,
        "content": msg.content,
        "buffers": list(msg.buffers),
    }
    if msg.msg_type.endswith("_reply") and msg.content.get("status") == "aborted":
        # The protocol's status of a request skipped after an earlier error is "aborted"
        # (ipykernel sends it); msgspec_v5 only knows the older spelling "abort".
        msgspec_v5.msg_structure_validator.validate(as_dict)
        return
    if msg.msg_type in msgspec_v5.schema_fragments and msg.msg_type not in _EXTRA_FRAGMENTS:
        msgspec_v5.validate_message(as_dict)
        return
    msgspec_v5.msg_structure_validator.validate(as_dict)
    if msg.msg_type not in _EXTRA_FRAGMENTS:
        raise ValidationError(f"no schema for message type {msg.msg_type!r}")
    _extra_validator(msg.msg_type).validate(msg.content)


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
