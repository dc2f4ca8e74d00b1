"""Remote channels against a scripted fake server (trio-websocket on loopback): the cases a
real Jupyter Server will not produce on demand — malformed frames, server status messages,
floods, server-side closes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Protocol

import pytest
import trio
import trio.testing

from trio_enchannel import ConfigurationError, KernelDied, LocalProtocolError, Message, open_client
from trio_enchannel._channels._interfaces import ClientChannels
from trio_enchannel._wire._framing import V1_SUBPROTOCOL, decode_frame, encode_frame
from trio_enchannel._wire._session import Session

pytest.importorskip("trio_websocket", reason="the remote extra")
pytest.importorskip("httpx", reason="the remote extra")

import trio_websocket

from trio_enchannel._errors import RemoteAuthenticationError, RemoteKernelNotFound
from trio_enchannel._remote._channels import open_remote_channels

KERNEL = "k1"
TOKEN = "secret-token"
Script = Callable[["FakeConnection"], Awaitable[None]]


class FakeConnection:
    """One accepted websocket, with helpers to speak the kernel's side."""

    def __init__(self, ws: trio_websocket.WebSocketConnection, index: int) -> None:
        self.ws = ws
        self.index = index
        self.session = Session(session_id="fake-kernel")

    @property
    def subprotocol(self) -> str | None:
        return self.ws.subprotocol

    async def send(self, msg: Message) -> None:
        await self.ws.send_message(encode_frame(msg, self.subprotocol))

    async def send_raw(self, frame: str | bytes) -> None:
        await self.ws.send_message(frame)

    async def receive(self) -> Message:
        return decode_frame(await self.ws.get_message(), self.subprotocol)

    async def status(self, state: str, parent: Message | None = None) -> None:
        await self.send(
            self.session.message(
                "status", {"execution_state": state}, parent=parent, channel="iopub"
            )
        )

    async def stream(self, text: str, parent: Message) -> None:
        await self.send(
            self.session.message(
                "stream", {"name": "stdout", "text": text}, parent=parent, channel="iopub"
            )
        )

    async def answer_forever(self) -> None:
        """Reply to every request like a kernel would (busy, reply, idle), until closed."""
        try:
            while True:
                request = await self.receive()
                await self.status("busy", request)
                await self.send(self.session.reply(request, {"status": "ok"}))
                await self.status("idle", request)
        except trio_websocket.ConnectionClosed:
            return


class FakeServer:
    """Serves ``/api/kernels/k1/channels`` on loopback; each connection runs ``script``."""

    def __init__(self, script: Script, *, offer_v1: bool = True) -> None:
        self.script = script
        self.offer_v1 = offer_v1
        self.connections = 0
        self.session_ids: list[str] = []
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                trio_websocket.serve_websocket, self._handle, "127.0.0.1", 0, None
            )
            self.port = server.port
            task_status.started()

    async def _handle(self, request: trio_websocket.WebSocketRequest) -> None:
        headers = dict(request.headers)
        if headers.get(b"authorization") != f"token {TOKEN}".encode():
            await request.reject(403, body=b'{"message": "Forbidden"}')
            return
        path, _, query = request.path.partition("?")
        if path != f"/api/kernels/{KERNEL}/channels":
            await request.reject(404, body=b'{"message": "Kernel does not exist"}')
            return
        self.session_ids.append(query.partition("session_id=")[2])
        wanted = V1_SUBPROTOCOL in request.proposed_subprotocols and self.offer_v1
        ws = await request.accept(subprotocol=V1_SUBPROTOCOL if wanted else None)
        self.connections += 1
        await self.script(FakeConnection(ws, self.connections))


