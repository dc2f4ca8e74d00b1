"""Remote kernels through a real Jupyter Server started by the tests on loopback."""

from __future__ import annotations

import ssl
import sys
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
import trio

from tests._polling import poll_until
from trio_enchannel import KernelDied, LocalProtocolError, NoSuchKernel
from trio_enchannel._client._client import InputRequest
from trio_enchannel._wire._framing import V1_SUBPROTOCOL

pytest.importorskip("trio_websocket", reason="the remote extra")
pytest.importorskip("httpx", reason="the remote extra")
pytest.importorskip("jupyter_server", reason="starts a Jupyter Server")

from trio_enchannel._errors import (
    RemoteAuthenticationError,
    RemoteKernelNotFound,
    RemoteServerError,
)
from trio_enchannel._remote._channels import open_remote_channels
from trio_enchannel._remote._kernel import open_remote_kernel
from trio_enchannel._remote._rest import normalize_server_url, open_remote_server
from trio_enchannel.testing._jupyter_server import (
    LocalServer,
    LocalServerError,
    free_port,
    start_local_server,
    wait_until_ready,
)

pytestmark = [pytest.mark.remote, pytest.mark.kernel]


def _serve(**kwargs: object) -> Iterator[LocalServer]:
    server = start_local_server(**kwargs)  # type: ignore[arg-type]
    try:
        trio.run(wait_until_ready, server, 60.0)
        yield server
    finally:
        server.stop()


async def test_a_server_that_does_not_answer_fails_with_its_output() -> None:
    # A server that cannot start (here: one that only complains) must say why, not just time
    # out: the docs' examples failed after 60 s with a bare TooSlowError when jupyter_server
    # was missing.
    complaint = "no module named jupyter_server (pretend)"
    command = [
        sys.executable,
        "-c",
        f"import sys, time; print({complaint!r}, file=sys.stderr, flush=True); time.sleep(60)",
    ]
    server = start_local_server(command=command)
    try:
        with trio.fail_after(30):  # an external process's output file: no event to wait on
            await poll_until(lambda: complaint in server.log_tail(), interval=0.05)
        with pytest.raises(trio.TooSlowError, match=r"(?s)did not answer.*no module named"):
            await wait_until_ready(server, startup_timeout=0.2)
    finally:
        server.stop(grace=1.0)


async def test_a_server_that_exits_fails_at_once_with_its_output() -> None:
    command = [sys.executable, "-c", "import sys; sys.exit('cannot start (pretend)')"]
    server = start_local_server(command=command)
    try:
        with pytest.raises(LocalServerError, match=r"(?s)exited with status 1.*cannot start"):
            await wait_until_ready(server, startup_timeout=60)
    finally:
        server.stop(grace=1.0)


@pytest.fixture(scope="session")
def jupyter_server() -> Iterator[LocalServer]:
    """One Jupyter Server for the session (default settings: v1 subprotocol offered)."""
    yield from _serve()


@pytest.fixture(scope="session")
def legacy_server() -> Iterator[LocalServer]:
    """A Jupyter Server told to refuse the binary subprotocol (legacy JSON framing only)."""
    yield from _serve(kernel_ws_protocol="")


@pytest.fixture(params=["v1", "legacy"])
def any_server(
    request: pytest.FixtureRequest, jupyter_server: LocalServer, legacy_server: LocalServer
) -> tuple[LocalServer, str | None]:
    """Each server with the framing it will use."""
    if request.param == "v1":
        return jupyter_server, V1_SUBPROTOCOL
    return legacy_server, None


# -- REST ------------------------------------------------------------------------------------


def test_normalize_server_url() -> None:
    assert normalize_server_url("http://h:1") == ("http://h:1/", None)
    assert normalize_server_url("wss://h/base?token=abc") == ("https://h/base/", "abc")
    assert normalize_server_url("http://h/lab?token=t&x=1") == ("http://h/lab/?x=1", "t")
    with pytest.raises(ValueError, match="http"):
        normalize_server_url("ftp://h/")
    with pytest.raises(ValueError, match="host"):
        normalize_server_url("http:///x")


