"""open_kernel: process lifecycle, cleanup under cancellation, real kernels."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import attrs
import psutil
import pytest
import trio

from trio_enchannel._channels._channels import Channels
from trio_enchannel._client._client import open_client
from trio_enchannel._client._execution import Execution
from trio_enchannel._client._results import ExecuteResult
from trio_enchannel._errors import (
    ConnectionInfoError,
    EncryptionUnavailable,
    KernelDied,
    KernelError,
    KernelStartupError,
    UsageError,
)
from trio_enchannel._io._zmq import zmq_context
from trio_enchannel._launch._argv import kernel_argv, kernel_env
from trio_enchannel._launch._kernel import Kernel
from trio_enchannel._launch._kernelspec import KernelSpec, get_kernel_spec
from trio_enchannel._launch._open import open_kernel
from trio_enchannel._launch._process import describe_exit

# A stand-in kernel for process-level tests: it reads its connection file, listens where the
# file says (a plain socket is enough for connect=False readiness), reports what it saw, and
# behaves as FAKE_MODE asks.
FAKE_KERNEL = r"""
import json, os, signal, socket, subprocess, sys, time
mode = os.environ.get("FAKE_MODE", "serve")
cf = sys.argv[sys.argv.index("-f") + 1]
info = json.load(open(cf))
report = {"argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ), "info": info,
          "pgid": os.getpgid(0), "pid": os.getpid()}
sys.stderr.write("fake kernel starting\n")
sys.stderr.flush()
if mode == "once" and os.path.exists(os.environ["FAKE_REPORT"]):
    mode = "crash"  # a restart fails
if mode == "crash":
    sys.stderr.write("boom: the kernel could not start\n")
    sys.exit(3)
if mode == "hang":
    while True:
        time.sleep(60)
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if mode == "exit-on-int":
    signal.signal(signal.SIGINT, lambda *a: os._exit(42))
if mode == "child":
    child = subprocess.Popen(["sleep", "1000"])
    report["child"] = child.pid
with open(os.environ["FAKE_REPORT"], "w") as f:
    json.dump(report, f)
socks = []
if info["transport"] == "ipc":
    for port in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"):
        s = socket.socket(socket.AF_UNIX)
        s.bind(f"{info['ip']}-{info[port]}")
        s.listen()
        socks.append(s)
else:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((info["ip"], info["shell_port"]))
    s.listen()
    socks.append(s)
print("fake kernel listening", flush=True)
if mode == "polite":  # exit cleanly on the first message on control (the shutdown_request)
    import zmq
    router = zmq.Context.instance().socket(zmq.ROUTER)
    router.bind(f"tcp://{info['ip']}:{info['control_port']}")
    frames = router.recv_multipart()
    header = json.loads(frames[frames.index(b"<IDS|MSG>") + 2])
    sys.stderr.write(f"control got {header['msg_type']}\n")
    sys.exit(0)
while True:
    signal.pause()
