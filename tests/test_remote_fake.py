"""Remote channels against a scripted fake server (trio-websocket on loopback): the cases a
real Jupyter Server will not produce on demand — malformed frames, server status messages,
floods, server-side closes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio
import trio_websocket

from trio_enchannel import KernelDied, Message, open_client
from trio_enchannel._remote._channels import open_remote_channels
from trio_enchannel._remote._errors import RemoteAuthenticationError, RemoteKernelNotFound
from trio_enchannel._remote._framing import V1_SUBPROTOCOL, decode_frame, encode_frame
from trio_enchannel._session import Session

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


async def _serve(nursery: trio.Nursery, script: Script, *, offer_v1: bool = True) -> FakeServer:
    server = FakeServer(script, offer_v1=offer_v1)
    await nursery.start(server.run)
    return server


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
        async with trio.open_nursery() as nursery:
            server = await _serve(nursery, script, offer_v1=offer_v1)
            async with open_remote_channels(
                server.url, KERNEL, token=TOKEN, report_rejects=True
            ) as ch:
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
            nursery.cancel_scope.cancel()


async def test_handshake_refusals_are_typed() -> None:
    async def script(conn: FakeConnection) -> None:
        await conn.answer_forever()  # pragma: no cover - never accepted

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            server = await _serve(nursery, script)
            with pytest.raises(RemoteAuthenticationError) as auth:
                async with open_remote_channels(server.url, KERNEL, token="nope"):
                    pass  # pragma: no cover
            assert auth.value.status_code == 403
            assert "nope" not in str(auth.value)
            with pytest.raises(RemoteKernelNotFound) as missing:
                async with open_remote_channels(server.url, "k2", token=TOKEN):
                    pass  # pragma: no cover
            assert missing.value.kernel_id == "k2"
            nursery.cancel_scope.cancel()


async def test_server_restarting_status_fails_pending_requests_only() -> None:
    async def script(conn: FakeConnection) -> None:
        if conn.index == 1:
            first = await conn.receive()  # the request that will never be answered
            await conn.status("busy", first)
            await conn.status("restarting")  # what Jupyter Server says when a kernel crashed
        await conn.answer_forever()

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            server = await _serve(nursery, script)
            async with (
                open_remote_channels(server.url, KERNEL, token=TOKEN) as ch,
                open_client(ch) as client,
            ):
                with pytest.raises(KernelDied, match="restarted"):
                    await client.kernel_info()
                assert ch.kernel_died is None
                info = await client.kernel_info()  # the restarted kernel answers
                assert info.reply.msg_type == "kernel_info_reply"
                # The channels reopened the websocket as a new session (the restarted kernel
                # may listen on new ports) and checked its messages flow before using it.
                assert server.connections == 2
                assert server.session_ids[0] != server.session_ids[1]
                assert ch.statistics().connection.drops == 0  # a planned reconnection
            nursery.cancel_scope.cancel()


async def test_server_dead_status_is_the_kernel_death() -> None:
    async def script(conn: FakeConnection) -> None:
        request = await conn.receive()
        await conn.status("busy", request)
        await conn.status("dead")
        await trio.sleep_forever()

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            server = await _serve(nursery, script)
            async with (
                open_remote_channels(server.url, KERNEL, token=TOKEN) as ch,
                open_client(ch) as client,
            ):
                with pytest.raises(KernelDied, match="dead"):
                    await client.kernel_info()
                died = await ch.wait_unresponsive()
                assert "dead" in died.reason
                assert ch.kernel_died is not None and ch.state == "dead"
                with pytest.raises(KernelDied):
                    await ch.send(ch.session.message("kernel_info_request", channel="shell"))
                with pytest.raises(KernelDied):
                    await client.kernel_info()
            nursery.cancel_scope.cancel()


async def test_iopub_flood_with_drop_never_holds_replies() -> None:
    async def script(conn: FakeConnection) -> None:
        request = await conn.receive()
        for i in range(200):
            await conn.send(
                conn.session.message(
                    "stream", {"name": "stdout", "text": f"{i}\n"}, parent=request, channel="iopub"
                )
            )
        await conn.send(conn.session.reply(request, {"status": "ok"}))
        await conn.answer_forever()

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            server = await _serve(nursery, script)
            async with open_remote_channels(
                server.url, KERNEL, token=TOKEN, iopub_buffer_size=10, iopub_overflow="drop"
            ) as ch:
                await ch.send(ch.session.message("execute_request", channel="shell"))
                reply = await ch.shell.receive()  # nobody reads IOPub: the reply still comes
                assert reply.msg_type == "execute_reply"
                stats = ch.statistics()
                assert stats.iopub.received == 200
                assert stats.iopub.queued == 10
                assert stats.iopub.dropped == 190
                first = await ch.iopub.receive()
                assert first.content["text"] == "0\n"  # the oldest kept, the newest dropped
            nursery.cancel_scope.cancel()


async def test_server_side_close_reconnects_with_the_same_session() -> None:
    async def script(conn: FakeConnection) -> None:
        if conn.index == 1:
            await conn.ws.aclose()  # the server goes away (a proxy restart, ...)
            return
        await conn.answer_forever()

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            server = await _serve(nursery, script)
            async with open_remote_channels(server.url, KERNEL, token=TOKEN) as ch:
                # Sent while the link is down or reconnecting: waits, then goes out.
                await ch.send(ch.session.message("kernel_info_request", channel="shell"))
                assert (await ch.shell.receive()).msg_type == "kernel_info_reply"
                stats = ch.statistics().connection
                assert stats.connections == 2
                assert stats.drops == 1
                assert server.session_ids == [ch.session.session_id] * 2
            nursery.cancel_scope.cancel()


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
        async with trio.open_nursery() as nursery:
            server = await _serve(nursery, script)
            async with open_remote_channels(
                server.url, KERNEL, token=TOKEN, iopub_buffer_size=5, ping_interval=0.05
            ) as ch:
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
            nursery.cancel_scope.cancel()
