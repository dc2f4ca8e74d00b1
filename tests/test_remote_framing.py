"""The websocket framings of Jupyter Server: known vectors, interop, round trips, fuzzing."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_enchannel import CHANNEL_NAMES, Header, LocalProtocolError, MalformedMessage, Message
from trio_enchannel._wire._framing import (
    V1_SUBPROTOCOL,
    decode_frame,
    decode_legacy,
    decode_v1,
    encode_frame,
    encode_legacy,
    encode_v1,
    legacy_binary_layout,
)
from trio_enchannel._wire._session import Session, _encode_part

pytest.importorskip("jupyter_client", reason="differential tests against jupyter_client")
pytest.importorskip("jupyter_server", reason="differential tests against jupyter_server")

from jupyter_client.jsonutil import json_default
from jupyter_client.session import Session as JCSession
from jupyter_server.services.kernels.connection import base as _jsbase

# jupyter_server's own framing functions (untyped upstream), the reference to interoperate with.
serialize_msg_to_ws_v1: Callable[..., bytes] = _jsbase.serialize_msg_to_ws_v1
deserialize_msg_from_ws_v1: Callable[[bytes], tuple[str, list[bytes]]] = (
    _jsbase.deserialize_msg_from_ws_v1
)
serialize_binary_message: Callable[[dict[str, Any]], bytes] = _jsbase.serialize_binary_message
deserialize_binary_message: Callable[[bytes], dict[str, Any]] = _jsbase.deserialize_binary_message

# -- strategies ------------------------------------------------------------------------------

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_json_objects = st.dictionaries(st.text(max_size=10), _json_values, max_size=5)
_standard = {"msg_id", "msg_type", "username", "session", "date", "version", "subshell_id"}
_headers = st.builds(
    Header,
    msg_id=st.text(min_size=1, max_size=30),
    msg_type=st.text(min_size=1, max_size=20),
    username=st.text(max_size=10),
    session=st.text(max_size=32),
    date=st.text(max_size=30),
    version=st.text(max_size=5),
    subshell_id=st.none() | st.text(max_size=10),
    extra=st.dictionaries(
        st.text(max_size=8).filter(lambda k: k not in _standard), _json_values, max_size=3
    ),
)
_messages = st.builds(
    Message,
    header=_headers,
    parent_header=_json_objects,
    metadata=_json_objects,
    content=_json_objects,
    buffers=st.lists(st.binary(max_size=64), max_size=4).map(tuple),
    channel=st.sampled_from(CHANNEL_NAMES),
)


def _sample(buffers: tuple[bytes, ...] = (), channel: Any = "shell") -> Message:
    session = Session(session_id="abc123")
    return session.message(
        "execute_request",
        {"code": "print('é')", "silent": False, "n": 1.5},
        metadata={"tag": ["x"]},
        parent={"msg_id": "p1", "msg_type": "kernel_info_request"},
        buffers=buffers,
        channel=channel,
    )


def _jc_parts(msg: Message) -> list[bytes]:
    """The JSON parts exactly as our encoder writes them."""
    kind = msg.msg_type
    return [
        _encode_part(msg.header.to_dict(), "header", kind),
        _encode_part(msg.parent_header, "parent_header", kind),
        _encode_part(msg.metadata, "metadata", kind),
        _encode_part(msg.content, "content", kind),
    ]


# -- v1: known layout and interop with jupyter_server ----------------------------------------


def test_v1_layout_is_byte_identical_to_jupyter_server() -> None:
    msg = _sample(buffers=(b"\x00\x01", b"", b"tail"))
    ours = encode_v1(msg)
    theirs = serialize_msg_to_ws_v1([*_jc_parts(msg), *msg.buffers], "shell")
    assert ours == theirs


def test_v1_known_vector() -> None:
    msg = Message(
        header=Header(msg_id="1", msg_type="t", username="", session="", date="", version=""),
        channel="iopub",
    )
    frame = encode_v1(msg)
    # Compact JSON, as orjson (and jupyter_client's default packer) writes it.
    header = json.dumps(msg.header.to_dict(), separators=(",", ":")).encode()
    parts = [b"iopub", header, b"{}", b"{}", b"{}"]
    count = 6
    offsets = [8 * (count + 1)]
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    assert frame == struct.pack("<7Q", count, *offsets) + b"".join(parts)


def test_v1_jupyter_server_decodes_ours() -> None:
    msg = _sample(buffers=(b"abc", b"\xff" * 10), channel="control")
    channel, parts = deserialize_msg_from_ws_v1(encode_v1(msg))
    assert channel == "control"
    assert [json.loads(p) for p in parts[:4]] == [
        msg.header.to_dict(),
        msg.parent_header,
        msg.metadata,
        msg.content,
    ]
    assert parts[4:] == [b"abc", b"\xff" * 10]


def test_v1_we_decode_jupyter_server_messages() -> None:
    jc = JCSession()
    raw = jc.msg(
        "stream", {"name": "stdout", "text": "hi\n"}, parent=jc.msg_header("execute_request")
    )
    frame = serialize_msg_to_ws_v1(raw, "iopub", jc.pack)
    msg = decode_v1(frame)
    assert msg.channel == "iopub"
    assert msg.msg_type == "stream"
    assert msg.msg_id == raw["header"]["msg_id"]
    assert msg.content == {"name": "stdout", "text": "hi\n"}
    assert msg.parent_msg_type == "execute_request"
    assert msg.header.datetime.tzinfo is not None
    assert msg.buffers == ()
    assert msg.identities == ()


def test_v1_buffers_are_zero_copy_views() -> None:
    frame = encode_v1(_sample(buffers=(b"x" * 1000,)))
    msg = decode_v1(frame)
    assert isinstance(msg.buffers[0], memoryview)
    assert msg.buffers[0].obj is frame


# -- legacy: known layout and interop --------------------------------------------------------


def test_legacy_text_frame_is_what_jupyter_server_parses() -> None:
    msg = _sample()
    text = encode_legacy(msg)
    assert isinstance(text, str)
    obj = json.loads(text)
    assert obj["channel"] == "shell"
    assert obj["header"] == msg.header.to_dict()
    assert obj["msg_id"] == msg.msg_id
    assert obj["msg_type"] == "execute_request"
    assert obj["parent_header"] == msg.parent_header
    assert obj["metadata"] == msg.metadata
    assert obj["content"] == msg.content
    assert obj["buffers"] == []


def test_legacy_binary_frame_is_what_jupyter_server_parses() -> None:
    msg = _sample(buffers=(b"\x00" * 3, b"buf2"), channel="stdin")
    frame = encode_legacy(msg)
    assert isinstance(frame, bytes)
    obj = deserialize_binary_message(frame)
    assert obj["channel"] == "stdin"
    assert obj["content"] == msg.content
    assert obj["header"]["msg_id"] == msg.msg_id
    assert obj["buffers"] == [b"\x00" * 3, b"buf2"]


def test_legacy_binary_layout_is_byte_identical_to_jupyter_server() -> None:
    jc = JCSession()
    raw = jc.msg("comm_msg", {"data": {"x": 1}})
    raw["channel"] = "iopub"
    raw["buffers"] = [b"one", b"", b"three"]
    theirs = serialize_binary_message(raw)
    body = dict(raw)
    del body["buffers"]
    body_bytes = json.dumps(body, default=json_default).encode("utf8")
    assert legacy_binary_layout([body_bytes, b"one", b"", b"three"]) == theirs


def test_legacy_we_decode_jupyter_server_messages() -> None:
    jc = JCSession()
    raw = jc.msg("display_data", {"data": {"text/plain": "x"}, "metadata": {}})
    raw["channel"] = "iopub"
    raw["buffers"] = [b"\x01\x02", b"three"]
    msg = decode_legacy(serialize_binary_message(raw))
    assert msg.channel == "iopub"
    assert msg.msg_type == "display_data"
    assert [bytes(b) for b in msg.buffers] == [b"\x01\x02", b"three"]
    raw["buffers"] = []
    text = json.dumps(raw, default=json_default)
    msg = decode_legacy(text)
    assert msg.content == {"data": {"text/plain": "x"}, "metadata": {}}
    assert msg.buffers == ()


def test_dispatch_by_subprotocol() -> None:
    msg = _sample(buffers=(b"b",))
    assert decode_frame(encode_frame(msg, V1_SUBPROTOCOL), V1_SUBPROTOCOL) == msg
    assert decode_frame(encode_frame(msg, None), None) == msg
    assert isinstance(encode_frame(_sample(), None), str)
    assert isinstance(encode_frame(_sample(), V1_SUBPROTOCOL), bytes)


# -- round trips -----------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(_messages)
def test_v1_round_trip(msg: Message) -> None:
    assert decode_v1(encode_v1(msg)) == msg


@settings(max_examples=100, deadline=None)
@given(_messages)
def test_legacy_round_trip(msg: Message) -> None:
    assert decode_legacy(encode_legacy(msg)) == msg


@settings(max_examples=50, deadline=None)
@given(_messages)
def test_v1_round_trip_through_jupyter_server(msg: Message) -> None:
    channel, parts = deserialize_msg_from_ws_v1(encode_v1(msg))
    assert decode_v1(serialize_msg_to_ws_v1(parts, channel)) == msg


# -- encoding refuses what cannot go on the wire ---------------------------------------------


@pytest.mark.parametrize("encode", [encode_v1, encode_legacy])
def test_encode_rejects_bad_messages(encode: Any) -> None:
    with pytest.raises(LocalProtocolError, match="channel"):
        encode(_sample(channel=None))
    bad = Message(header=_sample().header, content={"x": float("nan")}, channel="shell")
    with pytest.raises(LocalProtocolError, match="JSON"):
        encode(bad)
    bad = Message(header=_sample().header, content={"x": object()}, channel="shell")
    with pytest.raises(LocalProtocolError):
        encode(bad)
    empty_type = Message(header=Header(msg_id="1", msg_type=""), channel="shell")
    with pytest.raises(LocalProtocolError, match="msg_type"):
        encode(empty_type)


def test_encode_accepts_any_buffer_protocol_object() -> None:
    import array

    arr = array.array("i", [1, 2, 3])
    msg = _sample(buffers=(arr,))  # type: ignore[arg-type]
    assert bytes(decode_v1(encode_v1(msg)).buffers[0]) == arr.tobytes()
    assert bytes(decode_legacy(encode_legacy(msg)).buffers[0]) == arr.tobytes()


# -- decoding malformed input ----------------------------------------------------------------


def _v1(parts: list[bytes], *, count: int | None = None, offsets: list[int] | None = None) -> bytes:
    n = len(parts) + 1 if count is None else count
    if offsets is None:
        offsets = [8 * (len(parts) + 2)]
        for part in parts:
            offsets.append(offsets[-1] + len(part))
    return struct.pack(f"<{len(offsets) + 1}Q", n, *offsets) + b"".join(parts)


_GOOD_HEADER = b'{"msg_id":"1","msg_type":"status"}'


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "bad_framing"),
        (b"\x01\x00", "bad_framing"),
        (struct.pack("<Q", 3), "too_few_frames"),
        (struct.pack("<Q", 2**40), "bad_framing"),
        (_v1([b"iopub", _GOOD_HEADER, b"{}", b"{}", b"{}"])[:-1], "bad_framing"),
        (_v1([b"iopub", _GOOD_HEADER, b"{}", b"{}", b"{}"]) + b"x", "bad_framing"),
        (_v1([b"nope", _GOOD_HEADER, b"{}", b"{}", b"{}"]), "bad_channel"),
        (_v1([b"iopub", b"{", b"{}", b"{}", b"{}"]), "bad_json"),
        (_v1([b"iopub", b"\xff", b"{}", b"{}", b"{}"]), "bad_utf8"),
        (_v1([b"iopub", b"[]", b"{}", b"{}", b"{}"]), "not_object"),
        (_v1([b"iopub", b"{}", b"{}", b"{}", b"{}"]), "bad_header"),
        (_v1([b"iopub", _GOOD_HEADER, b"{}", b"{}", b'{"x":NaN}']), "bad_json"),
        (
            _v1([b"iopub", _GOOD_HEADER, b"{}", b"{}", b"{}"], offsets=[56, 61, 40, 98, 100, 102]),
            "bad_framing",
        ),
    ],
)
def test_v1_malformed(frame: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage) as info:
        decode_v1(frame)
    assert info.value.reason == reason


def test_v1_rejects_text_frames() -> None:
    with pytest.raises(MalformedMessage) as info:
        decode_v1('{"channel": "shell"}')
    assert info.value.reason == "bad_framing"


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("", "bad_json"),
        ("[]", "not_object"),
        ('{"header": {"msg_id": "1", "msg_type": "t"}}', "bad_channel"),
        ('{"channel": "hb", "header": {"msg_id": "1", "msg_type": "t"}}', "bad_channel"),
        ('{"channel": "shell", "content": {}}', "not_object"),
        (
            '{"channel": "shell", "header": {"msg_id": "1", "msg_type": "t"}, "content": 3}',
            "not_object",
        ),
        ('{"channel": "shell", "header": {"msg_type": "t"}}', "bad_header"),
        (
            '{"channel": "shell", "header": {"msg_id": "1", "msg_type": "t"}, "buffers": ["x"]}',
            "bad_framing",
        ),
        ("\ud800", "bad_utf8"),
        (b"\x00\x00\x00\x01", "bad_framing"),
        (struct.pack(">II", 0, 8), "bad_framing"),
        (struct.pack(">II", 5, 8), "bad_framing"),
        (struct.pack(">III", 2, 12, 11) + b"{}", "bad_framing"),
        (struct.pack(">III", 2, 12, 40) + b"{}", "bad_framing"),
        (struct.pack(">II", 1, 8) + b"\xff", "bad_utf8"),
    ],
)
def test_legacy_malformed(frame: str | bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage) as info:
        decode_legacy(frame)
    assert info.value.reason == reason


def test_legacy_null_parent_header_means_none() -> None:
    msg = decode_legacy(
        '{"channel": "iopub", "header": {"msg_id": "1", "msg_type": "status"},'
        ' "parent_header": null, "metadata": {}, "content": {"execution_state": "idle"}}'
    )
    assert msg.parent_header == {}
    assert msg.parent_id is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_malformed(data: bytes) -> None:
    for decode in (decode_v1, decode_legacy):
        try:
            msg = decode(data)
        except MalformedMessage:
            continue
        assert msg.channel in CHANNEL_NAMES


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_decodes_or_raises_malformed(text: str) -> None:
    try:
        msg = decode_legacy(text)
    except MalformedMessage:
        return
    assert msg.channel in CHANNEL_NAMES


@settings(max_examples=100, deadline=None)
@given(_messages, st.data())
def test_corrupted_frames_decode_or_raise_malformed(msg: Message, data: st.DataObject) -> None:
    for frame in (encode_v1(msg), encode_legacy(msg)):
        raw = bytearray(frame.encode() if isinstance(frame, str) else frame)
        if not raw:
            continue
        for _ in range(data.draw(st.integers(1, 4))):
            pos = data.draw(st.integers(0, len(raw) - 1))
            raw[pos] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(0, len(raw)))
        corrupted = bytes(raw[:cut])
        for decode in (decode_v1, decode_legacy):
            try:
                decode(corrupted)
            except MalformedMessage:
                pass


def test_invalid_utf8_is_repaired_when_asked_as_jupyter_client_does() -> None:
    # jupyter_server passes the kernel's frames through in v1: ipykernel's print('\\udcff')
    # arrives as a lone 0xff byte. The websocket reader asks for it to be repaired.
    content = b'{"name":"stdout","text":"a|\xff|b"}'
    frame = _v1([b"iopub", _GOOD_HEADER, b"{}", b"{}", content])
    repaired: list[str] = []
    msg = decode_frame(frame, V1_SUBPROTOCOL, repaired)
    assert msg.content == {"name": "stdout", "text": "a|\ufffd|b"}
    assert repaired == ["content"]
    with pytest.raises(MalformedMessage) as info:  # strict unless asked
        decode_frame(frame, V1_SUBPROTOCOL)
    assert info.value.reason == "bad_utf8"
    # What is not JSON once repaired is still rejected.
    with pytest.raises(MalformedMessage) as info:
        decode_frame(_v1([b"iopub", _GOOD_HEADER, b"{}", b"{}", b"\xff"]), V1_SUBPROTOCOL, [])
    assert info.value.reason == "bad_json"
