"""The trio-enchannel command, driven as a real subprocess (against ipykernel where marked)."""

from __future__ import annotations

import base64
import importlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from trio_enchannel._cli._common import EXIT_OUTPUT_LOST, EXIT_STATUSES

from .conftest import KernelProcess

#: Notebooks need the notebook extra (nbformat); without it the CLI refuses every notebook.
needs_nbformat = pytest.mark.skipif(
    importlib.util.find_spec("nbformat") is None, reason="the notebook extra"
)

# A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
IMAGE_CODE = (
    "import base64\n"
    "from IPython.display import Image\n"
    f"Image(data=base64.b64decode({base64.b64encode(PNG).decode()!r}))"
)
TIMEOUT = 60


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("NO_COLOR", None)
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@attrs.frozen
class Done:
    returncode: int
    stdout: str
    stderr: str


async def _abort_then_kill(process: trio.Process) -> None:
    # SIGABRT makes the command (PYTHONFAULTHANDLER=1) print every thread's stack, so a hang
    # explains itself in the test report; SIGKILL if that is not enough.
    process.send_signal(signal.SIGABRT)
    with trio.move_on_after(5):
        await process.wait()
    if process.returncode is None:
        process.kill()


async def cli(
    tmp_path: Path, *args: str, stdin: bytes = b"", env: dict[str, str] | None = None
) -> Done:
    """Run ``python -m trio_enchannel ARGS`` in *tmp_path* to completion."""
    out_path, err_path = tmp_path / ".cli-stdout", tmp_path / ".cli-stderr"
    environment = env if env is not None else cli_env(tmp_path)
    environment["PYTHONFAULTHANDLER"] = "1"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        try:
            with trio.fail_after(TIMEOUT):
                proc = await trio.run_process(
                    [sys.executable, "-m", "trio_enchannel", *args],
                    stdin=stdin,
                    stdout=out,
                    stderr=err,
                    check=False,
                    cwd=tmp_path,
                    env=environment,
                    deliver_cancel=_abort_then_kill,
                )
        except trio.TooSlowError:
            pytest.fail(
                f"trio-enchannel {' '.join(args)} did not finish within {TIMEOUT} s\n"
                f"stdout:\n{out_path.read_text()}\nstderr:\n{err_path.read_text()}"
            )
    return Done(proc.returncode, out_path.read_text(), err_path.read_text())


@attrs.define(eq=False)
class Running:
    """A command running in the background, its output collected as it comes."""

    process: trio.Process
    stdout: bytearray = attrs.Factory(bytearray)
    stderr: bytearray = attrs.Factory(bytearray)
    changed: trio.Event = attrs.Factory(trio.Event)

    async def collect(self, stream: trio.abc.ReceiveStream, into: bytearray) -> None:
        async for chunk in stream:
            into += chunk
            self.changed.set()
            self.changed = trio.Event()

    async def wait_for(self, text: str, *, where: str = "stdout") -> None:
        buffer = self.stdout if where == "stdout" else self.stderr
        while text.encode() not in buffer:
            await self.changed.wait()


@asynccontextmanager
async def running(
    tmp_path: Path, *args: str, stdin: int = subprocess.DEVNULL
) -> AsyncIterator[Running]:
    async with trio.open_nursery() as nursery:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "trio_enchannel", *args],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
            env=cli_env(tmp_path),
        )
        run = Running(process)
        assert process.stdout is not None and process.stderr is not None
        nursery.start_soon(run.collect, process.stdout, run.stdout)
        nursery.start_soon(run.collect, process.stderr, run.stderr)
        try:
            yield run
        finally:
            # Shown by pytest when the test fails.
            print(f"--- stdout ---\n{run.stdout.decode(errors='replace')}")
            print(f"--- stderr ---\n{run.stderr.decode(errors='replace')}")
            if process.returncode is None:
                process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()


# --------------------------------------------------------------------------- no kernel


async def test_help_lists_the_commands_and_exit_statuses(tmp_path: Path) -> None:
    done = await cli(tmp_path, "--help")
    assert done.returncode == 0
    for command in ("kernels", "run", "info"):
        assert command in done.stdout
    for code, meaning in EXIT_STATUSES.items():
        assert f"{code}  {meaning}" in done.stdout