"""


@pytest.fixture
def fake_spec(tmp_path: Path) -> KernelSpec:
    script = tmp_path / "fake_kernel.py"
    script.write_text(FAKE_KERNEL)
    return KernelSpec(
        name="fake",
        argv=["python", str(script), "-f", "{connection_file}"],
        display_name="Fake",
        language="none",
        env={"FAKE_REPORT": str(tmp_path / "report.json")},
    )


@pytest.fixture
def runtime_dir(tmp_path: Path) -> Path:
    d = tmp_path / "runtime"
    d.mkdir()
    return d


def descendants() -> list[psutil.Process]:
    children: list[psutil.Process] = psutil.Process().children(recursive=True)
    return children


def open_fds() -> dict[int, str]:
    """Our open file descriptors and what they point to, without ZeroMQ's internal
    eventfd/epoll descriptors (libzmq creates and reaps those on its own threads)."""
    fds: dict[int, str] = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target not in ("anon_inode:[eventfd]", "anon_inode:[eventpoll]"):
            fds[int(name)] = target
    return fds


@pytest.fixture
def no_leaks(runtime_dir: Path) -> Iterator[None]:
    """Fail if a test leaves child processes, file descriptors or runtime files behind."""
    fds_before = open_fds()
    yield
    leftover = descendants()
    for p in leftover:
        with pytest.raises(psutil.NoSuchProcess):
            p.kill()
    assert leftover == []
    assert list(runtime_dir.iterdir()) == []
    # libzmq closes a socket's descriptors on its I/O thread shortly after zmq_close().
    deadline = time.monotonic() + 5
    while True:
        leaked = {fd: t for fd, t in open_fds().items() if fds_before.get(fd) != t}
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert leaked == {}


def running(kernel: Kernel) -> bool:
    # A function, not the property, so mypy does not narrow it across the block's end.
    return kernel.is_alive


def read_report(tmp_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp_path / "report.json").read_text())
    return data


# ---------------------------------------------------------------------------------------------
# pure helpers


def test_kernel_argv_substitutes_and_runs_this_python(tmp_path: Path) -> None:
    spec = KernelSpec(
        name="k",
        argv=["python3", "-m", "k", "-f", "{connection_file}", "--res={resource_dir}", "{other}"],
        resource_dir=tmp_path,
    )
    argv = kernel_argv(spec, "/run/kernel-1.json", ["--debug"])
    assert argv == [
        sys.executable,
        "-m",
        "k",
        "-f",
        "/run/kernel-1.json",
        f"--res={tmp_path}",
        "{other}",
        "--debug",
    ]
    versioned = KernelSpec(name="k", argv=[f"python{sys.version_info[0]}.{sys.version_info[1]}"])
    assert kernel_argv(versioned, "c.json") == [sys.executable]
    other = KernelSpec(name="k", argv=["python2.7", "{connection_file}"])
    assert kernel_argv(other, "c.json") == ["python2.7", "c.json"]


def test_kernel_env_merges_parent_spec_then_caller() -> None:
    spec = KernelSpec(name="k", argv=["k"], env={"A": "spec", "B": "${HOME}/b", "C": "spec"})
    env = kernel_env(
        spec, {"C": "caller", "HOME": None}, base={"HOME": "/home/u", "A": "parent", "D": "d"}
    )
    assert env["A"] == "spec"
    assert env["B"] == "/home/u/b"
    assert env["C"] == "caller"
    assert env["D"] == "d"
    assert "HOME" not in env
    assert env["JPY_PARENT_PID"] == str(os.getpid())


def test_describe_exit() -> None:
    assert describe_exit(0) == "exited with code 0"
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"


# ---------------------------------------------------------------------------------------------
# process lifecycle with a stand-in kernel (connect=False)


@pytest.mark.usefixtures("no_leaks")
async def test_fake_kernel_lifecycle(
    fake_spec: KernelSpec, tmp_path: Path, runtime_dir: Path
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    with trio.fail_after(30):
        async with open_kernel(
            fake_spec,
            connect=False,
            shutdown_grace=0,
            cwd=workdir,
            env={"EXTRA": "yes"},
            extra_arguments=["--flag"],
            runtime_dir=runtime_dir,
        ) as kernel:
            assert running(kernel)
            assert kernel.died is None
            cf = kernel.connection_file
            assert cf.parent == runtime_dir
            assert stat.S_IMODE(cf.stat().st_mode) == 0o600
            report = read_report(tmp_path)
            assert report["argv"][-1] == "--flag"
            assert report["argv"][report["argv"].index("-f") + 1] == str(cf)
            assert report["cwd"] == str(workdir)
            assert report["env"]["EXTRA"] == "yes"
            assert report["env"]["JPY_PARENT_PID"] == str(os.getpid())
            assert report["pgid"] == report["pid"] == kernel.pid  # own process group
            assert report["info"]["key"] == kernel.connection_info.key
            assert report["info"]["kernel_name"] == "fake"
            assert "fake kernel starting" in kernel.stderr_tail()
            for tail in (kernel.stderr_tail, kernel.stdout_tail):
                with pytest.raises(TypeError, match="max_lines"):
                    tail("3")  # type: ignore[arg-type]
            with pytest.raises(UsageError, match="connect=False"):
                _ = kernel.client
        assert not running(kernel)
        assert kernel.returncode == -signal.SIGTERM
        assert kernel.died is None
        assert kernel.exit_reason == "shut down (killed by SIGTERM)"
        assert not cf.exists()


@pytest.mark.usefixtures("no_leaks")
async def test_startup_failure_reports_stderr_tail(
    fake_spec: KernelSpec, runtime_dir: Path
) -> None:
    with trio.fail_after(30), pytest.raises(KernelStartupError) as info:
        async with open_kernel(
            fake_spec,
            connect=False,
            shutdown_grace=0,
            env={"FAKE_MODE": "crash"},
            runtime_dir=runtime_dir,
        ):
            pytest.fail("the kernel should not have started")  # pragma: no cover
    assert "exited with code 3 during startup" in str(info.value)
    assert "boom: the kernel could not start" in info.value.stderr_tail
    assert "boom" in str(info.value)


@pytest.mark.usefixtures("no_leaks")
async def test_missing_executable(runtime_dir: Path) -> None:
    spec = KernelSpec(name="nope", argv=["/nonexistent/kernel-binary", "{connection_file}"])
    with trio.fail_after(30), pytest.raises(KernelStartupError, match="cannot start"):
        async with open_kernel(spec, connect=False, runtime_dir=runtime_dir):
            pytest.fail("the kernel should not have started")  # pragma: no cover


@pytest.mark.usefixtures("no_leaks")
async def test_startup_timeout(fake_spec: KernelSpec, runtime_dir: Path) -> None:
    with trio.fail_after(30), pytest.raises(KernelStartupError) as info:
        async with open_kernel(
            fake_spec,
            connect=False,
            shutdown_grace=0,
            env={"FAKE_MODE": "hang"},
            startup_timeout=0.5,
            runtime_dir=runtime_dir,
        ):
            pytest.fail("the kernel should not have started")  # pragma: no cover
    assert "did not become ready within 0.5 s" in str(info.value)
    assert "fake kernel starting" in info.value.stderr_tail


@pytest.mark.usefixtures("no_leaks")
async def test_cancelled_during_startup(fake_spec: KernelSpec, runtime_dir: Path) -> None:
    with trio.fail_after(30):
        with trio.move_on_after(0.5) as scope:
            async with open_kernel(
                fake_spec,
                connect=False,
                shutdown_grace=0,
                env={"FAKE_MODE": "hang"},
                runtime_dir=runtime_dir,
            ):
                pytest.fail("the kernel should not have started")  # pragma: no cover
        assert scope.cancelled_caught


@pytest.mark.usefixtures("no_leaks")
async def test_sigterm_ignored_escalates_to_sigkill(
    fake_spec: KernelSpec, runtime_dir: Path
) -> None:
    with trio.fail_after(30):
        async with open_kernel(
            fake_spec,
            connect=False,
            shutdown_grace=0,
            env={"FAKE_MODE": "ignore-term"},
            terminate_grace=0.2,
            runtime_dir=runtime_dir,
        ) as kernel:
            pass
    assert kernel.returncode == -signal.SIGKILL


@pytest.mark.usefixtures("no_leaks")
async def test_process_group_leftovers_are_killed(
    fake_spec: KernelSpec, tmp_path: Path, runtime_dir: Path
) -> None:
    with trio.fail_after(30):
        async with open_kernel(
            fake_spec,
            connect=False,
            shutdown_grace=0,
            env={"FAKE_MODE": "child"},
            runtime_dir=runtime_dir,
        ):
            child = psutil.Process(read_report(tmp_path)["child"])
            assert child.is_running()
    assert not psutil.pid_exists(child.pid) or child.status() == psutil.STATUS_ZOMBIE


@pytest.mark.usefixtures("no_leaks")
async def test_signal_interrupt_and_unexpected_death(
    fake_spec: KernelSpec, runtime_dir: Path
) -> None:
    with trio.fail_after(30):
        async with open_kernel(
            fake_spec,
            connect=False,
            shutdown_grace=0,
            env={"FAKE_MODE": "exit-on-int"},
            runtime_dir=runtime_dir,
        ) as kernel:
            await kernel.interrupt()
            assert await kernel.wait() == 42
            assert kernel.died is not None
            assert "exited with code 42" in kernel.died.reason
            assert kernel.exit_reason == kernel.died.reason
            assert not kernel.is_alive
        assert kernel.returncode == 42


@pytest.mark.usefixtures("no_leaks")
async def test_ipc_transport_files_removed(fake_spec: KernelSpec, runtime_dir: Path) -> None:
    with trio.fail_after(30):
        async with open_kernel(
            fake_spec, connect=False, shutdown_grace=0, transport="ipc", runtime_dir=runtime_dir
        ) as kernel:
            paths = kernel.connection_info.ipc_paths()
            assert all(p.exists() for p in paths)
            ipc_dir = paths[0].parent
        assert not any(p.exists() for p in paths)
        assert not ipc_dir.exists()


@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize("output", ["inherit", "discard"])
async def test_output_not_captured(fake_spec: KernelSpec, runtime_dir: Path, output: Any) -> None:
    with trio.fail_after(30):
        async with open_kernel(
            fake_spec, connect=False, shutdown_grace=0, output=output, runtime_dir=runtime_dir
        ) as kernel:
            assert kernel.stderr_tail() == ""
            assert kernel.process.stderr is None


@pytest.mark.usefixtures("no_leaks")
async def test_explicit_shutdown_is_idempotent(fake_spec: KernelSpec, runtime_dir: Path) -> None:
    with trio.fail_after(30):
        async with open_kernel(
            fake_spec, connect=False, shutdown_grace=0, runtime_dir=runtime_dir
        ) as kernel:
            await kernel.shutdown()
            assert not kernel.is_alive
            assert not kernel.connection_file.exists()
            await kernel.shutdown()
            with pytest.raises(trio.ClosedResourceError):
                await kernel.restart()


@pytest.mark.usefixtures("no_leaks")
async def test_restart_keeps_connection_info(
    fake_spec: KernelSpec, tmp_path: Path, runtime_dir: Path
) -> None:
    with trio.fail_after(30):
        async with open_kernel(
            fake_spec, connect=False, shutdown_grace=0, runtime_dir=runtime_dir
        ) as kernel:
            first_pid = kernel.pid
            info = kernel.connection_info
            await kernel.restart()
            assert kernel.pid != first_pid
            assert not psutil.pid_exists(first_pid)
            assert kernel.connection_info == info
            assert kernel.restart_count == 1
            assert kernel.died is None
            assert read_report(tmp_path)["pid"] == kernel.pid
            assert kernel.connection_file.exists()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"output": "tee"},
        {"startup_timeout": 0},
        {"shutdown_grace": -1},
        {"terminate_grace": float("nan")},
        {"encryption": "maybe"},
    ],
)
@pytest.mark.usefixtures("no_leaks")
async def test_invalid_options(kwargs: dict[str, Any], runtime_dir: Path) -> None:
    with pytest.raises(ValueError):
        async with open_kernel("python3", runtime_dir=runtime_dir, **kwargs):
            pytest.fail("should not start")  # pragma: no cover


# ---------------------------------------------------------------------------------------------
# encryption options (no real kernel needed)


@pytest.mark.usefixtures("no_leaks")
async def test_encryption_auto_follows_the_spec(
    fake_spec: KernelSpec, tmp_path: Path, runtime_dir: Path
) -> None:
    with trio.fail_after(30):
        async with open_kernel(
            fake_spec, connect=False, shutdown_grace=0, encryption="auto", runtime_dir=runtime_dir
        ) as kernel:
            assert kernel.connection_info.curve_publickey is None
            assert "curve_publickey" not in read_report(tmp_path)["info"]
        curve_spec = attrs.evolve(fake_spec, metadata={"supported_encryption": ["curve"]})
        async with open_kernel(
            curve_spec, connect=False, shutdown_grace=0, encryption="auto", runtime_dir=runtime_dir
        ) as kernel:
            info = kernel.connection_info
            assert info.curve_publickey is not None
            assert info.curve_secretkey is not None
            written = read_report(tmp_path)["info"]
            assert written["curve_publickey"] == info.curve_publickey
            assert written["curve_secretkey"] == info.curve_secretkey


@pytest.mark.usefixtures("no_leaks")
async def test_encryption_required_but_unsupported(
    fake_spec: KernelSpec, runtime_dir: Path
) -> None:
    with pytest.raises(EncryptionUnavailable, match="does not declare CurveZMQ support"):
        async with open_kernel(fake_spec, encryption="required", runtime_dir=runtime_dir):
            pytest.fail("should not start")  # pragma: no cover


# ---------------------------------------------------------------------------------------------
# real kernels


@pytest.fixture(scope="session")
def bash_spec(tmp_path_factory: pytest.TempPathFactory) -> KernelSpec:
    """bash_kernel's spec, installed into a private prefix (nothing installed by hand)."""
    prefix = tmp_path_factory.mktemp("bash-kernel-prefix")
    subprocess.run(
        [sys.executable, "-m", "bash_kernel.install", "--prefix", str(prefix)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return get_kernel_spec("bash", kernel_dirs=[prefix / "share" / "jupyter" / "kernels"])


@pytest.fixture
def zmq_ready() -> None:
    """Create the shared ZeroMQ context up front so its descriptors are not counted as leaks."""
    zmq_context()


@attrs.frozen
class Case:
    spec: str
    long_code: str  # prints "started" then blocks for a long time
    check_code: str  # prints "4"
    interrupted_ename: str = "KeyboardInterrupt"  # the error an interrupted execution reports


PYTHON_LONG = "import time\nprint('started', flush=True)\ntime.sleep(120)"
PYTHON_CHECK = "print(2 + 2)"
CASES = {
    "python3": Case("python3", PYTHON_LONG, PYTHON_CHECK),
    "python3-message-interrupt": Case("python3", PYTHON_LONG, PYTHON_CHECK),
    "xpython": Case("xpython", PYTHON_LONG, PYTHON_CHECK),
    # The process that prints "started" is the one that then sleeps (``exec``), so "started"
    # means the interrupt lands on the sleep. With "echo started; sleep 120" it could land
    # while bash forked the sleep: the ^C that bash_kernel passes on was lost, bash_kernel
    # waited 30 s for a prompt and sent no reply (seen under load).
    "bash": Case("bash", "sh -c 'echo started; exec sleep 120'", "echo $((2 + 2))"),
    # async-kernel's own kernelspec ("async", asyncio backend), installed with its wheel.
    # It reports an interrupted cell as "KernelInterrupt" (the protocol leaves the name open).
    "async": Case("async", PYTHON_LONG, PYTHON_CHECK, interrupted_ename="KernelInterrupt"),
}


@pytest.mark.kernel
@pytest.mark.slow
@pytest.mark.usefixtures("zmq_ready", "no_leaks")
@pytest.mark.parametrize("case_name", list(CASES))
async def test_real_kernel_lifecycle(
    case_name: str, request: pytest.FixtureRequest, runtime_dir: Path
) -> None:
    """Launch, execute, interrupt a long sleep, restart, execute again, shut down."""
    case = CASES[case_name]
    spec: str | KernelSpec = case.spec
    if case.spec == "bash":
        spec = request.getfixturevalue("bash_spec")
    if case.spec == "async" and importlib.util.find_spec("async_kernel") is None:
        pytest.skip("async-kernel is not installed (it needs Python 3.11 or later)")
    if case_name == "python3-message-interrupt":
        spec = attrs.evolve(get_kernel_spec("python3"), interrupt_mode="message")
    with trio.fail_after(120):
        async with open_kernel(
            spec, runtime_dir=runtime_dir, startup_timeout=90, shutdown_grace=3
        ) as kernel:
            if case_name == "python3":
                info = kernel.connection_info
                assert await zmtp_mechanism(info.ip, info.shell_port) == b"NULL"
            result = await kernel.client.execute(case.check_code)
            assert result.status == "ok"
            assert result.stdout.strip() == "4"

            # Interrupt a long-running execution once it is known to be running.
            died: KernelDied | None = None
            interrupted: ExecuteResult | None = None
            async with kernel.client.stream_execute(case.long_code) as execution:
                async for msg in execution:
                    if msg.msg_type == "stream" and "started" in msg.content.get("text", ""):
                        break
                await kernel.interrupt()
                with trio.fail_after(20):
                    try:
                        interrupted = await execution.wait()
                    except KernelDied as exc:
                        died = exc
            if died is None:
                assert interrupted is not None
                assert interrupted.status in ("error", "abort", "aborted")
                # bash_kernel answers an interrupted command with status "abort": a failure.
                assert not interrupted.ok
                with pytest.raises(KernelError):
                    interrupted.raise_for_error()
                if case.spec != "bash":
                    assert interrupted.error is not None
                    assert interrupted.error.ename == case.interrupted_ename
                after = await kernel.client.execute(case.check_code)
                assert after.stdout.strip() == "4"
            else:
                # xeus-python from PyPI exits on SIGINT (jupyter-xeus/xeus-python#527): the
                # pending call must then fail promptly, and the death be visible.
                assert case.spec == "xpython"
                assert kernel.died is not None
                assert not kernel.is_alive

            first_pid = kernel.pid
            await kernel.restart()
            assert kernel.pid != first_pid
            assert kernel.is_alive
            assert kernel.died is None
            again = await kernel.client.execute(case.check_code)
            assert again.status == "ok"
            assert again.stdout.strip() == "4"
            assert again.execution_count == 1  # a fresh kernel

            await kernel.shutdown()
            if case.spec == "bash":
                # bash_kernel on ipykernel 7 sometimes hangs while closing its control thread
                # after replying to shutdown_request; the launcher then escalates to SIGTERM.
                assert kernel.returncode in (
                    0,
                    -signal.SIGTERM,
                    -signal.SIGABRT,
                )  # bash_kernel may abort
            else:
                assert kernel.returncode == 0  # it exited by itself after shutdown_request
                assert kernel.exit_reason == "shut down (exited with code 0)"
            with pytest.raises(KernelDied):
                await kernel.client.execute(case.check_code)


async def zmtp_mechanism(host: str, port: int) -> bytes:
    """The security mechanism a ZeroMQ endpoint announces in its ZMTP 3 greeting."""
    # Send only the signature and major version: the peer then sends its whole greeting
    # without judging ours (sending a mechanism it does not accept makes it hang up).
    partial_greeting = b"\xff" + bytes(8) + b"\x7f" + b"\x03"
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            await stream.send_all(partial_greeting)
            received = b""
            while len(received) < 64:
                chunk = await stream.receive_some(64 - len(received))
                if not chunk:
                    break
                received += chunk
    assert len(received) >= 32, received
    return received[12:32].rstrip(b"\0")


@pytest.mark.kernel
@pytest.mark.usefixtures("zmq_ready", "no_leaks")
async def test_curve_required_encrypts_the_traffic(runtime_dir: Path) -> None:
    with trio.fail_after(90):
        async with open_kernel("python3", encryption="required", runtime_dir=runtime_dir) as kernel:
            info = kernel.connection_info
            assert info.curve_publickey is not None
            assert info.curve_secretkey is not None
            written = json.loads(kernel.connection_file.read_text())
            assert written["curve_publickey"] == info.curve_publickey
            assert written["curve_secretkey"] == info.curve_secretkey
            result = await kernel.client.execute("print(6 * 7)")
            assert result.stdout == "42\n"
            # Every socket of the kernel speaks CurveZMQ ...
            for port in (info.shell_port, info.control_port, info.iopub_port, info.hb_port):
                assert await zmtp_mechanism(info.ip, port) == b"CURVE"
            # ... so a client that does not use it gets nowhere, and is told why.
            plain = attrs.evolve(info, curve_publickey=None, curve_secretkey=None)
            async with open_client(plain, heartbeat=False) as intruder:
                with pytest.raises(ConnectionInfoError, match="handshake"):
                    await intruder.kernel_info()
            # The legitimate client is unaffected.
            assert (await kernel.client.execute("print(1)")).stdout == "1\n"


@pytest.mark.kernel
@pytest.mark.usefixtures("zmq_ready", "no_leaks")
async def test_curve_required_with_a_kernel_that_cannot(runtime_dir: Path) -> None:
    with pytest.raises(EncryptionUnavailable, match="xpython"):
        async with open_kernel("xpython", encryption="required", runtime_dir=runtime_dir):
            pytest.fail("should not start")  # pragma: no cover


@pytest.mark.kernel
@pytest.mark.usefixtures("zmq_ready", "no_leaks")
async def test_ipc_transport_with_ipykernel(runtime_dir: Path) -> None:
    with trio.fail_after(90):
        async with open_kernel("python3", transport="ipc", runtime_dir=runtime_dir) as kernel:
            paths = kernel.connection_info.ipc_paths()
            assert all(p.exists() for p in paths)
            assert (await kernel.client.execute(PYTHON_CHECK)).stdout == "4\n"
        assert not any(p.exists() for p in paths)
        assert not paths[0].parent.exists()


async def wait_started(execution: Execution) -> None:
    async for msg in execution:
        if msg.msg_type == "stream" and "started" in msg.content.get("text", ""):
            return
    pytest.fail("the execution ended before printing 'started'")  # pragma: no cover


@pytest.mark.kernel
@pytest.mark.usefixtures("zmq_ready", "no_leaks")
async def test_sigkill_mid_execution_fails_the_pending_call(runtime_dir: Path) -> None:
    with trio.fail_after(90):
        async with open_kernel("python3", runtime_dir=runtime_dir) as kernel:
            async with kernel.client.stream_execute(PYTHON_LONG) as execution:
                await wait_started(execution)
                os.kill(kernel.pid, signal.SIGKILL)
                with trio.fail_after(5), pytest.raises(KernelDied) as info:
                    await execution.wait()
            assert "killed by SIGKILL" in info.value.reason
            assert kernel.died is not None
            assert kernel.returncode == -signal.SIGKILL
            # Later requests fail at once instead of hanging.
            with trio.fail_after(5), pytest.raises(KernelDied):
                await kernel.client.execute(PYTHON_CHECK)
            # A restart brings it back with the same client.
            await kernel.restart()
            assert (await kernel.client.execute(PYTHON_CHECK)).stdout == "4\n"


@pytest.mark.kernel
@pytest.mark.usefixtures("zmq_ready", "no_leaks")
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.3])
async def test_cancelled_during_real_startup(runtime_dir: Path, delay: float) -> None:
    with trio.fail_after(60):
        with trio.move_on_after(delay) as scope:
            async with open_kernel("python3", runtime_dir=runtime_dir):
                # A fast machine may finish starting within the delay: the cancellation then
                # lands here instead, and the cleanup checked by no_leaks is the same.
                await trio.sleep_forever()
        assert scope.cancelled_caught