@asynccontextmanager
async def serving(script: Script, *, offer_v1: bool = True) -> AsyncIterator[FakeServer]:
    """A fake server running ``script`` for the block, stopped when it ends."""
    async with trio.open_nursery() as nursery:
        server = FakeServer(script, offer_v1=offer_v1)
        await nursery.start(server.run)
        yield server
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("offer_v1", [True, False], ids=["v1", "legacy"])
async def test_malformed_frames_are_rejected_counted_and_never_delivered(offer_v1: bool) -> None:
    async def script(conn: FakeConnection) -> None:
        if conn.subprotocol == V1_SUBPROTOCOL:
            await conn.send_raw(b"\x00garbage")  # not even an offset table
            good = encode_frame(conn.session.message("status", channel="iopub"), V1_SUBPROTOCOL)
            assert isinstance(good, bytes)
            bad = good.replace(b'{"msg_id"', b"{'msg_id\"", 1)  # broken JSON, same length
            await conn.send_raw(bad)
        else:
            await conn.send_raw("not json at all")
            await conn.send_raw('{"channel": "iopub", "header": {"msg_id": "1", "msg_type": ')
            await conn.send_raw('{"channel": "iopub", "header": 3}')
        await conn.status("idle")
        await conn.answer_forever()

    with trio.fail_after(20):
        async with (
            serving(script, offer_v1=offer_v1) as server,
            open_remote_channels(server.url, KERNEL, token=TOKEN, report_rejects=True) as ch,
        ):
            msg = await ch.iopub.receive()
            assert msg.msg_type == "status"  # the only valid message came through
            rejects = [await ch.rejects.receive() for _ in range(2 if offer_v1 else 3)]
            stats = ch.statistics()
            assert stats.iopub.received == 1
            if offer_v1:
                assert [r.reason for r in rejects] == ["bad_framing", "bad_json"]
                assert stats.connection.rejected_unknown_channel == 1
                assert stats.iopub.rejected == {"bad_json": 1}
            else:
                assert [r.reason for r in rejects] == ["bad_json", "bad_json", "not_object"]
                assert stats.connection.rejected_unknown_channel == 2
                assert stats.iopub.rejected == {"not_object": 1}
            assert stats.rejected_total == len(rejects)
            assert all(len(r.frames) == 1 for r in rejects)
            # The reader survived: requests still work.
            await ch.send(ch.session.message("kernel_info_request", channel="shell"))
            assert (await ch.shell.receive()).msg_type == "kernel_info_reply"


async def test_invalid_utf8_is_replaced_counted_and_delivered() -> None:
    async def script(conn: FakeConnection) -> None:
        msg = conn.session.message("stream", {"name": "stdout", "text": "a|b"}, channel="iopub")
        good = encode_frame(msg, V1_SUBPROTOCOL)
        assert isinstance(good, bytes)
        await conn.send_raw(good.replace(b"a|b", b"a\xffb", 1))  # same length
        await conn.answer_forever()

    with trio.fail_after(20):
        async with (
            serving(script) as server,
            open_remote_channels(server.url, KERNEL, token=TOKEN, report_rejects=True) as ch,
        ):
            msg = await ch.iopub.receive()
            assert msg.content["text"] == "a\ufffdb"
            stats = ch.statistics()
            assert stats.iopub.invalid_utf8 == 1 and stats.rejected_total == 0


async def test_a_rejected_iopub_message_is_counted_against_its_request() -> None:
    async def script(conn: FakeConnection) -> None:
        request = await conn.receive()
        msg = conn.session.message(
            "stream", {"name": "stdout", "text": "a|b"}, parent=request, channel="iopub"
        )
        good = encode_frame(msg, V1_SUBPROTOCOL)
        assert isinstance(good, bytes)
        await conn.send_raw(good.replace(b'"a|b"', b"NaN  ", 1))  # same length, not JSON
        await conn.answer_forever()

    with trio.fail_after(20):
        async with (
            serving(script) as server,
            open_remote_channels(server.url, KERNEL, token=TOKEN, report_rejects=True) as ch,
        ):
            request = ch.session.message("execute_request", channel="shell")
            await ch.send(request)
            rejected = await ch.rejects.receive()
            assert (rejected.channel, rejected.reason) == ("iopub", "bad_json")
            assert ch.iopub.dropped_for(request.msg_id) == 1
            assert ch.statistics().iopub.dropped == 0


async def test_handshake_refusals_are_typed() -> None:
    async def script(conn: FakeConnection) -> None:
        await conn.answer_forever()  # pragma: no cover - never accepted

    with trio.fail_after(20):
        async with serving(script) as server:
            with pytest.raises(RemoteAuthenticationError) as auth:
                async with open_remote_channels(server.url, KERNEL, token="nope"):
                    pass  # pragma: no cover
            assert auth.value.status_code == 403
            assert "nope" not in str(auth.value)
            with pytest.raises(RemoteKernelNotFound) as missing:
                async with open_remote_channels(server.url, "k2", token=TOKEN):
                    pass  # pragma: no cover
            assert missing.value.kernel_id == "k2"


