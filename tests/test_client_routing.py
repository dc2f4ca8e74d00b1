"""KernelClient routing, stdin, comms, readiness and failure, over in-memory channels.

The kernel end here is scripted by each test through plain trio memory channels, so every
interleaving (reply before idle, replies out of order, late and duplicate replies, a kernel
that dies mid-request) is produced deterministically, without sockets.
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from trio_enchannel import (
    InputRequest,
    KernelClient,
    KernelDied,
    KernelError,
    LocalProtocolError,
    Message,
    Session,
    open_client,
)


class Duplex(trio.abc.Channel[Message]):
    """One end of a bidirectional in-memory message channel."""

    def __init__(
        self, send: trio.MemorySendChannel[Message], receive: trio.MemoryReceiveChannel[Message]
    ) -> None:
        self._send = send
        self._receive = receive

    async def send(self, value: Message) -> None:
        await self._send.send(value)

    async def receive(self) -> Message:
        return await self._receive.receive()

    def receive_nowait(self) -> Message:
        return self._receive.receive_nowait()

    async def aclose(self) -> None:
        await self._send.aclose()
        await self._receive.aclose()


def duplex_pair() -> tuple[Duplex, Duplex]:
    a_send, b_recv = trio.open_memory_channel[Message](math.inf)
    b_send, a_recv = trio.open_memory_channel[Message](math.inf)
    return Duplex(a_send, a_recv), Duplex(b_send, b_recv)


@attrs.define
class MemoryChannels:
    """The client's side: what KernelClient needs, plus a scriptable heartbeat."""

    session: Session
    shell: Duplex
    control: Duplex
    stdin: Duplex
    iopub: trio.MemoryReceiveChannel[Message]
    iopub_ready: bool = True  # like Channels.iopub_ready: the subscription is known live
    unresponsive: trio.Event = attrs.field(factory=trio.Event)
    responsive: trio.Event = attrs.field(factory=trio.Event)

    async def wait_unresponsive(self) -> None:
        await self.unresponsive.wait()

    async def wait_responsive(self) -> None:
        await self.responsive.wait()


@attrs.define
class Kernel:
    """The kernel's side, driven by the test."""

    session: Session
    shell: Duplex
    control: Duplex
    stdin: Duplex
    iopub_send: trio.MemorySendChannel[Message]

    async def publish(self, parent: Message | None, msg_type: str, **content: Any) -> Message:
        msg = self.session.message(msg_type, content, parent=parent, channel="iopub")
        await self.iopub_send.send(msg)
        return msg

    async def status(self, parent: Message | None, state: str) -> None:
        await self.publish(parent, "status", execution_state=state)

    async def reply(self, request: Message, **content: Any) -> Message:
        msg = self.session.reply(request, content)
        await (self.control if request.channel == "control" else self.shell).send(msg)
        return msg

    async def answer_kernel_info(self, request: Message) -> None:
        await self.status(request, "busy")
        await self.reply(
            request,
            status="ok",
            protocol_version="5.5",
            implementation="memory",
            implementation_version="1",
            language_info={"name": "python"},
            banner="",
            supported_features=["kernel subshells"],
        )
        await self.status(request, "idle")


def memory_pair() -> tuple[MemoryChannels, Kernel]:
    c_shell, k_shell = duplex_pair()
    c_control, k_control = duplex_pair()
    c_stdin, k_stdin = duplex_pair()
    iopub_send, iopub_recv = trio.open_memory_channel[Message](math.inf)
    return (
        MemoryChannels(Session("k"), c_shell, c_control, c_stdin, iopub_recv),
        Kernel(Session("k"), k_shell, k_control, k_stdin, iopub_send),
    )


@pytest.fixture
async def pair() -> AsyncIterator[tuple[KernelClient, Kernel]]:
    channels, kernel = memory_pair()
    async with open_client(channels) as client:
        yield client, kernel


# -- requests and replies -----------------------------------------------------------------