@pytest.mark.kernel
@pytest.mark.usefixtures("zmq_ready", "no_leaks")
async def test_cancelled_while_executing(runtime_dir: Path) -> None:
    with trio.fail_after(60):
        with trio.CancelScope() as scope:
            async with open_kernel("python3", runtime_dir=runtime_dir) as kernel:
                async with kernel.client.stream_execute(PYTHON_LONG) as execution:
                    await wait_started(execution)
                    scope.cancel()
                    await execution.wait()
                pytest.fail("not cancelled")  # pragma: no cover
        assert scope.cancelled_caught
        assert not running(kernel)


# Make the kernel ignore both shutdown_request and SIGTERM, so only SIGKILL ends it.
STUBBORN = """
import signal
signal.signal(signal.SIGTERM, signal.SIG_IGN)
async def _ignore(*args, **kwargs):
    pass
get_ipython().kernel.control_handlers["shutdown_request"] = _ignore
"""


@pytest.mark.kernel
@pytest.mark.usefixtures("zmq_ready", "no_leaks")
async def test_cancelled_during_shutdown_still_completes_it(runtime_dir: Path) -> None:
    with trio.fail_after(60):
        with trio.CancelScope() as scope:
            async with open_kernel(
                "python3", runtime_dir=runtime_dir, shutdown_grace=0.5, terminate_grace=0.5
            ) as kernel:
                assert (await kernel.client.execute(STUBBORN)).status == "ok"
                # Fires while the (shielded) shutdown sequence is waiting out its graces.
                scope.deadline = trio.current_time() + 0.3
            await trio.lowlevel.checkpoint()
        assert scope.cancelled_caught
        assert kernel.returncode == -signal.SIGKILL


