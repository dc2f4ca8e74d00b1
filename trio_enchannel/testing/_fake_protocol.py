"""The fake kernel's protocol details: answers to requests, fault frames, error contents."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .._wire._message import Message
from .._wire._session import DELIMITER, Session
from ._script import Error, Fault, ForgeSignature, Malformed

__all__ = ["DEFAULT_KERNEL_INFO"]

#: The ``kernel_info_reply`` content of a fake kernel (override keys with ``kernel_info=``).
DEFAULT_KERNEL_INFO: Mapping[str, Any] = {
    "status": "ok",
    "protocol_version": "5.5",
    "implementation": "trio-enchannel-fake",
    "implementation_version": "1.0",
    "language_info": {
        "name": "fake",
        "version": "1.0",
        "mimetype": "text/plain",
        "file_extension": ".txt",
    },
    "banner": "trio-enchannel fake kernel",
    "help_links": [],
    "debugger": False,
    "supported_features": ["kernel subshells"],
}

_TOKEN = re.compile(r"[\w.]*$")
_TOKEN_START = re.compile(r"[\w.]*")


@attrs.define(eq=False)
class RequestRun:
    """The faults that apply to one request, consumed as the request is handled."""

    request: Message
    faults: list[Fault]

    def take(self, kind: type[Any], on: str | None = None) -> list[Any]:
        taken = [
            f
            for f in self.faults
            if isinstance(f, kind) and (on is None or getattr(f, "on", None) == on)
        ]
        for fault in taken:
            self.faults.remove(fault)
        return taken

    def has(self, kind: type[Any]) -> bool:
        return any(isinstance(f, kind) for f in self.faults)


def frames_of(session: Session, msg: Message, identities: Sequence[bytes]) -> list[bytes]:
    """The wire frames of ``msg`` as bytes."""
    return [bytes(f) for f in session.serialize(msg, identities)]


def malformed_frames(
    session: Session, fault: Malformed, msg: Message, identities: Sequence[bytes]
) -> list[bytes]:
    if fault.frames is not None:
        return [*identities, *fault.frames]
    frames = frames_of(session, msg, identities)
    at = len(identities)
    if fault.reason == "missing_delimiter":
        return frames[:at] + frames[at + 1 :]
    if fault.reason == "too_few_frames":
        return frames[: at + 3]
    h, p, m, c = frames[at + 2 : at + 6]
    if fault.reason == "bad_json":
        c = b'{"status": "ok",'
    elif fault.reason == "not_object":
        c = b'["status", "ok"]'
    elif fault.reason == "bad_utf8":
        # Outside a string: invalid UTF-8 inside one is repaired (U+FFFD), not rejected.
        c = b'{"text": \xff\xfe}'
    else:  # bad_header
        h = b'{"msg_type": "' + msg.msg_type.encode() + b'"}'
    return [*identities, DELIMITER, session.sign((h, p, m, c)), h, p, m, c]


def forged_frames(
    session: Session, fault: ForgeSignature, msg: Message, identities: Sequence[bytes]
) -> list[bytes]:
    frames = frames_of(session, msg, identities)
    at = len(identities)
    if fault.unsigned:
        frames[at + 1] = b""
    else:
        forger = Session(b"not-the-key-" + session.key, session_id="forger")
        frames[at + 1] = forger.sign(frames[at + 2 : at + 6])
    return frames


def complete_reply(completions: Sequence[str], content: Mapping[str, Any]) -> dict[str, Any]:
    code = str(content.get("code", ""))
    cursor = content.get("cursor_pos")
    cursor = len(code) if not isinstance(cursor, int) else max(0, min(cursor, len(code)))
    match = _TOKEN.search(code[:cursor])
    token = match.group(0) if match else ""
    matches = sorted({w for w in completions if w.startswith(token)})
    return {
        "status": "ok",
        "matches": matches,
        "cursor_start": cursor - len(token),
        "cursor_end": cursor,
        "metadata": {},
    }


def inspect_reply(
    inspections: Mapping[str, Mapping[str, Any]], content: Mapping[str, Any]
) -> dict[str, Any]:
    code = str(content.get("code", ""))
    cursor = content.get("cursor_pos")
    cursor = len(code) if not isinstance(cursor, int) else max(0, min(cursor, len(code)))
    before = _TOKEN.search(code[:cursor])
    after = _TOKEN_START.match(code[cursor:])
    token = (before.group(0) if before else "") + (after.group(0) if after else "")
    data = inspections.get(token)
    return {
        "status": "ok",
        "found": data is not None,
        "data": dict(data) if data is not None else {},
        "metadata": {},
    }


def is_complete_reply(content: Mapping[str, Any]) -> dict[str, Any]:
    code = str(content.get("code", ""))
    stripped = code.rstrip()
    if stripped.endswith((":", "\\")) or code.count("(") > code.count(")"):
        return {"status": "incomplete", "indent": "    " if stripped.endswith(":") else ""}
    if code.count(")") > code.count("("):
        return {"status": "invalid"}
    return {"status": "complete"}


def history_reply(history: Sequence[tuple[str, str]], content: Mapping[str, Any]) -> dict[str, Any]:
    output = bool(content.get("output", False))
    entries = [
        (1, line, (code, out) if output else code)
        for line, (code, out) in enumerate(history, start=1)
    ]
    access = content.get("hist_access_type", "tail")
    if access == "tail":
        n = content.get("n")
        if isinstance(n, int) and n >= 0:
            entries = entries[-n:] if n else []
    elif access == "range":
        start = content.get("start", 0)
        stop = content.get("stop")
        entries = [
            e
            for e in entries
            if (not isinstance(start, int) or e[1] >= start)
            and (not isinstance(stop, int) or e[1] < stop)
        ]
    elif access == "search":
        pattern = str(content.get("pattern", "*"))
        regex = re.compile(re.escape(pattern).replace(r"\*", ".*").replace(r"\?", "."))
        entries = [e for e in entries if regex.fullmatch(history[e[1] - 1][0])]
    return {"status": "ok", "history": [list(e) for e in entries]}


def error_args(error: Error) -> tuple[str, str, Sequence[str]]:
    return error.ename, error.evalue, error.traceback


def error_output(error: Error) -> dict[str, Any]:
    return {"ename": error.ename, "evalue": error.evalue, "traceback": list(error.traceback)}


def error_content(ename: str, evalue: str, traceback: Sequence[str] = ()) -> dict[str, Any]:
    return {"status": "error", "ename": ename, "evalue": evalue, "traceback": list(traceback)}
