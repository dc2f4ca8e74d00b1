"""Tests of open_channels() against raw ZeroMQ peers playing the kernel.

The peer binds the kernel's sockets (ROUTER shell/control/stdin, XPUB iopub, ROUTER heartbeat
echo) with the zmq adapter and frames messages by hand, so it can send exactly what a test
needs: valid traffic, garbage, forged signatures, replays.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from tests._polling import poll_until
from trio_enchannel import (
    ChannelName,
    Channels,
    ConfigurationError,
    ConnectionInfo,
    ConnectionInfoError,
    EncryptionUnavailable,
    KernelDied,
    LocalProtocolError,
    Message,
    Session,
    open_channels,
)
from trio_enchannel._channels._interfaces import ClientChannels
from trio_enchannel._io._zmq import TrioSocket, curve_keypair, has_curve
from trio_enchannel._wire._session import DELIMITER

TIMEOUT = 20
KEY = "a-secret-key"


@attrs.define(eq=False)
class RawKernel:
    """The kernel end, by hand."""

    info: ConnectionInfo
    session: Session
    sockets: dict[str, TrioSocket]
    hb_paused: bool = False
    #: The hellos :meth:`connected` sent, per channel (the client counts them as sent).
    hellos: collections.Counter[str] = attrs.Factory(collections.Counter)

    async def receive(self, name: str) -> tuple[bytes, Message]:
        """(client identity, verified message) from a ROUTER socket."""
        frames = await self.sockets[name].receive_multipart()
        msg = self.session.deserialize(frames)
        assert len(msg.identities) == 1
        return msg.identities[0], msg

    async def send(self, name: str, identity: bytes, msg: Message) -> None:
        await self.sockets[name].send_multipart(self.session.serialize(msg, [identity]))

    async def send_raw(self, name: str, frames: list[bytes]) -> None:
        await self.sockets[name].send_multipart(frames)

    async def publish(self, msg: Message, topic: bytes = b"kernel.test.status") -> list[bytes]:
        frames = [bytes(f) for f in self.session.serialize(msg, [topic])]
        await self.sockets["iopub"].send_multipart(frames)
        return frames

    def message(self, msg_type: str, content: dict[str, Any] | None = None, **kw: Any) -> Message:
        return self.session.message(msg_type, content or {}, **kw)

    def signed_frames(
        self, header: bytes, parent: bytes, meta: bytes, content: bytes
    ) -> list[bytes]:
        sig = self.session.sign([header, parent, meta, content])
        return [b"topic", DELIMITER, sig, header, parent, meta, content]

    async def connected(self, ch: Channels, *names: ChannelName) -> None:
        """Make sure the ROUTER sockets ``names`` know the client.

        A ROUTER silently drops messages for a peer whose connection it has not seen yet, so a
        test in which the kernel speaks first lets the client say hello on those channels.
        """
        for name in names:
            endpoint = getattr(ch, name)
            await endpoint.send(ch.session.message("hello", channel=name))
            ident, hello = await self.receive(name)
            assert (ident, hello.msg_type) == (ch.identity, "hello")
            self.hellos[name] += 1

    async def wait_subscribed(self) -> bytes:
        """The next subscription event the XPUB socket reports."""
        event = bytes((await self.sockets["iopub"].receive_multipart())[0])
        return event


@asynccontextmanager
async def raw_kernel(
    *,
    key: str = KEY,
    transport: str = "tcp",
    tmp: Path | None = None,
    curve: bool = False,
    bind_to: ConnectionInfo | None = None,
) -> AsyncIterator[RawKernel]:
    """The kernel's sockets, bound to free ports (or to those of ``bind_to``)."""
    kinds = {
        "shell": "ROUTER",
        "control": "ROUTER",
        "stdin": "ROUTER",
        "iopub": "XPUB",
        "hb": "ROUTER",
    }
    sockets: dict[str, TrioSocket] = {}
    ports: dict[str, int] = {}
    public = secret = None
    if curve:
        public, secret = curve_keypair()
    prefix = str(tmp / "k") if tmp is not None else ""
    try:
        for index, (name, kind) in enumerate(kinds.items(), start=1):
            sock = TrioSocket(kind, linger=0)  # type: ignore[arg-type]
            sockets[name] = sock
            # A ROUTER or XPUB at its high-water mark drops silently: when the machine is so
            # loaded that libzmq's I/O thread lags, a burst must wait in memory instead.
            sock.set_option("SNDHWM", 0)
            if secret is not None:
                sock.set_curve_server(secret)
            if bind_to is not None:
                sock.bind(bind_to.url(name, bind=True))  # type: ignore[arg-type]
                ports[name] = getattr(bind_to, f"{name}_port")
            elif transport == "ipc":
                sock.bind(f"ipc://{prefix}-{index}")
                ports[name] = index
            else:
                endpoint = sock.bind("tcp://127.0.0.1:0")
                ports[name] = int(endpoint.rsplit(":", 1)[1])
        info = bind_to or ConnectionInfo(
            shell_port=ports["shell"],
            iopub_port=ports["iopub"],
            stdin_port=ports["stdin"],
            control_port=ports["control"],
            hb_port=ports["hb"],
            ip=prefix if transport == "ipc" else "127.0.0.1",
            key=key,
            transport=transport,  # type: ignore[arg-type]
            curve_publickey=public,
        )
        kernel = RawKernel(info=info, session=Session(info.key), sockets=sockets)

        async def echo_heartbeat() -> None:
            hb = sockets["hb"]
            while True:
                frames = await hb.receive_multipart()
                if not kernel.hb_paused:
                    await hb.send_multipart(frames)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo_heartbeat)
            yield kernel
            nursery.cancel_scope.cancel()
    finally:
        for sock in sockets.values():
            sock.close()


