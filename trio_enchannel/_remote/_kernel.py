"""A kernel started on a Jupyter Server or Enterprise Gateway: :func:`open_remote_kernel`.

The remote counterpart of :func:`~trio_enchannel.open_kernel`: the server starts the kernel
(``POST /api/kernels``), the block gets a :class:`RemoteKernel` with a ready
:class:`~trio_enchannel.KernelClient` over the kernel's websocket, and leaving the block for
any reason shuts the kernel down on the server (``DELETE /api/kernels/{id}``).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .._errors import KernelDied, KernelStartupError, RemoteServerError
from .._io._errors import ConnectionLost
from .._util import unwrap_single
from .._validate import (
    check_choice,
    check_optional_str,
    check_seconds,
)
from .._wire._message import Message
from ._channels import RemoteChannelOptions, RemoteChannels, open_remote_channels_with
from ._link import SubprotocolChoice
from ._rest import (
    RemoteKernelModel,
    RemoteServer,
    check_connection_options,
    check_str_mapping,
    open_remote_server,
)

if TYPE_CHECKING:
    from .._client._client import KernelClient

__all__ = ["RemoteKernel", "open_remote_kernel"]


@attrs.define(eq=False)
class RemoteKernel:
    """A kernel running on a Jupyter Server or gateway, owned by :func:`open_remote_kernel`.

    Attributes:
        server: the REST client of the server.
        model: the kernel's model as the server returned it when starting it.
        channels: the kernel's channels (over the websocket).
        restart_count: how many times :meth:`restart` succeeded.
    """

    server: RemoteServer
    model: RemoteKernelModel
    channels: RemoteChannels
    _client: KernelClient
    _startup_timeout: float
    _lock: trio.Lock = attrs.Factory(trio.Lock)
    _closed: bool = False
    restart_count: int = 0

    @property
    def kernel_id(self) -> str:
        """The kernel's id on the server."""
        return self.model.id

    @property
    def name(self) -> str:
        """The kernelspec it was started from."""
        return self.model.name

    @property
    def client(self) -> KernelClient:
        """The :class:`~trio_enchannel.KernelClient` connected to the kernel."""
        return self._client

    @property
    def died(self) -> KernelDied | None:
        """Set when the kernel is gone without being asked to (with the reason)."""
        return self.channels.died

    @property
    def is_alive(self) -> bool:
        """Whether the kernel is believed alive (it may be briefly unreachable)."""
        return not self._closed and self.channels.died is None

    def stderr_tail(self, max_lines: int | None = 40) -> str:
        """Always ``""``: a remote kernel's standard error stays on its host (the server or
        gateway logs it). Present so that code written for :class:`~trio_enchannel.Kernel`
        works unchanged."""
        return ""

    async def refresh(self) -> RemoteKernelModel:
        """The kernel's current model from the server (execution state, connections, ...).

        Raises:
            RemoteKernelNotFound: the kernel no longer exists.
            RemoteServerError: the server failed or is unreachable.
        """
        return await self.server.get_kernel(self.kernel_id)

    async def interrupt(self) -> None:
        """Interrupt what the kernel is doing (the server sends SIGINT or an
        ``interrupt_request``, as the kernelspec says).

        Raises:
            KernelDied: the kernel is gone.
            RemoteServerError: the server failed or is unreachable.
        """
        self._check_alive()
        await self.server.interrupt_kernel(self.kernel_id)

    async def restart(self) -> None:
        """Restart the kernel on the server and wait until it is ready again.

        The :class:`RemoteKernel`, its channels and its client stay usable. Requests pending
        at the time of the restart fail with :class:`~trio_enchannel.KernelDied`.

        Raises:
            KernelStartupError: the restarted kernel did not become ready in time.
            KernelDied: the kernel is gone.
            RemoteServerError: the server failed or is unreachable.
            trio.ClosedResourceError: the kernel has been shut down.
        """
        async with self._lock:
            if self._closed:
                raise trio.ClosedResourceError("the kernel has been shut down")
            self._check_alive()
            self._client.fail_pending(KernelDied(f"kernel {self.kernel_id} is restarting"))
            await self.server.restart_kernel(self.kernel_id)
            await self._wait_ready()
            self.restart_count += 1

    async def shutdown(self) -> None:
        """Shut the kernel down on the server now (leaving the block does it too).

        Idempotent; shielded from cancellation (and bounded by the server's start timeout).
        A kernel that is already gone is not an error.
        """
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            with trio.CancelScope(shield=True):
                self._client.fail_pending(KernelDied(f"kernel {self.kernel_id} is shutting down"))
                with contextlib.suppress(RemoteServerError):
                    await self.server.shutdown_kernel(self.kernel_id, missing_ok=True)

    def _check_alive(self) -> None:
        death = self.channels.died
        if death is not None:
            raise KernelDied(death.reason)

    async def _wait_ready(self) -> None:
        with trio.move_on_after(self._startup_timeout) as scope:
            await self._probe_until_ready()
        if scope.cancelled_caught:
            raise KernelStartupError(
                f"remote kernel {self.name!r} ({self.kernel_id}) on {self.server.url} did not "
                f"answer kernel_info within {self._startup_timeout:g} s"
            )

    async def _probe_until_ready(self) -> None:
        """Repeat ``kernel_info_request`` until one is answered *and* IOPub carries a message
        caused by one of them: proof that this kernel incarnation's IOPub reaches us (after a
        restart the server's subscription to the new kernel may take a moment)."""
        probes: set[str] = set()
        ready = trio.Event()

        def watch(msg: Message) -> None:
            if msg.channel == "iopub" and msg.parent_id in probes:
                ready.set()

        interval = 0.05
        answered = False
        with self.channels.tap(watch):
            while True:
                msg = self._client.session.message("kernel_info_request", {}, channel="shell")
                probes.add(msg.msg_id)
                with trio.move_on_after(interval):
                    try:
                        await self._client.request(msg)
                    except ConnectionLost:
                        # The websocket dropped: the channels reconnect; probe again.
                        await self.channels.wait_connected()
                        continue
                    answered = True
                    await ready.wait()
                if answered and ready.is_set():
                    return
                interval = min(interval * 2, 1.0)


