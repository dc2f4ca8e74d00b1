"""Tests of the testing kit: the fake kernel's scripts and faults, seen from a raw peer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import trio

from tests._raw_peer import RawPeer, open_raw_peer
from trio_enchannel import (
    ConnectionInfo,
    DuplicateSignature,
    InvalidSignature,
    KernelDied,
    MalformedMessage,
    Message,
    SignatureMismatch,
    UnsignedMessage,
    open_channels,
    open_client,
)
from trio_enchannel.testing import (
    ClearOutput,
    CommClose,
    CommMsg,
    CommOpen,
    DelayReply,
    DieMidRequest,
    DisplayData,
    DropReply,
    DuplicateReply,
    Error,
    FakeKernel,
    FloodIopub,
    ForgeSignature,
    Gate,
    Input,
    Malformed,
    Publish,
    ReplaySignature,
    ReplyAfterIdle,
    Result,
    Sleep,
    Status,
    StopHeartbeat,
    Stream,
    UpdateDisplayData,
    open_fake_kernel,
)

TIMEOUT = 15


async def execute(peer: RawPeer, code: str, **content: Any) -> Message:
    return await peer.request("execute_request", {"code": code, **content})


async def test_fixtures_give_a_running_kernel(
    fake_kernel: FakeKernel, fake_kernel_info: ConnectionInfo
) -> None:
    assert fake_kernel.is_alive
    assert fake_kernel_info == fake_kernel.connection_info
    assert fake_kernel.timeout == 10.0
    with trio.fail_after(TIMEOUT):
        async with open_raw_peer(fake_kernel_info) as peer:
            request = await peer.request("kernel_info_request")
            reply = await peer.receive("shell")
            assert reply.parent_id == request.msg_id
            assert reply.content["implementation"] == "trio-enchannel-fake"
            assert reply.content["protocol_version"] == "5.5"
            assert [m.content["execution_state"] for m in await peer.outputs(request)] == [
                "busy",
                "idle",
            ]
        assert (await fake_kernel.wait_request("kernel_info_request")).msg_id == (request.msg_id)


async def test_wait_for_request_and_subscriptions_are_deprecated_aliases(
    fake_kernel: FakeKernel,
) -> None:
    """Issue #14: waits are named wait_<what> everywhere; the documented old names work."""
    with trio.fail_after(TIMEOUT):
        async with open_raw_peer(fake_kernel.connection_info) as peer:
            with pytest.warns(DeprecationWarning, match="wait_subscriptions"):
                await fake_kernel.channels.wait_for_subscriptions(1)
            request = await peer.request("kernel_info_request", {})
        with pytest.warns(DeprecationWarning, match="wait_request"):
            got = await fake_kernel.wait_for_request("kernel_info_request")
        assert got.msg_id == request.msg_id


class TestFixtureOptions:
    """``fake_kernel_options`` can be overridden (here for one class)."""

    @pytest.fixture
    def fake_kernel_options(self) -> dict[str, Any]:
        return {"kernel_info": {"implementation": "custom"}, "key": ""}

    async def test_overridden(self, fake_kernel: FakeKernel) -> None:
        assert fake_kernel.connection_info.key == ""
        with trio.fail_after(TIMEOUT):
            async with open_raw_peer(fake_kernel.connection_info) as peer:
                await peer.request("kernel_info_request")
                assert (await peer.receive("shell")).content["implementation"] == "custom"


