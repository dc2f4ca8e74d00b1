"""IOPub subscriptions (issue 16): independent, filtered, bounded copies of the IOPub stream.

The fan-out primitive alone (and against a model, with hypothesis), then both transports
(ZeroMQ against a raw kernel, the websocket against the scripted fake server), then the
client next to real executions on ipykernel.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections import deque
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_channels import RawKernel, raw_kernel
from trio_enchannel import (
    Channels,
    ConfigurationError,
    ConnectionInfo,
    KernelDied,
    Message,
    Session,
    Subscription,
    SubscriptionStatistics,
    open_channels,
    open_client,
)
from trio_enchannel._io._fanout import Fanout

# The websocket channels need the remote extra; the rest of this module does not.
HAS_REMOTE = all(importlib.util.find_spec(name) for name in ("trio_websocket", "httpx"))
needs_remote = pytest.mark.skipif(not HAS_REMOTE, reason="needs the remote extra")
if HAS_REMOTE:
    from tests.test_remote_fake import KERNEL, TOKEN, FakeConnection, serving
    from trio_enchannel._remote._channels import open_remote_channels

TIMEOUT = 20
SESSION = Session(session_id="kernel")


def iopub(msg_type: str = "stream", parent: Message | None = None, **content: Any) -> Message:
    return SESSION.message(msg_type, content, parent=parent, channel="iopub")


def drain(sub: Subscription) -> list[Message]:
    """What is queued on ``sub`` (up to its end, if it ended)."""
    out: list[Message] = []
    while True:
        try:
            out.append(sub.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            return out


# -- the primitive -------------------------------------------------------------------------


async def test_every_subscriber_gets_every_message_in_order() -> None:
    fanout = Fanout()
    assert not fanout.subscriptions  # the reader's only cost without subscribers
    async with (
        fanout.subscribe() as a,
        fanout.subscribe() as b,
        fanout.subscribe(buffer_size=1) as c,  # receives as they come: never full
    ):
        assert list(fanout.subscriptions) == [a, b, c]
        got_c: list[int] = []

        async def consume() -> None:
            async for msg in c:
                got_c.append(msg.content["i"])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            for i in range(50):
                await trio.testing.wait_all_tasks_blocked()
                fanout.publish(iopub(i=i), 10)
            await trio.testing.wait_all_tasks_blocked()
            fanout.end()
        assert [m.content["i"] for m in drain(a)] == list(range(50))
        assert [m.content["i"] for m in drain(b)] == list(range(50))
        assert got_c == list(range(50))
        assert (a.dropped, b.dropped, c.dropped, fanout.dropped) == (0, 0, 0, 0)
        with pytest.raises(trio.EndOfChannel):
            a.receive_nowait()
    assert fanout.subscriptions == ()
    with pytest.raises(trio.ClosedResourceError):
        a.receive_nowait()  # the block is over


async def test_filters_by_type_parent_and_predicate() -> None:
    fanout = Fanout()
    request = SESSION.message("execute_request", channel="shell")
    other = SESSION.message("execute_request", channel="shell")
    async with (
        fanout.subscribe("status") as statuses,
        fanout.subscribe(["stream", "error"]) as outputs,
        fanout.subscribe(parent=request) as mine,
        fanout.subscribe(parent=other.msg_id, msg_types="stream") as theirs,
        fanout.subscribe(predicate=lambda m: m.content.get("name") == "stderr") as stderr,
    ):
        sent = [
            iopub("status", request, execution_state="busy"),
            iopub("stream", request, name="stdout", text="a"),
            iopub("stream", other, name="stderr", text="b"),
            iopub("error", request, ename="E"),
            iopub("status", other, execution_state="idle"),
            iopub("execute_result", None, data={}),
        ]
        for msg in sent:
            fanout.publish(msg, 100)
        assert drain(statuses) == [sent[0], sent[4]]
        assert drain(outputs) == [sent[1], sent[2], sent[3]]
        assert drain(mine) == [sent[0], sent[1], sent[3]]
        assert drain(theirs) == [sent[2]]
        assert drain(stderr) == [sent[2]]
        assert statuses.statistics().matched == 2


async def test_a_full_subscription_drops_and_counts_without_touching_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="trio_enchannel.channels")
    fanout = Fanout()
    async with (
        fanout.subscribe(buffer_size=5) as newest_dropped,
        fanout.subscribe(buffer_size=5, overflow="drop_oldest") as oldest_dropped,
        fanout.subscribe(buffer_size=100, buffer_bytes=250) as by_bytes,
        fanout.subscribe() as fast,
    ):
        messages = [iopub(i=i) for i in range(20)] + [iopub("status", execution_state="idle")]
        for msg in messages:
            fanout.publish(msg, 100)
        # "drop": the oldest five kept, and the status (kept beyond the bound).
        assert drain(newest_dropped) == [*messages[:5], messages[20]]
        assert newest_dropped.dropped == 15
        # "drop_oldest": the newest five.
        assert drain(oldest_dropped) == messages[16:]
        assert oldest_dropped.dropped == 16
        assert drain(by_bytes) == [*messages[:2], messages[20]]
        assert by_bytes.dropped == 18
        assert drain(fast) == messages and fast.dropped == 0
        assert fanout.dropped == 15 + 16 + 18
        assert await newest_dropped.wait_dropped(14) == 15  # already true: at once
        stats = by_bytes.statistics()
        assert stats == SubscriptionStatistics(
            matched=21,
            dropped=18,
            queued=0,
            queued_bytes=0,
            buffer_size=100,
            buffer_bytes=250,
            overflow="drop",
        )
    warnings = [r.getMessage() for r in caplog.records if "subscription" in r.getMessage()]
    assert len(warnings) == 3  # one per subscription that dropped (rate-limited)
    assert all("see subscribe' buffer_size" in w for w in warnings)


async def test_wait_dropped_wakes_at_the_first_drop() -> None:
    fanout = Fanout()
    async with fanout.subscribe(buffer_size=1) as sub, trio.open_nursery() as nursery:
        seen: list[int] = []

        async def watch() -> None:
            seen.append(await sub.wait_dropped())

        nursery.start_soon(watch)
        await trio.testing.wait_all_tasks_blocked()
        fanout.publish(iopub(i=0), 1)
        await trio.testing.wait_all_tasks_blocked()
        assert seen == []
        fanout.publish(iopub(i=1), 1)
        await trio.testing.wait_all_tasks_blocked()
        assert seen == [1]


async def test_the_stream_ends_after_what_is_queued_with_the_end_or_the_error() -> None:
    fanout = Fanout()
    async with fanout.subscribe() as sub:
        fanout.publish(iopub(i=0), 1)
        fanout.end(KernelDied("gone"))
        fanout.publish(iopub(i=1), 1)  # after the end: nobody subscribed
        assert (await sub.receive()).content == {"i": 0}
        with pytest.raises(KernelDied, match="gone"):
            await sub.receive()
    with pytest.raises(KernelDied, match="gone"):
        async with fanout.subscribe():
            pytest.fail("subscribed to an ended stream")
    closed = Fanout()
    closed.end()
    with pytest.raises(trio.ClosedResourceError):
        async with closed.subscribe():
            pytest.fail("subscribed to closed channels")


async def test_a_raising_predicate_ends_its_subscription_only() -> None:
    fanout = Fanout()

    def broken(msg: Message) -> bool:
        if msg.content["i"] == 2:
            raise ValueError("bad predicate")
        return True

    async with fanout.subscribe(predicate=broken) as sub, fanout.subscribe() as other:
        for i in range(5):
            fanout.publish(iopub(i=i), 1)
        assert [m.content["i"] for m in drain_until_end(sub)] == [0, 1]
        with pytest.raises(ValueError, match="bad predicate"):
            await sub.receive()
        assert len(drain(other)) == 5
        assert fanout.subscriptions == (other,)


def drain_until_end(sub: Subscription) -> list[Message]:
    out: list[Message] = []
    with contextlib.suppress(Exception):
        while True:
            out.append(sub.receive_nowait())
    return out


async def test_bad_arguments_fail_at_the_call_and_register_nothing() -> None:
    fanout = Fanout()
    with pytest.raises(ConfigurationError, match="never makes the reader wait"):
        fanout.subscribe(overflow="wait")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="overflow"):
        fanout.subscribe(overflow="block")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="buffer_size"):
        fanout.subscribe(buffer_size=0)
    with pytest.raises(ConfigurationError, match="buffer_bytes"):
        fanout.subscribe(buffer_bytes=0)
    with pytest.raises(TypeError, match="msg_types"):
        fanout.subscribe([1, 2])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="msg_types is empty"):
        fanout.subscribe([])
    with pytest.raises(TypeError, match="parent"):
        fanout.subscribe(parent=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="predicate"):
        fanout.subscribe(predicate="status")  # type: ignore[arg-type]
    assert fanout.subscriptions == ()
    await trio.lowlevel.checkpoint()


async def test_cancellation_inside_the_block_unsubscribes() -> None:
    fanout = Fanout()
    with trio.move_on_after(0.01):
        async with fanout.subscribe() as sub:
            await sub.receive()  # cancelled while waiting
    assert fanout.subscriptions == ()
    with trio.CancelScope() as scope:
        scope.cancel()
        async with fanout.subscribe():  # cancelled before it is entered: nothing registered
            pytest.fail("entered a cancelled subscribe")
    assert fanout.subscriptions == ()
    # A subscription closed early by aclose() stops at once.
    async with fanout.subscribe() as early:
        await early.aclose()
        assert fanout.subscriptions == ()
        fanout.publish(iopub(), 1)
        with pytest.raises(trio.ClosedResourceError):
            early.receive_nowait()


# -- the primitive against a model ---------------------------------------------------------

_TYPES = ("status", "stream", "display_data")
_operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("open"),
            st.sampled_from([None, "status", ("stream", "display_data")]),
            st.integers(1, 4),
            st.sampled_from(["drop", "drop_oldest"]),
        ),
        st.tuples(st.just("close"), st.integers(0, 5)),
        st.tuples(st.just("publish"), st.sampled_from(_TYPES)),
        st.tuples(st.just("receive"), st.integers(0, 5)),
    ),
    max_size=60,
)


class _Model:
    """What one subscription should hold: a deque bounded by the drop rules."""

    def __init__(self, types: Any, size: int, overflow: str) -> None:
        self.types = None if types is None else {types} if isinstance(types, str) else set(types)
        self.size, self.overflow = size, overflow
        self.queue: deque[Message] = deque()
        self.dropped = 0

    def offer(self, msg: Message) -> None:
        if self.types is not None and msg.msg_type not in self.types:
            return
        if len(self.queue) < self.size or (
            self.overflow == "drop"
            and msg.msg_type == "status"
            and len(self.queue) < self.size + 1000
        ):
            self.queue.append(msg)
        elif self.overflow == "drop":
            self.dropped += 1
        else:
            while len(self.queue) >= self.size:
                self.queue.popleft()
                self.dropped += 1
            self.queue.append(msg)


@settings(max_examples=60, deadline=None)
@given(_operations)
def test_subscriptions_match_a_model(operations: list[tuple[Any, ...]]) -> None:
    async def run() -> None:
        fanout = Fanout()
        open_subs: list[tuple[contextlib.AsyncExitStack, Subscription, _Model]] = []
        closed_drops = 0
        serial = 0
        for op in operations:
            if op[0] == "open":
                _, types, size, overflow = op
                stack = contextlib.AsyncExitStack()
                sub = await stack.enter_async_context(
                    fanout.subscribe(types, buffer_size=size, overflow=overflow)
                )
                open_subs.append((stack, sub, _Model(types, size, overflow)))
            elif op[0] == "close" and open_subs:
                stack, sub, model = open_subs.pop(op[1] % len(open_subs))
                closed_drops += model.dropped
                await stack.aclose()
                with pytest.raises(trio.ClosedResourceError):
                    sub.receive_nowait()
            elif op[0] == "publish":
                serial += 1
                msg = iopub(op[1], n=serial)
                fanout.publish(msg, 10)
                for _, _, model in open_subs:
                    model.offer(msg)
            elif op[0] == "receive" and open_subs:
                _, sub, model = open_subs[op[1] % len(open_subs)]
                if model.queue:
                    assert await sub.receive() is model.queue.popleft()
                else:
                    with pytest.raises(trio.WouldBlock):
                        sub.receive_nowait()
            assert len(fanout.subscriptions) == len(open_subs)
        for stack, sub, model in open_subs:
            assert drain(sub) == list(model.queue)
            assert sub.dropped == model.dropped
            closed_drops += model.dropped
            await stack.aclose()
        assert fanout.dropped == closed_drops
        assert fanout.subscriptions == ()

    trio.run(run)


# -- ZeroMQ channels -----------------------------------------------------------------------


async def _publish_then_sync(kernel: RawKernel, ch: Channels, messages: list[Message]) -> None:
    """Publish ``messages``, then a garbage frame; return once the reader handled it (and so
    every message before it)."""
    for msg in messages:
        await kernel.publish(msg)
    await kernel.send_raw("iopub", [b"end marker"])
    await ch.rejects.receive()


async def test_zmq_many_subscribers_one_slow_next_to_ch_iopub() -> None:
    async with (
        raw_kernel() as kernel,
        open_channels(kernel.info, report_rejects=True, iopub_buffer_size=1000) as ch,
    ):
        with trio.fail_after(TIMEOUT):
            await kernel.wait_subscribed()
            assert ch.statistics().iopub.subscriptions == 0
            async with contextlib.AsyncExitStack() as stack:
                fast = [await stack.enter_async_context(ch.iopub.subscribe()) for _ in range(9)]
                slow = await stack.enter_async_context(ch.iopub.subscribe(buffer_size=10))
                statuses = await stack.enter_async_context(ch.iopub.subscribe("status"))
                messages = [kernel.message("stream", {"i": i}) for i in range(300)]
                messages.append(kernel.message("status", {"execution_state": "idle"}))
                await _publish_then_sync(kernel, ch, messages)
                ids = [m.msg_id for m in messages]
                for sub in fast:
                    assert [m.msg_id for m in drain(sub)] == ids
                    assert sub.dropped == 0
                assert [m.msg_id for m in drain(slow)] == ids[:10] + ids[-1:]
                assert slow.dropped == 290
                assert [m.msg_id for m in drain(statuses)] == ids[-1:]
                # ch.iopub got everything too: a subscription takes nothing away.
                assert [ch.iopub.receive_nowait().msg_id for _ in ids] == ids
                stats = ch.statistics().iopub
                assert (stats.subscriptions, stats.subscriber_dropped) == (11, 290)
                assert (stats.received, stats.dropped) == (301, 0)
            stats = ch.statistics().iopub
            assert (stats.subscriptions, stats.subscriber_dropped) == (0, 290)


async def test_zmq_subscriptions_copy_even_when_ch_iopub_drops_or_is_closed() -> None:
    async with (
        raw_kernel() as kernel,
        open_channels(kernel.info, report_rejects=True, iopub_buffer_size=5) as ch,
        ch.iopub.subscribe() as sub,
    ):
        with trio.fail_after(TIMEOUT):
            await kernel.wait_subscribed()
            messages = [kernel.message("stream", {"i": i}) for i in range(20)]
            await _publish_then_sync(kernel, ch, messages)
            assert ch.iopub.dropped == 15  # ch.iopub's own buffer
            assert len(drain(sub)) == 20 and sub.dropped == 0
            await ch.iopub.aclose()
            more = [kernel.message("stream", {"i": i}) for i in range(3)]
            await _publish_then_sync(kernel, ch, more)
            assert [m.msg_id for m in drain(sub)] == [m.msg_id for m in more]
            assert ch.statistics().iopub.discarded == 3


async def test_zmq_subscriptions_work_in_multiplexed_mode() -> None:
    async with (
        raw_kernel() as kernel,
        open_channels(kernel.info, report_rejects=True, multiplexed=True) as ch,
        ch.iopub.subscribe("stream") as sub,
    ):
        with trio.fail_after(TIMEOUT):
            await kernel.wait_subscribed()
            messages = [kernel.message("stream", {"i": i}) for i in range(5)]
            await _publish_then_sync(kernel, ch, messages)
            assert [m.msg_id for m in drain(sub)] == [m.msg_id for m in messages]
            got = [ch.multiplexed.receive_nowait() for _ in messages]
            assert [m.msg_id for m in got] == [m.msg_id for m in messages]


async def test_zmq_subscribing_and_unsubscribing_while_messages_flow() -> None:
    """Tasks come and go during a stream of numbered messages: each sees a gap-free run."""
    count = 400
    async with (
        raw_kernel() as kernel,
        open_channels(kernel.info, report_rejects=True) as ch,
    ):
        with trio.fail_after(TIMEOUT):
            await kernel.wait_subscribed()
            runs: list[list[int]] = []

            async def listener(stop_after: int) -> None:
                got: list[int] = []
                async with ch.iopub.subscribe("stream") as sub:
                    async for msg in sub:
                        got.append(msg.content["i"])
                        if len(got) == stop_after:
                            break
                runs.append(got)

            async with trio.open_nursery() as nursery:
                for i in range(count):
                    if i % 40 == 0:
                        nursery.start_soon(listener, 25)
                    await kernel.publish(kernel.message("stream", {"i": i}))
                    if i % 7 == 0:
                        await trio.lowlevel.checkpoint()
                await kernel.send_raw("iopub", [b"end marker"])
                await ch.rejects.receive()
                await trio.testing.wait_all_tasks_blocked()
                nursery.cancel_scope.cancel()  # listeners still waiting: cancelled inside
            assert runs
            for got in runs:
                assert got == list(range(got[0], got[0] + len(got)))  # no gap, in order
            assert ch.statistics().iopub.subscriptions == 0
            assert ch.statistics().iopub.subscriber_dropped == 0


async def test_zmq_closing_the_channels_ends_every_subscription() -> None:
    async with raw_kernel() as kernel:
        async with (
            open_channels(kernel.info, report_rejects=True) as ch,
            ch.iopub.subscribe() as sub,
        ):
            with trio.fail_after(TIMEOUT):
                await kernel.wait_subscribed()
                await _publish_then_sync(kernel, ch, [kernel.message("stream", {"i": 1})])
                await ch.aclose()
                assert [m.content for m in [await sub.receive()]] == [{"i": 1}]
                with pytest.raises(trio.EndOfChannel):
                    await sub.receive()
        with pytest.raises(trio.ClosedResourceError):
            async with ch.iopub.subscribe():
                pytest.fail("subscribed to closed channels")


# -- websocket (remote) channels -----------------------------------------------------------


@needs_remote
async def test_remote_subscriptions_copy_iopub_and_end_with_the_kernel() -> None:
    async def script(conn: FakeConnection) -> None:
        request = await conn.receive()
        await conn.status("busy", request)
        for i in range(30):
            await conn.stream(f"{i}", request)
        await conn.status("idle", request)
        await conn.send(conn.session.reply(request, {"status": "ok"}))
        await conn.receive()
        await conn.status("dead")
        await trio.sleep_forever()

    with trio.fail_after(TIMEOUT):
        async with (
            serving(script) as server,
            open_remote_channels(server.url, KERNEL, token=TOKEN) as ch,
            ch.iopub.subscribe() as every,
            ch.iopub.subscribe("status") as statuses,
            ch.iopub.subscribe(buffer_size=5, overflow="drop_oldest") as latest,
        ):
            request = ch.session.message("execute_request", channel="shell")
            await ch.send(request)
            await ch.shell.receive()  # every IOPub message before it was handed over
            assert len(drain(every)) == 32
            assert [m.content["execution_state"] for m in drain(statuses)] == ["busy", "idle"]
            texts = [m.content.get("text") for m in drain(latest)]
            assert texts == ["26", "27", "28", "29", None] and latest.dropped == 27
            assert len([ch.iopub.receive_nowait() for _ in range(32)]) == 32
            stats = ch.statistics().iopub
            assert (stats.subscriptions, stats.subscriber_dropped) == (3, 27)
            await ch.send(ch.session.message("kernel_info_request", channel="shell"))
            await ch.wait_unresponsive()
            with pytest.raises(KernelDied, match="dead"):
                await statuses.receive()
            with pytest.raises(KernelDied):
                async with ch.iopub.subscribe():
                    pytest.fail("subscribed after the kernel died")


@needs_remote
async def test_remote_closing_ends_subscriptions() -> None:
    async def script(conn: FakeConnection) -> None:
        await conn.answer_forever()

    with trio.fail_after(TIMEOUT):
        async with (
            serving(script) as server,
            open_remote_channels(server.url, KERNEL, token=TOKEN) as ch,
            ch.iopub.subscribe() as sub,
        ):
            await ch.send(ch.session.message("kernel_info_request", channel="shell"))
            await ch.shell.receive()
            await ch.iopub.receive()
            await ch.iopub.receive()  # idle: the request's last message
            await ch.aclose()
            assert [m.msg_type for m in drain(sub)] == ["status", "status"]
            with pytest.raises(trio.EndOfChannel):
                await sub.receive()


@needs_remote
async def test_remote_client_subscribe() -> None:
    async def script(conn: FakeConnection) -> None:
        await conn.answer_forever()

    with trio.fail_after(TIMEOUT):
        async with (
            serving(script) as server,
            open_remote_channels(server.url, KERNEL, token=TOKEN) as ch,
            open_client(ch) as client,
            client.subscribe("status") as statuses,
        ):
            info = await client.kernel_info()
            assert info.content["status"] == "ok"
            busy = statuses.receive_nowait()  # before the reply: already here
            assert busy.parent_id == info.reply.parent_id
            assert busy.content["execution_state"] == "busy"
            idle = await statuses.receive()
            assert idle.content["execution_state"] == "idle"


# -- the client, next to executions on a real kernel ----------------------------------------


async def test_client_subscribe_sees_every_status_while_requests_run(
    ipykernel: ConnectionInfo,
) -> None:
    """ "Print every status change while my code runs requests": no private attribute."""
    async with open_client(ipykernel) as client:
        with trio.fail_after(60):
            await client.wait_ready()
            async with (
                client.subscribe("status") as statuses,
                client.subscribe("stream") as streams,
            ):
                first = await client.execute("print('one')")
                second = await client.execute("print('two')")
                assert (first.stdout, second.stdout) == ("one\n", "two\n")  # routing intact
                seen = drain(statuses)
                # Every execution's busy and idle are already there when it returns.
                for parent in ("execute_request",):
                    states = [
                        m.content["execution_state"] for m in seen if m.parent_msg_type == parent
                    ]
                    assert states == ["busy", "idle", "busy", "idle"]
                assert "".join(m.content["text"] for m in drain(streams)) == "one\ntwo\n"
                assert statuses.dropped == streams.dropped == 0


async def test_client_subscribe_filtered_by_one_request(ipykernel: ConnectionInfo) -> None:
    async with open_client(ipykernel) as client:
        with trio.fail_after(60):
            await client.wait_ready()
            async with (
                client.stream_execute("print('watched')") as execution,
                client.subscribe(parent=execution.msg_id) as mine,
            ):
                outputs = [msg.msg_id async for msg in execution]
                got = drain(mine)
            assert outputs  # the execution got its outputs: nothing was taken away
            # Subscribed once the request was sent: whatever it saw belongs to this
            # execution, and the outputs among them are the execution's last ones, in order.
            assert got and all(m.parent_id == execution.msg_id for m in got)
            copied = [m.msg_id for m in got if m.msg_id in outputs]
            assert copied == outputs[len(outputs) - len(copied) :]
            assert got[-1].msg_type == "status" and got[-1].content["execution_state"] == "idle"


async def test_open_client_refuses_channels_without_the_client_interface() -> None:
    """Channels objects implement everything the client needs (liveness, listeners,
    readiness, IOPub subscriptions and drop accounting): the client never asks whether a
    method exists. An object with only the four channels is refused up front."""

    class Bare:
        session = SESSION
        shell = control = stdin = iopub = object()

    with pytest.raises(TypeError, match="info_or_channels"):
        async with open_client(Bare()):  # type: ignore[arg-type]
            pass  # pragma: no cover
