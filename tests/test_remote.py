"""Remote kernels through a real Jupyter Server started by the tests on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio

from trio_enchannel import NoSuchKernel
from trio_enchannel._remote._errors import (
    RemoteAuthenticationError,
    RemoteKernelNotFound,
    RemoteServerError,
)
from trio_enchannel._remote._local import (
    LocalServer,
    free_port,
    start_local_server,
    wait_until_ready,
)
from trio_enchannel._remote._rest import normalize_server_url, open_remote_server

pytestmark = [pytest.mark.remote, pytest.mark.kernel]


def _serve(**kwargs: object) -> Iterator[LocalServer]:
    server = start_local_server(**kwargs)  # type: ignore[arg-type]
    try:
        trio.run(wait_until_ready, server, 60.0)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def jupyter_server() -> Iterator[LocalServer]:
    """One Jupyter Server for the session (default settings: v1 subprotocol offered)."""
    yield from _serve()


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