async def test_rest_kernel_lifecycle(jupyter_server: LocalServer) -> None:
    with trio.fail_after(60):
        async with open_remote_server(jupyter_server.url, token=jupyter_server.token) as server:
            default, specs = await server.kernel_specs()
            assert default == "python3"
            assert specs["python3"].language == "python"
            assert specs["python3"].display_name
            model = await server.start_kernel("python3")
            try:
                assert model.name == "python3"
                assert model.id in [k.id for k in await server.list_kernels()]
                assert (await server.get_kernel(model.id)).id == model.id
                await server.interrupt_kernel(model.id)
                restarted = await server.restart_kernel(model.id)
                assert restarted.id == model.id
            finally:
                await server.shutdown_kernel(model.id)
            assert model.id not in [k.id for k in await server.list_kernels()]
            with pytest.raises(RemoteKernelNotFound) as info:
                await server.get_kernel(model.id)
            assert info.value.kernel_id == model.id
            assert info.value.status_code == 404
            with pytest.raises(RemoteKernelNotFound):
                await server.shutdown_kernel(model.id)
            await server.shutdown_kernel(model.id, missing_ok=True)


async def test_rest_unknown_kernelspec_names_the_available_ones(
    jupyter_server: LocalServer,
) -> None:
    with trio.fail_after(30):
        async with open_remote_server(jupyter_server.url, token=jupyter_server.token) as server:
            with pytest.raises(NoSuchKernel) as info:
                await server.start_kernel("no-such-kernel")
    assert info.value.name == "no-such-kernel"
    assert "python3" in info.value.available


async def test_rest_wrong_token_is_refused_clearly(jupyter_server: LocalServer) -> None:
    with trio.fail_after(30):
        for token in ("wrong", None):
            async with open_remote_server(jupyter_server.url, token=token) as server:
                with pytest.raises(RemoteAuthenticationError) as info:
                    await server.list_kernels()
                assert info.value.status_code == 403
                assert "403" in str(info.value)
                assert "token" in str(info.value)
                assert ("refused" if token else "no token") in str(info.value)
                assert "wrong" not in str(info.value)  # the token never appears


async def test_rest_token_from_url(jupyter_server: LocalServer) -> None:
    url = f"{jupyter_server.url}?token={jupyter_server.token}"
    with trio.fail_after(30):
        async with open_remote_server(url) as server:
            assert server.token == jupyter_server.token
            assert "token" not in server.url
            assert isinstance(await server.list_kernels(), list)


async def test_rest_unreachable_server() -> None:
    port = free_port()
    with trio.fail_after(30):
        async with open_remote_server(f"http://127.0.0.1:{port}/") as server:
            with pytest.raises(RemoteServerError) as info:
                await server.list_kernels()
    assert info.value.status_code is None
    assert "cannot reach" in str(info.value)


async def test_rest_closed_server_object(jupyter_server: LocalServer) -> None:
    async with open_remote_server(jupyter_server.url, token=jupyter_server.token) as server:
        pass
    await server.aclose()  # idempotent
    with pytest.raises(trio.ClosedResourceError):
        await server.list_kernels()


# -- channels --------------------------------------------------------------------------------