@pytest.mark.kernel
@pytest.mark.slow
@pytest.mark.usefixtures("zmq_ready", "no_leaks")
async def test_twenty_kernels_in_one_nursery(runtime_dir: Path) -> None:
    count = 20
    outputs: dict[int, str] = {}
    pids: set[int] = set()
    all_up = trio.Event()

    async def one(i: int) -> None:
        async with open_kernel("python3", runtime_dir=runtime_dir, startup_timeout=300) as kernel:
            pids.add(kernel.pid)
            result = await kernel.client.execute(f"print({i} * {i})")
            outputs[i] = result.stdout.strip()
            if len(outputs) == count:
                all_up.set()
            await all_up.wait()  # all twenty run at the same time
            assert len(descendants()) >= count

    with trio.fail_after(400):
        async with trio.open_nursery() as nursery:
            for i in range(count):
                nursery.start_soon(one, i)
    assert outputs == {i: str(i * i) for i in range(count)}
    assert len(pids) == count
    assert not any(psutil.pid_exists(pid) for pid in pids)


@pytest.mark.usefixtures("zmq_ready", "no_leaks")
async def test_shutdown_request_without_a_client(fake_spec: KernelSpec, runtime_dir: Path) -> None:
    with trio.fail_after(30):
        async with open_kernel(
            fake_spec, connect=False, env={"FAKE_MODE": "polite"}, runtime_dir=runtime_dir
        ) as kernel:
            pass
    assert kernel.returncode == 0
    assert "control got shutdown_request" in kernel.stderr_tail()


