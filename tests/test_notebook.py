"""execute_notebook: stopping, timeouts, events, kernels, concurrency (real kernels)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import trio

from trio_enchannel import (
    CellExecutionError,
    CellFinished,
    CellOutput,
    CellStarted,
    CellTimeoutError,
    ConfigurationError,
    NoSuchKernel,
    NotebookEvent,
    NotebookFinished,
    NotebookKernelDied,
    ParameterError,
    execute_notebook,
    open_kernel,
)

nbformat: Any = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")
v4: Any = nbformat.v4

STALE = v4.new_output("stream", name="stdout", text="from an earlier run\n")


def notebook(*sources: str, kernel: str = "python3", **tags: Sequence[str]) -> Any:
    """A notebook whose code cells carry stale outputs, as a saved notebook would."""
    cells = []
    for i, source in enumerate(sources):
        if source.startswith("md:"):
            cells.append(v4.new_markdown_cell(source[3:]))
            continue
        cell = v4.new_code_cell(source, execution_count=99, outputs=[STALE])
        cell_tags = tags.get(f"c{i}")
        if cell_tags:
            cell.metadata["tags"] = list(cell_tags)
        cells.append(cell)
    return v4.new_notebook(
        cells=cells, metadata={"kernelspec": {"name": kernel, "display_name": kernel}}
    )


def texts(cell: Any) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


async def test_runs_every_cell_and_reports_events_in_order() -> None:
    nb = notebook("md:# title", "print('one')", "", "x = 2\nx * 21")
    events: list[NotebookEvent] = []
    with trio.fail_after(60):
        result = await execute_notebook(nb, on_event=events.append)
    assert result is nb
    assert texts(nb.cells[1]) == "one\n"
    assert nb.cells[1].execution_count == 1
    # The empty cell is not sent to the kernel: counts stay consecutive, it keeps its state.
    assert nb.cells[2].execution_count == 99
    assert nb.cells[3].execution_count == 2
    assert nb.cells[3].outputs[0].data["text/plain"] == "42"
    assert set(nb.cells[3].metadata.execution) == {
        "iopub.status.busy",
        "iopub.execute_input",
        "shell.execute_reply",
        "iopub.status.idle",
    }
    assert nb.metadata.language_info.name == "python"
    kinds = [(type(e).__name__, getattr(e, "index", None)) for e in events]
    assert kinds[0] == ("CellStarted", 1)
    assert ("CellOutput", 1) in kinds
    assert [k for k in kinds if k[0] != "CellOutput"] == [
        ("CellStarted", 1),
        ("CellFinished", 1),
        ("CellStarted", 3),
        ("CellFinished", 3),
        ("NotebookFinished", None),
    ]
    started = [e for e in events if isinstance(e, CellStarted)]
    assert [(e.position, e.total) for e in started] == [(1, 2), (2, 2)]
    finished = events[-1]
    assert isinstance(finished, NotebookFinished)
    assert (finished.status, finished.stopped_at) == ("ok", None)
    assert "trio_enchannel" not in nb.metadata


async def test_an_error_stops_the_run_clears_later_cells_and_marks_the_stop() -> None:
    nb = notebook("print('ran')", "1/0", "print('never')", "md:text", "print('nor this')")
    events: list[NotebookEvent] = []
    with trio.fail_after(60), pytest.raises(CellExecutionError) as info:
        await execute_notebook(nb, on_event=events.append)
    exc = info.value
    assert (exc.ename, exc.cell_index) == ("ZeroDivisionError", 1)
    assert any("ZeroDivisionError" in line for line in exc.traceback)
    assert exc.notebook is nb
    assert nb.cells[1].outputs[-1].output_type == "error"
    assert nb.cells[1].execution_count == 2
    for later in (nb.cells[2], nb.cells[4]):  # stale outputs gone: they did not run
        assert later.outputs == []
        assert later.execution_count is None
    assert nb.metadata.trio_enchannel == {"stopped_at": 1, "reason": "error"}
    failed = [e for e in events if isinstance(e, CellFinished) and e.status == "error"]
    assert failed[0].error is not None and not failed[0].allowed
    assert events[-1] == NotebookFinished(nb, "error", 1, events[-1].seconds)  # type: ignore[union-attr]


async def test_allowed_errors_and_tags() -> None:
    nb = notebook(
        "raise KeyError('tagged')",
        "raise ValueError('named')",
        "print('skipped')",
        "print('last')",
        c0=["raises-exception"],
        c2=["skip-execution"],
    )
    events: list[NotebookEvent] = []
    with trio.fail_after(60):
        await execute_notebook(nb, allow_error_names=["ValueError"], on_event=events.append)
    assert nb.cells[0].outputs[-1].ename == "KeyError"
    assert nb.cells[1].outputs[-1].ename == "ValueError"
    assert nb.cells[2].outputs == [STALE]  # skipped cells are left alone, like nbclient
    assert texts(nb.cells[3]) == "last\n"
    statuses = [(e.index, e.status, e.allowed) for e in events if isinstance(e, CellFinished)]
    assert statuses == [
        (0, "error", True),
        (1, "error", True),
        (2, "skipped", False),
        (3, "ok", False),
    ]


async def test_a_timed_out_cell_records_the_interrupt_and_stops() -> None:
    nb = notebook("print('ok')", "import time\nprint('sleeping', flush=True)\ntime.sleep(60)", "1")
    with trio.fail_after(60), pytest.raises(CellTimeoutError) as info:
        await execute_notebook(nb, cell_timeout=1.5)
    assert (info.value.cell_index, info.value.timeout) == (1, 1.5)
    cell = nb.cells[1]
    assert texts(cell) == "sleeping\n"
    assert cell.outputs[-1].ename == "KeyboardInterrupt"
    assert cell.execution_count == 2
    assert "shell.execute_reply" in cell.metadata.execution
    assert nb.cells[2].outputs == [] and nb.cells[2].execution_count is None
    assert nb.metadata.trio_enchannel == {"stopped_at": 1, "reason": "timeout"}


async def test_interrupt_on_timeout_with_allow_errors_goes_on() -> None:
    nb = notebook("import time\ntime.sleep(60)", "print('next')")
    events: list[NotebookEvent] = []
    with trio.fail_after(60):
        await execute_notebook(
            nb,
            cell_timeout=1.5,
            interrupt_on_timeout=True,
            allow_errors=True,
            on_event=events.append,
        )
    assert nb.cells[0].outputs[-1].ename == "KeyboardInterrupt"
    assert texts(nb.cells[1]) == "next\n"
    timeouts = [e for e in events if isinstance(e, CellFinished) and e.status == "timeout"]
    assert len(timeouts) == 1 and timeouts[0].allowed


async def test_history_stays_in_memory() -> None:
    nb = notebook("print(get_ipython().history_manager.hist_file)")
    with trio.fail_after(60):
        await execute_notebook(nb)
    assert texts(nb.cells[0]) == ":memory:\n"


async def test_many_notebooks_at_once_in_one_program() -> None:
    notebooks = [notebook(f"import os\nprint({i}, os.getpid())") for i in range(3)]
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            for nb in notebooks:
                nursery.start_soon(execute_notebook, nb)
    pids = set()
    for i, nb in enumerate(notebooks):
        number, pid = texts(nb.cells[0]).split()
        assert int(number) == i
        pids.add(pid)
    assert len(pids) == 3  # one kernel each


async def test_a_limiter_is_free_for_the_next_run_while_the_kernel_shuts_down() -> None:
    limiter = trio.CapacityLimiter(1)
    nb = notebook("import os\nprint(os.getpid())")
    returned = False
    when_the_next_got_the_token: list[tuple[bool, bool]] = []

    def on_event(event: NotebookEvent) -> None:
        if isinstance(event, CellStarted):  # the run holds the token: queue the next one
            nursery.start_soon(next_run)

    async def next_run() -> None:
        async with limiter:
            pid = int(texts(nb.cells[0]))
            when_the_next_got_the_token.append((returned, _exists(pid)))

    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            await execute_notebook(nb, limiter=limiter, on_event=on_event)
            returned = True
    # The next run got the token once the cells were done, while the kernel was still there
    # (shutting down); the call returned only once the kernel had exited.
    assert when_the_next_got_the_token == [(False, True)]
    assert not _exists(int(texts(nb.cells[0])))
    assert limiter.borrowed_tokens == 0


def _exists(pid: int) -> bool:
    """Whether process *pid* exists (a zombie not yet reaped does)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_limiter_token_is_given_back_however_the_run_ends() -> None:
    limiter = trio.CapacityLimiter(1)
    borrowed: list[int] = []

    def on_event(event: NotebookEvent) -> None:
        if isinstance(event, CellStarted):
            borrowed.append(limiter.borrowed_tokens)

    with trio.fail_after(120):
        with pytest.raises(CellExecutionError):
            await execute_notebook(notebook("1 / 0"), limiter=limiter, on_event=on_event)
        assert limiter.borrowed_tokens == 0
        with pytest.raises(NoSuchKernel):
            await execute_notebook(notebook("1", kernel="no-such-kernel"), limiter=limiter)
        assert limiter.borrowed_tokens == 0
        with trio.CancelScope() as scope:

            def cancel(event: NotebookEvent) -> None:
                on_event(event)
                if isinstance(event, CellStarted):
                    scope.cancel()

            await execute_notebook(
                notebook("import time\ntime.sleep(60)"), limiter=limiter, on_event=cancel
            )
        assert scope.cancelled_caught and limiter.borrowed_tokens == 0
        async with open_kernel("python3") as kernel:  # the caller's kernel: around the cells
            await execute_notebook(notebook("1"), kernel=kernel, limiter=limiter, on_event=on_event)
            assert limiter.borrowed_tokens == 0
    assert borrowed == [1, 1, 1]