async def test_channels_over_both_framings(any_server: tuple[LocalServer, str | None]) -> None:
    server, framing = any_server
    with trio.fail_after(60):
        async with open_remote_server(server.url, token=server.token) as rest:
            model = await rest.start_kernel("python3")
            try:
                async with open_remote_channels(rest, model.id) as ch:
                    assert ch.subprotocol == framing
                    assert ch.state == "connected"
                    await ch.wait_iopub_ready()
                    request = ch.session.message("kernel_info_request", channel="shell")
                    await ch.send(request)
                    reply = await ch.shell.receive()
                    assert reply.msg_type == "kernel_info_reply"
                    assert reply.parent_id == request.msg_id
                    assert reply.channel == "shell"
                    assert reply.content["status"] == "ok"
                    # Outputs of our request arrive on IOPub, tagged with their parent.
                    states: list[str] = []
                    while len(states) < 2:
                        msg = await ch.iopub.receive()
                        if msg.parent_id == request.msg_id and msg.msg_type == "status":
                            states.append(msg.content["execution_state"])
                    assert states == ["busy", "idle"]
                    control = ch.session.message("kernel_info_request", channel="control")
                    await ch.control.send(control)
                    assert (await ch.control.receive()).parent_id == control.msg_id
                    stats = ch.statistics()
                    assert stats.shell.sent == 1 and stats.shell.received == 1
                    assert stats.control.sent == 1 and stats["control"].received == 1
                    assert stats.iopub.received >= 2
                    assert stats.connection.subprotocol == framing
                    assert stats.connection.connections == 1
                    assert stats.rejected_total == 0
                    # Caller mistakes are refused before anything is sent.
                    with pytest.raises(LocalProtocolError):
                        await ch.shell.send(ch.session.message("x", channel="control"))
                    with pytest.raises(LocalProtocolError):
                        await ch.send(ch.session.message("x", channel="iopub"))
                    with pytest.raises(LocalProtocolError):
                        await ch.send(ch.session.message("x", {"n": float("nan")}, channel="shell"))
                    # send_nowait sends (queued for the websocket's writer), in order.
                    nowait = ch.session.message("kernel_info_request")
                    ch.shell.send_nowait(nowait)
                    assert (await ch.shell.receive()).parent_id == nowait.msg_id
                    with pytest.raises(RuntimeError, match="report_rejects"):
                        _ = ch.rejects
                await ch.aclose()  # idempotent
                assert ch.closed
                with pytest.raises(trio.EndOfChannel):
                    await ch.shell.receive()
                with pytest.raises(trio.ClosedResourceError):
                    await ch.shell.send(request)
            finally:
                await rest.shutdown_kernel(model.id)


async def test_multiplexed_channels(jupyter_server: LocalServer) -> None:
    with trio.fail_after(60):
        async with open_remote_server(jupyter_server.url, token=jupyter_server.token) as rest:
            model = await rest.start_kernel()
            try:
                async with open_remote_channels(rest, model.id, multiplexed=True) as ch:
                    request = ch.session.message("kernel_info_request", channel="shell")
                    await ch.multiplexed.send(request)
                    seen: list[tuple[str | None, str]] = []
                    while ("shell", "kernel_info_reply") not in seen or (
                        "iopub",
                        "status",
                    ) not in seen:
                        msg = await ch.multiplexed.receive()
                        if msg.parent_id == request.msg_id:
                            seen.append((msg.channel, msg.msg_type))
                    with pytest.raises(RuntimeError, match="multiplexed"):
                        await ch.shell.receive()
            finally:
                await rest.shutdown_kernel(model.id)


async def test_subprotocol_choice(jupyter_server: LocalServer, legacy_server: LocalServer) -> None:
    with trio.fail_after(60):
        async with open_remote_server(legacy_server.url, token=legacy_server.token) as rest:
            model = await rest.start_kernel()
            try:
                with pytest.raises(RemoteServerError, match=V1_SUBPROTOCOL):
                    async with open_remote_channels(rest, model.id, subprotocol="v1"):
                        pass  # pragma: no cover
            finally:
                await rest.shutdown_kernel(model.id)
        async with open_remote_server(jupyter_server.url, token=jupyter_server.token) as rest:
            model = await rest.start_kernel()
            try:
                async with open_remote_channels(rest, model.id, subprotocol="legacy") as ch:
                    assert ch.subprotocol is None
                    await ch.send(ch.session.message("kernel_info_request", channel="shell"))
                    assert (await ch.shell.receive()).msg_type == "kernel_info_reply"
            finally:
                await rest.shutdown_kernel(model.id)