@pytest.mark.usefixtures("no_leaks")
async def test_failed_restart_leaves_the_kernel_down(
    fake_spec: KernelSpec, runtime_dir: Path
) -> None:
    with trio.fail_after(30):
        async with open_kernel(
            fake_spec,
            connect=False,
            shutdown_grace=0,
            env={"FAKE_MODE": "once"},
            runtime_dir=runtime_dir,
        ) as kernel:
            with pytest.raises(KernelStartupError, match="exited with code 3 during startup"):
                await kernel.restart()
            assert not running(kernel)
            assert kernel.died is not None
            assert "did not restart" in kernel.died.reason
            assert kernel.restart_count == 0


@pytest.mark.usefixtures("zmq_ready", "no_leaks")
async def test_crash_while_the_client_waits_reports_stderr(runtime_dir: Path) -> None:
    spec = KernelSpec(
        name="crashy",
        argv=[
            "python",
            "-c",
            "import sys, time; time.sleep(0.3); sys.stderr.write('no luck today\\n'); sys.exit(4)",
            "{connection_file}",
        ],
    )
    with trio.fail_after(30), pytest.raises(KernelStartupError) as info:
        async with open_kernel(spec, runtime_dir=runtime_dir):
            pytest.fail("should not start")  # pragma: no cover
    assert "exited with code 4 during startup" in str(info.value)
    assert "no luck today" in info.value.stderr_tail