async def test_execute_gathers_outputs_and_reply(pair: tuple[KernelClient, Kernel]) -> None:
    client, kernel = pair

    async def kernel_side() -> None:
        req = await kernel.shell.receive()
        assert req.msg_type == "execute_request"
        assert req.content["code"] == "print(1)"
        assert req.content["allow_stdin"] is False  # no handler: the kernel must not prompt
        await kernel.status(req, "busy")
        await kernel.publish(req, "execute_input", code="print(1)", execution_count=1)
        await kernel.publish(req, "stream", name="stdout", text="1")
        await kernel.publish(req, "stream", name="stdout", text="\n")
        await kernel.reply(req, status="ok", execution_count=1)  # reply before idle
        await kernel.publish(req, "display_data", data={"text/plain": "x"}, metadata={})
        await kernel.status(req, "idle")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(kernel_side)
        with trio.fail_after(5):
            result = await client.execute("print(1)")
    assert result.ok and result.execution_count == 1
    assert result.outputs == [
        {"output_type": "stream", "name": "stdout", "text": "1\n"},
        {"output_type": "display_data", "data": {"text/plain": "x"}, "metadata": {}},
    ]
    assert [m.msg_type for m in result.messages] == [
        "status",
        "execute_input",
        "stream",
        "stream",
        "execute_reply",
        "display_data",
        "status",
    ]
    assert client.statistics().pending == 0


async def test_execute_waits_for_reply_after_idle(pair: tuple[KernelClient, Kernel]) -> None:
    client, kernel = pair
    async with trio.open_nursery() as nursery:

        async def kernel_side() -> None:
            req = await kernel.shell.receive()
            await kernel.status(req, "busy")
            await kernel.publish(req, "error", ename="E", evalue="v", traceback=["t"])
            await kernel.status(req, "idle")
            await trio.testing.wait_all_tasks_blocked()
            await kernel.reply(req, status="error", ename="E", evalue="v", traceback=["t"])

        nursery.start_soon(kernel_side)
        with trio.fail_after(5):
            result = await client.execute("raise E")
    assert result.status == "error"
    assert result.error is not None and result.error.ename == "E"


async def test_raise_on_error(pair: tuple[KernelClient, Kernel]) -> None:
    client, kernel = pair

    async def kernel_side() -> None:
        req = await kernel.shell.receive()
        await kernel.reply(req, status="error", ename="NameError", evalue="x", traceback=[])
        await kernel.status(req, "idle")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(kernel_side)
        with trio.fail_after(5), pytest.raises(KernelError) as info:
            await client.execute("x", raise_on_error=True)
    assert (info.value.ename, info.value.evalue) == ("NameError", "x")


async def test_aborted_reply_without_idle_finishes(pair: tuple[KernelClient, Kernel]) -> None:
    client, kernel = pair

    async def kernel_side() -> None:
        req = await kernel.shell.receive()
        await kernel.reply(req, status="aborted")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(kernel_side)
        with trio.fail_after(5):
            result = await client.execute("1")
    assert result.status == "aborted"


async def test_concurrent_requests_get_their_own_replies_out_of_order(
    pair: tuple[KernelClient, Kernel],
) -> None:
    client, kernel = pair
    n = 100

    async def kernel_side() -> None:
        # Collect every request first, then answer them in a random order, interleaving
        # the outputs of different requests.
        requests = [await kernel.shell.receive() for _ in range(n)]
        random.Random(4).shuffle(requests)
        for req in requests:
            await kernel.status(req, "busy")
        for req in requests:
            if req.msg_type == "execute_request":
                code = req.content["code"]
                await kernel.publish(req, "stream", name="stdout", text=code)
                await kernel.reply(req, status="ok", execution_count=int(code))
            else:
                await kernel.reply(req, status="ok", implementation=req.msg_id)
        for req in requests:
            await kernel.status(req, "idle")

    results: dict[int, Any] = {}

    async def caller(i: int) -> None:
        if i % 3 == 0:
            info = await client.kernel_info()
            results[i] = info.implementation
        else:
            results[i] = await client.execute(str(i))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(kernel_side)
        with trio.fail_after(10):
            async with trio.open_nursery() as callers:
                for i in range(n):
                    callers.start_soon(caller, i)
    for i, got in results.items():
        if i % 3 == 0:
            assert isinstance(got, str) and got  # its own msg_id came back
        else:
            assert got.execution_count == i and got.stdout == str(i)
    assert len({v for k, v in results.items() if k % 3 == 0}) == len(range(0, n, 3))
    stats = client.statistics()
    assert stats.pending == 0 and stats.unclaimed_replies == 0 and stats.unclaimed_iopub == 0


async def test_unclaimed_replies_and_iopub_are_kept(pair: tuple[KernelClient, Kernel]) -> None:
    client, kernel = pair
    stranger = kernel.session.message("execute_request", {"code": ""}, channel="shell")
    await kernel.reply(stranger, status="ok", execution_count=9)
    await kernel.publish(stranger, "stream", name="stdout", text="other client")
    await kernel.publish(None, "iopub_welcome", subscription="")
    with trio.fail_after(5):
        reply = await client.unclaimed_replies.receive()
        assert reply.parent_id == stranger.msg_id
        assert (await client.unclaimed_iopub.receive()).msg_type == "stream"
        assert (await client.unclaimed_iopub.receive()).msg_type == "iopub_welcome"


