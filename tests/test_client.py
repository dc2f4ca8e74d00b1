"""KernelClient against real kernels: ipykernel (every request type, concurrency, stdin, comms,
subshells, interrupt, death), xeus-python, async-kernel (requests run concurrently) and
bash_kernel.

Every message the client receives in these tests is validated against jupyter_kernel_test's
message schemas (``tests/_msgspec.py``).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from trio_enchannel import (
    ConnectionInfo,
    ExecuteResult,
    InputRequest,
    KernelClient,
    KernelDied,
    KernelError,
    open_channels,
    open_client,
)

from .conftest import KernelProcess, kernel_process

pytest.importorskip("jupyter_kernel_test", reason="its message schemas validate what kernels send")

from ._msgspec import ValidatingChannels

pytestmark = pytest.mark.kernel

BASH_KERNEL_ARGV = (sys.executable, "-m", "bash_kernel", "-f", "{connection_file}")
STARTUP = 60  # seconds a cold kernel may take to answer on a loaded 2-core machine


@asynccontextmanager
async def validated_client(
    kernel: ConnectionInfo | KernelProcess, **channel_options: Any
) -> AsyncIterator[tuple[KernelClient, ValidatingChannels]]:
    """A ready client whose every received message is validated.

    When the block fails, what the client saw (and the kernel's log) is printed, so that
    pytest shows it with the failure.
    """
    info = kernel.info if isinstance(kernel, KernelProcess) else kernel
    async with open_channels(info, **channel_options) as ch:
        checked = ValidatingChannels(ch)
        async with open_client(checked) as client:
            try:
                with trio.fail_after(STARTUP):
                    await client.wait_ready()
                yield client, checked
            except BaseException:
                print("client:", client.statistics(), "\nchannels:", ch.statistics())
                print("received by type:", checked.validated)
                while len(client.unclaimed_iopub):
                    msg = client.unclaimed_iopub.receive_nowait()
                    print("unclaimed iopub:", msg.msg_type, msg.parent_msg_type, msg.content)
                while len(client.unclaimed_replies):
                    msg = client.unclaimed_replies.receive_nowait()
                    print("unclaimed reply:", msg.msg_type, msg.content)
                if isinstance(kernel, KernelProcess):
                    print("kernel log:\n", kernel.output()[-4000:])
                raise
    checked.assert_valid()


def one_of(result: ExecuteResult, output_type: str) -> dict[str, Any]:
    found = [o for o in result.outputs if o["output_type"] == output_type]
    assert len(found) == 1, result.outputs
    return found[0]


# -- ipykernel: requests ------------------------------------------------------------------


async def test_every_request_type(ipykernel_process: KernelProcess) -> None:
    async with validated_client(ipykernel_process) as (client, checked):
        with trio.fail_after(60):
            info = client.kernel_info_cache
            assert info is not None and info.language == "python"
            assert info.protocol_version.startswith("5.")
            control_info = await client.kernel_info(channel="control")
            assert control_info.implementation == "ipython"

            result = await client.execute("x = 6 * 7\nprint('out')\nx")
            assert result.ok and result.stdout == "out\n"
            assert result.data == {"text/plain": "42"}
            assert result.execution_count == 1

            expr = await client.execute("y = 1", user_expressions={"double": "x * 2"})
            assert expr.user_expressions["double"]["data"] == {"text/plain": "84"}

            inspected = await client.inspect("len", detail_level=0)
            assert inspected.ok and inspected["found"] is True
            assert "text/plain" in inspected["data"]

            completed = await client.complete("import o")
            assert completed.ok and "os" in completed["matches"]

            tail = await client.history(hist_access_type="tail", n=2)
            assert [entry[2] for entry in tail["history"]] == [
                "x = 6 * 7\nprint('out')\nx",
                "y = 1",
            ]
            ranged = await client.history(hist_access_type="range", output=True)
            assert ranged.ok and ranged["history"]
            searched = await client.history(hist_access_type="search", pattern="y =*", unique=True)
            assert [entry[2] for entry in searched["history"]] == ["y = 1"]

            assert (await client.is_complete("for i in range(3):")).status == "incomplete"
            assert (await client.is_complete("print(1)")).status == "complete"
            assert (await client.comm_info()).ok

            assert (await client.interrupt()).ok

            debug = await client.debug_request(
                "initialize", {"clientID": "trio-enchannel", "adapterID": "python"}
            )
            assert debug.content.get("success") is True, debug.content

            assert info.supports_subshells
            subshell = await client.create_subshell()
            assert subshell in await client.list_subshell()
            assert (await client.delete_subshell(subshell)).ok
            assert subshell not in await client.list_subshell()
    for kind in ("kernel_info_reply", "execute_reply", "history_reply", "debug_reply", "status"):
        assert checked.validated.get(kind), kind


async def test_shutdown_request(ipykernel_process: KernelProcess) -> None:
    async with validated_client(ipykernel_process) as (client, _):
        with trio.fail_after(30):
            reply = await client.shutdown()
            assert reply.ok and reply["restart"] is False
            # ipykernel also publishes the reply on IOPub (before the control reply): that
            # copy is nobody's, so it is kept as unclaimed, never discarded.
            while (copy := await client.unclaimed_iopub.receive()).msg_type != "shutdown_reply":
                pass
            assert copy.parent_id == reply.message.parent_id
            assert await ipykernel_process.process.wait() == 0


async def test_nothing_the_kernel_sends_is_lost_silently(ipykernel_process: KernelProcess) -> None:
    """Issue #12: output lost without a trace at the edges."""
    async with validated_client(ipykernel_process) as (client, checked):
        with trio.fail_after(60):
            # A lone surrogate reaches us as a byte that is not UTF-8 (jupyter_client's
            # packer uses "surrogateescape"): replaced with U+FFFD and counted, the message
            # kept (it was rejected whole, losing the cell's output).
            result = await client.execute("print('a'); print('\\udcff'); print('b')")
            assert result.ok and result.stdout == "a\n\ufffd\nb\n", result.outputs
            assert checked.statistics().iopub.invalid_utf8 >= 1

            # A stream printed while answering inspect, flushed before the reply.
            await client.execute(
                "import sys, time\n"
                "class Noisy:\n"
                "    @property\n"
                "    def __doc__(self):\n"
                "        print('printed during inspect', flush=True)\n"
                "        time.sleep(0.5)\n"
                "        return 'noisy doc'\n"
                "noisy = Noisy()\n"
            )
            assert (await client.inspect("noisy", detail_level=0)).ok
            while (msg := await client.unclaimed_iopub.receive()).msg_type != "stream":
                pass
            assert msg.content["text"] == "printed during inspect\n"

            # The debugger's events after a debug_request.
            await client.debug_request(
                "initialize", {"clientID": "trio-enchannel", "adapterID": "python"}
            )
            assert (await client.debug_request("attach")).content.get("success") is True
            while (msg := await client.unclaimed_iopub.receive()).msg_type != "debug_event":
                pass
            assert msg.content.get("type") == "event"


async def test_outputs_as_a_notebook_shows_them(ipykernel_process: KernelProcess) -> None:
    code = """
import sys, time
from IPython.display import display, clear_output
for i in range(3):
    print(f"progress {i}", end="\\r", flush=True)
print("done")
print("warning", file=sys.stderr, flush=True)
handle = display("first", display_id=True)
handle.update("updated")
display("to be cleared")
clear_output(wait=True)
display("after clear")
_ = sys.stdout.write("tail\\n")
"""
    async with validated_client(ipykernel_process) as (client, _):
        with trio.fail_after(30):
            result = await client.execute(code)
    assert result.ok, result.error
    # clear_output(wait=True) removed everything before it, once the next output came.
    assert [o["output_type"] for o in result.outputs] == ["display_data", "stream"]
    assert result.outputs[0]["data"]["text/plain"] == "'after clear'"
    assert result.stdout == "tail\n"
    kinds = [m.msg_type for m in result.messages]
    assert kinds.count("update_display_data") == 1 and kinds.count("clear_output") == 1
    assert kinds[-1] in ("status", "execute_reply")


async def test_progress_updates_and_display_updates(ipykernel_process: KernelProcess) -> None:
    code = """
import sys
from IPython.display import display
for i in range(5):
    print(f"step {i}/4", end="\\r", flush=True)
print()
print("e", file=sys.stderr, flush=True)
h = display("v1", display_id=True)
h.update("v2")
42
"""
    async with validated_client(ipykernel_process) as (client, _):
        with trio.fail_after(30):
            result = await client.execute(code)
    assert result.stdout == "step 4/4\n"
    assert result.stderr == "e\n"
    display = one_of(result, "display_data")
    assert display["data"]["text/plain"] == "'v2'"
    assert one_of(result, "execute_result")["data"] == {"text/plain": "42"}


async def test_errors(ipykernel_process: KernelProcess) -> None:
    async with validated_client(ipykernel_process) as (client, _):
        with trio.fail_after(30):
            result = await client.execute("1 / 0")
            assert result.status == "error"
            assert result.error is not None
            assert (result.error.ename, result.error.evalue) == (
                "ZeroDivisionError",
                "division by zero",
            )
            assert result.error.traceback
            error = one_of(result, "error")
            assert error["ename"] == "ZeroDivisionError"
            with pytest.raises(KernelError) as info:
                await client.execute("raise ValueError('bad')", raise_on_error=True)
            assert (info.value.ename, info.value.evalue) == ("ValueError", "bad")
            assert (await client.execute("'still alive'")).ok


async def test_stop_on_error_aborts_queued_executions(ipykernel_process: KernelProcess) -> None:
    async with validated_client(ipykernel_process) as (client, _):
        with trio.fail_after(30):
            # Both requests are sent before the first finishes (the kernel runs them in order).
            async with (
                client.stream_execute("import time; time.sleep(0.5); 1/0") as failing,
                client.stream_execute("print('never')") as queued,
            ):
                results = {"fail": await failing.wait(), "queued": await queued.wait()}
    assert results["fail"].status == "error"
    assert results["queued"].status == "aborted"


# -- ipykernel: concurrency ---------------------------------------------------------------


async def test_hundred_concurrent_requests_get_their_own_replies(
    ipykernel_process: KernelProcess,
) -> None:
    n = 100
    async with validated_client(ipykernel_process) as (client, _):
        executions: dict[int, ExecuteResult] = {}
        infos: dict[int, str] = {}

        async def caller(i: int) -> None:
            if i % 4 == 0:
                infos[i] = (await client.kernel_info()).implementation
            else:
                executions[i] = await client.execute(f"print({i}, end=''); {i} * 2")

        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                for i in range(n):
                    nursery.start_soon(caller, i)
        stats = client.statistics()
    assert len(executions) + len(infos) == n
    for i, result in executions.items():
        assert result.ok
        assert result.stdout == str(i)
        assert result.data == {"text/plain": str(i * 2)}
        assert result.reply.parent_id == result.messages[0].parent_id
    assert set(infos.values()) == {"ipython"}
    counts = sorted(r.execution_count for r in executions.values() if r.execution_count)
    assert counts == sorted(set(counts))  # every execution has its own count
    assert stats.pending == 0 and stats.unclaimed_replies == 0


async def test_stream_execute_delivers_messages_live(ipykernel_process: KernelProcess) -> None:
    code = "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.05)"
    async with validated_client(ipykernel_process) as (client, _):
        seen: list[str] = []
        with trio.fail_after(30):
            async with client.stream_execute(code) as run:
                async for msg in run:
                    seen.append(msg.msg_type)
                    if msg.msg_type == "stream":
                        assert run.reply is None or run.done is False
        assert seen[0] == "status" and seen[-1] == "status"
        assert seen.count("stream") >= 1
        assert run.result.stdout == "0\n1\n2\n"


async def test_stream_execute_without_gathering_outputs(ipykernel_process: KernelProcess) -> None:
    # For readers that build their own outputs: every message is delivered, none is kept.
    async with validated_client(ipykernel_process) as (client, _):
        texts: list[str] = []
        with trio.fail_after(30):
            async with client.stream_execute("print('hi')\n42", gather_outputs=False) as run:
                async for msg in run:
                    if msg.msg_type == "stream":
                        texts.append(msg.content["text"])
        assert "".join(texts) == "hi\n"
        assert len(run.outputs) == 0
        assert (run.result.status, run.result.outputs) == ("ok", [])


# -- ipykernel: stdin ---------------------------------------------------------------------


async def test_stdin_prompts(ipykernel_process: KernelProcess) -> None:
    prompts: list[InputRequest] = []

    async def answer(request: InputRequest) -> str:
        prompts.append(request)
        await trio.lowlevel.checkpoint()
        return "hunter2" if request.password else "Ada"

    code = (
        "import getpass\nname = input('name? ')\npw = getpass.getpass('pw: ')\nprint(name, len(pw))"
    )
    async with validated_client(ipykernel_process) as (client, _):
        with trio.fail_after(30):
            result = await client.execute(code, stdin=answer)
            assert result.ok, result.error
            assert result.stdout.strip().endswith("Ada 7")
            assert [(p.prompt, p.password) for p in prompts] == [("name? ", False), ("pw: ", True)]

            refused = await client.execute("input('no handler: ')")
            assert refused.status == "error" and refused.error is not None
            assert refused.error.ename == "StdinNotImplementedError"

            sync = await client.execute("print(input())", stdin=lambda request: "sync answer")
            assert sync.stdout.endswith("sync answer\n")


# -- ipykernel: comms ---------------------------------------------------------------------


REGISTER_ECHO = """
def _echo_target(comm, open_msg):
    comm.send({"opened_with": open_msg["content"]["data"]})

    @comm.on_msg
    def _on_msg(msg):
        comm.send({"echo": msg["content"]["data"]}, buffers=msg.get("buffers") or None)
        if msg["content"]["data"].get("close"):
            comm.close({"bye": True})

get_ipython().kernel.comm_manager.register_target("echo", _echo_target)
"""


async def test_comms(ipykernel_process: KernelProcess) -> None:
    async with validated_client(ipykernel_process) as (client, _):
        with trio.fail_after(30):
            (await client.execute(REGISTER_ECHO)).raise_for_error()

            comm = await client.open_comm("echo", {"hello": 1})
            first = await comm.receive()
            assert first.content["data"] == {"opened_with": {"hello": 1}}
            await comm.send({"n": 2})
            assert (await comm.receive()).content["data"] == {"echo": {"n": 2}}
            info = await client.comm_info("echo")
            assert comm.comm_id in info["comms"]
            await comm.send({"close": True})
            assert (await comm.receive()).content["data"] == {"echo": {"close": True}}
            with pytest.raises(trio.EndOfChannel):
                await comm.receive()
            assert comm.close_message is not None
            assert comm.close_message.content["data"] == {"bye": True}

            # A target that does not exist: the kernel closes the comm at once.
            missing = await client.open_comm("no-such-target")
            with pytest.raises(trio.EndOfChannel):
                await missing.receive()

            # A comm opened by the kernel.
            incoming = client.accept_comms("from-kernel")
            result = await client.execute(
                "from comm import create_comm\n"
                "c = create_comm(target_name='from-kernel', data={'v': 1})\n"
                "c.on_msg(lambda m: print('kernel got', m['content']['data']))"
            )
            assert result.ok, result.error
            kernel_comm = await incoming.receive()
            assert kernel_comm.open_message.content["data"] == {"v": 1}
            await kernel_comm.send({"ping": True})
            # The handler's output goes to the client's unclaimed IOPub messages.
            async for msg in client.unclaimed_iopub:
                if msg.msg_type == "stream" and msg.content["name"] == "stdout":
                    break
            assert msg.content["text"] == "kernel got {'ping': True}\n"
            await kernel_comm.aclose()


# -- ipykernel: subshells, interrupt, death -----------------------------------------------


async def test_cancelled_subshell_blocks_leave_no_subshell_behind(
    ipykernel_process: KernelProcess,
) -> None:
    """Issue #12: 6 of 7 blocks cancelled after the create request was sent leaked their
    subshell (a thread in ipykernel). Cancel at many points: none may be left."""
    async with validated_client(ipykernel_process) as (client, _):
        with trio.fail_after(60):
            for delay in (0, 0.0002, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.05):
                with trio.move_on_after(delay):
                    async with client.open_subshell() as subshell:
                        await client.execute("1", subshell_id=subshell)
                        await trio.sleep_forever()
                created: str | None = None
                with trio.move_on_after(delay):
                    created = await client.create_subshell()
                if created is not None:  # not cancelled: ours to delete
                    assert (await client.delete_subshell(created)).ok
            assert await client.list_subshell() == []


async def test_subshell_runs_while_the_main_shell_is_busy(ipykernel_process: KernelProcess) -> None:
    async with validated_client(ipykernel_process) as (client, _):
        with trio.fail_after(60):
            (await client.execute("import threading\nev = threading.Event()")).raise_for_error()
            async with client.open_subshell() as subshell:
                main: list[ExecuteResult] = []

                async def busy_main() -> None:
                    main.append(await client.execute("print('main', ev.wait(30))"))

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(busy_main)
                    # The main shell blocks on ev until the subshell sets it: this only
                    # finishes if the subshell runs concurrently.
                    sub = await client.execute(
                        "print('sub'); ev.set()", subshell_id=subshell, raise_on_error=True
                    )
                assert sub.stdout == "sub\n"
                assert main[0].stdout == "main True\n"
                assert sub.reply.header.subshell_id == subshell or sub.ok


async def test_interrupt_sleep(ipykernel_process: KernelProcess) -> None:
    async with validated_client(ipykernel_process) as (client, _):
        with trio.fail_after(30):
            async with client.stream_execute("import time; time.sleep(60)") as run:
                async for msg in run:
                    if msg.msg_type == "execute_input":
                        break  # the kernel is running the code
                await client.interrupt()
                result = await run.wait()
    assert result.status == "error"
    assert result.error is not None and result.error.ename == "KeyboardInterrupt"


async def test_killed_kernel_fails_the_waiting_request(ipykernel_process: KernelProcess) -> None:
    async with validated_client(ipykernel_process, hb_interval=0.2, hb_deadline=1.0) as (
        client,
        _,
    ):
        async with client.stream_execute("import time; time.sleep(60)") as run:
            with trio.fail_after(30):
                async for msg in run:
                    if msg.msg_type == "execute_input":
                        break
            os.killpg(ipykernel_process.process.pid, signal.SIGKILL)
            start = trio.current_time()
            with trio.fail_after(10), pytest.raises(KernelDied):
                await run.wait()
            assert trio.current_time() - start < 5
        with pytest.raises(KernelDied):
            await client.kernel_info()  # fails at once while the kernel is silent


# -- other kernels ------------------------------------------------------------------------


async def test_xeus_python(xeus_python: KernelProcess) -> None:
    async with validated_client(xeus_python) as (client, _):
        with trio.fail_after(30):
            info = client.kernel_info_cache
            assert info is not None and info.implementation == "xeus-python"
            result = await client.execute("print('hi from xeus')\n6 * 7")
            assert result.ok and result.stdout == "hi from xeus\n"
            assert result.data is not None and result.data["text/plain"] == "42"
            failed = await client.execute("1 / 0")
            assert failed.status == "error" and failed.error is not None
            # xeus-python spells the name "<class 'ZeroDivisionError'>".
            assert "ZeroDivisionError" in failed.error.ename
            assert failed.error.evalue == "division by zero"
            assert "ZeroDivisionError" in one_of(failed, "error")["ename"]


async def test_async_kernel(async_kernel: KernelProcess) -> None:
    async with validated_client(async_kernel) as (client, _):
        with trio.fail_after(30):
            info = client.kernel_info_cache
            assert info is not None and info.implementation == "async-kernel"
            assert info.protocol_version == "5.5"
            result = await client.execute("print('hi from async-kernel')\n6 * 7")
            assert result.ok and result.stdout == "hi from async-kernel\n"
            assert result.data == {"text/plain": "42"}
            failed = await client.execute("1 / 0")
            assert failed.status == "error" and failed.error is not None
            assert failed.error.ename == "ZeroDivisionError"
            assert (await client.kernel_info(channel="control")).implementation == "async-kernel"
            assert (await client.complete("import o")).ok
            assert (await client.inspect("len")).ok
            assert (await client.is_complete("for i in x:")).status == "incomplete"
            assert (await client.comm_info()).ok
            # Our input_reply carries "status" (as JupyterLab's do), which async-kernel reads.
            asked = await client.execute(
                "print('hi', input('name? '))", stdin=lambda request: "Ada"
            )
            assert asked.ok, asked.error
            assert asked.stdout == "hi Ada\n"


async def test_async_kernel_concurrent_requests_get_their_own_replies(
    async_kernel: KernelProcess,
) -> None:
    """async-kernel runs ``# task`` cells concurrently: every cell here waits until all of them
    are running (a barrier in the kernel), so replies and outputs come back interleaved, in
    the kernel's order, not the requests'. Each must reach the task that asked."""
    n = 40
    async with validated_client(async_kernel) as (client, _):
        executions: dict[int, ExecuteResult] = {}
        others: dict[int, str] = {}

        async def execute(i: int) -> None:
            code = (
                "# task\n"
                "running[0] += 1\n"
                "if running[0] == N:\n"
                "    everyone.set()\n"
                "await everyone.wait()\n"
                f"print({i}, end='')\n"
                f"{i} * 2"
            )
            # store_history=False: IPython's history database is not safe for concurrent
            # cells (async-kernel then prints "Session/line number was not unique").
            executions[i] = await client.execute(code, store_history=False)

        async def other(i: int) -> None:
            if i % 3 == 0:
                others[i] = (await client.kernel_info(channel="control")).implementation
            elif i % 3 == 1:
                others[i] = str((await client.complete(f"v{i}_"))["cursor_end"])
            else:
                others[i] = (await client.is_complete(f"x = {i}")).status

        with trio.fail_after(120):
            setup = f"import trio\neveryone = trio.Event()\nrunning = [0]\nN = {n}"
            await client.execute(setup, raise_on_error=True)
            async with trio.open_nursery() as nursery:
                for i in range(n):
                    nursery.start_soon(execute, i)
                    nursery.start_soon(other, i)
        stats = client.statistics()
    assert len(executions) == len(others) == n
    for i, result in executions.items():
        assert result.ok, (i, result.error)
        assert result.stdout == str(i)
        assert result.data == {"text/plain": str(i * 2)}
        assert {m.parent_id for m in result.messages} == {result.reply.parent_id}
    for i, answer in others.items():
        assert answer == {0: "async-kernel", 1: str(len(f"v{i}_")), 2: "complete"}[i % 3]
    assert stats.pending == 0 and stats.unclaimed_replies == 0


async def protocol_5_5_requests(kernel: KernelProcess, *, usage: bool) -> None:
    """Debug, subshells (and, with ``usage``, ipykernel's usage_request): every reply and
    event validates against the extended schemas (the autouse ``received_messages``)."""
    async with validated_client(kernel) as (client, checked):
        with trio.fail_after(60):
            initialized = await client.debug_request(
                "initialize",
                {"clientID": "test", "adapterID": "python", "pathFormat": "path"},
            )
            assert initialized["success"] is True and initialized["command"] == "initialize"
            subshell = await client.create_subshell()
            assert await client.list_subshell() == [subshell]
            result = await client.execute("print('in the subshell')", subshell_id=subshell)
            assert result.stdout == "in the subshell\n"
            assert (await client.delete_subshell(subshell)).ok
            assert await client.list_subshell() == []
            if usage:
                # An ipykernel extension (jupyter-resource-usage); async-kernel does not answer.
                reply = await client.request(
                    client.session.message("usage_request", {}, channel="control")
                )
                assert reply["pid"] == kernel.process.pid
    assert {"debug_reply", "create_subshell_reply", "list_subshell_reply"} <= set(checked.validated)


async def test_protocol_5_5_requests_ipykernel(ipykernel_process: KernelProcess) -> None:
    await protocol_5_5_requests(ipykernel_process, usage=True)


async def test_protocol_5_5_requests_async_kernel(async_kernel: KernelProcess) -> None:
    await protocol_5_5_requests(async_kernel, usage=False)


async def test_bash_kernel(tmp_path: Path) -> None:
    if importlib.util.find_spec("bash_kernel") is None:
        pytest.skip("bash_kernel is not installed")
    async with (
        kernel_process(tmp_path, BASH_KERNEL_ARGV) as kernel,
        validated_client(kernel) as (client, _),
    ):
        with trio.fail_after(60):
            assert client.kernel_info_cache is not None
            assert client.kernel_info_cache.language == "bash"
            result = await client.execute("echo hello; echo oops >&2")
            assert result.ok, result.outputs
            assert "hello" in result.stdout
            failed = await client.execute("false")
            assert failed.status == "error", failed.outputs
