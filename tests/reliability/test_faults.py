"""Faults: replies dropped, duplicated or late; a kernel that stops answering heartbeats; a
kernel killed in the middle of an execution.

Precise faults come from the fake kernel of the testing kit; realistic ones from real ipykernel
processes (stopped with SIGSTOP, killed with SIGKILL).
"""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import psutil
import pytest
import trio

from tests.conftest import kernel_process
from tests.reliability._measure import Snapshot, settle
from tests.reliability.conftest import record
from trio_enchannel import ExecuteResult, KernelClient, KernelDied, Message, open_client
from trio_enchannel._kernel._side import KernelChannels, open_kernel_channels
from trio_enchannel._launch._open import open_kernel
from trio_enchannel.testing import (
    DEFAULT_KERNEL_INFO,
    DelayReply,
    DropReply,
    FakeKernel,
    Gate,
    Result,
    Stream,
    open_fake_kernel,
)

TIMEOUT = 30
#: Heartbeat settings of the heartbeat tests: a dead kernel must be noticed within
#: ``HB_DEADLINE`` plus a ping interval; the bound adds generous slack for a loaded machine
#: (it tells "noticed by the heartbeat" from "never noticed", it does not time anything).
HB_INTERVAL = 0.1
HB_DEADLINE = 2.0  # a loaded 2-core CI machine can delay a real kernel's echo by ~1 s
DETECTION_BOUND = HB_DEADLINE + HB_INTERVAL + 4.0
#: When the launcher sees the process exit, pending calls fail at once (same slack).
EXIT_BOUND = 4.0


def script_echo(fk: FakeKernel, code: str) -> None:
    """Executing ``code`` prints it and returns it, so a result proves whose it is."""
    fk.script(code, Stream("stdout", f"out:{code}\n"), Result({"text/plain": f"res:{code}"}))


def assert_own(result: ExecuteResult, code: str) -> None:
    """``result`` is the result of executing ``code``: its reply, its output, once."""
    assert result.reply.parent_header["msg_id"] == result.messages[0].parent_id
    assert result.status == "ok"
    assert result.stdout == f"out:{code}\n"
    texts = [o.get("data", {}).get("text/plain") for o in result.outputs]
    assert texts.count(f"res:{code}") == 1, result.outputs


# -- replies dropped, duplicated, late -----------------------------------------------------


async def test_dropped_reply_times_out_and_the_next_request_gets_its_own() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel() as fk, open_client(fk.connection_info) as client:
            await client.wait_ready()
            for code in ("a", "b"):
                script_echo(fk, code)
            fk.inject(DropReply())
            with pytest.raises(trio.TooSlowError), trio.fail_after(0.5):
                await client.execute("a")
            assert_own(await client.execute("b"), "b")
            assert client.statistics().pending == 0
            assert len(client.unclaimed_replies) == 0
            record("fault: reply dropped")


async def test_duplicate_reply_is_not_taken_for_another_requests() -> None:
    """The kernel sends an execution's reply twice, then answers another request in flight,
    and only then publishes the execution's idle status (so both replies certainly reach the
    client before the execution ends)."""
    go, idle_ok = trio.Event(), trio.Event()
    replies: list[Message] = []
    probe_id: list[str] = []

    async def kernel(kc: KernelChannels) -> None:
        execute: Message | None = None
        info: Message | None = None
        while execute is None or info is None:
            request = await kc.shell.receive()
            if request.msg_type == "execute_request":
                execute = request
            elif request.msg_id in probe_id:
                info = request
            else:  # the client's own readiness probes
                async with kc.busy(request):
                    await kc.reply(request, dict(DEFAULT_KERNEL_INFO))
        await kc.publish_status("busy", execute)
        await go.wait()
        replies.append(await kc.reply(execute, OK_REPLY))
        replies.append(await kc.reply(execute, OK_REPLY))
        await kc.reply(info, dict(DEFAULT_KERNEL_INFO))
        await idle_ok.wait()
        await kc.publish_status("idle", execute)

    with trio.fail_after(TIMEOUT):
        async with (
            open_kernel_channels() as kc,
            open_client(kc.connection_info, heartbeat=False) as client,
            trio.open_nursery() as nursery,
        ):
            await kc.wait_subscriptions()
            probe = client.session.message("kernel_info_request", channel="shell")
            probe_id.append(probe.msg_id)
            nursery.start_soon(kernel, kc)
            result: list[ExecuteResult] = []

            async def execute() -> None:
                result.append(await client.execute("a"))

            nursery.start_soon(execute)
            async with trio.open_nursery() as inner:
                inner.start_soon(client.request, probe)
                go.set()
            # The probe got its own reply, so both replies to "a" were routed before it.
            idle_ok.set()
    first, second = replies
    assert result[0].reply.msg_id == first.msg_id  # "a" keeps the first reply it got...
    duplicate = client.unclaimed_replies.receive_nowait()  # ...the second is kept aside
    assert duplicate.msg_id == second.msg_id


