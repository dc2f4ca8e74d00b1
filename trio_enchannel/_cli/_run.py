"""``trio-enchannel run`` for code and files (notebooks go to :mod:`._notebook`).

The job starts a kernel, streams the execution's messages to a :class:`~._render.Renderer` as
they arrive, answers the kernel's ``input()`` from the terminal, and turns the result into the
command's exit status.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .._errors import (
    EncryptionUnavailable,
    KernelDied,
    KernelStartupError,
    NoSuchKernel,
)
from ._common import (
    DEFAULT_KERNEL,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_KERNEL_DIED,
    EXIT_OK,
    EXIT_OUTPUT_LOST,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    PROG,
    CommandError,
    reading_stdin,
)
from ._jobs import CliState, interrupt_kernel, run_job
from ._render import Renderer, make_renderer

if TYPE_CHECKING:  # without importing the launcher at startup
    from .._client._client import InputRequest
    from .._launch._kernel import Kernel
    from .._wire._message import Message

__all__ = ["kernel_died_error", "open_cli_kernel", "run_command"]


#: File extensions whose language picks the kernel when ``-k`` is not given.
_EXTENSION_LANGUAGES = {
    ".py": "python",
    ".sh": "bash",
    ".bash": "bash",
    ".r": "r",
    ".jl": "julia",
    ".js": "javascript",
    ".ts": "typescript",
    ".rb": "ruby",
    ".scala": "scala",
    ".cpp": "c++",
    ".lua": "lua",
}


# --------------------------------------------------------------------------- kernels


@asynccontextmanager
async def open_cli_kernel(
    state: CliState, name: str, *, startup_timeout: float, cwd: Path | None = None
) -> AsyncIterator[Kernel]:
    """:func:`open_kernel` with the command's error reporting.

    Raises:
        CommandError: the kernel is unknown or failed to start.
    """
    from .._launch._open import open_kernel

    try:
        async with open_kernel(
            name,
            startup_timeout=startup_timeout,
            output="capture",
            cwd=cwd,
            # CurveZMQ when the kernel supports it (ipykernel 7.4+ does): kernels warn, rightly,
            # that plain TCP lets other local users read the traffic.
            encryption="auto",
            # A second Ctrl-C should not keep the user waiting long for a stuck kernel.
            shutdown_grace=3.0,
            client_options={"stdin": _stdin_handler(state)},
        ) as kernel:
            state.kernel = kernel
            try:
                yield kernel
            finally:
                state.busy = False
                state.stopping = True
    except NoSuchKernel as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    except KernelStartupError as exc:
        raise CommandError(f"the kernel failed to start: {exc}", EXIT_KERNEL_DIED) from None
    except EncryptionUnavailable as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None


def kernel_died_error(state: CliState, exc: KernelDied) -> CommandError:
    """A :class:`CommandError` for a kernel that died, with the tail of its stderr."""
    message = str(exc)
    kernel = state.kernel
    if kernel is not None:
        tail = kernel.stderr_tail(20).rstrip()
        if tail:
            message += "\n--- kernel stderr (tail) ---\n" + tail
    return CommandError(message, EXIT_KERNEL_DIED)


# --------------------------------------------------------------------------- stdin


def _read_line(prompt: str, password: bool) -> str | None:
    """Read one line from the terminal (in a worker thread); ``None`` at end of input."""
    try:
        if password and sys.stdin.isatty():
            return getpass.getpass(prompt)
        if password:
            sys.stdout.write(prompt)
            sys.stdout.flush()
            line = sys.stdin.readline()
            if not line:
                return None
            return line.rstrip("\n")
        return input(prompt)
    except EOFError:
        return None


def _stdin_handler(state: CliState) -> Callable[[InputRequest], Awaitable[str]]:
    async def answer(request: InputRequest) -> str:
        ui = state.ui
        ui.flush_line()
        with trio.CancelScope() as scope:
            state.input_scope = scope
            try:
                with reading_stdin():
                    line = await trio.to_thread.run_sync(
                        _read_line, request.prompt, request.password, abandon_on_cancel=True
                    )
            finally:
                state.input_scope = None
            ui.input_done(terminal=sys.stdin.isatty())
            if line is None:
                if not state.stdin_closed_noted:
                    state.stdin_closed_noted = True
                    ui.note(f"{PROG}: standard input is closed; input() gets an empty string")
                return ""
            return line
        return ""  # cancelled by Ctrl-C: the kernel is being interrupted

    return answer


# --------------------------------------------------------------------------- run


def _pick_kernel(args: argparse.Namespace, path: Path | None) -> str:
    if args.kernel:
        return str(args.kernel)
    if path is None:
        return DEFAULT_KERNEL
    language = _EXTENSION_LANGUAGES.get(path.suffix.lower())
    if language is None or language == "python":
        return DEFAULT_KERNEL
    from .._launch._kernelspec import list_kernel_specs

    for spec in list_kernel_specs(on_error="skip"):
        if spec.language.lower() == language:
            return spec.name
    return DEFAULT_KERNEL


def _read_source(file: str) -> tuple[str, Path | None]:
    if file == "-":
        return sys.stdin.read(), None
    path = Path(file)
    try:
        return path.read_text(encoding="utf-8"), path
    except FileNotFoundError:
        raise CommandError(f"no such file: {file}", EXIT_USAGE) from None
    except IsADirectoryError:
        raise CommandError(f"{file} is a directory, not a file", EXIT_USAGE) from None
    except UnicodeDecodeError as exc:
        raise CommandError(f"{file} is not UTF-8 text: {exc}", EXIT_USAGE) from None
    except OSError as exc:
        raise CommandError(f"cannot read {file}: {exc.strerror or exc}", EXIT_USAGE) from None


def run_command(args: argparse.Namespace) -> int:
    """``trio-enchannel run``: run code, a file or a notebook in a fresh kernel.

    Raises:
        CommandError: a problem to report on one line, with its exit status.
    """
    if args.kernel is not None and not str(args.kernel).strip():
        raise CommandError(
            "-k/--kernel needs a kernel name (see: trio-enchannel kernels)", EXIT_USAGE
        )
    is_notebook = args.file is not None and args.file.lower().endswith(".ipynb")
    more = list(args.more_files or [])
    if more and args.code is not None:
        raise CommandError("give either -c CODE or files, not both", EXIT_USAGE)
    if more and not (is_notebook and all(f.lower().endswith(".ipynb") for f in more)):
        raise CommandError("only notebooks (.ipynb) can be run several at once", EXIT_USAGE)
    if not is_notebook:
        for flag, given in (
            ("-o/--output", args.output is not None),
            ("--inplace", args.inplace),
            ("--allow-errors", args.allow_errors),
            ("-j/--jobs", args.jobs is not None),
            ("-p/--parameter", bool(args.parameters)),
            ("-r/--raw-parameter", bool(args.raw_parameters)),
            ("-f/--parameters-file", bool(args.parameter_files)),
            ("-y/--parameters-yaml", bool(args.parameters_yaml)),
        ):
            if given:
                raise CommandError(f"{flag} applies to notebooks only", EXIT_USAGE)
    if is_notebook:
        from ._notebook import run_notebook_command

        return run_notebook_command(args)
    if args.code is not None:
        code, path = str(args.code), None
    else:
        code, path = _read_source(str(args.file))
    kernel_name = _pick_kernel(args, path)
    ui = make_renderer(args, "output" if path is None else path.stem)
    script = os.path.abspath(path) if path is not None else ""

    async def job(state: CliState) -> int:
        async with open_cli_kernel(
            state, kernel_name, startup_timeout=args.startup_timeout
        ) as kernel:
            if path is not None and kernel.spec.language.lower() == "python":
                await _prepare_script(state, kernel, str(args.file), script)
            return await _execute(state, kernel, code, args.timeout)

    return run_job(ui, job)


#: Run silently before a Python script, in the kernel: ``__file__``, ``sys.argv`` and
#: ``sys.path[0]`` as ``python SCRIPT`` sets them, and, in IPython kernels, the next cell is
#: compiled under the script's path, so tracebacks name the file and its lines rather than
#: ``Cell In[1]``. Anything the kernel does not offer is skipped: the script still runs.
_SCRIPT_SETUP = """\
def __trio_enchannel_script(argv0, path):
    import os, sys
    sys.argv[:] = [argv0]
    sys.path.insert(0, os.path.dirname(path))
    try:
        compiler = get_ipython().compile
        get_name, format_name = compiler.get_code_name, compiler.format_code_name
    except Exception:
        return
    def get_code_name(raw_code, transformed_code, number):
        del compiler.get_code_name  # the next cells get their usual names
        return path
    def format_code_name(name):
        return None if name == path else format_name(name)
    compiler.get_code_name = get_code_name
    compiler.format_code_name = format_code_name