async def test_websocket_refuses_wrong_token_and_unknown_kernel(
    jupyter_server: LocalServer,
) -> None:
    with trio.fail_after(60):
        async with open_remote_server(jupyter_server.url, token=jupyter_server.token) as rest:
            model = await rest.start_kernel()
            try:
                with pytest.raises(RemoteAuthenticationError) as info:
                    async with open_remote_channels(jupyter_server.url, model.id, token="wrong"):
                        pass  # pragma: no cover
                assert info.value.status_code == 403
                assert "403" in str(info.value) and "token" in str(info.value)
                with pytest.raises(RemoteKernelNotFound) as missing:
                    async with open_remote_channels(rest, "no-such-kernel"):
                        pass  # pragma: no cover
                assert missing.value.kernel_id == "no-such-kernel"
            finally:
                await rest.shutdown_kernel(model.id)
        with pytest.raises(RemoteAuthenticationError, match="403"):
            async with open_remote_kernel(jupyter_server.url, token="wrong"):
                pass  # pragma: no cover


# -- a whole session through open_remote_kernel ----------------------------------------------

_BUFFER_SETUP = """
from comm import get_comm_manager, create_comm
received = []
def _target(comm, msg):
    received.append([bytes(b) for b in msg["buffers"]])
    comm.on_msg(lambda m: received.append([bytes(b) for b in m["buffers"]]))
get_comm_manager().register_target("echo", _target)
"""


async def test_remote_kernel_session(any_server: tuple[LocalServer, str | None]) -> None:
    server, framing = any_server
    with trio.fail_after(90):
        async with open_remote_kernel(server.url, "python3", token=server.token) as kernel:
            assert kernel.channels.subprotocol == framing
            assert kernel.name == "python3"
            client = kernel.client
            # Outputs of every kind.
            result = await client.execute(
                "print('out'); import sys; print('err', file=sys.stderr)\n"
                "from IPython.display import display; display({'text/plain': 'shown'}, raw=True)\n"
                "6 * 7"
            )
            assert result.status == "ok"
            assert result.stdout == "out\n"
            assert result.stderr == "err\n"
            assert result.data is not None
            assert result.data["text/plain"] == "42"
            assert any(o.get("data", {}).get("text/plain") == "shown" for o in result.outputs)
            failed = await client.execute("1 / 0")
            assert failed.status == "error" and failed.error is not None
            assert failed.error.ename == "ZeroDivisionError"
            # stdin
            prompts: list[str] = []

            def answer(req: InputRequest) -> str:
                prompts.append(req.prompt)
                return "trio"

            result = await client.execute("print(input('name? '))", stdin=answer)
            assert prompts == ["name? "]
            assert result.stdout == "trio\n"
            # Binary buffers both ways (comm messages).
            assert (await client.execute(_BUFFER_SETUP)).status == "ok"
            session = client.session
            await client.send(
                session.message(
                    "comm_open",
                    {"comm_id": "c1", "target_name": "echo", "data": {}},
                    buffers=[b"\x00\x01\x02", b"xyz"],
                    channel="shell",
                )
            )
            await client.send(
                session.message(
                    "comm_msg",
                    {"comm_id": "c1", "data": {}},
                    buffers=[b"\xff" * 5],
                    channel="shell",
                )
            )
            result = await client.execute("print(received)")
            assert (
                result.stdout == "[[b'\\x00\\x01\\x02', b'xyz'], [b'\\xff\\xff\\xff\\xff\\xff']]\n"
            )
            async with client.stream_execute(
                "c = create_comm(target_name='t', data={}, buffers=[b'\\x00\\x01', b'abc'])"
            ) as run:
                opened = [m async for m in run if m.msg_type == "comm_open"]
            assert [[bytes(b) for b in m.buffers] for m in opened] == [[b"\x00\x01", b"abc"]]
            # Interrupt a running execution.
            async with client.stream_execute("import time; time.sleep(60)") as run:
                async for msg in run:
                    if msg.msg_type == "execute_input":
                        await kernel.interrupt()
            assert run.result.status == "error"
            assert run.result.error is not None
            assert run.result.error.ename == "KeyboardInterrupt"
            # Restart: same kernel id, fresh state, client still usable.
            await client.execute("x = 1")
            await kernel.restart()
            assert kernel.restart_count == 1
            result = await client.execute("print('x' in dir())")
            assert result.stdout == "False\n"
            kernel_id = kernel.kernel_id
        # Leaving the block shut the kernel down on the server.
        async with open_remote_server(server.url, token=server.token) as rest:
            assert kernel_id not in [k.id for k in await rest.list_kernels()]