@contextlib.asynccontextmanager
async def open_remote_kernel(
    server: str | RemoteServer,
    name: str | None = None,
    *,
    token: str | None = None,
    path: str | None = None,
    env: Mapping[str, str] | None = None,
    startup_timeout: float = 120.0,
    subprotocol: SubprotocolChoice = "auto",
    ssl_context: ssl.SSLContext | None = None,
    headers: Mapping[str, str] | None = None,
    channel_options: Mapping[str, Any] | None = None,
    client_options: Mapping[str, Any] | None = None,
) -> AsyncIterator[RemoteKernel]:
    """Start a kernel on a Jupyter Server or Enterprise Gateway, and shut it down at the end.

    ::

        async with open_remote_kernel("http://gateway:8888", "python3", token=t) as kernel:
            result = await kernel.client.execute("print(6 * 7)")

    Args:
        server: the server's URL (``http(s)://``; a ``?token=`` query is accepted), or an open
            :class:`RemoteServer` (then ``token``, ``ssl_context`` and ``headers`` come from
            it).
        name: the kernelspec to start; ``None`` for the server's default.
        token: the server's token.
        path: the kernel's working directory, relative to the server's root.
        env: environment variables for the kernel (Enterprise Gateway forwards ``KERNEL_*``
            variables, e.g. ``KERNEL_USERNAME``, and those it is configured to allow).
        startup_timeout: seconds to wait for the server to start the kernel and for the
            kernel to answer. Cancelling the block while the server is starting the kernel
            waits for that start to finish (within this timeout) so that the kernel can be
            shut down: nothing is left running on the server.
        subprotocol: websocket framing: ``"auto"``, ``"v1"`` or ``"legacy"`` (see
            :func:`open_remote_channels`).
        ssl_context: TLS settings for ``https``/``wss`` servers.
        headers: extra HTTP headers for the REST calls and the websocket handshake.
        channel_options: more keyword arguments for :func:`open_remote_channels`
            (``reconnect_timeout``, ``ping_interval``, ...).
        client_options: keyword arguments for :func:`~trio_enchannel.open_client`
            (``stdin``, ``unclaimed_buffer``). Both dicts are checked, names and values,
            before the server is asked for anything.

    Yields:
        The ready :class:`RemoteKernel`.

    Raises:
        NoSuchKernel: the server has no kernelspec ``name``.
        RemoteAuthenticationError: the token was refused.
        RemoteServerError: the server failed to start the kernel, or is unreachable.
        KernelStartupError: the kernel did not answer within ``startup_timeout``.
        ConfigurationError: an invalid option (a :class:`ValueError`).
        TypeError: an argument has the wrong type.
    """
    from .._client._client import open_client_with
    from .._client._options import ClientOptions

    check_connection_options(server=server, token=token, ssl_context=ssl_context, headers=headers)
    check_optional_str("name", name, nonempty=True)
    check_optional_str("path", path)
    check_str_mapping("env", env)
    check_seconds("startup_timeout", startup_timeout, allow_inf=True)
    check_choice("subprotocol", subprotocol, ("auto", "v1", "legacy"))
    # Checked here, names and values, before the server is asked for anything; the openers
    # below receive them checked.
    channel_settings = RemoteChannelOptions.from_mapping(
        "channel_options", channel_options, subprotocol=subprotocol, connect_timeout=startup_timeout
    )
    # (not the ZeroMQ channel options of open_client: these channels are remote)
    client_settings = ClientOptions.from_mapping(
        "client_options", client_options, channel_options=False
    )
    async with contextlib.AsyncExitStack() as stack:
        if isinstance(server, RemoteServer):
            rest = server
        else:
            rest = await stack.enter_async_context(
                open_remote_server(
                    server,
                    token=token,
                    ssl_context=ssl_context,
                    headers=headers,
                    start_timeout=startup_timeout,
                )
            )
        # Shielded: a start cancelled half-way would leave a kernel we never learn the id of
        # (the server finishes starting it anyway). Bounded by the server's start timeout;
        # if we were cancelled meanwhile, the kernel is shut down at once below.
        with trio.CancelScope(shield=True):
            model = await rest.start_kernel(name, path=path, env=env)
        kernel: RemoteKernel | None = None
        try:
            with unwrap_single():
                async with (
                    open_remote_channels_with(rest, model.id, channel_settings) as channels,
                    open_client_with(channels, client_settings) as client,
                ):
                    kernel = RemoteKernel(
                        server=rest,
                        model=model,
                        channels=channels,
                        client=client,
                        startup_timeout=startup_timeout,
                    )
                    try:
                        await kernel._wait_ready()
                        yield kernel
                    finally:
                        await kernel.shutdown()
        finally:
            # The kernel must not outlive the block, whatever happened above.
            if kernel is None or not kernel._closed:
                with trio.CancelScope(shield=True), contextlib.suppress(RemoteServerError):
                    await rest.shutdown_kernel(model.id, missing_ok=True)
