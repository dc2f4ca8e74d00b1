"""Shared fixtures: real kernel processes for integration tests.

``ipykernel``
    Starts ``python -m ipykernel_launcher -f FILE`` (the current interpreter) on a fresh
    :class:`ConnectionInfo` written to a connection file in ``tmp_path``, yields the
    :class:`ConnectionInfo`, and always kills and reaps the process (and its process group)
    afterwards. Over TCP the kernel already listens on all of its ports when the test body
    runs (it is restarted on fresh ports if another socket took one first), but it may still
    be starting: use ``open_channels(info)`` and ``await ch.wait_iopub_ready()`` or a
    ``kernel_info_request``.

``ipykernel_process``
    The same, yielding a :class:`KernelProcess` (info, trio process, connection file) for
    tests that need the process itself (exit status, signals).

``xeus_python``
    The same for xeus-python (``python -m xpython_launcher``); the test is skipped where
    xeus-python is not installed.

``async_kernel``
    The same for async-kernel (``python -m async_kernel start``, Trio backend), a concurrent
    IPython kernel (protocol 5.5) that runs requests concurrently; skipped where async-kernel
    is not installed (it needs Python 3.11).

``received_messages`` (autouse)
    In every test marked ``kernel``, each message decoded in the test process, by
    trio-enchannel (``Session.deserialize``, the remote links' frame decoder) or by
    jupyter_client (``Session.deserialize``, on any thread), is validated against the message
    schemas (``tests/_msgspec.py``); the test fails at teardown if one did not validate.
    Past 1000 messages of one type in a test (the floods), one in 100 is validated.
    Validation never changes what the decoding code sees.

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
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import hypothesis
import psutil
import pytest
import trio

from trio_enchannel import ConnectionInfo, Message, Session, write_connection_file

if TYPE_CHECKING:
    from ._msgspec import ReceivedMessages

# No property test has a wall-clock deadline (Hypothesis's default is 200 ms per example): on
# a loaded machine an example of a codec test took 1.4 s and failed with DeadlineExceeded.
# Tests assert no timings; speed is measured in benchmarks/.
hypothesis.settings.register_profile("trio-enchannel", deadline=None)
hypothesis.settings.load_profile("trio-enchannel")

IPYKERNEL_ARGV = (sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}")
XEUS_PYTHON_ARGV = (sys.executable, "-m", "xpython_launcher", "-f", "{connection_file}")
#: async-kernel on its Trio backend (its kernelspec "async" uses asyncio).
ASYNC_KERNEL_ARGV = (
    sys.executable,
    "-m",
    "async_kernel",
    "start",
    "--connection_file={connection_file}",
    "--backend=trio",
)


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


#: Attempts at starting a kernel whose TCP ports another socket took before it bound them.
PORT_ATTEMPTS = 3
#: How long a starting kernel may take to listen on all of its TCP ports.
BIND_TIMEOUT = 60.0
#: How long the heartbeat port may lag behind the other four (ipykernel binds it in a
#: thread, and a failed bind there is silent: the kernel carries on without a heartbeat).
HEARTBEAT_GRACE = 3.0


async def _start(
    directory: Path, argv: Sequence[str], info: ConnectionInfo
) -> tuple[trio.Process, Path, Path]:
    name = f"kernel-{uuid.uuid4().hex[:12]}"
    path = write_connection_file(info, directory / f"{name}.json")
    log = directory / f"{name}.log"
    env = dict(os.environ)
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    env["JUPYTER_RUNTIME_DIR"] = str(directory / "runtime")
    # A history database of its own: IPython kernels (ipykernel, async-kernel) share
    # ~/.ipython's otherwise, so a history search would find other tests' (and other
    # processes') cells, and concurrent writers collide.
    env["IPYTHONDIR"] = str(directory / "ipython")
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
    return process, path, log


async def _kill(process: trio.Process) -> None:
    with trio.CancelScope(shield=True):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def _listens_on_its_ports(process: trio.Process, info: ConnectionInfo, log: Path) -> bool:
    """Wait until the kernel process listens on all five TCP ports of ``info``: ``True``;
    ``False`` when it exited first or one port stayed taken by another socket (a port that
    ``ConnectionInfo.allocate`` found free can be taken, for example as the source port of an
    outgoing connection, before the kernel binds it; jupyter_client has the same race)."""
    ports = {info.shell_port, info.iopub_port, info.stdin_port, info.control_port}
    kernel = psutil.Process(process.pid)
    others_since: float | None = None
    with trio.move_on_after(BIND_TIMEOUT):
        while process.poll() is None:
            try:
                listening = {
                    c.laddr.port
                    for c in kernel.net_connections(kind="tcp")
                    if c.status == psutil.CONN_LISTEN
                }
            except psutil.Error:
                return False
            if b"Address already in use" in log.read_bytes():  # noqa: ASYNC240 - a small log
                return False  # ipykernel may hang on its way out after a failed bind
            if ports <= listening:
                if info.hb_port in listening:
                    return True
                if others_since is None:
                    others_since = trio.current_time()
                elif trio.current_time() - others_since > HEARTBEAT_GRACE:
                    return False
            await trio.sleep(0.02)  # no event tells when another process binds a port
    return False


@asynccontextmanager
async def kernel_process(
    directory: Path,
    argv: Sequence[str] = IPYKERNEL_ARGV,
    info: ConnectionInfo | None = None,
) -> AsyncIterator[KernelProcess]:
    """Write ``info`` (default: freshly allocated tcp ports) to a connection file in
    ``directory``, start ``argv`` (``{connection_file}`` substituted) in its own process
    group, yield a :class:`KernelProcess`, and always kill and reap it.

    Over TCP, the kernel is yielded once it listens on all of its ports; if another socket
    took one of them first, it is started again on fresh ports (same key and CurveZMQ keys),
    up to ``PORT_ATTEMPTS`` times."""
    if info is None:
        info = ConnectionInfo.allocate()
    for attempt in range(1, PORT_ATTEMPTS + 1):
        process, path, log = await _start(directory, argv, info)
        try:
            if info.transport != "tcp" or await _listens_on_its_ports(process, info, log):
                break
        except BaseException:
            await _kill(process)
            raise
        await _kill(process)
        output = log.read_text(errors="replace")
        if attempt == PORT_ATTEMPTS or process.returncode not in (-signal.SIGKILL, 1):
            pytest.fail(f"the kernel never listened on all of its ports:\n{output[-3000:]}")
        fresh = ConnectionInfo.allocate()
        info = attrs.evolve(
            info,
            shell_port=fresh.shell_port,
            iopub_port=fresh.iopub_port,
            stdin_port=fresh.stdin_port,
            control_port=fresh.control_port,
            hb_port=fresh.hb_port,
        )
    try:
        yield KernelProcess(info=info, process=process, connection_file=path, log=log)
    finally:
        await _kill(process)


@pytest.fixture
async def ipykernel_process(tmp_path: Path) -> AsyncIterator[KernelProcess]:
    """A running ipykernel (see the module docstring); skips the test where ipykernel is not
    installed."""
    if importlib.util.find_spec("ipykernel") is None:
        pytest.skip("ipykernel is not installed")
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


@pytest.fixture
async def async_kernel(tmp_path: Path) -> AsyncIterator[KernelProcess]:
    """A running async-kernel (Trio backend); skips the test where it is not installed."""
    if importlib.util.find_spec("async_kernel") is None:
        pytest.skip("async-kernel is not installed (it needs Python 3.11 or later)")
    async with kernel_process(tmp_path, ASYNC_KERNEL_ARGV) as kernel:
        yield kernel


@pytest.fixture(autouse=True)
def received_messages(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ReceivedMessages | None]:
    """Validate every message a real-kernel test receives (see the module docstring)."""
    if request.node.get_closest_marker("kernel") is None:
        yield None
        return
    # The message schemas come with jupyter_kernel_test (which brings jupyter_client): a
    # real-kernel test does not run unchecked.
    pytest.importorskip("jupyter_kernel_test", reason="validates what real kernels send")
    import jupyter_client.session

    from trio_enchannel._wire._framing import decode_frame

    from ._msgspec import ReceivedMessages

    # Every message of a type up to 1000 per test, then one in 100 (floods).
    received = ReceivedMessages(full=1000, sample=100)
    ours = Session.deserialize
    theirs = jupyter_client.session.Session.deserialize

    def deserialize(self: Session, *args: Any, **kwargs: Any) -> Message:
        msg = ours(self, *args, **kwargs)
        received.check(msg)
        return msg

    def decode(*args: Any, **kwargs: Any) -> Message:
        msg = decode_frame(*args, **kwargs)
        received.check(msg, via_server=True)
        return msg

    def jupyter_client_deserialize(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        msg: dict[str, Any] = theirs(self, *args, **kwargs)
        received.check(msg)
        return msg

    monkeypatch.setattr(Session, "deserialize", deserialize)
    if importlib.util.find_spec("trio_websocket") is not None:  # the remote extra
        from trio_enchannel._remote import _link

        monkeypatch.setattr(_link, "decode_frame", decode)
    monkeypatch.setattr(jupyter_client.session.Session, "deserialize", jupyter_client_deserialize)
    yield received
    if received.problems:
        pytest.fail(
            f"{len(received.problems)} received message(s) do not follow the protocol:\n"
            + "\n".join(received.problems[:20]),
            pytrace=False,
        )
