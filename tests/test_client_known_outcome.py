"""Calls whose outcome is already known fail at once, with the same typed error, on every
path of the client: a kernel known to be dead (stale connection file, a kernel killed before
the first request), a ZeroMQ handshake that cannot succeed (wrong CurveZMQ key, encryption
on one side only), replies rejected for their signature (different keys). None of these
waits for a timeout the caller may not have set."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from tests.conftest import XEUS_PYTHON_ARGV, KernelProcess, kernel_process
from trio_enchannel import (
    Channels,
    ConnectionInfo,
    ConnectionInfoError,
    ExecuteResult,
    KernelClient,
    KernelDied,
    LocalProtocolError,
    Message,
    Session,
    SignatureMismatch,
    open_channels,
    open_client,
    open_kernel,
)
from trio_enchannel._io._zmq import SocketKind, TrioSocket, curve_keypair, has_curve
from trio_enchannel.testing import (
    CommOpen,
    FakeKernel,
    ForgeSignature,
    Gate,
    open_fake_kernel,
)

TIMEOUT = 10

Call = Callable[[KernelClient], Awaitable[Any]]


async def _stream_execute(client: KernelClient) -> None:
    async with client.stream_execute("1") as run:
        async for _ in run:
            pass


async def _open_subshell(client: KernelClient) -> None:
    async with client.open_subshell():
        pass


async def _open_comm(client: KernelClient) -> None:
    await client.open_comm("jupyter.widget")


async def _send(client: KernelClient) -> None:
    await client.send(client.session.message("kernel_info_request", channel="shell"))


async def _request(client: KernelClient) -> None:
    await client.request(client.session.message("kernel_info_request", channel="control"))


#: Every path of the client that sends to the kernel or waits on it.
EVERY_CALL: dict[str, Call] = {
    "wait_ready": lambda c: c.wait_ready(),
    "execute": lambda c: c.execute("1"),
    "stream_execute": _stream_execute,
    "kernel_info": lambda c: c.kernel_info(),
    "kernel_info(control)": lambda c: c.kernel_info(channel="control"),
    "inspect": lambda c: c.inspect("x"),
    "complete": lambda c: c.complete("x"),
    "history": lambda c: c.history(),
    "is_complete": lambda c: c.is_complete("x"),
    "comm_info": lambda c: c.comm_info(),
    "shutdown": lambda c: c.shutdown(),
    "interrupt": lambda c: c.interrupt(),
    "debug_request": lambda c: c.debug_request("initialize"),
    "create_subshell": lambda c: c.create_subshell(),
    "list_subshell": lambda c: c.list_subshell(),
    "delete_subshell": lambda c: c.delete_subshell("s"),
    "open_subshell": _open_subshell,
    "open_comm": _open_comm,
    "send": _send,
    "request": _request,
}


async def assert_every_call_fails(
    client: KernelClient, error: type[BaseException], match: str
) -> None:
    for name, call in EVERY_CALL.items():
        # (a bound well inside the tests' own, so that a wait shows as this message)
        with trio.move_on_after(TIMEOUT / 4) as waited, pytest.raises(error, match=match):
            await call(client)
        assert not waited.cancelled_caught, f"{name}() waited although the outcome was known"


# -- a kernel known to be dead ---------------------------------------------------------------


async def test_stale_connection_file_fails_every_call_at_once() -> None:
    """Nothing listens on the connection file's ports; the heartbeat has declared the kernel
    dead before IOPub ever came alive. kernel_info() always failed at once; every other
    path, wait_ready() and the first execute() included, must too."""
    stale = ConnectionInfo.allocate(key="stale")
    with trio.fail_after(TIMEOUT):
        async with open_client(
            stale, hb_interval=0.05, hb_deadline=0.2, hb_startup_deadline=0.2
        ) as client:
            await client.channels.heartbeat.wait_unresponsive()  # type: ignore[attr-defined]
            await assert_every_call_fails(client, KernelDied, "no heartbeat reply")
            assert client.statistics().pending == 0


@pytest.mark.kernel
async def test_ipykernel_killed_before_the_first_request(tmp_path: Path) -> None:
    """A real kernel that died before the client's first request: once the heartbeat
    has said so, execute() and stream_execute() fail at once, as kernel_info() does."""
    with trio.fail_after(60):
        async with (
            kernel_process(tmp_path) as kernel,
            open_client(
                kernel.info, hb_interval=0.05, hb_deadline=0.3, hb_startup_deadline=30
            ) as client,
        ):
            await client.channels.heartbeat.wait_responsive()  # type: ignore[attr-defined]
            kernel.process.send_signal(signal.SIGKILL)
            await kernel.process.wait()
            await client.channels.heartbeat.wait_unresponsive()  # type: ignore[attr-defined]
            for call in (EVERY_CALL["execute"], _stream_execute, EVERY_CALL["kernel_info"]):
                with trio.fail_after(TIMEOUT), pytest.raises(KernelDied, match="heartbeat"):
                    await call(client)
            with trio.fail_after(TIMEOUT), pytest.raises(KernelDied):
                await client.wait_ready()


async def test_a_restart_lets_wait_ready_wait_through_the_old_death() -> None:
    """reset_readiness() (a launcher about to start a new process) forgets the old death:
    wait_ready() then waits for the new process instead of failing at once."""
    stale = ConnectionInfo.allocate(key="stale")
    with trio.fail_after(TIMEOUT):
        async with open_client(
            stale, hb_interval=0.05, hb_deadline=0.2, hb_startup_deadline=0.2
        ) as client:
            await client.channels.heartbeat.wait_unresponsive()  # type: ignore[attr-defined]
            client.reset_readiness()
            with trio.move_on_after(0.5) as waited:
                await client.wait_ready()
            assert waited.cancelled_caught  # it waited (nothing will ever answer)
            with pytest.raises(KernelDied):
                await client.execute("1")  # other calls still fail while it is silent


# -- a ZeroMQ handshake that cannot succeed --------------------------------------------------

needs_curve = pytest.mark.skipif(not has_curve(), reason="libzmq without CurveZMQ")


def _curve(info: ConnectionInfo) -> ConnectionInfo:
    public, secret = curve_keypair()
    return attrs.evolve(info, curve_publickey=public, curve_secretkey=secret)


def _plain(info: ConnectionInfo) -> ConnectionInfo:
    return attrs.evolve(info, curve_publickey=None, curve_secretkey=None)


MISMATCHES: dict[str, tuple[bool, Callable[[ConnectionInfo], ConnectionInfo]]] = {
    # kernel encrypts?, what the client is given
    "wrong curve_publickey": (
        True,
        lambda bound: attrs.evolve(bound, curve_publickey=curve_keypair()[0]),
    ),
    "plain client, encrypting kernel": (True, _plain),
    "encrypting client, plain kernel": (
        False,
        lambda bound: attrs.evolve(bound, curve_publickey=curve_keypair()[0]),
    ),
}


@needs_curve
@pytest.mark.parametrize("case", sorted(MISMATCHES))
async def test_failed_handshake_reaches_every_waiter_of_the_channels(case: str) -> None:
    encrypting, client_info = MISMATCHES[case]
    base = ConnectionInfo.allocate(key="k")
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel(info=_curve(base) if encrypting else base) as fk:
            info = client_info(fk.connection_info)
            async with open_channels(info, heartbeat=False) as ch:
                request = ch.session.message("kernel_info_request", channel="shell")
                async with trio.open_nursery() as nursery:
                    # Waiters already blocked when the failure becomes known get it too.
                    for wait in (ch.shell.receive, ch.control.receive, ch.iopub.receive):
                        nursery.start_soon(_expect_unreachable, wait)
                    # A send may also be queued before the failure is known (libzmq queues
                    # for a connection in progress); it must not wait forever.
                    nursery.start_soon(_send_or_unreachable, ch, request)
                    nursery.start_soon(_expect_unreachable, ch.wait_iopub_ready)
                    await _expect_unreachable(ch.wait_connected)
                assert ch.handshake_error is not None
                # ... and every later call, at once.
                for call in (
                    ch.wait_connected,
                    ch.wait_iopub_ready,
                    ch.shell.receive,
                    lambda: ch.control.send(ch.session.message("kernel_info_request")),
                ):
                    await _expect_unreachable(call)
                with pytest.raises(ConnectionInfoError):
                    ch.stdin.send_nowait(ch.session.message("input_reply", {"value": ""}))
            assert not fk.requests


async def _send_or_unreachable(ch: Channels, request: Message) -> None:
    try:
        await ch.shell.send(request)
    except ConnectionInfoError as exc:
        assert "handshake" in str(exc)


async def _expect_unreachable(call: Callable[[], Awaitable[Any]]) -> None:
    with pytest.raises(ConnectionInfoError, match="handshake"):
        await call()


@needs_curve
@pytest.mark.parametrize("case", sorted(MISMATCHES))
async def test_failed_handshake_fails_every_call_of_the_client(case: str) -> None:
    encrypting, client_info = MISMATCHES[case]
    base = ConnectionInfo.allocate(key="k")
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel(info=_curve(base) if encrypting else base) as fk:
            client_info_ = client_info(fk.connection_info)
            async with open_client(client_info_) as client:
                with pytest.raises(ConnectionInfoError, match="handshake"):
                    await client.wait_ready()  # no 30 s "no heartbeat reply"
                await assert_every_call_fails(client, ConnectionInfoError, "handshake")


#: A socket of the connection info pointed at a stranger: (kernel encrypts?, the stranger's
#: socket kind for that channel). The stranger is a CurveZMQ server with its own keys, so a
#: plain client fails its handshake with a protocol error at once and an encrypting one
#: (which has the kernel's public key) without detail, at every attempt.
STRANGERS: dict[str, tuple[bool, SocketKind]] = {
    "iopub, plain client": (False, "PUB"),
    "iopub, encrypting client": (True, "PUB"),
    "hb, plain client": (False, "REP"),
    "hb, encrypting client": (True, "REP"),
}


@contextlib.asynccontextmanager
async def _one_stranger_socket(case: str) -> AsyncIterator[tuple[str, ConnectionInfo]]:
    """A fake kernel whose connection info has one socket (IOPub or heartbeat) that fails
    its handshake for good: what the client is given, and that socket's name."""
    encrypting, kind = STRANGERS[case]
    name = case.split(",")[0]
    base = ConnectionInfo.allocate(key="k")
    async with open_fake_kernel(info=_curve(base) if encrypting else base) as fk:
        stranger = TrioSocket(kind, linger=0)
        try:
            stranger.set_curve_server(curve_keypair()[1])
            endpoint = stranger.bind("tcp://127.0.0.1:0")
            port = int(endpoint.rsplit(":", 1)[1])
            info = fk.connection_info
            if name == "iopub":
                yield name, attrs.evolve(info, iopub_port=port)
            else:
                yield name, attrs.evolve(info, hb_port=port)
        finally:
            stranger.close()