# ---------------------------------------------------------------------------------------------
# ports taken by another program between allocation and the kernel's bind


#: Put in front of a kernel's command line by :meth:`PortThief.gated`: it tells the thief
#: which connection file the launcher wrote, waits until the thief has done its work, and
#: then becomes the kernel (same process, so the launcher sees no difference).
GATE = r"""
import os, socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1]))) as gate:
    gate.sendall(sys.argv[sys.argv.index("-f") + 1].encode() + b"\n")
    gate.recv(1)
os.execv(sys.argv[2], sys.argv[2:])
"""


class PortThief:
    """Plays the other program: takes a port of chosen launch attempts right before their
    kernel process starts (after the launcher allocated and checked the ports), so the kernel's
    own bind meets "Address already in use", as in the real race.

    Only kernels started from :meth:`gated` specs meet the thief.

    Attributes:
        spawned: how many kernel processes the launcher started.
        taken: the ports taken so far.
    """

    def __init__(self, port_name: str, attempts: Collection[int], *, listen: bool) -> None:
        self.port_name = port_name
        self.attempts = attempts  # 1-based numbers of the processes to sabotage
        self.listen = listen  # a listening thief also answers TCP connects
        self.spawned = 0
        self.taken: list[int] = []
        self._socks: list[socket.socket] = []
        self._gate = trio.socket.from_stdlib_socket(socket.create_server(("127.0.0.1", 0)))

    def gated(self, spec: KernelSpec) -> KernelSpec:
        """*spec* with its kernel started through the thief's gate."""
        argv = list(spec.argv)
        if argv[0] in ("python", "python3"):  # as the launcher would
            argv[0] = sys.executable
        port = self._gate.getsockname()[1]
        return attrs.evolve(spec, argv=[sys.executable, "-c", GATE, str(port), *argv])

    async def serve(self) -> None:
        """Answer the gate of each kernel process (runs until cancelled, then closes it)."""
        with self._gate:
            while True:
                conn, _ = await self._gate.accept()
                with conn:
                    path = b""
                    while not path.endswith(b"\n"):
                        data = await conn.recv(4096)
                        assert data, "the gate closed without naming its connection file"
                        path += data
                    self.spawned += 1
                    if self.spawned in self.attempts:
                        info = json.loads(await trio.Path(path.decode().strip()).read_text())
                        self.take(info[self.port_name])
                    await conn.send(b"k")

    def take(self, port: int) -> None:
        sock = socket.socket()
        self._socks.append(sock)
        if self.listen:
            # As libzmq does; also lets it take a port a stopped kernel left in TIME_WAIT. (A
            # socket that only binds must not set it, or the kernel's bind would succeed.)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        if self.listen:
            sock.listen()
        self.taken.append(port)

    def release(self) -> None:
        for sock in self._socks:
            sock.close()
        self._socks.clear()


