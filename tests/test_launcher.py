"""open_kernel: process lifecycle, cleanup under cancellation, real kernels."""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import trio

from trio_enchannel._errors import KernelStartupError
from trio_enchannel._kernelspec import KernelSpec
from trio_enchannel._launcher import Kernel, describe_exit, kernel_argv, kernel_env, open_kernel

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


@pytest.fixture
def no_leaks(runtime_dir: Path) -> Iterator[None]:
    """Fail if a test leaves child processes, file descriptors or runtime files behind."""
    me = psutil.Process()
    fds_before = me.num_fds()
    yield
    leftover = descendants()
    for p in leftover:
        with pytest.raises(psutil.NoSuchProcess):
            p.kill()
    assert leftover == []
    assert list(runtime_dir.iterdir()) == []
    assert me.num_fds() <= fds_before


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
            fake_spec, connect=False, env={"FAKE_MODE": "crash"}, runtime_dir=runtime_dir
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
                fake_spec, connect=False, env={"FAKE_MODE": "hang"}, runtime_dir=runtime_dir
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
            fake_spec, connect=False, env={"FAKE_MODE": "child"}, runtime_dir=runtime_dir
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
            fake_spec, connect=False, env={"FAKE_MODE": "exit-on-int"}, runtime_dir=runtime_dir
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
            fake_spec, connect=False, transport="ipc", runtime_dir=runtime_dir
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
            fake_spec, connect=False, output=output, runtime_dir=runtime_dir
        ) as kernel:
            assert kernel.stderr_tail() == ""
            assert kernel.process.stderr is None


@pytest.mark.usefixtures("no_leaks")
async def test_explicit_shutdown_is_idempotent(fake_spec: KernelSpec, runtime_dir: Path) -> None:
    with trio.fail_after(30):
        async with open_kernel(fake_spec, connect=False, runtime_dir=runtime_dir) as kernel:
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
        async with open_kernel(fake_spec, connect=False, runtime_dir=runtime_dir) as kernel:
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