@needs_curve
@pytest.mark.parametrize("case", sorted(STRANGERS))
async def test_a_failed_handshake_of_iopub_or_the_heartbeat_alone_is_final(case: str) -> None:
    """Only IOPub's (or only the heartbeat's) handshake fails: shell and control answer, but
    no output or idle ever arrives (or no echo, until a misleading "no heartbeat reply"
    30 s later). The failure is final as for the other sockets: an execute() waiting for
    IOPub, a task waiting on unclaimed_iopub, and every later call fail with
    ConnectionInfoError naming the socket (and, for the heartbeat, heartbeat=False, which
    does without it)."""
    with trio.fail_after(TIMEOUT):
        async with _one_stranger_socket(case) as (name, info), open_client(info) as client:
            match = "the iopub socket" if name == "iopub" else "the heartbeat socket"
            if name == "iopub":
                with pytest.raises(ConnectionInfoError, match=match) as caught:
                    await client.execute("1")
                assert caught.value.reason == "handshake_failed"
            # (the heartbeat's failure is known after its first attempt, or its third
            # without detail: calls made before may succeed)
            with pytest.raises(ConnectionInfoError, match=match):
                await _drain(client.unclaimed_iopub)()
            await assert_every_call_fails(client, ConnectionInfoError, match)


@needs_curve
@pytest.mark.parametrize("case", sorted(STRANGERS))
async def test_a_failed_handshake_of_iopub_or_the_heartbeat_reaches_the_channels_waiters(
    case: str,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            _one_stranger_socket(case) as (name, info),
            open_channels(info, hb_interval=0.2) as ch,
        ):
            if name == "iopub":
                await _expect_unreachable(ch.wait_iopub_ready)
            await _expect_unreachable(_drain(ch.iopub))
            error = ch.handshake_error
            assert error is not None and error.reason == "handshake_failed"
            if name == "iopub":
                assert "the iopub socket" in str(error)
                assert "these channels cannot talk to the kernel" in str(error)
            else:  # only the heartbeat socket failed: say so, and what does without it
                assert "the heartbeat socket" in str(error) and "hb socket" not in str(error)
                assert "heartbeat=False" in str(error)
                assert "cannot talk to the kernel" not in str(error)
            await _expect_unreachable(ch.wait_connected)
            await _expect_unreachable(
                lambda: ch.shell.send(ch.session.message("kernel_info_request"))
            )