async def test_server_restarting_status_fails_pending_requests_only() -> None:
    async def script(conn: FakeConnection) -> None:
        if conn.index == 1:
            first = await conn.receive()  # the request that will never be answered
            await conn.status("busy", first)
            await conn.status("restarting")  # what Jupyter Server says when a kernel crashed
        await conn.answer_forever()

    with trio.fail_after(20):
        async with (
            serving(script) as server,
            open_remote_channels(server.url, KERNEL, token=TOKEN) as ch,
            open_client(ch) as client,
        ):
            with pytest.raises(KernelDied, match="restarted"):
                await client.kernel_info()
            assert ch.died is None
            info = await client.kernel_info()  # the restarted kernel answers
            assert info.reply.msg_type == "kernel_info_reply"
            # The channels reopened the websocket as a new session (the restarted kernel
            # may listen on new ports) and checked its messages flow before using it.
            assert server.connections == 2
            assert server.session_ids[0] != server.session_ids[1]
            assert ch.statistics().connection.drops == 0  # a planned reconnection


async def test_server_dead_status_is_the_kernel_death() -> None:
    async def script(conn: FakeConnection) -> None:
        request = await conn.receive()
        await conn.status("busy", request)
        await conn.status("dead")
        await trio.sleep_forever()

    with trio.fail_after(20):
        async with (
            serving(script) as server,
            open_remote_channels(server.url, KERNEL, token=TOKEN) as ch,
            open_client(ch) as client,
        ):
            with pytest.raises(KernelDied, match="dead"):
                await client.kernel_info()
            died = await ch.wait_unresponsive()
            assert "dead" in died.reason
            assert ch.died is not None and ch.state == "dead"
            with pytest.raises(KernelDied):
                await ch.send(ch.session.message("kernel_info_request", channel="shell"))
            with pytest.raises(KernelDied):
                await client.kernel_info()


async def test_wait_responsive_returns_while_alive_and_raises_once_dead() -> None:
    """Issue #14: the websocket wait_responsive never returned, alive or dead (a caller
    waiting for the kernel to answer again hung forever; the outcome was known)."""

    async def script(conn: FakeConnection) -> None:
        request = await conn.receive()
        await conn.status("dead", request)
        await trio.sleep_forever()

    with trio.fail_after(20):
        async with (
            serving(script) as server,
            open_remote_channels(server.url, KERNEL, token=TOKEN) as ch,
        ):
            declared: ClientChannels = ch  # the interface the client needs, in full
            assert isinstance(declared, ClientChannels)
            await ch.wait_responsive()  # alive: at once
            assert (ch.unresponsive_error, ch.kernel_unresponsive) == (None, False)
            await ch.shell.send(ch.session.message("kernel_info_request"))
            died = await ch.wait_unresponsive()
            assert ch.unresponsive_error is died and ch.kernel_unresponsive
            with pytest.raises(KernelDied, match="dead"):
                await ch.wait_responsive()  # dead for good: at once, not never
        with pytest.raises(KernelDied):
            await ch.wait_responsive()


async def test_wait_unresponsive_is_woken_by_close() -> None:
    """As on the ZeroMQ channels: closing the channels while the kernel lives ends the wait
    with ClosedResourceError (it used to wait forever)."""

    async def script(conn: FakeConnection) -> None:
        await conn.answer_forever()

    outcome: list[str] = []
    with trio.fail_after(20):
        async with serving(script) as server:
            async with open_remote_channels(server.url, KERNEL, token=TOKEN) as ch:

                async def waiter() -> None:
                    try:
                        await ch.wait_unresponsive()
                    except trio.ClosedResourceError:
                        outcome.append("closed")

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(waiter)
                    await trio.testing.wait_all_tasks_blocked()
                    await ch.aclose()
            with pytest.raises(trio.ClosedResourceError):
                await ch.wait_unresponsive()
    assert outcome == ["closed"]


async def test_wait_iopub_ready_has_the_signature_of_the_zeromq_channels() -> None:
    """Issue #14: RemoteChannels.wait_iopub_ready took no arguments, so code written for
    Channels (``wait_iopub_ready(welcome_grace=..., nudge_every=...)``) failed with
    TypeError on the websocket; the same bad values are now refused the same way."""

    async def script(conn: FakeConnection) -> None:
        await conn.answer_forever()

    with trio.fail_after(20):
        async with (
            serving(script) as server,
            open_remote_channels(server.url, KERNEL, token=TOKEN) as ch,
        ):
            await ch.wait_iopub_ready(welcome_grace=0, nudge_every=0.5)
            assert ch.iopub_ready
            with pytest.raises(ConfigurationError, match="nudge_every"):
                await ch.wait_iopub_ready(nudge_every=0)
            with pytest.raises(ConfigurationError, match="welcome_grace"):
                await ch.wait_iopub_ready(welcome_grace=-1)


