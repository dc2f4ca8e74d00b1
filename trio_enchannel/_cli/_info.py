"""``trio-enchannel kernels`` (the installed kernelspecs) and ``trio-enchannel info`` (the
kernel_info of a running kernel, found through its connection file)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .._errors import (
    ConnectionInfoError,
    EncryptionUnavailable,
    KernelDied,
    SignatureMismatch,
)
from .._launch._kernelspec import list_kernel_specs
from ._common import EXIT_KERNEL_DIED, EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE, PROG, CommandError
from ._render import Renderer

if TYPE_CHECKING:
    from .._wire._connection import ConnectionInfo
    from ._jobs import CliState

__all__ = ["find_connection_file", "info_command", "kernels_command"]


# --------------------------------------------------------------------------- kernels


def kernels_command(args: argparse.Namespace) -> int:
    """``trio-enchannel kernels``: list the installed kernelspecs (a table, or ``--json``)."""
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
    import trio  # not at startup: ``kernels`` and ``--help`` need no Trio

    from .._client._client import open_client
    from .._wire._connection import ConnectionInfo
    from ._jobs import run_job

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