# -- replies rejected for their signature ----------------------------------------------------


@pytest.mark.parametrize(
    ("kernel_key", "client_key", "rejected"),
    [("kernel-key", "client-key", "invalid_signature"), ("", "client-key", "unsigned")],
)
async def test_signature_mismatch_fails_every_call_with_a_typed_error(
    kernel_key: str, client_key: str, rejected: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel(info=ConnectionInfo.allocate(key=kernel_key)) as fk:
            info = attrs.evolve(fk.connection_info, key=client_key)
            async with open_client(info) as client:
                with pytest.raises(SignatureMismatch, match="key") as caught:
                    await client.wait_ready()
                assert caught.value.reason == "signature_mismatch"
                assert caught.value.rejected_reason == rejected
                await assert_every_call_fails(client, SignatureMismatch, "key")


@pytest.mark.kernel
@pytest.mark.parametrize(
    ("kernel_key", "rejected"), [("kernel-key", "invalid_signature"), ("", "unsigned")]
)
async def test_ipykernel_with_another_key_is_named_as_the_cause(
    tmp_path: Path, kernel_key: str, rejected: str
) -> None:
    """ipykernel drops requests signed with another key without a word, and a kernel without
    a key sends unsigned answers: either way the client says what is wrong instead of
    waiting for the caller's timeout."""
    with trio.fail_after(60):
        info = ConnectionInfo.allocate(key=kernel_key)
        async with kernel_process(tmp_path, info=info) as kernel:
            wrong = attrs.evolve(kernel.info, key="client-key")
            async with open_client(wrong) as client:
                with pytest.raises(SignatureMismatch) as caught:
                    await client.wait_ready()
                assert caught.value.rejected_reason == rejected
                with pytest.raises(SignatureMismatch):
                    await client.execute("1")


@pytest.mark.parametrize("scheme", ["hmac-sha512", "hmac-md5"])
async def test_another_signature_scheme_with_the_same_key_is_a_signature_mismatch(
    scheme: str,
) -> None:
    """The same key, another scheme: each side rejects what the other signs; the kernel's
    first message names the cause instead of every call waiting."""
    same_key = ConnectionInfo.allocate(key="same-key", signature_scheme=scheme)
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel(info=same_key) as fk:
            ours = attrs.evolve(fk.connection_info, signature_scheme="hmac-sha256")
            async with open_client(ours) as client:
                with pytest.raises(SignatureMismatch, match="signature_scheme") as caught:
                    await client.wait_ready()
                assert caught.value.rejected_reason == "invalid_signature"
                await assert_every_call_fails(client, SignatureMismatch, "signature_scheme")
            assert not fk.requests


@pytest.mark.kernel
async def test_ipykernel_with_another_signature_scheme_is_named_as_the_cause(
    tmp_path: Path,
) -> None:
    """ipykernel signing with hmac-sha512, the client with hmac-sha256 and the same key."""
    with trio.fail_after(60):
        info = ConnectionInfo.allocate(key="same-key", signature_scheme="hmac-sha512")
        async with kernel_process(tmp_path, info=info) as kernel:
            ours = attrs.evolve(kernel.info, signature_scheme="hmac-sha256")
            async with open_client(ours) as client:
                with pytest.raises(SignatureMismatch, match="signature_scheme"):
                    await client.wait_ready()
                with pytest.raises(SignatureMismatch):
                    await client.execute("1")


@pytest.mark.parametrize("unsigned", [False, True])
async def test_forged_answer_to_one_request_fails_only_that_request(unsigned: bool) -> None:
    """After the kernel proved it signs as we do, a rejected message that claims to answer
    a pending request fails that request (typed, at once), and nothing else."""
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel() as fk, open_client(fk.connection_info) as client:
            await client.wait_ready()
            fk.inject(ForgeSignature(unsigned=unsigned))
            with pytest.raises(SignatureMismatch) as caught:
                await client.execute("forged")
            assert caught.value.rejected_reason == ("unsigned" if unsigned else "invalid_signature")
            assert (await client.execute("next")).ok
            assert client.statistics().pending == 0


# -- a kernel already running work (late joiner) ---------------------------------------------


@pytest.mark.kernel
async def test_wait_ready_on_a_busy_ipykernel_does_not_wait_for_the_cell(
    tmp_path: Path,
) -> None:
    """A client that joins while a long cell runs: IOPub is live and control answers at
    once, so wait_ready() returns without waiting for the cell to end (the cell here
    ends only when the test says so)."""
    release = tmp_path / "release"
    cell = (
        "import os, time\n"
        f"while not os.path.exists({str(release)!r}):\n"
        "    time.sleep(0.01)\n"
        "print('done')\n"
    )
    started = trio.Event()
    results: list[ExecuteResult] = []

    async def run_cell(client: KernelClient) -> None:
        async with client.stream_execute(cell) as run:
            async for msg in run:
                if msg.msg_type == "execute_input":
                    started.set()
        results.append(run.result)

    with trio.fail_after(60):
        async with kernel_process(tmp_path) as kernel, open_client(kernel.info) as first:
            await first.wait_ready()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run_cell, first)
                await started.wait()
                async with open_client(kernel.info) as late:
                    with trio.fail_after(TIMEOUT):
                        info = await late.wait_ready()
                    assert info.implementation == "ipython"
                    assert late.iopub_ready
                    # The shell is still busy: the cell has not been released.
                    assert not results
                    await trio.Path(release).touch()
    assert results[0].stdout == "done\n"


