"""Executing Jupyter notebooks cell by cell, with nbclient's fidelity.

:func:`execute_notebook` runs the code cells of an ``nbformat`` notebook in order, in a kernel
it starts (and shuts down) or in one the caller already has, and writes each cell's outputs,
execution count and timing into the notebook the way nbclient does:

* every output message becomes one output (nbclient does not merge stream chunks unless asked
  to: ``coalesce_streams``);
* a ``display_data``/``execute_result``/``update_display_data`` with a ``display_id`` updates
  every earlier output with that id, in any cell of the notebook;
* the ipywidgets ``Output`` widget's capture protocol is honoured (outputs produced inside
  ``with out:`` go to the widget's state, not the cell) and the widget state is written to
  ``metadata.widgets``;
* empty code cells and cells tagged ``skip-execution`` are not sent to the kernel;
* an IPython kernel started here keeps its history in memory (nothing reaches the history
  database on disk).

Where execution stops early (an error that is not allowed, a timeout, a dead kernel,
cancellation), the cells after it are cleared, and the notebook's ``metadata.trio_enchannel``
says where and why it stopped.

Progress is reported through typed events (:class:`CellStarted`, :class:`CellOutput`,
:class:`CellFinished`, :class:`NotebookFinished`) passed to an ``on_event`` callback.
"""

from __future__ import annotations

import base64
import datetime
import functools
import importlib
import inspect
import math
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs
import trio

from .._errors import (
    CellExecutionError,
    CellTimeoutError,
    ConfigurationError,
    KernelDied,
    NotebookKernelDied,
)
from .._validate import (
    check_bool,
    check_callable,
    check_optional_str,
    check_seconds,
    check_str,
    check_str_sequence,
    type_name,
)
from .._wire._outputs import ErrorInfo

if TYPE_CHECKING:
    from .._client._client import KernelClient
    from .._client._execution import Execution
    from .._launch._kernel import Kernel
    from .._launch._kernelspec import KernelSpec
    from .._launch._options import KernelOptions
    from .._wire._message import Message

__all__ = [
    "CellFinished",
    "CellOutput",
    "CellStarted",
    "NotebookEvent",
    "NotebookFinished",
    "execute_notebook",
    "notebook_kernel_arguments",
]

#: How long to wait, after interrupting a timed-out cell, for the kernel to reply.
INTERRUPT_GRACE = 10.0
#: The notebook metadata key that records where execution stopped.
METADATA_KEY = "trio_enchannel"
_WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"
_OUTPUT_TYPES = frozenset(("stream", "display_data", "execute_result", "error"))


# --------------------------------------------------------------------------- events


@attrs.frozen
class CellStarted:
    """A code cell was sent to the kernel.

    Attributes:
        index: the cell's index in ``notebook.cells``.
        cell: the cell (its outputs fill in as it runs).
        position: 1-based position among the cells that will run.
        total: how many cells will run (empty and skipped cells do not count).
    """

    index: int
    cell: Any
    position: int
    total: int


@attrs.frozen
class CellOutput:
    """An IOPub message changed the running cell's outputs (read ``cell.outputs``).

    Attributes:
        index: the cell's index in ``notebook.cells``.
        cell: the cell.
        message: the message that changed the outputs.
    """

    index: int
    cell: Any
    message: Message


@attrs.frozen
class CellFinished:
    """A code cell finished, failed, timed out or was skipped.

    Attributes:
        index: the cell's index in ``notebook.cells``.
        cell: the cell, with its final outputs.
        position: 1-based position among the cells that run (0 for a skipped cell).
        total: how many cells will run.
        status: ``"ok"``, ``"error"``, ``"timeout"`` or ``"skipped"`` (the
            ``skip-execution`` tag).
        seconds: how long the cell ran.
        error: the error raised in the kernel (also for a timed-out cell that the interrupt
            stopped with ``KeyboardInterrupt``), else ``None``.
        allowed: the error did not stop the notebook (``allow_errors``, ``allow_error_names``,
            the ``raises-exception`` tag, or ``interrupt_on_timeout`` for a timeout).
        outputs_lost: how many of the cell's IOPub messages never reached the runner (the
            channels' IOPub buffer overflowed): its outputs in the notebook are incomplete,
            and the cell's ``metadata.trio_enchannel.outputs_lost`` says so.
    """

    index: int
    cell: Any
    position: int
    total: int
    status: str
    seconds: float = 0.0
    error: ErrorInfo | None = None
    allowed: bool = False
    outputs_lost: int = 0


@attrs.frozen
class NotebookFinished:
    """The notebook run ended (sent last, also when it failed).

    Attributes:
        notebook: the executed notebook.
        status: ``"ok"`` (every cell ran), ``"error"``, ``"timeout"``, ``"kernel died"`` or
            ``"cancelled"``.
        stopped_at: the index of the cell where execution stopped, or ``None``.
        seconds: how long the run took, kernel startup included (not the wait for a
            ``limiter`` token).
    """

    notebook: Any
    status: str
    stopped_at: int | None = None
    seconds: float = 0.0