async def test_in_a_kernel_or_client_the_caller_owns(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with open_kernel("python3", cwd=tmp_path) as kernel:
            await kernel.client.execute("shared = 'kept'")
            nb = notebook("print(shared)")
            await execute_notebook(nb, kernel=kernel)
            assert texts(nb.cells[0]) == "kept\n"
            nb = notebook("import os\nprint(os.getcwd())")
            await execute_notebook(nb, kernel=kernel.client)
            assert texts(nb.cells[0]) == f"{tmp_path}\n"
            # The kernel outlives the runs.
            assert (await kernel.client.execute("shared")).status == "ok"


async def test_cancelling_clears_what_did_not_run_and_leaves_no_kernel() -> None:
    nb = notebook("print('first')", "import time\ntime.sleep(60)", "print('never')")
    events: list[NotebookEvent] = []

    def on_event(event: NotebookEvent) -> None:
        events.append(event)
        if isinstance(event, CellStarted) and event.index == 1:
            scope.cancel()

    with trio.fail_after(60):
        with trio.CancelScope() as scope:
            await execute_notebook(nb, on_event=on_event)
    assert scope.cancelled_caught
    assert texts(nb.cells[0]) == "first\n"
    assert nb.cells[2].outputs == [] and nb.cells[2].execution_count is None
    assert nb.metadata.trio_enchannel == {"stopped_at": 1, "reason": "cancelled"}
    last = events[-1]
    assert isinstance(last, NotebookFinished) and last.status == "cancelled"


async def test_a_dying_kernel_fails_at_once() -> None:
    nb = notebook("import os\nos._exit(3)", "print('never')")
    with trio.fail_after(60), pytest.raises(NotebookKernelDied) as info:
        await execute_notebook(nb)
    assert info.value.cell_index == 0
    assert nb.metadata.trio_enchannel["reason"] == "kernel died"


async def test_output_events_show_the_outputs_as_they_grow() -> None:
    nb = notebook("import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.1)")
    seen: list[int] = []

    async def on_event(event: NotebookEvent) -> None:
        if isinstance(event, CellOutput):
            seen.append(len(event.cell.outputs))

    with trio.fail_after(60):
        await execute_notebook(nb, on_event=on_event)
    assert seen == [1, 2, 3]  # one output per chunk, as nbclient writes them


async def test_coalesce_streams_like_nbclient() -> None:
    source = (
        "import sys, time\nfor i in range(3):\n    print(f'\\rstep {i}', end='', flush=True)\n"
        "    time.sleep(0.05)\nprint(flush=True)\nprint('x\\by', flush=True)"
    )
    nb = notebook(source)
    with trio.fail_after(60):
        await execute_notebook(nb, coalesce_streams=True)
    assert [o.output_type for o in nb.cells[0].outputs] == ["stream"]
    assert nb.cells[0].outputs[0].text == "step 2\ny\n"


def test_bad_arguments_are_refused_before_any_kernel_starts() -> None:
    async def main() -> None:
        with pytest.raises(TypeError):
            await execute_notebook("notebook.ipynb")
        with pytest.raises(TypeError, match=r"nbformat\.from_dict"):
            await execute_notebook({"nbformat": 4, "cells": []})
        with pytest.raises(ConfigurationError, match="nbformat 4"):
            await execute_notebook(nbformat.from_dict({"nbformat": 3, "cells": []}))
        with pytest.raises(ConfigurationError, match="cell_timeout"):
            await execute_notebook(notebook("1"), cell_timeout=0)
        with pytest.raises(ConfigurationError, match="kernel_name"):
            await execute_notebook(notebook("1"), kernel=object(), kernel_name="python3")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="allow_error_names"):
            await execute_notebook(notebook("1"), allow_error_names="ValueError")
        with pytest.raises(TypeError, match=r"trio\.CapacityLimiter"):
            await execute_notebook(notebook("1"), limiter=4)  # type: ignore[arg-type]

    trio.run(main)


