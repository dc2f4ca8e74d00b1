"""Calls whose outcome is already known fail at once, with the same typed error, on every
path of the client: a kernel known to be dead (stale connection file, a kernel killed before
the first request), a ZeroMQ handshake that cannot succeed (wrong CurveZMQ key, encryption
on one side only), replies rejected for their signature (different keys). None of these
waits for a timeout the caller may not have set."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.conftest import kernel_process
from trio_enchannel import ConnectionInfo, KernelClient, KernelDied, open_client

TIMEOUT = 10

Call = Callable[[KernelClient], Awaitable[Any]]


async def _stream_execute(client: KernelClient) -> None:
    async with client.stream_execute("1") as run:
        async for _ in run:
            pass


async def _open_subshell(client: KernelClient) -> None:
    async with client.open_subshell():
        pass


async def _open_comm(client: KernelClient) -> None:
    await client.open_comm("jupyter.widget")


async def _send(client: KernelClient) -> None:
    await client.send(client.session.message("kernel_info_request", channel="shell"))


async def _request(client: KernelClient) -> None:
    await client.request(client.session.message("kernel_info_request", channel="control"))


#: Every path of the client that sends to the kernel or waits on it.
EVERY_CALL: dict[str, Call] = {
    "wait_for_ready": lambda c: c.wait_for_ready(),
    "execute": lambda c: c.execute("1"),
    "stream_execute": _stream_execute,
    "kernel_info": lambda c: c.kernel_info(),
    "kernel_info(control)": lambda c: c.kernel_info(channel="control"),
    "inspect": lambda c: c.inspect("x"),
    "complete": lambda c: c.complete("x"),
    "history": lambda c: c.history(),
    "is_complete": lambda c: c.is_complete("x"),
    "comm_info": lambda c: c.comm_info(),
    "shutdown": lambda c: c.shutdown(),
    "interrupt": lambda c: c.interrupt(),
    "debug_request": lambda c: c.debug_request("initialize"),
    "create_subshell": lambda c: c.create_subshell(),
    "list_subshell": lambda c: c.list_subshell(),
    "delete_subshell": lambda c: c.delete_subshell("s"),
    "open_subshell": _open_subshell,
    "open_comm": _open_comm,
    "send": _send,
    "request": _request,
}


async def assert_every_call_fails(
    client: KernelClient, error: type[BaseException], match: str
) -> None:
    for name, call in EVERY_CALL.items():
        with trio.fail_after(TIMEOUT):
            with pytest.raises(error, match=match) as caught:
                await call(client)
        assert caught.value is not None, name


# -- a kernel known to be dead ---------------------------------------------------------------


async def test_stale_connection_file_fails_every_call_at_once() -> None:
    """Nothing listens on the connection file's ports; the heartbeat has declared the kernel
    dead before IOPub ever came alive. kernel_info() always failed at once; every other
    path, wait_for_ready() and the first execute() included, must too."""
    stale = ConnectionInfo.allocate(key="stale")
    with trio.fail_after(TIMEOUT):
        async with open_client(
            stale, hb_interval=0.05, hb_deadline=0.2, hb_startup_deadline=0.2
        ) as client:
            await client.channels.heartbeat.wait_unresponsive()  # type: ignore[attr-defined]
            await assert_every_call_fails(client, KernelDied, "no heartbeat reply")
            assert client.statistics().pending == 0


@pytest.mark.kernel
async def test_ipykernel_killed_before_the_first_request(tmp_path: Path) -> None:
    """A real kernel that died before the client's first request: once the heartbeat
    has said so, execute() and stream_execute() fail at once, as kernel_info() does."""
    with trio.fail_after(60):
        async with (
            kernel_process(tmp_path) as kernel,
            open_client(
                kernel.info, hb_interval=0.05, hb_deadline=0.3, hb_startup_deadline=30
            ) as client,
        ):
            await client.channels.heartbeat.wait_alive()  # type: ignore[attr-defined]
            kernel.process.send_signal(signal.SIGKILL)
            await kernel.process.wait()
            await client.channels.heartbeat.wait_unresponsive()  # type: ignore[attr-defined]
            for call in (EVERY_CALL["execute"], _stream_execute, EVERY_CALL["kernel_info"]):
                with trio.fail_after(TIMEOUT), pytest.raises(KernelDied, match="heartbeat"):
                    await call(client)
            with trio.fail_after(TIMEOUT), pytest.raises(KernelDied):
                await client.wait_for_ready()


async def test_a_restart_lets_wait_for_ready_wait_through_the_old_death() -> None:
    """reset_readiness() (a launcher about to start a new process) forgets the old death:
    wait_for_ready() then waits for the new process instead of failing at once."""
    stale = ConnectionInfo.allocate(key="stale")
    with trio.fail_after(TIMEOUT):
        async with open_client(
            stale, hb_interval=0.05, hb_deadline=0.2, hb_startup_deadline=0.2
        ) as client:
            await client.channels.heartbeat.wait_unresponsive()  # type: ignore[attr-defined]
            client.reset_readiness()
            with trio.move_on_after(0.5) as waited:
                await client.wait_for_ready()
            assert waited.cancelled_caught  # it waited (nothing will ever answer)
            with pytest.raises(KernelDied):
                await client.execute("1")  # other calls still fail while it is silent