async def test_scripted_execution_in_order() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel() as kernel, open_raw_peer(kernel.connection_info) as peer:
            kernel.script(
                "show()",
                Stream("stdout", "out\n"),
                Stream("stderr", "err\n"),
                DisplayData({"text/plain": "d"}, display_id="disp"),
                UpdateDisplayData({"text/plain": "d2"}, display_id="disp"),
                ClearOutput(wait=True),
                CommOpen("c1", "target", {"x": 1}),
                CommMsg("c1", {"y": 2}, buffers=[b"raw"]),
                CommClose("c1"),
                Status("busy"),
                Publish("debug_event", {"event": "x"}),
                Sleep(0),
                Result({"text/plain": "42"}),
                reply={"payload": [{"source": "page", "data": {"text/plain": "p"}, "start": 0}]},
            )
            request = await execute(peer, "show()")
            outputs = await peer.outputs(request)
            assert [m.msg_type for m in outputs] == [
                "status",
                "execute_input",
                "stream",
                "stream",
                "display_data",
                "update_display_data",
                "clear_output",
                "comm_open",
                "comm_msg",
                "comm_close",
                "status",
                "debug_event",
                "execute_result",
                "status",
            ]
            by_type = {m.msg_type: m for m in outputs}
            assert outputs[2].content == {"name": "stdout", "text": "out\n"}
            assert by_type["display_data"].content["transient"] == {"display_id": "disp"}
            assert by_type["comm_msg"].buffers == (b"raw",)
            assert by_type["execute_result"].content["execution_count"] == 1
            assert by_type["execute_input"].content == {"code": "show()", "execution_count": 1}
            reply = await peer.receive("shell")
            assert reply.content["status"] == "ok"
            assert reply.content["execution_count"] == 1
            assert reply.content["payload"][0]["source"] == "page"
            assert kernel.comms == {}


async def test_error_reply_and_stop_on_error_aborts_queued() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel() as kernel, open_raw_peer(kernel.connection_info) as peer:
            gate = Gate()
            kernel.script("fail", gate, Error("ValueError", "bad", ["tb1", "tb2"]))
            failing = await execute(peer, "fail")
            await gate.wait_reached()
            queued = await execute(peer, "1")
            info = await peer.request("kernel_info_request")
            # Both arrived (and wait in the kernel's queue) before the failure completes.
            await kernel.wait_request("kernel_info_request")
            gate.open()
            replies = {}
            for _ in range(3):
                msg = await peer.receive("shell")
                replies[msg.parent_id] = msg
            assert replies[failing.msg_id].content == {
                "status": "error",
                "execution_count": 1,
                "ename": "ValueError",
                "evalue": "bad",
                "traceback": ["tb1", "tb2"],
            }
            assert replies[queued.msg_id].content["status"] == "aborted"
            assert replies[info.msg_id].msg_type == "kernel_info_reply"
            assert kernel.execution_count == 1


async def test_a_request_sent_after_idle_is_never_aborted() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel() as kernel, open_raw_peer(kernel.connection_info) as peer:
            kernel.script("fail", Error("ValueError", "bad"))
            for _ in range(20):
                failing = await execute(peer, "fail")
                await peer.outputs(failing)  # up to idle: the abort window is over
                after = await execute(peer, "fine")
                replies = {}
                for _ in range(2):
                    reply = await peer.receive("shell")
                    replies[reply.parent_id] = reply.content["status"]
                assert replies == {failing.msg_id: "error", after.msg_id: "ok"}
                await peer.outputs(after)


async def test_silent_execution_has_no_input_or_result() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel() as kernel, open_raw_peer(kernel.connection_info) as peer:
            kernel.script("x", Stream("stdout", "s"), Result({"text/plain": "1"}))
            request = await execute(peer, "x", silent=True)
            types = [m.msg_type for m in await peer.outputs(request)]
            assert types == ["status", "stream", "status"]
            assert kernel.execution_count == 0


async def test_input_request_round_trip_and_refusal() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel() as kernel, open_raw_peer(kernel.connection_info) as peer:
            kernel.script("ask", Input("name? ", password=True, echo=True))
            request = await execute(peer, "ask")
            asked = await peer.receive("stdin")
            assert asked.content == {"prompt": "name? ", "password": True}
            await peer.send("stdin", peer.message("input_reply", {"value": "ada"}, parent=asked))
            outputs = await peer.outputs(request)
            assert [m.content["text"] for m in outputs if m.msg_type == "stream"] == ["ada\n"]
            assert kernel.input_values == ["ada"]
            assert (await peer.receive("shell")).content["status"] == "ok"
            request = await execute(peer, "ask", allow_stdin=False)
            reply = await peer.receive("shell")
            assert reply.content["ename"] == "StdinNotImplementedError"


