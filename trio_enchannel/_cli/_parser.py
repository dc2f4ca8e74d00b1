"""The command line of ``trio-enchannel``: its subcommands, their options and help.

Parsing only; :mod:`._main` runs the subcommand that :attr:`argparse.Namespace.command` names.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ._common import EXIT_STATUSES, PROG

__all__ = ["build_parser"]


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
        type=_jobs,
        metavar="N",
        help=(
            "run up to N notebooks at once, each in its own kernel; 'auto': as many as the "
            "CPUs this process may use (default: 1)"
        ),
    )

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
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def usable_cpus() -> int:
    """How many CPUs this process may run on (its affinity mask where the platform has one,
    else the machine's count; at least 1)."""
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        return max(1, len(affinity(0)))
    return max(1, os.cpu_count() or 1)


def _jobs(text: str) -> int:
    """``-j``: a whole number of at least 1, or ``auto`` (the usable CPUs)."""
    if text == "auto":
        return usable_cpus()
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (a whole number of at least 1, or auto)") from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value