async def test_request_reply_on_shell_control_and_stdin_share_one_identity() -> None:
    async with raw_kernel() as kernel, open_channels(kernel.info) as ch:
        with trio.fail_after(TIMEOUT):
            await kernel.connected(ch, "stdin")
            request = ch.session.message("kernel_info_request")
            await ch.shell.send(request)
            ident, got = await kernel.receive("shell")
            assert ident == ch.identity
            assert got.msg_id == request.msg_id and got.header.session == ch.session.session_id
            await kernel.send("shell", ident, kernel.session.reply(got, {"status": "ok"}))
            reply = await ch.shell.receive()
            assert reply.msg_type == "kernel_info_reply"
            assert reply.parent_id == request.msg_id
            assert reply.channel == "shell"

            await ch.control.send(ch.session.message("interrupt_request", channel="control"))
            ident_control, got = await kernel.receive("control")
            assert got.msg_type == "interrupt_request" and ident_control == ch.identity

            # The kernel asks for input on stdin; the answer goes back on stdin.
            await kernel.send("stdin", ident, kernel.message("input_request", {"prompt": "? "}))
            asked = await ch.stdin.receive()
            assert asked.channel == "stdin" and asked.content["prompt"] == "? "
            await ch.stdin.send(ch.session.message("input_reply", {"value": "42"}, parent=asked))
            ident_stdin, answer = await kernel.receive("stdin")
            assert ident_stdin == ident and answer.content == {"value": "42"}
            assert answer.parent_id == asked.msg_id

        stats = ch.statistics()
        assert (stats.shell.sent, stats.shell.received) == (1 + kernel.hellos["shell"], 1)
        assert (stats.stdin.sent, stats.stdin.received) == (1 + kernel.hellos["stdin"], 1)
        assert stats.control.sent == 1 + kernel.hellos["control"]
        assert stats.rejected_total == 0


async def test_send_validation_happens_before_the_wire() -> None:
    async with raw_kernel() as kernel, open_channels(kernel.info) as ch:
        with pytest.raises(LocalProtocolError, match="meant for 'control'"):
            await ch.shell.send(ch.session.message("shutdown_request", channel="control"))
        with pytest.raises(LocalProtocolError, match="JSON"):
            await ch.shell.send(ch.session.message("execute_request", {"x": float("nan")}))
        with pytest.raises(LocalProtocolError, match="channel=None"):
            await ch.send(ch.session.message("execute_request"))
        with pytest.raises(LocalProtocolError, match="channel='iopub'"):
            await ch.send(ch.session.message("stream", channel="iopub"))
        with pytest.raises(TypeError):
            await ch.shell.send({"header": {}})  # type: ignore[arg-type]
        # None of that reached the kernel: the next thing it sees is this valid message.
        marker = ch.session.message("comm_info_request", channel="shell")
        await ch.send(marker)
        with trio.fail_after(TIMEOUT):
            _, got = await kernel.receive("shell")
        assert got.msg_id == marker.msg_id
        assert ch.statistics().shell.sent == 1


async def test_invalid_messages_are_rejected_counted_reported_and_valid_traffic_flows(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="trio_enchannel.channels")
    async with raw_kernel() as kernel, open_channels(kernel.info, report_rejects=True) as ch:
        with trio.fail_after(TIMEOUT):
            assert await kernel.wait_subscribed() == b"\x01"
            await kernel.connected(ch, "shell")
            first = await kernel.publish(kernel.message("stream", {"text": "1"}))
            await kernel.send_raw("iopub", [b"topic", b"no delimiter at all"])
            await kernel.send_raw("iopub", [b"topic", DELIMITER, b"sig", b"{}"])
            forged = kernel.signed_frames(
                b'{"msg_id":"x","msg_type":"stream"}', b"{}", b"{}", b"{}"
            )
            forged[-1] = b'{"text": "tampered"}'
            await kernel.send_raw("iopub", forged)
            await kernel.send_raw("iopub", kernel.signed_frames(b"{bad json", b"{}", b"{}", b"{}"))
            unsigned = kernel.signed_frames(
                b'{"msg_id":"y","msg_type":"stream"}', b"{}", b"{}", b"{}"
            )
            unsigned[2] = b""
            await kernel.send_raw("iopub", unsigned)
            await kernel.send_raw("iopub", first)  # a replay of a valid message
            await kernel.publish(kernel.message("stream", {"text": "2"}))

            # On shell too: the reader survives and the reply after the garbage arrives.
            await kernel.send_raw("shell", [ch.identity, b"\xff\xfe garbage"])
            await kernel.send("shell", ch.identity, kernel.message("kernel_info_reply"))

            assert (await ch.iopub.receive()).content == {"text": "1"}
            assert (await ch.iopub.receive()).content == {"text": "2"}
            assert (await ch.shell.receive()).msg_type == "kernel_info_reply"
            reports = [await ch.rejects.receive() for _ in range(7)]

        reasons = {
            "missing_delimiter": 1,
            "too_few_frames": 1,
            "invalid_signature": 1,
            "bad_json": 1,
            "unsigned": 1,
            "duplicate_signature": 1,
        }
        stats = ch.statistics()
        assert dict(stats.iopub.rejected) == reasons
        assert dict(stats.shell.rejected) == {"missing_delimiter": 1}
        assert stats.iopub.received == 2 and stats.rejected_total == 7
        assert [r.reason for r in reports if r.channel == "iopub"] == list(reasons)
        assert [r.reason for r in reports if r.channel == "shell"] == ["missing_delimiter"]
        first_iopub = next(r for r in reports if r.channel == "iopub")
        assert [bytes(f) for f in first_iopub.frames] == [b"topic", b"no delimiter at all"]
        assert all(r.error.reason == r.reason for r in reports)
        assert ch.iopub.receive_nowait is not None
        with pytest.raises(trio.WouldBlock):
            ch.iopub.receive_nowait()
        logged = [r.getMessage() for r in caplog.records]
        assert any("invalid_signature" in line and "iopub" in line for line in logged)


