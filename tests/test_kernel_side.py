"""Tests of the kernel side (open_kernel_channels), against raw peers and jupyter_client."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
import trio
import trio.testing

from tests._polling import poll_until
from tests._raw_peer import open_raw_peer
from trio_enchannel import (
    ConnectionInfo,
    LocalProtocolError,
    Session,
)
from trio_enchannel._io._zmq import curve_keypair, has_curve
from trio_enchannel._kernel._side import KernelChannels, open_kernel_channels
from trio_enchannel._wire._session import DELIMITER

TIMEOUT = 15

KERNEL_INFO: dict[str, Any] = {
    "status": "ok",
    "protocol_version": "5.5",
    "implementation": "test",
    "implementation_version": "1.0",
    "language_info": {"name": "test", "version": "1", "mimetype": "text/plain"},
    "banner": "",
    "help_links": [],
}


async def serve_kernel_info(kc: KernelChannels) -> None:
    """A tiny kernel: answers kernel_info and echoes execute code as a stream."""
    async for request in kc.shell:
        async with kc.busy(request):
            if request.msg_type == "kernel_info_request":
                await kc.reply(request, KERNEL_INFO)
            elif request.msg_type == "execute_request":
                code = request.content["code"]
                if code == "input":
                    value = await kc.input_request(request, "? ")
                    await kc.publish("stream", {"name": "stdout", "text": value}, parent=request)
                else:
                    await kc.publish("stream", {"name": "stdout", "text": code}, parent=request)
                await kc.reply(
                    request,
                    {"status": "ok", "execution_count": 1, "user_expressions": {}, "payload": []},
                )


async def test_reply_goes_back_to_the_client_that_asked() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_kernel_channels() as kc, trio.open_nursery() as nursery:
            nursery.start_soon(serve_kernel_info, kc)
            info = kc.connection_info
            async with open_raw_peer(info) as a, open_raw_peer(info) as b:
                req_a = await a.request("kernel_info_request")
                req_b = await b.request("kernel_info_request")
                reply_b = await b.receive("shell")
                reply_a = await a.receive("shell")
                assert reply_a.parent_id == req_a.msg_id
                assert reply_b.parent_id == req_b.msg_id
                assert reply_a.msg_type == "kernel_info_reply"
                assert reply_a.header.session == kc.session.session_id
                # Nothing else is waiting for either client.
                for peer in (a, b):
                    with pytest.raises(trio.WouldBlock):
                        peer.frames_nowait("shell")
            stats = kc.statistics()
            assert stats.shell.received == 2
            assert stats.shell.sent == 2
            assert stats.rejected_total == 0
            nursery.cancel_scope.cancel()


async def test_requests_keep_identities_and_channel() -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            open_kernel_channels() as kc,
            open_raw_peer(kc.connection_info, identity=b"client-1") as peer,
        ):
            sent = await peer.request("comm_info_request", {}, channel="control")
            received = await kc.control.receive()
            assert received.identities == (b"client-1",)
            assert received.channel == "control"
            assert received.msg_id == sent.msg_id
            reply = await kc.reply(received, {"status": "ok", "comms": {}})
            assert reply.channel == "control"
            got = await peer.receive("control")
            assert got.msg_type == "comm_info_reply"
            assert got.parent_header["msg_id"] == sent.msg_id


async def test_iopub_welcome_for_each_subscriber() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_kernel_channels() as kc:
            info = kc.connection_info
            async with open_raw_peer(info, wait_welcome=False) as first:
                welcome = await first.receive("iopub")
                assert welcome.msg_type == "iopub_welcome"
                assert welcome.content == {"subscription": ""}
                assert welcome.parent_header == {}
                # A second subscriber to the same (empty) topic is welcomed too (XPUB_VERBOSE).
                async with open_raw_peer(info, wait_welcome=False) as second:
                    assert (await second.receive("iopub")).msg_type == "iopub_welcome"
                # A topic subscription is welcomed under that topic.
                async with open_raw_peer(info, topic=b"kernel.", wait_welcome=False) as third:
                    welcome = await third.receive("iopub")
                    assert welcome.content == {"subscription": "kernel."}
            stats = kc.statistics()
            assert stats.welcomes_sent == 3
            assert stats.subscriptions == 3


async def test_iopub_welcome_can_be_disabled() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_kernel_channels(iopub_welcome=False) as kc:
            async with open_raw_peer(kc.connection_info, wait_welcome=False) as peer:
                await kc.wait_subscriptions(1)
                await kc.publish("status", {"execution_state": "idle"})
                assert (await peer.receive("iopub")).msg_type == "status"
            assert kc.statistics().welcomes_sent == 0


async def test_publish_uses_topics() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_kernel_channels() as kc:
            info = kc.connection_info
            async with open_raw_peer(info, topic=b"custom.", wait_welcome=True) as peer:
                await kc.publish("stream", {"name": "stdout", "text": "skipped"})
                await kc.publish("stream", {"name": "stdout", "text": "seen"}, topic=b"custom.x")
                frames = await peer.frames("iopub")
                assert frames[0] == b"custom.x"
                msg = peer.session.deserialize(frames)
                assert msg.content["text"] == "seen"
            async with open_raw_peer(info) as peer:
                published = await kc.publish("status", {"execution_state": "idle"})
                frames = await peer.frames("iopub")
                assert frames[0] == f"kernel.{kc.session.session_id}.status".encode()
                assert peer.session.deserialize(frames).msg_id == published.msg_id


async def test_heartbeat_echoes_and_pauses() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_kernel_channels() as kc:
            async with open_raw_peer(kc.connection_info) as peer:
                await peer.ping(b"ping-1")
                assert await peer.pong() == b"ping-1"
                kc.pause_heartbeat()
                assert kc.heartbeat_paused
                await peer.ping(b"dropped")
                # The ping is dropped: once resumed, the next echo is the next ping.
                await kc.wait_heartbeats(2)
                kc.resume_heartbeat()
                await peer.ping(b"ping-2")
                assert await peer.pong() == b"ping-2"
            stats = kc.statistics()
            assert stats.heartbeats_echoed == 2
            assert stats.heartbeats_dropped == 1


async def test_heartbeat_can_be_off() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_kernel_channels(heartbeat=False) as kc:
            assert kc.statistics().heartbeats_echoed == 0


async def test_rejects_are_counted_and_reported() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_kernel_channels(report_rejects=True) as kc:
            async with open_raw_peer(kc.connection_info, identity=b"bad-client") as peer:
                msg = peer.message("kernel_info_request")
                frames = [bytes(f) for f in peer.session.serialize(msg, ())]
                forged = list(frames)
                forged[1] = b"0" * len(frames[1])
                await peer.send_frames("shell", forged)
                await peer.send_frames("shell", [b"no delimiter"])
                await peer.send_frames("shell", frames[:3])
                await peer.send_frames("shell", frames)  # valid
                await peer.send_frames("shell", frames)  # a replay
                unsigned = list(frames)
                unsigned[1] = b""
                await peer.send_frames("control", unsigned)
                good = await kc.shell.receive()
                assert good.msg_id == msg.msg_id
                reasons = []
                for _ in range(5):
                    reject = await kc.rejects.receive()
                    # The raw frames start with the sender's routing identity.
                    assert bytes(reject.frames[0]) == b"bad-client"
                    reasons.append((reject.channel, reject.reason))
                assert sorted(reasons) == sorted(
                    [
                        ("shell", "invalid_signature"),
                        ("shell", "missing_delimiter"),
                        ("shell", "too_few_frames"),
                        ("shell", "duplicate_signature"),
                        ("control", "unsigned"),
                    ]
                )
            stats = kc.statistics()
            assert stats.shell.rejected == {
                "invalid_signature": 1,
                "missing_delimiter": 1,
                "too_few_frames": 1,
                "duplicate_signature": 1,
            }
            assert stats.control.rejected == {"unsigned": 1}
            assert stats.shell.received == 1
            assert stats.rejected_total == 5
            assert stats["control"] is stats.control
            assert stats.rejects_unreported == 0
            assert kc.endpoint("shell") is kc.shell and kc.endpoint("stdin") is kc.stdin
            assert kc.endpoint("control") is kc.control and kc.endpoint("iopub") is kc.iopub


async def test_invalid_utf8_in_a_request_is_repaired_counted_and_delivered() -> None:
    # As jupyter_client does on both sides: decoded as U+FFFD, not rejected.
    with trio.fail_after(TIMEOUT):
        async with open_kernel_channels(report_rejects=True) as kc:
            async with open_raw_peer(kc.connection_info) as peer:
                msg = peer.message("execute_request", {"code": "a|b"})
                frames = [bytes(f) for f in peer.session.serialize(msg, ())]
                h, p, m, c = frames[2:6]
                c = c.replace(b"a|b", b"a\xffb")
                await peer.send_frames(
                    "shell", [DELIMITER, peer.session.sign((h, p, m, c)), h, p, m, c]
                )
                got = await kc.shell.receive()
            assert got.msg_id == msg.msg_id and got.content["code"] == "a\ufffdb"
            stats = kc.statistics()
            assert stats.shell.invalid_utf8 == 1 and stats.rejected_total == 0


async def test_a_keyless_kernel_counts_signed_requests_as_unverified() -> None:
    # Mirrors the client's count: a kernel without a key accepts a signed request (as
    # jupyter_client does) and counts it; an unsigned one is not counted.
    with trio.fail_after(TIMEOUT):
        async with open_kernel_channels(key="") as kc:
            signing = Session("client-key")
            async with open_raw_peer(
                kc.connection_info, session=signing, wait_welcome=False
            ) as peer:
                await peer.request("kernel_info_request")
                assert (await kc.shell.receive()).msg_type == "kernel_info_request"
                unsigned = Session("").message("kernel_info_request", channel="shell")
                frames = [bytes(f) for f in Session("").serialize(unsigned, ())]
                await peer.send_frames("shell", frames)
                assert (await kc.shell.receive()).msg_id == unsigned.msg_id
            stats = kc.statistics()
            assert stats.shell.unverified == 1 and stats.shell.received == 2


async def test_input_request_reaches_the_asking_client_only() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_kernel_channels() as kc, trio.open_nursery() as nursery:
            nursery.start_soon(serve_kernel_info, kc)
            info = kc.connection_info
            async with open_raw_peer(info) as asker, open_raw_peer(info) as other:
                request = await asker.request("execute_request", {"code": "input"})
                input_request = await asker.receive("stdin")
                assert input_request.msg_type == "input_request"
                assert input_request.content == {"prompt": "? ", "password": False}
                assert input_request.parent_id == request.msg_id
                with pytest.raises(trio.WouldBlock):
                    other.frames_nowait("stdin")
                await asker.send(
                    "stdin",
                    asker.message("input_reply", {"value": "forty-two"}, parent=input_request),
                )
                outputs = await asker.outputs(request)
                assert [m.content.get("text") for m in outputs if m.msg_type == "stream"] == [
                    "forty-two"
                ]
                assert (await asker.receive("shell")).content["status"] == "ok"
                # jupyter_client answers without a parent header: matched by identity.
                request = await asker.request("execute_request", {"code": "input"})
                await asker.receive("stdin")
                await asker.send("stdin", asker.message("input_reply", {"value": "no parent"}))
                outputs = await asker.outputs(request)
                assert "no parent" in [m.content.get("text") for m in outputs]
            nursery.cancel_scope.cancel()


async def test_input_request_refused_without_stdin() -> None:
    session = Session()
    request = session.message(
        "execute_request", {"code": "", "allow_stdin": False}, identities=(b"x",)
    )
    async with open_kernel_channels() as kc:
        with pytest.raises(LocalProtocolError, match="stdin"):
            await kc.input_request(request)
        with pytest.raises(LocalProtocolError, match="identities"):
            await kc.input_request(session.message("execute_request", {"code": ""}))


async def test_local_errors_before_the_wire() -> None:
    async with open_kernel_channels() as kc:
        no_route = kc.session.message("kernel_info_reply", {}, channel="shell")
        with pytest.raises(LocalProtocolError, match="identities"):
            await kc.shell.send(no_route)
        wrong = kc.session.message("status", {}, channel="iopub", identities=(b"x",))
        with pytest.raises(LocalProtocolError, match="iopub"):
            await kc.shell.send(wrong)
        with pytest.raises(LocalProtocolError, match="channel"):
            await kc.send(kc.session.message("status", {}))
        with pytest.raises(LocalProtocolError, match="JSON"):
            await kc.publish("stream", {"text": float("nan")})
        stats = kc.statistics()
        assert stats.shell.sent == 0
        assert stats.iopub.sent == 0


async def test_busy_publishes_idle_even_on_error() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_kernel_channels() as kc, open_raw_peer(kc.connection_info) as peer:
            parent = peer.message("execute_request", {"code": ""})
            with pytest.raises(RuntimeError):
                async with kc.busy(parent):
                    raise RuntimeError("boom")
            with trio.CancelScope() as scope:
                async with kc.busy(parent):
                    scope.cancel()
                    await trio.sleep_forever()
            states = [(await peer.receive("iopub")).content["execution_state"] for _ in "1234"]
            assert states == ["busy", "idle", "busy", "idle"]


async def test_close_is_clean_and_ports_are_released() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_kernel_channels() as kc:
            info = kc.connection_info
            assert all(
                info.port(name) != 0 for name in ("shell", "iopub", "stdin", "control", "hb")
            )
        assert kc.closed
        with pytest.raises(trio.EndOfChannel):
            await kc.shell.receive()
        with pytest.raises(trio.ClosedResourceError):
            await kc.publish("status", {"execution_state": "idle"})
        with pytest.raises(trio.ClosedResourceError):
            await kc.wait_subscriptions()
        # The same ports can be bound again (once libzmq's I/O thread released them).
        while True:
            try:
                async with open_kernel_channels(info) as again:
                    assert again.connection_info == info
                    break
            except OSError:
                await trio.sleep(0.01)


async def test_abort_closes_at_once() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_kernel_channels() as kc:
            info = kc.connection_info
            kc.abort()
            kc.abort()
            with pytest.raises(trio.ClosedResourceError):
                await kc.publish("status", {"execution_state": "idle"})
            # Nothing listens any more (libzmq closes listeners in its own thread: poll).
            while True:
                with socket.socket() as probe:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    try:
                        probe.bind(("127.0.0.1", info.shell_port))
                        break
                    except OSError:
                        pass
                await trio.sleep(0.01)


async def test_endpoint_aclose() -> None:
    async with open_kernel_channels() as kc:
        await kc.stdin.aclose()
        await kc.stdin.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await kc.stdin.receive()
        await kc.iopub.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await kc.publish("status", {"execution_state": "idle"})


async def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        info = ConnectionInfo(
            shell_port=port, iopub_port=0, stdin_port=0, control_port=0, hb_port=0
        )
        with pytest.raises(OSError, match="in use"):
            async with open_kernel_channels(info):
                pass  # pragma: no cover


async def test_ipc_transport() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_kernel_channels(transport="ipc") as kc, trio.open_nursery() as nursery:
            nursery.start_soon(serve_kernel_info, kc)
            info = kc.connection_info
            assert info.transport == "ipc"
            async with open_raw_peer(info) as peer:
                request = await peer.request("kernel_info_request")
                assert (await peer.receive("shell")).parent_id == request.msg_id
            nursery.cancel_scope.cancel()
        assert not any(path.exists() for path in info.ipc_paths())


async def test_unsigned_connection() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_kernel_channels(key="") as kc, trio.open_nursery() as nursery:
            nursery.start_soon(serve_kernel_info, kc)
            async with open_raw_peer(kc.connection_info) as peer:
                request = await peer.request("kernel_info_request")
                frames = await peer.frames("shell")
                assert frames[frames.index(DELIMITER) + 1] == b""
                assert peer.session.deserialize(frames).parent_id == request.msg_id
            nursery.cancel_scope.cancel()


@pytest.mark.skipif(not has_curve(), reason="libzmq without CurveZMQ")
async def test_curve_encryption() -> None:
    public, secret = curve_keypair()
    info = ConnectionInfo(
        shell_port=0,
        iopub_port=0,
        stdin_port=0,
        control_port=0,
        hb_port=0,
        key="k",
        curve_publickey=public,
        curve_secretkey=secret,
    )
    with trio.fail_after(TIMEOUT):
        async with open_kernel_channels(info) as kc:
            bound = kc.connection_info
            client_public, client_secret = curve_keypair()
            from trio_enchannel._io._zmq import TrioSocket

            with TrioSocket("DEALER", linger=0) as dealer:
                dealer.set_curve_client(public, public_key=client_public, secret_key=client_secret)
                dealer.connect(bound.url("shell"))
                session = Session("k")
                msg = session.message("kernel_info_request", {})
                await dealer.send_multipart(session.serialize(msg))
                received = await kc.shell.receive()
                assert received.msg_id == msg.msg_id
            # A client without the server key never gets through.
            with TrioSocket("DEALER", linger=0) as plain:
                plain.connect(bound.url("shell"))
                await plain.send_multipart(session.serialize(session.message("x_request")))
                with trio.move_on_after(0.2):
                    await kc.shell.receive()
                    pytest.fail("an unencrypted client reached the kernel")


# -- jupyter_client as an independent client ----------------------------------------------


def _blocking_sessions(info: ConnectionInfo, names: list[str]) -> dict[str, dict[str, Any]]:
    # All clients are connected at once (so the kernel must route by identity), then used in
    # turn from this one thread: jupyter_client's blocking clients share an event-loop runner
    # that is not safe to drive from two threads at the same time.
    from jupyter_client.blocking.client import BlockingKernelClient

    clients = {}
    for name in names:
        client = BlockingKernelClient()
        client.load_connection_info(info.to_dict())  # type: ignore[arg-type]
        client.start_channels()
        clients[name] = client
    try:
        results: dict[str, dict[str, Any]] = {}
        for name, client in clients.items():
            reply = client.kernel_info(reply=True, timeout=TIMEOUT)
            outputs: list[dict[str, Any]] = []
            execute = client.execute_interactive(name, timeout=TIMEOUT, output_hook=outputs.append)
            asked = client.execute_interactive(
                "input",
                timeout=TIMEOUT,
                output_hook=outputs.append,
                stdin_hook=lambda msg, c=client, n=name: c.input(f"answer-{n}"),
            )
            results[name] = {
                "kernel_info": reply["content"],
                "execute": execute["content"],
                "asked": asked["content"],
                "streams": [m["content"]["text"] for m in outputs if m["msg_type"] == "stream"],
                "beating": client.hb_channel.is_beating(),
            }
        return results
    finally:
        for client in clients.values():
            client.stop_channels()


@pytest.mark.kernel
async def test_jupyter_client_blocking_clients_are_routed() -> None:
    with trio.fail_after(TIMEOUT * 2):
        async with open_kernel_channels() as kc, trio.open_nursery() as nursery:
            nursery.start_soon(serve_kernel_info, kc)
            info = kc.connection_info
            results = await trio.to_thread.run_sync(_blocking_sessions, info, ["one", "two"])
            for name in ("one", "two"):
                result = results[name]
                assert result["kernel_info"]["implementation"] == "test"
                assert result["execute"]["status"] == "ok"
                assert result["asked"]["status"] == "ok"
                assert result["streams"] == [name, f"answer-{name}"]
                assert result["beating"]
            assert kc.statistics().rejected_total == 0
            nursery.cancel_scope.cancel()


def _async_client(info: ConnectionInfo) -> tuple[dict[str, Any], list[str]]:
    from jupyter_client.asynchronous.client import AsyncKernelClient

    async def main() -> tuple[dict[str, Any], list[str]]:
        client = AsyncKernelClient()
        client.load_connection_info(info.to_dict())  # type: ignore[arg-type]
        client.start_channels()
        try:
            msg_id = client.execute("via-asyncio")
            reply: dict[str, Any] = await client.get_shell_msg(timeout=TIMEOUT)
            assert reply["parent_header"]["msg_id"] == msg_id
            types: list[str] = []
            while True:
                msg = await client.get_iopub_msg(timeout=TIMEOUT)
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                types.append(msg["msg_type"])
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    return reply["content"], types
        finally:
            client.stop_channels()

    return asyncio.run(main())


@pytest.mark.kernel
async def test_jupyter_client_async_client() -> None:
    with trio.fail_after(TIMEOUT * 2):
        async with open_kernel_channels() as kc, trio.open_nursery() as nursery:
            nursery.start_soon(serve_kernel_info, kc)
            content, types = await trio.to_thread.run_sync(_async_client, kc.connection_info)
            assert content["status"] == "ok"
            assert types == ["status", "stream", "status"]
            nursery.cancel_scope.cancel()


async def test_rejects_are_opt_in_and_bounded() -> None:
    async with open_kernel_channels() as kc:
        with pytest.raises(RuntimeError, match="report_rejects"):
            _ = kc.rejects
    with trio.fail_after(TIMEOUT):
        async with (
            open_kernel_channels(report_rejects=True, rejects_buffer_size=1) as kc,
            open_raw_peer(kc.connection_info) as peer,
        ):
            for _ in range(3):
                await peer.send_frames("shell", [b"garbage"])
            await peer.request("kernel_info_request")
            await kc.shell.receive()  # the readers handled the garbage before it
            stats = kc.statistics()
            assert stats.shell.rejected == {"missing_delimiter": 3}
            assert stats.rejects_unreported == 2
            assert (await kc.rejects.receive()).reason == "missing_delimiter"


async def test_backpressure_and_discarded_requests() -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            open_kernel_channels(buffer_size=1, report_rejects=True) as kc,
            open_raw_peer(kc.connection_info) as peer,
        ):
            first = await peer.request("kernel_info_request")
            second = await peer.request("kernel_info_request")
            third = await peer.request("kernel_info_request")
            # The reader waits for the application when the buffer is full; nothing is lost.
            # (Consume only once it waits: a receive already waiting when a request arrives
            # takes it straight from the reader, leaving the buffer empty.)
            await poll_until(lambda: kc.shell.statistics().stalls >= 1)
            assert [(await kc.shell.receive()).msg_id for _ in range(3)] == [
                first.msg_id,
                second.msg_id,
                third.msg_id,
            ]
            stats = kc.shell.statistics()
            assert stats.stalls >= 1
            assert stats.buffer_size == 1
            assert stats.received == 3
            # After the application closes an endpoint, its requests are counted as discarded.
            await kc.control.aclose()
            await peer.request("kernel_info_request", channel="control")
            await peer.send_frames("control", [b"garbage"])  # read after the request
            assert (await kc.rejects.receive()).channel == "control"
            control = kc.control.statistics()
            assert (control.received, control.discarded) == (1, 1)


async def test_input_request_waits_for_a_late_stdin_connection() -> None:
    from trio_enchannel._io._zmq import TrioSocket

    with trio.fail_after(TIMEOUT):
        async with open_kernel_channels() as kc:
            session = Session.from_connection_info(kc.connection_info)
            parent = session.message("execute_request", {"code": ""}, identities=(b"late",))
            answers: list[str] = []
            async with trio.open_nursery() as nursery:

                async def ask() -> None:
                    answers.append(await kc.input_request(parent, "late? "))

                nursery.start_soon(ask)
                await trio.testing.wait_all_tasks_blocked()
                with TrioSocket("DEALER", linger=0) as stdin:
                    stdin.set_identity(b"late")
                    stdin.connect(kc.connection_info.url("stdin"))
                    request = session.deserialize(await stdin.receive_multipart())
                    reply = session.message("input_reply", {"value": "here"}, parent=request)
                    await stdin.send_multipart(session.serialize(reply))
            assert answers == ["here"]


async def test_input_request_to_a_client_without_stdin() -> None:
    async with open_kernel_channels() as kc:
        parent = kc.session.message("execute_request", {"code": ""}, identities=(b"ghost",))
        with pytest.raises(trio.BrokenResourceError, match="not connected"):
            await kc.input_request(parent, connect_grace=0.05)
        # Other stdin sends are refused the same way, never silently dropped.
        stray = kc.session.message("input_request", {}, channel="stdin", identities=(b"x",))
        with pytest.raises(trio.BrokenResourceError, match="not connected"):
            await kc.stdin.send(stray)


async def test_a_second_client_reusing_an_identity_takes_it_over() -> None:
    # jupyter_client's km.client() shares the manager's session, whose id is the routing
    # identity of every DEALER socket: two clients with one identity are normal. Like
    # ipykernel, the kernel hands the identity over to the newest connection (ROUTER_HANDOVER)
    # instead of ignoring it, so the new client gets its replies.
    with trio.fail_after(TIMEOUT):
        async with open_kernel_channels() as kc, trio.open_nursery() as nursery:
            nursery.start_soon(serve_kernel_info, kc)
            info = kc.connection_info
            async with open_raw_peer(info, identity=b"shared") as first:
                request = await first.request("kernel_info_request")
                assert (await first.receive("shell")).parent_id == request.msg_id
                async with open_raw_peer(info, identity=b"shared") as second:
                    for channel in ("shell", "control"):
                        request = await second.request("kernel_info_request", channel=channel)
                        if channel == "control":
                            received = await kc.control.receive()
                            await kc.reply(received, KERNEL_INFO)
                        reply = await second.receive(channel)
                        assert reply.parent_id == request.msg_id
                    request = await second.request("execute_request", {"code": "input"})
                    asked = await second.receive("stdin")
                    assert asked.msg_type == "input_request"
                    await second.send(
                        "stdin", second.message("input_reply", {"value": "v"}, parent=asked)
                    )
                    reply = await second.receive("shell")
                    assert reply.parent_id == request.msg_id
            nursery.cancel_scope.cancel()


class _BuggySession(Session):
    """A session whose decoder has a bug: it fails on ``buggy_request`` with a KeyError."""

    def deserialize(self, frames: Any, *, channel: Any = None) -> Any:
        msg = super().deserialize(frames, channel=channel)
        if msg.msg_type == "buggy_request":
            raise KeyError("a decoder bug")
        return msg


async def test_a_decoding_bug_is_rejected_and_the_reader_goes_on() -> None:
    """As on the client side: an unexpected exception while decoding one message rejects it
    (reason ``undecodable``, counted and reported) and the reader keeps reading."""
    with trio.fail_after(TIMEOUT):
        session = _BuggySession(key=b"k")
        async with (
            open_kernel_channels(key="k", session=session, report_rejects=True) as kc,
            open_raw_peer(kc.connection_info) as peer,
        ):
            buggy = peer.session.serialize(peer.message("buggy_request"), ())
            await peer.send_frames("shell", [bytes(f) for f in buggy])
            good = peer.message("kernel_info_request")
            await peer.send_frames("shell", [bytes(f) for f in peer.session.serialize(good, ())])
            assert (await kc.shell.receive()).msg_id == good.msg_id
            reject = await kc.rejects.receive()
            assert (reject.channel, reject.reason) == ("shell", "undecodable")
            assert reject.error.__traceback__ is None
            stats = kc.statistics()
            assert stats.shell.rejected == {"undecodable": 1}
            assert stats.rejected_total == 1 and stats.shell.received == 1


async def test_buffer_size_zero_means_one_as_in_every_opener() -> None:
    async with open_kernel_channels(buffer_size=0) as kc:
        assert kc.statistics().shell.buffer_size == 1
        assert kc.shell.statistics().buffer_size == 1