async def test_send_without_waiting_puts_the_reply_in_unclaimed(
    pair: tuple[KernelClient, Kernel],
) -> None:
    client, kernel = pair
    msg = client.session.message("kernel_info_request", channel="shell")
    with trio.fail_after(5):
        await client.send(msg)
        await kernel.answer_kernel_info(await kernel.shell.receive())
        reply = await client.unclaimed_replies.receive()
    assert reply.parent_id == msg.msg_id
    with pytest.raises(LocalProtocolError):
        await client.send(client.session.message("kernel_info_request"))  # no channel


async def test_unclaimed_store_is_bounded_and_counts_drops() -> None:
    channels, kernel = memory_pair()
    async with open_client(channels, unclaimed_buffer=3) as client:
        for i in range(5):
            await kernel.publish(None, "stream", name="stdout", text=str(i))
        await trio.testing.wait_all_tasks_blocked()
        stats = client.statistics()
        assert (stats.unclaimed_iopub, stats.unclaimed_iopub_dropped) == (3, 2)
        assert client.unclaimed_iopub.receive_nowait().content["text"] == "2"


async def test_cancelled_request_cleans_up_and_late_reply_is_unclaimed(
    pair: tuple[KernelClient, Kernel],
) -> None:
    client, kernel = pair
    with trio.move_on_after(0.01):
        await client.complete("pri")
    assert client.statistics().pending == 0
    req = await kernel.shell.receive()
    await kernel.status(req, "busy")
    await kernel.reply(req, status="ok", matches=["print"], cursor_start=0, cursor_end=3)
    await kernel.status(req, "idle")
    with trio.fail_after(5):
        late = await client.unclaimed_replies.receive()
    assert late.parent_id == req.msg_id
    await trio.testing.wait_all_tasks_blocked()
    stats = client.statistics()
    assert stats.unclaimed_iopub == 0 and stats.late_dropped == 2  # busy + idle


async def test_duplicate_reply_goes_to_unclaimed(pair: tuple[KernelClient, Kernel]) -> None:
    client, kernel = pair

    async def kernel_side() -> None:
        req = await kernel.shell.receive()
        await kernel.reply(req, status="ok", found=False, data={}, metadata={})
        await kernel.reply(req, status="ok", found=True, data={}, metadata={})

    async with trio.open_nursery() as nursery:
        nursery.start_soon(kernel_side)
        with trio.fail_after(5):
            reply = await client.inspect("x")
            duplicate = await client.unclaimed_replies.receive()
    assert reply["found"] is False
    assert duplicate.content["found"] is True


async def test_requests_use_spec_names_and_channels(pair: tuple[KernelClient, Kernel]) -> None:
    client, kernel = pair
    seen: list[Message] = []

    async def answer(channel: Duplex, count: int) -> None:
        for _ in range(count):
            req = await channel.receive()
            seen.append(req)
            extra: dict[str, Any] = {}
            if req.msg_type == "create_subshell_request":
                extra["subshell_id"] = "sub-1"
            if req.msg_type == "list_subshell_request":
                extra["subshell_id"] = ["sub-1"]
            if req.msg_type == "kernel_info_request":
                extra["supported_features"] = ["kernel subshells"]
            await kernel.reply(req, status="ok", **extra)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer, kernel.shell, 6)
        nursery.start_soon(answer, kernel.control, 8)
        with trio.fail_after(5):
            await client.inspect("abc", detail_level=1, subshell_id="s")
            await client.complete("abc", 2)
            await client.history(hist_access_type="tail", n=3)
            await client.is_complete("for")
            await client.comm_info("t")
            await client.kernel_info()
            await client.kernel_info(channel="control")
            await client.shutdown(restart=True)
            await client.interrupt()
            await client.debug_request("initialize", {"clientID": "x"})
            assert await client.create_subshell() == "sub-1"
            assert await client.list_subshell() == ["sub-1"]
            await client.delete_subshell("sub-1")
            await client.request(client.session.message("connect_request", channel="control"))
    by_type = {m.msg_type: m for m in seen}
    assert by_type["inspect_request"].content == {"code": "abc", "cursor_pos": 3, "detail_level": 1}
    assert by_type["inspect_request"].subshell_id == "s"
    assert by_type["complete_request"].content == {"code": "abc", "cursor_pos": 2}
    assert by_type["history_request"].content == {
        "hist_access_type": "tail",
        "output": False,
        "raw": True,
        "n": 3,
    }
    assert by_type["comm_info_request"].content == {"target_name": "t"}
    assert by_type["shutdown_request"].channel == "control"
    assert by_type["shutdown_request"].content == {"restart": True}
    assert by_type["debug_request"].content == {
        "type": "request",
        "seq": 1,
        "command": "initialize",
        "arguments": {"clientID": "x"},
    }
    assert by_type["delete_subshell_request"].content == {"subshell_id": "sub-1"}
    assert [m.channel for m in seen if m.msg_type == "kernel_info_request"] == ["shell", "control"]