async def test_late_reply_after_a_timeout_is_not_taken_for_the_next_requests() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel() as fk, open_client(fk.connection_info) as client:
            await client.wait_ready()
            for code in ("slow", "next"):
                script_echo(fk, code)
            fk.inject(DelayReply(0.5))
            with pytest.raises(trio.TooSlowError), trio.fail_after(0.2):
                await client.execute("slow")
            # Sent while the kernel still holds back the first reply.
            assert_own(await client.execute("next"), "next")
            late = await client.unclaimed_replies.receive()
            assert late.msg_type == "execute_reply"
            slow_request = fk.requests[-2]
            assert slow_request.content["code"] == "slow"
            assert late.parent_id == slow_request.msg_id
            assert client.statistics().pending == 0
            record("fault: reply delayed past the caller's deadline")


OK_REPLY = {"status": "ok", "execution_count": 1, "user_expressions": {}, "payload": []}


async def serve_faulty(kc: KernelChannels) -> None:
    """A kernel that handles every request concurrently (replies in any order) and applies
    the fault named in the code (``"r7:drop"``): ``drop``, ``duplicate`` or ``delay`` the
    reply."""

    async def handle(request: Message) -> None:
        async with kc.busy(request):
            if request.msg_type == "kernel_info_request":
                await kc.reply(request, dict(DEFAULT_KERNEL_INFO))
                return
            code = request.content["code"]
            fault = code.partition(":")[2]
            await kc.publish("stream", {"name": "stdout", "text": f"out:{code}\n"}, parent=request)
            await kc.publish(
                "execute_result",
                {"data": {"text/plain": f"res:{code}"}, "metadata": {}, "execution_count": 1},
                parent=request,
            )
            if fault == "delay":
                await trio.sleep(0.4)
            if fault != "drop":
                await kc.reply(request, OK_REPLY)
            if fault == "duplicate":
                await kc.reply(request, OK_REPLY)

    async with trio.open_nursery() as nursery:
        async for request in kc.shell:
            nursery.start_soon(handle, request)


@pytest.mark.parametrize("requests", [200, pytest.param(5000, marks=pytest.mark.soak)])
async def test_random_reply_faults_never_cross_requests(requests: int) -> None:
    """Many requests in flight at once against a kernel that answers in any order, some with
    their reply dropped, duplicated or delayed past the caller's deadline: each caller gets
    its own reply or a timeout, and only the faulted ones time out."""
    rng = random.Random(8)
    with trio.fail_after(TIMEOUT + requests * 0.01):
        async with (
            open_kernel_channels() as kc,
            trio.open_nursery() as kernel,
            open_client(kc.connection_info, heartbeat=False) as client,
        ):
            kernel.start_soon(serve_faulty, kc)
            await client.wait_ready()
            outcome: dict[str, str] = {}
            limit = trio.Semaphore(20)

            async def run(code: str) -> None:
                # The caller's deadline: shorter than the kernel's delay for the requests
                # whose reply is dropped or delayed, a hang detector for the others.
                unanswered = code.endswith((":drop", ":delay"))
                async with limit:
                    try:
                        with trio.fail_after(0.3 if unanswered else TIMEOUT):
                            result = await client.execute(code)
                    except trio.TooSlowError:
                        outcome[code] = "timeout"
                        return
                    assert_own(result, code)
                    outcome[code] = "ok"

            codes = [
                f"r{i}:{rng.choice(['', '', 'drop', 'duplicate', 'delay'])}"
                for i in range(requests)
            ]
            async with trio.open_nursery() as nursery:
                for code in codes:
                    nursery.start_soon(run, code)
            assert len(outcome) == requests
            timed_out = {c for c, o in outcome.items() if o == "timeout"}
            assert timed_out == {c for c in codes if c.endswith((":drop", ":delay"))}
            assert client.statistics().pending == 0
            for code in codes:
                fault = code.partition(":")[2]
                record(f"fault: reply {fault}" if fault else "fault: none (requests alongside)")
            kernel.cancel_scope.cancel()


# -- heartbeats ------------------------------------------------------------------------------


async def test_silent_heartbeat_fails_pending_requests_and_recovers() -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            open_fake_kernel() as fk,
            open_client(
                fk.connection_info, hb_interval=HB_INTERVAL, hb_deadline=HB_DEADLINE
            ) as client,
        ):
            await client.wait_ready()
            gate = Gate()
            fk.script("busy", gate)
            async with trio.open_nursery() as nursery:
                failed = trio.Event()
                stopped_at = 0.0

                async def pending() -> None:
                    with pytest.raises(KernelDied):
                        await client.execute("busy")
                    failed.set()

                nursery.start_soon(pending)
                await gate.wait_reached()
                stopped_at = trio.current_time()
                fk.stop_heartbeat()  # the sockets stay open: only the heartbeat is silent
                await failed.wait()
                detected_after = trio.current_time() - stopped_at
                gate.open()
            assert detected_after < DETECTION_BOUND
            ch = client.channels
            assert ch.unresponsive_error is not None
            assert ch.statistics().heartbeat.state == "unresponsive"  # type: ignore[attr-defined]
            # New requests fail at once while the kernel is unresponsive...
            with pytest.raises(KernelDied):
                await client.kernel_info()
            # ...and work again once it answers heartbeats again.
            fk.resume_heartbeat()
            await ch.wait_responsive()
            await client.wait_ready()
            info = await client.kernel_info()
            assert info.implementation == "trio-enchannel-fake"
            record("fault: heartbeat silenced, sockets open (fake kernel)")