async def test_kernel_shut_down_by_someone_else(jupyter_server: LocalServer) -> None:
    with trio.fail_after(60):
        async with open_remote_kernel(jupyter_server.url, token=jupyter_server.token) as kernel:
            async with (
                open_remote_server(jupyter_server.url, token=jupyter_server.token) as other,
                kernel.client.stream_execute("import time; time.sleep(60)") as run,
            ):
                async for msg in run:
                    if msg.msg_type == "execute_input":
                        await other.shutdown_kernel(kernel.kernel_id)
                        with pytest.raises(KernelDied):
                            async for _ in run:
                                pass
                        break
            died = await kernel.channels.wait_unresponsive()
            assert "no longer exists" in died.reason
            assert kernel.died is not None and not kernel.is_alive
            with pytest.raises(KernelDied):
                await kernel.client.execute("1")


@pytest.mark.slow
async def test_kernel_crash_is_kernel_died_then_usable_again(jupyter_server: LocalServer) -> None:
    with trio.fail_after(60):
        async with open_remote_kernel(jupyter_server.url, token=jupyter_server.token) as kernel:
            with pytest.raises(KernelDied, match="restarted"):
                await kernel.client.execute("import os; os._exit(1)")
            await kernel.client.wait_ready()
            assert (await kernel.client.execute("print(1)")).stdout == "1\n"
            assert kernel.died is None


@pytest.mark.slow
async def test_cancellation_at_any_point_leaves_no_kernel(jupyter_server: LocalServer) -> None:
    async with open_remote_server(jupyter_server.url, token=jupyter_server.token) as rest:
        with trio.fail_after(120):
            for delay in (0.0, 0.02, 0.1, 0.3, 0.6, 1.0):
                with trio.move_on_after(delay):
                    async with open_remote_kernel(rest) as kernel:
                        await kernel.client.execute("import time; time.sleep(10)")
                assert await rest.list_kernels() == [], f"kernel left after cancel at {delay}s"


# -- TLS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalServer, Any]]:
    """A Jupyter Server on https://127.0.0.1 with a certificate from a throwaway CA."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    folder = tmp_path_factory.mktemp("tls")
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    cert.private_key_pem.write_to_path(str(keyfile))
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(certfile), append=True)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    server = start_local_server(tls=(str(certfile), str(keyfile)))
    try:
        trio.run(partial(wait_until_ready, server, 60.0, ssl_context=context))
        yield server, context
    finally:
        server.stop()


async def test_tls_end_to_end(tls_server: tuple[LocalServer, ssl.SSLContext]) -> None:
    server, context = tls_server
    assert server.url.startswith("https://")
    with trio.fail_after(60):
        async with open_remote_kernel(server.url, token=server.token, ssl_context=context) as k:
            assert k.channels.subprotocol == V1_SUBPROTOCOL
            assert k.channels.server.websocket_url(k.kernel_id, "s").startswith("wss://")
            result = await k.client.execute("print('over TLS')")
            assert result.stdout == "over TLS\n"
        # Without trusting the CA, the certificate is refused, clearly.
        with pytest.raises(RemoteServerError, match=r"(?i)certificate"):
            async with open_remote_kernel(server.url, token=server.token):
                pass  # pragma: no cover