# -- the remote transport ---------------------------------------------------------------------


async def test_remote_kernel_reported_dead_fails_every_call_at_once() -> None:
    """Over a Jupyter Server websocket: once the server reports the kernel dead, every path
    of the client fails at once with the same KernelDied (wait_ready included)."""
    from tests.test_remote_fake import KERNEL, TOKEN, FakeConnection, serving
    from trio_enchannel._remote._channels import open_remote_channels

    async def script(conn: FakeConnection) -> None:
        await conn.status("dead")
        await trio.sleep_forever()

    with trio.fail_after(20):
        async with (
            serving(script) as server,
            open_remote_channels(server.url, KERNEL, token=TOKEN) as ch,
            open_client(ch) as client,
        ):
            await ch.wait_unresponsive()
            await assert_every_call_fails(client, KernelDied, "dead")


# -- channels closed under the client -------------------------------------------------------


@contextlib.asynccontextmanager
async def _client_over_own_channels() -> AsyncIterator[tuple[FakeKernel, Channels, KernelClient]]:
    """A fake kernel, channels of one's own and a client over them, the client ready."""
    async with (
        open_fake_kernel() as kernel,
        open_channels(kernel.connection_info, heartbeat=False) as ch,
        open_client(ch) as client,
    ):
        await client.kernel_info()
        yield kernel, ch, client


async def test_channels_closed_under_the_client_fail_every_call_at_once() -> None:
    """Channels of one's own closed while a client over them is open: every path of the
    client fails at once with the ClosedResourceError its docs name, however long after the
    close the call comes (the client's routing has ended by then)."""
    with trio.fail_after(TIMEOUT):
        async with _client_over_own_channels() as (_, ch, client):
            await ch.aclose()
            await trio.testing.wait_all_tasks_blocked()  # the routing tasks saw the end
            await assert_every_call_fails(client, trio.ClosedResourceError, "closed")


@pytest.mark.parametrize("view", ["shell", "control", "iopub"])
async def test_a_view_the_client_reads_closed_under_it_fails_every_call_at_once(
    view: str,
) -> None:
    """The client must be the only reader of shell, control and IOPub: once one of those
    views is closed under it, nothing can be routed and every call fails at once."""
    with trio.fail_after(TIMEOUT):
        async with _client_over_own_channels() as (_, ch, client):
            await getattr(ch, view).aclose()
            await trio.testing.wait_all_tasks_blocked()
            await assert_every_call_fails(client, trio.ClosedResourceError, f"the {view}")


async def test_a_reported_death_comes_before_channels_closed_under_the_client() -> None:
    """The kernel was declared dead, then the channels closed under the client: calls fail
    with the death, the more telling of the two outcomes known."""
    with trio.fail_after(TIMEOUT):
        async with _client_over_own_channels() as (_, ch, client):
            client.declare_dead(KernelDied("process exited with code 9"))
            await ch.aclose()
            await trio.testing.wait_all_tasks_blocked()
            await assert_every_call_fails(client, KernelDied, "code 9")