async def test_interrupt_cancels_a_running_execution() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel() as kernel, open_raw_peer(kernel.connection_info) as peer:
            gate = Gate()
            kernel.script("loop()", Stream("stdout", "started\n"), gate)
            request = await execute(peer, "loop()")
            await gate.wait_reached()
            await peer.request("interrupt_request", channel="control")
            assert (await peer.receive("control")).content == {"status": "ok"}
            reply = await peer.receive("shell")
            assert reply.parent_id == request.msg_id
            assert reply.content["status"] == "error"
            assert reply.content["ename"] == "KeyboardInterrupt"
            assert not gate.is_open


async def test_subshells_run_concurrently_with_the_main_shell() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel() as kernel, open_raw_peer(kernel.connection_info) as peer:
            await peer.request("create_subshell_request", channel="control")
            subshell_id = (await peer.receive("control")).content["subshell_id"]
            assert list(kernel.subshells) == [subshell_id]
            gate = Gate()
            kernel.script("block", gate)
            kernel.script("quick", Stream("stdout", "q"))
            blocked = await execute(peer, "block")
            await gate.wait_reached()
            quick = peer.message(
                "execute_request", {"code": "quick"}, subshell_id=subshell_id, channel="shell"
            )
            await peer.send("shell", quick)
            reply = await peer.receive("shell")
            assert reply.parent_id == quick.msg_id  # answered while the main shell is busy
            assert reply.header.subshell_id == subshell_id
            gate.open()
            assert (await peer.receive("shell")).parent_id == blocked.msg_id
            await peer.request("list_subshell_request", channel="control")
            assert (await peer.receive("control")).content["subshell_id"] == [subshell_id]
            await peer.request(
                "delete_subshell_request", {"subshell_id": subshell_id}, channel="control"
            )
            assert (await peer.receive("control")).content["status"] == "ok"
            unknown = peer.message(
                "execute_request", {"code": "x"}, subshell_id=subshell_id, channel="shell"
            )
            await peer.send("shell", unknown)
            assert (await peer.receive("shell")).content["ename"] == "SubshellNotFound"


async def test_other_requests() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel() as kernel, open_raw_peer(kernel.connection_info) as peer:
            kernel.completions = ["alpha", "alphabet", "beta"]
            kernel.inspections = {"alpha": {"text/plain": "the alpha"}}
            kernel.comm_targets.add("known")

            async def ask(msg_type: str, content: dict[str, Any], channel: Any = "shell") -> Any:
                await peer.request(msg_type, content, channel=channel)
                return (await peer.receive(channel)).content

            completed = await ask("complete_request", {"code": "x = alp", "cursor_pos": 7})
            assert completed["matches"] == ["alpha", "alphabet"]
            assert (completed["cursor_start"], completed["cursor_end"]) == (4, 7)
            inspected = await ask("inspect_request", {"code": "alpha(", "cursor_pos": 2})
            assert inspected["found"] and inspected["data"] == {"text/plain": "the alpha"}
            assert not (await ask("inspect_request", {"code": "zeta", "cursor_pos": 4}))["found"]
            for code, status in (("a", "complete"), ("f(", "incomplete"), ("f)", "invalid")):
                assert (await ask("is_complete_request", {"code": code}))["status"] == status
            for code in ("one", "two", "three"):
                await execute(peer, code)
                await peer.receive("shell")
            tail = await ask("history_request", {"hist_access_type": "tail", "n": 2})
            assert tail["history"] == [[1, 2, "two"], [1, 3, "three"]]
            ranged = await ask(
                "history_request", {"hist_access_type": "range", "start": 1, "stop": 2}
            )
            assert ranged["history"] == [[1, 1, "one"]]
            found = await ask("history_request", {"hist_access_type": "search", "pattern": "t*"})
            assert [h[2] for h in found["history"]] == ["two", "three"]
            # comms: a known target stays open, an unknown one is closed at once.
            await peer.request("comm_open", {"comm_id": "k", "target_name": "known", "data": {}})
            unknown = await peer.request(
                "comm_open", {"comm_id": "u", "target_name": "nope", "data": {}}
            )
            closes = [m for m in await peer.outputs(unknown) if m.msg_type == "comm_close"]
            assert [m.content["comm_id"] for m in closes] == ["u"]
            comms = await ask("comm_info_request", {})
            assert comms["comms"] == {"k": {"target_name": "known"}}
            assert (await ask("kernel_info_request", {}, "control"))["status"] == "ok"
            debug = await ask("debug_request", {"seq": 3, "command": "initialize"}, "control")
            assert debug["success"] is False
            assert debug["request_seq"] == 3
            await peer.request("shutdown_request", {"restart": False}, channel="control")
            assert (await peer.receive("control")).content == {"status": "ok", "restart": False}
            await kernel.wait_dead()
            assert kernel.shut_down
            assert not kernel.died
            assert not kernel.is_alive


