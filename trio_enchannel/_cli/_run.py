"""``trio-enchannel run`` (code and files) and ``trio-enchannel info``.

The command runs one Trio program: a task watches SIGINT (the first Ctrl-C interrupts the
kernel, the second cancels the work so that :func:`open_kernel` shuts the kernel down), and the
job streams the execution's messages to a :class:`~._cli_render.Renderer` as they arrive.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .._errors import (
    ConnectionInfoError,
    EncryptionUnavailable,
    KernelDied,
    KernelStartupError,
    NoSuchKernel,
    SignatureMismatch,
)
from ._main import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_KERNEL_DIED,
    EXIT_OK,
    EXIT_OUTPUT_LOST,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    PROG,
    CommandError,
)
from ._render import Renderer, color_wanted

if TYPE_CHECKING:  # without importing the launcher at startup
    from .._client._client import InputRequest
    from .._launch._kernel import Kernel
    from .._wire._connection import ConnectionInfo
    from .._wire._message import Message

__all__ = ["CliState", "info_command", "open_cli_kernel", "run_command", "run_job"]

DEFAULT_KERNEL = "python3"
DEFAULT_OUTPUT_DIR = Path("trio-enchannel-outputs")

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


@attrs.define(eq=False)
class CliState:
    """What the SIGINT watcher and the job share."""

    ui: Renderer
    work_scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    kernel: Kernel | None = None
    busy: bool = False
    interrupted: bool = False
    stopping: bool = False
    input_scope: trio.CancelScope | None = None
    stdin_closed_noted: bool = False


# --------------------------------------------------------------------------- Ctrl-C


async def _interrupt(state: CliState) -> None:
    kernel = state.kernel
    if kernel is None:
        return
    try:
        with trio.move_on_after(5):
            await kernel.interrupt()
    except Exception as exc:  # the kernel may be dying; the second Ctrl-C still works
        state.ui.note(f"{PROG}: could not interrupt the kernel: {exc}")


async def _watch_sigint(
    signals: AsyncIterator[int], state: CliState, nursery: trio.Nursery
) -> None:
    async for _ in signals:
        if state.stopping:
            state.ui.note(f"{PROG}: already shutting the kernel down, please wait")
            continue
        if state.busy and not state.interrupted:
            state.interrupted = True
            state.ui.note(f"{PROG}: interrupting the kernel (press Ctrl-C again to stop)")
            if state.input_scope is not None:
                state.input_scope.cancel()
            nursery.start_soon(_interrupt, state)
            continue
        state.stopping = True
        state.interrupted = True
        state.ui.note(f"{PROG}: stopping (shutting the kernel down)")
        state.work_scope.cancel()


def _single(exc: BaseException) -> BaseException:
    """The lone exception inside (nested) exception groups, else *exc* itself."""
    while True:
        inner = getattr(exc, "exceptions", None)
        if not isinstance(inner, (list, tuple)) or len(inner) != 1:
            return exc
        exc = inner[0]


def run_job(ui: Renderer, job: Callable[[CliState], Awaitable[int]]) -> int:
    """Run *job* under ``trio.run`` with Ctrl-C handling; return its exit status."""

    async def main() -> int:
        state = CliState(ui)
        status = EXIT_INTERRUPTED
        with trio.open_signal_receiver(signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_watch_sigint, signals, state, nursery)
                with state.work_scope:
                    status = await job(state)
                nursery.cancel_scope.cancel()
        if state.work_scope.cancelled_caught:
            return EXIT_INTERRUPTED
        return status

    try:
        return trio.run(main)
    except BaseException as exc:
        inner = _single(exc)
        if inner is exc:
            raise
        raise inner from None


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


#: Whether a thread was left blocked reading standard input (a prompt cancelled by Ctrl-C or
#: a timeout). Such a thread holds stdin's lock, and the interpreter aborts when it finalizes
#: stdin at exit, so the command then ends with os._exit (see :func:`exit_status`).
_reader_abandoned = False


def exit_status(status: int) -> int:
    """Return *status*, or end the process now if a stdin reader thread is still blocked.

    Everything else is finished by then: the kernel is shut down and its files removed.
    """
    if _reader_abandoned:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(status)
    return status


def _stdin_handler(state: CliState) -> Callable[[InputRequest], Awaitable[str]]:
    async def answer(request: InputRequest) -> str:
        ui = state.ui
        ui.flush_line()
        global _reader_abandoned
        with trio.CancelScope() as scope:
            state.input_scope = scope
            _reader_abandoned = True  # until the thread comes back
            try:
                line = await trio.to_thread.run_sync(
                    _read_line, request.prompt, request.password, abandon_on_cancel=True
                )
                _reader_abandoned = False
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


def make_renderer(args: argparse.Namespace, stem: str) -> Renderer:
    """The renderer for ``run``'s options (colour, output directory)."""
    output_dir = args.output_dir if args.output_dir is not None else DEFAULT_OUTPUT_DIR
    return Renderer(color=color_wanted(args.color, sys.stderr), output_dir=output_dir, stem=stem)


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
    more = list(getattr(args, "more_files", None) or [])
    if more and args.code is not None:
        raise CommandError("give either -c CODE or files, not both", EXIT_USAGE)
    if more and not (is_notebook and all(f.lower().endswith(".ipynb") for f in more)):
        raise CommandError("only notebooks (.ipynb) can be run several at once", EXIT_USAGE)
    if not is_notebook:
        for flag, given in (
            ("-o/--output", args.output is not None),
            ("--inplace", args.inplace),
            ("--allow-errors", args.allow_errors),
            ("-j/--jobs", getattr(args, "jobs", None) is not None),
            ("-p/--parameter", bool(getattr(args, "parameters", None))),
            ("-r/--raw-parameter", bool(getattr(args, "raw_parameters", None))),
            ("-f/--parameters-file", bool(getattr(args, "parameter_files", None))),
            ("-y/--parameters-yaml", bool(getattr(args, "parameters_yaml", None))),
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
        await _interrupt(state)
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


# --------------------------------------------------------------------------- info


def find_connection_file(name: str) -> Path:
    """*name* as a path, else in the Jupyter runtime directory (``kernel-<id>.json`` works
    with just the id, and a unique part of a file name is enough).

    Raises:
        CommandError: no such file, or the name matches several files.
    """
    path = Path(name)
    if path.is_file():
        return path
    if path.exists():
        raise CommandError(f"{name} is not a file", EXIT_USAGE)
    if os.sep in name or (os.altsep and os.altsep in name):
        raise CommandError(f"no such connection file: {name}", EXIT_USAGE)
    from jupyter_core.paths import jupyter_runtime_dir

    runtime = Path(jupyter_runtime_dir())
    for candidate in (name, f"{name}.json", f"kernel-{name}.json"):
        if (runtime / candidate).is_file():
            return runtime / candidate
    matches = (
        sorted(p for p in runtime.glob("*.json") if name in p.name) if runtime.is_dir() else []
    )
    if len(matches) == 1:
        return matches[0]
    if matches:
        listing = ", ".join(p.name for p in matches)
        raise CommandError(f"{name!r} matches several connection files: {listing}", EXIT_USAGE)
    raise CommandError(
        f"no such connection file: {name} (not here, nor in the Jupyter runtime directory "
        f"{runtime})",
        EXIT_USAGE,
    )


def _format_info(content: dict[str, Any], source: Path, info: ConnectionInfo) -> str:
    def text(value: Any) -> str:
        return value if isinstance(value, str) else ""

    language = content.get("language_info")
    language = language if isinstance(language, dict) else {}
    features = content.get("supported_features")
    features = [str(f) for f in features] if isinstance(features, list) else []
    if content.get("debugger") is True and "debugger" not in features:
        features.append("debugger")
    security = f"signed with {info.signature_scheme}" if info.key else "unsigned (no key)"
    security += ", CurveZMQ encrypted" if info.curve_publickey else ", not encrypted"
    lines = [
        f"connection file: {source}",
        f"connection: {info.transport}://{info.ip} ({security})",
        f"implementation: {text(content.get('implementation'))} "
        f"{text(content.get('implementation_version'))}".rstrip(),
        f"language: {text(language.get('name'))} {text(language.get('version'))}".rstrip(),
        f"protocol: {text(content.get('protocol_version'))}",
        f"features: {', '.join(sorted(features)) or '(none declared)'}",
    ]
    banner = text(content.get("banner")).strip()
    if banner:
        lines.append("banner:")
        lines += ["  " + line for line in banner.splitlines()]
    links = content.get("help_links")
    if isinstance(links, list) and links:
        lines.append("help links:")
        for link in links:
            if isinstance(link, dict):
                lines.append(f"  {text(link.get('text'))}: {text(link.get('url'))}")
    return "\n".join(lines)


def info_command(args: argparse.Namespace) -> int:
    """``trio-enchannel info``: print the kernel_info of a running kernel.

    Raises:
        CommandError: a problem to report on one line, with its exit status.
    """
    from .._client._client import open_client
    from .._wire._connection import ConnectionInfo

    path = find_connection_file(str(args.connection_file))
    try:
        info = ConnectionInfo.from_file(path)
    except ConnectionInfoError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    timeout: float = args.timeout

    async def job(state: CliState) -> int:
        where = info.url("shell")
        try:
            with trio.fail_after(timeout):
                async with open_client(info) as client:
                    reply = await client.kernel_info()
        except trio.TooSlowError:
            raise CommandError(
                f"no kernel_info reply from {where} within {timeout:g} s "
                "(is the kernel running? is the connection file current?)",
                EXIT_TIMEOUT,
            ) from None
        except KernelDied as exc:
            raise CommandError(f"{exc} ({where})", EXIT_KERNEL_DIED) from None
        except (EncryptionUnavailable, ConnectionInfoError, SignatureMismatch) as exc:
            # The connection file does not fit the kernel (keys): a usage problem.
            raise CommandError(f"{exc} ({path})", EXIT_USAGE) from None
        if args.json:
            print(json.dumps(reply.content, indent=2, sort_keys=True))
        else:
            print(_format_info(reply.content, path, info))
        return EXIT_OK

    return run_job(Renderer(color=False), job)
