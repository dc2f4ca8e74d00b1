"""KernelClient against the scripted fake kernel: faults the real kernels never show on
demand (dropped, duplicate, late and garbage replies, a kernel that dies or goes silent
mid-request), over real sockets."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests._polling import poll_until
from trio_enchannel import InputRequest, KernelDied, Message, open_channels, open_client
from trio_enchannel.testing import (
    CommMsg,
    CommOpen,
    DieMidRequest,
    DropReply,
    DuplicateReply,
    Error,
    FakeKernel,
    Gate,
    Input,
    Malformed,
    ReplyAfterIdle,
    StopHeartbeat,
    Stream,
    UpdateDisplayData,
)
from trio_enchannel.testing import DisplayData as FakeDisplay

TIMEOUT = 10


async def test_dropped_reply_times_out_cleanly_and_the_client_goes_on(
    fake_kernel: FakeKernel,
) -> None:
    fake_kernel.script("lost", Stream("stdout", "out\n"))
    fake_kernel.inject(DropReply())
    with trio.fail_after(TIMEOUT):
        async with open_client(fake_kernel.connection_info) as client:
            async with client.stream_execute("lost") as run:
                with trio.move_on_after(0.5) as waited:
                    await run.wait()
                assert waited.cancelled_caught
                assert run.reply is None  # outputs and idle came, the reply never did
                assert run.outputs.stream_text() == "out\n"
            assert client.statistics().pending == 0
            assert (await client.execute("next")).ok


async def test_duplicate_reply_is_kept_as_unclaimed(fake_kernel: FakeKernel) -> None:
    fake_kernel.inject(DuplicateReply(), msg_type="complete_request")
    fake_kernel.completions = ["alpha", "alphabet"]
    with trio.fail_after(TIMEOUT):
        async with open_client(fake_kernel.connection_info) as client:
            reply = await client.complete("alp")
            assert reply["matches"] == ["alpha", "alphabet"]
            duplicate = await client.unclaimed_replies.receive()
            assert duplicate.parent_id == reply.message.parent_id
            assert duplicate.msg_id != reply.message.msg_id
            assert client.statistics().pending == 0


async def test_garbage_instead_of_the_reply_is_rejected_not_delivered(
    fake_kernel: FakeKernel,
) -> None:
    fake_kernel.inject(Malformed("bad_json", replace=True))
    with trio.fail_after(TIMEOUT):
        async with open_client(fake_kernel.connection_info) as client:
            with trio.move_on_after(0.5) as waited:
                await client.execute("x")
            assert waited.cancelled_caught  # the only "reply" was garbage
            # Injected only now that IOPub is live (a SUB socket misses what is published
            # before its subscription reaches the kernel).
            fake_kernel.inject(Malformed("not_object", on="iopub"), msg_type="kernel_info_request")
            info = await client.kernel_info()
            assert info.implementation == "trio-enchannel-fake"
            channels: Any = client.channels
            # The garbage went out on IOPub before the reply on shell; the two sockets are
            # read independently, so the reply may be read first.
            await poll_until(lambda: channels.statistics().iopub.rejected_total > 0)
            stats = channels.statistics()
            assert stats.shell.rejected == {"bad_json": 1}
            assert stats.iopub.rejected == {"not_object": 1}
            assert client.statistics().unclaimed_replies == 0


async def test_a_rejected_output_of_an_execution_shows_on_its_result(
    fake_kernel: FakeKernel,
) -> None:
    """An authentic but malformed IOPub message of an execution is rejected (counted on the
    channel) and, since its parent header is readable, counted on the execution's result:
    its outputs are incomplete."""
    fake_kernel.script("x", Stream("stdout", "kept\n"))
    with trio.fail_after(TIMEOUT):
        async with open_client(fake_kernel.connection_info) as client:
            await client.wait_ready()
            fake_kernel.inject(Malformed("bad_json", on="iopub"), msg_type="execute_request")
            result = await client.execute("x")
            channels: Any = client.channels
            stats = channels.statistics().iopub
    assert result.ok and result.stdout == "kept\n"
    assert result.iopub_dropped == 1 and not result.complete
    assert stats.rejected == {"bad_json": 1} and stats.dropped == 0


async def test_reply_after_idle_still_collects_everything(fake_kernel: FakeKernel) -> None:
    fake_kernel.script(
        "show",
        FakeDisplay({"text/plain": "v1"}, display_id="d"),
        Stream("stdout", "10%\r"),
        Stream("stdout", "100%\n"),
        UpdateDisplayData({"text/plain": "v2"}, display_id="d"),
        Error("ValueError", "late", ["tb"]),
    )
    fake_kernel.inject(ReplyAfterIdle())
    with trio.fail_after(TIMEOUT):
        async with open_client(fake_kernel.connection_info) as client:
            result = await client.execute("show")
    assert result.status == "error"
    assert result.error is not None and result.error.ename == "ValueError"
    assert result.outputs == [
        {"output_type": "display_data", "data": {"text/plain": "v2"}, "metadata": {}},
        {"output_type": "stream", "name": "stdout", "text": "100%\n"},
        {"output_type": "error", "ename": "ValueError", "evalue": "late", "traceback": ["tb"]},
    ]
    # The reply came after idle, on another socket: the two may arrive in either order, and
    # the result waited for both.
    kinds = [m.msg_type for m in result.messages]
    assert kinds.count("execute_reply") == 1
    assert [m.content.get("execution_state") for m in result.messages if m.msg_type == "status"][
        -1
    ] == "idle"


async def test_death_mid_request_fails_promptly_keeping_what_arrived(
    fake_kernel: FakeKernel,
) -> None:
    fake_kernel.script("work()", Stream("stdout", "started\n"), Stream("stdout", "never\n"))
    fake_kernel.inject(DieMidRequest(after_steps=1))
    with trio.fail_after(TIMEOUT):
        async with open_client(
            fake_kernel.connection_info, hb_interval=0.05, hb_deadline=0.3
        ) as client:
            async with client.stream_execute("work()") as run:
                with pytest.raises(KernelDied, match="heartbeat"):
                    await run.wait()
                assert run.outputs.stream_text() == "started\n"
            with pytest.raises(KernelDied):
                await client.kernel_info()  # fails at once instead of waiting
            assert client.statistics().pending == 0


async def test_silent_heartbeat_fails_pending_and_recovery_is_noticed(
    fake_kernel: FakeKernel,
) -> None:
    gate = Gate()
    fake_kernel.script("hang()", gate)
    fake_kernel.inject(StopHeartbeat())
    with trio.fail_after(TIMEOUT):
        async with open_client(
            fake_kernel.connection_info, hb_interval=0.05, hb_deadline=0.3
        ) as client:
            with pytest.raises(KernelDied):
                await client.execute("hang()")
            fake_kernel.resume_heartbeat()
            gate.open()
            await client.channels.wait_responsive()
            # At once: not only after the client's own heartbeat watcher has run.
            assert (await client.execute("after")).ok


async def test_launcher_reported_death_fails_every_pending_request(
    fake_kernel: FakeKernel,
) -> None:
    gate = Gate()
    fake_kernel.script("slow()", gate)
    failures: list[BaseException] = []
    with trio.fail_after(TIMEOUT):
        async with open_client(fake_kernel.connection_info) as client:

            async def caller(kind: str) -> None:
                try:
                    if kind == "execute":
                        await client.execute("slow()")
                    else:
                        await client.kernel_info()
                except KernelDied as exc:
                    failures.append(exc)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(caller, "execute")
                await gate.wait_reached()
                for _ in range(3):
                    nursery.start_soon(caller, "info")  # queued behind the busy shell
                await trio.testing.wait_all_tasks_blocked()
                assert client.fail_pending(KernelDied("process exited with code -9")) == 4
            gate.open()
    assert len(failures) == 4 and {str(f) for f in failures} == {
        "kernel died: process exited with code -9"
    }


async def test_stdin_password_prompt(fake_kernel: FakeKernel) -> None:
    fake_kernel.script("login()", Input("user: "), Input("password: ", password=True, echo=False))
    seen: list[tuple[str, bool]] = []

    def answer(request: InputRequest) -> str:
        seen.append((request.prompt, request.password))
        return "secret" if request.password else "ada"

    with trio.fail_after(TIMEOUT):
        async with open_client(fake_kernel.connection_info, stdin=answer) as client:
            assert (await client.execute("login()")).ok
    assert seen == [("user: ", False), ("password: ", True)]
    assert fake_kernel.input_values == ["ada", "secret"]


async def test_kernel_opened_comm(fake_kernel: FakeKernel) -> None:
    fake_kernel.script(
        "widget()",
        CommOpen("w1", "jupyter.widget", {"state": 1}),
        CommMsg("w1", {"method": "update"}, buffers=[b"\x00\x01"]),
    )
    with trio.fail_after(TIMEOUT):
        async with open_client(fake_kernel.connection_info) as client:
            widgets = client.accept_comms("jupyter.widget")
            result = await client.execute("widget()")
            assert result.outputs == []  # comm traffic is not output
            comm = await widgets.receive()
            assert comm.open_message.content["data"] == {"state": 1}
            update = await comm.receive()
            assert update.content["data"] == {"method": "update"}
            assert bytes(update.buffers[0]) == b"\x00\x01"
            await comm.send({"method": "custom"})
            sent = await fake_kernel.wait_request("comm_msg")
            assert sent.content == {"comm_id": "w1", "data": {"method": "custom"}}
            await comm.aclose()
            closed = await fake_kernel.wait_request("comm_close")
            assert closed.content["comm_id"] == "w1"


async def test_subshell_request_is_tagged(fake_kernel: FakeKernel) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_client(fake_kernel.connection_info) as client:
            await client.wait_ready()
            async with client.open_subshell() as subshell:
                assert (await client.execute("x", subshell_id=subshell)).ok
                request = await fake_kernel.wait_request("execute_request")
                assert request.subshell_id == subshell
            assert await client.list_subshell() == []


async def test_replies_queued_before_the_client_are_routed_first_and_in_order(
    fake_kernel: FakeKernel,
) -> None:
    # The client's dispatcher takes the channels' messages straight from their reader; what
    # the channels had queued before it opened goes first, in order, and once the client
    # closes the channels queue again for their own receive().
    with trio.fail_after(TIMEOUT):
        async with open_channels(fake_kernel.connection_info) as ch:
            sent = [ch.session.message("kernel_info_request", channel="shell") for _ in range(2)]
            for msg in sent:
                await ch.shell.send(msg)
            await poll_until(lambda: ch.shell.statistics().queued == 2)
            async with open_client(ch) as client:
                info = await client.kernel_info()
                assert info.protocol_version
                early = [client.unclaimed_replies.receive_nowait() for _ in sent]
                assert [m.parent_id for m in early] == [m.msg_id for m in sent]
            after = ch.session.message("kernel_info_request", channel="shell")
            await ch.shell.send(after)
            assert (await ch.shell.receive()).parent_id == after.msg_id


async def test_channels_hand_messages_only_in_place_of_their_own_view(
    fake_kernel: FakeKernel,
) -> None:
    def ignore(msg: Message) -> None:
        raise AssertionError("never called")

    got: list[Message] = []
    with trio.fail_after(TIMEOUT):
        async with (
            open_channels(fake_kernel.connection_info) as ch,
            open_channels(fake_kernel.connection_info) as other,
        ):
            assert not ch.set_consumer("shell", ignore, view=ch.control)
            assert not ch.set_consumer("iopub", ignore, view=object())
            assert not ch.set_consumer("shell", ignore, view=other.shell)
            assert ch.set_consumer("shell", got.append, view=ch.shell)
            request = ch.session.message("kernel_info_request", channel="shell")
            await ch.shell.send(request)
            await poll_until(lambda: bool(got))
            assert [m.parent_id for m in got] == [request.msg_id]
            assert ch.shell.statistics().queued == 0
            assert ch.set_consumer("shell", None, view=ch.shell)
            again = ch.session.message("kernel_info_request", channel="shell")
            await ch.shell.send(again)
            assert (await ch.shell.receive()).parent_id == again.msg_id
        async with open_channels(fake_kernel.connection_info, multiplexed=True) as ch:
            assert not ch.set_consumer("shell", ignore, view=ch.shell)