async def test_kernels_and_help_start_without_trio(tmp_path: Path) -> None:
    # Trio (a tenth of a second to import) is loaded only by the subcommands that run it.
    check = (
        "import sys\n"
        "from trio_enchannel._cli import main\n"
        "for argv in (['kernels'], ['--help'], ['run', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('trio' in sys.modules, file=sys.stderr)\n"
    )
    with trio.fail_after(TIMEOUT):
        proc = await trio.run_process(
            [sys.executable, "-c", check],
            env=cli_env(tmp_path),
            capture_stdout=True,
            capture_stderr=True,
        )
    assert proc.stderr.decode().splitlines()[-1] == "False"


async def test_console_script_is_installed(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "trio-enchannel"
    if not script.exists():
        found = shutil.which("trio-enchannel")
        if found is None:
            pytest.skip("the project is not installed with its console script")
        script = Path(found)
    with trio.fail_after(TIMEOUT):
        proc = await trio.run_process([str(script), "--version"], capture_stdout=True)
    assert proc.stdout.decode().startswith("trio-enchannel ")


def _kernelspec(root: Path, name: str, language: str, display: str) -> Path:
    spec_dir = root / "kernels" / name
    spec_dir.mkdir(parents=True)
    spec = {"argv": ["false", "{connection_file}"], "display_name": display, "language": language}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return spec_dir


async def test_kernels_lists_name_language_display_name_and_path(tmp_path: Path) -> None:
    spec_dir = _kernelspec(tmp_path / "data", "toy-lang", "toylang", "Toy Language 1.0")
    env = cli_env(tmp_path, JUPYTER_PATH=str(tmp_path / "data"))
    done = await cli(tmp_path, "kernels", env=env)
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["NAME", "LANGUAGE", "DISPLAY", "NAME", "PATH"]
    toy = next(row for row in rows if row.startswith("toy-lang "))
    assert "toylang" in toy and "Toy Language 1.0" in toy and toy.endswith(str(spec_dir))

    done = await cli(tmp_path, "kernels", "--json", env=env)
    data = json.loads(done.stdout)
    assert data["toy-lang"]["display_name"] == "Toy Language 1.0"
    assert data["toy-lang"]["resource_dir"] == str(spec_dir)


async def test_unknown_kernel_lists_the_kernels_that_exist(tmp_path: Path) -> None:
    _kernelspec(tmp_path / "data", "toy-lang", "toylang", "Toy")
    env = cli_env(tmp_path, JUPYTER_PATH=str(tmp_path / "data"))
    done = await cli(tmp_path, "run", "-k", "no-such-kernel", "-c", "1", env=env)
    assert done.returncode == 2
    assert "no kernel named 'no-such-kernel'" in done.stderr
    assert "toy-lang" in done.stderr
    assert "Traceback" not in done.stderr


@needs_nbformat
async def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    done = await cli(tmp_path, "run", "nothing-here.py")
    assert (done.returncode, done.stderr.strip()) == (
        2,
        "trio-enchannel: error: no such file: nothing-here.py",
    )
    done = await cli(tmp_path, "run", "nothing-here.ipynb")
    assert (done.returncode, done.stderr.strip()) == (
        2,
        "trio-enchannel: error: no such file: nothing-here.ipynb",
    )


@needs_nbformat
async def test_invalid_notebook_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "broken.ipynb").write_text("{not json")
    done = await cli(tmp_path, "run", "broken.ipynb")
    assert done.returncode == 2
    assert "broken.ipynb is not a valid notebook" in done.stderr


@pytest.mark.parametrize("flag", [["-o", "out.ipynb"], ["--inplace"], ["--allow-errors"]])
async def test_notebook_options_need_a_notebook(tmp_path: Path, flag: list[str]) -> None:
    done = await cli(tmp_path, "run", "-c", "1", *flag)
    assert done.returncode == 2
    assert "applies to notebooks only" in done.stderr


async def test_info_with_a_missing_connection_file(tmp_path: Path) -> None:
    done = await cli(tmp_path, "info", "kernel-nope.json")
    assert done.returncode == 2
    assert "no such connection file: kernel-nope.json" in done.stderr