async def test_request_needs_a_request_channel(pair: tuple[KernelClient, Kernel]) -> None:
    client, _ = pair
    with pytest.raises(LocalProtocolError):
        await client.request(client.session.message("kernel_info_request", channel="iopub"))


# -- stream_execute -----------------------------------------------------------------------


async def test_stream_execute_yields_messages_as_they_arrive(
    pair: tuple[KernelClient, Kernel],
) -> None:
    client, kernel = pair
    got: list[str] = []
    async with trio.open_nursery() as nursery:
        with trio.fail_after(5):
            async with client.stream_execute("loop") as run:
                req = await kernel.shell.receive()
                assert req.msg_id == run.msg_id
                await kernel.status(req, "busy")
                await kernel.publish(req, "stream", name="stdout", text="a")
                got.append((await run.receive()).msg_type)
                msg = await run.receive()
                got.append(msg.content["text"])  # delivered before the request finished
                assert run.reply is None
                with pytest.raises(RuntimeError):
                    run.result  # noqa: B018
                await kernel.reply(req, status="ok", execution_count=1)
                await kernel.status(req, "idle")
                async for msg in run:
                    got.append(msg.msg_type)
                nursery.cancel_scope.cancel()
    assert got == ["status", "a", "status"]
    assert run.result.stdout == "a"


async def test_leaving_a_stream_early_stops_tracking(pair: tuple[KernelClient, Kernel]) -> None:
    client, kernel = pair
    with trio.fail_after(5):
        async with client.stream_execute("x") as run:
            req = await kernel.shell.receive()
            await kernel.status(req, "busy")
            await run.receive()
    assert client.statistics().pending == 0
    await kernel.publish(req, "stream", name="stdout", text="late")
    with trio.fail_after(5):
        assert (await client.unclaimed_iopub.receive()).content["text"] == "late"


# -- stdin --------------------------------------------------------------------------------


async def run_with_prompt(
    client: KernelClient, kernel: Kernel, password: bool = False, **kwargs: Any
) -> tuple[Any, Message, Message]:
    """Execute; the kernel prompts once, then reports the answer. Returns (result or
    exception, execute_request, input_reply)."""
    box: dict[str, Any] = {}

    async def kernel_side() -> None:
        req = await kernel.shell.receive()
        box["req"] = req
        await kernel.status(req, "busy")
        prompt = kernel.session.message(
            "input_request", {"prompt": "name? ", "password": password}, parent=req, channel="stdin"
        )
        await kernel.stdin.send(prompt)
        box["input_reply"] = answer = await kernel.stdin.receive()
        await kernel.publish(req, "stream", name="stdout", text=f"hello {answer.content['value']}")
        await kernel.reply(req, status="ok", execution_count=1)
        await kernel.status(req, "idle")

    async def caller() -> None:
        try:
            box["result"] = await client.execute("input()", **kwargs)
        except Exception as exc:
            box["result"] = exc

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(kernel_side)
            nursery.start_soon(caller)
    return box["result"], box["req"], box["input_reply"]


async def test_stdin_sync_handler(pair: tuple[KernelClient, Kernel]) -> None:
    client, kernel = pair
    prompts: list[InputRequest] = []

    def handler(req: InputRequest) -> str:
        prompts.append(req)
        return "bob"

    result, req, answer = await run_with_prompt(client, kernel, stdin=handler)
    assert req.content["allow_stdin"] is True
    assert answer.msg_type == "input_reply" and answer.content == {"value": "bob"}
    assert answer.parent_id is not None and answer.parent_msg_type == "input_request"
    assert prompts[0].prompt == "name? " and prompts[0].password is False
    assert result.stdout == "hello bob"
    assert "input_request" in [m.msg_type for m in result.messages]


