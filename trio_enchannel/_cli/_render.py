"""Showing a kernel's outputs in a terminal (for the ``trio-enchannel`` command).

Streams are written as they arrive; values and displays print their ``text/plain`` form; rich
data (images, HTML, SVG, PDF, ...) is saved to files and a note says where; tracebacks keep
their colours only on a colour terminal.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from .._wire._message import Message

__all__ = ["MIME_EXTENSIONS", "Renderer", "color_wanted", "make_renderer", "strip_ansi"]

#: Where rich outputs are saved when ``--output-dir`` is not given.
DEFAULT_OUTPUT_DIR = Path("trio-enchannel-outputs")

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")

#: Rich MIME types saved to files: the file extension, and whether the data is base64.
MIME_EXTENSIONS: dict[str, tuple[str, bool]] = {
    "image/png": (".png", True),
    "image/jpeg": (".jpg", True),
    "image/gif": (".gif", True),
    "image/webp": (".webp", True),
    "image/bmp": (".bmp", True),
    "application/pdf": (".pdf", True),
    "image/svg+xml": (".svg", False),
    "text/html": (".html", False),
    "text/markdown": (".md", False),
    "text/latex": (".tex", False),
    "application/javascript": (".js", False),
    "text/javascript": (".js", False),
    "application/json": (".json", False),
}
#: A default object repr: the text/plain form of a rich output that says nothing more.
_PLACEHOLDER = re.compile(r"^<[\w.]+ object(?: at 0x[0-9a-fA-F]+)?>$")
#: Types that only make sense inside a notebook frontend.
_FRONTEND_ONLY = ("application/vnd.jupyter.widget-view+json",)


def strip_ansi(text: str) -> str:
    """*text* without ANSI escape sequences (colours, cursor movement, hyperlinks)."""
    return _ANSI.sub("", text)


def color_wanted(mode: str, stream: TextIO) -> bool:
    """Whether to keep colours on *stream*: ``always``, ``never``, or ``auto`` (a terminal,
    and ``NO_COLOR`` unset)."""
    if mode == "always":
        return True
    if mode == "never" or os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _extension(mime: str) -> tuple[str, bool] | None:
    known = MIME_EXTENSIONS.get(mime)
    if known is not None:
        return known
    if mime.endswith("+json"):
        return ".json", False
    return None


class Renderer:
    """Writes the outputs of executions to a terminal and saves rich data to files.

    Args:
        stdout: where stdout streams and values go.
        stderr: where stderr streams, tracebacks and notes go.
        color: keep ANSI colours in tracebacks and streams.
        output_dir: where rich outputs are saved (created on first use).
        stem: the start of every saved file's name.
    """

    def __init__(
        self,
        *,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        color: bool = False,
        output_dir: Path = Path("trio-enchannel-outputs"),
        stem: str = "output",
    ) -> None:
        self.stdout = stdout if stdout is not None else sys.stdout
        self.stderr = stderr if stderr is not None else sys.stderr
        self.color = color
        self.output_dir = output_dir
        self.stem = stem
        self.saved: list[Path] = []
        self._counter = 0
        self._at_line_start = {id(self.stdout): True, id(self.stderr): True}

    # -- low level ------------------------------------------------------------------------

    def _write(self, stream: TextIO, text: str) -> None:
        if not text:
            return
        if not self.color:
            text = strip_ansi(text)
        stream.write(text)
        stream.flush()
        self._at_line_start[id(stream)] = text.endswith("\n")

    def _line(self, stream: TextIO, text: str) -> None:
        """Write *text* as whole lines, starting a new line if a stream left one open."""
        if not self._at_line_start.get(id(stream), True):
            self._write(stream, "\n")
        if not self._at_line_start.get(id(self.stdout), True) and stream is not self.stdout:
            # A note on stderr after unterminated stdout text would glue to it on a terminal.
            self._write(self.stdout, "\n")
        self._write(stream, text if text.endswith("\n") else text + "\n")

    def flush_line(self) -> None:
        """Flush both streams (before the terminal is used for input)."""
        self.stdout.flush()
        self.stderr.flush()

    def input_done(self, *, terminal: bool) -> None:
        """Record that a prompt was answered: on a terminal, the Enter key ended the line;
        from a pipe, the prompt's line is still open."""
        self._at_line_start[id(self.stdout)] = terminal

    def note(self, text: str) -> None:
        """A line of information from the command itself (on stderr)."""
        self._line(self.stderr, text)

    # -- outputs --------------------------------------------------------------------------

    def message(self, msg: Message) -> None:
        """Show one IOPub message of an execution (other message types are ignored)."""
        kind = msg.msg_type
        content = msg.content
        if kind == "stream":
            text = content.get("text")
            if isinstance(text, str):
                stream = self.stderr if content.get("name") == "stderr" else self.stdout
                self._write(stream, text)
        elif kind in ("display_data", "execute_result", "update_display_data"):
            data = content.get("data")
            if isinstance(data, Mapping):
                self.data(data)
        elif kind == "error":
            self.error(content)

    def output(self, output: Mapping[str, Any]) -> None:
        """Show one nbformat v4 output dict (as stored in a notebook)."""
        kind = output.get("output_type")
        if kind == "stream":
            text = output.get("text")
            if isinstance(text, list):
                text = "".join(str(t) for t in text)
            if isinstance(text, str):
                stream = self.stderr if output.get("name") == "stderr" else self.stdout
                self._write(stream, text)
        elif kind in ("display_data", "execute_result"):
            data = output.get("data")
            if isinstance(data, Mapping):
                self.data(data)
        elif kind == "error":
            self.error(output)

    def error(self, content: Mapping[str, Any]) -> None:
        """Show an error (an ``error`` message's content or an error output) on stderr."""
        tb = content.get("traceback")
        lines = [str(line) for line in tb] if isinstance(tb, Sequence) and tb else []
        if not lines:
            lines = [f"{content.get('ename', 'Error')}: {content.get('evalue', '')}"]
        self._line(self.stderr, "\n".join(lines))

    def data(self, bundle: Mapping[str, Any]) -> None:
        """Show a MIME bundle: save rich types to files, print ``text/plain``.

        The plain text is left out when a rich form was saved and the text is only a
        placeholder such as ``<IPython.core.display.Image object>``.
        """
        saved_any = False
        skipped: list[str] = []
        for mime in bundle:
            if mime == "text/plain":
                continue
            if self.save(mime, bundle[mime]) is not None:
                saved_any = True
            else:
                skipped.append(mime)
        text = bundle.get("text/plain")
        if isinstance(text, list):
            text = "".join(str(t) for t in text)
        if isinstance(text, str) and not (saved_any and _PLACEHOLDER.match(text.strip())):
            self._line(self.stdout, text)
        elif skipped and not saved_any:
            self.note(f"[{', '.join(skipped)} output: not shown in a terminal]")

    def save(self, mime: str, value: Any) -> Path | None:
        """Save one rich output to a new file in :attr:`output_dir`; return its path.

        Returns ``None`` (with a note) when the data cannot be decoded, and silently for
        types that only a notebook frontend can use.
        """
        if mime in _FRONTEND_ONLY:
            return None
        known = _extension(mime)
        if known is None:
            return None
        ext, is_base64 = known
        payload: bytes
        try:
            if isinstance(value, list):  # nbformat may split text into lines
                value = "".join(str(v) for v in value)
            if is_base64:
                if not isinstance(value, str):
                    raise ValueError("expected base64 text")
                payload = base64.b64decode(value.encode("ascii"), validate=False)
            elif isinstance(value, str):
                payload = value.encode("utf-8")
            else:
                payload = json.dumps(value, indent=2).encode("utf-8")
        except (ValueError, binascii.Error, TypeError, UnicodeEncodeError) as exc:
            self.note(f"[{mime} output could not be decoded: {exc}]")
            return None
        self._counter += 1
        path = self.output_dir / f"{self.stem}-{self._counter}{ext}"
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            path.write_bytes(payload)
        except OSError as exc:
            self.note(f"[{mime} output could not be saved to {path}: {exc.strerror or exc}]")
            return None
        self.saved.append(path)
        self.note(f"[{mime} saved to {_display_path(path)}]")
        return path


def make_renderer(args: argparse.Namespace, stem: str) -> Renderer:
    """The renderer for ``run``'s options (colour, output directory)."""
    output_dir = args.output_dir if args.output_dir is not None else DEFAULT_OUTPUT_DIR
    return Renderer(color=color_wanted(args.color, sys.stderr), output_dir=output_dir, stem=stem)


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
