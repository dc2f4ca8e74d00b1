"""Turning a request's IOPub messages into notebook outputs (sans-I/O).

:class:`OutputAccumulator` is fed the IOPub messages that belong to one execution and keeps the
list of outputs a notebook would show for it, as nbformat v4 output dicts:

* ``stream`` text is merged into the previous output when that output is a stream of the same
  name, and terminal control characters are applied the way notebook frontends apply them:
  ``\\r`` returns to the start of the line (later text overwrites it, so progress bars
  collapse to their last state), ``\\r\\n`` is a newline, ``\\b`` deletes the character
  before it;
* ``display_data``, ``execute_result`` and ``error`` become one output each;
* ``clear_output`` clears the outputs, or with ``wait=True`` clears them just before the next
  output arrives (so a redraw does not flicker);
* ``update_display_data`` replaces the data and metadata of every earlier output that was
  displayed with the same ``transient.display_id``.

Nothing here does I/O: it imports neither trio nor zmq.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from .._errors import KernelError
from ._message import Message

__all__ = ["ErrorInfo", "OutputAccumulator", "stream_text"]

#: IOPub message types that add (or may add) an output and so trigger a pending clear.
_OUTPUT_TYPES = frozenset(("stream", "display_data", "execute_result", "error"))
_CONTROL_CHARS = re.compile("(\r\n|\r|\n|\x08)")


@attrs.frozen
class ErrorInfo:
    """An exception raised in the kernel.

    Attributes:
        ename: the exception's class name, e.g. ``"ZeroDivisionError"``.
        evalue: the exception's message.
        traceback: the traceback lines as the kernel formatted them (may contain ANSI
            colour codes).
    """

    ename: str
    evalue: str
    traceback: tuple[str, ...] = ()

    @classmethod
    def from_content(cls, content: Mapping[str, Any]) -> ErrorInfo:
        """Read ``ename``/``evalue``/``traceback`` from an ``error`` message or error reply.

        Missing or mistyped fields are replaced by ``""`` / ``()``; this never raises.
        """
        ename = content.get("ename")
        evalue = content.get("evalue")
        tb = content.get("traceback")
        return cls(
            ename=ename if isinstance(ename, str) else "",
            evalue=evalue if isinstance(evalue, str) else "",
            traceback=tuple(str(line) for line in tb) if isinstance(tb, list) else (),
        )

    def to_exception(self) -> KernelError:
        """A :class:`~trio_enchannel.KernelError` carrying this error."""
        return KernelError(self.ename, self.evalue, self.traceback)


class _StreamOutput:
    """A stream output under construction, applying ``\\r``, ``\\n`` and ``\\b``.

    The current line is kept as the chunks written to it: plain text (the common case) is
    appended without copying, so a 10 MB line costs 10 MB; only an overwrite after ``\\r``
    or a ``\\b`` joins the line first.
    """

    __slots__ = ("_cursor", "_done", "_done_text", "_line", "_line_len", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._done: list[str] = []  # finished lines, each ending in "\n"
        self._done_text: str | None = ""  # cache of "".join(_done)
        self._line: list[str] = []  # the current line, as chunks
        self._line_len = 0
        self._cursor = 0

    def _joined_line(self) -> str:
        line = self._line
        if len(line) > 1:
            line[:] = ["".join(line)]
        return line[0] if line else ""

    def write(self, text: str) -> None:
        if self._cursor == self._line_len and "\r" not in text and "\b" not in text:
            # Plain text at the end of the line: whole lines are kept without copying.
            end = text.rfind("\n") + 1
            if end:
                self._done.append(self._joined_line() + text[:end])
                self._done_text = None
                self._line = []
                self._line_len = 0
            if end < len(text):
                self._line.append(text[end:])
                self._line_len += len(text) - end
            self._cursor = self._line_len
            return
        cursor = self._cursor
        for piece in _CONTROL_CHARS.split(text):
            if not piece:
                continue
            if piece == "\n" or piece == "\r\n":
                self._done.append(self._joined_line() + "\n")
                self._done_text = None
                self._line = []
                self._line_len = 0
                cursor = 0
            elif piece == "\r":
                cursor = 0
            elif piece == "\b":
                if cursor > 0:
                    line = self._joined_line()
                    self._line = [line[: cursor - 1] + line[cursor:]]
                    self._line_len -= 1
                    cursor -= 1
            elif cursor == self._line_len:
                self._line.append(piece)
                self._line_len += len(piece)
                cursor = self._line_len
            else:
                line = self._joined_line()
                end = cursor + len(piece)
                line = line[:cursor] + piece + line[end:]
                self._line = [line]
                self._line_len = len(line)
                cursor = end
        self._cursor = cursor

    @property
    def text(self) -> str:
        if self._done_text is None:
            self._done_text = "".join(self._done)
            self._done = [self._done_text] if self._done_text else []
        return self._done_text + "".join(self._line)

    def to_output(self) -> dict[str, Any]:
        return {"output_type": "stream", "name": self.name, "text": self.text}


class OutputAccumulator:
    """Builds a notebook cell's outputs from the IOPub messages of one execution.

    Feed it every IOPub message whose parent is the execution's request, in arrival order
    (messages of other types, such as ``status`` or comm messages, are accepted and ignored).
    Read :attr:`outputs` at any time for the nbformat v4 output dicts so far.

    Example::

        acc = OutputAccumulator()
        for msg in iopub_messages_of_my_request:
            acc.feed(msg)
        cell["outputs"] = acc.outputs
    """

    def __init__(self) -> None:
        self._items: list[_StreamOutput | dict[str, Any]] = []
        self._display_ids: dict[str, list[int]] = {}
        self._clear_pending = False
        self.execution_count: int | None = None
        """The execution count announced by ``execute_input`` or ``execute_result``."""
        self.error: ErrorInfo | None = None
        """The last ``error`` output's details, or ``None``."""
        self.unmatched_updates = 0
        """``update_display_data`` messages whose display id matched no output here."""

    # -- feeding ------------------------------------------------------------------------

    def feed(self, msg: Message) -> bool:
        """Apply one IOPub message; return whether the outputs changed.

        Malformed content (a missing or mistyped field) never raises: the field is replaced
        by an empty value, so one bad message cannot lose the outputs gathered so far.
        """
        kind = msg.msg_type
        content = msg.content
        if kind in _OUTPUT_TYPES and self._clear_pending:
            self._clear_now()
        if kind == "stream":
            return self._stream(content)
        if kind == "display_data":
            return self._add_rich("display_data", content)
        if kind == "execute_result":
            count = content.get("execution_count")
            if isinstance(count, int) and not isinstance(count, bool):
                self.execution_count = count
            return self._add_rich("execute_result", content)
        if kind == "error":
            info = ErrorInfo.from_content(content)
            self.error = info
            self._items.append(
                {
                    "output_type": "error",
                    "ename": info.ename,
                    "evalue": info.evalue,
                    "traceback": list(info.traceback),
                }
            )
            return True
        if kind == "clear_output":
            if content.get("wait"):
                self._clear_pending = True
                return False
            had = bool(self._items)
            self._clear_now()
            return had
        if kind == "update_display_data":
            return self._update(content)
        if kind == "execute_input":
            count = content.get("execution_count")
            if isinstance(count, int) and not isinstance(count, bool):
                self.execution_count = count
        return False

    def feed_all(self, messages: Iterable[Message]) -> None:
        """Feed several messages in order."""
        for msg in messages:
            self.feed(msg)

    def _clear_now(self) -> None:
        self._items.clear()
        self._display_ids.clear()
        self._clear_pending = False

    def _stream(self, content: Mapping[str, Any]) -> bool:
        name = content.get("name")
        text = content.get("text")
        if not isinstance(name, str):
            name = "stdout"
        if not isinstance(text, str) or not text:
            return False
        last = self._items[-1] if self._items else None
        if isinstance(last, _StreamOutput) and last.name == name:
            last.write(text)
        else:
            out = _StreamOutput(name)
            out.write(text)
            self._items.append(out)
        return True

    def _add_rich(self, output_type: str, content: Mapping[str, Any]) -> bool:
        data = content.get("data")
        metadata = content.get("metadata")
        out: dict[str, Any] = {"output_type": output_type}
        if output_type == "execute_result":
            count = content.get("execution_count")
            out["execution_count"] = count if isinstance(count, int) else None
        out["data"] = dict(data) if isinstance(data, Mapping) else {}
        out["metadata"] = dict(metadata) if isinstance(metadata, Mapping) else {}
        display_id = _display_id(content)
        if display_id is not None:
            self._display_ids.setdefault(display_id, []).append(len(self._items))
        self._items.append(out)
        return True

    def _update(self, content: Mapping[str, Any]) -> bool:
        display_id = _display_id(content)
        indices = self._display_ids.get(display_id) if display_id is not None else None
        if not indices:
            self.unmatched_updates += 1
            return False
        data = content.get("data")
        metadata = content.get("metadata")
        for i in indices:
            old = self._items[i]
            assert isinstance(old, dict)
            new = dict(old)
            new["data"] = dict(data) if isinstance(data, Mapping) else {}
            new["metadata"] = dict(metadata) if isinstance(metadata, Mapping) else {}
            self._items[i] = new
        return True

    # -- reading ------------------------------------------------------------------------

    @property
    def outputs(self) -> list[dict[str, Any]]:
        """The outputs so far, as a new list of nbformat v4 output dicts."""
        return [
            item.to_output() if isinstance(item, _StreamOutput) else item for item in self._items
        ]

    @property
    def clear_pending(self) -> bool:
        """Whether a ``clear_output(wait=True)`` waits for the next output."""
        return self._clear_pending

    def stream_text(self, name: str = "stdout") -> str:
        """All text of the stream ``name`` currently shown, across its outputs."""
        return "".join(
            item.text
            for item in self._items
            if isinstance(item, _StreamOutput) and item.name == name
        )

    def __len__(self) -> int:
        return len(self._items)


def _display_id(content: Mapping[str, Any]) -> str | None:
    transient = content.get("transient")
    if isinstance(transient, Mapping):
        value = transient.get("display_id")
        if isinstance(value, str) and value:
            return value
    return None


def stream_text(outputs: Sequence[Mapping[str, Any]], name: str) -> str:
    return "".join(
        str(out.get("text", ""))
        for out in outputs
        if out.get("output_type") == "stream" and out.get("name") == name
    )
