"""Shared fixtures: real kernel processes for integration tests.

``ipykernel``
    Starts ``python -m ipykernel_launcher -f FILE`` (the current interpreter) on a fresh
    :class:`ConnectionInfo` written to a connection file in ``tmp_path``, yields the
    :class:`ConnectionInfo`, and always kills and reaps the process (and its process group)
    afterwards. The kernel may still be starting when the test body runs: use
    ``open_channels(info)`` and ``await ch.wait_iopub_ready()`` or a ``kernel_info_request``.

``ipykernel_process``
    The same, yielding a :class:`KernelProcess` (info, trio process, connection file) for
    tests that need the process itself (exit status, signals).

``xeus_python``
    The same for xeus-python (``python -m xpython_launcher``); the test is skipped where
    xeus-python is not installed.

:func:`kernel_process` is the context manager behind them, for tests that need another
transport (``ConnectionInfo.allocate(transport="ipc")``), CurveZMQ keys or another kernel.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import pytest
import trio

from trio_enchannel import ConnectionInfo, write_connection_file

IPYKERNEL_ARGV = (sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}")
XEUS_PYTHON_ARGV = (sys.executable, "-m", "xpython_launcher", "-f", "{connection_file}")


@attrs.frozen
class KernelProcess:
    """A kernel process started by :func:`kernel_process`.

    Attributes:
        info: where the kernel listens.
        process: the trio process.
        connection_file: the connection file the kernel was given.
        log: the file that receives the kernel's stdout and stderr.
    """

    info: ConnectionInfo
    process: trio.Process
    connection_file: Path
    log: Path

    def output(self) -> str:
        """What the kernel wrote to stdout/stderr so far (for assertion messages)."""
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


@asynccontextmanager
async def kernel_process(
    directory: Path,
    argv: Sequence[str] = IPYKERNEL_ARGV,
    info: ConnectionInfo | None = None,
) -> AsyncIterator[KernelProcess]:
    """Write ``info`` (default: freshly allocated tcp ports) to a connection file in
    ``directory``, start ``argv`` (``{connection_file}`` substituted) in its own process
    group, yield a :class:`KernelProcess`, and always kill and reap it."""
    if info is None:
        info = ConnectionInfo.allocate()
    name = f"kernel-{uuid.uuid4().hex[:12]}"
    path = write_connection_file(info, directory / f"{name}.json")
    log = directory / f"{name}.log"
    env = dict(os.environ)
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    env["JUPYTER_RUNTIME_DIR"] = str(directory / "runtime")
    command = [part.replace("{connection_file}", str(path)) for part in argv]
    with log.open("wb") as output:
        process = await trio.lowlevel.open_process(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        yield KernelProcess(info=info, process=process, connection_file=path, log=log)
    finally:
        with trio.CancelScope(shield=True):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


@pytest.fixture
async def ipykernel_process(tmp_path: Path) -> AsyncIterator[KernelProcess]:
    """A running ipykernel (see the module docstring)."""
    async with kernel_process(tmp_path, IPYKERNEL_ARGV) as kernel:
        yield kernel


@pytest.fixture
async def ipykernel(ipykernel_process: KernelProcess) -> ConnectionInfo:
    """The :class:`ConnectionInfo` of a running ipykernel (see the module docstring)."""
    return ipykernel_process.info


@pytest.fixture
async def xeus_python(tmp_path: Path) -> AsyncIterator[KernelProcess]:
    """A running xeus-python kernel; skips the test where xeus-python is not installed."""
    if importlib.util.find_spec("xpython_launcher") is None:
        pytest.skip("xeus-python is not installed")
    async with kernel_process(tmp_path, XEUS_PYTHON_ARGV) as kernel:
        yield kernel