async def test_rejects_are_opt_in_and_never_block_the_reader() -> None:
    async with raw_kernel() as kernel:
        async with open_channels(kernel.info) as ch:
            with pytest.raises(RuntimeError, match="report_rejects"):
                _ = ch.rejects
        async with open_channels(kernel.info, report_rejects=True, rejects_buffer_size=1) as ch:
            with trio.fail_after(TIMEOUT):
                await kernel.connected(ch, "shell")
                for _ in range(3):
                    await kernel.send_raw("shell", [ch.identity, b"junk"])
                await kernel.send("shell", ch.identity, kernel.message("kernel_info_reply"))
                assert (await ch.shell.receive()).msg_type == "kernel_info_reply"
            stats = ch.statistics()
            assert stats.shell.rejected == {"missing_delimiter": 3}
            assert stats.rejects_unreported == 2


async def test_null_parent_header_from_real_kernels_is_accepted() -> None:
    async with raw_kernel() as kernel, open_channels(kernel.info) as ch:
        header = kernel.session.message("status").header.to_dict()
        import json

        frames = kernel.signed_frames(json.dumps(header).encode(), b"null", b"{}", b"{}")
        with trio.fail_after(TIMEOUT):
            await kernel.wait_subscribed()
            await kernel.send_raw("iopub", frames)
            msg = await ch.iopub.receive()
        assert msg.parent_header == {} and msg.parent_id is None


async def test_order_is_preserved_per_channel_under_load() -> None:
    n = 3000
    async with raw_kernel() as kernel, open_channels(kernel.info, buffer_size=16) as ch:
        with trio.fail_after(TIMEOUT):
            await kernel.wait_subscribed()
            await kernel.connected(ch, "shell")

            async def produce() -> None:
                for i in range(n):
                    await kernel.send("shell", ch.identity, kernel.message("r", {"i": i}))
                    await kernel.publish(kernel.message("stream", {"i": i}))
                    if i == 100:  # a head start: the reader meets a full buffer at least once
                        await poll_until(lambda: ch.statistics().shell.stalls > 0)
                        nursery.start_soon(consume, ch.shell, shell)
                        nursery.start_soon(consume, ch.iopub, iopub)

            async def consume(channel: Any, out: list[int]) -> None:
                async for msg in channel:
                    out.append(msg.content["i"])
                    if len(out) == n:
                        return

            shell: list[int] = []
            iopub: list[int] = []
            async with trio.open_nursery() as nursery:
                nursery.start_soon(produce)
        assert shell == list(range(n)) and iopub == list(range(n))


async def test_replies_taken_in_by_a_send_are_delivered_in_order() -> None:
    """A send that finds replies ready while the reader sleeps takes them in itself (the
    socket's receive hook), sparing the reader a wake-up: the first reply can be received
    right after that send, with no schedule point between, and order and counters are as
    if the reader had taken them."""
    async with raw_kernel() as kernel, open_channels(kernel.info, heartbeat=False) as ch:
        with trio.fail_after(TIMEOUT):
            await kernel.connected(ch, "shell")
            await trio.testing.wait_all_tasks_blocked()  # the reader sleeps
            for i in range(20):
                frames = kernel.session.serialize(kernel.message("r", {"i": i}), [ch.identity])
                kernel.sockets["shell"].send_multipart_nowait(frames)
            # Never yielding (so the reader cannot wake up), send until a send finds the
            # replies that ZeroMQ's I/O thread moves meanwhile.
            sent = 0
            first: Message | None = None
            deadline = time.monotonic() + TIMEOUT
            while first is None:
                assert time.monotonic() < deadline, "no send took the replies in"
                with contextlib.suppress(trio.WouldBlock):
                    ch.shell.send_nowait(ch.session.message("kernel_info_request"))
                    sent += 1
                with contextlib.suppress(trio.WouldBlock):
                    first = ch.shell.receive_nowait()
            rest = [(await ch.shell.receive()).content["i"] for _ in range(19)]
        assert [first.content["i"], *rest] == list(range(20))
        stats = ch.statistics().shell
        assert (stats.received, stats.sent, stats.queued) == (20, sent + kernel.hellos["shell"], 0)


async def test_cancelled_receives_never_lose_a_message() -> None:
    n = 2000
    async with raw_kernel() as kernel, open_channels(kernel.info, buffer_size=8) as ch:
        with trio.fail_after(TIMEOUT):
            await kernel.connected(ch, "shell")

            async def produce() -> None:
                for i in range(n):
                    await kernel.send("shell", ch.identity, kernel.message("r", {"i": i}))

            got: list[int] = []
            cancelled = 0
            async with trio.open_nursery() as nursery:
                nursery.start_soon(produce)
                attempt = 0
                while len(got) < n:
                    attempt += 1
                    with trio.CancelScope() as scope:
                        if attempt % 3 == 0:
                            scope.cancel()  # cancelled at the receive's checkpoint
                        elif attempt % 3 == 1:
                            scope.deadline = trio.current_time() + 0.0002
                        got.append((await ch.shell.receive()).content["i"])
                    cancelled += scope.cancelled_caught
        assert got == list(range(n))
        assert cancelled > n // 3


async def _publish_then_sync(kernel: RawKernel, ch: Channels, messages: list[Message]) -> None:
    """Publish ``messages``, then a garbage frame; return once the reader has handled it
    (and so every message before it): the consumer has read nothing meanwhile."""
    for msg in messages:
        await kernel.publish(msg)
    await kernel.send_raw("iopub", [b"end marker"])
    await ch.rejects.receive()


