"""``trio-enchannel run NOTEBOOK.ipynb``: execute every code cell, like nbclient.

Cells run in order in one kernel started in the notebook's directory. Each cell's outputs,
execution count and timing (``metadata.execution``, the keys nbclient records) are written
into the output notebook with nbformat. A progress bar (or, when stderr is not a terminal, one
line per cell) shows the running cell; a table of per-cell timings ends the run.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import attrs
import trio

from ._cli import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_OUTPUT_LOST,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    PROG,
    CommandError,
)
from ._cli_run import (
    DEFAULT_KERNEL,
    CliState,
    kernel_died_error,
    make_renderer,
    open_cli_kernel,
    run_job,
)
from ._errors import KernelDied

if TYPE_CHECKING:
    from ._launcher import Kernel
    from ._message import Message

__all__ = ["CellRecord", "Progress", "run_notebook_command"]

#: Cell tags honoured like nbclient does.
SKIP_TAG = "skip-execution"
RAISES_TAG = "raises-exception"
#: Above this many cells the timing table shows only the slowest ones.
_TABLE_LIMIT = 20


@attrs.define
class CellRecord:
    """What happened to one code cell."""

    number: int  # 1-based position among all cells
    source: str
    status: str = "pending"  # ok, error, skipped, timeout, interrupted, not run
    seconds: float = 0.0


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip():
            return line.strip()
    return "(empty)"


def _clip(text: str, width: int) -> str:
    if width <= 1:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"


class Progress:
    """The progress display on *stream*: a redrawn bar on a terminal, lines otherwise."""

    def __init__(self, total: int, stream: TextIO, *, tty: bool) -> None:
        self.total = total
        self.stream = stream
        self.tty = tty
        self._current: tuple[int, CellRecord] | None = None
        self._started = 0.0
        self._done = 0

    def start(self, position: int, record: CellRecord) -> None:
        """Show that the *position*-th code cell (of :attr:`total`) starts."""
        self._current = (position, record)
        self._started = trio.current_time()
        if self.tty:
            self.redraw()
        else:
            text = f"[{position}/{self.total}] cell {record.number}: {_first_line(record.source)}"
            self.stream.write(_clip(text, 200) + "\n")
            self.stream.flush()

    def finish(self) -> None:
        """The current cell is done."""
        self._done += 1
        self._current = None
        if self.tty:
            self.redraw()

    def redraw(self) -> None:
        """Redraw the bar (terminal only)."""
        if not self.tty:
            return
        width = shutil.get_terminal_size((80, 24)).columns
        filled = int(20 * self._done / self.total) if self.total else 20
        bar = "#" * filled + "-" * (20 - filled)
        text = f"[{bar}] {self._done}/{self.total}"
        if self._current is not None:
            record = self._current[1]
            elapsed = trio.current_time() - self._started
            text += f"  cell {record.number} ({elapsed:.1f} s): {_first_line(record.source)}"
        self.stream.write("\r\x1b[K" + _clip(text, width - 1))
        self.stream.flush()

    def status(self, text: str) -> None:
        """Show *text* where the bar will be (terminal only)."""
        if self.tty:
            width = shutil.get_terminal_size((80, 24)).columns
            self.stream.write("\r\x1b[K" + _clip(text, width - 1))
            self.stream.flush()

    def clear(self) -> None:
        """Remove the bar before other text is written (terminal only)."""
        if self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    async def tick(self) -> None:
        """Redraw twice a second so the elapsed time moves (runs until cancelled)."""
        while self.tty:
            await trio.sleep(0.5)
            self.redraw()


def _timing(messages: tuple[Message, ...], reply: Message) -> dict[str, str]:
    """nbclient's ``metadata.execution`` timestamps, from the messages' header dates."""
    timing: dict[str, str] = {}
    for msg in messages:
        if msg.channel != "iopub":
            continue
        if msg.msg_type == "status":
            state = msg.content.get("execution_state")
            if state == "busy":
                timing.setdefault("iopub.status.busy", msg.header.date)
            elif state == "idle":
                timing["iopub.status.idle"] = msg.header.date
        elif msg.msg_type == "execute_input":
            timing.setdefault("iopub.execute_input", msg.header.date)
    timing["shell.execute_reply"] = reply.header.date
    return timing


def _write_notebook(nb: Any, path: Path) -> None:
    nbformat: Any = importlib.import_module("nbformat")
    text = nbformat.writes(nb)
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            if not text.endswith("\n"):
                f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _summary(records: list[CellRecord], startup: float, total: float) -> str:
    ran = [r for r in records if r.status not in ("pending", "not run")]
    lines: list[str] = []
    shown = ran
    if len(ran) > _TABLE_LIMIT:
        shown = sorted(ran, key=lambda r: r.seconds, reverse=True)[:10]
        lines.append(f"the 10 slowest of {len(ran)} cells:")
    if shown:
        lines.append(f"{'cell':>5}  {'status':<11} {'time':>8}  source")
        for r in shown:
            source = _clip(_first_line(r.source), 50)
            lines.append(f"{r.number:>5}  {r.status:<11} {r.seconds:>7.2f}s  {source}")
    cells = sum(r.seconds for r in ran)
    lines.append(f"kernel startup {startup:.2f} s, cells {cells:.2f} s, total {total:.2f} s")
    return "\n".join(lines)


def run_notebook_command(args: argparse.Namespace) -> int:
    """Execute a notebook's code cells and write the executed notebook.

    Raises:
        CommandError: nbformat is missing, the notebook is missing or invalid, or the
            options conflict.
    """
    try:
        nbformat: Any = importlib.import_module("nbformat")
    except ImportError:
        raise CommandError(
            "running notebooks needs nbformat: python3 -m pip install 'trio-enchannel[notebook]'",
            EXIT_USAGE,
        ) from None
    path = Path(args.file)
    if args.inplace and args.output is not None:
        raise CommandError("use either -o/--output or --inplace, not both", EXIT_USAGE)
    try:
        nb = nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise CommandError(f"no such file: {path}", EXIT_USAGE) from None
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}", EXIT_USAGE) from None
    except Exception as exc:  # nbformat's NotJSONError, validation and version errors
        raise CommandError(f"{path} is not a valid notebook: {exc}", EXIT_USAGE) from None
    out: Path = args.output if args.output is not None else path
    if args.output is None and not args.inplace:
        out = path.with_name(path.name[: -len(".ipynb")] + ".out.ipynb")
    kernelspec = nb.metadata.get("kernelspec") or {}
    kernel_name = str(args.kernel or kernelspec.get("name") or DEFAULT_KERNEL)
    from_notebook = not args.kernel and bool(kernelspec.get("name"))
    cells = [(i + 1, cell) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    records = [CellRecord(number, str(cell.source)) for number, cell in cells]
    ui = make_renderer(args, path.name[: -len(".ipynb")])
    progress = Progress(len(cells), sys.stderr, tty=sys.stderr.isatty())
    timeout: float | None = args.timeout
    allow_errors: bool = args.allow_errors

    async def job(state: CliState) -> int:
        started = trio.current_time()
        progress.status(f"starting kernel {kernel_name!r}...")
        cwd = path.parent if str(path.parent) else None
        async with open_cli_kernel(
            state, kernel_name, startup_timeout=args.startup_timeout, cwd=cwd
        ) as kernel:
            startup = trio.current_time() - started
            info = await kernel.client.kernel_info()
            if info.language_info:
                nb.metadata["language_info"] = info.language_info
            status = EXIT_OK
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(progress.tick)
                    status = await _run_cells(state, kernel, cells, records, progress)
                    nursery.cancel_scope.cancel()
            finally:
                progress.clear()
                _finish(records, startup, trio.current_time() - started)
            return status

    def _finish(records: list[CellRecord], startup: float, total: float) -> None:
        sys.stderr.write(_summary(records, startup, total) + "\n")
        try:
            _write_notebook(nb, out)
        except OSError as exc:
            raise CommandError(f"cannot write {out}: {exc.strerror or exc}", EXIT_USAGE) from None
        ran = [r for r in records if r.status not in ("pending", "not run", "skipped")]
        failed = [r for r in ran if r.status not in ("ok", "ok (raised)")]
        not_run = sum(1 for r in records if r.status in ("pending", "not run"))
        counts = f"{len(ran)} cells run, {len(failed)} failed"
        if not_run:
            counts += f", {not_run} not run"
        sys.stderr.write(f"wrote {out} ({counts})\n")
        sys.stderr.flush()

    async def _run_cells(
        state: CliState,
        kernel: Kernel,
        cells: list[tuple[int, Any]],
        records: list[CellRecord],
        progress: Progress,
    ) -> int:
        status = EXIT_OK
        for position, ((_, cell), record) in enumerate(zip(cells, records, strict=True), 1):
            tags = cell.metadata.get("tags") or []
            if SKIP_TAG in tags:
                record.status = "skipped"
                continue
            cell.outputs = []
            cell.execution_count = None
            progress.start(position, record)
            began = trio.current_time()
            state.busy = True
            execution = None
            try:
                with trio.move_on_after(timeout if timeout is not None else float("inf")) as limit:
                    async with kernel.client.stream_execute(
                        record.source, allow_stdin=False, keep_messages=True
                    ) as execution:
                        async for _ in execution:
                            pass
            except KernelDied as exc:
                record.status = "kernel died"
                record.seconds = trio.current_time() - began
                if execution is not None:
                    cell.outputs = [nbformat.from_dict(o) for o in execution.outputs.outputs]
                progress.clear()
                raise kernel_died_error(state, exc) from None
            finally:
                state.busy = False
                record.seconds = trio.current_time() - began
                progress.finish()
            assert execution is not None
            if limit.cancelled_caught:
                record.status = "timeout"
                cell.outputs = [nbformat.from_dict(o) for o in execution.outputs.outputs]
                progress.clear()
                ui.note(
                    f"{PROG}: error: cell {record.number} did not finish within {timeout:g} s "
                    "(the kernel was interrupted)"
                )
                from ._cli_run import _interrupt

                await _interrupt(state)
                return EXIT_TIMEOUT
            result = execution.result
            cell.outputs = [nbformat.from_dict(o) for o in result.outputs]
            cell.execution_count = result.execution_count
            cell.metadata["execution"] = _timing(result.messages, result.reply)
            if result.ok and not result.complete:
                # The cell ran, but its outputs in the notebook are incomplete: say so.
                record.status = "incomplete"
                progress.clear()
                ui.note(
                    f"{PROG}: cell {record.number}: {result.iopub_dropped} outputs lost (the "
                    "kernel published faster than they could be received)"
                )
                if status == EXIT_OK:
                    status = EXIT_OUTPUT_LOST
                continue
            if result.ok:
                record.status = "ok"
                continue
            record.status = (
                "interrupted"
                if state.interrupted
                else ("aborted" if result.aborted else result.status)
            )
            if state.interrupted:
                progress.clear()
                ui.note(f"{PROG}: interrupted in cell {record.number}")
                return EXIT_INTERRUPTED
            if result.status == "error" and RAISES_TAG in tags:
                record.status = "ok (raised)"
                continue
            status = EXIT_ERROR
            progress.clear()
            ui.note(f"{PROG}: cell {record.number} failed:")
            if result.error is not None:
                ui.error(
                    {
                        "ename": result.error.ename,
                        "evalue": result.error.evalue,
                        "traceback": list(result.error.traceback),
                    }
                )
            if not allow_errors:
                for later in records[position:]:
                    later.status = "not run"
                return status
        return status

    try:
        return run_job(ui, job)
    except CommandError as exc:
        if from_notebook and exc.status == EXIT_USAGE and "no kernel named" in str(exc):
            raise CommandError(
                f"{exc} (the notebook asks for {kernel_name!r}; choose another with -k)",
                exc.status,
            ) from None
        raise