async def test_xeus_python_counts_skip_empty_cells() -> None:
    pytest.importorskip("xpython_launcher")
    nb = notebook("1", "", "  \n", "2", kernel="xpython")
    with trio.fail_after(60):
        await execute_notebook(nb)
    assert [c.execution_count for c in nb.cells] == [1, 99, 99, 2]
    assert nb.cells[3].outputs[0].execution_count == 2


async def test_parameters_are_injected_after_the_parameters_cell() -> None:
    nb = notebook("alpha = 1\nlabel = 'default'", "print(alpha, label)", c0=["parameters"])
    with trio.fail_after(60):
        result = await execute_notebook(nb, parameters={"alpha": 5, "label": "given"})
    assert result is nb  # still executed in place
    injected = nb.cells[1]
    assert injected.metadata.tags == ["injected-parameters"]
    assert injected.execution_count == 2
    assert texts(nb.cells[2]) == "5 given\n"
    assert nb.metadata.papermill.parameters == {"alpha": 5, "label": "given"}


def test_bad_parameters_are_refused_before_any_kernel_starts() -> None:
    async def main() -> None:
        with pytest.raises(ParameterError, match="not a valid variable name"):
            await execute_notebook(notebook("1"), parameters={"not valid": 1})
        with pytest.raises(TypeError, match="parameters must be a mapping"):
            await execute_notebook(notebook("1"), parameters=[("a", 1)])  # type: ignore[arg-type]

    trio.run(main)


