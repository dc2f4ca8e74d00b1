"""Opening the kernel websocket: TCP (and TLS) by us, the websocket protocol by trio-websocket.

We open the byte stream ourselves and hand it to :func:`trio_websocket.wrap_client_stream`
for latency: Jupyter Server does not disable Nagle's algorithm on kernel websockets. When it
writes several small frames in a row (``status: busy``, the reply, ``status: idle``), each
frame after the first waits for our ACK of the previous one, and Linux delays ACKs by up to
40 ms: every request then takes ~40 ms instead of ~1 ms. Re-arming ``TCP_QUICKACK`` after
every read makes us acknowledge at once (:class:`QuickAckStream`).

Every failure to connect is translated into our errors here (:func:`handshake_error`).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Sequence

import trio
import trio_websocket

from .._errors import RemoteAuthenticationError, RemoteKernelNotFound, RemoteServerError
from .._util import BaseExceptionGroup
from ._rest import describe_cause

__all__ = ["QuickAckStream", "handshake_error", "open_kernel_websocket"]

_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


class QuickAckStream(trio.abc.Stream):
    """A byte stream that acknowledges received data immediately (Linux ``TCP_QUICKACK``).

    Linux leaves quick-ACK mode again on its own, so it is re-armed after every read. Where
    the option does not exist this is a plain pass-through.
    """

    def __init__(self, stream: trio.abc.Stream, sock: trio.socket.SocketType | None) -> None:
        self._stream = stream
        self._sock = sock if _QUICKACK is not None else None

    def _quickack(self) -> None:
        if self._sock is not None:
            try:
                self._sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)  # type: ignore[arg-type]
            except OSError:
                self._sock = None  # closed, or not TCP: stop trying

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        """Receive from the wrapped stream, then acknowledge at once."""
        data = await self._stream.receive_some(max_bytes)
        self._quickack()
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send through the wrapped stream."""
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        """As the wrapped stream."""
        await self._stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        """Close the wrapped stream."""
        await self._stream.aclose()


def handshake_error(
    exc: BaseException, url: str, kernel_id: str, token_sent: bool
) -> RemoteServerError:
    """Translate a failure to open the websocket into our error types."""
    safe_url = url.split("?", 1)[0]
    if isinstance(exc, trio_websocket.ConnectionRejected):
        status = exc.status_code
        body = (exc.body or b"").decode("utf-8", "replace")[:300].strip()
        if status in (401, 403):
            given = "the token sent was refused" if token_sent else "no token was sent"
            return RemoteAuthenticationError(
                f"websocket {safe_url}: HTTP {status} — {given}, or the server does not allow "
                "this connection",
                status_code=status,
                method="WEBSOCKET",
                url=safe_url,
                server_message=body,
            )
        if status == 404:
            return RemoteKernelNotFound(
                f"websocket {safe_url}: HTTP 404 — the server has no kernel {kernel_id!r}",
                kernel_id=kernel_id,
                status_code=status,
                method="WEBSOCKET",
                url=safe_url,
                server_message=body,
            )
        return RemoteServerError(
            f"websocket {safe_url}: the server refused the connection with HTTP {status}"
            + (f": {body}" if body else ""),
            status_code=status,
            method="WEBSOCKET",
            url=safe_url,
            server_message=body,
        )
    if isinstance(exc, trio.TooSlowError):
        return RemoteServerError(
            f"websocket {safe_url}: no handshake answer in time", method="WEBSOCKET", url=safe_url
        )
    if isinstance(exc, trio_websocket.ConnectionClosed):
        return RemoteServerError(
            f"websocket {safe_url}: the server closed the connection during the handshake",
            method="WEBSOCKET",
            url=safe_url,
        )
    return RemoteServerError(
        f"websocket {safe_url}: cannot connect: {describe_cause(exc)}",
        method="WEBSOCKET",
        url=safe_url,
    )


class HandshakeFailed(Exception):
    """The websocket could not be opened; ``error`` says why in our terms."""

    def __init__(self, error: RemoteServerError) -> None:
        super().__init__(str(error))
        self.error = error


