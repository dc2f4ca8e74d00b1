"""A stateful hypothesis test of the client: random interleavings of requests, cancellations,
replies released in any order, reply faults and kernel death.

Invariants: each request gets its own reply or a clear error (a cancellation it asked for, or
``KernelDied``); nothing is delivered twice; nothing hangs; no request stays tracked.

The kernel is scripted on the kernel side of the testing kit (``open_kernel_channels``): it
handles every request concurrently and holds each execution at a gate until the machine
releases it, so replies come back in whatever order hypothesis picks, each with the fault the
request's code names. Hypothesis drives the machine synchronously, so the Trio program (kernel
and client) runs in a thread and each rule calls into it.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import attrs
import trio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule

from tests.reliability.conftest import examples, record
from trio_enchannel import (
    ExecuteResult,
    KernelClient,
    KernelDied,
    Message,
    SignatureMismatch,
    open_client,
)
from trio_enchannel._kernel._side import KernelChannels, open_kernel_channels
from trio_enchannel._wire._session import DELIMITER, Session
from trio_enchannel.testing import DEFAULT_KERNEL_INFO

T = TypeVar("T")

#: How long anything that should happen may take (generous: 2 cores, other tests running).
BOUND = 10.0
HB_INTERVAL = 0.05
HB_DEADLINE = 2.0  # the kernel shares the thread: no false alarm under load
#: Faults named in a request's code (``"q3:drop"``): what the kernel does with its reply.
FAULTS = ("", "drop", "duplicate", "late", "forge", "garbage")
#: Faults whose request can never complete (its reply never reaches the client).
UNANSWERED = frozenset({"drop"})
#: Faults whose request ends with this error (a forged reply is rejected and says so).
FAILING = {"forge": SignatureMismatch}
OK_REPLY = {"status": "ok", "execution_count": 1, "user_expressions": {}, "payload": []}


class ScriptedKernel:
    """Handles each request concurrently; an execution waits at its gate, then answers with
    the fault its code names."""

    def __init__(self, kc: KernelChannels) -> None:
        self.kc = kc
        self.gates: dict[str, trio.Event] = {}

    def gate(self, code: str) -> trio.Event:
        return self.gates.setdefault(code, trio.Event())

    async def serve(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._serve_control)
            async for request in self.kc.shell:
                nursery.start_soon(self._handle, request)

    async def _serve_control(self) -> None:
        async for request in self.kc.control:
            try:
                async with self.kc.busy(request):
                    await self.kc.reply(request, dict(DEFAULT_KERNEL_INFO))
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                return

    async def _handle(self, request: Message) -> None:
        try:
            await self._answer(request)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # the kernel died

    async def _answer(self, request: Message) -> None:
        kc = self.kc
        if request.msg_type != "execute_request":
            async with kc.busy(request):
                await kc.reply(request, dict(DEFAULT_KERNEL_INFO))
            return
        code = request.content["code"]
        fault = code.partition(":")[2]
        await kc.publish_status("busy", request)
        await kc.publish("execute_input", {"code": code, "execution_count": 1}, parent=request)
        await self.gate(code).wait()
        await kc.publish("stream", {"name": "stdout", "text": f"out:{code}\n"}, parent=request)
        await kc.publish(
            "execute_result",
            {"data": {"text/plain": f"res:{code}"}, "metadata": {}, "execution_count": 1},
            parent=request,
        )
        if fault == "late":
            await kc.publish_status("idle", request)
        if fault == "garbage":
            await kc.shell.send_frames([*request.identities, b"garbage", DELIMITER, b"x"])
        if fault == "forge":
            forged = Session("not-the-key").reply(request, OK_REPLY)
            await kc.shell.send_frames(Session("not-the-key").serialize(forged))
        elif fault != "drop":
            await kc.reply(request, OK_REPLY)
        if fault == "duplicate":
            await kc.reply(request, OK_REPLY)
        if fault != "late":
            await kc.publish_status("idle", request)


@attrs.define
class Outcome:
    kind: str  # "ok", "cancelled", "died", "error"
    result: ExecuteResult | None = None
    error: BaseException | None = None


class TrioSide:
    """The Trio program in its thread: a scripted kernel, a client, the requests' tasks."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.failure: BaseException | None = None
        self.outcomes: dict[str, Outcome] = {}
        self.scopes: dict[str, trio.CancelScope] = {}
        self.cancel_requested: set[str] = set()
        self.done: dict[str, trio.Event] = {}
        self.client: KernelClient
        self.kernel: ScriptedKernel
        self.kc: KernelChannels
        self.tasks: trio.Nursery
        self._token: trio.lowlevel.TrioToken
        self._stop: trio.Event
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self.ready.wait(BOUND * 3):
            raise RuntimeError("the Trio side did not start")
        if self.failure is not None:
            raise self.failure

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:
            self.failure = exc
        finally:
            self.ready.set()

    async def _main(self) -> None:
        self._stop = trio.Event()
        async with open_kernel_channels() as kc, trio.open_nursery() as kernel_tasks:
            self.kc = kc
            self.kernel = ScriptedKernel(kc)
            kernel_tasks.start_soon(self.kernel.serve)
            async with open_client(
                kc.connection_info, hb_interval=HB_INTERVAL, hb_deadline=HB_DEADLINE
            ) as client:
                self.client = client
                with trio.fail_after(BOUND):
                    await client.wait_ready()
                async with trio.open_nursery() as tasks:
                    self.tasks = tasks
                    self._token = trio.lowlevel.current_trio_token()
                    self.ready.set()
                    await self._stop.wait()
                    tasks.cancel_scope.cancel()
            kernel_tasks.cancel_scope.cancel()

    # -- calls from the hypothesis thread --------------------------------------------------

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        return trio.from_thread.run(fn, *args, trio_token=self._token)

    def call_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)

    def stop(self) -> None:
        if self.ready.is_set() and self._thread.is_alive():
            try:
                self.call_sync(self._stop.set)
            except trio.RunFinishedError:
                pass
        self._thread.join(BOUND * 3)
        assert not self._thread.is_alive(), "the Trio side hangs on close"
        if self.failure is not None:
            raise self.failure

    # -- what runs in the Trio thread -------------------------------------------------------

    def start_request(self, code: str) -> None:
        self.done[code] = trio.Event()
        self.tasks.start_soon(self._request, code)

    async def _request(self, code: str) -> None:
        with trio.CancelScope() as scope:
            self.scopes[code] = scope
            if code in self.cancel_requested:
                scope.cancel()
            try:
                result = await self.client.execute(code)
                self.outcomes[code] = Outcome("ok", result)
            except KernelDied as exc:
                self.outcomes[code] = Outcome("died", error=exc)
            except Exception as exc:
                self.outcomes[code] = Outcome("error", error=exc)
        if scope.cancelled_caught:
            self.outcomes[code] = Outcome("cancelled")
        self.done[code].set()

    def cancel(self, code: str) -> None:
        self.cancel_requested.add(code)
        scope = self.scopes.get(code)
        if scope is not None:
            scope.cancel()

    async def wait_done(self, codes: list[str], within: float) -> list[str]:
        """Wait until every request in ``codes`` has an outcome; return those that do not."""
        with trio.move_on_after(within):
            for code in codes:
                await self.done[code].wait()
        return [c for c in codes if c not in self.outcomes]

    async def kernel_info(self) -> str:
        with trio.fail_after(BOUND):
            info = await self.client.kernel_info(channel="control")
        return info.implementation