async def test_closing_the_stdin_view_under_the_client_fails_only_what_may_prompt() -> None:
    """Only prompts need stdin: once its view is closed under the client, an execution in
    flight and a listener waiting across the close go on, and requests still go through;
    an execution that allows prompts (one queued before the close, and later ones) fails at
    once, since nothing could answer or refuse its prompt."""
    gate = Gate()
    with trio.fail_after(TIMEOUT):
        async with _client_over_own_channels() as (kernel, ch, client):
            kernel.script("block()", gate)

            async def listen() -> None:  # a listener waiting across the close: not failed
                await client.unclaimed_iopub.receive()

            async def prompted() -> None:  # sent before the close, queued behind block()
                with pytest.raises(trio.ClosedResourceError, match="prompts"):
                    await client.execute("2", stdin=lambda _: "x")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(listen)
                async with client.stream_execute("block()") as run:
                    await gate.wait_reached()
                    await kernel.wait_request("execute_request")  # block()
                    nursery.start_soon(prompted)
                    await kernel.wait_request("execute_request")  # "2", queued behind it
                    await ch.stdin.aclose()
                    await trio.testing.wait_all_tasks_blocked()
                    gate.open()
                    assert (await run.wait()).ok
                assert (await client.kernel_info()).implementation
                with pytest.raises(trio.ClosedResourceError, match="prompts"):
                    await client.execute("3", allow_stdin=True)
                assert (await client.execute("1")).ok
                nursery.cancel_scope.cancel()


async def test_channels_waits_fail_once_a_never_reached_kernel_is_declared_dead() -> None:
    """open_channels on a stale connection file: wait_connected() and wait_iopub_ready()
    raise KernelDied once the heartbeat has given up, instead of waiting forever."""
    stale = ConnectionInfo.allocate(key="stale")
    with trio.fail_after(TIMEOUT):
        async with open_channels(
            stale, hb_interval=0.05, hb_deadline=0.2, hb_startup_deadline=0.2
        ) as ch:
            async with trio.open_nursery() as nursery:  # waiting when the verdict comes
                nursery.start_soon(_expect_dead, ch.wait_connected)
                nursery.start_soon(_expect_dead, ch.wait_iopub_ready)
            await _expect_dead(ch.wait_connected)  # and at once afterwards
            await _expect_dead(ch.wait_iopub_ready)


async def _expect_dead(call: Callable[[], Awaitable[Any]]) -> None:
    with pytest.raises(KernelDied, match="no heartbeat reply"):
        await call()


@pytest.mark.kernel
async def test_subshells_on_xeus_python_fail_at_once_without_a_known_kernel_info(
    xeus_python: KernelProcess,
) -> None:
    """xeus-python does not support subshells and never answers create_subshell_request: a
    client that has not asked kernel_info yet asks it first instead of waiting forever."""
    with trio.fail_after(60):
        async with open_client(xeus_python.info) as client:
            assert client.kernel_info_cache is None
            with pytest.raises(LocalProtocolError, match="subshells"):
                await client.create_subshell()
            with pytest.raises(LocalProtocolError, match="subshells"):
                async with client.open_subshell():
                    pass


# -- receivers of what a dead kernel would have sent -------------------------------------------

Receive = Callable[[], Awaitable[Any]]


def _drain(source: Any, got: list[Any] | None = None) -> Receive:
    """Receive from ``source`` (a receive channel) until it raises."""

    async def drain() -> None:
        while True:
            item = await source.receive()
            if got is not None:
                got.append(item)

    return drain


def _iterate(run: Any) -> Receive:
    async def iterate() -> None:
        async for _ in run:
            pass

    return iterate


async def assert_receivers_fail_with_the_death(
    receivers: dict[str, Receive],
    die: Callable[[], Awaitable[None]],
    match: str,
    error: type[BaseException] = KernelDied,
) -> None:
    """Each receiver is waiting when the kernel dies (or the outcome becomes known
    otherwise), and fails then with ``error``; called again afterwards, each fails at
    once."""
    waiting: dict[str, bool] = {}

    async def expect_death(name: str, receive: Receive) -> None:
        waiting[name] = True
        with pytest.raises(error, match=match):
            await receive()
        waiting[name] = False

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            for name, receive in receivers.items():
                nursery.start_soon(expect_death, name, receive)
            await trio.testing.wait_all_tasks_blocked()
            assert all(waiting.values()) and len(waiting) == len(receivers)
            await die()
    assert not any(waiting.values())
    for name, receive in receivers.items():
        with trio.move_on_after(TIMEOUT) as waited, pytest.raises(error, match=match):
            await receive()
        assert not waited.cancelled_caught, f"{name} waited although the outcome was known"


@pytest.mark.parametrize("death", ["declare_dead", "heartbeat"])
async def test_waiting_receivers_fail_at_once_when_the_kernel_dies(death: str) -> None:
    """unclaimed_replies, unclaimed_iopub, an accept_comms() queue, a comm, an iterated
    execution and a subscribe() subscription: a task waiting on one when the kernel is
    known dead (declared, or by the heartbeat's verdict) fails with KernelDied once what was
    queued is received, and every later receive fails at once."""
    gate = Gate()
    with trio.fail_after(TIMEOUT):
        async with (
            open_fake_kernel() as kernel,
            open_client(kernel.connection_info, hb_interval=0.05, hb_deadline=0.3) as client,
        ):
            kernel.script(
                "widgets()", CommOpen("w1", "jupyter.widget"), CommOpen("w2", "jupyter.widget")
            )
            kernel.script("block()", gate)
            widgets = client.accept_comms("jupyter.widget")
            assert (await client.execute("widgets()")).ok
            first = await widgets.receive()  # the second stays queued
            async with (
                client.subscribe() as everything,
                client.subscribe("execute_input") as started,
                client.stream_execute("block()") as run,
            ):
                await gate.wait_reached()
                # What the kernel published before the gate (busy, execute_input) has been
                # routed: a message routed after the death would lift it, by design.
                await started.receive()
                accepted: list[Any] = []
                receivers = {
                    "unclaimed_replies": _drain(client.unclaimed_replies),
                    "unclaimed_iopub": _drain(client.unclaimed_iopub),
                    "accept_comms": _drain(widgets, accepted),
                    "comm": _drain(first),
                    "comm iteration": _iterate(first),
                    "execution": _iterate(run),
                    "subscribe": _drain(everything),
                }

                async def die() -> None:
                    if death == "declare_dead":
                        client.declare_dead(KernelDied("process exited with code 9"))
                    else:
                        kernel.stop_heartbeat()
                        await client.channels.heartbeat.wait_unresponsive()  # type: ignore[attr-defined]

                match = "code 9" if death == "declare_dead" else "heartbeat"
                await assert_receivers_fail_with_the_death(receivers, die, match)
                assert [comm.comm_id for comm in accepted] == ["w2"]
                gate.open()


