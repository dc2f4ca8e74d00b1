"""Launching kernels the Trio way: :func:`open_kernel`.

The kernel process belongs to the ``async with`` block that started it. Leaving the block for
any reason (normally, by exception, by cancellation) shuts the kernel down in a shielded
sequence (``shutdown_request`` on control, a grace period, SIGTERM to its process group,
SIGKILL), reaps it, and removes its connection file and ipc socket files.

Process lifetime rules:

* the kernel runs in its own session and process group (``start_new_session=True``), so
  signals for interrupts and termination reach everything it started in that group, and a
  Ctrl+C in the terminal does not reach it directly;
* when the kernel's main process exits, whatever is left of its process group is killed before
  the main process is reaped (while its zombie still holds the group id, so the signal cannot
  hit an unrelated process);
* the kernel learns our pid through ``JPY_PARENT_PID`` so kernels that watch their parent
  (ipykernel does) exit by themselves if this process is killed outright.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import ipaddress
import os
import re
import signal
import socket
import string
import subprocess
import sys
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs
import trio

from .._errors import ConnectionInfoError, EncryptionUnavailable, KernelDied, KernelStartupError
from .._io._connection_file import write_connection_file
from .._util import unwrap_single
from .._validate import (
    check_bool,
    check_choice,
    check_int,
    check_ip,
    check_mapping,
    check_option_names,
    check_seconds,
    check_str_sequence,
    parameter_names,
)
from .._wire._connection import ConnectionInfo
from ._kernelspec import KernelSpec, get_kernel_spec

if TYPE_CHECKING:
    from .._client._client import KernelClient

__all__ = ["Kernel", "open_kernel"]

OutputMode = Literal["capture", "inherit", "discard"]
EncryptionMode = Literal["off", "auto", "required"]

#: How many bytes of each output stream are kept for error messages and ``*_tail()``.
TAIL_BYTES = 64 * 1024

_PYTHON_NAMES = frozenset(
    {
        "python",
        f"python{sys.version_info[0]}",
        f"python{sys.version_info[0]}.{sys.version_info[1]}",
    }
)
_PLACEHOLDER = re.compile(r"\{(connection_file|resource_dir)\}")

#: How many times a fresh launch is tried when its TCP ports turn out to be taken.
PORT_ATTEMPTS = 3
_PORT_NAMES = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
# What a kernel writes when a bind fails: ipykernel and xeus-python ("Address already in use",
# from libzmq's strerror), and EADDRINUSE's name for kernels that print the errno symbol.
_IN_USE = re.compile(r"address already in use|EADDRINUSE", re.IGNORECASE)


# --------------------------------------------------------------------------------------------
# command line and environment


def kernel_argv(
    spec: KernelSpec, connection_file: str | os.PathLike[str], extra_arguments: Iterable[str] = ()
) -> list[str]:
    """The command line that starts *spec*'s kernel.

    ``{connection_file}`` and ``{resource_dir}`` are substituted, a leading ``python``,
    ``python3`` or ``python3.X`` (this interpreter's version) is replaced by
    :data:`sys.executable`, and *extra_arguments* are appended.
    """
    values = {
        "connection_file": os.fspath(connection_file),
        "resource_dir": os.fspath(spec.resource_dir) if spec.resource_dir is not None else "",
    }
    argv = [_PLACEHOLDER.sub(lambda m: values[m.group(1)], arg) for arg in spec.argv]
    if argv[0] in _PYTHON_NAMES:
        argv[0] = sys.executable
    argv.extend(extra_arguments)
    return argv


def kernel_env(
    spec: KernelSpec,
    env: Mapping[str, str | None] | None = None,
    *,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment a kernel starts with.

    The parent's environment (*base*, default :data:`os.environ`), then the spec's ``env`` (in
    which ``${VAR}`` refers to the parent's variables, as in jupyter_client), then *env* from
    the caller, where a value of ``None`` removes the variable. ``JPY_PARENT_PID`` is set to
    this process's pid so the kernel can exit if its parent dies.
    """
    result = dict(os.environ if base is None else base)
    for key, value in spec.env.items():
        result[key] = string.Template(value).safe_substitute(result)
    result["JPY_PARENT_PID"] = str(os.getpid())
    for key, maybe in (env or {}).items():
        if maybe is None:
            result.pop(key, None)
        else:
            result[key] = maybe
    return result


# --------------------------------------------------------------------------------------------
# one process incarnation


class _Tail:
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

    async def wait_for(self, predicate: Callable[[str], bool]) -> None:
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
class _Incarnation:
    """One kernel process: spawned, watched, reaped."""

    process: trio.Process
    argv: list[str]
    stdout: _Tail | None
    stderr: _Tail | None
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


async def _pump(stream: trio.abc.ReceiveStream, tail: _Tail) -> None:
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


async def _spawn(
    nursery: trio.Nursery,
    argv: list[str],
    *,
    env: Mapping[str, str],
    cwd: str | os.PathLike[str] | None,
    output: OutputMode,
    on_exit: Callable[[_Incarnation], None],
    what: str,
) -> _Incarnation:
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
    inc = _Incarnation(
        process=process,
        argv=argv,
        stdout=_Tail() if process.stdout is not None else None,
        stderr=_Tail() if process.stderr is not None else None,
    )

    async def watch() -> None:
        await inc.reap()
        on_exit(inc)

    inc.start_background(nursery, watch, name=f"{what} exit watcher")
    pending = 0
    streams: list[tuple[trio.abc.ReceiveStream, _Tail]] = []
    if process.stdout is not None and inc.stdout is not None:
        streams.append((process.stdout, inc.stdout))
    if process.stderr is not None and inc.stderr is not None:
        streams.append((process.stderr, inc.stderr))
    pending = len(streams)
    if not pending:
        inc.streams_done.set()
    for stream, tail in streams:

        async def read(stream: trio.abc.ReceiveStream = stream, tail: _Tail = tail) -> None:
            nonlocal pending
            try:
                await _pump(stream, tail)
            finally:
                pending -= 1
                if pending == 0:
                    inc.streams_done.set()

        inc.start_background(nursery, read, name=f"{what} output reader")
    return inc


# --------------------------------------------------------------------------------------------
# port collisions
#
# A TCP port is free when ConnectionInfo.allocate() picks it, but another program can take it
# before the kernel binds it. Kernels report that on stderr ("Address already in use") and
# then either exit (ipykernel for shell/iopub/stdin/control, xeus-python for any port) or, for
# ipykernel's heartbeat, carry on without a heartbeat, so the client would declare the kernel
# dead some 30 s later. The launcher treats both as a collision: the attempt is stopped and, on
# a fresh launch, retried with freshly allocated ports.


class _PortsInUse(Exception):
    """A launch attempt failed because a port of its connection was taken (internal)."""


def _busy_ports(info: ConnectionInfo) -> dict[str, int]:
    """The TCP ports of *info* that another socket holds now, by name.

    Each port is probed by binding it as libzmq does (with ``SO_REUSEADDR``, so connections
    left in TIME_WAIT do not count). Only errors that say "in use" count: anything else (an
    address that is not an IP literal, a missing IPv6 stack) is left to the kernel's own bind.
    """
    if info.transport != "tcp":
        return {}
    host = "0.0.0.0" if info.ip in ("*", "") else info.ip
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return {}
    busy: dict[str, int] = {}
    for name in _PORT_NAMES:
        port = int(getattr(info, name))
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                busy[name] = port
    return busy


def _reports_bind_failure(text: str, info: ConnectionInfo) -> bool:
    """Whether *text* (a kernel's stderr) says that binding one of *info*'s ports failed."""
    ports = {str(getattr(info, name)) for name in _PORT_NAMES}
    return any(
        _IN_USE.search(line) and not ports.isdisjoint(re.findall(r":(\d+)\b", line))
        for line in text.splitlines()
    )


def _with_fresh_ports(info: ConnectionInfo) -> ConnectionInfo:
    """*info* with newly allocated TCP ports (key, address and everything else kept)."""
    fresh = ConnectionInfo.allocate(ip=info.ip, transport=info.transport)
    return attrs.evolve(info, **{name: getattr(fresh, name) for name in _PORT_NAMES})


def _describe_busy(busy: Mapping[str, int]) -> str:
    if not busy:
        return "one of its ports was in use by another process"
    ports = ", ".join(f"{name.removesuffix('_port')} port {port}" for name, port in busy.items())
    verb = "was" if len(busy) == 1 else "were"
    return f"{ports} {verb} in use by another process"


# --------------------------------------------------------------------------------------------
# the kernel object


def _resolve_spec(
    name_or_spec: str | KernelSpec, kernel_dirs: Iterable[str | os.PathLike[str]] | None
) -> KernelSpec:
    if isinstance(name_or_spec, KernelSpec):
        return name_or_spec
    return get_kernel_spec(name_or_spec, kernel_dirs=kernel_dirs)


def _check_arguments(
    *,
    name_or_spec: object,
    cwd: object,
    env: object,
    extra_arguments: object,
    startup_timeout: object,
    output: object,
    encryption: object,
    transport: object,
    ip: object,
    shutdown_grace: object,
    terminate_grace: object,
    runtime_dir: object,
    connect: object,
    client_options: object,
) -> tuple[str, ...]:
    """Check the arguments of :func:`open_kernel` (types and values, by name), before any
    file is read or process started; return ``extra_arguments`` as a tuple."""
    if not isinstance(name_or_spec, (str, KernelSpec)):
        raise TypeError(
            f"name_or_spec must be a kernel name (str) or a KernelSpec, "
            f"got {type(name_or_spec).__name__}"
        )
    for name, path in (("cwd", cwd), ("runtime_dir", runtime_dir)):
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"{name} must be a path or None, got {type(path).__name__}")
    for key, value in (check_mapping("env", env) or {}).items():
        if not isinstance(key, str) or not (value is None or isinstance(value, str)):
            raise TypeError(f"env must map str to str or None, got {key!r:.40}: {value!r:.40}")
    arguments = check_str_sequence("extra_arguments", extra_arguments)
    check_seconds("startup_timeout", startup_timeout, allow_inf=True)
    check_choice("output", output, ("capture", "inherit", "discard"))
    check_choice("encryption", encryption, ("off", "auto", "required"))
    check_choice("transport", transport, ("tcp", "ipc"))
    if transport == "tcp":
        check_ip("ip", ip, bindable=True, error=ConnectionInfoError)
    check_seconds("shutdown_grace", shutdown_grace, allow_zero=True, allow_inf=True)
    check_seconds("terminate_grace", terminate_grace, allow_zero=True, allow_inf=True)
    check_bool("connect", connect)
    from .._channels._channels import open_channels
    from .._client._client import open_client

    check_option_names(
        "client_options",
        check_mapping("client_options", client_options),
        parameter_names(open_client, exclude={"info_or_channels"})
        | parameter_names(open_channels, exclude={"info"}),
    )
    return arguments


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
    _client_kwargs: dict[str, Any]
    _nursery: trio.Nursery
    _ipc_dir: Path | None = None
    _inc: _Incarnation | None = None
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
            RuntimeError: the kernel was opened with ``connect=False``.
        """
        if self._client is None:
            raise RuntimeError("this kernel was opened with connect=False: it has no client")
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
            RuntimeError: message mode on a kernel opened with ``connect=False``.
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
                    await self._stop_process(graceful=not isinstance(exc, _PortsInUse))
                error: BaseException = exc
                if isinstance(exc, _PortsInUse):
                    # The client is connected to these ports: never replace them silently.
                    error = KernelStartupError(
                        f"{self._what()} could not restart: "
                        f"{_describe_busy(_busy_ports(self.connection_info))} (Address already "
                        "in use); a restart keeps the kernel's ports, so they were not replaced "
                        f"(argv: {self._argv})",
                        stderr_tail=self.stderr_tail() if self._inc is not previous else "",
                    )
                reason = f"{self._what()} did not restart: {error}".split("\n", 1)[0]
                self._death = KernelDied(reason)
                if self._client is not None:
                    self._client.kernel_died(self._death)
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

    def _on_exit(self, inc: _Incarnation) -> None:
        if inc is not self._inc or inc.expected_exit:
            return
        assert inc.returncode is not None
        self._death = KernelDied(f"{self._what()} (pid {inc.pid}) {describe_exit(inc.returncode)}")
        if self._client is not None:
            # Pending requests fail now, and later ones fail fast until a restart.
            self._client.kernel_died(self._death)

    async def _start_process(self) -> None:
        if _busy_ports(self.connection_info):
            raise _PortsInUse  # taken since allocation (or, on restart, since the last run)
        # File I/O off the event loop (see open_kernel); not abandoned, so never half done.
        await trio.to_thread.run_sync(
            write_connection_file, self.connection_info, self.connection_file
        )
        self._inc = await _spawn(
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
            _PortsInUse: it could not bind one of its TCP ports (it exited saying so, or
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

                async def watch_stderr(tail: _Tail) -> None:
                    nonlocal bind_failed
                    await tail.wait_for(lambda text: _reports_bind_failure(text, info))
                    bind_failed = True
                    nursery.cancel_scope.cancel()

                nursery.start_soon(exited)
                if inc.stderr is not None and info.transport == "tcp":
                    nursery.start_soon(watch_stderr, inc.stderr)
                await self._ready_probe()
                ready = True
                nursery.cancel_scope.cancel()
        if bind_failed or (ready and _reports_bind_failure(inc.stderr_text(None), info)):
            raise _PortsInUse
        if ready:
            return
        if failure is not None and info.transport == "tcp":
            with trio.CancelScope(shield=True):
                await inc.finish_streams(1.0)
            if _IN_USE.search(inc.stderr_text(None)) or _busy_ports(info):
                raise _PortsInUse
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
                        from .._client._client import open_client

                        self._client = await attempt_stack.enter_async_context(
                            open_client(self.connection_info, **self._client_kwargs)
                        )
                    await self._wait_ready()
                except _PortsInUse:
                    with trio.CancelScope(shield=True):
                        await self._stop_process(graceful=False)
                    busy = _busy_ports(self.connection_info)
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
                    f"{self._what()} could not listen on its TCP ports: {_describe_busy(busy)} "
                    f"(Address already in use); gave up after {PORT_ATTEMPTS} attempts with "
                    f"freshly allocated ports (argv: {self._argv})",
                    stderr_tail=tail,
                )
            self.connection_info = _with_fresh_ports(self.connection_info)

    async def _ready_probe(self) -> None:
        inc = self._inc
        assert inc is not None
        if self._client is None:
            await _wait_bound(self.connection_info)
            return
        try:
            await self._client.wait_for_ready()
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

    async def _nudge_if_busy(self, inc: _Incarnation) -> None:
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
                self._client.kernel_died(KernelDied(f"{self._what()} was shut down"))

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


def _encryption_keys(spec: KernelSpec, encryption: EncryptionMode) -> tuple[str, str] | None:
    if encryption == "off":
        return None
    from .._io._zmq import curve_keypair, has_curve

    if encryption == "auto":
        return curve_keypair() if has_curve() and spec.supports_curve else None
    if encryption != "required":
        raise ValueError(f"encryption must be 'off', 'auto' or 'required', got {encryption!r}")
    if not spec.supports_curve:
        declared = ", ".join(spec.supported_encryption) or "none"
        raise EncryptionUnavailable(
            f"encryption is required but kernel {spec.name!r} does not declare CurveZMQ support "
            f"(metadata.supported_encryption: {declared})"
        )
    return curve_keypair()  # raises EncryptionUnavailable when libzmq lacks curve


@contextlib.asynccontextmanager
async def open_kernel(
    name_or_spec: str | KernelSpec = "python3",
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str | None] | None = None,
    extra_arguments: Sequence[str] = (),
    startup_timeout: float = 60.0,
    output: OutputMode = "capture",
    encryption: EncryptionMode = "off",
    transport: Literal["tcp", "ipc"] = "tcp",
    ip: str = "127.0.0.1",
    shutdown_grace: float = 5.0,
    terminate_grace: float = 2.0,
    runtime_dir: str | os.PathLike[str] | None = None,
    kernel_dirs: Iterable[str | os.PathLike[str]] | None = None,
    connect: bool = True,
    client_options: Mapping[str, Any] | None = None,
) -> AsyncIterator[Kernel]:
    """Start a kernel, wait until it is ready, and shut it down when the block ends.

    ::

        async with open_kernel("python3") as kernel:
            result = await kernel.client.execute("print(6 * 7)")

    Args:
        name_or_spec: a kernelspec name (looked up with :func:`get_kernel_spec`) or a
            :class:`KernelSpec`.
        cwd: the kernel's working directory (default: ours).
        env: variables set on top of our environment and the spec's ``env``; ``None`` as a
            value removes a variable.
        extra_arguments: appended to the spec's ``argv``.
        startup_timeout: seconds to wait for the kernel to become ready.
        output: ``"capture"`` the kernel's stdout/stderr (the last 64 KiB of each is kept,
            see :meth:`Kernel.stderr_tail`), ``"inherit"`` ours, or ``"discard"`` them.
        encryption: CurveZMQ transport encryption: ``"off"``, ``"auto"`` (when the spec
            declares ``"supported_encryption": ["curve"]`` and libzmq supports it), or
            ``"required"``.
        transport: ``"tcp"`` (loopback ports) or ``"ipc"`` (Unix sockets in a private
            directory; no port race).
        ip: the address to listen on for ``tcp``.
        shutdown_grace: seconds to wait for the kernel to exit after ``shutdown_request``.
        terminate_grace: seconds to wait after SIGTERM before SIGKILL.
        runtime_dir: where to write the connection file (default: Jupyter's runtime dir).
        kernel_dirs: kernelspec directories to search instead of Jupyter's path.
        connect: open a :class:`KernelClient` (``kernel.client``) and wait for the kernel to
            answer. With ``False`` no client is opened; readiness means the kernel listens.
        client_options: keyword arguments for :func:`open_client`.

    Yields:
        The running :class:`Kernel`.

    Raises:
        NoSuchKernel: no kernelspec has that name.
        InvalidKernelSpec: the kernelspec's ``kernel.json`` is invalid.
        KernelStartupError: the process could not be started, exited during startup, or did
            not become ready in time (the message includes the tail of its stderr). A launch
            whose TCP ports were taken by another program in the meantime ("Address already
            in use") is retried with fresh ports (3 attempts in all) before
            this is raised.
        EncryptionUnavailable: ``encryption="required"`` and the kernel or libzmq cannot
            provide CurveZMQ.
        ConfigurationError: an invalid option value (it is a :class:`ValueError`);
            :class:`~trio_enchannel.ConnectionInfoError` for an ``ip`` this host cannot
            listen on.
        TypeError: an argument has the wrong type.
    """
    extra_arguments = _check_arguments(
        name_or_spec=name_or_spec,
        cwd=cwd,
        env=env,
        extra_arguments=extra_arguments,
        startup_timeout=startup_timeout,
        output=output,
        encryption=encryption,
        transport=transport,
        ip=ip,
        shutdown_grace=shutdown_grace,
        terminate_grace=terminate_grace,
        runtime_dir=runtime_dir,
        connect=connect,
        client_options=client_options,
    )
    # Kernelspec lookup and the connection file are file I/O, which may block: never on the
    # event loop's thread. A lookup is abandoned on cancellation (it only reads); the write
    # is not, so that no connection file is left behind by an abandoned thread.
    spec = await trio.to_thread.run_sync(
        _resolve_spec, name_or_spec, kernel_dirs, abandon_on_cancel=True
    )
    keys = _encryption_keys(spec, encryption)
    info = ConnectionInfo.allocate(ip=ip, transport=transport, kernel_name=spec.name)
    ipc_dir = Path(info.ip).parent if transport == "ipc" else None
    if keys is not None:
        info = attrs.evolve(info, curve_publickey=keys[0], curve_secretkey=keys[1])
    try:
        connection_file = await trio.to_thread.run_sync(
            functools.partial(write_connection_file, info, runtime_dir=runtime_dir)
        )
    except BaseException:
        if ipc_dir is not None:
            with contextlib.suppress(OSError):
                ipc_dir.rmdir()
        raise
    with unwrap_single():
        async with trio.open_nursery() as nursery:
            kernel = Kernel(
                spec=spec,
                connection_info=info,
                connection_file=connection_file,
                argv=kernel_argv(spec, connection_file, extra_arguments),
                env=kernel_env(spec, env),
                cwd=cwd,
                output=output,
                startup_timeout=startup_timeout,
                shutdown_grace=shutdown_grace,
                terminate_grace=terminate_grace,
                client_kwargs=dict(client_options or {}),
                nursery=nursery,
                ipc_dir=ipc_dir,
            )
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