class _Nowait(Protocol):
    def receive_nowait(self) -> Message: ...


def _drain(channel: _Nowait) -> list[Message]:
    """Every message queued on ``channel``, without waiting."""
    out: list[Message] = []
    while True:
        try:
            out.append(channel.receive_nowait())
        except trio.WouldBlock:
            return out


@pytest.mark.parametrize("offer_v1", [True, False], ids=["v1", "legacy"])
async def test_iopub_flood_is_dropped_and_counted_by_default(
    offer_v1: bool, caplog: pytest.LogCaptureFixture
) -> None:
    async def script(conn: FakeConnection) -> None:
        request = await conn.receive()
        await conn.status("busy", request)
        for i in range(300):
            await conn.stream(f"{i}\n", request)
            if i % 50 == 49:  # status messages in the middle of the flood
                await conn.status("busy", request)
        await conn.status("idle", request)
        # The reply comes last: once it is received, every IOPub message was processed.
        await conn.send(conn.session.reply(request, {"status": "ok"}))
        await conn.answer_forever()

    caplog.set_level(logging.WARNING, logger="trio_enchannel.channels")
    with trio.fail_after(20):
        async with (
            serving(script, offer_v1=offer_v1) as server,
            open_remote_channels(server.url, KERNEL, token=TOKEN, iopub_buffer_size=20) as ch,
        ):
            await ch.send(ch.session.message("execute_request", channel="shell"))
            reply = await ch.shell.receive()  # nobody reads IOPub: the reply still comes
            assert reply.msg_type == "execute_reply"
            stats = ch.statistics().iopub
            assert stats.received == 1 + 300 + 6 + 1
            assert stats.stalls == 0  # the reader never waited for the IOPub consumer
            # The buffer filled with busy + 19 streams; past it only statuses were kept.
            assert stats.dropped == 300 - 19
            assert stats.queued == 20 + 6 + 1
            assert stats.received == stats.dropped + stats.queued  # nothing delivered yet
            assert (stats.buffer_size, stats.buffer_bytes) == (20, 32 * 2**20)
            assert 0 < stats.queued_bytes <= stats.buffer_bytes
            assert ch.iopub.dropped == stats.dropped
            assert await ch.iopub.wait_dropped() == stats.dropped
            delivered = _drain(ch.iopub)
            statuses = [m.content["execution_state"] for m in delivered if m.msg_type == "status"]
            assert statuses == ["busy"] * 7 + ["idle"]  # no status message dropped
            texts = [m.content["text"] for m in delivered if m.msg_type == "stream"]
            assert texts == [f"{i}\n" for i in range(19)]  # the oldest kept, in order
            after = ch.statistics().iopub
            assert (after.queued, after.queued_bytes) == (0, 0)
            assert after.received == len(delivered) + after.dropped + after.queued
            # Replies still flow afterwards.
            await ch.send(ch.session.message("kernel_info_request", channel="shell"))
            assert (await ch.shell.receive()).msg_type == "kernel_info_reply"
    warnings = [r for r in caplog.records if r.name == "trio_enchannel.channels"]
    assert len(warnings) == 1  # reported once (rate-limited), with the count
    assert warnings[0].levelno == logging.WARNING
    assert "dropped 1 message(s)" in warnings[0].getMessage()
    assert "see open_remote_channels' iopub_overflow" in warnings[0].getMessage()


async def test_iopub_buffer_is_bounded_in_bytes() -> None:
    big = "x" * 200_000

    async def script(conn: FakeConnection) -> None:
        request = await conn.receive()
        for i in range(10):
            await conn.stream(f"{i}{big}", request)
        await conn.status("idle", request)  # kept although the bytes bound is reached
        await conn.send(conn.session.reply(request, {"status": "ok"}))
        await conn.answer_forever()

    with trio.fail_after(20):
        async with (
            serving(script) as server,
            open_remote_channels(server.url, KERNEL, token=TOKEN, iopub_buffer_bytes=500_000) as ch,
        ):
            await ch.send(ch.session.message("execute_request", channel="shell"))
            assert (await ch.shell.receive()).msg_type == "execute_reply"
            stats = ch.statistics().iopub
            assert stats.buffer_bytes == 500_000
            assert (stats.received, stats.dropped, stats.queued) == (11, 8, 3)
            # Two big messages fit (a third would pass the bound); the status is small.
            assert 400_000 < stats.queued_bytes < 500_000 + 10_000
            delivered = _drain(ch.iopub)
            assert [m.msg_type for m in delivered] == ["stream", "stream", "status"]
            assert [m.content["text"][0] for m in delivered[:2]] == ["0", "1"]