@pytest.mark.kernel
async def test_stopped_ipykernel_is_reported_and_comes_back(tmp_path: Path) -> None:
    """SIGSTOP freezes a real kernel with every socket open: only the heartbeat tells."""
    with trio.fail_after(60):
        async with (
            kernel_process(tmp_path) as kernel,
            open_client(kernel.info, hb_interval=HB_INTERVAL, hb_deadline=HB_DEADLINE) as client,
        ):
            await client.wait_ready()
            await client.execute("x = 41")
            os.kill(kernel.process.pid, signal.SIGSTOP)
            try:
                stopped_at = trio.current_time()
                with pytest.raises(KernelDied):
                    await client.execute("x += 1")
                assert trio.current_time() - stopped_at < DETECTION_BOUND
                assert client.channels.unresponsive_error is not None
            finally:
                os.kill(kernel.process.pid, signal.SIGCONT)
            await client.channels.wait_responsive()
            # The client is usable again once the kernel answers (the documented way back;
            # a request made right after wait_responsive() may still see KernelDied: the client
            # clears its own flag in another task).
            await client.wait_ready()
            # The kernel ran the request it had received before it was frozen.
            result = await client.execute("print(x)")
            assert result.stdout == "42\n"
            record("fault: ipykernel frozen with SIGSTOP")


# -- kernels killed in the middle of an execution ------------------------------------------

# Runs for about 3 s, printing all along: the kill lands before, during or among its outputs.
STREAMING = "import time\nfor i in range(300):\n    print(i, flush=True)\n    time.sleep(0.01)\n"


async def execute_and_kill(client: KernelClient, pid: int, delay: float) -> float:
    """Start a streaming execution, SIGKILL the kernel after ``delay`` seconds, and return
    how long after the kill the execution failed with KernelDied."""
    killed_at = 0.0

    async def kill() -> None:
        nonlocal killed_at
        await trio.sleep(delay)
        killed_at = trio.current_time()
        os.kill(pid, signal.SIGKILL)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(kill)
        with pytest.raises(KernelDied):
            await client.execute(STREAMING)
    return trio.current_time() - killed_at


@pytest.mark.kernel
@pytest.mark.parametrize("trials", [3, pytest.param(20, marks=pytest.mark.soak)])
async def test_ipykernel_killed_mid_execution_fails_pending_calls(
    tmp_path: Path, trials: int
) -> None:
    """Without a launcher, the heartbeat notices a killed kernel."""
    rng = random.Random(trials)
    for trial in range(trials):
        with trio.fail_after(60):
            async with (
                kernel_process(tmp_path / str(trial)) as kernel,
                open_client(kernel.info, hb_interval=HB_INTERVAL, hb_deadline=HB_DEADLINE) as c,
            ):
                await c.wait_ready()
                took = await execute_and_kill(c, kernel.process.pid, rng.uniform(0.0, 1.5))
                assert took < DETECTION_BOUND
                assert c.statistics().pending == 0
                record("fault: ipykernel SIGKILLed mid-execution (heartbeat detects)")


@pytest.mark.kernel
@pytest.mark.parametrize("trials", [3, pytest.param(30, marks=pytest.mark.soak)])
async def test_launched_kernel_killed_mid_execution_fails_pending_calls_and_cleans_up(
    tmp_path: Path, trials: int
) -> None:
    """With the launcher, the process exit itself fails the pending calls at once; leaving
    the block then reaps the process and removes its files."""
    rng = random.Random(trials + 1)
    runtime = tmp_path / "runtime"
    baseline: Snapshot | None = None
    for _ in range(trials):
        with trio.fail_after(60):
            async with open_kernel("python3", runtime_dir=runtime) as kernel:
                pid = kernel.pid
                took = await execute_and_kill(kernel.client, pid, rng.uniform(0.0, 1.5))
                assert took < EXIT_BOUND
                assert kernel.died is not None
                # Later calls fail at once too.
                with pytest.raises(KernelDied):
                    await kernel.client.execute("1")
                left_at = trio.current_time()
            assert trio.current_time() - left_at < 5.0  # no shutdown grace for a dead kernel
            assert not psutil.pid_exists(pid)
            assert list(runtime.iterdir()) == []
            record("fault: launched ipykernel SIGKILLed mid-execution")
        if baseline is None:  # after the first trial: ZeroMQ's context and threads exist
            baseline, _ = await settle(Snapshot.take(), block_slack=0, within=1.0)
        else:
            _, problems = await settle(baseline, block_slack=10**9)
            assert not problems, problems
