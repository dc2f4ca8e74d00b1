"""Sans-I/O framing of Jupyter messages on a Jupyter Server kernel websocket.

Jupyter Server (and Enterprise Gateway, which builds on it) relays a kernel's four channels
over one websocket per client, ``/api/kernels/{id}/channels``. Two framings exist; the server
picks one during the handshake:

``v1.kernel.websocket.jupyter.org`` (binary subprotocol)
    Every message is one binary frame: a little-endian ``u64`` count ``N``, then ``N``
    little-endian ``u64`` offsets from the start of the frame, then the parts. Part ``i`` spans
    ``offsets[i]:offsets[i + 1]``; the parts are the channel name, header, parent_header,
    metadata, content and then each raw buffer, so the last offset is the frame's length.
    There is no signature: the server signs towards the kernel.

legacy (no subprotocol)
    A message without buffers is a text frame holding one JSON object with ``header``,
    ``parent_header``, ``metadata``, ``content`` and a ``channel`` key. A message with buffers
    is one binary frame: a big-endian ``u32`` count ``n``, then ``n`` big-endian ``u32`` start
    offsets; the first part is that JSON object (UTF-8), each following part a raw buffer (the
    last one running to the end of the frame).

Nothing here does I/O. Decoding never raises anything but :class:`MalformedMessage`;
encoding raises :class:`LocalProtocolError` for a message that cannot go on the wire.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import Any, Final

from .._errors import LocalProtocolError, MalformedMessage
from ._message import CHANNEL_NAMES, ChannelName, Header, Message
from ._session import _decode_part, _encode_part, parent_id_of

__all__ = [
    "LEGACY",
    "V1_SUBPROTOCOL",
    "decode_frame",
    "decode_legacy",
    "decode_v1",
    "encode_frame",
    "encode_legacy",
    "encode_v1",
    "legacy_binary_layout",
    "peek_channel",
]

#: The binary websocket subprotocol offered by Jupyter Server 2.
V1_SUBPROTOCOL: Final = "v1.kernel.websocket.jupyter.org"
#: Name used for the legacy (JSON) framing, which has no subprotocol on the wire.
LEGACY: Final = "legacy"

_Frame = str | bytes | bytearray | memoryview
_Buffer = bytes | bytearray | memoryview

_U64 = struct.Struct("<Q")
_U32 = struct.Struct(">I")
_CHANNELS_BYTES: dict[bytes, ChannelName] = {c.encode("ascii"): c for c in CHANNEL_NAMES}
# channel, header, parent_header, metadata, content: five parts, six boundaries.
_V1_MIN_OFFSETS: Final = 6


def _outgoing_channel(msg: Message) -> ChannelName:
    channel = msg.channel
    if channel not in CHANNEL_NAMES:
        raise LocalProtocolError(
            f"{msg.msg_type} message: channel must be one of {', '.join(CHANNEL_NAMES)} to "
            f"be sent over a kernel websocket, got {channel!r}"
        )
    return channel


def _outgoing_buffers(msg: Message) -> list[memoryview]:
    views: list[memoryview] = []
    buf: object
    for i, buf in enumerate(msg.buffers):
        try:
            view = memoryview(buf)
        except TypeError as exc:
            raise LocalProtocolError(
                f"{msg.msg_type} message: buffer {i} ({type(buf).__name__}) does not support "
                "the buffer protocol"
            ) from exc
        views.append(view.cast("B") if view.ndim != 1 or view.format != "B" else view)
    return views


def _json_parts(msg: Message) -> tuple[bytes, bytes, bytes, bytes]:
    header = msg.header
    kind = header.msg_type
    if not kind:
        raise LocalProtocolError("msg_type must be a non-empty string")
    if not header.msg_id:
        raise LocalProtocolError(f"{kind} message: msg_id must be a non-empty string")
    return (
        _encode_part(header.to_dict(), "header", kind),
        _encode_part(msg.parent_header, "parent_header", kind),
        _encode_part(msg.metadata, "metadata", kind),
        _encode_part(msg.content, "content", kind),
    )


def _build_message(
    header_dict: dict[str, Any],
    parent: Any,
    metadata: Any,
    content: Any,
    buffers: Sequence[bytes | memoryview],
    channel: ChannelName,
) -> Message:
    return Message(
        header=Header.from_dict(header_dict),
        parent_header=parent,
        metadata=metadata,
        content=content,
        buffers=tuple(buffers),
        channel=channel,
    )


# -- v1.kernel.websocket.jupyter.org ---------------------------------------------------------


def encode_v1(msg: Message) -> bytes:
    """Encode ``msg`` as one binary frame of the ``v1.kernel.websocket.jupyter.org`` protocol.

    ``msg.channel`` names the channel; identities are not sent (the server routes by its own
    session).

    Raises:
        LocalProtocolError: the channel is not set or unknown, a part is not JSON-encodable
            (NaN and Infinity included), the message type or id is empty, or a buffer does not
            support the buffer protocol.
    """
    channel = _outgoing_channel(msg).encode("ascii")
    parts: list[bytes | memoryview] = [channel, *_json_parts(msg), *_outgoing_buffers(msg)]
    count = len(parts) + 1
    offsets = [8 * (count + 1)]
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    table = struct.pack(f"<{count + 1}Q", count, *offsets)
    return b"".join((table, *parts))


def decode_v1(frame: _Frame, repaired: list[str] | None = None) -> Message:
    """Decode one binary frame of the ``v1.kernel.websocket.jupyter.org`` protocol.

    Buffers are zero-copy views into ``frame``.

    Raises:
        MalformedMessage: the offset table is truncated, out of order or out of bounds
            (reason ``"bad_framing"``), there are fewer than five parts (``"too_few_frames"``),
            the channel is unknown (``"bad_channel"``), or a JSON part is not UTF-8, not JSON,
            not an object, or the header lacks msg_id/msg_type (``"bad_utf8"``,
            ``"bad_json"``, ``"not_object"``, ``"bad_header"``). With ``repaired`` given,
            invalid UTF-8 is decoded as U+FFFD instead and the parts are appended to it.
    """
    if isinstance(frame, str):
        raise MalformedMessage(
            "text frame received on the binary v1.kernel.websocket.jupyter.org protocol",
            reason="bad_framing",
        )
    data = memoryview(frame).cast("B") if not isinstance(frame, bytes) else memoryview(frame)
    size = len(data)
    if size < 8:
        raise MalformedMessage(
            f"v1 frame of {size} bytes has no offset count", reason="bad_framing"
        )
    (count,) = _U64.unpack_from(data, 0)
    if count < _V1_MIN_OFFSETS:
        raise MalformedMessage(
            f"v1 frame declares {count} offsets; at least {_V1_MIN_OFFSETS} are needed for the "
            "channel, header, parent_header, metadata and content",
            reason="too_few_frames",
        )
    table_end = 8 * (count + 1)
    if table_end > size:
        raise MalformedMessage(
            f"v1 frame declares {count} offsets but is only {size} bytes long",
            reason="bad_framing",
        )
    offsets = struct.unpack_from(f"<{count}Q", data, 8)
    previous = table_end
    for offset in offsets:
        if offset < previous:
            raise MalformedMessage(
                f"v1 frame offsets {list(offsets)} are not increasing from the end of the "
                f"offset table ({table_end})",
                reason="bad_framing",
            )
        previous = offset
    if offsets[-1] != size:
        raise MalformedMessage(
            f"v1 frame's last offset {offsets[-1]} is not its length {size}",
            reason="bad_framing",
        )
    channel = _CHANNELS_BYTES.get(bytes(data[offsets[0] : offsets[1]]))
    if channel is None:
        name = bytes(data[offsets[0] : offsets[1]])[:40]
        raise MalformedMessage(f"v1 frame names an unknown channel {name!r}", reason="bad_channel")
    raw_parent = bytes(data[offsets[2] : offsets[3]])
    try:
        header = _decode_part(bytes(data[offsets[1] : offsets[2]]), "header", repaired)
        parent = _decode_part(raw_parent, "parent_header", repaired)
        metadata = _decode_part(bytes(data[offsets[3] : offsets[4]]), "metadata", repaired)
        content = _decode_part(bytes(data[offsets[4] : offsets[5]]), "content", repaired)
        buffers = [data[offsets[i] : offsets[i + 1]] for i in range(5, count - 1)]
        return _build_message(header, parent, metadata, content, buffers, channel)
    except MalformedMessage as exc:
        exc.parent_id = parent_id_of(raw_parent)  # the request it answers, if readable
        raise


# -- legacy JSON framing ---------------------------------------------------------------------


def _json_string(value: str) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def _legacy_object(msg: Message, channel: ChannelName) -> bytes:
    h, p, m, c = _json_parts(msg)
    # Parts are already valid JSON text, so the object is assembled without a second encode.
    # Key order and content follow jupyter_client's message dicts.
    return b"".join(
        (
            b'{"header":',
            h,
            b',"msg_id":',
            _json_string(msg.header.msg_id),
            b',"msg_type":',
            _json_string(msg.header.msg_type),
            b',"parent_header":',
            p,
            b',"metadata":',
            m,
            b',"content":',
            c,
            b',"buffers":[],"channel":"',
            channel.encode("ascii"),
            b'"}',
        )
    )


def legacy_binary_layout(parts: Sequence[_Buffer]) -> bytes:
    """Join ``parts`` (the JSON object, then each buffer) into a legacy binary frame.

    The frame starts with a big-endian ``u32`` part count and one big-endian ``u32`` start
    offset per part.

    Raises:
        LocalProtocolError: there are no parts, or the frame would exceed 4 GiB (the
            offsets are 32-bit).
    """
    if not parts:
        raise LocalProtocolError("a legacy binary frame needs at least the JSON part")
    count = len(parts)
    offsets = [4 * (count + 1)]
    for part in parts[:-1]:
        offsets.append(offsets[-1] + len(part))
    if offsets[-1] + len(parts[-1]) > 0xFFFFFFFF:
        raise LocalProtocolError(
            "message too large for the legacy websocket framing (32-bit offsets); use a "
            "server that offers the v1.kernel.websocket.jupyter.org subprotocol"
        )
    return b"".join((struct.pack(f">{count + 1}I", count, *offsets), *parts))


def encode_legacy(msg: Message) -> str | bytes:
    """Encode ``msg`` for the legacy (no subprotocol) framing.

    Returns a ``str`` (to send as a text frame) when the message has no buffers, else
    ``bytes`` (a binary frame with big-endian ``u32`` offsets).

    Raises:
        LocalProtocolError: the channel is not set or unknown, a part is not JSON-encodable
            (NaN and Infinity included), the message type or id is empty, a buffer does not
            support the buffer protocol, or the frame would exceed 4 GiB.
    """
    channel = _outgoing_channel(msg)
    buffers = _outgoing_buffers(msg)
    body = _legacy_object(msg, channel)
    if not buffers:
        return body.decode("utf-8")
    return legacy_binary_layout([body, *buffers])


def _legacy_from_object(
    text: bytes,
    buffers: Sequence[bytes | memoryview],
    *,
    binary: bool,
    repaired: list[str] | None = None,
) -> Message:
    obj = _decode_part(text, "message", repaired)
    channel = obj.get("channel")
    if channel not in CHANNEL_NAMES:
        raise MalformedMessage(
            f"legacy websocket message has no valid channel (got {str(channel)[:40]!r})",
            reason="bad_channel",
        )
    parts: list[Any] = []
    for name in ("header", "parent_header", "metadata", "content"):
        value = obj.get(name)
        if value is None and name != "header":
            value = {}
        if not isinstance(value, dict):
            raise MalformedMessage(
                f"legacy websocket message: {name} is "
                f"{'missing' if value is None else type(value).__name__}, not an object",
                reason="not_object",
            )
        parts.append(value)
    inline = obj.get("buffers")
    if not binary and inline:
        raise MalformedMessage(
            "legacy text frame lists buffers, which only a binary frame can carry",
            reason="bad_framing",
        )
    return _build_message(parts[0], parts[1], parts[2], parts[3], buffers, channel)


def decode_legacy(frame: _Frame, repaired: list[str] | None = None) -> Message:
    """Decode one frame of the legacy framing (a text frame or a binary frame with buffers).

    Buffers of a binary frame are zero-copy views into ``frame``.

    Raises:
        MalformedMessage: the offset table is truncated, out of order or out of bounds
            (reason ``"bad_framing"``), the channel is missing or unknown (``"bad_channel"``),
            or the JSON is not UTF-8, not JSON, not an object, or the header lacks
            msg_id/msg_type (``"bad_utf8"``, ``"bad_json"``, ``"not_object"``,
            ``"bad_header"``). With ``repaired`` given, invalid UTF-8 in a binary frame is
            decoded as U+FFFD instead and appended to it.
    """
    if isinstance(frame, str):
        try:
            raw = frame.encode("utf-8")
        except UnicodeEncodeError as exc:  # lone surrogates
            raise MalformedMessage(
                f"text frame is not valid UTF-8: {exc}", reason="bad_utf8"
            ) from exc
        return _legacy_from_object(raw, (), binary=False)
    data = memoryview(frame).cast("B") if not isinstance(frame, bytes) else memoryview(frame)
    size = len(data)
    if size < 8:
        raise MalformedMessage(
            f"legacy binary frame of {size} bytes is too short", reason="bad_framing"
        )
    (count,) = _U32.unpack_from(data, 0)
    table_end = 4 * (count + 1)
    if count < 1 or table_end > size:
        raise MalformedMessage(
            f"legacy binary frame declares {count} parts but is {size} bytes long",
            reason="bad_framing",
        )
    offsets = [*struct.unpack_from(f">{count}I", data, 4), size]
    previous = table_end
    for offset in offsets:
        if offset < previous:
            raise MalformedMessage(
                f"legacy binary frame offsets {offsets[:-1]} are out of order or out of bounds "
                f"(table ends at {table_end}, frame is {size} bytes)",
                reason="bad_framing",
            )
        previous = offset
    body = bytes(data[offsets[0] : offsets[1]])
    buffers = [data[offsets[i] : offsets[i + 1]] for i in range(1, count)]
    return _legacy_from_object(body, buffers, binary=True, repaired=repaired)


# -- diagnostics -----------------------------------------------------------------------------


def peek_channel(frame: _Frame) -> ChannelName | None:
    """Best effort: the channel a (possibly malformed) frame claims, or ``None``.

    Used to count rejected frames per channel; never raises.
    """
    try:
        if isinstance(frame, str):
            return _channel_of(json.loads(frame))
        data = bytes(frame)
        if len(data) >= 24:
            (count,) = _U64.unpack_from(data, 0)
            if count >= _V1_MIN_OFFSETS and 8 * (count + 1) <= len(data):
                start, end = struct.unpack_from("<2Q", data, 8)
                found = _CHANNELS_BYTES.get(data[start:end])
                if found is not None:
                    return found
        if len(data) >= 8:
            count, start = struct.unpack_from(">2I", data, 0)
            end = struct.unpack_from(">I", data, 8)[0] if count > 1 else len(data)
            return _channel_of(json.loads(data[start:end]))
    except Exception:
        return None
    return None


def _channel_of(obj: Any) -> ChannelName | None:
    if isinstance(obj, dict):
        channel = obj.get("channel")
        if channel in CHANNEL_NAMES:
            return channel  # type: ignore[no-any-return]
    return None


# -- dispatch --------------------------------------------------------------------------------


def encode_frame(msg: Message, subprotocol: str | None) -> str | bytes:
    """Encode ``msg`` for a websocket whose negotiated subprotocol is ``subprotocol``.

    ``None`` (or :data:`LEGACY`) selects the legacy framing.

    Raises:
        LocalProtocolError: as :func:`encode_v1` / :func:`encode_legacy`.
    """
    if subprotocol == V1_SUBPROTOCOL:
        return encode_v1(msg)
    return encode_legacy(msg)


def decode_frame(
    frame: _Frame, subprotocol: str | None, repaired: list[str] | None = None
) -> Message:
    """Decode a websocket frame received under ``subprotocol`` (``None``: legacy); see
    :func:`decode_v1` for ``repaired``.

    Raises:
        MalformedMessage: as :func:`decode_v1` / :func:`decode_legacy`.
    """
    if subprotocol == V1_SUBPROTOCOL:
        return decode_v1(frame, repaired)
    return decode_legacy(frame, repaired)