async def test_stdin_async_handler_and_password_flag(pair: tuple[KernelClient, Kernel]) -> None:
    client, kernel = pair

    async def handler(req: InputRequest) -> str:
        await trio.lowlevel.checkpoint()
        return "secret" if req.password else "visible"

    _result, _, answer = await run_with_prompt(client, kernel, password=True, stdin=handler)
    assert answer.content == {"value": "secret"}


async def test_stdin_default_handler_from_open_client() -> None:
    channels, kernel = memory_pair()
    async with open_client(channels, stdin=lambda req: "default") as client:
        _result, req, answer = await run_with_prompt(client, kernel)
    assert req.content["allow_stdin"] is True and answer.content == {"value": "default"}


async def test_stdin_handler_error_answers_empty_and_raises(
    pair: tuple[KernelClient, Kernel],
) -> None:
    client, kernel = pair

    def handler(req: InputRequest) -> str:
        raise EOFError("user closed the prompt")

    result, _, answer = await run_with_prompt(client, kernel, stdin=handler)
    assert isinstance(result, EOFError)
    assert answer.content == {"value": ""}  # the kernel is not left blocked


async def test_prompt_without_handler_is_refused_with_empty_line(
    pair: tuple[KernelClient, Kernel],
) -> None:
    client, kernel = pair
    _result, req, answer = await run_with_prompt(client, kernel)
    assert req.content["allow_stdin"] is False
    assert answer.content == {"value": ""}
    assert client.statistics().stdin_refused == 1


async def test_orphan_prompt_is_refused(pair: tuple[KernelClient, Kernel]) -> None:
    _client, kernel = pair
    stranger = kernel.session.message("execute_request", channel="shell")
    prompt = kernel.session.message(
        "input_request", {"prompt": "?", "password": False}, parent=stranger, channel="stdin"
    )
    await kernel.stdin.send(prompt)
    with trio.fail_after(5):
        answer = await kernel.stdin.receive()
    assert answer.content == {"value": ""} and answer.parent_id == prompt.msg_id


# -- comms --------------------------------------------------------------------------------


async def test_comm_opened_by_client(pair: tuple[KernelClient, Kernel]) -> None:
    client, kernel = pair
    with trio.fail_after(5):
        comm = await client.open_comm("echo", {"x": 1})
        opened = await kernel.shell.receive()
        assert opened.msg_type == "comm_open"
        assert opened.content == {"comm_id": comm.comm_id, "target_name": "echo", "data": {"x": 1}}
        await kernel.status(opened, "busy")
        await kernel.status(opened, "idle")
        await comm.send({"y": 2}, buffers=[b"raw"])
        sent = await kernel.shell.receive()
        assert sent.msg_type == "comm_msg" and sent.content["data"] == {"y": 2}
        assert sent.buffers == (b"raw",)
        await kernel.publish(sent, "comm_msg", comm_id=comm.comm_id, data={"echo": 2})
        msg = await comm.receive()
        assert msg.content["data"] == {"echo": 2}
        await kernel.publish(None, "comm_close", comm_id=comm.comm_id, data={"bye": 1})
        with pytest.raises(trio.EndOfChannel):
            await comm.receive()
    assert comm.closed and comm.close_message is not None
    with pytest.raises(trio.ClosedResourceError):
        await comm.send({})
    await trio.testing.wait_all_tasks_blocked()
    assert client.statistics().unclaimed_iopub == 0  # statuses dropped, comm msgs delivered


async def test_comm_close_by_client(pair: tuple[KernelClient, Kernel]) -> None:
    client, kernel = pair
    with trio.fail_after(5):
        comm = await client.open_comm("t")
        await kernel.shell.receive()
        await comm.close({"why": "done"})
        closed = await kernel.shell.receive()
        await comm.close()  # idempotent
        await comm.aclose()
    assert closed.msg_type == "comm_close" and closed.content["data"] == {"why": "done"}
    with pytest.raises(trio.ClosedResourceError):
        await comm.receive()


async def test_comms_opened_by_the_kernel(pair: tuple[KernelClient, Kernel]) -> None:
    client, kernel = pair
    incoming = client.accept_comms("from-kernel")
    with pytest.raises(ValueError):
        client.accept_comms("from-kernel")
    with trio.fail_after(5):
        await kernel.publish(
            None, "comm_open", comm_id="c1", target_name="from-kernel", data={"a": 1}
        )
        comm = await incoming.receive()
        assert comm.comm_id == "c1" and comm.open_message.content["data"] == {"a": 1}
        await kernel.publish(None, "comm_msg", comm_id="c1", data={"n": 1})
        assert (await comm.receive()).content["data"] == {"n": 1}
        await comm.send({"reply": True})
        assert (await kernel.shell.receive()).content == {"comm_id": "c1", "data": {"reply": True}}
        # Unregistered target: stays visible as an unclaimed message.
        await kernel.publish(None, "comm_open", comm_id="c2", target_name="other", data={})
        assert (await client.unclaimed_iopub.receive()).content["comm_id"] == "c2"
    await incoming.aclose()
    client.accept_comms("from-kernel")  # may register again once closed