# -- faults ---------------------------------------------------------------------------------


async def test_delay_reply() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel() as kernel, open_raw_peer(kernel.connection_info) as peer:
            kernel.inject(DelayReply(0.2))
            start = trio.current_time()
            request = await execute(peer, "x")
            reply = await peer.receive("shell")
            assert reply.parent_id == request.msg_id
            assert trio.current_time() - start >= 0.2
            assert kernel.faults_applied == [DelayReply(0.2)]


async def test_drop_reply_keeps_outputs() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel() as kernel, open_raw_peer(kernel.connection_info) as peer:
            kernel.inject(DropReply())
            kernel.script("x", Stream("stdout", "still here"))
            dropped = await execute(peer, "x")
            outputs = await peer.outputs(dropped)
            assert "still here" in [m.content.get("text") for m in outputs]
            follow = await peer.request("kernel_info_request")
            assert (await peer.receive("shell")).parent_id == follow.msg_id


async def test_duplicate_reply() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel() as kernel, open_raw_peer(kernel.connection_info) as peer:
            kernel.inject(DuplicateReply(), msg_type="kernel_info_request")
            request = await peer.request("kernel_info_request")
            first, second = await peer.receive("shell"), await peer.receive("shell")
            assert first.parent_id == second.parent_id == request.msg_id
            assert first.msg_id != second.msg_id
            assert first.content == second.content


async def test_reply_after_idle() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel() as kernel, open_raw_peer(kernel.connection_info) as peer:
            kernel.inject(ReplyAfterIdle())
            request = await execute(peer, "x")
            await peer.outputs(request)
            assert (await peer.receive("shell")).parent_id == request.msg_id
            kinds = [m.msg_type for m in kernel.sent if m.parent_id == request.msg_id]
            assert kinds[-2:] == ["status", "execute_reply"]


@pytest.mark.parametrize(
    "reason",
    ["missing_delimiter", "too_few_frames", "bad_json", "not_object", "bad_utf8", "bad_header"],
)
async def test_malformed_reply(reason: Any) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel() as kernel, open_raw_peer(kernel.connection_info) as peer:
            kernel.inject(Malformed(reason))
            request = await execute(peer, "x")
            with pytest.raises(MalformedMessage) as caught:
                await peer.receive("shell")
            # Invalid UTF-8 is repaired; outside a string what is left is not JSON.
            assert caught.value.reason == ("bad_json" if reason == "bad_utf8" else reason)
            assert (await peer.receive("shell")).parent_id == request.msg_id


async def test_malformed_custom_frames_replacing_the_reply() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel() as kernel, open_raw_peer(kernel.connection_info) as peer:
            kernel.inject(Malformed(frames=[b"junk", b"more"], replace=True))
            request = await execute(peer, "x")
            assert await peer.frames("shell") == [b"junk", b"more"]
            await peer.outputs(request)
            follow = await peer.request("kernel_info_request")
            assert (await peer.receive("shell")).parent_id == follow.msg_id