@pytest.mark.kernel
async def test_receivers_of_a_killed_ipykernel_fail_with_the_launchers_verdict(
    tmp_path: Path,
) -> None:
    """A real kernel killed by SIGKILL: once the launcher has seen the process exit, the
    tasks waiting on the client's queues, on a comm the kernel opened, on a running
    execution and on a subscription fail with its KernelDied; the queues deliver again after
    a restart."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    open_one = "from comm import create_comm\nc = create_comm(target_name='from-kernel')"
    with trio.fail_after(90):
        async with open_kernel("python3", runtime_dir=runtime) as kernel:
            client = kernel.client
            incoming = client.accept_comms("from-kernel")
            assert (await client.execute(open_one)).ok
            comm = await incoming.receive()
            async with (
                client.subscribe() as everything,
                client.stream_execute("import time\ntime.sleep(120)") as run,
            ):
                receivers = {
                    "unclaimed_iopub": _drain(client.unclaimed_iopub),
                    "unclaimed_replies": _drain(client.unclaimed_replies),
                    "accept_comms": _drain(incoming),
                    "comm": _drain(comm),
                    "execution": _iterate(run),
                    "subscribe": _drain(everything),
                }

                async def die() -> None:
                    os.kill(kernel.pid, signal.SIGKILL)

                await assert_receivers_fail_with_the_death(receivers, die, "SIGKILL")
            await kernel.restart()
            assert (await client.execute(open_one)).ok
            again = await incoming.receive()
            assert again.target_name == "from-kernel"


async def test_receivers_of_a_remote_kernel_reported_dead_fail_at_once() -> None:
    """Over a Jupyter Server websocket: the server's report of a dead kernel wakes the tasks
    waiting on the client's queues with KernelDied, and later receives fail at once."""
    from tests.test_remote_fake import KERNEL, TOKEN, FakeConnection, serving
    from trio_enchannel._remote._channels import open_remote_channels

    report = trio.Event()

    async def script(conn: FakeConnection) -> None:
        await report.wait()
        await conn.status("dead")
        await trio.sleep_forever()

    async def die() -> None:
        report.set()

    with trio.fail_after(20):
        async with (
            serving(script) as server,
            open_remote_channels(server.url, KERNEL, token=TOKEN) as ch,
            open_client(ch) as client,
        ):
            receivers = {
                "unclaimed_iopub": _drain(client.unclaimed_iopub),
                "unclaimed_replies": _drain(client.unclaimed_replies),
                "accept_comms": _drain(client.accept_comms("jupyter.widget")),
            }
            await assert_receivers_fail_with_the_death(receivers, die, "dead")


async def test_receivers_end_at_once_when_the_client_closes() -> None:
    """Closing the client: its queues (unclaimed stores, accept_comms()) end with
    EndOfChannel once drained, like any channel whose sender closed; comms and executions,
    like requests, fail with ClosedResourceError. Waiting tasks are woken, later calls
    do not wait."""
    outcomes: dict[str, type[BaseException]] = {}

    async def record(name: str, receive: Receive) -> None:
        try:
            await receive()
        except (trio.EndOfChannel, trio.ClosedResourceError) as exc:
            outcomes[name] = type(exc)

    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel() as kernel:
            kernel.script("widgets()", CommOpen("w1", "jupyter.widget"))
            async with (
                trio.open_nursery() as nursery,
                open_client(kernel.connection_info) as client,
            ):
                widgets = client.accept_comms("jupyter.widget")
                assert (await client.execute("widgets()")).ok
                comm = await widgets.receive()
                receivers = {
                    "unclaimed_replies": _drain(client.unclaimed_replies),
                    "unclaimed_iopub": _drain(client.unclaimed_iopub),
                    "accept_comms": _drain(widgets),
                    "comm": _drain(comm),
                    "comm iteration": _iterate(comm),
                }
                for name, receive in receivers.items():
                    nursery.start_soon(record, name, receive)
                await trio.testing.wait_all_tasks_blocked()
                assert outcomes == {}
    ended = {"unclaimed_replies", "unclaimed_iopub", "accept_comms"}
    assert outcomes == {
        name: trio.EndOfChannel if name in ended else trio.ClosedResourceError for name in receivers
    }
    outcomes.clear()
    with trio.fail_after(TIMEOUT):
        for name, receive in receivers.items():
            await record(name, receive)
    assert outcomes == {
        name: trio.EndOfChannel if name in ended else trio.ClosedResourceError for name in receivers
    }


