"""Hostile peers and the hostile frames they send.

:func:`open_raw_kernel` binds the five kernel sockets with nothing but the ZeroMQ adapter, so a
test controls every frame the client under test receives. :func:`hostile_frames` builds one
message of a named hostile kind, with the reason the receiver must reject it for (or ``None``
for the valid kinds, which must be delivered).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from trio_enchannel import ConnectionInfo, RemoteProtocolError, Session
from trio_enchannel._io._zmq import SocketKind, TrioSocket
from trio_enchannel._wire._session import DELIMITER

#: Kinds that must be rejected, with the reason they are counted under.
REJECTED_KINDS: dict[str, str] = {
    "missing_delimiter": "missing_delimiter",
    "truncated": "too_few_frames",
    "oversized": "invalid_signature",
    "oversized_no_delimiter": "missing_delimiter",
    # Invalid UTF-8 is decoded as U+FFFD (as jupyter_client does); outside strings what is
    # left is not JSON.
    "bad_utf8": "bad_json",
    "not_object": "not_object",
    "bad_json": "bad_json",
    "bad_header": "bad_header",
    "wrong_signature": "invalid_signature",
    "empty_signature": "unsigned",
    "other_key": "invalid_signature",
    "replayed": "duplicate_signature",
    "deep_nesting": "bad_json",
}

#: Valid messages with absurd but legal content: they must be delivered.
VALID_KINDS = ("valid", "valid_deep", "valid_huge", "valid_big_buffer", "valid_bad_utf8")

#: Depth of JSON nesting beyond any decoder's recursion limit (rejected as bad JSON).
ABSURD_DEPTH = 100_000
#: Depth of JSON nesting a decoder must accept (delivered).
LEGAL_DEPTH = 200


def nested(depth: int) -> bytes:
    """A JSON object nested ``depth`` levels deep (as bytes)."""
    return b'{"n":' * depth + b"0" + b"}" * depth


def _nested_value(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = {"n": value}
    return value


@attrs.define
class Builder:
    """Builds valid and hostile messages as the sender (kernel or client) would.

    Attributes:
        session: the sender's session (signs with the shared key).
        topic: the first frame of IOPub messages.
        big: size in bytes of oversized frames and huge strings.
    """

    session: Session
    big: int = 256 * 1024
    topic: bytes = b"kernel.hostile.stream"
    last_valid: dict[str, list[bytes]] = attrs.field(factory=dict)
    _blob: bytes = attrs.field(init=False, default=b"")

    @property
    def blob(self) -> bytes:
        """``big`` random bytes (made once: random enough for garbage, and cheap)."""
        if len(self._blob) != self.big:
            self._blob = os.urandom(self.big)
        return self._blob

    def _prefix(self, channel: str) -> list[bytes]:
        return [self.topic] if channel == "iopub" else []

    def _msg_type(self, channel: str) -> str:
        return "stream" if channel == "iopub" else f"{channel}_test_reply"

    def valid(self, channel: str, seq: int, kind: str = "valid") -> list[bytes]:
        """A valid message carrying ``seq`` in its content."""
        content: dict[str, Any] = {"seq": seq}
        buffers: tuple[bytes, ...] = ()
        if kind == "valid_deep":
            content["deep"] = _nested_value(LEGAL_DEPTH)
        elif kind == "valid_huge":
            content["huge"] = "x" * self.big
        elif kind == "valid_big_buffer":
            buffers = (self.blob,)
        msg = self.session.message(self._msg_type(channel), content, buffers=buffers)
        frames = [bytes(f) for f in self.session.serialize(msg, self._prefix(channel))]
        if kind == "valid_bad_utf8":
            # Invalid UTF-8 inside a string (a kernel's print('\\udcff')): decoded as U+FFFD,
            # delivered.
            at = frames.index(DELIMITER)
            h, p, m = frames[at + 2 : at + 5]
            frames = self._signed(channel, h, p, m, b'{"seq": %d, "text": "a\xffb"}' % seq)
        self.last_valid[channel] = frames
        return frames

    def _signed(self, channel: str, h: bytes, p: bytes, m: bytes, c: bytes) -> list[bytes]:
        sig = self.session.sign((h, p, m, c))
        return [*self._prefix(channel), DELIMITER, sig, h, p, m, c]

    def _parts(self, channel: str) -> tuple[bytes, bytes, bytes, bytes]:
        msg = self.session.message(self._msg_type(channel), {"hostile": True})
        frames = [bytes(f) for f in self.session.serialize(msg, ())]
        return frames[2], frames[3], frames[4], frames[5]

    def hostile(self, channel: str, kind: str, variant: int = 0) -> list[bytes]:
        """One message of the hostile ``kind`` (see :data:`REJECTED_KINDS`).

        ``variant`` picks among the forms of a kind (where to truncate, ...).
        """
        h, p, m, c = self._parts(channel)
        prefix = self._prefix(channel)
        if kind == "missing_delimiter":
            return [*prefix, self.session.sign((h, p, m, c)), h, p, m, c]
        if kind == "truncated":
            keep = variant % 5  # 0 to 4 frames after the delimiter
            return [*prefix, DELIMITER, self.session.sign((h, p, m, c)), h, p, m, c][
                : len(prefix) + 1 + keep
            ]
        if kind == "oversized":
            return [*prefix, DELIMITER, b"0" * 64, h, p, m, self.blob]
        if kind == "oversized_no_delimiter":
            return [self.blob]
        if kind == "bad_utf8":
            return self._signed(channel, h, p, m, b'{"text": \xff\xfe\xfa}')
        if kind == "not_object":
            bad = (b"[1, 2]", b'"text"', b"null", b"42")[variant % 4]
            # A null parent header or metadata is accepted (real kernels send it): put the
            # non-object in the content.
            return self._signed(channel, h, p, m, bad)
        if kind == "bad_json":
            bad = (b'{"a": ', b"{'a': 1}", b'{"a": NaN}', b"")[variant % 4]
            return self._signed(channel, h, p, m, bad)
        if kind == "bad_header":
            # A nonce keeps each one unique: a correctly signed message is remembered (and a
            # second copy would be rejected as a replay) whatever its header holds.
            nonce = os.urandom(8).hex().encode()
            header = (
                b'{"msg_type": "x", "nonce": "%s"}',
                b'{"msg_id": "", "msg_type": "x", "nonce": "%s"}',
                b'{"msg_id": 1, "nonce": "%s"}',
            )[variant % 3] % nonce
            return self._signed(channel, header, p, m, c)
        if kind == "wrong_signature":
            return [*prefix, DELIMITER, os.urandom(32).hex().encode(), h, p, m, c]
        if kind == "empty_signature":
            return [*prefix, DELIMITER, b"", h, p, m, c]
        if kind == "other_key":
            forger = Session(b"another-key-" + os.urandom(8).hex().encode())
            return [*prefix, DELIMITER, forger.sign((h, p, m, c)), h, p, m, c]
        if kind == "replayed":
            previous = self.last_valid.get(channel)
            if previous is None:
                raise LookupError("nothing to replay yet on " + channel)
            return list(previous)
        if kind == "deep_nesting":
            return self._signed(channel, h, p, m, nested(ABSURD_DEPTH))
        raise ValueError(f"unknown hostile kind {kind!r}")


def reference_reason(key: bytes, frames: Sequence[bytes], scheme: str = "hmac-sha256") -> str:
    """Why a fresh session with ``key`` rejects ``frames`` (the expected reason).

    Raises:
        AssertionError: the frames are valid (an HMAC collision: never happens).
    """
    try:
        Session(key, signature_scheme=scheme).deserialize(frames)
    except RemoteProtocolError as exc:
        return exc.reason
    raise AssertionError(f"frames unexpectedly valid: {frames!r}")


@attrs.define(eq=False)
class RawKernel:
    """A kernel made of bare sockets: ROUTER shell/control/stdin/hb and XPUB iopub."""

    info: ConnectionInfo
    sockets: dict[str, TrioSocket]
    identities: dict[str, bytes] = attrs.field(factory=dict)

    async def send(self, channel: str, frames: Sequence[bytes]) -> None:
        """Send ``frames`` verbatim to the connected client on ``channel``."""
        if channel == "iopub":
            await self.sockets["iopub"].send_multipart(frames)
        else:
            await self.sockets[channel].send_multipart([self.identities[channel], *frames])

    async def receive(self, channel: str) -> list[bytes]:
        """The next frames from a client on ``channel`` (the routing id first)."""
        return [bytes(f) for f in await self.sockets[channel].receive_multipart()]

    async def wait_subscribed(self) -> None:
        """Wait until a client subscribes to IOPub."""
        while True:
            frames = await self.sockets["iopub"].receive_multipart()
            if bytes(frames[0])[:1] == b"\x01":
                return

    async def learn_client(self, channel: str) -> list[bytes]:
        """Receive the client's first message on ``channel`` and remember its routing id."""
        frames = await self.receive(channel)
        self.identities[channel] = frames[0]
        return frames[1:]