# -- readiness ----------------------------------------------------------------------------


@pytest.fixture
async def not_ready() -> AsyncIterator[tuple[KernelClient, Kernel]]:
    """A client whose channels do not know yet whether IOPub delivers."""
    channels, kernel = memory_pair()
    channels.iopub_ready = False
    async with open_client(channels) as client:
        yield client, kernel


async def test_wait_for_ready_nudges_until_iopub_delivers(
    not_ready: tuple[KernelClient, Kernel],
) -> None:
    client, kernel = not_ready
    probes = 0

    async def kernel_side() -> None:
        nonlocal probes
        while True:
            req = await kernel.shell.receive()
            probes += 1
            if probes < 3:
                # IOPub not connected yet: the status messages are lost.
                await kernel.reply(req, status="ok", implementation="slow")
            else:
                await kernel.answer_kernel_info(req)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(kernel_side)
        with trio.fail_after(5):
            info = await client.wait_for_ready()
        nursery.cancel_scope.cancel()
    assert probes >= 3 and client.iopub_live
    assert info.implementation in ("slow", "memory")
    assert client.kernel_info_cache is info
    await trio.testing.wait_all_tasks_blocked()
    stats = client.statistics()
    assert stats.pending == 0 and stats.unclaimed_replies == 0  # probe replies stay quiet


async def execute_after_a_readiness_probe(client: KernelClient, kernel: Kernel) -> None:
    """Run ``client.execute("1")`` against a kernel stand-in that expects a kernel_info probe
    first, then the execute_request."""

    async def kernel_side() -> None:
        probe = await kernel.shell.receive()
        assert probe.msg_type == "kernel_info_request"
        await kernel.answer_kernel_info(probe)
        req = await kernel.shell.receive()
        assert req.msg_type == "execute_request"
        await kernel.reply(req, status="ok", execution_count=1)
        await kernel.status(req, "idle")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(kernel_side)
        with trio.fail_after(5):
            assert (await client.execute("1")).ok


async def test_first_execute_waits_until_iopub_delivers() -> None:
    # A SUB socket misses what is published before its subscription reaches the kernel, so
    # the first execution makes sure IOPub is live before sending its request.
    channels, kernel = memory_pair()
    channels.iopub_ready = False
    async with open_client(channels) as client:
        await execute_after_a_readiness_probe(client, kernel)
        assert client.iopub_live and client.kernel_info_cache is not None


async def test_after_reset_readiness_iopub_must_prove_itself_live_again() -> None:
    # A restarted kernel is a new IOPub publisher: the channels' earlier readiness (and the
    # client's own) no longer counts, so the next execution probes first.
    channels, kernel = memory_pair()
    assert channels.iopub_ready
    async with open_client(channels) as client:
        before = client.iopub_live
        client.reset_readiness()
        after = client.iopub_live
        assert before and not after

        await execute_after_a_readiness_probe(client, kernel)
        assert client.iopub_live


async def test_wait_for_ready_with_iopub_welcome(
    not_ready: tuple[KernelClient, Kernel],
) -> None:
    client, kernel = not_ready
    await kernel.publish(None, "iopub_welcome", subscription="")

    async def kernel_side() -> None:
        req = await kernel.shell.receive()
        await kernel.reply(req, status="ok", implementation="welcoming")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(kernel_side)
        with trio.fail_after(5):
            info = await client.wait_for_ready()
    assert info.implementation == "welcoming"


# -- kernel death -------------------------------------------------------------------------


async def test_fail_pending_fails_every_waiting_request(pair: tuple[KernelClient, Kernel]) -> None:
    client, kernel = pair
    errors: list[BaseException] = []

    async def caller(i: int) -> None:
        with pytest.raises(KernelDied) as info:
            if i % 2:
                await client.execute("x")
            else:
                await client.kernel_info(channel="control")
        errors.append(info.value)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            for i in range(6):
                nursery.start_soon(caller, i)
            await trio.testing.wait_all_tasks_blocked()
            assert client.fail_pending(KernelDied("process exited with code -9")) == 6
    assert len(errors) == 6 and all("exited" in str(e) for e in errors)
    # Not sticky: the kernel may have been restarted; new requests go through.

    async def kernel_side() -> None:
        while True:
            await kernel.answer_kernel_info(await kernel.control.receive())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(kernel_side)
        with trio.fail_after(5):
            info = await client.kernel_info(channel="control")
        nursery.cancel_scope.cancel()
    assert info.implementation == "memory"