async def test_a_message_larger_than_the_byte_bound_is_kept_while_the_buffer_is_empty() -> None:
    huge = "x" * 600_000

    async def script(conn: FakeConnection) -> None:
        request = await conn.receive()
        for i in range(3):
            await conn.stream(f"{i}{huge}", request)
        await conn.status("idle", request)
        await conn.send(conn.session.reply(request, {"status": "ok"}))
        await conn.answer_forever()

    with trio.fail_after(20):
        async with (
            serving(script) as server,
            open_remote_channels(server.url, KERNEL, token=TOKEN, iopub_buffer_bytes=500_000) as ch,
        ):
            request = ch.session.message("execute_request", channel="shell")
            await ch.send(request)
            assert (await ch.shell.receive()).msg_type == "execute_reply"
            stats = ch.statistics().iopub
            # The first is larger than the bound but the buffer was empty: kept.
            assert (stats.received, stats.dropped, stats.queued) == (4, 2, 2)
            assert ch.iopub.dropped_for(request.msg_id) == 2
            delivered = _drain(ch.iopub)
            assert [m.msg_type for m in delivered] == ["stream", "status"]
            assert len(delivered[0].content["text"]) == 600_001


async def test_multiplexed_iopub_drops_and_ends_cleanly() -> None:
    async def script(conn: FakeConnection) -> None:
        request = await conn.receive()
        for i in range(50):
            await conn.stream(f"{i}\n", request)
        await conn.status("idle", request)
        await conn.send(conn.session.reply(request, {"status": "ok"}))
        await trio.sleep_forever()

    with trio.fail_after(20):
        async with serving(script) as server:
            async with open_remote_channels(
                server.url, KERNEL, token=TOKEN, multiplexed=True, iopub_buffer_size=5
            ) as ch:
                replied = trio.Event()

                def on_message(msg: Message) -> None:
                    if msg.channel == "shell":
                        replied.set()

                with ch.tap(on_message):  # called just before the message is queued
                    await ch.send(ch.session.message("execute_request", channel="shell"))
                    await replied.wait()
                received = _drain(ch.multiplexed)
                assert [m.msg_type for m in received] == ["stream"] * 5 + [
                    "status",
                    "execute_reply",
                ]
                stats = ch.statistics()
                assert (stats.iopub.received, stats.iopub.dropped) == (51, 45)
                assert stats.shell.received == 1
                # Arrives after the block's end: nothing to deliver, then EndOfChannel.
            with pytest.raises(trio.EndOfChannel):
                ch.multiplexed.receive_nowait()


async def test_invalid_iopub_buffer_bytes_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="iopub_buffer_bytes"):
        async with open_remote_channels("http://127.0.0.1:9/", KERNEL, iopub_buffer_bytes=0):
            pass  # pragma: no cover


async def test_server_side_close_reconnects_with_the_same_session() -> None:
    async def script(conn: FakeConnection) -> None:
        if conn.index == 1:
            await conn.ws.aclose()  # the server goes away (a proxy restart, ...)
            return
        await conn.answer_forever()

    with trio.fail_after(20):
        async with (
            serving(script) as server,
            open_remote_channels(server.url, KERNEL, token=TOKEN) as ch,
        ):
            # Sent while the link is down or reconnecting: waits, then goes out.
            await ch.send(ch.session.message("kernel_info_request", channel="shell"))
            assert (await ch.shell.receive()).msg_type == "kernel_info_reply"
            stats = ch.statistics().connection
            assert stats.connections == 2
            assert stats.drops == 1
            assert server.session_ids == [ch.session.session_id] * 2


