"""Surviving a dropped websocket: a loopback TCP proxy between us and a real Jupyter Server
cuts every connection mid-session while the kernel keeps running."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio

from trio_enchannel import ConnectionLost, KernelDied

pytest.importorskip("trio_websocket", reason="the remote extra")
pytest.importorskip("httpx", reason="the remote extra")
pytest.importorskip("jupyter_server", reason="starts a Jupyter Server")

from trio_enchannel._remote._kernel import open_remote_kernel
from trio_enchannel.testing._jupyter_server import LocalServer, start_local_server, wait_until_ready

pytestmark = [pytest.mark.remote, pytest.mark.kernel]


class SeverableProxy:
    """Forwards loopback TCP connections to ``target_port``; :meth:`sever` cuts them all."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.connections = 0
        self._scopes: set[trio.CancelScope] = set()
        self.refusing = False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            task_status.started()
            await trio.serve_listeners(self._handle, listeners, handler_nursery=nursery)

    def sever(self) -> None:
        """Cut every open connection (both directions, abruptly)."""
        for scope in list(self._scopes):
            scope.cancel()

    async def _handle(self, downstream: trio.SocketStream) -> None:
        if self.refusing:
            await downstream.aclose()
            return
        self.connections += 1
        with trio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                upstream = await trio.open_tcp_stream("127.0.0.1", self.target_port)
                async with upstream, downstream, trio.open_nursery() as nursery:
                    nursery.start_soon(self._pump, downstream, upstream, nursery.cancel_scope)
                    nursery.start_soon(self._pump, upstream, downstream, nursery.cancel_scope)
            finally:
                self._scopes.discard(scope)
        await downstream.aclose()

    @staticmethod
    async def _pump(
        source: trio.SocketStream, sink: trio.SocketStream, scope: trio.CancelScope
    ) -> None:
        try:
            while data := await source.receive_some(65536):
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()


class DropListener:
    """A listener of RemoteChannels that flags the drop."""

    def __init__(self, event: trio.Event) -> None:
        self.event = event

    def connection_lost(self, error: BaseException) -> None:
        self.event.set()

    def kernel_restarted(self, reason: str) -> None:
        pass

    def kernel_died(self, error: KernelDied) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    local = start_local_server()
    try:
        trio.run(wait_until_ready, local, 60.0)
        yield local
    finally:
        local.stop()


async def test_dropped_websocket_is_survived(server: LocalServer) -> None:
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            proxy = SeverableProxy(server.port)
            await nursery.start(proxy.run)
            url = f"http://127.0.0.1:{proxy.port}/"
            async with open_remote_kernel(url, token=server.token) as kernel:
                client = kernel.client
                await client.execute("x = 41")
                # A request in flight when the connection drops fails clearly, at once.
                async with client.stream_execute(
                    "import time; time.sleep(2); x += 1; print('finished')"
                ) as run:
                    async for msg in run:
                        if msg.msg_type == "execute_input":
                            proxy.sever()
                            break
                    with pytest.raises(ConnectionLost, match="dropped"):
                        async for _ in run:
                            pass
                # The channels reconnect by themselves; the client is usable again.
                await kernel.channels.wait_connected()
                await client.wait_ready()
                result = await client.execute("print(x)")
                # The kernel kept running the request whose reply was lost (this one queued
                # behind it).
                assert result.stdout == "42\n"
                stats = kernel.channels.statistics()
                assert stats.connection.drops == 1
                assert stats.connection.connections == 2
                assert kernel.died is None
                # Raw sends issued while reconnecting wait for the new connection.
                dropped = trio.Event()
                kernel.channels.add_listener(DropListener(dropped))
                proxy.sever()
                await dropped.wait()  # the channels noticed the drop
                request = kernel.channels.session.message("kernel_info_request", channel="shell")
                await client.send(request)  # waits for the reconnection, then goes out
                async for reply in client.unclaimed_replies:
                    if reply.parent_id == request.msg_id:
                        break
                assert kernel.channels.statistics().connection.connections == 3
            nursery.cancel_scope.cancel()


async def test_unreachable_server_eventually_means_kernel_died(server: LocalServer) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            proxy = SeverableProxy(server.port)
            await nursery.start(proxy.run)
            url = f"http://127.0.0.1:{proxy.port}/"
            async with open_remote_kernel(
                url,
                token=server.token,
                channel_options={"reconnect_timeout": 1.0},
            ) as kernel:
                proxy.refusing = True
                proxy.sever()
                died = await kernel.channels.wait_unresponsive()
                assert "lost contact" in died.reason
                assert kernel.died is died
                with pytest.raises(KernelDied, match="lost contact"):
                    await kernel.channels.wait_connected()
                with pytest.raises(KernelDied):
                    await kernel.client.execute("1")
                proxy.refusing = False  # let the final shutdown through
            nursery.cancel_scope.cancel()