@asynccontextmanager
async def open_raw_kernel(key: str) -> AsyncIterator[RawKernel]:
    """Bind a :class:`RawKernel` on free loopback ports."""
    sockets: dict[str, TrioSocket] = {}
    ports: dict[str, int] = {}
    try:
        kinds: tuple[tuple[str, SocketKind], ...] = (
            ("shell", "ROUTER"),
            ("control", "ROUTER"),
            ("stdin", "ROUTER"),
            ("iopub", "XPUB"),
            ("hb", "ROUTER"),
        )
        for name, kind in kinds:
            sock = TrioSocket(kind, linger=0)
            sockets[name] = sock
            sock.set_option("SNDHWM", 0)  # a test peer never drops what it is told to send
            if kind == "XPUB":
                sock.set_option("XPUB_VERBOSE", 1)
            endpoint = sock.bind("tcp://127.0.0.1:0")
            ports[name] = int(endpoint.rsplit(":", 1)[1])
        info = ConnectionInfo(
            shell_port=ports["shell"],
            iopub_port=ports["iopub"],
            stdin_port=ports["stdin"],
            control_port=ports["control"],
            hb_port=ports["hb"],
            ip="127.0.0.1",
            key=key,
        )
        yield RawKernel(info, sockets)
    finally:
        for sock in sockets.values():
            sock.close(linger=0)
        await trio.lowlevel.checkpoint()
