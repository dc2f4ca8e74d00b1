"""The :class:`Kernel` lifecycle: launch (with port-collision retries), readiness, interrupt,
restart and the shielded shutdown sequence (``shutdown_request`` on control, a grace period,
SIGTERM to the process group, SIGKILL), then the removal of its files.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .._client._options import ClientOptions
from .._errors import KernelDied, KernelStartupError, UsageError
from .._io._connection_file import write_connection_file
from .._validate import check_int
from .._wire._connection import ConnectionInfo
from ._kernelspec import KernelSpec
from ._ports import (
    IN_USE,
    PORT_ATTEMPTS,
    PortsInUse,
    busy_ports,
    describe_busy,
    reports_bind_failure,
    with_fresh_ports,
)
from ._process import Incarnation, OutputMode, Tail, describe_exit, spawn

if TYPE_CHECKING:
    from .._client._client import KernelClient

__all__ = ["Kernel", "launched"]


@attrs.define(eq=False)
class Kernel:
    """A running kernel process, owned by the :func:`open_kernel` block that started it.

    Attributes:
        spec: the kernelspec it was started from.
        connection_info: where it listens (kept across restarts; if a launch attempt found
            one of its TCP ports taken, the ports of the attempt that succeeded).
        connection_file: the connection file written for it (removed when it ends).
        restart_count: how many times :meth:`restart` succeeded.
    """

    spec: KernelSpec
    connection_info: ConnectionInfo
    connection_file: Path
    _argv: list[str]
    _env: dict[str, str]
    _cwd: str | os.PathLike[str] | None
    _output: OutputMode
    _startup_timeout: float
    _shutdown_grace: float
    _terminate_grace: float
    _client_options: ClientOptions
    _nursery: trio.Nursery
    _ipc_dir: Path | None = None
    _inc: Incarnation | None = None
    _client: KernelClient | None = None
    _lifecycle_lock: trio.Lock = attrs.Factory(trio.Lock)
    _closed: bool = False
    _death: KernelDied | None = None
    restart_count: int = 0

    def __repr__(self) -> str:  # the generated one would show the environment (secrets)
        if self._inc is None:
            state = "not started"
        elif self._inc.alive:
            state = f"pid={self._inc.pid} running"
        else:
            state = f"pid={self._inc.pid} {self.exit_reason}"
        return f"<Kernel {self.spec.name!r} {state}>"

    # -- public state ----------------------------------------------------------------------

    @property
    def client(self) -> KernelClient:
        """The :class:`KernelClient` connected to this kernel (kept across restarts).

        Raises:
            UsageError: the kernel was opened with ``connect=False``.
        """
        if self._client is None:
            raise UsageError("this kernel was opened with connect=False: it has no client")
        return self._client

    @property
    def process(self) -> trio.Process:
        """The current kernel process (a new one after each restart).

        Do not read its ``returncode``/``poll()``: use :attr:`returncode` instead.
        """
        assert self._inc is not None
        return self._inc.process

    @property
    def pid(self) -> int:
        """The current kernel process id."""
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        """The exit status of the current process, or ``None`` while it runs.

        Negative values mean "killed by that signal", as in :mod:`subprocess`.
        """
        return self._inc.returncode if self._inc is not None else None

    @property
    def is_alive(self) -> bool:
        """Whether the current kernel process is running."""
        return self._inc is not None and self._inc.alive

    @property
    def died(self) -> KernelDied | None:
        """Set when the kernel process exited without being asked to (with the reason)."""
        return self._death

    @property
    def exit_reason(self) -> str | None:
        """Why the current process ended (``None`` while it runs)."""
        if self._inc is None or self._inc.returncode is None:
            return None
        if self._death is not None:
            return self._death.reason
        return f"shut down ({describe_exit(self._inc.returncode)})"

    @property
    def argv(self) -> list[str]:
        """The command line the kernel was started with."""
        return list(self._argv)

    def stderr_tail(self, max_lines: int | None = 40) -> str:
        """The last lines the kernel wrote to standard error (``output="capture"`` only).

        Raises:
            TypeError: ``max_lines`` is not an int or None.
        """
        if max_lines is not None:
            check_int("max_lines", max_lines)
        return self._inc.stderr_text(max_lines) if self._inc is not None else ""

    def stdout_tail(self, max_lines: int | None = 40) -> str:
        """The last lines the kernel wrote to standard output (``output="capture"`` only).

        Raises:
            TypeError: ``max_lines`` is not an int or None.
        """
        if max_lines is not None:
            check_int("max_lines", max_lines)
        if self._inc is None or self._inc.stdout is None:
            return ""
        return self._inc.stdout.text(max_lines)

    async def wait(self) -> int:
        """Wait until the current kernel process exits; return its exit status."""
        assert self._inc is not None
        await self._inc.exited.wait()
        assert self._inc.returncode is not None
        return self._inc.returncode

    # -- control ---------------------------------------------------------------------------

    async def interrupt(self) -> None:
        """Interrupt what the kernel is doing, as its spec says.

        ``interrupt_mode: "signal"`` sends SIGINT to the kernel's process group;
        ``"message"`` sends an ``interrupt_request`` on the control channel and waits for
        the reply.

        Raises:
            KernelDied: the kernel is not running.
            UsageError: message mode on a kernel opened with ``connect=False``.
        """
        await trio.lowlevel.checkpoint()
        inc = self._inc
        if inc is None or not inc.alive:
            raise KernelDied(self.exit_reason or "kernel is not running")
        if self.spec.interrupt_mode == "message":
            await self.client.interrupt()
        else:
            inc.signal_group(signal.SIGINT)

    async def restart(self) -> None:
        """Stop the kernel process and start a new one with the same connection info.

        The :class:`Kernel` object and its client stay usable: the client's sockets reconnect
        to the new process. Requests pending at the time of the restart fail with
        :class:`KernelDied`.

        If the new process cannot start or become ready (or the restart is cancelled), it is
        stopped again: the kernel is then down, with the reason in :attr:`died`, and another
        :meth:`restart` may be attempted.

        Raises:
            KernelStartupError: the new process failed to start or become ready.
            trio.ClosedResourceError: the kernel has been shut down.
        """
        async with self._lifecycle_lock:
            if self._closed:
                raise trio.ClosedResourceError("the kernel has been shut down")
            with trio.CancelScope(shield=True):
                await self._stop_process(restart=True)
            self._death = None
            if self._client is not None:
                self._client.reset_readiness()
            previous = self._inc
            try:
                await self._start_process()
                await self._wait_ready()
            except BaseException as exc:
                with trio.CancelScope(shield=True):
                    await self._stop_process(graceful=not isinstance(exc, PortsInUse))
                error: BaseException = exc
                if isinstance(exc, PortsInUse):
                    # The client is connected to these ports: never replace them silently.
                    error = KernelStartupError(
                        f"{self._what()} could not restart: "
                        f"{describe_busy(busy_ports(self.connection_info))} (Address already "
                        "in use); a restart keeps the kernel's ports, so they were not replaced "
                        f"(argv: {self._argv})",
                        stderr_tail=self.stderr_tail() if self._inc is not previous else "",
                    )
                reason = f"{self._what()} did not restart: {error}".split("\n", 1)[0]
                self._death = KernelDied(reason)
                if self._client is not None:
                    self._client.declare_dead(self._death)
                if error is not exc:
                    raise error from None
                raise
            self.restart_count += 1

    async def shutdown(self) -> None:
        """Shut the kernel down now (leaving the ``async with`` block does it too).

        Idempotent. Shielded from cancellation so the process is always reaped and the files
        removed.
        """
        with trio.CancelScope(shield=True):
            async with self._lifecycle_lock:
                await self._close()

    # -- internals -------------------------------------------------------------------------

    def _what(self) -> str:
        return f"kernel {self.spec.name!r}"

    def _on_exit(self, inc: Incarnation) -> None:
        if inc is not self._inc or inc.expected_exit:
            return
        assert inc.returncode is not None
        self._death = KernelDied(f"{self._what()} (pid {inc.pid}) {describe_exit(inc.returncode)}")
        if self._client is not None:
            # Pending requests fail now, and later ones fail fast until a restart.
            self._client.declare_dead(self._death)

    async def _start_process(self) -> None:
        if busy_ports(self.connection_info):
            raise PortsInUse  # taken since allocation (or, on restart, since the last run)
        # File I/O off the event loop (see open_kernel); not abandoned, so never half done.
        await trio.to_thread.run_sync(
            write_connection_file, self.connection_info, self.connection_file
        )
        self._inc = await spawn(
            self._nursery,
            self._argv,
            env=self._env,
            cwd=self._cwd,
            output=self._output,
            on_exit=self._on_exit,
            what=self._what(),
        )

    async def _startup_failure(self, message: str) -> KernelStartupError:
        inc = self._inc
        if inc is not None and inc.returncode is not None:
            with trio.CancelScope(shield=True):
                await inc.finish_streams(1.0)
        tail = inc.stderr_text() if inc is not None else ""
        return KernelStartupError(message, stderr_tail=tail)

    async def _wait_ready(self) -> None:
        """Wait until the kernel is ready.

        Raises:
            PortsInUse: it could not bind one of its TCP ports (it exited saying so, or
                reported a failed bind of one of our ports on stderr while running on).
            KernelStartupError: it exited or did not become ready in time.
        """
        inc = self._inc
        assert inc is not None
        info = self.connection_info
        failure: str | None = None
        ready = False
        bind_failed = False
        with trio.move_on_after(self._startup_timeout) as timeout_scope:
            async with trio.open_nursery() as nursery:

                async def exited() -> None:
                    nonlocal failure
                    await inc.exited.wait()
                    assert inc.returncode is not None
                    failure = (
                        f"{self._what()} {describe_exit(inc.returncode)} during startup "
                        f"(argv: {inc.argv})"
                    )
                    nursery.cancel_scope.cancel()

                async def watch_stderr(tail: Tail) -> None:
                    nonlocal bind_failed
                    await tail.wait_until(lambda text: reports_bind_failure(text, info))
                    bind_failed = True
                    nursery.cancel_scope.cancel()

                nursery.start_soon(exited)
                if inc.stderr is not None and info.transport == "tcp":
                    nursery.start_soon(watch_stderr, inc.stderr)
                await self._ready_probe()
                ready = True
                nursery.cancel_scope.cancel()
        if bind_failed or (ready and reports_bind_failure(inc.stderr_text(None), info)):
            raise PortsInUse
        if ready:
            return
        if failure is not None and info.transport == "tcp":
            with trio.CancelScope(shield=True):
                await inc.finish_streams(1.0)
            if IN_USE.search(inc.stderr_text(None)) or busy_ports(info):
                raise PortsInUse
        if failure is None and timeout_scope.cancelled_caught:
            failure = (
                f"{self._what()} did not become ready within {self._startup_timeout:g} s "
                f"(argv: {inc.argv})"
            )
        assert failure is not None
        raise await self._startup_failure(failure)

    async def _launch(self, stack: contextlib.AsyncExitStack, *, connect: bool) -> None:
        """Start the process (and, with *connect*, its client) and wait until it is ready.

        An attempt whose TCP ports turn out to be taken is stopped completely (process reaped,
        client closed, connection file removed) and the launch is tried again with fresh
        ports, up to :data:`PORT_ATTEMPTS` times. Any other failure ends the launch at once.
        On success the client's context is handed over to *stack*.

        Raises:
            KernelStartupError: the kernel failed to start, or every attempt found its ports
                taken.
        """
        tail = ""
        for attempt in range(1, PORT_ATTEMPTS + 1):
            previous = self._inc
            async with contextlib.AsyncExitStack() as attempt_stack:
                try:
                    await self._start_process()
                    if connect:
                        from .._client._client import open_client_with

                        self._client = await attempt_stack.enter_async_context(
                            open_client_with(self.connection_info, self._client_options)
                        )
                    await self._wait_ready()
                except PortsInUse:
                    with trio.CancelScope(shield=True):
                        await self._stop_process(graceful=False)
                    busy = busy_ports(self.connection_info)
                    if self._inc is not previous:  # else it was found taken before spawning
                        tail = self.stderr_tail()
                    with contextlib.suppress(FileNotFoundError):
                        self.connection_file.unlink()
                except BaseException:
                    # Stop the process while the client can still send shutdown_request.
                    await self.shutdown()
                    raise
                else:
                    stack.push_async_exit(attempt_stack.pop_all())
                    return
            self._client = None
            self._death = None
            if attempt == PORT_ATTEMPTS:
                raise KernelStartupError(
                    f"{self._what()} could not listen on its TCP ports: {describe_busy(busy)} "
                    f"(Address already in use); gave up after {PORT_ATTEMPTS} attempts with "
                    f"freshly allocated ports (argv: {self._argv})",
                    stderr_tail=tail,
                )
            self.connection_info = with_fresh_ports(self.connection_info)

    async def _ready_probe(self) -> None:
        inc = self._inc
        assert inc is not None
        if self._client is None:
            await _wait_bound(self.connection_info)
            return
        try:
            await self._client.wait_ready()
        except KernelDied:
            if not inc.exited.is_set():
                raise
            # The process exited (the exit watcher told the client): the startup failure,
            # with the kernel's stderr, is reported by _wait_ready, which cancels us.
            await trio.sleep_forever()

    async def _fire_on_control(self, msg_type: str, content: dict[str, Any]) -> None:
        """Send a request on the control channel without waiting for the reply.

        Uses a socket of its own (not the client's), so it works while the client is being
        closed or cancelled, after the kernel was declared unresponsive, and with
        ``connect=False``. Errors are swallowed: the caller escalates to signals anyway.
        """
        from .._io._zmq import TrioSocket, curve_keypair
        from .._wire._session import Session

        info = self.connection_info
        with contextlib.suppress(Exception):
            session = Session.from_connection_info(info)
            frames = session.serialize(session.message(msg_type, content, channel="control"))
            with TrioSocket("DEALER", linger=1.0) as sock:
                if info.curve_publickey is not None:
                    public, secret = curve_keypair()
                    sock.set_curve_client(
                        info.curve_publickey, public_key=public, secret_key=secret
                    )
                sock.connect(info.url("control"))
                # A DEALER queues the message until the connection is up; closing with a
                # linger lets libzmq deliver it after we return.
                await sock.send_multipart(frames)

    async def _nudge_if_busy(self, inc: Incarnation) -> None:
        """A kernel still running code cannot act on shutdown_request: interrupt it.

        An idle kernel exits within a fraction of a second of the request; one that has not
        after a short while is most likely busy executing, so interrupt that execution (as
        jupyter_client does, but only when needed) and let the shutdown proceed.
        """
        await trio.sleep(min(1.0, self._shutdown_grace / 2))
        if not inc.alive:
            return
        if self.spec.interrupt_mode == "message":
            await self._fire_on_control("interrupt_request", {})
        else:
            inc.signal_group(signal.SIGINT)

    async def _stop_process(self, *, restart: bool = False, graceful: bool = True) -> None:
        """shutdown_request, grace, SIGTERM, grace, SIGKILL; then reap. Call shielded.

        With ``graceful=False`` (a kernel that could not bind its ports has no control
        channel to ask), start at SIGTERM.
        """
        inc = self._inc
        if inc is None:
            return
        inc.expected_exit = True
        if inc.alive and self._client is not None:
            # Pending requests will not get replies from this process.
            self._client.fail_pending(
                KernelDied(f"{self._what()} is {'restarting' if restart else 'shutting down'}")
            )
        if inc.alive and self._shutdown_grace > 0 and graceful:
            with trio.move_on_after(self._shutdown_grace):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(
                        self._fire_on_control, "shutdown_request", {"restart": restart}
                    )
                    nursery.start_soon(self._nudge_if_busy, inc)
                    await inc.reap()
                    nursery.cancel_scope.cancel()
        if inc.alive:
            inc.signal_group(signal.SIGTERM)
            with trio.move_on_after(self._terminate_grace):
                await inc.reap()
        if inc.alive:
            inc.signal_group(signal.SIGKILL)
        await inc.reap()
        await inc.finish_streams(1.0)
        inc.stop_background()

    async def _close(self) -> None:
        """Everything that must happen when the kernel ends. Call shielded; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._stop_process()
        finally:
            if self._inc is not None:
                self._inc.stop_background()
            self._remove_files()
            if self._client is not None and not self._client.closed:
                # The client stays open until the block ends; make it fail fast meanwhile.
                self._client.declare_dead(KernelDied(f"{self._what()} was shut down"))

    def _remove_files(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.connection_file.unlink()
        for path in self.connection_info.ipc_paths():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if self._ipc_dir is not None:
            with contextlib.suppress(OSError):
                self._ipc_dir.rmdir()


async def _wait_bound(info: ConnectionInfo) -> None:
    """Wait until the kernel listens on its shell endpoint (used when not connecting)."""
    delay = 0.01
    while True:
        if info.transport == "ipc":
            if all(p.exists() for p in info.ipc_paths()):
                return
        else:
            host = "127.0.0.1" if info.ip in ("*", "0.0.0.0", "") else info.ip
            try:
                stream = await trio.open_tcp_stream(host, info.shell_port)
            except OSError:
                pass
            else:
                await trio.aclose_forcefully(stream)
                return
        await trio.sleep(delay)
        delay = min(delay * 2, 0.2)


@contextlib.asynccontextmanager
async def launched(kernel: Kernel, *, connect: bool) -> AsyncIterator[Kernel]:
    """Launch *kernel* (see :meth:`Kernel._launch`), and shut it down when the block ends,
    whichever way it ends; the helper tasks it started in its nursery are stopped too."""
    try:
        async with contextlib.AsyncExitStack() as stack:
            await kernel._launch(stack, connect=connect)
            try:
                yield kernel
            finally:
                # Stop the process while the client can still send shutdown_request;
                # the client closes after that.
                await kernel.shutdown()
    finally:
        try:
            await kernel.shutdown()
        finally:
            # Never leave the nursery waiting on a shielded helper task.
            if kernel._inc is not None:
                kernel._inc.stop_background()
