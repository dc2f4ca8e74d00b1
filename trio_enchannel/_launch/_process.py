"""One kernel process incarnation: spawned, its output kept, signalled, watched and reaped.

Process lifetime rules:

* the kernel runs in its own session and process group (``start_new_session=True``), so
  signals for interrupts and termination reach everything it started in that group, and a
  Ctrl+C in the terminal does not reach it directly;
* when the kernel's main process exits, whatever is left of its process group is killed before
  the main process is reaped (while its zombie still holds the group id, so the signal cannot
  hit an unrelated process);
* the kernel learns our pid through ``JPY_PARENT_PID`` (see :func:`.kernel_env`) so kernels
  that watch their parent (ipykernel does) exit by themselves if this process is killed
  outright.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal

import attrs
import trio

from .._errors import KernelStartupError

__all__ = ["TAIL_BYTES", "Incarnation", "OutputMode", "Tail", "describe_exit", "spawn"]

OutputMode = Literal["capture", "inherit", "discard"]

#: How many bytes of each output stream are kept for error messages and ``*_tail()``.
TAIL_BYTES = 64 * 1024


class Tail:
    """The last *limit* bytes written to a stream."""

    def __init__(self, limit: int = TAIL_BYTES) -> None:
        self._limit = limit
        self._buf = bytearray()
        self.total = 0
        self._fed = trio.Event()

    def feed(self, data: bytes | bytearray) -> None:
        self.total += len(data)
        self._buf += data
        excess = len(self._buf) - self._limit
        if excess > 0:
            del self._buf[:excess]
        self._fed.set()
        self._fed = trio.Event()

    async def wait_until(self, predicate: Callable[[str], bool]) -> None:
        """Return once ``predicate(text)`` holds for the text kept so far."""
        while True:
            fed = self._fed
            if predicate(self.text()):
                return
            await fed.wait()

    def text(self, max_lines: int | None = None) -> str:
        text = self._buf.decode("utf-8", "replace")
        if max_lines is not None:
            text = "\n".join(text.splitlines()[-max_lines:]) if max_lines > 0 else ""
        return text


def _signal_group(pgid: int, sig: int) -> bool:
    """Send *sig* to process group *pgid*; False if nothing was there to receive it."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _pidfd_open(pid: int) -> int | None:
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return int(opener(pid))
    except OSError:
        return None


def describe_exit(returncode: int) -> str:
    """A human-readable description of a process exit status."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exited with code {returncode}"


@attrs.define(eq=False)
class Incarnation:
    """One kernel process: spawned, watched, reaped."""

    process: trio.Process
    argv: list[str]
    stdout: Tail | None
    stderr: Tail | None
    returncode: int | None = None
    exited: trio.Event = attrs.Factory(trio.Event)
    streams_done: trio.Event = attrs.Factory(trio.Event)
    expected_exit: bool = False
    _reap_lock: trio.Lock = attrs.Factory(trio.Lock)
    _scopes: list[trio.CancelScope] = attrs.Factory(list)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        # Never consult self.process.returncode: it reaps, and the group kill in reap() must
        # happen while the leader's zombie still holds the group id.
        return self.returncode is None

    def signal_group(self, sig: int) -> bool:
        """Signal the kernel's whole process group (only while the leader is not reaped)."""
        if self.returncode is not None:
            return False
        return _signal_group(self.pid, sig)

    async def reap(self) -> int:
        """Wait for the main process to exit, kill its group's leftovers, and reap it.

        Idempotent and safe to call from several tasks.
        """
        async with self._reap_lock:
            if self.returncode is not None:
                return self.returncode
            pidfd = _pidfd_open(self.pid)
            if pidfd is not None:
                try:
                    await trio.lowlevel.wait_readable(pidfd)
                finally:
                    os.close(pidfd)
                # The leader is a zombie now: its pid (= the group id) cannot be reused yet.
                _signal_group(self.pid, signal.SIGKILL)
            returncode = await self.process.wait()
            if pidfd is None:  # pragma: no cover - platforms without pidfd_open
                _signal_group(self.pid, signal.SIGKILL)
            self.returncode = returncode
            self.exited.set()
            return returncode

    def start_background(
        self, nursery: trio.Nursery, fn: Callable[[], Awaitable[None]], name: str
    ) -> None:
        """Run *fn* shielded from outside cancellation; :meth:`stop_background` ends it."""
        scope = trio.CancelScope(shield=True)
        self._scopes.append(scope)

        async def runner() -> None:
            with scope:
                await fn()

        nursery.start_soon(runner, name=name)

    def stop_background(self) -> None:
        for scope in self._scopes:
            scope.cancel()

    async def finish_streams(self, within: float) -> None:
        """Give the output readers up to *within* seconds to reach end of file."""
        with trio.move_on_after(within):
            await self.streams_done.wait()

    def stderr_text(self, max_lines: int | None = 40) -> str:
        return self.stderr.text(max_lines) if self.stderr is not None else ""


async def _pump(stream: trio.abc.ReceiveStream, tail: Tail) -> None:
    try:
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            tail.feed(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return
    finally:
        await trio.aclose_forcefully(stream)


async def spawn(
    nursery: trio.Nursery,
    argv: list[str],
    *,
    env: Mapping[str, str],
    cwd: str | os.PathLike[str] | None,
    output: OutputMode,
    on_exit: Callable[[Incarnation], None],
    what: str,
) -> Incarnation:
    """Start *argv* in a session of its own, with its output pumped into tails (``capture``).

    Its exit watcher and output readers run in *nursery*, shielded (see
    :meth:`Incarnation.start_background`); *on_exit* is called once it has been reaped.

    Raises:
        KernelStartupError: the process could not be started (*what* names it).
    """
    pipe: int | None
    if output == "capture":
        pipe = subprocess.PIPE
    elif output == "discard":
        pipe = subprocess.DEVNULL
    else:
        pipe = None
    try:
        process = await trio.lowlevel.open_process(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=pipe,
            stderr=pipe,
            env=dict(env),
            cwd=os.fspath(cwd) if cwd is not None else None,
            start_new_session=True,
        )
    except OSError as exc:
        raise KernelStartupError(f"cannot start {what}: {argv[0]!r}: {exc}") from exc
    inc = Incarnation(
        process=process,
        argv=argv,
        stdout=Tail() if process.stdout is not None else None,
        stderr=Tail() if process.stderr is not None else None,
    )

    async def watch() -> None:
        await inc.reap()
        on_exit(inc)

    inc.start_background(nursery, watch, name=f"{what} exit watcher")
    pending = 0
    streams: list[tuple[trio.abc.ReceiveStream, Tail]] = []
    if process.stdout is not None and inc.stdout is not None:
        streams.append((process.stdout, inc.stdout))
    if process.stderr is not None and inc.stderr is not None:
        streams.append((process.stderr, inc.stderr))
    pending = len(streams)
    if not pending:
        inc.streams_done.set()
    for stream, tail in streams:

        async def read(stream: trio.abc.ReceiveStream = stream, tail: Tail = tail) -> None:
            nonlocal pending
            try:
                await _pump(stream, tail)
            finally:
                pending -= 1
                if pending == 0:
                    inc.streams_done.set()

        inc.start_background(nursery, read, name=f"{what} output reader")
    return inc
