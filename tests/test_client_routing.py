"""KernelClient routing, stdin, comms, readiness and failure, over in-memory channels.

The kernel end here is scripted by each test through plain trio memory channels, so every
interleaving (reply before idle, replies out of order, late and duplicate replies, a kernel
that dies mid-request) is produced deterministically, without sockets.
"""

from __future__ import annotations

import contextlib
import functools
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
    OutputsLost,
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


class MemoryIOPub:
    """IOPub of MemoryChannels: messages and drop accounting (nothing is dropped)."""

    def __init__(self, receive: trio.MemoryReceiveChannel[Message]) -> None:
        self._receive = receive

    async def receive(self) -> Message:
        return await self._receive.receive()

    def dropped_for(self, msg_id: str) -> int:
        return 0

    def subscribe(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("no IOPub subscriptions over memory channels")


@attrs.define
class MemoryChannels:
    """The client's side: everything KernelClient needs of channels (ClientChannels), with
    a scriptable heartbeat (:meth:`declare_unresponsive`, :meth:`declare_responsive`)."""

    session: Session
    shell: Duplex
    control: Duplex
    stdin: Duplex
    iopub: MemoryIOPub
    iopub_ready: bool = True  # like Channels.iopub_ready: the subscription is known live
    unresponsive_error: KernelDied | None = None
    changed: trio.Event = attrs.field(factory=trio.Event)
    listeners: list[Any] = attrs.field(factory=list)

    def declare_unresponsive(self) -> None:
        self.unresponsive_error = KernelDied("the kernel stopped answering heartbeats")
        self.changed.set()
        self.changed = trio.Event()

    def declare_responsive(self) -> None:
        self.unresponsive_error = None
        self.changed.set()
        self.changed = trio.Event()

    async def wait_unresponsive(self) -> KernelDied:
        while self.unresponsive_error is None:
            await self.changed.wait()
        return self.unresponsive_error

    async def wait_responsive(self) -> None:
        while self.unresponsive_error is not None:
            await self.changed.wait()

    def add_listener(self, listener: Any) -> None:
        self.listeners.append(listener)

    def add_reject_listener(self, listener: Any) -> None:
        pass

    def set_consumer(self, name: str, consumer: Any, *, view: object) -> bool:
        return False  # channels of one's own may decline: the client then reads receive()

    async def wait_iopub_ready(
        self, *, welcome_grace: float = 0.2, nudge_every: float = 0.5
    ) -> None:
        await trio.lowlevel.checkpoint()

    async def wait_connected(self) -> None:
        await trio.lowlevel.checkpoint()


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
        MemoryChannels(Session("k"), c_shell, c_control, c_stdin, MemoryIOPub(iopub_recv)),
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


class CountingIOPub(MemoryIOPub):
    """An IOPub channel that says how many messages of each request it dropped, like
    :meth:`IOPubChannel.dropped_for`."""

    def __init__(self, inner: MemoryIOPub) -> None:
        self._receive = inner._receive
        self.drops: dict[str, int] = {}

    def dropped_for(self, msg_id: str) -> int:
        return self.drops.get(msg_id, 0)


async def test_iopub_messages_dropped_by_the_channels_show_on_the_result() -> None:
    """Issue #12: an execution whose outputs were partly dropped (the IOPub buffer was full)
    returned status ok with no sign of it."""
    channels, kernel = memory_pair()
    iopub = CountingIOPub(channels.iopub)
    channels = attrs.evolve(channels, iopub=iopub)

    async def kernel_side() -> None:
        req = await kernel.shell.receive()
        await kernel.status(req, "busy")
        iopub.drops[req.msg_id] = 2  # two outputs dropped on the way
        await kernel.publish(req, "stream", name="stdout", text="kept\n")
        await kernel.reply(req, status="ok", execution_count=1)
        await kernel.status(req, "idle")

    async with open_client(channels) as client, trio.open_nursery() as nursery:
        nursery.start_soon(kernel_side)
        with trio.fail_after(5):
            result = await client.execute("print('x' * 40_000_000)")
    assert result.ok and result.stdout == "kept\n"
    assert result.iopub_dropped == 2 and not result.complete
    with pytest.raises(OutputsLost, match="2 IOPub message"):
        result.raise_for_incomplete()
    assert result.raise_for_error() is result  # the code itself succeeded


async def test_a_complete_result_says_so(pair: tuple[KernelClient, Kernel]) -> None:
    client, kernel = pair

    async def kernel_side() -> None:
        req = await kernel.shell.receive()
        await kernel.reply(req, status="ok", execution_count=1)
        await kernel.status(req, "idle")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(kernel_side)
        with trio.fail_after(5):
            result = await client.execute("1")
    assert result.complete and result.iopub_dropped == 0
    assert result.raise_for_incomplete() is result


@pytest.mark.parametrize("status", ["aborted", "abort"])
async def test_aborted_reply_without_idle_finishes(
    pair: tuple[KernelClient, Kernel], status: str
) -> None:
    client, kernel = pair

    async def kernel_side() -> None:
        req = await kernel.shell.receive()
        await kernel.reply(req, status=status)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(kernel_side)
        with trio.fail_after(5):
            result = await client.execute("1")
    assert result.status == status and result.aborted and not result.ok


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


@pytest.mark.parametrize("channel", ["shell", "control"])
async def test_iopub_messages_of_a_plain_request_before_its_reply_are_unclaimed(
    pair: tuple[KernelClient, Kernel], channel: str
) -> None:
    """Issue #12: what a request other than an execution causes on IOPub before its reply
    (a stream printed during inspect, debug_event after debug_request, the IOPub copy of
    shutdown_reply) was discarded: in neither unclaimed_iopub nor any counter."""
    client, kernel = pair

    async def kernel_side() -> None:
        req = await (kernel.shell if channel == "shell" else kernel.control).receive()
        await kernel.status(req, "busy")
        await kernel.publish(req, "stream", name="stdout", text="printed by a property\n")
        await kernel.publish(req, "debug_event", seq=1, type="event", event="initialized")
        await kernel.publish(req, "comm_msg", comm_id="nobody's", data={})
        await kernel.reply(req, status="ok", found=False, data={}, metadata={})
        await kernel.status(req, "idle")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(kernel_side)
        with trio.fail_after(5):
            if channel == "shell":
                reply = await client.inspect("a")
            else:
                reply = await client.request(
                    client.session.message("debug_request", {}, channel="control")
                )
            got = [(await client.unclaimed_iopub.receive()).msg_type for _ in range(3)]
    assert reply.ok
    assert got == ["stream", "debug_event", "comm_msg"]
    await trio.testing.wait_all_tasks_blocked()
    stats = client.statistics()
    assert stats.unclaimed_iopub == 0 and stats.late_dropped == 2  # busy + idle, counted


async def test_comm_messages_caused_by_a_plain_request_reach_their_comm_only(
    pair: tuple[KernelClient, Kernel],
) -> None:
    client, kernel = pair
    with trio.fail_after(5):
        comm = await client.open_comm("echo")
        opened = await kernel.shell.receive()

        async def kernel_side() -> None:
            req = await kernel.shell.receive()
            await kernel.publish(req, "comm_msg", comm_id=comm.comm_id, data={"during": 1})
            await kernel.reply(req, status="ok", comms={})
            await kernel.status(req, "idle")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(kernel_side)
            assert (await client.comm_info()).ok
        assert (await comm.receive()).content["data"] == {"during": 1}
    del opened
    await trio.testing.wait_all_tasks_blocked()
    assert client.statistics().unclaimed_iopub == 0


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
    assert answer.msg_type == "input_reply" and answer.content == {"status": "ok", "value": "bob"}
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
    assert answer.content == {"status": "ok", "value": "secret"}


async def test_stdin_default_handler_from_open_client() -> None:
    channels, kernel = memory_pair()
    async with open_client(channels, stdin=lambda req: "default") as client:
        _result, req, answer = await run_with_prompt(client, kernel)
    assert req.content["allow_stdin"] is True
    assert answer.content == {"status": "ok", "value": "default"}


async def test_stdin_handler_error_answers_empty_and_raises(
    pair: tuple[KernelClient, Kernel],
) -> None:
    client, kernel = pair

    def handler(req: InputRequest) -> str:
        raise EOFError("user closed the prompt")

    result, _, answer = await run_with_prompt(client, kernel, stdin=handler)
    assert isinstance(result, EOFError)
    assert answer.content == {"status": "ok", "value": ""}  # the kernel is not left blocked


async def test_prompt_without_handler_is_refused_with_empty_line(
    pair: tuple[KernelClient, Kernel],
) -> None:
    client, kernel = pair
    result, req, answer = await run_with_prompt(client, kernel)
    assert req.content["allow_stdin"] is False
    assert answer.content == {"status": "ok", "value": ""}
    assert client.statistics().stdin_refused == 1
    # The execution's result says so: its code read an empty line nobody typed.
    assert result.ok and result.stdin_refused == 1
    handled, _, _ = await run_with_prompt(client, kernel, stdin=lambda req: "typed")
    assert handled.stdin_refused == 0 and handled.stdout == "hello typed"


async def test_prompt_to_a_plain_request_is_refused_and_its_reply_returned(
    pair: tuple[KernelClient, Kernel],
) -> None:
    # Only executions have stdin handlers: a prompt that claims another request as its parent
    # is answered with an empty line (counted), and the request still gets its reply.
    client, kernel = pair

    async def kernel_side() -> None:
        req = await kernel.shell.receive()
        for n in range(2):
            prompt = kernel.session.message(
                "input_request", {"prompt": f"{n}?", "password": False}, parent=req, channel="stdin"
            )
            await kernel.stdin.send(prompt)
            answer = await kernel.stdin.receive()
            assert answer.content == {"status": "ok", "value": ""}
            assert answer.parent_id == prompt.msg_id
        await kernel.reply(req, status="ok", matches=["x"])

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(kernel_side)
            reply = await client.complete("x")
    assert reply.ok and reply["matches"] == ["x"]
    assert client.statistics().stdin_refused == 2
    assert client.statistics().pending == 0


async def test_orphan_prompt_is_refused(pair: tuple[KernelClient, Kernel]) -> None:
    _client, kernel = pair
    stranger = kernel.session.message("execute_request", channel="shell")
    prompt = kernel.session.message(
        "input_request", {"prompt": "?", "password": False}, parent=stranger, channel="stdin"
    )
    await kernel.stdin.send(prompt)
    with trio.fail_after(5):
        answer = await kernel.stdin.receive()
    assert answer.content == {"status": "ok", "value": ""} and answer.parent_id == prompt.msg_id


async def _learn_subshell_support(client: KernelClient, kernel: Kernel) -> None:
    """Let the client learn (kernel_info) that the kernel supports subshells, so its subshell
    calls go straight to the request."""

    async def kernel_side() -> None:
        req = await kernel.shell.receive()
        await kernel.reply(req, status="ok", supported_features=["kernel subshells"])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(kernel_side)
        await client.kernel_info()


@pytest.mark.parametrize("how", ["open_subshell", "create_subshell"])
async def test_a_subshell_created_after_its_caller_was_cancelled_is_deleted(
    pair: tuple[KernelClient, Kernel], how: str
) -> None:
    """Issue #12: cancelled once the create request was sent, the subshell the kernel then
    created was never deleted (a thread in ipykernel, for the kernel's lifetime)."""
    client, kernel = pair
    await _learn_subshell_support(client, kernel)
    scope = trio.CancelScope()

    async def user() -> None:
        with scope:
            if how == "open_subshell":
                async with client.open_subshell():
                    await trio.sleep_forever()
            else:
                await client.create_subshell()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(user)
            create = await kernel.control.receive()
            assert create.msg_type == "create_subshell_request"
            scope.cancel()  # the caller gives up while the kernel creates the subshell
            await trio.testing.wait_all_tasks_blocked()
            await kernel.reply(create, status="ok", subshell_id="sub-1")
            delete = await kernel.control.receive()
            assert delete.msg_type == "delete_subshell_request"
            assert delete.content == {"subshell_id": "sub-1"}
            await kernel.reply(delete, status="ok")
    assert scope.cancelled_caught
    assert client.statistics().pending == 0 and client.statistics().unclaimed_replies == 0


async def test_a_cancelled_subshell_creation_that_failed_deletes_nothing(
    pair: tuple[KernelClient, Kernel],
) -> None:
    client, kernel = pair
    await _learn_subshell_support(client, kernel)
    scope = trio.CancelScope()

    async def user() -> None:
        with scope:
            await client.create_subshell()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(user)
            create = await kernel.control.receive()
            scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
            await kernel.reply(create, status="error", ename="E", evalue="no", traceback=[])
        # Nothing else was sent: our kernel_info_request is the next thing the kernel sees.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(client.kernel_info, channel="control"))
            req = await kernel.control.receive()
            assert req.msg_type == "kernel_info_request"
            await kernel.answer_kernel_info(req)
    assert scope.cancelled_caught


async def test_a_comm_used_as_a_context_is_closed_when_cancelled(
    pair: tuple[KernelClient, Kernel],
) -> None:
    client, kernel = pair
    with trio.fail_after(5):
        with trio.CancelScope() as scope:
            async with await client.open_comm("echo") as comm:
                assert (await kernel.shell.receive()).msg_type == "comm_open"
                scope.cancel()
                await trio.sleep_forever()
        closed = await kernel.shell.receive()
    assert closed.msg_type == "comm_close" and closed.content["comm_id"] == comm.comm_id
    assert client.statistics().comms == 0


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


async def test_comms_nobody_will_receive_are_released_to_unclaimed_iopub(
    pair: tuple[KernelClient, Kernel],
) -> None:
    """A comm evicted from a full accept queue (or still waiting when it is closed) stayed
    registered: its comm_open and everything sent to it were lost from view."""
    client, kernel = pair
    incoming = client.accept_comms("t", max_buffer=1)
    with trio.fail_after(5):
        await kernel.publish(None, "comm_open", comm_id="c1", target_name="t", data={})
        await kernel.publish(None, "comm_msg", comm_id="c1", data={"n": 1})
        await kernel.publish(None, "comm_open", comm_id="c2", target_name="t", data={})
        await kernel.publish(None, "comm_msg", comm_id="c1", data={"n": 2})
        got = [await client.unclaimed_iopub.receive() for _ in range(3)]
        assert [(m.msg_type, m.content["comm_id"]) for m in got] == [
            ("comm_open", "c1"),
            ("comm_msg", "c1"),
            ("comm_msg", "c1"),
        ]
        assert [m.content["data"] for m in got[1:]] == [{"n": 1}, {"n": 2}]
        assert incoming.dropped == 1
        await kernel.publish(None, "comm_msg", comm_id="c2", data={"n": 3})
        await trio.testing.wait_all_tasks_blocked()
        await incoming.aclose()  # c2 was never received: released with its message
        got = [await client.unclaimed_iopub.receive() for _ in range(2)]
        assert [(m.msg_type, m.content["comm_id"]) for m in got] == [
            ("comm_open", "c2"),
            ("comm_msg", "c2"),
        ]
        await kernel.publish(None, "comm_msg", comm_id="c2", data={"n": 4})
        assert (await client.unclaimed_iopub.receive()).content["data"] == {"n": 4}
    assert client.statistics().comms == 0


# -- readiness ----------------------------------------------------------------------------


@pytest.fixture
async def not_ready() -> AsyncIterator[tuple[KernelClient, Kernel]]:
    """A client whose channels do not know yet whether IOPub delivers."""
    channels, kernel = memory_pair()
    channels.iopub_ready = False
    async with open_client(channels) as client:
        yield client, kernel


async def test_wait_ready_nudges_until_iopub_delivers(
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
            info = await client.wait_ready()
        nursery.cancel_scope.cancel()
    assert probes >= 3 and client.iopub_ready
    assert info.implementation in ("slow", "memory")
    assert client.kernel_info_cache is info
    await trio.testing.wait_all_tasks_blocked()
    stats = client.statistics()
    assert stats.pending == 0 and stats.unclaimed_replies == 0  # probe replies stay quiet


async def test_wait_ready_sends_no_copies_of_a_probe_a_starting_kernel_has_not_read(
    not_ready: tuple[KernelClient, Kernel], autojump_clock: trio.testing.MockClock
) -> None:
    # A kernel still starting gets every probe queued for it at once and answers each one:
    # copies sent while the first is on its way only make it (and us) work more.
    client, kernel = not_ready
    queued: dict[str, int] = {}

    async def kernel_side() -> None:
        await trio.sleep(0.7)  # (virtual time) the kernel starts listening only now
        for name, duplex in (("control", kernel.control), ("shell", kernel.shell)):
            requests = []
            with contextlib.suppress(trio.WouldBlock):
                while True:
                    requests.append(duplex.receive_nowait())
            queued[name] = len(requests)
            for request in requests:
                await kernel.answer_kernel_info(request)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(kernel_side)
        with trio.fail_after(5):
            await client.wait_ready()
    assert queued == {"control": 1, "shell": 1}  # (were 4 and 3)
    assert client.iopub_ready


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
        assert client.iopub_ready and client.kernel_info_cache is not None


async def test_after_reset_readiness_iopub_must_prove_itself_live_again() -> None:
    # A restarted kernel is a new IOPub publisher: the channels' earlier readiness (and the
    # client's own) no longer counts, so the next execution probes first.
    channels, kernel = memory_pair()
    assert channels.iopub_ready
    async with open_client(channels) as client:
        before = client.iopub_ready
        client.reset_readiness()
        after = client.iopub_ready
        assert before and not after

        await execute_after_a_readiness_probe(client, kernel)
        assert client.iopub_ready


async def test_wait_ready_with_iopub_welcome(
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
            info = await client.wait_ready()
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
            channels.declare_unresponsive()
        with pytest.raises(KernelDied):
            await client.kernel_info()  # fails fast while the kernel is unresponsive
        # Echoes resume: the verdict is lifted.
        channels.declare_responsive()

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


async def test_a_channel_that_ends_fails_pending_and_later_requests_at_once() -> None:
    channels, kernel = memory_pair()
    async with open_client(channels) as client, trio.open_nursery() as nursery:

        async def caller() -> None:
            with pytest.raises(trio.ClosedResourceError, match="closed"):
                await client.kernel_info()

        nursery.start_soon(caller)
        await trio.testing.wait_all_tasks_blocked()
        await kernel.shell.aclose()  # the kernel end of shell goes away
        await trio.testing.wait_all_tasks_blocked()
        with trio.fail_after(5):  # at once: nothing more can be routed
            with pytest.raises(trio.ClosedResourceError, match="closed"):
                await client.kernel_info()
            with pytest.raises(trio.ClosedResourceError, match="closed"):
                await client.unclaimed_iopub.receive()


class FailingDuplex(Duplex):
    """A channel end whose receive() fails once told to (a transport of one's own with a
    defect)."""

    def __init__(self, inner: Duplex) -> None:
        super().__init__(inner._send, inner._receive)
        self.failing = trio.Event()

    async def receive(self) -> Message:
        await self.failing.wait()
        raise RuntimeError("the transport broke")


async def test_a_channel_whose_receive_fails_fails_pending_and_later_requests_at_once() -> None:
    channels, _kernel = memory_pair()
    shell = channels.shell = FailingDuplex(channels.shell)
    async with open_client(channels) as client, trio.open_nursery() as nursery:

        async def caller() -> None:
            with pytest.raises(trio.BrokenResourceError, match="the shell channel failed"):
                await client.kernel_info()

        nursery.start_soon(caller)
        await trio.testing.wait_all_tasks_blocked()
        shell.failing.set()
        await trio.testing.wait_all_tasks_blocked()
        with trio.fail_after(5):  # at once: nothing more can be routed
            with pytest.raises(trio.BrokenResourceError, match="the shell channel failed"):
                await client.kernel_info(channel="control")
            with pytest.raises(trio.BrokenResourceError, match="the shell channel failed"):
                await client.unclaimed_iopub.receive()


@attrs.define
class DirectMemoryChannels(MemoryChannels):
    """MemoryChannels whose "reader" hands messages straight to the client's consumer (as
    Channels' readers do, a batch at a time): :meth:`hand_over` plays the reader."""

    consumers: dict[str, Any] = attrs.field(factory=dict)

    def set_consumer(self, name: str, consumer: Any, *, view: object) -> bool:
        if consumer is None:
            self.consumers.pop(name, None)
        else:
            self.consumers[name] = consumer
        return True

    def hand_over(self, name: str, batch: list[Any]) -> None:
        # A reader takes the consumer once per batch (see _Reader.process): the consumer
        # sees the rest of a batch even after it stopped consuming.
        consumer = self.consumers[name]
        for msg in batch:
            consumer(msg)


async def test_messages_handed_over_after_a_routing_failure_are_counted_unrouted() -> None:
    channels, kernel = memory_pair()
    direct = DirectMemoryChannels(
        channels.session, channels.shell, channels.control, channels.stdin, channels.iopub
    )
    outcome: list[BaseException] = []
    async with open_client(direct) as client, trio.open_nursery() as nursery:

        async def caller() -> None:
            try:
                await client.kernel_info()
            except trio.BrokenResourceError as exc:
                outcome.append(exc)

        await trio.testing.wait_all_tasks_blocked()
        assert set(direct.consumers) == {"shell", "control", "stdin", "iopub"}
        nursery.start_soon(caller)
        await trio.testing.wait_all_tasks_blocked()
        before = kernel.session.message("stream", {"name": "stdout", "text": "a"}, channel="iopub")
        after = [
            kernel.session.message("stream", {"name": "stdout", "text": t}, channel="iopub")
            for t in "bc"
        ]
        # Channels of one's own that hand over something that is not a Message: routing it
        # fails (as a bug of ours in dispatch would), and IOPub's routing ends there.
        direct.hand_over("iopub", [before, object(), *after])
        await trio.testing.wait_all_tasks_blocked()
        assert "iopub" not in direct.consumers  # IOPub's routing ended
        stats = client.statistics()
        assert stats.unrouted == 2  # the rest of the batch, delivered to nobody
        assert stats.unclaimed_iopub == 1  # what came before the failure was routed
        assert client.unclaimed_iopub.receive_nowait().content["text"] == "a"
        # The pending request failed, saying why.
        assert len(outcome) == 1 and "the iopub channel failed" in str(outcome[0])
        assert stats.pending == 0
        # IOPub's routing never resumes: a later call (an execution waits for its idle
        # status) fails at once, as does a wait on the unclaimed store, instead of waiting.
        with trio.fail_after(5):
            with pytest.raises(trio.BrokenResourceError, match="the iopub channel failed"):
                await client.execute("1")
            with pytest.raises(trio.BrokenResourceError, match="the iopub channel failed"):
                await client.unclaimed_iopub.receive()
        assert client.statistics().pending == 0


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


def test_open_client_takes_the_options_of_open_channels_with_their_defaults() -> None:
    """open_client once passed ``**channel_kwargs: Any`` through; its channel options are now
    explicit parameters. They must stay those of open_channels (but ``multiplexed``), with the
    same defaults."""
    import inspect

    from trio_enchannel import open_channels

    def options(func: Any, skip: set[str]) -> dict[str, Any]:
        params = inspect.signature(func).parameters.values()
        named = (p for p in params if p.kind is p.KEYWORD_ONLY and p.name not in skip)
        return {p.name: p.default for p in named}

    client = options(open_client, {"stdin", "unclaimed_buffer"})
    assert client == options(open_channels, {"multiplexed"})


async def test_channel_options_with_channels_given_are_refused() -> None:
    channels, _kernel = memory_pair()
    with pytest.raises(TypeError, match="hb_interval"):
        async with open_client(channels, hb_interval=2.0):
            pass  # pragma: no cover
    async with open_client(channels, hb_interval=1.0):  # the default: nothing is ignored
        pass


async def test_the_old_names_still_work_with_a_deprecation_warning(
    pair: tuple[KernelClient, Kernel],
) -> None:
    """kernel_died() (declaring a death) became declare_dead(), wait_for_ready() became
    wait_ready() (issue #14: one vocabulary); the documented old names still work."""
    client, kernel = pair

    async def answer() -> None:
        await kernel.answer_kernel_info(await kernel.control.receive())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer)
        with trio.fail_after(5), pytest.warns(DeprecationWarning, match="wait_ready"):
            info = await client.wait_for_ready()
    assert info.implementation == "memory"
    with pytest.warns(DeprecationWarning, match="declare_dead"):
        client.kernel_died(KernelDied("process exited with code 1"))
    with pytest.raises(KernelDied, match="exited"):
        await client.kernel_info()


async def test_a_declared_death_is_sticky_until_the_kernel_answers_again(
    pair: tuple[KernelClient, Kernel],
) -> None:
    client, kernel = pair
    async with trio.open_nursery() as nursery:

        async def caller() -> None:
            with pytest.raises(KernelDied, match="exited"):
                await client.kernel_info()

        nursery.start_soon(caller)
        await trio.testing.wait_all_tasks_blocked()
        client.declare_dead(KernelDied("process exited with code 1"))
    with pytest.raises(KernelDied, match="exited"):
        await client.execute("x")  # fails at once, nothing is sent
    with pytest.raises(KernelDied, match="exited"):
        await client.wait_ready()  # a known death fails every call at once
    # A restarted kernel (announced as the launcher does): wait_ready probes it and
    # clears the state.
    client.reset_readiness()
    await kernel.shell.receive()  # the request that was pending before the death

    async def restarted_kernel() -> None:
        await kernel.answer_kernel_info(await kernel.shell.receive())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(restarted_kernel)
        with trio.fail_after(5):
            await client.wait_ready()
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