def _find(
    group: BaseExceptionGroup[BaseException], kind: type[BaseException]
) -> BaseException | None:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found = _find(exc, kind)
            if found is not None:
                return found
        elif isinstance(exc, kind):
            return exc
    return None


@contextlib.asynccontextmanager
async def open_kernel_websocket(
    url: str,
    *,
    kernel_id: str,
    subprotocols: Sequence[str],
    headers: Sequence[tuple[bytes, bytes]],
    ssl_context: ssl.SSLContext | None,
    max_message_size: int,
    handshake_timeout: float,
    close_timeout: float = 2.0,
) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """Open the websocket at ``url`` (``ws://`` or ``wss://``); close it when the block ends.

    Raises:
        HandshakeFailed: the connection or the handshake failed (its ``error`` is a
            :class:`RemoteAuthenticationError`, :class:`RemoteKernelNotFound` or
            :class:`RemoteServerError`). Raised only before the block runs.
    """
    parts = urllib.parse.urlsplit(url)
    secure = parts.scheme == "wss"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    resource = parts.path + (f"?{parts.query}" if parts.query else "")
    netloc_host = f"[{host}]" if ":" in host else host
    host_header = netloc_host if port == (443 if secure else 80) else f"{netloc_host}:{port}"
    token_sent = any(k.lower() == b"authorization" for k, _ in headers)

    def failed(exc: BaseException) -> HandshakeFailed:
        return HandshakeFailed(handshake_error(exc, url, kernel_id, token_sent))

    stream: trio.abc.Stream | None = None
    deadline = trio.current_time() + handshake_timeout
    try:
        with trio.fail_after(handshake_timeout):
            tcp = await trio.open_tcp_stream(host, port)
            stream = tcp
            if secure:
                context = ssl_context if ssl_context is not None else ssl.create_default_context()
                tls = trio.SSLStream(tcp, context, server_hostname=host, https_compatible=True)
                stream = tls
                await tls.do_handshake()
    except (OSError, trio.TooSlowError, trio.BrokenResourceError, ssl.SSLError) as exc:
        if stream is not None:
            await trio.aclose_forcefully(stream)
        raise failed(exc) from exc
    quick = QuickAckStream(stream, tcp.socket)
    ws: trio_websocket.WebSocketConnection | None = None
    try:
        async with trio.open_nursery() as nursery:
            try:
                with trio.fail_after(max(0.0, deadline - trio.current_time())):
                    ws = await _handshake(
                        nursery,
                        quick,
                        host_header,
                        resource,
                        subprotocols,
                        headers,
                        max_message_size,
                    )
            except trio.TooSlowError as exc:
                raise failed(exc) from exc
            try:
                yield ws
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(close_timeout):
                    await ws.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if ws is None:
            # The reader task raised during the handshake (a refusal, a closed connection).
            rejected = _find(group, trio_websocket.ConnectionRejected) or _find(
                group, trio_websocket.ConnectionClosed
            )
            if rejected is not None:
                raise failed(rejected) from rejected
            handshake = _find(group, HandshakeFailed)
            if handshake is not None:
                raise handshake from None
        if len(group.exceptions) == 1:
            lone = group.exceptions[0]
            context = lone.__context__
            try:
                raise lone
            finally:
                lone.__context__ = context
                del lone
        raise
    finally:
        await trio.aclose_forcefully(quick)


async def _handshake(
    nursery: trio.Nursery,
    stream: QuickAckStream,
    host_header: str,
    resource: str,
    subprotocols: Sequence[str],
    headers: Sequence[tuple[bytes, bytes]],
    max_message_size: int,
) -> trio_websocket.WebSocketConnection:
    """The websocket handshake over ``stream`` (bound it with a timeout: a peer that closes
    the connection meanwhile is only noticed then)."""
    ws: trio_websocket.WebSocketConnection = await trio_websocket.wrap_client_stream(
        nursery,
        stream,  # type: ignore[arg-type]  # any trio Stream works
        host_header,
        resource,
        subprotocols=list(subprotocols),
        extra_headers=list(headers),
        max_message_size=max_message_size,
        receive_buffer_size=256 * 1024,
    )
    return ws
