"""A raw client peer for kernel-side tests: plain sockets and the codec, no channels layer.

It sees every frame the kernel sends, so tests can check routing, signatures and faults
exactly, independently of ``open_channels``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import attrs
import trio

from trio_enchannel import ConnectionInfo, Message, Session
from trio_enchannel._io._zmq import TrioSocket

PeerChannel = Literal["shell", "control", "stdin", "iopub"]


@attrs.define(eq=False)
class RawPeer:
    """One client: DEALER shell/control/stdin sharing an identity, SUB iopub, DEALER hb."""

    info: ConnectionInfo
    session: Session
    identity: bytes
    sockets: dict[str, TrioSocket]

    def message(self, msg_type: str, content: dict[str, Any] | None = None, **kw: Any) -> Message:
        return self.session.message(msg_type, content or {}, **kw)

    async def send(self, channel: PeerChannel, msg: Message) -> Message:
        await self.sockets[channel].send_multipart(self.session.serialize(msg, ()))
        return msg

    async def request(
        self,
        msg_type: str,
        content: dict[str, Any] | None = None,
        *,
        channel: PeerChannel = "shell",
    ) -> Message:
        return await self.send(channel, self.message(msg_type, content, channel=channel))

    async def send_frames(self, channel: PeerChannel, frames: list[bytes]) -> None:
        await self.sockets[channel].send_multipart(frames)

    async def frames(self, channel: PeerChannel) -> list[bytes]:
        return [bytes(f) for f in await self.sockets[channel].receive_multipart()]

    def frames_nowait(self, channel: PeerChannel) -> list[bytes]:
        return [bytes(f) for f in self.sockets[channel].receive_multipart_nowait()]

    async def receive(self, channel: PeerChannel) -> Message:
        """The next message on ``channel``, verified (raises RemoteProtocolError if bad)."""
        return self.session.deserialize(await self.frames(channel), channel=channel)

    async def outputs(self, parent: Message) -> list[Message]:
        """IOPub messages of ``parent`` from ``busy`` to ``idle`` (others are skipped)."""
        out: list[Message] = []
        while True:
            msg = await self.receive("iopub")
            if msg.parent_id != parent.msg_id:
                continue
            out.append(msg)
            if msg.msg_type == "status" and msg.content.get("execution_state") == "idle":
                return out

    async def ping(self, payload: bytes) -> None:
        await self.sockets["hb"].send_multipart([b"", payload])

    async def pong(self) -> bytes:
        frames = await self.sockets["hb"].receive_multipart()
        return bytes(frames[-1])


@asynccontextmanager
async def open_raw_peer(
    info: ConnectionInfo,
    *,
    identity: bytes | None = None,
    topic: bytes | None = b"",
    wait_welcome: bool = True,
    session: Session | None = None,
) -> AsyncIterator[RawPeer]:
    """Connect a raw peer to a kernel; with ``wait_welcome``, wait for its iopub_welcome."""
    identity = identity or uuid.uuid4().hex.encode()
    sockets: dict[str, TrioSocket] = {}
    try:
        for name in ("shell", "control", "stdin"):
            sock = TrioSocket("DEALER", linger=0)
            sock.set_identity(identity)
            sock.connect(info.url(name))
            sockets[name] = sock
        sub = TrioSocket("SUB", linger=0)
        sub.connect(info.url("iopub"))
        sockets["iopub"] = sub
        hb = TrioSocket("DEALER", linger=0)
        hb.connect(info.url("hb"))
        sockets["hb"] = hb
        peer = RawPeer(info, session or Session.from_connection_info(info), identity, sockets)
        if topic is not None:
            sub.subscribe(topic)
            if wait_welcome:
                while True:
                    msg = await peer.receive("iopub")
                    if msg.msg_type == "iopub_welcome":
                        break
        yield peer
    finally:
        for sock in sockets.values():
            sock.close(linger=0)
        await trio.lowlevel.checkpoint()