__trio_enchannel_script({argv0!r}, {path!r})
del __trio_enchannel_script
__file__ = {path!r}
"""


async def _prepare_script(state: CliState, kernel: Kernel, file: str, absolute: str) -> None:
    setup = _SCRIPT_SETUP.format(argv0=file, path=absolute)
    try:
        await kernel.client.execute(setup, silent=True, store_history=False)
    except KernelDied as exc:
        raise kernel_died_error(state, exc) from None


_EXIT_WARNING = re.compile(
    r"^.*UserWarning: To exit: use 'exit', 'quit', or Ctrl-D\.\n(?:  warn\(.*\n)?", re.M
)


def _is_system_exit(content: Mapping[str, Any]) -> bool:
    # xeus-python names the class as "<class 'SystemExit'>".
    return content.get("ename") in ("SystemExit", "<class 'SystemExit'>")


def _system_exit_status(evalue: str, ui: Renderer) -> int:
    """The exit status ``python`` gives for ``SystemExit(evalue)``, printing a message one."""
    text = evalue.strip()
    if text in ("", "None", "False"):
        return EXIT_OK
    if text == "True":
        return EXIT_ERROR
    try:
        return int(text) & 0xFF
    except ValueError:
        ui.note(evalue)
        return EXIT_ERROR


async def _execute(state: CliState, kernel: Kernel, code: str, limit: float | None) -> int:
    ui = state.ui
    state.busy = True
    result = None
    missed = 0
    # IPython reports sys.exit() as an error ("An exception has occurred ... SystemExit: 3") and
    # warns "To exit: use 'exit'" (before or after it): both are held back, and shown only if
    # the reply is not a SystemExit, which instead gives the command's exit status.
    held: list[Message] = []
    try:
        with trio.move_on_after(limit if limit is not None else float("inf")) as deadline:
            async with kernel.client.stream_execute(code, allow_stdin=True) as execution:
                async for msg in execution:
                    if msg.msg_type == "error" and _is_system_exit(msg.content):
                        held.append(msg)
                        continue
                    if msg.msg_type == "stream" and msg.content.get("name") == "stderr":
                        text = str(msg.content.get("text", ""))
                        kept = _EXIT_WARNING.sub("", text)
                        if kept != text:
                            held.append(msg)
                            if kept:
                                ui.message(attrs.evolve(msg, content={**msg.content, "text": kept}))
                            continue
                    ui.message(msg)
                result = execution.result
                missed = execution.dropped
    except KernelDied as exc:
        raise kernel_died_error(state, exc) from None
    finally:
        state.busy = False
    exit_value = None
    reply = result.reply.content if result is not None else {}
    if result is not None and result.status == "error" and _is_system_exit(reply):
        exit_value = str(reply.get("evalue", ""))
    if exit_value is None:
        for msg in held:
            ui.message(msg)
    ui.flush_line()
    if missed:
        ui.note(f"{PROG}: {missed} outputs not shown (the terminal could not keep up)")
    if result is not None and result.iopub_dropped:
        ui.note(
            f"{PROG}: {result.iopub_dropped} outputs lost (the kernel published faster than "
            "they could be received)"
        )
    if deadline.cancelled_caught:
        await interrupt_kernel(state)
        raise CommandError(
            f"the execution did not finish within {limit:g} s (the kernel was interrupted)",
            EXIT_TIMEOUT,
        )
    assert result is not None
    if state.interrupted:
        return EXIT_INTERRUPTED
    if exit_value is not None:
        return _system_exit_status(exit_value, ui)
    if result.status == "error":
        return EXIT_ERROR
    if result.aborted:
        ui.note(f"{PROG}: the kernel aborted the execution")
        return EXIT_ERROR
    if missed or result.iopub_dropped:
        return EXIT_OUTPUT_LOST
    return EXIT_OK