async def test_info_times_out_when_nobody_answers(tmp_path: Path) -> None:
    # Ports nobody listens on (allocated, then left unused).
    from trio_enchannel import ConnectionInfo

    info = ConnectionInfo.allocate()
    path = tmp_path / "silent.json"
    path.write_text(json.dumps(info.to_dict()))
    done = await cli(tmp_path, "info", str(path), "--timeout", "1")
    assert done.returncode == 124
    assert "no kernel_info reply" in done.stderr
    assert "within 1 s" in done.stderr


# --------------------------------------------------------------------------- ipykernel

kernel = pytest.mark.kernel


@kernel
async def test_run_code(tmp_path: Path) -> None:
    done = await cli(tmp_path, "run", "-c", "print(6 * 7)")
    assert (done.returncode, done.stdout) == (0, "42\n"), done.stderr
    assert done.stderr == ""


@kernel
async def test_one_output_larger_than_the_iopub_byte_bound_is_shown(tmp_path: Path) -> None:
    # Issue #12: a single 40 MB message (more than iopub_buffer_bytes, 32 MiB) was dropped
    # although nothing else was buffered; the command printed nothing and exited 0.
    done = await cli(tmp_path, "run", "-c", "print('x' * 40_000_000)")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "x" * 40_000_000 + "\n"
    assert "slower than the kernel" not in done.stderr