async def test_cancelling_a_run_in_the_callers_kernel_interrupts_the_cell() -> None:
    nb = notebook("import time\nprint('sleeping', flush=True)\ntime.sleep(60)")

    def on_event(event: NotebookEvent) -> None:
        if isinstance(event, CellOutput):  # the cell runs: stop the run there
            scope.cancel()

    with trio.fail_after(60):
        async with open_kernel("python3") as kernel:
            with trio.CancelScope() as scope:
                await execute_notebook(nb, kernel=kernel, on_event=on_event)
            assert scope.cancelled_caught
            assert nb.cells[0].outputs[-1].ename == "KeyboardInterrupt"  # recorded
            # The kernel does not go on sleeping in our cell: it answers at once.
            with trio.fail_after(20):
                result = await kernel.client.execute("1 + 1")
            assert result.status == "ok"


@pytest.mark.slow
async def test_a_cell_that_ignores_the_interrupt_fails_the_run_once_the_grace_is_over() -> None:
    stubborn = (
        "import time\n"
        "while True:\n"
        "    try:\n"
        "        time.sleep(0.05)\n"
        "    except KeyboardInterrupt:\n"
        "        pass\n"
    )
    nb = notebook(stubborn, "print('never')")
    with trio.fail_after(60), pytest.raises(CellTimeoutError, match="did not answer") as info:
        await execute_notebook(nb, cell_timeout=1, interrupt_on_timeout=True, allow_errors=True)
    assert info.value.cell_index == 0
    assert nb.metadata.trio_enchannel == {"stopped_at": 0, "reason": "timeout"}
    assert nb.cells[1].outputs == []


async def test_output_widget_captures_and_display_updates_reach_earlier_cells() -> None:
    pytest.importorskip("ipywidgets")
    nb = notebook(
        "import ipywidgets as w\nout = w.Output()\nwith out:\n    print('captured')\nout",
        "from IPython.display import clear_output, display\nprint('in the cell')\n"
        "with out:\n    clear_output()\n    print('fresh')",
        "h = display('first', display_id=True)",
        "h.update('second')",
    )
    with trio.fail_after(60):
        await execute_notebook(nb)
    # Captured output goes to the widget, not the cell; clear_output there clears only it.
    assert [o.output_type for o in nb.cells[0].outputs] == ["execute_result"]
    model_id = nb.cells[0].outputs[0].data["application/vnd.jupyter.widget-view+json"]["model_id"]
    assert texts(nb.cells[1]) == "in the cell\n"
    state = nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    assert state[model_id]["state"]["outputs"] == [
        {"output_type": "stream", "name": "stdout", "text": "fresh\n"}
    ]
    # A later cell's update changes the output an earlier cell shows.
    assert nb.cells[2].outputs[0].data["text/plain"] == "'second'"
    assert nb.cells[3].outputs == []


async def test_kernel_options_reach_the_started_kernel(tmp_path: Path) -> None:
    """``kernel_options`` are open_kernel's (checked, then given to the kernel the runner
    starts) alongside the runner's own ``cwd`` and ``extra_arguments``."""
    nb = notebook(
        "import os, sys\n"
        "print(os.environ['ENCHANNEL_OPTION'], os.getcwd() == sys.argv[-1] or os.getcwd())"
    )
    with trio.fail_after(60):
        await execute_notebook(
            nb,
            cwd=tmp_path,
            extra_arguments=[str(tmp_path)],
            kernel_options={
                "env": {"ENCHANNEL_OPTION": "given"},
                "shutdown_grace": 1.0,
                "client_options": {"unclaimed_buffer": 10},
            },
        )
    assert texts(nb.cells[0]) == "given True\n"
