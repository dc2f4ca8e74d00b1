"""Cancellation and leaks: cancelling at random awaits loses nothing for other requests and
leaks no task; opening and closing channels, clients and kernels over and over returns file
descriptors, threads, processes, Trio tasks, library objects and memory to their baseline.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.reliability._measure import Snapshot, live_objects, settle
from tests.reliability.conftest import record
from trio_enchannel import Message, Session, open_client
from trio_enchannel._channels._channels import open_channels
from trio_enchannel._kernel._side import KernelChannels, open_kernel_channels
from trio_enchannel._launch._open import open_kernel
from trio_enchannel.testing import DEFAULT_KERNEL_INFO, Stream, open_fake_kernel

#: Library classes whose instances must all be gone after the cycles.
LIBRARY_TYPES = (
    "Channels",
    "MessageChannel",
    "IOPubChannel",
    "MultiplexedChannel",
    "Heartbeat",
    "TrioSocket",
    "KernelClient",
    "Execution",
    "_Request",
    "DroppingQueue",
    "Session",
    "Kernel",
)
#: Python memory blocks that may come and go by chance (caches, free lists) over a run.
BLOCK_SLACK = 5000
#: Resident memory growth tolerated over a run. libzmq and the C allocator keep some memory
#: after sockets close (the same growth shows with raw pyzmq sockets): this catches leaks of
#: whole messages or buffers per cycle, not allocator noise.
RSS_SLACK = 96 * 2**20


def kernel_session() -> dict[str, Any]:
    """Options of a kernel side whose replay history is full after a few requests (so the
    signatures it remembers, by design up to 65,536, do not look like a leak)."""
    key = uuid.uuid4().hex
    return {"key": key, "session": Session(key, replay_history=64)}


async def serve_kernel_info(kc: KernelChannels) -> None:
    """A minimal kernel that keeps no record of what it serves (so it cannot look leaky).

    It answers on control as well as shell: ``wait_ready`` probes control first, and a
    kernel that left those probes queued would grow by one message per client.
    """

    async def serve(endpoint: Any) -> None:
        async for request in endpoint:
            async with kc.busy(request):
                await kc.reply(request, dict(DEFAULT_KERNEL_INFO))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve, kc.shell)
        nursery.start_soon(serve, kc.control)


async def assert_back_to_baseline(baseline: Snapshot, library: Counter[str]) -> Snapshot:
    after, problems = await settle(baseline, block_slack=BLOCK_SLACK)
    assert not problems, problems
    assert live_objects(LIBRARY_TYPES) == library
    assert after.rss - baseline.rss < RSS_SLACK, (
        f"RSS +{(after.rss - baseline.rss) / 2**20:.0f} MiB"
    )
    return after


@pytest.mark.parametrize("cycles", [1000, pytest.param(20000, marks=pytest.mark.soak)])
async def test_channels_open_close_cycles_leak_nothing(cycles: int) -> None:
    async with open_kernel_channels(**kernel_session()) as kc, trio.open_nursery() as kernel:
        kernel.start_soon(serve_kernel_info, kc)
        info = kc.connection_info

        async def cycle(i: int) -> None:
            with trio.fail_after(10):
                async with open_channels(info) as ch:
                    if i % 10 == 0:  # a full round trip now and then
                        request = ch.session.message("kernel_info_request", channel="shell")
                        await ch.shell.send(request)
                        reply = await ch.shell.receive()
                        assert reply.parent_id == request.msg_id

        for i in range(20):
            await cycle(i)
        baseline, _ = await settle(Snapshot.take(), block_slack=0, within=1.0)
        library = live_objects(LIBRARY_TYPES)
        for i in range(cycles):
            await cycle(i)
        await assert_back_to_baseline(baseline, library)
        record("load: channels opened and closed (leaks found: 0)", cycles)
        kernel.cancel_scope.cancel()


@pytest.mark.parametrize("cycles", [200, pytest.param(5000, marks=pytest.mark.soak)])
async def test_client_open_close_cycles_leak_nothing(cycles: int) -> None:
    async with open_kernel_channels(**kernel_session()) as kc, trio.open_nursery() as kernel:
        kernel.start_soon(serve_kernel_info, kc)
        info = kc.connection_info

        async def cycle() -> None:
            with trio.fail_after(10):
                async with open_client(info) as client:
                    await client.wait_ready()

        for _ in range(10):
            await cycle()
        baseline, _ = await settle(Snapshot.take(), block_slack=0, within=1.0)
        library = live_objects(LIBRARY_TYPES)
        for _ in range(cycles):
            await cycle()
        await assert_back_to_baseline(baseline, library)
        record("load: clients opened, made ready and closed (leaks found: 0)", cycles)
        kernel.cancel_scope.cancel()


@pytest.mark.parametrize("requests", [2000, pytest.param(30000, marks=pytest.mark.soak)])
async def test_cancelling_at_random_awaits_loses_nothing_for_other_requests(
    requests: int,
) -> None:
    """Requests of every kind from 8 tasks at once; half of them are cancelled after a random
    number of scheduling points (so at every await of the request path in turn). The others
    must all get their own complete answer; afterwards nothing is left tracked or running,
    and the kernel never received a malformed (half-sent) message."""
    rng = random.Random(1000)
    with trio.fail_after(60 + requests * 0.02):
        async with open_fake_kernel() as fk, open_client(fk.connection_info) as client:
            fk.default_execution = fk.script(lambda code: True, Stream("stdout", "x\n"))
            await client.wait_ready()
            tasks_before = Snapshot.take().tasks
            completed: Counter[str] = Counter()
            cancelled: Counter[str] = Counter()

            async def one(kind: str, cancel_after: int | None) -> None:
                async def canceller(scope: trio.CancelScope) -> None:
                    assert cancel_after is not None
                    for _ in range(cancel_after):
                        await trio.lowlevel.checkpoint()
                    scope.cancel()

                async with trio.open_nursery() as nursery:
                    with trio.CancelScope() as scope:
                        if cancel_after is not None:
                            nursery.start_soon(canceller, scope)
                        await request(kind)
                        completed[kind] += 1
                    if scope.cancelled_caught:
                        cancelled[kind] += 1
                    nursery.cancel_scope.cancel()

            async def request(kind: str) -> None:
                if kind == "execute":
                    async with client.stream_execute("print('x')") as run:
                        result = await run.wait()
                    assert result.reply.parent_id == run.msg_id
                    assert all(m.parent_id == run.msg_id for m in result.messages)
                    assert result.stdout == "x\n"
                elif kind == "stream":
                    seen = []
                    async with client.stream_execute("print('x')") as run:
                        async for msg in run:
                            assert msg.parent_id == run.msg_id
                            seen.append(msg.msg_type)
                    assert seen[0] == "status" and seen[-1] == "status"
                    assert run.result.stdout == "x\n"
                else:
                    probe: Message = client.session.message(
                        "kernel_info_request",
                        channel="control" if kind == "control" else "shell",
                    )
                    reply = await client.request(probe)
                    assert reply.message.parent_id == probe.msg_id
                    assert reply.message.msg_type == "kernel_info_reply"

            plan = [
                (
                    rng.choice(["execute", "stream", "shell", "control"]),
                    rng.randrange(20) if rng.random() < 0.5 else None,
                )
                for _ in range(requests)
            ]
            limit = trio.Semaphore(8)

            async def worker(kind: str, cancel_after: int | None) -> None:
                async with limit:
                    await one(kind, cancel_after)

            async with trio.open_nursery() as nursery:
                for kind, cancel_after in plan:
                    nursery.start_soon(worker, kind, cancel_after)
            never_cancelled = Counter(kind for kind, after in plan if after is None)
            assert completed + cancelled == Counter(kind for kind, _ in plan)
            for kind, count in never_cancelled.items():
                assert completed[kind] >= count
            assert sum(cancelled.values()) > requests // 10  # the cancellations did bite
            assert client.statistics().pending == 0
            assert fk.statistics().rejected_total == 0
            # A last request still works, and no task was left behind.
            assert (await client.kernel_info()).implementation == "trio-enchannel-fake"
            assert Snapshot.take().tasks == tasks_before
            record("load: requests cancelled at random awaits", sum(cancelled.values()))
            record("load: requests completed alongside them", sum(completed.values()))


@pytest.mark.kernel
@pytest.mark.slow
@pytest.mark.parametrize("cycles", [10, pytest.param(100, marks=pytest.mark.soak)])
async def test_kernel_start_stop_cycles_leak_nothing(cycles: int, tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"

    async def cycle(i: int) -> None:
        with trio.fail_after(60):
            async with open_kernel("python3", runtime_dir=runtime) as kernel:
                result = await kernel.client.execute(f"print({i})")
                assert result.stdout == f"{i}\n"

    await cycle(-1)
    baseline, _ = await settle(Snapshot.take(), block_slack=0, within=1.0)
    library = live_objects(LIBRARY_TYPES)
    for i in range(cycles):
        await cycle(i)
    await assert_back_to_baseline(baseline, library)
    assert list(runtime.iterdir()) == []  # every connection file removed
    record("load: ipykernels launched and shut down (leaks found: 0)", cycles)