def test_output_dropped_on_the_way_is_exit_status_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue #12: IOPub messages dropped for a slow consumer left the command exiting 0."""
    from trio_enchannel import open_client
    from trio_enchannel._cli import main
    from trio_enchannel._launch import _open

    from .test_client_routing import CountingIOPub, memory_pair

    @asynccontextmanager
    async def kernel_that_loses_output(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        channels, kernel = memory_pair()
        iopub = CountingIOPub(channels.iopub)
        channels = attrs.evolve(channels, iopub=iopub)

        async def kernel_side() -> None:
            req = await kernel.shell.receive()
            await kernel.status(req, "busy")
            iopub.drops[req.msg_id] = 3
            await kernel.publish(req, "stream", name="stdout", text="kept\n")
            await kernel.reply(req, status="ok", execution_count=1)
            await kernel.status(req, "idle")

        async with open_client(channels) as client, trio.open_nursery() as nursery:
            nursery.start_soon(kernel_side)
            yield _KernelStandIn(client)
            nursery.cancel_scope.cancel()

    monkeypatch.setattr(_open, "open_kernel", kernel_that_loses_output)
    code = "print('x' * 10**8)"
    status = main(["run", "-c", code, "--output-dir", str(tmp_path), "--timeout", str(TIMEOUT)])
    out, err = capsys.readouterr()
    assert status == EXIT_OUTPUT_LOST == 4, err
    assert out == "kept\n"
    assert "3 outputs lost" in err


@attrs.frozen
class _KernelStandIn:
    """Stands for the launcher's Kernel: the command only uses its client here."""

    client: Any


@kernel
async def test_run_file_keeps_stdout_and_stderr_apart_and_prints_the_value(tmp_path: Path) -> None:
    (tmp_path / "script.py").write_text(
        "import sys\nprint('to stdout')\nprint('to stderr', file=sys.stderr)\n6 * 7\n"
    )
    done = await cli(tmp_path, "run", "script.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "to stdout\n42\n"
    assert done.stderr == "to stderr\n"


@kernel
async def test_code_from_standard_input(tmp_path: Path) -> None:
    done = await cli(tmp_path, "run", "-", stdin=b"print('piped code')\n")
    assert (done.returncode, done.stdout) == (0, "piped code\n"), done.stderr


@kernel
async def test_output_streams_live(tmp_path: Path) -> None:
    # The code prints, then waits for a file that the test creates only after it has seen the
    # printed line: the command must show output while the code still runs.
    flag = tmp_path / "go"
    code = (
        "import os, time\n"
        "print('first', flush=True)\n"
        f"while not os.path.exists({str(flag)!r}): time.sleep(0.01)\n"
        "print('second')\n"
    )
    with trio.fail_after(TIMEOUT):
        async with running(tmp_path, "run", "-c", code) as run:
            await run.wait_for("first\n")
            assert b"second" not in run.stdout
            flag.touch()
            assert await run.process.wait() == 0
            await run.wait_for("second\n")


@kernel
async def test_error_shows_a_plain_traceback_and_exits_1(tmp_path: Path) -> None:
    done = await cli(tmp_path, "run", "-c", "def f():\n    return 1 / 0\nf()")
    assert done.returncode == 1
    assert "ZeroDivisionError" in done.stderr
    assert "return 1 / 0" in done.stderr
    assert "\x1b[" not in done.stderr  # not a terminal: no colour codes
    assert done.stdout == ""


@kernel
async def test_colour_can_be_forced(tmp_path: Path) -> None:
    done = await cli(tmp_path, "run", "--color", "always", "-c", "1 / 0")
    assert done.returncode == 1
    assert "\x1b[" in done.stderr


@kernel
async def test_input_and_getpass_read_standard_input(tmp_path: Path) -> None:
    code = "import getpass\na = input('Name? ')\nb = getpass.getpass('Secret? ')\nprint(a, len(b))"
    done = await cli(tmp_path, "run", "-c", code, stdin=b"Ada\nhunter2\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Name? Secret? Ada 7\n"
    assert "hunter2" not in done.stdout + done.stderr


@kernel
async def test_input_after_end_of_input_gets_an_empty_string(tmp_path: Path) -> None:
    done = await cli(tmp_path, "run", "-c", "print(repr(input('? ')))", stdin=b"")
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("''\n")
    assert "standard input is closed" in done.stderr


@kernel
async def test_rich_output_is_saved_to_a_file(tmp_path: Path) -> None:
    done = await cli(tmp_path, "run", "--output-dir", "figs", "-c", IMAGE_CODE)
    assert done.returncode == 0, done.stderr
    saved = tmp_path / "figs" / "output-1.png"
    assert saved.read_bytes() == PNG
    assert "[image/png saved to figs/output-1.png]" in done.stderr
    assert "IPython.core.display.Image object" not in done.stdout  # a placeholder, left out


@kernel
async def test_kernel_death_is_reported_with_its_stderr(tmp_path: Path) -> None:
    code = "import os, sys\nos.write(2, b'last words\\n')\nos._exit(7)"
    done = await cli(tmp_path, "run", "-c", code)
    assert done.returncode == 3
    assert "kernel died" in done.stderr
    assert "exited with code 7" in done.stderr
    assert "last words" in done.stderr


@kernel
async def test_timeout_interrupts_and_exits_124(tmp_path: Path) -> None:
    done = await cli(tmp_path, "run", "--timeout", "1", "-c", "import time; time.sleep(60)")
    assert done.returncode == 124
    assert "did not finish within 1 s" in done.stderr


@kernel
async def test_ctrl_c_interrupts_the_kernel(tmp_path: Path) -> None:
    code = "import time\nprint('sleeping', flush=True)\ntime.sleep(60)"
    with trio.fail_after(TIMEOUT):
        async with running(tmp_path, "run", "-c", code) as run:
            await run.wait_for("sleeping\n")
            run.process.send_signal(signal.SIGINT)
            with trio.fail_after(15):  # promptly, not after the minute of sleep
                assert await run.process.wait() == 130
            await run.wait_for("KeyboardInterrupt", where="stderr")
            assert b"interrupting the kernel" in run.stderr


@kernel
async def test_ctrl_c_while_the_kernel_waits_for_input(tmp_path: Path) -> None:
    # Standard input stays open and silent: only the interrupt can end the wait.
    code = "answer = input('Name? ')"
    with trio.fail_after(TIMEOUT):
        async with running(tmp_path, "run", "-c", code, stdin=subprocess.PIPE) as run:
            await run.wait_for("Name? ")
            run.process.send_signal(signal.SIGINT)
            with trio.fail_after(15):
                assert await run.process.wait() == 130
            await run.wait_for("KeyboardInterrupt", where="stderr")
            assert run.process.stdin is not None
            await run.process.stdin.aclose()


@kernel
@pytest.mark.slow
async def test_second_ctrl_c_shuts_a_stubborn_kernel_down(tmp_path: Path) -> None:
    # Every statement is inside the try, so the interrupt is ignored wherever it lands (even in
    # the print that tells the test the loop has started).
    code = (
        "import time\n"
        "started = False\n"
        "while True:\n"
        "    try:\n"
        "        if not started:\n"
        "            started = True\n"
        "            print('started', flush=True)\n"
        "        while True:\n"
        "            time.sleep(0.05)\n"
        "    except KeyboardInterrupt:\n"
        "        print('ignored', flush=True)\n"
    )
    with trio.fail_after(TIMEOUT):
        async with running(tmp_path, "run", "-c", code) as run:
            await run.wait_for("started\n")
            run.process.send_signal(signal.SIGINT)
            await run.wait_for("ignored\n")
            run.process.send_signal(signal.SIGINT)
            with trio.fail_after(20):
                assert await run.process.wait() == 130
            assert b"stopping (shutting the kernel down)" in run.stderr
            assert b"Traceback" not in run.stderr
    assert list((tmp_path / "runtime").glob("kernel-*.json")) == []  # cleaned up


def _nbformat() -> Any:
    return importlib.import_module("nbformat")


def _notebook(path: Path, sources: Sequence[str], **cell_metadata: Any) -> None:
    cells: list[dict[str, Any]] = [
        {"cell_type": "markdown", "id": "title", "metadata": {}, "source": "# Test"}
    ]
    for i, source in enumerate(sources):
        cell: dict[str, Any] = {
            "cell_type": "code",
            "id": f"c{i}",
            "metadata": dict(cell_metadata.get(f"c{i}", {})),
            "execution_count": None,
            "outputs": [],
            "source": source,
        }
        cells.append(cell)
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "cells": cells,
    }
    path.write_text(json.dumps(nb))


NOTEBOOK_CELLS = ["x = 6 * 7\nprint('x is', x)", IMAGE_CODE, "1 / 0", "print('after')"]


@kernel
async def test_notebook_stops_at_the_first_error_and_writes_outputs(tmp_path: Path) -> None:
    nbformat = _nbformat()

    _notebook(tmp_path / "nb.ipynb", NOTEBOOK_CELLS)
    done = await cli(tmp_path, "run", "nb.ipynb", "-o", "out.ipynb")
    assert done.returncode == 1
    assert "cell 4 failed" in done.stderr
    assert "ZeroDivisionError" in done.stderr
    assert "[1/4] cell 2: x = 6 * 7" in done.stderr  # progress, one line per cell (no tty)
    assert "wrote out.ipynb (3 cells run, 1 failed, 1 not run)" in done.stderr

    nb = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    nbformat.validate(nb)
    first, image, error, after = nb.cells[1:]
    assert first.execution_count == 1
    assert first.outputs == [{"output_type": "stream", "name": "stdout", "text": "x is 42\n"}]
    assert set(first.metadata.execution) == {
        "iopub.status.busy",
        "iopub.execute_input",
        "iopub.status.idle",
        "shell.execute_reply",
    }
    assert image.outputs[0].output_type == "execute_result"
    assert base64.b64decode(image.outputs[0].data["image/png"]) == PNG
    assert error.outputs[0].output_type == "error"
    assert error.outputs[0].ename == "ZeroDivisionError"
    assert (after.execution_count, after.outputs) == (None, [])
    assert nb.metadata.language_info.name == "python"
    # The input notebook is untouched.
    assert nbformat.read(tmp_path / "nb.ipynb", as_version=4).cells[1].outputs == []


@needs_nbformat
def test_notebook_cell_whose_output_was_dropped_is_incomplete_and_exit_status_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from trio_enchannel import open_client
    from trio_enchannel._cli import main
    from trio_enchannel._launch import _open

    from .test_client_routing import CountingIOPub, memory_pair

    @asynccontextmanager
    async def kernel_that_loses_output(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        channels, kernel = memory_pair()
        iopub = CountingIOPub(channels.iopub)
        channels = attrs.evolve(channels, iopub=iopub)

        async def kernel_side() -> None:
            while True:
                req = await kernel.shell.receive()
                if req.msg_type == "kernel_info_request":
                    await kernel.answer_kernel_info(req)
                    continue
                await kernel.status(req, "busy")
                if "lossy" in req.content["code"]:
                    iopub.drops[req.msg_id] = 2
                await kernel.publish(req, "stream", name="stdout", text="kept\n")
                await kernel.reply(req, status="ok", execution_count=1)
                await kernel.status(req, "idle")

        async with open_client(channels) as client, trio.open_nursery() as nursery:
            nursery.start_soon(kernel_side)
            yield client
            nursery.cancel_scope.cancel()

    monkeypatch.setattr(_open, "open_kernel", kernel_that_loses_output)
    _notebook(tmp_path / "nb.ipynb", ["'lossy'", "'fine'"])
    status = main(["run", str(tmp_path / "nb.ipynb"), "-o", str(tmp_path / "out.ipynb")])
    err = capsys.readouterr().err
    assert status == 4, err
    assert "cell 2: 2 outputs lost" in err
    nb = _nbformat().read(tmp_path / "out.ipynb", as_version=4)
    assert [c.outputs[0]["text"] for c in nb.cells[1:]] == ["kept\n", "kept\n"]
    assert nb.cells[1].metadata["trio_enchannel"] == {"outputs_lost": 2}
    assert "trio_enchannel" not in nb.cells[2].metadata


@kernel
async def test_notebook_allow_errors_runs_every_cell(tmp_path: Path) -> None:
    nbformat = _nbformat()

    _notebook(tmp_path / "nb.ipynb", NOTEBOOK_CELLS)
    done = await cli(tmp_path, "run", "nb.ipynb", "--allow-errors")
    assert done.returncode == 1  # a cell failed, even though the run went on
    assert "wrote nb.out.ipynb (4 cells run, 1 failed)" in done.stderr
    nb = nbformat.read(tmp_path / "nb.out.ipynb", as_version=4)
    assert [c.execution_count for c in nb.cells[1:]] == [1, 2, 3, 4]
    assert nb.cells[4].outputs[0].text == "after\n"
    # The timing table names every cell.
    table = done.stderr[done.stderr.index(" cell  status") :]
    for number in (2, 3, 4, 5):
        assert f"\n{number:>5}  " in table


@kernel
async def test_notebook_tags_and_inplace(tmp_path: Path) -> None:
    nbformat = _nbformat()

    _notebook(
        tmp_path / "nb.ipynb",
        ["raise ValueError('expected')", "print('skipped')", "print('ran')"],
        c0={"tags": ["raises-exception"]},
        c1={"tags": ["skip-execution"]},
    )
    done = await cli(tmp_path, "run", "nb.ipynb", "--inplace")
    assert done.returncode == 0, done.stderr
    nb = nbformat.read(tmp_path / "nb.ipynb", as_version=4)
    raised, skipped, ran = nb.cells[1:]
    assert raised.outputs[0].ename == "ValueError"
    assert skipped.outputs == []
    assert ran.outputs[0].text == "ran\n"


@kernel
async def test_info_prints_a_running_kernels_kernel_info(
    tmp_path: Path, ipykernel_process: KernelProcess
) -> None:
    path = str(ipykernel_process.connection_file)
    done = await cli(tmp_path, "info", path)
    assert done.returncode == 0, done.stderr
    assert "implementation: ipython" in done.stdout
    assert "language: python" in done.stdout
    done = await cli(tmp_path, "info", "--json", path)
    assert json.loads(done.stdout)["implementation"] == "ipython"


@kernel
async def test_info_names_a_key_that_does_not_fit_the_kernel(
    tmp_path: Path, ipykernel_process: KernelProcess
) -> None:
    """A connection file with another key: a one-line usage error naming the key, at once,
    instead of a timeout (or a traceback)."""
    from trio_enchannel import ConnectionInfo

    info = ConnectionInfo.from_file(ipykernel_process.connection_file)
    path = tmp_path / "other-key.json"
    path.write_text(json.dumps(dict(info.to_dict(), key="another-key")))
    done = await cli(tmp_path, "info", str(path), "--timeout", "60")
    assert done.returncode == 2, done.stderr
    assert "key" in done.stderr and "Traceback" not in done.stderr