#: The events :func:`execute_notebook` passes to ``on_event``.
NotebookEvent: TypeAlias = CellStarted | CellOutput | CellFinished | NotebookFinished


# --------------------------------------------------------------------------- helpers


def _nbformat() -> Any:
    return importlib.import_module("nbformat")


def _timestamp(msg: Message) -> str:
    """The message's header date in nbclient's format (UTC, microseconds, ``Z``)."""
    raw = msg.header.date
    try:
        when = datetime.datetime.fromisoformat(raw)
    except ValueError:
        return raw
    if when.tzinfo is not None:
        when = when.astimezone(datetime.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _is_ipython(spec: KernelSpec) -> bool:
    return any("ipykernel" in arg for arg in spec.argv)


def notebook_kernel_arguments(
    spec: KernelSpec, *, ipython_hist_file: str | None = ":memory:"
) -> list[str]:
    """The extra kernel arguments the runner passes to *spec*'s kernel: for ipykernel, the
    IPython history file (``":memory:"`` keeps executed code off the disk), as nbclient does.
    """
    if (
        ipython_hist_file
        and _is_ipython(spec)
        and not any(arg.startswith("--HistoryManager.hist_file") for arg in spec.argv)
    ):
        return [f"--HistoryManager.hist_file={ipython_hist_file}"]
    return []


def _check_notebook(nb: Any) -> None:
    if not isinstance(nb, _nbformat().NotebookNode):
        hint = " (nbformat.from_dict(d) makes one of a dict)" if isinstance(nb, Mapping) else ""
        raise TypeError(f"expected an nbformat NotebookNode, got {type(nb).__name__}{hint}")
    if nb.get("nbformat") != 4:
        raise ConfigurationError(
            f"expected an nbformat 4 notebook, got nbformat {nb.get('nbformat')!r} "
            "(read it with nbformat.read(path, as_version=4))"
        )
    cells = nb.get("cells")
    if not isinstance(cells, list):
        raise ConfigurationError("the notebook has no list of cells")
    for i, cell in enumerate(cells):
        if not isinstance(cell, Mapping) or not isinstance(cell.get("cell_type"), str):
            raise ConfigurationError(f"cell {i} is not a notebook cell")
        if cell["cell_type"] == "code" and not isinstance(cell.get("source"), str):
            raise ConfigurationError(f"cell {i} has no source text")


def _tags(cell: Any) -> list[Any]:
    tags = cell.get("metadata", {}).get("tags")
    return tags if isinstance(tags, list) else []


@attrs.define(eq=False)
class _OutputWidget:
    """Stands in for a frontend's ipywidgets ``Output`` view: it captures outputs."""

    comm_id: str
    outputs: list[Any]
    msg_id: str = ""
    clear_pending: bool = False


@attrs.frozen
class _Options:
    timeout: float | None
    allow_errors: bool
    allow_error_names: frozenset[str]
    interrupt_on_timeout: bool
    skip_cells_with_tag: str
    record_timing: bool
    store_widget_state: bool
    coalesce_streams: bool


class _Run:
    """One notebook's execution state: outputs, display ids, widgets (no I/O but sends)."""

    def __init__(
        self,
        nb: Any,
        client: KernelClient,
        options: _Options,
        interrupt: Callable[[], Awaitable[object]],
        on_event: Callable[[NotebookEvent], object] | None,
    ) -> None:
        self.nb = nb
        self.client = client
        self.options = options
        self.interrupt = interrupt
        self.on_event = on_event
        self.nbformat = _nbformat()
        # display_id -> cell index -> output indices (the whole notebook, like nbclient).
        self.display_map: dict[str, dict[int, list[int]]] = {}
        self.widget_state: dict[str, dict[str, Any]] = {}
        self.widget_buffers: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
        self.output_widgets: dict[str, _OutputWidget] = {}
        self.hooks: dict[str, list[_OutputWidget]] = {}
        self.clear_pending = False
        self.outbox: list[Message] = []
        self.executed = 0
        self.last_error: ErrorInfo | None = None
        self.caller_owned = False  # the kernel is the caller's: leave it idle

    async def emit(self, event: NotebookEvent) -> None:
        if self.on_event is None:
            return
        got = self.on_event(event)
        if inspect.isawaitable(got):
            await got

    # -- message processing (mirrors what a notebook frontend does) ----------------------

    def process(self, msg: Message, cell: Any, index: int) -> bool:
        """Apply one IOPub message of the running cell; return whether its outputs changed."""
        kind = msg.msg_type
        content = msg.content
        transient = content.get("transient")
        display_id = transient.get("display_id") if isinstance(transient, Mapping) else None
        if not isinstance(display_id, str) or not display_id:
            display_id = None
        changed = False
        if display_id is not None and kind in (
            "execute_result",
            "display_data",
            "update_display_data",
        ):
            changed = self._update_display(display_id, content)
        count = content.get("execution_count")
        if isinstance(count, int) and not isinstance(count, bool):
            cell["execution_count"] = count
        timing = cell.get("metadata", {}).get("execution")
        if self.options.record_timing and isinstance(timing, dict):
            if kind == "status":
                state = content.get("execution_state")
                if state in ("busy", "idle"):
                    timing[f"iopub.status.{state}"] = _timestamp(msg)
            elif kind == "execute_input":
                timing["iopub.execute_input"] = _timestamp(msg)
        if kind == "clear_output":
            return self._clear_output(msg, cell, index) or changed
        if kind.startswith("comm_"):
            self._comm(msg)
            return changed
        if kind in _OUTPUT_TYPES:
            return self._output(msg, cell, index, display_id) or changed
        return changed

    def _make_output(self, kind: str, content: Mapping[str, Any]) -> Any:
        out: dict[str, Any] = {"output_type": kind}
        if kind == "stream":
            name = content.get("name")
            text = content.get("text")
            out["name"] = name if isinstance(name, str) else "stdout"
            out["text"] = text if isinstance(text, str) else ""
        elif kind == "error":
            info = ErrorInfo.from_content(content)
            out.update(ename=info.ename, evalue=info.evalue, traceback=list(info.traceback))
        else:
            if kind == "execute_result":
                count = content.get("execution_count")
                out["execution_count"] = count if isinstance(count, int) else None
            data = content.get("data")
            metadata = content.get("metadata")
            out["data"] = data if isinstance(data, Mapping) else {}
            out["metadata"] = metadata if isinstance(metadata, Mapping) else {}
        return self.nbformat.from_dict(out)

    def _update_display(self, display_id: str, content: Mapping[str, Any]) -> bool:
        cells = self.display_map.get(display_id)
        if not cells:
            return False
        update = self._make_output("display_data", content)
        changed = False
        for cell_index, indices in cells.items():
            outputs = self.nb.cells[cell_index].outputs
            for i in indices:
                outputs[i]["data"] = update["data"]
                outputs[i]["metadata"] = update["metadata"]
                changed = True
        return changed

    def _hook(self, msg: Message) -> _OutputWidget | None:
        stack = self.hooks.get(str(msg.parent_header.get("msg_id", "")))
        return stack[-1] if stack else None

    def _output(self, msg: Message, cell: Any, index: int, display_id: str | None) -> bool:
        out = self._make_output(msg.msg_type, msg.content)
        widget = self._hook(msg)
        if widget is not None:
            self._widget_output(widget, out, msg)
            return False
        if self.clear_pending:
            cell.outputs = []
            self._forget_displays(index)
            self.clear_pending = False
        if display_id is not None:
            self.display_map.setdefault(display_id, {}).setdefault(index, []).append(
                len(cell.outputs)
            )
        cell.outputs.append(out)
        return True

    def _clear_output(self, msg: Message, cell: Any, index: int) -> bool:
        wait = bool(msg.content.get("wait"))
        widget = self._hook(msg)
        if widget is not None:
            if wait:
                widget.clear_pending = True
            else:
                widget.outputs = []
                self._widget_sync(widget, msg)
            return False
        if wait:
            self.clear_pending = True
            return False
        had = bool(cell.outputs)
        cell.outputs = []
        self._forget_displays(index)
        return had

    def _forget_displays(self, index: int) -> None:
        for cells in self.display_map.values():
            if index in cells:
                cells[index] = []

    # -- widgets --------------------------------------------------------------------------

    def _comm(self, msg: Message) -> None:
        content = msg.content
        comm_id = content.get("comm_id")
        data = content.get("data")
        if not isinstance(comm_id, str) or not isinstance(data, Mapping):
            return
        state = data.get("state")
        if self.options.store_widget_state and isinstance(state, Mapping):
            self.widget_state.setdefault(comm_id, {}).update(state)
            paths = data.get("buffer_paths")
            if isinstance(paths, list) and paths:
                buffers = self.widget_buffers.setdefault(comm_id, {})
                for path, buffer in zip(paths, msg.buffers, strict=False):
                    if isinstance(path, list):
                        buffers[tuple(path)] = {
                            "data": base64.b64encode(bytes(buffer)).decode("ascii"),
                            "encoding": "base64",
                            "path": path,
                        }
        if msg.msg_type == "comm_open":
            if (
                content.get("target_name") == "jupyter.widget"
                and isinstance(state, Mapping)
                and state.get("_model_module") == "@jupyter-widgets/output"
                and state.get("_model_name") == "OutputModel"
            ):
                outputs = state.get("outputs")
                self.output_widgets[comm_id] = _OutputWidget(
                    comm_id, list(outputs) if isinstance(outputs, list) else []
                )
        elif msg.msg_type == "comm_msg" and isinstance(state, Mapping) and "msg_id" in state:
            widget = self.output_widgets.get(comm_id)
            if widget is None:
                return
            target = state.get("msg_id")
            if target:
                widget.msg_id = str(target)
                self.hooks.setdefault(widget.msg_id, []).append(widget)
            else:
                stack = self.hooks.get(widget.msg_id)
                if stack and widget in stack:
                    stack.remove(widget)
                widget.msg_id = ""

    def _widget_output(self, widget: _OutputWidget, out: Any, msg: Message) -> None:
        if widget.clear_pending:
            widget.outputs = []
            widget.clear_pending = False
        last = widget.outputs[-1] if widget.outputs else None
        if (
            isinstance(last, dict)
            and last.get("output_type") == "stream"
            and out["output_type"] == "stream"
            and last.get("name") == out["name"]
        ):
            last["text"] = last.get("text", "") + out["text"]
        else:
            widget.outputs.append(out)
        self._widget_sync(widget, msg)

    def _widget_sync(self, widget: _OutputWidget, msg: Message) -> None:
        """Tell the kernel the widget's outputs, as a frontend's view would."""
        content = {
            "comm_id": widget.comm_id,
            "data": {"method": "update", "state": {"outputs": widget.outputs}, "buffer_paths": []},
        }
        self.outbox.append(self.client.session.message("comm_msg", content, channel="shell"))
        if widget.comm_id in self.widget_state:
            self.widget_state[widget.comm_id]["outputs"] = widget.outputs

    async def flush_outbox(self) -> None:
        while self.outbox:
            await self.client.send(self.outbox.pop(0))

    def widgets_metadata(self) -> None:
        """Write the widget state to ``metadata.widgets`` (as nbclient does)."""
        metadata = self.nb.metadata
        if not self.options.store_widget_state:
            return
        states: dict[str, Any] = {}
        for model_id, state in self.widget_state.items():
            if "_model_name" not in state:
                continue
            entry: dict[str, Any] = {
                "model_name": state.get("_model_name"),
                "model_module": state.get("_model_module"),
                "model_module_version": state.get("_model_module_version"),
                "state": state,
            }
            buffers = self.widget_buffers.get(model_id)
            if buffers:
                entry["buffers"] = list(buffers.values())
            states[model_id] = entry
        if states:
            metadata["widgets"] = self.nbformat.from_dict(
                {_WIDGET_STATE_MIME: {"state": states, "version_major": 2, "version_minor": 0}}
            )
        elif _has_widget_models(metadata.get("widgets")):
            # The input's widget state describes widgets of an earlier run, not this one
            # (nbclient keeps it): drop it. An empty state is left as it is.
            metadata.pop("widgets")

    # -- coalescing (nbclient's coalesce_streams) ----------------------------------------

    @staticmethod
    def coalesce(cell: Any) -> None:
        merged: list[Any] = []
        streams: dict[str, Any] = {}
        for out in cell.outputs:
            if out.get("output_type") == "stream":
                first = streams.get(out["name"])
                if first is not None:
                    first["text"] += out["text"]
                    continue
                streams[out["name"]] = out
            merged.append(out)
        for out in streams.values():
            out["text"] = _apply_control_chars(out["text"])
        for i, out in enumerate(merged):
            if (
                out.get("output_type") == "stream"
                and out.get("name") == "stderr"
                and i + 1 < len(merged)
                and merged[i + 1].get("output_type") == "stream"
                and merged[i + 1].get("name") == "stdout"
            ):
                merged.insert(i, merged.pop(i + 1))
        cell.outputs = merged


def _has_widget_models(widgets: Any) -> bool:
    if not isinstance(widgets, Mapping):
        return False
    state = widgets.get(_WIDGET_STATE_MIME)
    return not isinstance(state, Mapping) or bool(state.get("state"))


def _apply_control_chars(text: str) -> str:
    """nbclient's coalescing: a backspace deletes the character before it (not a newline);
    a carriage return not followed by a newline deletes the line so far."""
    if "\b" in text:
        out: list[str] = []
        for ch in text:
            if ch == "\b" and out and out[-1] != "\n":
                out.pop()
            else:
                out.append(ch)
        text = "".join(out)
    if "\r" in text:
        lines = text.split("\n")
        for i, line in enumerate(lines):
            # The last carriage return that has text after it on its line.
            cut = line.rfind("\r", 0, len(line) - 1)
            if cut >= 0:
                lines[i] = line[cut + 1 :]
        text = "\n".join(lines)
    return text


# --------------------------------------------------------------------------- running


async def _run_cells(run: _Run) -> tuple[str, int | None]:
    nb = run.nb
    options = run.options
    client = run.client
    planned: list[int] = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        if options.skip_cells_with_tag in _tags(cell):
            continue
        planned.append(index)
    total = len(planned)
    position = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        if options.skip_cells_with_tag in _tags(cell):
            await run.emit(CellFinished(index, cell, 0, total, "skipped"))
            continue
        position += 1
        stop = await _run_cell(run, client, index, cell, position, total)
        if stop is not None:
            return stop, index
    return "ok", None


async def _run_cell(
    run: _Run, client: KernelClient, index: int, cell: Any, position: int, total: int
) -> str | None:
    """Run one cell; return the reason execution stops here, else ``None``.

    Raises:
        CellExecutionError, CellTimeoutError, NotebookKernelDied: filled in by the caller.
    """
    options = run.options
    tags = _tags(cell)
    allows_errors = options.allow_errors or "raises-exception" in tags
    if options.record_timing:
        cell.setdefault("metadata", run.nbformat.from_dict({}))["execution"] = {}
    cell.outputs = []
    run.clear_pending = False
    run.executed += 1
    await run.emit(CellStarted(index, cell, position, total))
    began = trio.current_time()
    timed_out = False
    execution: Execution | None = None
    try:
        async with client.stream_execute(
            cell.source,
            store_history=True,
            allow_stdin=False,
            stop_on_error=not allows_errors,
            # Our own outputs are built from every message (nbclient's structure), so the
            # client keeps none, and no message may be dropped.
            live_buffer=sys.maxsize,
            gather_outputs=False,
        ) as execution:
            limit = options.timeout if options.timeout is not None else math.inf
            try:
                with trio.move_on_after(limit) as deadline:
                    await _consume(run, execution, cell, index)
            except BaseException:
                if run.caller_owned and not execution.done:
                    await _stop_callers_cell(run, execution, cell, index)
                raise
            if deadline.cancelled_caught:
                timed_out = True
                await run.interrupt()
                with trio.move_on_after(INTERRUPT_GRACE):
                    await _consume(run, execution, cell, index)
                if not execution.done:
                    raise _Stop("timeout", "the kernel did not answer the interrupt")
            reply = execution.reply
    except KernelDied as exc:
        raise _Stop("kernel died", exc.reason) from None
    finally:
        seconds = trio.current_time() - began
        cell["execution_count"] = run.executed
        if options.coalesce_streams and cell.outputs:
            run.coalesce(cell)
    assert reply is not None
    assert execution is not None
    lost = execution.result.iopub_dropped
    if lost:  # the notebook must not look complete when it is not
        cell.setdefault("metadata", run.nbformat.from_dict({}))[METADATA_KEY] = {
            "outputs_lost": lost
        }
    if options.record_timing:
        cell.metadata["execution"]["shell.execute_reply"] = _timestamp(reply)
    content = reply.content
    error = ErrorInfo.from_content(content) if content.get("status") == "error" else None
    if timed_out:
        allowed = options.interrupt_on_timeout and (
            allows_errors or (error is not None and error.ename in options.allow_error_names)
        )
        await run.emit(
            CellFinished(index, cell, position, total, "timeout", seconds, error, allowed, lost)
        )
        return None if allowed else "timeout"
    if error is None:
        await run.emit(CellFinished(index, cell, position, total, "ok", seconds, outputs_lost=lost))
        return None
    allowed = allows_errors or error.ename in options.allow_error_names
    run.last_error = error
    await run.emit(
        CellFinished(index, cell, position, total, "error", seconds, error, allowed, lost)
    )
    return None if allowed else "error"


class _Stop(Exception):
    """Execution stops at this cell without a reply (internal)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


async def _consume(
    run: _Run, execution: Execution, cell: Any, index: int, *, emit: bool = True
) -> None:
    async for msg in execution:
        changed = run.process(msg, cell, index)
        if run.outbox:
            await run.flush_outbox()
        if changed and emit:
            await run.emit(CellOutput(index, cell, msg))


async def _stop_callers_cell(run: _Run, execution: Execution, cell: Any, index: int) -> None:
    """The run is cancelled (or ``on_event`` raised) while the caller's kernel runs our cell:
    interrupt it and wait, briefly, for the end of the cell, so that the kernel is idle again
    (its next request is not aborted by our failed cell) and the cell records the interrupt.
    """
    with trio.CancelScope(shield=True), trio.move_on_after(INTERRUPT_GRACE):
        try:
            await run.interrupt()
            await _consume(run, execution, cell, index, emit=False)
        except Exception:  # the kernel may be dying: the caller's error matters more
            pass


def _clear_rest(run: _Run, stopped_at: int) -> None:
    """Clear the code cells after *stopped_at* that would have run: they did not."""
    options = run.options
    for cell in run.nb.cells[stopped_at + 1 :]:
        if cell.cell_type != "code" or options.skip_cells_with_tag in _tags(cell):
            continue
        cell.outputs = []
        cell.execution_count = None
        cell.get("metadata", {}).pop("execution", None)


def _check_arguments(
    *,
    kernel: object,
    kernel_name: object,
    cwd: object,
    cell_timeout: object,
    startup_timeout: object,
    allow_errors: object,
    allow_error_names: object,
    interrupt_on_timeout: object,
    skip_cells_with_tag: object,
    record_timing: object,
    store_widget_state: object,
    coalesce_streams: object,
    ipython_hist_file: object,
    extra_arguments: object,
    on_event: object,
) -> _Options:
    """:func:`execute_notebook`'s own arguments, checked before any I/O, as the run's options."""
    from .._client._client import KernelClient
    from .._launch._kernel import Kernel

    if kernel is not None and not isinstance(kernel, (Kernel, KernelClient)):
        raise TypeError(f"kernel must be a Kernel, a KernelClient or None, not {type_name(kernel)}")
    check_optional_str("kernel_name", kernel_name, nonempty=True)
    if cwd is not None and not isinstance(cwd, (str, os.PathLike)):
        raise TypeError(f"cwd must be a path or None, not {type_name(cwd)}")
    timeout = (
        None
        if cell_timeout is None
        else check_seconds("cell_timeout", cell_timeout, allow_inf=True)
    )
    check_seconds("startup_timeout", startup_timeout)
    if isinstance(allow_error_names, (str, bytes)) or not isinstance(allow_error_names, Iterable):
        raise TypeError(
            f"allow_error_names must be a collection of names, not {type_name(allow_error_names)}"
        )
    names = frozenset(allow_error_names)
    for name in names:
        check_str("allow_error_names[...]", name)
    check_str_sequence("extra_arguments", extra_arguments)
    check_optional_str("ipython_hist_file", ipython_hist_file)
    check_callable("on_event", on_event)
    return _Options(
        timeout=timeout,
        allow_errors=check_bool("allow_errors", allow_errors),
        allow_error_names=names,
        interrupt_on_timeout=check_bool("interrupt_on_timeout", interrupt_on_timeout),
        skip_cells_with_tag=check_str("skip_cells_with_tag", skip_cells_with_tag),
        record_timing=check_bool("record_timing", record_timing),
        store_widget_state=check_bool("store_widget_state", store_widget_state),
        coalesce_streams=check_bool("coalesce_streams", coalesce_streams),
    )


async def execute_notebook(
    nb: Any,
    *,
    kernel: Kernel | KernelClient | None = None,
    kernel_name: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
    cell_timeout: float | None = None,
    startup_timeout: float = 60.0,
    allow_errors: bool = False,
    allow_error_names: Iterable[str] = (),
    interrupt_on_timeout: bool = False,
    skip_cells_with_tag: str = "skip-execution",
    record_timing: bool = True,
    store_widget_state: bool = True,
    coalesce_streams: bool = False,
    ipython_hist_file: str | None = ":memory:",
    extra_arguments: Sequence[str] = (),
    kernel_options: Mapping[str, Any] | None = None,
    parameters: Mapping[str, Any] | None = None,
    on_event: Callable[[NotebookEvent], object] | None = None,
    limiter: trio.CapacityLimiter | None = None,
) -> Any:
    """Execute every code cell of *nb* in order and return the executed notebook.

    The notebook is executed in place (as nbclient does) and returned. Without ``kernel``,
    a kernel is started for the run (the one ``kernel_name`` or the notebook's
    ``kernelspec`` names, else ``python3``) in ``cwd`` and shut down before this returns;
    with ``kernel`` (a :class:`Kernel` or a :class:`KernelClient` you opened), the cells run
    there and the kernel is left running.

    Args:
        nb: an nbformat v4 ``NotebookNode`` (``nbformat.read(path, as_version=4)``).
        kernel: run in this kernel instead of starting one.
        kernel_name: the kernelspec to start (default: the notebook's).
        cwd: the started kernel's working directory (nbclient's ``resources`` path).
        cell_timeout: seconds each cell may run (``None``: no limit). A cell still running then
            is interrupted; its outputs, the interrupt's traceback, its execution count and
            timing are recorded.
        startup_timeout: seconds to wait for a started kernel to become ready.
        allow_errors: record errors and go on, instead of stopping at the first one.
        allow_error_names: exception names that do not stop the run.
        interrupt_on_timeout: a timed-out cell counts as an error (so with
            ``allow_errors`` the run goes on with the next cell) instead of stopping the run
            with :class:`CellTimeoutError`.
        skip_cells_with_tag: cells with this tag are not run.
        record_timing: write nbclient's ``metadata.execution`` timestamps into each cell.
        store_widget_state: write the ipywidgets state to ``metadata.widgets``.
        coalesce_streams: merge each cell's stream outputs per stream name and apply ``\\r``
            and ``\\b`` (nbclient's ``coalesce_streams``).
        ipython_hist_file: for an IPython kernel started here, its history database
            (``":memory:"``: executed code never reaches the disk; ``None``: IPython's
            default).
        extra_arguments: appended to the started kernel's command line.
        kernel_options: further keyword arguments for :func:`open_kernel`, checked (names
            and values) before any file is read or kernel started; not ``cwd``,
            ``extra_arguments``, ``startup_timeout`` or ``connect``, which the runner sets.
        parameters: papermill's parameters: assigned, in the kernel's language, in a cell
            tagged ``injected-parameters`` inserted after the cell tagged ``parameters``
            (see "Parameters" in :doc:`notebooks`), and recorded in
            ``metadata.papermill``.
        on_event: called with each :data:`NotebookEvent` (may be ``async``; the run waits
            for it).
        limiter: bounds how many notebooks run at once: the run borrows a token before it
            starts its kernel (or, with ``kernel``, before the first cell) and gives it back
            as soon as its cells are done, while the kernel it started shuts down, so the
            next notebook's kernel starts meanwhile. The call still returns only once that
            kernel has exited.

    Returns:
        the executed notebook (*nb* itself).

    Raises:
        TypeError: *nb* is not a notebook, an option has the wrong type, or
            ``kernel_options`` names an option :func:`open_kernel` does not take.
        ConfigurationError: an option is invalid, or options conflict (checked before any
            I/O).
        ParameterError: a parameter cannot be written in the kernel's language (checked
            before the kernel starts).
        CellExecutionError: a cell raised and errors were not allowed.
        CellTimeoutError: a cell did not finish within ``cell_timeout``.
        NotebookKernelDied: the kernel died during a cell.
        NoSuchKernel, KernelStartupError: the kernel could not be started.

    The errors carry the notebook as far as it ran (``exc.notebook``) and the index of the
    cell where execution stopped; the cells after it are cleared and the notebook's
    ``metadata.trio_enchannel`` records ``stopped_at`` and ``reason``.
    """
    _check_notebook(nb)
    if kernel is not None:
        conflicts = [
            name
            for name, given in (
                ("kernel_name", kernel_name is not None),
                ("cwd", cwd is not None),
                ("extra_arguments", bool(extra_arguments)),
                ("kernel_options", kernel_options is not None),
            )
            if given
        ]
        if conflicts:
            raise ConfigurationError(
                f"{', '.join(conflicts)} apply to a kernel the runner starts; not with kernel=..."
            )
    options = _check_arguments(
        kernel=kernel,
        kernel_name=kernel_name,
        cwd=cwd,
        cell_timeout=cell_timeout,
        startup_timeout=startup_timeout,
        allow_errors=allow_errors,
        allow_error_names=allow_error_names,
        interrupt_on_timeout=interrupt_on_timeout,
        skip_cells_with_tag=skip_cells_with_tag,
        record_timing=record_timing,
        store_widget_state=store_widget_state,
        coalesce_streams=coalesce_streams,
        ipython_hist_file=ipython_hist_file,
        extra_arguments=extra_arguments,
        on_event=on_event,
    )
    if parameters is not None and not isinstance(parameters, Mapping):
        raise TypeError(f"parameters must be a mapping, not {type(parameters).__name__}")
    if limiter is not None and not isinstance(limiter, trio.CapacityLimiter):
        raise TypeError(f"limiter must be a trio.CapacityLimiter, not {type(limiter).__name__}")
    launch = None
    if kernel is None:
        from .._launch._options import KernelOptions

        # open_kernel's options, names and values, checked before any file is read or kernel
        # started; the ones the runner sets itself are refused in kernel_options.
        launch = KernelOptions.from_mapping(
            "kernel_options",
            kernel_options,
            caller={
                "cwd": Path(cwd) if isinstance(cwd, (str, os.PathLike)) else cwd,
                "extra_arguments": extra_arguments,
                "startup_timeout": startup_timeout,
                "connect": True,
            },
        )
    slot = _Slot(limiter)
    try:
        return await _execute(
            nb,
            slot,
            options,
            kernel=kernel,
            kernel_name=kernel_name,
            ipython_hist_file=ipython_hist_file,
            launch=launch,
            parameters=parameters,
            on_event=on_event,
        )
    finally:
        slot.release()


class _Slot:
    """The token a run borrows from the caller's limiter (none without one)."""

    def __init__(self, limiter: trio.CapacityLimiter | None) -> None:
        self.limiter = limiter
        self.held = False

    async def acquire(self) -> None:
        if self.limiter is not None and not self.held:
            await self.limiter.acquire_on_behalf_of(self)
            self.held = True

    def release(self) -> None:
        if self.limiter is not None and self.held:
            self.held = False
            self.limiter.release_on_behalf_of(self)


async def _execute(
    nb: Any,
    slot: _Slot,
    options: _Options,
    *,
    kernel: Kernel | KernelClient | None,
    kernel_name: str | None,
    ipython_hist_file: str | None,
    launch: KernelOptions | None,
    parameters: Mapping[str, Any] | None,
    on_event: Callable[[NotebookEvent], object] | None,
) -> Any:
    if kernel is not None:
        from .._client._client import KernelClient

        if parameters is not None and not isinstance(kernel, KernelClient):
            _inject(nb, parameters, kernel.spec.name, kernel.spec.language)
            parameters = None
        await slot.acquire()
        return await _execute_in(
            nb, kernel, options, on_event, trio.current_time(), parameters, caller_owned=True
        )
    from .._launch._kernelspec import get_kernel_spec
    from .._launch._open import open_kernel_with

    assert launch is not None  # built by execute_notebook whenever it starts the kernel
    kernelspec = nb.get("metadata", {}).get("kernelspec") or {}
    name = kernel_name or kernelspec.get("name") or "python3"
    # A kernelspec lookup reads files: off the event loop (other runs go on meanwhile).
    spec = await trio.to_thread.run_sync(
        functools.partial(get_kernel_spec, str(name), kernel_dirs=launch.kernel_dirs),
        abandon_on_cancel=True,
    )
    if parameters is not None:
        _inject(nb, parameters, spec.name, spec.language)
    arguments = notebook_kernel_arguments(spec, ipython_hist_file=ipython_hist_file)
    # the notebook's arguments first, then the caller's (both checked str sequences)
    launch = attrs.evolve(launch, extra_arguments=(*arguments, *launch.extra_arguments))
    await slot.acquire()
    started = trio.current_time()
    async with open_kernel_with(spec, launch) as started_kernel:
        try:
            return await _execute_in(nb, started_kernel, options, on_event, started)
        finally:
            # The cells are done: the next run may start its kernel while this one shuts
            # down (leaving the block waits for it to exit).
            slot.release()


def _inject(
    nb: Any, parameters: Mapping[str, Any], kernel_name: str | None, kernel_language: str | None
) -> None:
    """Inject *parameters* into *nb* itself (the runner executes in place), in the language
    papermill would choose."""
    from ._parameters import inject_parameters, parameters_language

    language = parameters_language(
        nb, kernel_name=kernel_name, kernel_language=kernel_language or None
    )
    injected = inject_parameters(nb, parameters, language=language)
    nb.clear()
    nb.update(injected)


async def _execute_in(
    nb: Any,
    kernel: Kernel | KernelClient,
    options: _Options,
    on_event: Callable[[NotebookEvent], object] | None,
    started: float,
    parameters: Mapping[str, Any] | None = None,
    *,
    caller_owned: bool = False,
) -> Any:
    from .._client._client import KernelClient

    if isinstance(kernel, KernelClient):
        client = kernel

        async def interrupt() -> object:
            return await client.interrupt()

    else:
        client = kernel.client
        interrupt = kernel.interrupt
    run = _Run(nb, client, options, interrupt, on_event)
    run.caller_owned = caller_owned
    # A launched kernel's client asked for the kernel info when the process became ready
    # (and asks again after each restart): no second round trip. A client of the caller's
    # may have been opened on a kernel that changed since.
    info = client.kernel_info_cache if not isinstance(kernel, KernelClient) else None
    if info is None:
        info = await client.kernel_info()
    if parameters is not None:  # a client: its kernel's language is known only now
        language = info.language_info.get("name") if info.language_info else None
        _inject(nb, parameters, None, str(language or ""))
    if info.language_info:
        nb.metadata["language_info"] = run.nbformat.from_dict(dict(info.language_info))
    nb.metadata.pop(METADATA_KEY, None)
    status, stopped_at = "cancelled", None
    current: list[int] = []

    def on_start(event: NotebookEvent) -> object:
        if isinstance(event, CellStarted):
            current[:] = [event.index]
        return on_event(event) if on_event is not None else None

    run.on_event = on_start
    detail = ""
    try:
        status, stopped_at = await _run_cells(run)
    except _Stop as stop:
        status, detail = stop.reason, stop.detail
        stopped_at = current[0] if current else None
    finally:
        if status == "cancelled":
            stopped_at = current[0] if current else None
        if stopped_at is not None:
            _clear_rest(run, stopped_at)
            nb.metadata[METADATA_KEY] = run.nbformat.from_dict(
                {"stopped_at": stopped_at, "reason": status}
            )
        run.widgets_metadata()
        with trio.CancelScope(shield=status == "cancelled"):
            run.on_event = on_event
            await run.emit(NotebookFinished(nb, status, stopped_at, trio.current_time() - started))
    if status == "ok":
        return nb
    assert stopped_at is not None
    if status == "error":
        error = run.last_error or ErrorInfo("", "")
        raise CellExecutionError(
            error.ename, error.evalue, error.traceback, notebook=nb, cell_index=stopped_at
        )
    if status == "timeout":
        assert options.timeout is not None
        raise CellTimeoutError(options.timeout, notebook=nb, cell_index=stopped_at, detail=detail)
    raise NotebookKernelDied(detail, notebook=nb, cell_index=stopped_at)
