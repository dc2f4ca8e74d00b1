"""Run a throwaway Jupyter Server or Enterprise Gateway on loopback (tests and benchmarks).

The server runs in a temporary root/runtime/config directory (user configuration and server
extensions are ignored), on a free loopback port, with a random token. It belongs to the
``async with`` block: leaving it stops the server (SIGTERM, then SIGKILL of its process group)
and removes the directory.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Literal

import attrs
import httpx
import trio

__all__ = [
    "LocalServer",
    "LocalServerError",
    "ServerKind",
    "open_local_server",
    "start_local_server",
    "wait_until_ready",
]

ServerKind = Literal["jupyter_server", "enterprise_gateway"]


@attrs.frozen
class LocalServer:
    """A server process started by :func:`open_local_server` or :func:`start_local_server`.

    Attributes:
        url: its HTTP base URL (``http://127.0.0.1:<port>/``).
        token: its token.
        port: its port.
        root_dir: its root (notebook) directory, inside the temporary directory.
        log_path: the file receiving its stdout and stderr.
        process: the server process.
        kind: ``"jupyter_server"`` or ``"enterprise_gateway"``.
    """

    url: str
    token: str = attrs.field(repr=False)
    port: int
    root_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] = attrs.field(repr=False)
    kind: ServerKind
    _tmp: tempfile.TemporaryDirectory[str] = attrs.field(repr=False, alias="_tmp")

    def log_tail(self, max_chars: int = 4000) -> str:
        """The end of the server's log."""
        try:
            return self.log_path.read_text(errors="replace")[-max_chars:]
        except OSError:
            return ""

    def stop(self, grace: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL of its process group) and remove its files.

        Blocking; idempotent.
        """
        process = self.process
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(grace)
        if process.poll() is None:
            # Not reaped yet, so the group id cannot have been reused.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        self._tmp.cleanup()


class LocalServerError(RuntimeError):
    """The local server exited or did not answer in time (the message has its log tail)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _arguments(
    kind: ServerKind, port: int, token: str, root: Path, kernel_ws_protocol: str | None
) -> list[str]:
    if kind == "jupyter_server":
        args = [
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.open_browser=False",
            "--ServerApp.allow_root=True",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
        ]
        if kernel_ws_protocol is not None:
            args.append(f"--ZMQChannelsWebsocketConnection.kernel_ws_protocol={kernel_ws_protocol}")
        return args
    return [
        "--EnterpriseGatewayApp.ip=127.0.0.1",
        f"--EnterpriseGatewayApp.port={port}",
        "--EnterpriseGatewayApp.port_retries=0",
        f"--EnterpriseGatewayApp.auth_token={token}",
    ]


def start_local_server(
    kind: ServerKind = "jupyter_server",
    *,
    command: Sequence[str] | None = None,
    token: str | None = None,
    kernel_ws_protocol: str | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    tls: tuple[str, str] | None = None,
) -> LocalServer:
    """Start the server process without waiting for it (see :func:`wait_until_ready`).

    Blocking (fork/exec only). The caller must call :meth:`LocalServer.stop`.
    Arguments as for :func:`open_local_server`; ``tls`` is ``(certfile, keyfile)`` to serve
    HTTPS (Jupyter Server only).

    Raises:
        OSError: the command could not be run.
    """
    if command is None:
        if kind == "jupyter_server":
            command = [sys.executable, "-m", "jupyter_server"]
        else:
            command = ["jupyter-enterprisegateway"]
    token = token if token is not None else secrets.token_hex(16)
    tmp = tempfile.TemporaryDirectory(prefix="trio-enchannel-server-")
    try:
        base = Path(tmp.name)
        root = base / "root"
        for sub in ("root", "runtime", "config"):
            (base / sub).mkdir()
        # Kernels get their own IPython directory: no writes to the user's ~/.ipython, and
        # no history database shared by many kernels ("database is locked" warnings).
        profile = base / "ipython" / "profile_default"
        profile.mkdir(parents=True)
        (profile / "ipython_kernel_config.py").write_text(
            "c.HistoryManager.hist_file = ':memory:'\n"
        )
        full_env = dict(os.environ)
        full_env.update(
            {
                "JUPYTER_NO_CONFIG": "1",
                "JUPYTER_CONFIG_DIR": str(base / "config"),
                "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
                "IPYTHONDIR": str(base / "ipython"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        full_env.update(env or {})
        port = port if port is not None else free_port()
        argv = [*command, *_arguments(kind, port, token, root, kernel_ws_protocol), *extra_args]
        if tls is not None:
            argv += [f"--ServerApp.certfile={tls[0]}", f"--ServerApp.keyfile={tls[1]}"]
        log_path = base / "server.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=str(root),
                start_new_session=True,
            )
    except BaseException:
        tmp.cleanup()
        raise
    return LocalServer(
        url=f"{'https' if tls else 'http'}://127.0.0.1:{port}/",
        token=token,
        port=port,
        root_dir=root,
        log_path=log_path,
        process=process,
        kind=kind,
        _tmp=tmp,
    )


async def wait_until_ready(
    server: LocalServer,
    startup_timeout: float = 60.0,
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Poll the server's REST API until it answers ``200`` to an authenticated request.

    Raises:
        LocalServerError: the server exited first (the message has its log tail).
        trio.TooSlowError: it did not answer within ``startup_timeout`` seconds (the message
            has its log tail: its stdout and stderr so far).
    """
    headers = {"Authorization": f"token {server.token}"}
    url = server.url + "api/kernelspecs"
    verify: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
    async with httpx.AsyncClient(timeout=5.0, verify=verify) as http:
        with trio.move_on_after(startup_timeout):
            while True:
                if server.process.poll() is not None:
                    raise LocalServerError(
                        f"{server.kind} exited with status {server.process.returncode} during "
                        f"startup:\n{server.log_tail()}"
                    )
                try:
                    response = await http.get(url, headers=headers)
                except httpx.TransportError:
                    pass
                else:
                    if response.status_code == 200:
                        return
                await trio.sleep(0.05)  # polling an external process coming up
    raise trio.TooSlowError(
        f"{server.kind} did not answer within {startup_timeout:g} s; its output so far:\n"
        f"{server.log_tail()}"
    )


@contextlib.asynccontextmanager
async def open_local_server(
    kind: ServerKind = "jupyter_server",
    *,
    command: Sequence[str] | None = None,
    token: str | None = None,
    kernel_ws_protocol: str | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    startup_timeout: float = 60.0,
    stop_grace: float = 10.0,
    port: int | None = None,
) -> AsyncIterator[LocalServer]:
    """Start a Jupyter Server (or Enterprise Gateway) on loopback and wait until it answers.

    Args:
        kind: which server.
        command: the program to run (default: ``python -m jupyter_server`` for Jupyter Server,
            ``jupyter-enterprisegateway`` for the gateway).
        token: the token (random by default).
        kernel_ws_protocol: Jupyter Server's ``kernel_ws_protocol``: ``""`` makes it refuse
            the binary subprotocol (legacy framing only); ``None`` leaves the default.
        extra_args: more command-line options.
        env: extra environment variables for the server (and its kernels).
        startup_timeout: seconds to wait for the server to answer.
        stop_grace: seconds between SIGTERM and SIGKILL when stopping it.
        port: the port to listen on (a free one by default).

    Raises:
        LocalServerError: the server exited during startup (the message has its log tail).
        trio.TooSlowError: it did not answer within ``startup_timeout`` (the message has its
            log tail).
    """
    server = await trio.to_thread.run_sync(
        lambda: start_local_server(
            kind,
            command=command,
            token=token,
            kernel_ws_protocol=kernel_ws_protocol,
            extra_args=extra_args,
            env=env,
            port=port,
        )
    )
    try:
        await wait_until_ready(server, startup_timeout)
        yield server
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(server.stop, stop_grace)