async def test_iopub_default_keeps_draining_and_accounts_for_every_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue #8: with default settings a slow consumer never makes the reader stop (so the
    kernel never drops anything unseen): what does not fit is dropped *and counted*, logged
    (rate-limited), visible on the channel; status messages are kept."""
    caplog.set_level(logging.WARNING, logger="trio_enchannel.channels")
    async with (
        raw_kernel() as kernel,
        open_channels(kernel.info, iopub_buffer_size=20, report_rejects=True) as ch,
    ):
        with trio.fail_after(TIMEOUT):
            await kernel.wait_subscribed()
            dropped_seen: list[int] = []

            async def watch() -> None:
                dropped_seen.append(await ch.iopub.wait_dropped())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch)
                await trio.testing.wait_all_tasks_blocked()
                assert (ch.iopub.dropped, dropped_seen) == (0, [])
                messages = []
                for i in range(300):
                    messages.append(kernel.message("stream", {"i": i}))
                    if i % 50 == 49:  # an execution's end, past the bound
                        messages.append(kernel.message("status", {"execution_state": "idle"}))
                await _publish_then_sync(kernel, ch, messages)
            stats = ch.statistics().iopub
            assert stats.received == 306 and stats.stalls == 0
            assert (stats.queued, stats.dropped) == (20 + 6, 280)
            assert stats.queued_bytes > 0 and stats.buffer_bytes > 0
            assert ch.iopub.dropped == 280 and dropped_seen and dropped_seen[0] >= 1
            assert await ch.iopub.wait_dropped(279) == 280  # already true: returns at once
            got = [ch.iopub.receive_nowait() for _ in range(26)]
            # The first 20 messages, then every status: the statuses were never dropped.
            assert [m.content.get("i") for m in got[:20]] == list(range(20))
            assert [m.msg_type for m in got[20:]] == ["status"] * 6
            assert ch.statistics().iopub.queued_bytes == 0
    warnings = [r.getMessage() for r in caplog.records if "slower than the kernel" in r.message]
    assert len(warnings) == 1 and "iopub" in warnings[0]  # rate-limited: not one per drop
    assert "see open_channels' iopub_overflow" in warnings[0]


async def test_iopub_buffer_is_bounded_in_bytes_too() -> None:
    big = "x" * 10_000
    async with (
        raw_kernel() as kernel,
        open_channels(kernel.info, iopub_buffer_bytes=50_000, report_rejects=True) as ch,
    ):
        with trio.fail_after(TIMEOUT):
            await kernel.wait_subscribed()
            messages = [kernel.message("stream", {"i": i, "text": big}) for i in range(20)]
            await _publish_then_sync(kernel, ch, messages)
            stats = ch.statistics().iopub
            assert stats.buffer_bytes == 50_000 and 40_000 < stats.queued_bytes <= 50_000
            assert stats.queued + stats.dropped == 20 and stats.queued == 4
            assert [(await ch.iopub.receive()).content["i"] for _ in range(4)] == [0, 1, 2, 3]


async def test_a_message_larger_than_the_byte_bound_is_kept_while_the_buffer_is_empty() -> None:
    """Issue #12: one message larger than ``iopub_buffer_bytes`` (a 40 MB print) was dropped
    although nothing was queued: its size alone says nothing about a slow consumer. What
    is dropped is remembered against the request it belongs to."""
    huge = "x" * 200_000
    request = Session("other").message("execute_request", channel="shell")
    async with (
        raw_kernel() as kernel,
        open_channels(kernel.info, iopub_buffer_bytes=50_000, report_rejects=True) as ch,
    ):
        with trio.fail_after(TIMEOUT):
            await kernel.wait_subscribed()
            messages = [
                kernel.message("stream", {"i": i, "text": huge}, parent=request) for i in range(3)
            ]
            await _publish_then_sync(kernel, ch, messages)
            stats = ch.statistics().iopub
            # The first fits alone; the next two would pass the bound of a non-empty buffer.
            assert (stats.queued, stats.dropped) == (1, 2)
            assert ch.iopub.dropped_for(request.msg_id) == 2
            assert ch.iopub.dropped_for("another request") == 0
            got = await ch.iopub.receive()
            assert got.content["i"] == 0 and len(got.content["text"]) == 200_000


async def test_iopub_status_messages_past_the_bound_have_a_hard_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import trio_enchannel._io._overflow as overflow_module

    monkeypatch.setattr(overflow_module, "STATUS_RESERVE", 5)
    async with (
        raw_kernel() as kernel,
        open_channels(kernel.info, iopub_buffer_size=3, report_rejects=True) as ch,
    ):
        with trio.fail_after(TIMEOUT):
            await kernel.wait_subscribed()
            statuses = [kernel.message("status", {"execution_state": "idle"}) for _ in range(10)]
            await _publish_then_sync(kernel, ch, statuses)
            stats = ch.statistics().iopub
            assert (stats.queued, stats.dropped) == (3 + 5, 2)


async def test_multiplexed_iopub_drops_while_replies_wait() -> None:
    """One shared buffer: IOPub overflow is dropped and counted, shell replies never are
    (their reader waits until the consumer catches up)."""
    async with (
        raw_kernel() as kernel,
        open_channels(
            kernel.info,
            multiplexed=True,
            buffer_size=5,
            iopub_buffer_size=10,
            report_rejects=True,
        ) as ch,
    ):
        with trio.fail_after(TIMEOUT):
            await kernel.wait_subscribed()
            await kernel.connected(ch, "shell")
            for i in range(30):
                await kernel.send("shell", ch.identity, kernel.message("reply", {"i": i}))
            await _publish_then_sync(kernel, ch, [kernel.message("stream") for _ in range(30)])
            await poll_until(lambda: ch.statistics().shell.stalls > 0)
            stats = ch.statistics()
            assert stats.iopub.dropped > 0 and stats.shell.dropped == 0
            replies: list[int] = []
            streams = 0
            while len(replies) < 30:
                msg = await ch.multiplexed.receive()
                if msg.channel == "shell":
                    replies.append(msg.content["i"])
                streams += msg.channel == "iopub"
            assert replies == list(range(30))
            while True:
                try:
                    streams += ch.multiplexed.receive_nowait().channel == "iopub"
                except trio.WouldBlock:
                    break
            stats = ch.statistics()
            assert stats.iopub.received == 30 and streams + stats.iopub.dropped == 30


async def test_iopub_overflow_wait_resumes_for_a_batch_not_per_message() -> None:
    """Hysteresis: a reader stopped by a full buffer resumes once half of it is free, so a
    consumer reading one message at a time does not wake it once per message."""
    async with (
        raw_kernel() as kernel,
        open_channels(kernel.info, iopub_buffer_size=20, iopub_overflow="wait") as ch,
    ):
        with trio.fail_after(TIMEOUT):
            await kernel.wait_subscribed()
            for i in range(400):
                await kernel.publish(kernel.message("stream", {"i": i}))
            await poll_until(lambda: ch.statistics().iopub.stalls == 1)
            assert [(await ch.iopub.receive()).content["i"] for _ in range(400)] == list(range(400))
            stats = ch.statistics().iopub
            assert stats.dropped == 0 and stats.stalls <= 400 // 10 + 1


async def test_iopub_overflow_drop_counts_what_it_drops() -> None:
    async with (
        raw_kernel() as kernel,
        open_channels(
            kernel.info, iopub_buffer_size=10, iopub_overflow="drop", report_rejects=True
        ) as ch,
    ):
        with trio.fail_after(TIMEOUT):
            await kernel.wait_subscribed()
            for i in range(100):
                await kernel.publish(kernel.message("stream", {"i": i}))
            await kernel.send_raw("iopub", [b"end marker"])
            await ch.rejects.receive()  # the reader has handled everything before it
            stats = ch.statistics().iopub
            assert (stats.received, stats.queued, stats.dropped, stats.stalls) == (100, 10, 90, 0)
            assert [(await ch.iopub.receive()).content["i"] for _ in range(10)] == list(range(10))


async def test_iopub_overflow_wait_loses_nothing_and_counts_stalls() -> None:
    async with (
        raw_kernel() as kernel,
        open_channels(kernel.info, iopub_buffer_size=10, iopub_overflow="wait") as ch,
    ):
        with trio.fail_after(TIMEOUT):
            await kernel.wait_subscribed()
            for i in range(100):
                await kernel.publish(kernel.message("stream", {"i": i}))
            await poll_until(lambda: ch.statistics().iopub.stalls == 1)
            stats = ch.statistics().iopub
            assert stats.queued == 10 and stats.buffer_size == 10 and stats.dropped == 0
            assert [(await ch.iopub.receive()).content["i"] for _ in range(100)] == list(range(100))


async def test_multiplexed_view_receives_everything_tagged_and_routes_sends() -> None:
    async with raw_kernel() as kernel, open_channels(kernel.info, multiplexed=True) as ch:
        with trio.fail_after(TIMEOUT):
            await kernel.wait_subscribed()
            await kernel.connected(ch, "shell", "control", "stdin")
            await kernel.send("shell", ch.identity, kernel.message("execute_reply"))
            await kernel.send("control", ch.identity, kernel.message("shutdown_reply"))
            await kernel.send("stdin", ch.identity, kernel.message("input_request"))
            await kernel.publish(kernel.message("status", {"execution_state": "idle"}))
            seen = {
                (m.channel, m.msg_type) for m in [await ch.multiplexed.receive() for _ in range(4)]
            }
            assert seen == {
                ("shell", "execute_reply"),
                ("control", "shutdown_reply"),
                ("stdin", "input_request"),
                ("iopub", "status"),
            }
            with pytest.raises(RuntimeError, match="multiplexed"):
                await ch.shell.receive()
            await ch.multiplexed.send(ch.session.message("interrupt_request", channel="control"))
            await ch.multiplexed.send(ch.session.message("input_reply", channel="stdin"))
            assert (await kernel.receive("control"))[1].msg_type == "interrupt_request"
            assert (await kernel.receive("stdin"))[1].msg_type == "input_reply"
    async with raw_kernel() as kernel, open_channels(kernel.info) as ch:
        with pytest.raises(RuntimeError, match="multiplexed=True"):
            ch.multiplexed.receive_nowait()


async def test_iopub_ready_by_welcome_without_nudging() -> None:
    async with raw_kernel() as kernel, open_channels(kernel.info) as ch:
        initially = ch.iopub_ready
        with trio.fail_after(TIMEOUT):
            assert await kernel.wait_subscribed() == b"\x01"
            await kernel.publish(kernel.message("iopub_welcome", {"subscription": ""}), b"")
            await ch.wait_iopub_ready()
            assert (initially, ch.iopub_ready) == (False, True)
            assert (await ch.iopub.receive()).msg_type == "iopub_welcome"
        assert ch.statistics().shell.sent == 0  # no kernel_info nudge was needed


async def test_iopub_ready_by_kernel_info_nudges_whose_replies_are_hidden() -> None:
    async with raw_kernel() as kernel, open_channels(kernel.info) as ch:

        async def old_kernel() -> None:
            # No iopub_welcome: answer nudges, publishing busy/idle like a kernel does.
            while True:
                ident, request = await kernel.receive("shell")
                for state in ("busy", "idle"):
                    await kernel.publish(
                        kernel.message("status", {"execution_state": state}, parent=request)
                    )
                await kernel.send("shell", ident, kernel.session.reply(request, {"status": "ok"}))

        with trio.fail_after(TIMEOUT):
            await kernel.wait_subscribed()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(old_kernel)
                await ch.wait_iopub_ready(welcome_grace=0.01, nudge_every=0.05)
                # A real request goes through; the nudges' replies and statuses are not seen.
                request = ch.session.message("kernel_info_request")
                await ch.shell.send(request)
                reply = await ch.shell.receive()
                assert reply.parent_id == request.msg_id
                statuses = [await ch.iopub.receive() for _ in range(2)]
                assert {m.parent_id for m in statuses} == {request.msg_id}
                nursery.cancel_scope.cancel()
        assert ch.statistics().shell.sent >= 2


async def test_heartbeat_detects_silence_and_recovery() -> None:
    async with (
        raw_kernel() as kernel,
        open_channels(kernel.info, hb_interval=0.05, hb_deadline=0.25) as ch,
    ):
        with trio.fail_after(TIMEOUT):
            await ch.heartbeat.wait_responsive()
            before = (ch.heartbeat.state, ch.kernel_unresponsive)
            kernel.hb_paused = True
            died = await ch.wait_unresponsive()
            assert isinstance(died, KernelDied) and "heartbeat" in str(died)
            assert before == ("responsive", False)
            assert (ch.heartbeat.state, ch.kernel_unresponsive) == ("unresponsive", True)
            stats = ch.statistics().heartbeat
            assert stats.misses >= 1 and stats.unresponsive_periods == 1
            silent_for = trio.current_time() - (stats.last_reply or 0)
            assert silent_for >= 0.25
            kernel.hb_paused = False
            await ch.heartbeat.wait_responsive()  # a recreated REQ socket gets answers again
            assert ch.heartbeat.state == "responsive"
            assert ch.statistics().heartbeat.replies >= 2


async def test_heartbeat_startup_deadline_applies_before_the_first_echo() -> None:
    async with raw_kernel() as kernel:
        kernel.hb_paused = True
        opened = trio.current_time()  # the deadline counts from inside open_channels
        async with open_channels(
            kernel.info, hb_interval=0.05, hb_deadline=0.05, hb_startup_deadline=0.3
        ) as ch:
            assert ch.heartbeat.state == "waiting"
            with trio.fail_after(TIMEOUT):
                died = await ch.wait_unresponsive()
            assert trio.current_time() - opened >= 0.3
            assert "no heartbeat reply" in str(died)
            assert ch.statistics().heartbeat.replies == 0


async def assert_woken_by_close(ch: Channels, wait: Callable[[], Awaitable[object]]) -> None:
    """A task blocked in ``wait()`` gets ClosedResourceError when ``ch`` is closed."""
    outcome: list[str] = []

    async def waiter() -> None:
        with pytest.raises(trio.ClosedResourceError):
            await wait()
        outcome.append("closed")

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            await ch.aclose()
    assert outcome == ["closed"]


async def test_heartbeat_waiters_are_woken_by_close() -> None:
    async with raw_kernel() as kernel:
        async with open_channels(kernel.info, heartbeat=False) as ch:
            assert ch.heartbeat.state == "off"
            with pytest.raises(RuntimeError):
                await ch.heartbeat.wait_responsive()
        async with open_channels(kernel.info, hb_deadline=60) as ch:
            await assert_woken_by_close(ch, ch.wait_unresponsive)


async def test_the_zeromq_channels_implement_what_the_client_needs() -> None:
    """Issue #14: the client found its channels' abilities with getattr. Channels implement
    the declared ClientChannels protocol in full (checked by mypy through the annotated
    assignment, and at run time), with the liveness vocabulary: responsive, unresponsive."""
    async with raw_kernel() as kernel:
        async with open_channels(kernel.info, heartbeat=False) as ch:
            declared: ClientChannels = ch
            assert isinstance(declared, ClientChannels)
            assert ch.unresponsive_error is None
            with trio.fail_after(TIMEOUT):
                await ch.wait_responsive()  # no heartbeat: nothing says it does not answer
            ch.add_listener(_NoListener())  # accepted; ZeroMQ channels never call it
        with pytest.raises(trio.ClosedResourceError):
            await ch.wait_responsive()
        async with open_channels(kernel.info, hb_interval=0.05, hb_deadline=0.25) as ch:
            with trio.fail_after(TIMEOUT):
                await ch.wait_responsive()
                assert ch.heartbeat.state == "responsive"
                kernel.hb_paused = True
                died = await ch.wait_unresponsive()
                verdict = ch.unresponsive_error
                assert verdict is not None and verdict.reason == died.reason
                kernel.hb_paused = False
                await ch.wait_responsive()
                lifted = ch.unresponsive_error
                assert lifted is None
                with pytest.warns(DeprecationWarning, match="wait_responsive"):
                    await ch.heartbeat.wait_alive()


class _NoListener:
    def connection_lost(self, error: BaseException) -> None:
        raise AssertionError("not called by ZeroMQ channels")

    def kernel_restarted(self, reason: str) -> None:
        raise AssertionError("not called by ZeroMQ channels")

    def kernel_died(self, error: KernelDied) -> None:
        raise AssertionError("not called by ZeroMQ channels")


async def test_closing_semantics() -> None:
    async with raw_kernel() as kernel:
        async with open_channels(kernel.info) as ch:
            with trio.fail_after(TIMEOUT):
                await kernel.wait_subscribed()
                await kernel.connected(ch, "shell", "control")
                await kernel.send("shell", ch.identity, kernel.message("a"))
                await kernel.send("shell", ch.identity, kernel.message("b"))
                await poll_until(lambda: ch.statistics().shell.queued == 2)
                # Closing one channel leaves the others working.
                await ch.control.aclose()
                await ch.control.aclose()
                with pytest.raises(trio.ClosedResourceError):
                    await ch.control.receive()
                with pytest.raises(trio.ClosedResourceError):
                    await ch.control.send(ch.session.message("shutdown_request"))
                # Also when routed by the message's channel (ch.send, ch.multiplexed).
                routed = ch.session.message("shutdown_request", channel="control")
                with pytest.raises(trio.ClosedResourceError, match="control channel"):
                    await ch.send(routed)
                with pytest.raises(trio.ClosedResourceError, match="control channel"):
                    ch.send_nowait(routed)
                await kernel.send("control", ch.identity, kernel.message("late"))
                await poll_until(lambda: ch.statistics().control.discarded == 1)
        assert ch.closed
        # Messages received before the close stay receivable, then the channel ends.
        assert (await ch.shell.receive()).msg_type == "a"
        assert [m.msg_type async for m in ch.shell] == ["b"]
        with pytest.raises(trio.EndOfChannel):
            await ch.iopub.receive()
        with pytest.raises(trio.ClosedResourceError):
            await ch.shell.send(ch.session.message("kernel_info_request"))
        with pytest.raises(trio.ClosedResourceError):
            await ch.wait_iopub_ready()
        await ch.aclose()  # idempotent


async def test_aclose_inside_the_block_lets_the_body_continue() -> None:
    async with raw_kernel() as kernel:
        async with open_channels(kernel.info) as ch:
            await ch.aclose()
            with pytest.raises(trio.EndOfChannel):
                await ch.shell.receive()
            reached = True
        assert reached


async def test_wait_connected_lets_the_kernel_speak_first_on_every_routed_channel() -> None:
    """A kernel's ROUTER drops what it sends to a client whose handshake is not complete.
    The channels open before the kernel binds (as a launcher's do), never wait for it, and
    wait_connected() returns once shell, control and stdin are all connected: from then on
    a message the kernel starts (input_request) cannot be lost."""
    info = ConnectionInfo.allocate(key=KEY)
    async with open_channels(info, heartbeat=False) as ch:
        with trio.move_on_after(0.2) as waited:
            await ch.wait_connected()  # nothing listens yet: must not return
        connected_before = ch.connected
        assert waited.cancelled_caught and not connected_before
        async with raw_kernel(bind_to=info) as kernel:
            with trio.fail_after(TIMEOUT):
                await ch.wait_connected()
                assert ch.connected
                # No hello from the client: the kernel speaks first, on each channel.
                for name in ("stdin", "control", "shell"):
                    await kernel.send(name, ch.identity, kernel.message("input_request"))
                for name in ("stdin", "control", "shell"):
                    got = await getattr(ch, name).receive()
                    assert (got.msg_type, got.channel) == ("input_request", name)
                await ch.wait_connected()  # at once now


async def test_wait_connected_fails_clearly_when_the_handshake_cannot_succeed() -> None:
    """A client that insists on CurveZMQ against a kernel without it: no timeout to wait
    for, a ConnectionInfoError naming the channel."""
    if not has_curve():
        pytest.skip("libzmq without CurveZMQ")
    async with raw_kernel() as kernel:
        public, _ = curve_keypair()
        info = attrs.evolve(kernel.info, curve_publickey=public)
        async with open_channels(info, heartbeat=False) as ch:
            with trio.fail_after(TIMEOUT), pytest.raises(ConnectionInfoError, match="handshake"):
                await ch.wait_connected()
            assert not ch.connected


async def test_a_keyless_client_the_kernel_answered_gets_no_handshake_error() -> None:
    """Channels without a key whose kernel signs: a signed IOPub message is not taken as
    "key_missing" once the kernel has answered a request on shell (a kernel that verifies
    would have dropped it unsigned). The signed messages are counted, and sends go on."""
    async with raw_kernel(key="kernel-key") as kernel:
        keyless = attrs.evolve(kernel.info, key="")
        unsigned = Session("")
        async with open_channels(keyless, heartbeat=False) as ch:
            with trio.fail_after(TIMEOUT):
                await kernel.wait_subscribed()
                for first in (True, False):
                    request = ch.session.message("kernel_info_request")
                    await ch.shell.send(request)
                    frames = await kernel.sockets["shell"].receive_multipart()
                    got = unsigned.deserialize(frames)  # (the kernel runs it all the same)
                    reply = kernel.session.reply(got, {"status": "ok"})
                    await kernel.send("shell", got.identities[0], reply)
                    assert (await ch.shell.receive()).parent_id == request.msg_id
                    if first:
                        await kernel.publish(kernel.message("status", {"execution_state": "idle"}))
                        assert (await ch.iopub.receive()).msg_type == "status"
                        assert ch.handshake_error is None
                await ch.wait_connected()
                assert ch.handshake_error is None
                stats = ch.statistics()
                assert (stats.shell.unverified, stats.iopub.unverified) == (2, 1)


async def test_wait_connected_is_woken_by_close() -> None:
    info = ConnectionInfo.allocate(key=KEY)
    async with open_channels(info, heartbeat=False) as ch:
        await assert_woken_by_close(ch, ch.wait_connected)
    with pytest.raises(trio.ClosedResourceError):
        await ch.wait_connected()


async def test_connection_errors_surface_before_the_body(tmp_path: Path) -> None:
    bad = ConnectionInfo(1, 2, 3, 4, 5, ip="/" + "x" * 300, transport="ipc")
    entered = False
    with pytest.raises(ConnectionInfoError, match="cannot connect"):
        async with open_channels(bad):
            entered = True
    assert not entered
    with pytest.raises(ConfigurationError):
        async with open_channels(bad, iopub_overflow="sometimes"):  # type: ignore[arg-type]
            pass


async def test_connection_file_path_and_dict_are_accepted(tmp_path: Path) -> None:
    from trio_enchannel import write_connection_file

    async with raw_kernel() as kernel:
        path = write_connection_file(kernel.info, tmp_path / "k.json")
        for source in (path, str(path), kernel.info.to_dict()):
            async with open_channels(source, heartbeat=False) as ch:
                with trio.fail_after(TIMEOUT):
                    await ch.shell.send(ch.session.message("kernel_info_request"))
                    assert (await kernel.receive("shell"))[1].msg_type == "kernel_info_request"


async def test_ipc_transport(tmp_path: Path) -> None:
    async with (
        raw_kernel(transport="ipc", tmp=tmp_path) as kernel,
        open_channels(kernel.info, hb_interval=0.05) as ch,
    ):
        with trio.fail_after(TIMEOUT):
            await ch.shell.send(ch.session.message("kernel_info_request"))
            ident, got = await kernel.receive("shell")
            await kernel.send("shell", ident, kernel.session.reply(got, {}))
            assert (await ch.shell.receive()).msg_type == "kernel_info_reply"
            await ch.heartbeat.wait_responsive()


@pytest.mark.skipif(not has_curve(), reason="libzmq without CurveZMQ")
async def test_curve_encryption() -> None:
    async with raw_kernel(curve=True) as kernel:
        assert kernel.info.curve_publickey is not None
        async with open_channels(kernel.info, hb_interval=0.05) as ch:
            with trio.fail_after(TIMEOUT):
                await ch.shell.send(ch.session.message("kernel_info_request"))
                ident, got = await kernel.receive("shell")
                await kernel.send("shell", ident, kernel.session.reply(got, {}))
                assert (await ch.shell.receive()).msg_type == "kernel_info_reply"
                await ch.heartbeat.wait_responsive()
                await kernel.wait_subscribed()
                await kernel.publish(kernel.message("stream", {"text": "encrypted"}))
                assert (await ch.iopub.receive()).content == {"text": "encrypted"}


async def test_curve_unavailable_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import trio_enchannel._channels._channels as channels_module

    monkeypatch.setattr(channels_module, "has_curve", lambda: False)
    info = ConnectionInfo(1, 2, 3, 4, 5, curve_publickey="x" * 40)
    with pytest.raises(EncryptionUnavailable, match="curve"):
        async with open_channels(info):
            pass


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
async def test_open_close_cycles_leave_nothing_behind() -> None:
    async with raw_kernel() as kernel:
        # Warm up (the shared context's I/O thread), then measure.
        async with open_channels(kernel.info) as ch:
            await ch.shell.send(ch.session.message("kernel_info_request"))
        fds, threads = _open_fds(), set(threading.enumerate())
        tasks = trio.lowlevel.current_statistics().tasks_living
        for _ in range(1000):
            async with open_channels(kernel.info, linger=0) as ch:
                await ch.shell.send(ch.session.message("kernel_info_request"))
        assert trio.lowlevel.current_statistics().tasks_living == tasks
        # No thread started by the cycles is still alive. (Not a count: threads of earlier
        # tests may end meanwhile, e.g. Trio's idle worker threads, after 10 s.)
        assert set(threading.enumerate()) - threads == set()
        # libzmq closes connections in its I/O thread, a moment after zmq_close.
        with trio.fail_after(TIMEOUT):
            await poll_until(lambda: _open_fds() <= fds + 10)


async def test_channels_repr_and_statistics_lookup() -> None:
    async with raw_kernel() as kernel, open_channels(kernel.info) as ch:
        assert isinstance(ch, Channels)
        assert "open" in repr(ch) and KEY not in repr(ch)
        stats = ch.statistics()
        assert stats["shell"] is stats.shell
        assert stats["control"] is stats.control
        assert stats["stdin"] is stats.stdin
        assert stats["iopub"] is stats.iopub
        for other in ("hb", "heartbeat"):  # not a channel, even where an attribute
            with pytest.raises(KeyError):
                stats[other]  # type: ignore[index]
        assert ch.shell.name == "shell" and ch.iopub.statistics().name == "iopub"


async def test_buffer_size_zero_means_one_as_in_every_opener() -> None:
    async with (
        raw_kernel() as kernel,
        open_channels(kernel.info, buffer_size=0, iopub_buffer_size=0) as ch,
    ):
        stats = ch.statistics()
        assert (stats.shell.buffer_size, stats.iopub.buffer_size) == (1, 1)


async def test_a_heartbeat_socket_that_fails_to_open_before_its_watch_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The heartbeat replaces its socket after a missed echo; if the new one fails to open
    (here its connect), the failure ends the channels, alone and as itself, even when the
    watch of the heartbeat's handshakes had not started yet (the failed socket took its
    monitor away). With an interval of a nanosecond, the first echo is missed in the very
    step that started the heartbeat, before the watch's task first runs."""
    info = ConnectionInfo.allocate(key=KEY)  # nobody there: no echo
    hb_url = info.url("hb")
    connects: list[str] = []
    connect = TrioSocket.connect

    def failing_second_hb_connect(self: TrioSocket, url: str) -> None:
        connects.append(url)
        if url == hb_url and connects.count(url) == 2:
            raise trio.BrokenResourceError("injected: the new heartbeat socket cannot connect")
        connect(self, url)

    monkeypatch.setattr(TrioSocket, "connect", failing_second_hb_connect)
    with trio.fail_after(TIMEOUT), pytest.raises(ConnectionInfoError, match="hb socket"):
        async with open_channels(info, hb_interval=1e-9):
            await trio.sleep_forever()
    assert connects.count(hb_url) == 2
