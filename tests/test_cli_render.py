"""How the trio-enchannel command shows outputs in a terminal (in-process, no kernel)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest

from trio_enchannel import Session
from trio_enchannel._cli._render import Renderer, strip_ansi

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def renderer(tmp_path: Path, *, color: bool = False) -> tuple[Renderer, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    ui = Renderer(stdout=out, stderr=err, color=color, output_dir=tmp_path / "outs", stem="run")
    return ui, out, err


def test_streams_go_to_their_own_stream_as_they_are(tmp_path: Path) -> None:
    ui, out, err = renderer(tmp_path)
    session = Session()
    ui.message(session.message("stream", {"name": "stdout", "text": "a"}))
    ui.message(session.message("stream", {"name": "stderr", "text": "oops\n"}))
    ui.message(session.message("stream", {"name": "stdout", "text": "b\n"}))
    assert out.getvalue() == "ab\n"
    assert err.getvalue() == "oops\n"


def test_plain_text_value_is_printed(tmp_path: Path) -> None:
    ui, out, err = renderer(tmp_path)
    ui.data({"text/plain": "42"})
    assert (out.getvalue(), err.getvalue()) == ("42\n", "")
    assert not (tmp_path / "outs").exists()  # nothing saved, no directory created


def test_image_is_saved_and_its_placeholder_text_left_out(tmp_path: Path) -> None:
    ui, out, err = renderer(tmp_path)
    ui.data(
        {
            "image/png": base64.b64encode(PNG).decode(),
            "text/plain": "<IPython.core.display.Image object>",
        }
    )
    saved = tmp_path / "outs" / "run-1.png"
    assert saved.read_bytes() == PNG
    assert out.getvalue() == ""
    assert err.getvalue() == f"[image/png saved to {saved}]\n"


def test_meaningful_text_is_kept_next_to_saved_html(tmp_path: Path) -> None:
    ui, out, _ = renderer(tmp_path)
    ui.data({"text/html": "<table>...</table>", "text/plain": "   a  b\n0  1  2"})
    assert (tmp_path / "outs" / "run-1.html").read_text() == "<table>...</table>"
    assert out.getvalue() == "   a  b\n0  1  2\n"


def test_every_rich_output_gets_its_own_file(tmp_path: Path) -> None:
    ui, _, _ = renderer(tmp_path)
    ui.data({"image/svg+xml": "<svg/>", "application/json": {"a": [1, 2]}})
    ui.data({"application/vnd.custom+json": {"x": 1}, "text/latex": "$x$"})
    files = sorted(p.name for p in (tmp_path / "outs").iterdir())
    assert files == ["run-1.svg", "run-2.json", "run-3.json", "run-4.tex"]
    assert json.loads((tmp_path / "outs" / "run-2.json").read_text()) == {"a": [1, 2]}


def test_undecodable_image_is_reported_not_fatal(tmp_path: Path) -> None:
    ui, _, err = renderer(tmp_path)
    ui.data({"image/png": ["not", 1, "base64!"]})
    ui.data({"image/png": 12})
    assert "could not be decoded" in err.getvalue()


def test_frontend_only_output_is_mentioned(tmp_path: Path) -> None:
    ui, out, err = renderer(tmp_path)
    ui.data({"application/vnd.jupyter.widget-view+json": {"model_id": "x"}})
    assert out.getvalue() == ""
    assert "not shown in a terminal" in err.getvalue()


@pytest.mark.parametrize("color", [False, True])
def test_tracebacks_keep_colour_only_when_asked(tmp_path: Path, color: bool) -> None:
    ui, _, err = renderer(tmp_path, color=color)
    red = "\x1b[0;31mZeroDivisionError\x1b[0m: division by zero"
    ui.error({"ename": "ZeroDivisionError", "evalue": "division by zero", "traceback": [red]})
    assert err.getvalue() == (red if color else strip_ansi(red)) + "\n"


def test_error_without_traceback_shows_name_and_value(tmp_path: Path) -> None:
    ui, _, err = renderer(tmp_path)
    ui.error({"ename": "ValueError", "evalue": "bad", "traceback": []})
    assert err.getvalue() == "ValueError: bad\n"


def test_note_starts_a_new_line_after_unterminated_output(tmp_path: Path) -> None:
    ui, out, err = renderer(tmp_path)
    session = Session()
    ui.message(session.message("stream", {"name": "stdout", "text": "progress 50%"}))
    ui.note("a note")
    assert out.getvalue() == "progress 50%\n"
    assert err.getvalue() == "a note\n"


def test_strip_ansi_removes_colours_cursor_moves_and_links() -> None:
    text = "\x1b[1;32mok\x1b[0m \x1b[2K\x1b]8;;http://x\x07link\x1b]8;;\x07"
    assert strip_ansi(text) == "ok link"
