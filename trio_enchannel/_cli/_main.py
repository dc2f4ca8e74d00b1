"""The ``trio-enchannel`` command: list kernels, run code, files and notebooks, inspect kernels.

``trio-enchannel`` and ``python -m trio_enchannel`` are the same command. Every subcommand
returns one of the documented exit statuses (see :data:`~._common.EXIT_STATUSES`); errors a
person can act on (an unknown kernel, a missing file, a kernel that died, a timeout) are one
clear line on standard error, never a Python traceback.

This module parses the command line, runs the subcommand (imported only when it runs, so that
``kernels`` and ``--help`` start fast) and turns what it raised into the exit status.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ._common import EXIT_ERROR, EXIT_INTERRUPTED, PROG, CommandError, exit_status
from ._parser import build_parser

__all__ = ["main"]


def _run_subcommand(args: argparse.Namespace) -> int:
    if args.command == "kernels":
        from ._info import kernels_command

        return kernels_command(args)
    if args.command == "info":
        from ._info import info_command

        return info_command(args)
    from ._run import run_command

    return run_command(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``trio-enchannel`` command with *argv* (default: ``sys.argv[1:]``).

    Returns:
        The exit status (see :data:`~._common.EXIT_STATUSES`).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = _run_subcommand(args)
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
    # A stdin reader thread left blocked by a cancelled prompt ends the process here.
    return exit_status(status)
