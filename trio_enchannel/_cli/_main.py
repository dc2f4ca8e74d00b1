"""The ``trio-enchannel`` command: list kernels, run code, files and notebooks, inspect kernels.

``trio-enchannel`` and ``python -m trio_enchannel`` are the same command. Every subcommand
returns one of the documented exit statuses (see :data:`EXIT_STATUSES`); errors a person can
act on (an unknown kernel, a missing file, a kernel that died, a timeout) are one clear line on
standard error, never a Python traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from .._launch._kernelspec import list_kernel_specs

__all__ = ["EXIT_STATUSES", "build_parser", "main"]

#: Success.
EXIT_OK = 0
#: The code raised an error (a notebook cell failed).
EXIT_ERROR = 1
#: Bad usage: unknown option, unknown kernel, missing or unreadable file.
EXIT_USAGE = 2
#: The kernel failed to start or died while running.
EXIT_KERNEL_DIED = 3
#: The code ran, but some of its output was lost: the kernel published faster than it could
#: be received or shown, and messages were dropped (never silently: this status says so).
EXIT_OUTPUT_LOST = 4
#: A timeout expired (kernel startup, execution, or a reply).
EXIT_TIMEOUT = 124
#: Interrupted with Ctrl-C (128 + SIGINT, like a shell).
EXIT_INTERRUPTED = 130

EXIT_STATUSES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_ERROR: "the code raised an error (or a notebook cell failed)",
    EXIT_USAGE: "bad usage: unknown option or kernel, missing or unreadable file",
    EXIT_KERNEL_DIED: "the kernel failed to start or died",
    EXIT_OUTPUT_LOST: "some output was lost (dropped because it came faster than it was read)",
    EXIT_TIMEOUT: "a timeout expired",
    EXIT_INTERRUPTED: "interrupted with Ctrl-C",
}

PROG = "trio-enchannel"


class CommandError(Exception):
    """A failure to report as one line on stderr, with the exit status to return."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _version() -> str:
    from .. import __version__

    return __version__