async def test_a_slow_consumer_is_backpressure_not_a_dead_connection() -> None:
    async def script(conn: FakeConnection) -> None:
        request = await conn.receive()
        for i in range(50):
            await conn.send(
                conn.session.message(
                    "stream", {"name": "stdout", "text": f"{i}\n"}, parent=request, channel="iopub"
                )
            )
        await conn.send(conn.session.reply(request, {"status": "ok"}))
        await conn.answer_forever()

    with trio.fail_after(20):
        async with (
            serving(script) as server,
            open_remote_channels(
                server.url,
                KERNEL,
                token=TOKEN,
                iopub_buffer_size=5,
                iopub_overflow="wait",
                ping_interval=0.05,
            ) as ch,
        ):
            await ch.send(ch.session.message("execute_request", channel="shell"))
            # Read nothing for a while: the reader stalls on the full IOPub buffer, so
            # pongs queue behind unread messages for many ping intervals.
            with trio.move_on_after(1.0):
                await trio.sleep_forever()
            assert ch.statistics().iopub.stalls >= 1
            texts = [(await ch.iopub.receive()).content["text"] for _ in range(50)]
            assert texts == [f"{i}\n" for i in range(50)]  # nothing lost, nothing dropped
            assert (await ch.shell.receive()).msg_type == "execute_reply"
            assert ch.statistics().connection.drops == 0


async def test_rejected_frames_pin_nothing_and_may_have_no_channel() -> None:
    """As with ZeroMQ: a rejected frame's error keeps no traceback, cause or context (they
    would pin the decoder's frames and the whole input), and a frame too broken to tell its
    channel is reported with ``channel=None``."""

    async def script(conn: FakeConnection) -> None:
        await conn.send_raw("not json at all")
        await conn.send_raw('{"channel": "iopub", "header": {"msg_id": "1", "msg_type": ')
        await conn.answer_forever()

    with trio.fail_after(20):
        async with (
            serving(script, offer_v1=False) as server,
            open_remote_channels(server.url, KERNEL, token=TOKEN, report_rejects=True) as ch,
        ):
            rejects = [await ch.rejects.receive() for _ in range(2)]
            assert [r.channel for r in rejects] == [None, None]
            for reject in rejects:
                error = reject.error
                assert error.__traceback__ is None and error.__cause__ is None
                assert error.__context__ is None


async def test_send_nowait_sends_in_order_with_send() -> None:
    with trio.fail_after(20):
        async with (
            serving(FakeConnection.answer_forever) as server,
            open_remote_channels(server.url, KERNEL, token=TOKEN) as ch,
        ):
            first, second, third = (
                ch.session.message("kernel_info_request", channel="shell") for _ in range(3)
            )
            ch.shell.send_nowait(first)
            await ch.send(second)
            ch.send_nowait(third)
            replies = [await ch.shell.receive() for _ in range(3)]
            assert [r.parent_id for r in replies] == [first.msg_id, second.msg_id, third.msg_id]
            assert ch.statistics().shell.sent == 3
            with pytest.raises(LocalProtocolError, match="meant for"):
                ch.shell.send_nowait(ch.session.message("x", channel="control"))
        with pytest.raises(trio.ClosedResourceError):
            ch.send_nowait(first)


async def test_buffer_size_zero_means_one_as_in_every_opener() -> None:
    with trio.fail_after(20):
        async with (
            serving(FakeConnection.answer_forever) as server,
            open_remote_channels(
                server.url, KERNEL, token=TOKEN, buffer_size=0, iopub_buffer_size=0
            ) as ch,
        ):
            stats = ch.statistics()
            assert (stats.shell.buffer_size, stats.iopub.buffer_size) == (1, 1)


async def test_set_consumer_takes_the_place_of_its_own_view_only() -> None:
    got: list[Message] = []
    with trio.fail_after(20):
        async with (
            serving(FakeConnection.answer_forever) as server,
            open_remote_channels(server.url, KERNEL, token=TOKEN) as ch,
            open_remote_channels(server.url, KERNEL, token=TOKEN) as other,
        ):
            assert not ch.set_consumer("shell", got.append, view=other.shell)
            assert not ch.set_consumer("shell", got.append, view=ch.control)
            assert not ch.set_consumer("iopub", got.append, view=object())
            assert ch.set_consumer("shell", got.append, view=ch.shell)
            request = ch.session.message("kernel_info_request", channel="shell")
            await ch.shell.send(request)
            # One websocket, one reader: the reply is handed over before the idle after it.
            while (await ch.iopub.receive()).content.get("execution_state") != "idle":
                pass
            assert [m.parent_id for m in got] == [request.msg_id]
            assert ch.statistics().shell.queued == 0
            assert ch.set_consumer("shell", None, view=ch.shell)
            again = ch.session.message("kernel_info_request", channel="shell")
            await ch.shell.send(again)
            assert (await ch.shell.receive()).parent_id == again.msg_id