async def test_malformed_on_iopub() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel() as kernel, open_raw_peer(kernel.connection_info) as peer:
            kernel.inject(Malformed("bad_json", on="iopub"))
            kernel.script("x", Stream("stdout", "kept"))
            request = await execute(peer, "x")
            for expected in ("status", "execute_input"):
                assert (await peer.receive("iopub")).msg_type == expected
            with pytest.raises(MalformedMessage):
                await peer.receive("iopub")
            stream = await peer.receive("iopub")
            assert stream.content["text"] == "kept"
            assert stream.parent_id == request.msg_id


@pytest.mark.parametrize(
    ("fault", "error"),
    [(ForgeSignature(), InvalidSignature), (ForgeSignature(unsigned=True), UnsignedMessage)],
)
async def test_forged_reply_is_rejected(fault: ForgeSignature, error: type[Exception]) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel() as kernel, open_raw_peer(kernel.connection_info) as peer:
            kernel.inject(fault)
            request = await execute(peer, "x")
            with pytest.raises(error):
                await peer.receive("shell")
            await peer.outputs(request)
            assert not any(m.msg_type == "execute_reply" for m in kernel.sent)


async def test_forged_output() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel() as kernel, open_raw_peer(kernel.connection_info) as peer:
            kernel.inject(ForgeSignature(on="iopub"))
            kernel.script("x", Stream("stdout", "forged"), Stream("stdout", "real"))
            request = await execute(peer, "x")
            await peer.receive("iopub")  # busy
            await peer.receive("iopub")  # execute_input
            with pytest.raises(InvalidSignature):
                await peer.receive("iopub")
            assert (await peer.receive("iopub")).content["text"] == "real"
            assert (await peer.receive("shell")).parent_id == request.msg_id


async def test_replayed_reply_is_a_duplicate() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel() as kernel, open_raw_peer(kernel.connection_info) as peer:
            kernel.inject(ReplaySignature())
            request = await execute(peer, "x")
            first = await peer.frames("shell")
            second = await peer.frames("shell")
            assert first == second
            assert peer.session.deserialize(first).parent_id == request.msg_id
            with pytest.raises(DuplicateSignature):
                peer.session.deserialize(second)


async def test_flood_iopub() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel() as kernel, open_raw_peer(kernel.connection_info) as peer:
            kernel.inject(FloodIopub(500))
            request = await execute(peer, "x")
            outputs = await peer.outputs(request)
            assert sum(m.msg_type == "stream" for m in outputs) == 500
            assert (await peer.receive("shell")).parent_id == request.msg_id


async def test_stop_heartbeat() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel() as kernel, open_raw_peer(kernel.connection_info) as peer:
            await peer.ping(b"before")
            assert await peer.pong() == b"before"
            kernel.inject(StopHeartbeat(), msg_type="kernel_info_request")
            await peer.request("kernel_info_request")
            await peer.receive("shell")
            await peer.ping(b"lost")
            await kernel.channels.wait_heartbeats(2)
            assert kernel.statistics().heartbeats_dropped == 1
            kernel.resume_heartbeat()
            await peer.ping(b"after")
            assert await peer.pong() == b"after"
            kernel.stop_heartbeat()
            assert kernel.channels.heartbeat_paused


async def wait_port_free(port: int) -> None:
    """Wait until nothing listens on ``port`` (libzmq closes listeners in its I/O thread)."""
    while True:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                pass
            else:
                return
        await trio.sleep(0.01)