async def test_receivers_fail_at_once_when_the_kernel_signs_with_another_key() -> None:
    """The kernel's first message is rejected for its signature: nothing it sends will be
    accepted, so the tasks waiting on the client's queues and subscriptions fail with
    SignatureMismatch, like the requests, and later receives fail at once."""
    info = ConnectionInfo.allocate(key="kernel-key")
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel(info=info, iopub_welcome=False) as kernel:
            client_info = attrs.evolve(kernel.connection_info, key="client-key")
            async with (
                open_client(client_info) as client,
                client.subscribe() as everything,
            ):
                receivers = {
                    "unclaimed_replies": _drain(client.unclaimed_replies),
                    "unclaimed_iopub": _drain(client.unclaimed_iopub),
                    "accept_comms": _drain(client.accept_comms("jupyter.widget")),
                    "subscribe": _drain(everything),
                }

                await kernel.wait_subscriptions()

                async def publish_with_another_key() -> None:
                    await kernel.channels.publish_status("idle")

                await assert_receivers_fail_with_the_death(
                    receivers, publish_with_another_key, "key", SignatureMismatch
                )


# -- a client without the key of a kernel that signs -------------------------------------------


async def test_a_client_without_the_key_of_a_signing_kernel_fails_every_call() -> None:
    """The kernel signs its messages, the client has an empty key: the kernel drops every
    unsigned request, so nothing we ask is ever answered, while its signed messages are
    accepted (as jupyter_client accepts them). The first signed IOPub message makes that
    known: calls already waiting and later ones fail with ConnectionInfoError
    ("key_missing"), counted and named; listening to IOPub goes on working."""
    info = ConnectionInfo.allocate(key="kernel-key")
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel(info=info, iopub_welcome=False) as kernel:
            keyless = attrs.evolve(kernel.connection_info, key="")
            async with open_client(keyless) as client, client.subscribe() as everything:
                await kernel.wait_subscriptions()
                comms = client.accept_comms("jupyter.widget")
                unclaimed = client.unclaimed_iopub

                async def publish_signed() -> None:
                    await kernel.channels.publish_status("idle")

                receivers: dict[str, Receive] = {
                    name: functools.partial(EVERY_CALL[name], client)
                    for name in ("wait_ready", "execute", "kernel_info(control)", "request")
                }
                receivers["unclaimed_replies"] = _drain(client.unclaimed_replies)
                await assert_receivers_fail_with_the_death(
                    receivers,
                    publish_signed,
                    "the key the kernel was started with",
                    ConnectionInfoError,
                )
                await assert_every_call_fails(client, ConnectionInfoError, "key")
                with pytest.raises(ConnectionInfoError) as caught:
                    await client.wait_ready()
                assert caught.value.reason == "key_missing"
                assert client.statistics().pending == 0
                # IOPub still delivers, to subscriptions and the unclaimed store alike, and
                # their receivers (and a comm target's) wait instead of failing.
                for source in (everything, unclaimed):
                    got = await source.receive()
                    assert got.msg_type == "status"
                    await _assert_keeps_waiting(source.receive)
                await _assert_keeps_waiting(comms.receive)
                await kernel.channels.publish("stream", {"name": "stdout", "text": "x"})
                assert (await everything.receive()).msg_type == "stream"
                assert (await unclaimed.receive()).msg_type == "stream"
                channels = client.channels
                assert isinstance(channels, Channels)
                assert channels.statistics().iopub.unverified == 2
                assert channels.session.unverified == 2
            # Nothing the client asked reached the kernel as a request it would run.
            assert not kernel.requests


async def test_a_comm_the_client_opened_fails_when_the_key_is_known_missing() -> None:
    """A comm the client opened before the kernel was known to sign (the kernel dropped its
    comm_open, so nothing will ever arrive for it) fails with ConnectionInfoError
    ("key_missing") and is forgotten; a comm the kernel opened keeps delivering."""
    info = ConnectionInfo.allocate(key="kernel-key")
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel(info=info, iopub_welcome=False) as kernel:
            keyless = attrs.evolve(kernel.connection_info, key="")
            async with open_client(keyless) as client, client.subscribe() as everything:
                await kernel.wait_subscriptions()
                comms = client.accept_comms("jupyter.widget")
                # An unsigned status: IOPub is known to deliver, nothing known of the key yet.
                plain = Session(key="")
                status = plain.message("status", {"execution_state": "idle"}, channel="iopub")
                topic = kernel.channels.iopub.topic("status")
                await kernel.channels.iopub.send_frames(plain.serialize(status, (topic,)))
                assert (await everything.receive()).msg_type == "status"
                assert client.iopub_ready
                ours = await client.open_comm("jupyter.widget")

                async def kernel_opens_a_comm() -> None:
                    content = {"comm_id": "theirs", "target_name": "jupyter.widget", "data": {}}
                    await kernel.channels.publish("comm_open", content)

                await assert_receivers_fail_with_the_death(
                    {"a comm we opened": ours.receive},
                    kernel_opens_a_comm,
                    "the key the kernel was started with",
                    ConnectionInfoError,
                )
                theirs = await comms.receive()
                assert theirs.comm_id == "theirs"
                # Ours is forgotten (what arrives for it is unclaimed); theirs still delivers.
                for comm_id in (ours.comm_id, "theirs"):
                    await kernel.channels.publish("comm_msg", {"comm_id": comm_id, "data": {}})
                got = await client.unclaimed_iopub.receive()
                while got.msg_type != "comm_msg":
                    got = await client.unclaimed_iopub.receive()
                assert got.content["comm_id"] == ours.comm_id
                assert (await theirs.receive()).msg_type == "comm_msg"