async def test_messages_received_before_death_are_still_delivered(
    pair: tuple[KernelClient, Kernel],
) -> None:
    client, kernel = pair

    async def kernel_side() -> None:
        req = await kernel.shell.receive()
        await kernel.reply(req, status="ok", execution_count=3)
        await kernel.status(req, "idle")
        await trio.testing.wait_all_tasks_blocked()

    async with trio.open_nursery() as nursery, client.stream_execute("x") as run:
        nursery.start_soon(kernel_side)
        await trio.testing.wait_all_tasks_blocked()
        client.fail_pending(KernelDied("too late"))
        with trio.fail_after(5):
            result = await run.wait()
    assert result.execution_count == 3


async def test_heartbeat_loss_fails_pending_and_new_requests_until_alive() -> None:
    channels, kernel = memory_pair()
    async with open_client(channels) as client:
        async with trio.open_nursery() as nursery:

            async def caller() -> None:
                with pytest.raises(KernelDied, match="heartbeat"):
                    await client.execute("import time; time.sleep(60)")

            nursery.start_soon(caller)
            await trio.testing.wait_all_tasks_blocked()
            channels.unresponsive.set()
        with pytest.raises(KernelDied):
            await client.kernel_info()  # fails fast while the kernel is unresponsive
        # Any message from the kernel proves it alive again.
        await kernel.publish(None, "status", execution_state="idle")
        await trio.testing.wait_all_tasks_blocked()

        async def kernel_side() -> None:
            async for req in kernel.shell:  # skips the abandoned execute_request
                if req.msg_type == "kernel_info_request":
                    await kernel.answer_kernel_info(req)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(kernel_side)
            with trio.fail_after(5):
                assert (await client.kernel_info()).implementation == "memory"
            nursery.cancel_scope.cancel()


async def test_kernel_death_ends_open_comms(pair: tuple[KernelClient, Kernel]) -> None:
    client, _kernel = pair
    comm = await client.open_comm("t")
    client.fail_pending(KernelDied("gone"))
    with pytest.raises(KernelDied):
        await comm.receive()


async def test_broken_channel_fails_pending_requests() -> None:
    channels, kernel = memory_pair()
    async with open_client(channels) as client, trio.open_nursery() as nursery:

        async def caller() -> None:
            with pytest.raises(trio.BrokenResourceError):
                await client.kernel_info()

        nursery.start_soon(caller)
        await trio.testing.wait_all_tasks_blocked()
        await kernel.shell.aclose()  # the kernel end of shell goes away


async def test_closing_the_client_fails_pending_and_closes_unclaimed() -> None:
    channels, _kernel = memory_pair()
    outcome: list[BaseException] = []
    async with trio.open_nursery() as outer:
        async with open_client(channels) as client:

            async def caller() -> None:
                try:
                    await client.kernel_info()
                except BaseException as exc:
                    outcome.append(exc)

            outer.start_soon(caller)
            await trio.testing.wait_all_tasks_blocked()
        assert client.closed
    assert isinstance(outcome[0], trio.ClosedResourceError)
    with pytest.raises(trio.EndOfChannel):
        await client.unclaimed_iopub.receive()
    with pytest.raises(trio.ClosedResourceError):
        await client.kernel_info()


async def test_subshell_support_is_checked_when_known(pair: tuple[KernelClient, Kernel]) -> None:
    client, kernel = pair

    async def kernel_side() -> None:
        req = await kernel.shell.receive()
        await kernel.reply(req, status="ok", implementation="old", supported_features=[])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(kernel_side)
        await client.kernel_info()
    with pytest.raises(LocalProtocolError, match="subshells"):
        await client.create_subshell()