class ClientMachine(RuleBasedStateMachine):
    """Random interleavings of requests, releases, cancellations, faults and death."""

    requests = Bundle("requests")

    def __init__(self) -> None:
        super().__init__()
        self.side = TrioSide()
        self.faults: dict[str, str] = {}
        self.released: set[str] = set()
        self.cancelled: set[str] = set()
        self.dead = False
        self.seen_msg_ids: set[str] = set()
        self.checked: set[str] = set()

    # -- rules -----------------------------------------------------------------------------

    @precondition(lambda self: not self.dead)
    @rule(target=requests, fault=st.sampled_from((*FAULTS, "", "")))
    def send_execute(self, fault: str) -> str:
        code = f"q{len(self.faults)}:{fault}"
        self.faults[code] = fault
        self.side.call_sync(self.side.start_request, code)
        record(f"state machine: requests, reply fault {fault or 'none'}")
        return code

    @rule(code=requests)
    def release(self, code: str) -> None:
        self.released.add(code)
        self.side.call_sync(self.side.kernel.gate(code).set)

    @rule(code=requests)
    def cancel(self, code: str) -> None:
        self.cancelled.add(code)
        self.side.call_sync(self.side.cancel, code)
        record("state machine: cancellations")

    @precondition(lambda self: not self.dead)
    @rule()
    def kernel_info_on_control(self) -> None:
        # Answered at once even while executions wait at their gates.
        assert self.side.call(self.side.kernel_info) == DEFAULT_KERNEL_INFO["implementation"]

    @rule()
    def settle(self) -> None:
        """Everything that can finish does, within the bound: nothing hangs."""
        expected = self._must_finish()
        late = self.side.call(self.side.wait_done, expected, BOUND)
        assert not late, f"requests that never finished: {late}"

    @precondition(lambda self: not self.dead and len(self.faults) >= 4)
    @rule()
    def kernel_dies(self) -> None:
        self.dead = True
        self.side.call_sync(self.side.kc.abort)
        record("state machine: kernel deaths")
        # Every request still waiting fails with KernelDied (the heartbeat notices).
        self.settle()

    # -- invariants ------------------------------------------------------------------------

    def _must_finish(self) -> list[str]:
        codes = []
        for code, fault in self.faults.items():
            if (
                code in self.cancelled
                or self.dead
                or (code in self.released and fault not in UNANSWERED)
            ):
                codes.append(code)
        return codes

    @invariant()
    def every_outcome_is_right(self) -> None:
        outcomes: dict[str, Outcome] = self.side.call_sync(dict, self.side.outcomes)
        for code, outcome in outcomes.items():
            if code in self.checked:
                continue
            self.checked.add(code)
            fault = self.faults[code]
            if outcome.kind == "ok":
                assert outcome.result is not None
                assert fault not in UNANSWERED and fault not in FAILING, (
                    f"{code} completed without a valid reply"
                )
                result = outcome.result
                assert result.status == "ok"
                assert result.stdout == f"out:{code}\n", (code, result.stdout)
                texts = [o["data"].get("text/plain") for o in result.outputs if "data" in o]
                assert texts == [f"res:{code}"], (code, texts)
                request_id = result.reply.parent_id
                assert all(m.parent_id == request_id for m in result.messages)
                ids = {m.msg_id for m in result.messages}
                assert not ids & self.seen_msg_ids, f"{code}: a message delivered twice"
                self.seen_msg_ids |= ids
            elif outcome.kind == "cancelled":
                assert code in self.cancelled, f"{code} cancelled without being asked"
            elif outcome.kind == "died":
                assert self.dead, f"{code}: KernelDied while the kernel lives: {outcome.error!r}"
            elif fault in FAILING:
                assert isinstance(outcome.error, FAILING[fault]), (code, outcome.error)
            else:
                raise AssertionError(f"{code}: unexpected {outcome.error!r}")

    # -- teardown --------------------------------------------------------------------------

    def teardown(self) -> None:
        try:
            if not self.dead:
                for code in self.faults:
                    self.release(code)
            self.settle()
            # What can never be answered is abandoned by its caller: that must be prompt.
            for code in self.faults:
                if code not in self.side.outcomes:
                    self.cancel(code)
            self.settle()
            self.every_outcome_is_right()
            assert set(self.side.outcomes) == set(self.faults)
            assert self.side.call_sync(self.side.client.statistics).pending == 0
        finally:
            self.side.stop()


ClientMachine.TestCase.settings = settings(
    max_examples=examples(40, 1000),
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestClientMachine = ClientMachine.TestCase