def _epilog() -> str:
    lines = ["exit statuses:"]
    lines += [f"  {code:>3}  {text}" for code, text in EXIT_STATUSES.items()]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``trio-enchannel`` command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Talk to Jupyter kernels from the terminal, the Trio way.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    kernels = sub.add_parser(
        "kernels",
        help="list the installed kernelspecs",
        description="List the installed kernelspecs: name, language, display name and path.",
    )
    kernels.add_argument("--json", action="store_true", help="print JSON instead of a table")
    kernels.set_defaults(handler=_cmd_kernels)

    run = sub.add_parser(
        "run",
        help="run code, a file or a notebook in a fresh kernel",
        description=(
            "Start a kernel, run CODE, a FILE, or every code cell of a NOTEBOOK.ipynb, and shut "
            "the kernel down. Output streams live; rich outputs (images, HTML) are saved to "
            "files; input() reads from the terminal; Ctrl-C interrupts the kernel and a second "
            "Ctrl-C shuts it down."
        ),
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "-k",
        "--kernel",
        metavar="KERNEL",
        help="kernelspec name (default: the notebook's kernel, else python3)",
    )
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("-c", "--code", metavar="CODE", help="the code to run")
    source.add_argument(
        "file",
        nargs="?",
        metavar="FILE",
        help="a source file, a notebook (.ipynb), or - to read the code from standard input",
    )
    run.add_argument(
        "more_files",
        nargs="*",
        metavar="NOTEBOOK",
        help="more notebooks to run (each in its own kernel)",
    )
    run.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="S",
        help="give up after S seconds (per cell for a notebook); default: no limit",
    )
    run.add_argument(
        "--startup-timeout",
        type=_positive_float,
        default=60.0,
        metavar="S",
        help="seconds to wait for the kernel to start (default: %(default)s)",
    )
    run.add_argument(
        "--output-dir",
        type=Path,
        metavar="DIR",
        help="where rich outputs are saved (default: ./trio-enchannel-outputs)",
    )
    run.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour tracebacks (default: auto, when stderr is a terminal and NO_COLOR unset)",
    )
    nb = run.add_argument_group("notebooks")
    nb.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help=(
            "where the executed notebook is written: a file, a directory (out/), or a pattern "
            "such as 'out/{stem}.ipynb' ({stem}, {name}, {dir}: of the input); default: "
            "NAME.out.ipynb next to the input"
        ),
    )
    nb.add_argument(
        "--inplace", action="store_true", help="write the outputs into the input notebook"
    )
    nb.add_argument(
        "--allow-errors",
        action="store_true",
        help="keep going after a cell fails or times out (the exit status is still 1)",
    )
    nb.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        dest="parameters",
        metavar=("NAME", "VALUE"),
        help="a papermill parameter (typed as papermill types it: 7 is an int, True a bool)",
    )
    nb.add_argument(
        "-r",
        "--raw-parameter",
        nargs=2,
        action="append",
        dest="raw_parameters",
        metavar=("NAME", "VALUE"),
        help="a parameter whose value stays a string",
    )
    nb.add_argument(
        "-f",
        "--parameters-file",
        action="append",
        dest="parameter_files",
        metavar="FILE",
        help="a YAML or JSON file of parameters",
    )
    nb.add_argument(
        "-y",
        "--parameters-yaml",
        action="append",
        dest="parameters_yaml",
        metavar="YAML",
        help="parameters as a YAML string (several apply in turn)",
    )
    nb.add_argument(
        "-j",
        "--jobs",
        type=_positive_int,
        metavar="N",
        help="run up to N notebooks at once, each in its own kernel (default: 1)",
    )
    run.set_defaults(handler=_cmd_run)

    info = sub.add_parser(
        "info",
        help="print the kernel_info of a running kernel",
        description=(
            "Connect to a running kernel through its connection file and print its "
            "kernel_info. A bare file name is also looked up in the Jupyter runtime directory."
        ),
    )
    info.add_argument("connection_file", metavar="CONNECTION_FILE")
    info.add_argument("--json", action="store_true", help="print the raw reply content as JSON")
    info.add_argument(
        "--timeout",
        type=_positive_float,
        default=10.0,
        metavar="S",
        help="seconds to wait for the reply (default: %(default)s)",
    )
    info.set_defaults(handler=_cmd_info)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


# --------------------------------------------------------------------------- kernels


def _cmd_kernels(args: argparse.Namespace) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        specs = list_kernel_specs(on_error="warn")
    bad = [str(w.message) for w in caught]
    if args.json:
        data = {
            spec.name: {
                "language": spec.language,
                "display_name": spec.display_name,
                "resource_dir": str(spec.resource_dir) if spec.resource_dir else None,
                "interrupt_mode": spec.interrupt_mode,
                "argv": list(spec.argv),
            }
            for spec in specs
        }
        print(json.dumps(data, indent=2))
    else:
        rows = [("NAME", "LANGUAGE", "DISPLAY NAME", "PATH")]
        rows += [(s.name, s.language, s.display_name, str(s.resource_dir or "")) for s in specs]
        _print_table(rows, sys.stdout)
        if not specs:
            print(
                "no kernels installed (install one with: python3 -m pip install ipykernel)",
                file=sys.stderr,
            )
    for message in bad:
        print(f"{PROG}: warning: {message}", file=sys.stderr)
    return EXIT_OK


def _print_table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        print("  ".join(cells).rstrip(), file=out)


# --------------------------------------------------------------------------- run / info


def _cmd_run(args: argparse.Namespace) -> int:
    from ._run import run_command

    return run_command(args)


def _cmd_info(args: argparse.Namespace) -> int:
    from ._run import info_command

    return info_command(args)


# --------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``trio-enchannel`` command with *argv* (default: ``sys.argv[1:]``).

    Returns:
        The exit status (see :data:`EXIT_STATUSES`).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.handler(args)
    except CommandError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        status = exc.status
    except KeyboardInterrupt:  # Ctrl-C before or after the Trio program ran
        status = EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our output went away (`trio-enchannel kernels | head`).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    run_module = sys.modules.get("trio_enchannel._cli._run")
    if run_module is not None:
        status = run_module.exit_status(status)
    return status