@pytest.mark.parametrize("after_steps", [0, 1])
async def test_die_mid_request(after_steps: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel() as kernel, open_raw_peer(kernel.connection_info) as peer:
            info = kernel.connection_info
            kernel.script("x", Stream("stdout", "one"), Stream("stdout", "two"))
            kernel.inject(DieMidRequest(after_steps=after_steps))
            request = await execute(peer, "x")
            await kernel.wait_dead()
            assert kernel.died
            assert not kernel.is_alive
            texts = [m.content.get("text") for m in kernel.sent if m.parent_id == request.msg_id]
            assert texts[2:] == ["one"][:after_steps]
            assert not any(m.msg_type == "execute_reply" for m in kernel.sent)
            for name in ("shell", "iopub", "hb"):
                await wait_port_free(info.port(name))
            await kernel.die()  # idempotent


async def test_die_at_any_time() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel(transport="ipc") as kernel:
            await kernel.die()
            assert kernel.died
            with pytest.raises(trio.ClosedResourceError):
                await kernel.channels.publish("status", {"execution_state": "idle"})


async def test_faults_apply_to_the_matching_requests_only() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel() as kernel, open_raw_peer(kernel.connection_info) as peer:
            kernel.inject(DropReply(), msg_type="complete_request", times=2)
            with pytest.raises(ValueError):
                kernel.inject(DropReply(), times=0)
            for _ in range(3):
                await peer.request("complete_request", {"code": "", "cursor_pos": 0})
            info = await peer.request("kernel_info_request")
            first = await peer.receive("shell")
            assert first.msg_type == "complete_reply"  # the third one
            assert (await peer.receive("shell")).parent_id == info.msg_id
            assert kernel.faults_applied == [DropReply(), DropReply()]


async def test_fault_values_validate() -> None:
    with pytest.raises(ValueError):
        DelayReply(-1)
    with pytest.raises(ValueError):
        FloodIopub(-1)
    with pytest.raises(ValueError):
        DieMidRequest(after_steps=-1)
    await trio.lowlevel.checkpoint()


def test_plugin_fixtures_in_a_fresh_pytest(tmp_path: Path) -> None:
    """The pytest11 entry point gives any project the fixtures (no conftest needed)."""
    test_file = tmp_path / "test_uses_fixture.py"
    test_file.write_text(
        textwrap.dedent(
            """
            import trio
            from trio_enchannel.testing import Stream

            async def test_it(fake_kernel, fake_kernel_info, fake_kernel_timeout):
                assert fake_kernel.connection_info == fake_kernel_info
                fake_kernel.script("x", Stream("stdout", "y"))
                assert fake_kernel_timeout == 10.0
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "trio_mode=true",
            str(test_file),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


# -- the same faults, observed through open_channels / open_client --------------------------


async def test_client_sees_welcome_and_scripted_outputs(fake_kernel: FakeKernel) -> None:
    fake_kernel.script("go", Stream("stdout", "a"), Result({"text/plain": "1"}))
    fake_kernel.script("ask", Input("? "))
    with trio.fail_after(TIMEOUT):
        async with open_channels(fake_kernel.connection_info) as channels:
            await channels.wait_iopub_ready()
            assert fake_kernel.statistics().welcomes_sent == 1
            assert not any(r.msg_type == "kernel_info_request" for r in fake_kernel.requests)
            async with open_client(channels, stdin=lambda request: "typed") as client:
                result = await client.execute("go")
                assert result.status == "ok"
                assert result.stdout == "a"
                assert result.execution_count == 1
                assert (await client.execute("ask")).status == "ok"
        assert fake_kernel.input_values == ["typed"]


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (Malformed("missing_delimiter"), "missing_delimiter"),
        (Malformed("too_few_frames"), "too_few_frames"),
        (Malformed("bad_json"), "bad_json"),
        (Malformed("not_object"), "not_object"),
        (Malformed("bad_utf8"), "bad_json"),  # repaired, then not JSON
        (Malformed("bad_header"), "bad_header"),
        (ReplaySignature(), "duplicate_signature"),
    ],
)
async def test_client_rejects_bad_frames_and_keeps_the_real_reply(
    fake_kernel: FakeKernel, fault: Any, reason: str
) -> None:
    fake_kernel.inject(fault)
    with trio.fail_after(TIMEOUT):
        async with open_client(fake_kernel.connection_info, report_rejects=True) as client:
            result = await client.execute("x")
            assert result.status == "ok"
            rejected = await client.channels.rejects.receive()  # type: ignore[attr-defined]
            assert (rejected.channel, rejected.reason) == ("shell", reason)
            stats = client.channels.statistics()  # type: ignore[attr-defined]
            assert stats.shell.rejected == {reason: 1}


async def test_client_never_accepts_a_forged_reply(fake_kernel: FakeKernel) -> None:
    fake_kernel.inject(ForgeSignature(), ForgeSignature(on="iopub"))
    fake_kernel.script("x", Stream("stdout", "forged"), Stream("stdout", "real"))
    with trio.fail_after(TIMEOUT):
        async with open_client(fake_kernel.connection_info, report_rejects=True) as client:
            with pytest.raises(SignatureMismatch):  # rejected, and the request is told
                await client.execute("x")
            reasons = sorted(
                [(await client.channels.rejects.receive()).channel for _ in range(2)]  # type: ignore[attr-defined]
            )
            assert reasons == ["iopub", "shell"]
            # The kernel goes on: the next request is answered.
            assert (await client.execute("y")).status == "ok"


async def test_client_survives_duplicate_and_late_replies(fake_kernel: FakeKernel) -> None:
    fake_kernel.inject(DuplicateReply(), ReplyAfterIdle())
    fake_kernel.inject(DelayReply(0.1), msg_type="kernel_info_request")
    with trio.fail_after(TIMEOUT):
        async with open_client(fake_kernel.connection_info) as client:
            first = await client.execute("one")
            assert first.status == "ok"
            info = await client.kernel_info()
            assert info.reply.content["implementation"] == "trio-enchannel-fake"
            fake_kernel.inject(FloodIopub(300))
            flooded = await client.execute("two")
            assert flooded.stdout == "flood\n" * 300
            assert client.channels.statistics().rejected_total == 0  # type: ignore[attr-defined]


async def test_client_notices_a_stopped_heartbeat(fake_kernel: FakeKernel) -> None:
    fake_kernel.inject(StopHeartbeat(), msg_type="kernel_info_request")
    with trio.fail_after(TIMEOUT):
        async with open_channels(
            fake_kernel.connection_info, hb_interval=0.05, hb_deadline=0.3
        ) as channels:
            async with open_client(channels) as client:
                await client.kernel_info()
            died = await channels.wait_unresponsive()
            assert "heartbeat" in died.reason


async def test_client_fails_fast_when_the_kernel_dies(fake_kernel: FakeKernel) -> None:
    fake_kernel.script("work()", Stream("stdout", "started\n"), Stream("stdout", "never\n"))
    fake_kernel.inject(DieMidRequest(after_steps=1))
    with trio.fail_after(TIMEOUT):
        async with open_client(
            fake_kernel.connection_info, hb_interval=0.05, hb_deadline=0.3
        ) as client:
            with pytest.raises(KernelDied):
                await client.execute("work()")
    assert fake_kernel.died


def test_plugin_checks_the_fake_kernel_options_fixture(tmp_path: Path) -> None:
    """An overridden ``fake_kernel_options`` is checked (names and values) before the fake
    kernel starts: the test fails with a typed error naming the fixture and the
    option."""
    test_file = tmp_path / "test_bad_options.py"
    test_file.write_text(
        textwrap.dedent(
            """
            import pytest

            BAD = {
                "not_a_dict": [("transport", "ipc")],
                "unknown": {"transprot": "ipc"},
                "bad_type": {"exit_on_shutdown": "yes"},
                "bad_value": {"transport": "udp"},
            }

            @pytest.fixture(params=sorted(BAD))
            def fake_kernel_options(request):
                return BAD[request.param]

            async def test_it(fake_kernel):
                pass
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "trio_mode=true",
            str(test_file),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = result.stdout + result.stderr
    assert "4 failed" in result.stdout, out
    assert "TypeError: the fake_kernel_options fixture must be a dict" in out
    assert "TypeError: the fake_kernel_options fixture: unknown option 'transprot'" in out
    assert "TypeError: fake_kernel_options['exit_on_shutdown']" in out
    assert "ConfigurationError: fake_kernel_options['transport']" in out


def test_fake_kernel_options_defaults_are_open_fake_kernels() -> None:
    import inspect

    from trio_enchannel.testing._plugin import _FAKE_KERNEL_DEFAULTS

    params = inspect.signature(open_fake_kernel).parameters.values()
    assert {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY} == {
        **_FAKE_KERNEL_DEFAULTS,
        "wait_timeout": 10.0,
    }