ThiefFactory = Callable[..., PortThief]


@pytest.fixture
async def port_thief(no_leaks: None, nursery: trio.Nursery) -> AsyncIterator[ThiefFactory]:
    """Installs a :class:`PortThief`; its sockets are closed before the leak check (the gate
    when the test's nursery is cancelled)."""
    thieves: list[PortThief] = []

    def install(
        port_name: str = "shell_port", attempts: Collection[int] = (1,), *, listen: bool = True
    ) -> PortThief:
        thief = PortThief(port_name, attempts, listen=listen)
        nursery.start_soon(thief.serve)
        thieves.append(thief)
        return thief

    yield install
    for thief in thieves:
        thief.release()


def kernel_ports(kernel: Kernel) -> set[int]:
    info = kernel.connection_info
    return {info.shell_port, info.iopub_port, info.stdin_port, info.control_port, info.hb_port}


# What ipykernel does when its port is taken: shell (and stdin, control) -> it exits with
# code 1; iopub -> it prints the error and then hangs for ever in Context.term() at exit;
# heartbeat -> its heartbeat thread dies and the kernel runs on without one.
@pytest.mark.kernel
@pytest.mark.usefixtures("zmq_ready")
@pytest.mark.parametrize("port_name", ["shell_port", "iopub_port", "hb_port"])
async def test_port_taken_before_bind_is_retried_with_fresh_ports(
    port_name: str, port_thief: ThiefFactory, runtime_dir: Path
) -> None:
    thief = port_thief(port_name)
    spec = thief.gated(get_kernel_spec("python3"))
    with trio.fail_after(60):
        async with open_kernel(spec, runtime_dir=runtime_dir) as kernel:
            assert thief.spawned == 2
            assert thief.taken[0] not in kernel_ports(kernel)
            written = json.loads(kernel.connection_file.read_text())
            assert written[port_name] == getattr(kernel.connection_info, port_name)
            assert (await kernel.client.execute(PYTHON_CHECK)).stdout == "4\n"
            channels = kernel.client.channels
            assert isinstance(channels, Channels)
            await channels.heartbeat.wait_responsive()  # the new process has a heartbeat
            assert kernel.died is None
        assert kernel.returncode == 0