async def _assert_keeps_waiting(receive: Callable[[], Awaitable[Any]]) -> None:
    """``receive()`` neither returns nor raises while nothing arrives: it waits."""
    finished = False

    async def waiter() -> None:
        nonlocal finished
        await receive()
        finished = True

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        assert not finished
        nursery.cancel_scope.cancel()


async def test_channels_without_the_key_refuse_to_send_to_a_signing_kernel() -> None:
    """At the channels' level: once a signed message arrives on IOPub with no key, sends on
    shell, control and stdin raise ConnectionInfoError, a task waiting on ch.shell.receive()
    is woken with it, and ch.iopub keeps delivering."""
    info = ConnectionInfo.allocate(key="kernel-key")
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel(info=info, iopub_welcome=False) as kernel:
            keyless = attrs.evolve(kernel.connection_info, key="")
            async with open_channels(keyless, heartbeat=False) as ch:
                await kernel.wait_subscriptions()
                before = ch.handshake_error
                assert before is None
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_expect_key_missing, ch.shell.receive)
                    nursery.start_soon(_expect_key_missing, ch.control.receive)
                    await trio.testing.wait_all_tasks_blocked()
                    await kernel.channels.publish_status("idle")
                    assert (await ch.iopub.receive()).msg_type == "status"
                error = ch.handshake_error
                assert error is not None and error.reason == "key_missing"
                await _expect_key_missing(
                    lambda: ch.shell.send(ch.session.message("kernel_info_request"))
                )
                with pytest.raises(ConnectionInfoError, match="key"):
                    ch.stdin.send_nowait(ch.session.message("input_reply", {"value": ""}))
                await _expect_key_missing(ch.wait_connected)
                await kernel.channels.publish_status("busy")
                assert (await ch.iopub.receive()).content == {"execution_state": "busy"}
                assert ch.statistics().iopub.unverified == 2


async def _expect_key_missing(call: Callable[[], Awaitable[Any]]) -> None:
    with pytest.raises(ConnectionInfoError, match="the key the kernel was started with") as caught:
        await call()
    assert caught.value.reason == "key_missing"


async def test_a_keyless_kernel_and_client_are_not_refused() -> None:
    """No key on either side: nothing is signed, nothing is refused."""
    with trio.fail_after(TIMEOUT):
        async with (
            open_fake_kernel(info=ConnectionInfo.allocate(key="")) as kernel,
            open_client(kernel.connection_info) as client,
        ):
            await client.wait_ready()
            assert (await client.execute("1")).ok
            assert isinstance(client.channels, Channels)
            assert client.channels.statistics().iopub.unverified == 0


@pytest.mark.kernel
async def test_ipykernel_with_a_key_and_a_client_without_one(tmp_path: Path) -> None:
    """ipykernel 7 drops our unsigned requests without a word; its signed iopub_welcome says
    so at once: wait_ready() and execute() raise ConnectionInfoError naming the key, and the
    keyless client still hears what another, keyed, client makes the kernel print."""
    with trio.fail_after(60):
        info = ConnectionInfo.allocate(key="kernel-key")
        async with kernel_process(tmp_path, info=info) as kernel:
            keyless = attrs.evolve(kernel.info, key="")
            async with open_client(keyless) as listener:
                with pytest.raises(ConnectionInfoError, match="key") as caught:
                    await listener.wait_ready()
                assert caught.value.reason == "key_missing"
                with pytest.raises(ConnectionInfoError, match="key"):
                    await listener.execute("1")
                async with open_client(kernel.info) as keyed:
                    await keyed.wait_ready()
                    assert (await keyed.execute("print('heard')")).ok
                # ipykernel sends what print() wrote in one stream message or, when its main
                # thread stalls between the writes of "heard" and "\n" past the flush
                # interval (a loaded machine), in two: read up to the end of the line.
                heard = ""
                while not heard.endswith("\n"):
                    msg = await listener.unclaimed_iopub.receive()
                    if msg.msg_type == "stream":
                        heard += msg.content["text"]
                assert heard == "heard\n"


@pytest.mark.kernel
async def test_xeus_python_started_with_an_empty_key_still_signs(tmp_path: Path) -> None:
    """xeus-python started with an empty key signs all the same (an HMAC of the empty key)
    and drops unsigned requests: a client with the same empty key is told at once, by the
    kernel's first IOPub message, that the kernel must be started with a key."""
    if importlib.util.find_spec("xpython_launcher") is None:
        pytest.skip("xeus-python is not installed")
    with trio.fail_after(60):
        info = ConnectionInfo.allocate(key="")
        async with (
            kernel_process(tmp_path, XEUS_PYTHON_ARGV, info=info) as kernel,
            open_client(kernel.info) as client,
        ):
            with pytest.raises(ConnectionInfoError, match="xeus-python") as caught:
                await client.wait_ready()
            assert caught.value.reason == "key_missing"
            channels = client.channels
            assert isinstance(channels, Channels)
            assert channels.statistics().iopub.unverified >= 1


async def test_info_without_the_key_of_a_signing_kernel_names_the_key(tmp_path: Path) -> None:
    """``trio-enchannel info`` with a connection file whose key is empty, for a kernel that
    signs: a usage error (status 2) naming the key, at once, instead of the timeout."""
    import json

    from tests.test_cli import cli

    info = ConnectionInfo.allocate(key="kernel-key")
    async with open_fake_kernel(info=info) as kernel:
        path = tmp_path / "keyless.json"
        path.write_text(json.dumps(dict(kernel.connection_info.to_dict(), key="")))
        done = await cli(tmp_path, "info", str(path), "--timeout", "60")
    assert done.returncode == 2, done.stderr
    assert "the key the kernel was started with" in done.stderr and "Traceback" not in done.stderr