async def test_kernel_death_abandons_a_waiting_stdin_handler(
    pair: tuple[KernelClient, Kernel],
) -> None:
    client, kernel = pair
    handler_cancelled = False

    async def slow_user(request: InputRequest) -> str:
        nonlocal handler_cancelled
        try:
            await trio.sleep(3600)  # the user never types
        finally:
            handler_cancelled = True
        return "too late"

    async def kernel_side() -> None:
        req = await kernel.shell.receive()
        prompt = kernel.session.message(
            "input_request", {"prompt": "?", "password": False}, parent=req, channel="stdin"
        )
        await kernel.stdin.send(prompt)
        await trio.testing.wait_all_tasks_blocked()
        client.fail_pending(KernelDied("process exited"))

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(kernel_side)
            with pytest.raises(KernelDied):
                await client.execute("input()", stdin=slow_user)
    assert handler_cancelled
    with pytest.raises(trio.WouldBlock):
        kernel.stdin.receive_nowait()  # nothing was answered for a dead kernel


async def test_kernel_died_is_sticky_until_the_kernel_answers_again(
    pair: tuple[KernelClient, Kernel],
) -> None:
    client, kernel = pair
    async with trio.open_nursery() as nursery:

        async def caller() -> None:
            with pytest.raises(KernelDied, match="exited"):
                await client.kernel_info()

        nursery.start_soon(caller)
        await trio.testing.wait_all_tasks_blocked()
        client.kernel_died(KernelDied("process exited with code 1"))
    with pytest.raises(KernelDied, match="exited"):
        await client.execute("x")  # fails at once, nothing is sent
    with pytest.raises(KernelDied, match="exited"):
        await client.wait_for_ready()  # a known death fails every call at once
    # A restarted kernel (announced as the launcher does): wait_for_ready probes it and
    # clears the state.
    client.reset_readiness()
    await kernel.shell.receive()  # the request that was pending before the death

    async def restarted_kernel() -> None:
        await kernel.answer_kernel_info(await kernel.shell.receive())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(restarted_kernel)
        with trio.fail_after(5):
            await client.wait_for_ready()
    assert client.statistics().pending == 0

    async def answer_execute() -> None:
        req = await kernel.shell.receive()
        await kernel.reply(req, status="ok", execution_count=1)
        await kernel.status(req, "idle")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer_execute)
        with trio.fail_after(5):
            assert (await client.execute("x")).ok


async def test_second_reply_before_idle_goes_to_unclaimed(
    pair: tuple[KernelClient, Kernel],
) -> None:
    client, kernel = pair

    async def kernel_side() -> None:
        req = await kernel.shell.receive()
        await kernel.reply(req, status="ok", execution_count=1)
        await kernel.reply(req, status="ok", execution_count=99)
        await trio.testing.wait_all_tasks_blocked()
        await kernel.status(req, "idle")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(kernel_side)
        with trio.fail_after(5):
            result = await client.execute("x")
    assert result.execution_count == 1  # the first reply is the request's
    duplicate = client.unclaimed_replies.receive_nowait()
    assert duplicate.content["execution_count"] == 99


async def test_slow_stream_reader_costs_bounded_memory_and_loses_no_output(
    pair: tuple[KernelClient, Kernel],
) -> None:
    client, kernel = pair
    with trio.fail_after(5):
        async with client.stream_execute("flood()", live_buffer=10) as run:
            req = await kernel.shell.receive()
            await kernel.status(req, "busy")
            for i in range(100):
                await kernel.publish(req, "stream", name="stdout", text=f"{i}\n")
            await kernel.reply(req, status="ok", execution_count=1)
            await kernel.status(req, "idle")
            await trio.testing.wait_all_tasks_blocked()
            assert run.done  # ended on time although nothing was read yet
            seen = [msg async for msg in run]
    assert len(seen) == 10 and run.dropped == 92  # busy + 100 streams + idle - 10 kept
    assert seen[-1].msg_type == "status"
    assert run.result.stdout == "".join(f"{i}\n" for i in range(100))  # outputs complete
    assert run.result.messages == (run.result.reply,)  # raw messages not kept by default


async def test_stream_execute_can_keep_every_message(pair: tuple[KernelClient, Kernel]) -> None:
    client, kernel = pair
    with trio.fail_after(5):
        async with client.stream_execute("x", keep_messages=True) as run:
            req = await kernel.shell.receive()
            await kernel.publish(req, "stream", name="stdout", text="a")
            await kernel.reply(req, status="ok", execution_count=1)
            await kernel.status(req, "idle")
            result = await run.wait()
    assert [m.msg_type for m in result.messages] == ["stream", "execute_reply", "status"]


async def test_an_error_in_the_block_comes_out_as_itself() -> None:
    channels, _kernel = memory_pair()
    with pytest.raises(KeyError, match="mine"):
        async with open_client(channels):
            raise KeyError("mine")