@pytest.mark.parametrize("output", ["capture", "discard"])
async def test_ports_taken_on_every_attempt(
    fake_spec: KernelSpec, port_thief: ThiefFactory, runtime_dir: Path, output: Any
) -> None:
    # Not listening, so that connect=False readiness cannot mistake the thief for the kernel;
    # with output="discard" the launcher learns of the collision by probing the ports.
    thief = port_thief(attempts=(1, 2, 3, 4), listen=False)
    with trio.fail_after(30), pytest.raises(KernelStartupError) as info:
        async with open_kernel(
            thief.gated(fake_spec),
            connect=False,
            output=output,
            shutdown_grace=0,
            startup_timeout=60,
            runtime_dir=runtime_dir,
        ):
            pytest.fail("the kernel should not have started")  # pragma: no cover
    assert thief.spawned == 3
    message = str(info.value)
    assert f"shell port {thief.taken[-1]} was in use by another process" in message
    assert "gave up after 3 attempts with freshly allocated ports" in message
    assert "did not become ready" not in message
    if output == "capture":
        assert "Address already in use" in info.value.stderr_tail


@pytest.mark.usefixtures("zmq_ready")
async def test_a_startup_crash_is_not_retried(
    fake_spec: KernelSpec, port_thief: ThiefFactory, runtime_dir: Path
) -> None:
    thief = port_thief(attempts=())
    with trio.fail_after(30), pytest.raises(KernelStartupError, match="exited with code 3"):
        async with open_kernel(
            thief.gated(fake_spec),
            env={"FAKE_MODE": "crash"},
            shutdown_grace=0,
            runtime_dir=runtime_dir,
        ):
            pytest.fail("the kernel should not have started")  # pragma: no cover
    assert thief.spawned == 1


@pytest.mark.kernel
@pytest.mark.usefixtures("zmq_ready")
async def test_restart_does_not_replace_a_taken_port(
    port_thief: ThiefFactory, runtime_dir: Path
) -> None:
    thief = port_thief("shell_port", attempts=(2,))
    spec = thief.gated(get_kernel_spec("python3"))
    with trio.fail_after(60):
        async with open_kernel(spec, runtime_dir=runtime_dir) as kernel:
            info = kernel.connection_info
            with pytest.raises(KernelStartupError) as error:
                await kernel.restart()
            message = str(error.value)
            assert f"shell port {info.shell_port} was in use by another process" in message
            assert "a restart keeps the kernel's ports, so they were not replaced" in message
            assert "Address already in use" in error.value.stderr_tail
            assert kernel.connection_info == info
            assert not running(kernel)
            assert kernel.died is not None
            assert "did not restart" in kernel.died.reason
            # Once the port is free again, a restart brings the kernel back on it.
            thief.release()
            await kernel.restart()
            assert (await kernel.client.execute(PYTHON_CHECK)).stdout == "4\n"
            assert kernel.connection_info == info


async def test_restart_finds_a_port_taken_before_starting(
    fake_spec: KernelSpec, port_thief: ThiefFactory, runtime_dir: Path
) -> None:
    thief = port_thief(attempts=())
    with trio.fail_after(30):
        async with open_kernel(
            thief.gated(fake_spec), connect=False, shutdown_grace=0, runtime_dir=runtime_dir
        ) as kernel:
            thief.take(kernel.connection_info.iopub_port)  # the stand-in binds only shell
            with pytest.raises(KernelStartupError, match=r"iopub port \d+ was in use") as error:
                await kernel.restart()
            assert thief.spawned == 1  # found before a process was started
            assert error.value.stderr_tail == ""
            assert not running(kernel)
