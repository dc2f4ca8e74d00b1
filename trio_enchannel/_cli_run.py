"""``trio-enchannel run`` and ``trio-enchannel info`` (being written: needs the client)."""

from __future__ import annotations

import argparse

from ._cli import EXIT_USAGE, CommandError


def run_command(args: argparse.Namespace) -> int:
    """Run code, a file or a notebook in a fresh kernel."""
    raise CommandError("'run' is not available yet", EXIT_USAGE)


def info_command(args: argparse.Namespace) -> int:
    """Print the kernel_info of a running kernel."""
    raise CommandError("'info' is not available yet", EXIT_USAGE)
