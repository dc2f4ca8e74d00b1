"""The wire codec: framing, signing, verification, replay guard and typed errors."""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import hmac
import json
import math
import os
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_enchannel import (
    DELIMITER,
    ConfigurationError,
    DuplicateSignature,
    EnchannelError,
    Header,
    InvalidSignature,
    LocalProtocolError,
    MalformedMessage,
    Message,
    RemoteProtocolError,
    Session,
    UnsignedMessage,
)
from trio_enchannel._wire import _session as codec

from . import strategies as s


def pair(key: str = "secret", scheme: str = "hmac-sha256") -> tuple[Session, Session]:
    return Session(key, signature_scheme=scheme), Session(key, signature_scheme=scheme)


# -- round trips ------------------------------------------------------------------------


@settings(max_examples=200)
@given(
    key=s.keys,
    scheme=s.schemes,
    msg_type=s.msg_types,
    content=s.json_objects,
    metadata=s.json_objects,
    parent=s.json_objects,
    identities=s.identities,
    buffers=s.buffers,
    channel=s.channels,
)
def test_round_trip(
    key: str,
    scheme: str,
    msg_type: str,
    content: dict[str, Any],
    metadata: dict[str, Any],
    parent: dict[str, Any],
    identities: list[bytes],
    buffers: list[bytes],
    channel: Any,
) -> None:
    sender, receiver = pair(key, scheme)
    msg = sender.message(
        msg_type,
        content,
        parent=parent,
        metadata=metadata,
        buffers=buffers,
        identities=identities,
        channel=channel,
    )
    frames = sender.serialize(msg)
    out = receiver.deserialize(frames, channel=channel)
    assert out.header == msg.header
    assert out.content == content
    assert out.metadata == metadata
    assert out.parent_header == parent
    assert out.identities == tuple(identities)
    assert [bytes(b) for b in out.buffers] == buffers
    assert out.channel == channel
    assert out == msg


@settings(max_examples=150)
@given(
    key=st.text(min_size=1, max_size=20).filter(lambda s: "\ud800" not in s),
    scheme=s.schemes,
    content=s.json_objects,
    data=st.data(),
)
def test_flipping_any_signed_byte_is_rejected(
    key: str, scheme: str, content: dict[str, Any], data: st.DataObject
) -> None:
    sender, receiver = pair(key, scheme)
    frames = [bytes(f) for f in sender.serialize(sender.message("stream", content))]
    start = frames.index(DELIMITER) + 1
    index = data.draw(st.integers(min_value=start, max_value=start + 4), label="frame")
    frame = bytearray(frames[index])
    pos = data.draw(st.integers(min_value=0, max_value=len(frame) - 1), label="byte")
    flip = data.draw(st.integers(min_value=1, max_value=255), label="xor")
    frame[pos] ^= flip
    frames[index] = bytes(frame)
    with pytest.raises((InvalidSignature, UnsignedMessage)):
        receiver.deserialize(frames)


@given(
    key=st.sampled_from(["", "secret"]),
    scheme=s.schemes,
    content=s.json_objects,
    data=st.data(),
)
def test_a_received_buffer_content_frame_decodes_and_is_verified_in_place(
    key: str, scheme: str, content: dict[str, Any], data: st.DataObject
) -> None:
    # Large frames arrive as memoryviews (zero-copy); they are hashed and decoded in place.
    sender, receiver = pair(key, scheme)
    frames: list[bytes | memoryview] = [
        bytes(f) for f in sender.serialize(sender.message("stream", content))
    ]
    start = frames.index(DELIMITER) + 1
    raw = bytearray(frames[start + 4])
    frames[start + 4] = memoryview(bytes(raw))
    assert receiver.deserialize(frames).content == content
    if key:
        pos = data.draw(st.integers(min_value=0, max_value=len(raw) - 1), label="byte")
        raw[pos] ^= data.draw(st.integers(min_value=1, max_value=255), label="xor")
        frames[start + 4] = memoryview(bytes(raw))
        with pytest.raises((InvalidSignature, UnsignedMessage)):
            pair(key, scheme)[1].deserialize(frames)


@settings(max_examples=500)
@given(frames=s.frame_lists, key=s.keys)
def test_arbitrary_frames_decode_or_raise_our_error(frames: list[bytes], key: str) -> None:
    session = Session(key)
    try:
        msg = session.deserialize(frames)
    except RemoteProtocolError as exc:
        assert exc.reason
        assert str(exc)
    else:
        assert isinstance(msg, Message)
        assert msg.msg_id and msg.msg_type


@settings(max_examples=100)
@given(content=s.json_objects, scheme=s.schemes)
def test_replay_rejected(content: dict[str, Any], scheme: str) -> None:
    sender, receiver = pair("k", scheme)
    frames = sender.serialize(sender.message("stream", content))
    receiver.deserialize(frames)
    with pytest.raises(DuplicateSignature) as info:
        receiver.deserialize(frames)
    assert info.value.reason == "duplicate_signature"


# -- invalid UTF-8 ----------------------------------------------------------------------

# What jupyter_client's packer sends for a str holding lone surrogates (ipykernel's
# ``print('\\udcff')``): JSON text encoded with "surrogateescape", so each \\udc80-\\udcff
# becomes one raw byte 0x80-0xff, invalid UTF-8 on its own.
_escaped_texts = st.lists(
    st.one_of(st.text(max_size=8), st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF)),
    max_size=6,
).map("".join)


def _surrogateescaped(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogateescape")


@settings(max_examples=200)
@given(
    key=s.keys,
    texts=st.dictionaries(st.text(max_size=5), _escaped_texts, max_size=4),
    metadata_text=_escaped_texts,
)
def test_invalid_utf8_is_replaced_as_jupyter_client_does_and_counted(
    key: str, texts: dict[str, str], metadata_text: str
) -> None:
    sender, receiver = pair(key)
    frames = [bytes(f) for f in sender.serialize(sender.message("stream", {}))]
    at = frames.index(DELIMITER)
    content = _surrogateescaped(texts)
    metadata = _surrogateescaped({"m": metadata_text})
    parts = [frames[at + 2], frames[at + 3], metadata, content]
    frames[at + 1 :] = [sender.sign(parts), *parts]
    out = receiver.deserialize(frames)
    # jupyter_client's unpacker: bytes.decode("utf8", "replace"), then json.loads.
    assert out.content == json.loads(content.decode("utf-8", "replace"))
    assert out.metadata == json.loads(metadata.decode("utf-8", "replace"))
    # (Escaped bytes may happen to form valid UTF-8, such as C2 80: nothing to repair then.)
    invalid = not all(_is_utf8(part) for part in (content, metadata))
    assert receiver.invalid_utf8 == (1 if invalid else 0)
    if invalid:
        assert "\ufffd" in json.dumps(out.content, ensure_ascii=False) + out.metadata["m"]


_wire_oddities = st.sampled_from(
    [
        b'"\\ud800"',  # a lone surrogate escape: decoded as the lone surrogate
        b"18446744073709551616",  # beyond 64 bits: stays an exact int
        b"-9223372036854775809",
        b"1e400",  # beyond a double: infinity, as json.loads reads it
        b'"caf\xc3\xa9"',
        b'"\xff"',  # invalid UTF-8: repaired and counted
        b"[1, 2.5, true, null]",
    ]
)


@settings(max_examples=60, deadline=None)
@given(
    key=s.keys,
    content=s.json_objects,
    odd=st.lists(_wire_oddities, max_size=3),
    gc_enabled=st.booleans(),
)
def test_large_content_decodes_as_small_content_and_keeps_the_gc_state(
    key: str, content: dict[str, Any], odd: list[bytes], gc_enabled: bool
) -> None:
    """A content frame of at least _PAUSE_GC_AT bytes is decoded with the garbage collector
    paused: to the same value (and the same repair count) as any other frame, and the
    collector is left enabled or disabled as it was."""
    sender, receiver = pair(key)
    frames = [bytes(f) for f in sender.serialize(sender.message("stream", {}))]
    at = frames.index(DELIMITER)
    fields = b"".join(b',"odd%d":%s' % (i, raw) for i, raw in enumerate(odd))
    padding = b"x" * codec._PAUSE_GC_AT
    raw = json.dumps(content).encode()[:-1] + (b", " if content else b"")
    raw += b'"pad":"' + padding + b'"' + fields + b"}"
    parts = [frames[at + 2], frames[at + 3], frames[at + 4], raw]
    frames[at + 1 :] = [sender.sign(parts), *parts]
    was = gc.isenabled()
    (gc.enable if gc_enabled else gc.disable)()
    try:
        out = receiver.deserialize([*frames[:-1], memoryview(raw)])
        assert gc.isenabled() == gc_enabled
    finally:
        (gc.enable if was else gc.disable)()
    assert out.content == json.loads(raw.decode("utf-8", "replace"))
    assert receiver.invalid_utf8 == (0 if _is_utf8(raw) else 1)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_one_invalid_byte_among_outputs_keeps_the_message() -> None:
    # ipykernel's print('a'); print('\\udcff'); print('b') in one stream message.
    sender, receiver = pair()
    frames = [bytes(f) for f in sender.serialize(sender.message("stream", {}))]
    at = frames.index(DELIMITER)
    content = _surrogateescaped({"name": "stdout", "text": "a\n\udcff\nb\n"})
    parts = [frames[at + 2], frames[at + 3], frames[at + 4], content]
    frames[at + 1 :] = [sender.sign(parts), *parts]
    out = receiver.deserialize(frames)
    assert out.content == {"name": "stdout", "text": "a\n\ufffd\nb\n"}
    assert receiver.invalid_utf8 == 1
    assert Session("secret").deserialize(sender.serialize(sender.message("x"))).msg_type == "x"


# -- verification before anything else --------------------------------------------------


@settings(max_examples=100)
@given(content=s.json_objects, buffers=s.buffers, key=s.keys)
def test_frames_received_as_memoryviews_verify_and_decode_alike(
    content: dict[str, Any], buffers: list[bytes], key: str
) -> None:
    sender, receiver = pair(key)
    msg = sender.message("display_data", content, buffers=buffers)
    frames = [memoryview(bytes(f)) for f in sender.serialize(msg)]
    assert receiver.deserialize(frames) == msg


@pytest.mark.parametrize("as_view", [False, True])
@pytest.mark.parametrize("size", [64 * 1024 - 200, 64 * 1024, 3 * 2**20])
def test_large_authentic_messages_verify_in_place_and_decode(as_view: bool, size: int) -> None:
    # Around the size where the signature stops being checked over a joined copy.
    sender, receiver = pair()
    msg = sender.message("stream", {"text": "é" * (size // 2)}, metadata={"m": "x" * 100})
    frames: list[Any] = [bytes(f) for f in sender.serialize(msg)]
    if as_view:
        frames = [memoryview(f) for f in frames]
    assert receiver.deserialize(frames) == msg
    tampered = list(frames)
    tampered[-1] = bytes(frames[-1])[:-2] + b" }"
    with pytest.raises(InvalidSignature):
        receiver.deserialize(tampered)


@pytest.mark.parametrize("as_view", [False, True])
@pytest.mark.parametrize("forged", ["content", "signature"])
def test_a_forged_large_message_is_rejected_without_copying_it(as_view: bool, forged: str) -> None:
    """Issue #12: a forged 100 MiB message cost about 200 MiB of copies before it was
    rejected. The HMAC is now computed over the frames in place."""
    import tracemalloc

    size = 24 * 2**20
    sender, receiver = pair()
    frames: list[Any] = [bytes(f) for f in sender.serialize(sender.message("stream", {}))]
    at = frames.index(DELIMITER)
    payload = b'{"text": "' + b"x" * size + b'"}'
    if forged == "content":
        frames[at + 4] = payload  # signed by nobody
    else:
        frames[at + 1] = b"0" * size  # a huge "signature"
    if as_view:
        frames = [memoryview(f) for f in frames]
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with pytest.raises(InvalidSignature):
            receiver.deserialize(frames)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"{peak} bytes allocated to reject a forged {size}-byte message"


# -- signing details ----------------------------------------------------------------------


def test_signature_is_lowercase_hex_of_hmac_over_four_frames() -> None:
    import hashlib
    import hmac

    session = Session("k\u00e9y", signature_scheme="hmac-sha512")
    frames = session.serialize(session.message("status", {"execution_state": "idle"}))
    idx = frames.index(DELIMITER)
    expected = hmac.new("k\u00e9y".encode(), digestmod=hashlib.sha512)
    for part in frames[idx + 2 : idx + 6]:
        expected.update(part)
    assert frames[idx + 1] == expected.hexdigest().encode("ascii")


@settings(max_examples=300)
@given(
    key=st.binary(max_size=300),
    data=st.binary(max_size=2000),
    digest=st.sampled_from(
        ["sha256", "sha512", "sha1", "md5", "sha224", "sha384", "sha3_256", "sha3_512", "blake2b"]
    ),
)
def test_precomputed_hmac_states_agree_with_hmac_digest(
    key: bytes, data: bytes, digest: str
) -> None:
    """The signer keeps the keyed inner/outer hash states (keys longer than a block are
    hashed first, as RFC 2104 says); its signatures are byte for byte hmac.digest's."""
    import hmac

    from trio_enchannel._wire._session import _Signer

    assert _Signer(key, digest).hexdigest(data) == hmac.digest(key, data, digest).hex().encode()


def test_a_scheme_the_precomputed_states_do_not_fit_falls_back_to_hmac_digest() -> None:
    import hmac

    from trio_enchannel._wire._session import _Signer

    signer = _Signer(b"key", "sha256")
    signer._inner = signer._outer = None  # what the constructor's self-check does on mismatch
    assert signer.hexdigest(b"x") == hmac.digest(b"key", b"x", "sha256").hex().encode()


json_text_pieces = st.sampled_from(
    ["{}", "{", "}", "[]", "null", "1", "12", '"a"', '{"a":1}', '{"msg_id":"m","msg_type":"t"}',
     " ", "\n", ",", ":", '"', "\\", "NaN", '{"a":[1,{"b":null}]}', "\u00e9", "\u2603"]
)  # fmt: skip


@settings(max_examples=500)
@given(
    parts=st.lists(st.lists(json_text_pieces, max_size=4).map("".join), min_size=4, max_size=4)
    | st.lists(s.json_objects.map(lambda o: json.dumps(o, separators=(",", ":"))), min_size=4,
               max_size=4),
    cuts=st.lists(st.integers(0, 200), min_size=3, max_size=3),
    resplit=st.booleans(),
)  # fmt: skip
def test_single_pass_decoding_agrees_with_decoding_each_frame(
    parts: list[str], cuts: list[int], resplit: bool
) -> None:
    """Decoding the four joined frames in one pass is a shortcut only: whenever it returns,
    each part is exactly what decoding its own frame gives; frame boundaries that do not
    match the JSON values (e.g. one object split across two frames) make it decline."""
    from trio_enchannel._wire._session import _decode_four, _decode_part

    frames = [part.encode() for part in parts]
    if resplit:  # move the boundaries: the same bytes, cut elsewhere
        joined = b"".join(frames)
        points = sorted(min(c, len(joined)) for c in cuts)
        frames = [joined[: points[0]], joined[points[0] : points[1]]]
        frames += [joined[points[1] : points[2]], joined[points[2] :]]
    joined = b"".join(frames)
    if not joined.isascii():
        return
    decoded = _decode_four(joined, len(frames[0]), len(frames[1]), len(frames[2]))
    if decoded is None:
        return
    names = ("header", "parent_header", "metadata", "content")
    assert list(decoded) == [_decode_part(f, n) for f, n in zip(frames, names, strict=True)]


def test_empty_key_sends_empty_signature_and_skips_verification() -> None:
    sender, receiver = pair("")
    frames = sender.serialize(sender.message("status"))
    assert frames[frames.index(DELIMITER) + 1] == b""
    receiver.deserialize(frames)
    receiver.deserialize(frames)  # no replay tracking without signatures
    assert not sender.signed


@pytest.mark.parametrize("sender_key", ["kernel-key", ""])
def test_a_keyless_session_accepts_and_counts_signed_messages(sender_key: str) -> None:
    """Without a key nothing is verified; a signed message (even an HMAC of the empty key,
    as xeus-python sends) is accepted as jupyter_client accepts it, and counted; an empty
    signature is not counted."""
    sender = Session(sender_key)
    frames = sender.serialize(sender.message("status"))
    if sender_key == "":  # what a kernel started with an empty key that signs sends
        at = frames.index(DELIMITER) + 1
        digest = hmac.new(b"", b"".join(frames[at + 1 : at + 5]), hashlib.sha256)
        frames[at] = digest.hexdigest().encode()
    receiver = Session("")
    assert receiver.deserialize(frames).msg_type == "status"
    assert receiver.unverified == 1
    receiver.deserialize(Session("").serialize(Session("").message("status")))
    assert receiver.unverified == 1  # an empty signature is not counted


def test_a_keyed_session_counts_nothing_unverified() -> None:
    sender, receiver = pair("k")
    receiver.deserialize(sender.serialize(sender.message("status")))
    with pytest.raises(UnsignedMessage):
        receiver.deserialize(Session("").serialize(Session("").message("status")))
    assert receiver.unverified == 0


def test_unsigned_message_rejected_when_key_set() -> None:
    frames = Session("").serialize(Session("").message("status"))
    with pytest.raises(UnsignedMessage):
        Session("k").deserialize(frames)


def test_other_key_rejected() -> None:
    frames = Session("a").serialize(Session("a").message("status"))
    with pytest.raises(InvalidSignature):
        Session("b").deserialize(frames)


def test_invalid_message_is_not_recorded_in_replay_history() -> None:
    sender, receiver = pair()
    frames = [bytes(f) for f in sender.serialize(sender.message("status"))]
    forged = list(frames)
    forged[-1] = b'{"evil": 1}'  # content changed, signature kept
    with pytest.raises(InvalidSignature):
        receiver.deserialize(forged)
    # The genuine message with that signature is still accepted once.
    receiver.deserialize(frames)
    with pytest.raises(DuplicateSignature):
        receiver.deserialize(frames)


def test_replay_history_is_bounded_and_forgets_oldest() -> None:
    sender = Session("k")
    receiver = Session("k", replay_history=3)
    sent = [sender.serialize(sender.message("status")) for _ in range(5)]
    for frames in sent:
        receiver.deserialize(frames)
    for frames in sent[2:]:  # the three newest are remembered (a rejection records nothing)
        with pytest.raises(DuplicateSignature):
            receiver.deserialize(frames)
    receiver.deserialize(sent[0])  # the two oldest were forgotten: accepted again,
    receiver.deserialize(sent[1])  # each now remembered in place of the oldest (2, then 3)
    receiver.deserialize(sent[2])
    for frames in (sent[0], sent[1], sent[2]):
        with pytest.raises(DuplicateSignature):
            receiver.deserialize(frames)


def test_replay_history_is_per_session() -> None:
    sender = Session("k")
    frames = sender.serialize(sender.message("status"))
    Session("k").deserialize(frames)
    Session("k").deserialize(frames)


@pytest.mark.parametrize("scheme", ["hmac-nope", "sha256", "hmac-", ""])
def test_unknown_scheme_fails_at_construction(scheme: str) -> None:
    with pytest.raises(ConfigurationError, match="signature_scheme"):
        Session("k", signature_scheme=scheme)


def test_key_not_in_repr() -> None:
    session = Session("super-secret-key")
    assert "super-secret-key" not in repr(session)
    assert session.key == b"super-secret-key"


# -- malformed input ----------------------------------------------------------------------


def _frames(*parts: bytes, sig: bytes = b"") -> list[bytes]:
    return [DELIMITER, sig, *parts]


HEADER = json.dumps({"msg_id": "a", "msg_type": "status"}).encode()


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([HEADER, b"{}", b"{}", b"{}"], "missing_delimiter"),
        (_frames(HEADER, b"{}", b"{}"), "too_few_frames"),
        # Invalid UTF-8 is repaired (U+FFFD), but what is left must still be JSON.
        (_frames(b"\xff", b"{}", b"{}", b"{}"), "bad_json"),
        (_frames(HEADER, b"{}", b"{}", b'{"x": \xff}'), "bad_json"),
        (_frames(HEADER, b"{}", b"\xfe[1]", b"{}"), "bad_json"),
        (_frames(HEADER, b"{", b"{}", b"{}"), "bad_json"),
        (_frames(HEADER, b"{}", b"[1]", b"{}"), "not_object"),
        (_frames(HEADER, b"{}", b"{}", b'{"x": NaN}'), "bad_json"),
        (_frames(b"{}", b"{}", b"{}", b"{}"), "bad_header"),
        (_frames(b'{"msg_id": "a", "msg_type": 3}', b"{}", b"{}", b"{}"), "bad_header"),
        (_frames(HEADER, b"{}", b"{}", b"[" * 100_000 + b"]" * 100_000), "bad_json"),
    ],
)
def test_malformed_frames_raise_typed_errors(frames: list[bytes], reason: str) -> None:
    with pytest.raises(MalformedMessage) as info:
        Session("").deserialize(frames)
    assert info.value.reason == reason
    assert isinstance(info.value, EnchannelError)


def test_an_authentic_malformed_message_names_the_request_it_answers() -> None:
    sender, receiver = pair()
    request = sender.message("execute_request", channel="shell")
    frames = [bytes(f) for f in sender.serialize(sender.message("stream", parent=request))]
    at = frames.index(DELIMITER)
    h, p, m, _ = frames[at + 2 : at + 6]
    for content in (b'{"x": NaN}', b"[1]"):
        bad = [DELIMITER, sender.sign((h, p, m, content)), h, p, m, content]
        with pytest.raises(MalformedMessage) as info:
            receiver.deserialize(bad)
        assert info.value.parent_id == request.msg_id
    # No parent (or an unreadable one): nothing to name.
    orphan = [bytes(f) for f in sender.serialize(sender.message("stream"))]
    h, p, m, _ = orphan[at + 2 : at + 6]
    with pytest.raises(MalformedMessage) as info:
        receiver.deserialize([DELIMITER, sender.sign((h, p, m, b"[")), h, p, m, b"["])
    assert info.value.parent_id is None
    with pytest.raises(MalformedMessage) as info:
        receiver.deserialize(frames[at + 1 :])  # no delimiter: nothing was verified
    assert info.value.parent_id is None


def test_identities_and_buffers_kept() -> None:
    sender, receiver = pair()
    big = os.urandom(1 << 20)
    msg = sender.message("display_data", {}, buffers=[big, memoryview(b"xy")])
    frames = sender.serialize(msg, identities=[b"id1", b"id2"])
    assert frames[:2] == [b"id1", b"id2"]
    assert frames[-2] is big  # passed through, not copied
    out = receiver.deserialize(frames)
    assert out.identities == (b"id1", b"id2")
    assert out.buffers[0] is big


# -- local errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ({"x": math.nan}, "NaN|nan"),
        ({"x": math.inf}, "Infinity"),
        ({"x": object()}, "not JSON serializable"),
        ({"x": b"bytes"}, "not JSON serializable"),
        ({"x": dt.datetime(2020, 1, 1)}, "naive datetime"),
        ({"x": "\ud800"}, "surrogate"),
    ],
)
def test_unencodable_content_rejected_before_sending(content: dict[str, Any], match: str) -> None:
    session = Session("k")
    msg = session.message("comm_msg", content)
    with pytest.raises(LocalProtocolError, match=match) as info:
        session.serialize(msg)
    assert "comm_msg" in str(info.value) and "content" in str(info.value)


def test_empty_msg_type_rejected() -> None:
    with pytest.raises(LocalProtocolError):
        Session().message("")
    header = Header(msg_id="x", msg_type="")
    with pytest.raises(LocalProtocolError):
        Session().serialize(Message(header=header))


def test_non_dict_content_rejected() -> None:
    session = Session()
    msg = Message(header=Header(msg_id="x", msg_type="t"), content=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="content must be a dict"):
        session.serialize(msg)


def test_non_buffer_rejected() -> None:
    session = Session()
    with pytest.raises(TypeError, match=r"buffers\[0\]"):
        session.message("t", buffers=[123])  # type: ignore[list-item]
    # A Message built by other means is still refused before anything is framed.
    msg = attrs.evolve(session.message("t"), buffers=(123,))
    with pytest.raises(LocalProtocolError, match="buffer 0"):
        session.serialize(msg)


def test_aware_datetime_and_numpy_like_numbers_encoded() -> None:
    import fractions

    session = Session()
    when = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    msg = session.message("t", {"when": when, "frac": fractions.Fraction(1, 2)})
    frames = session.serialize(msg)
    content = json.loads(bytes(frames[-1]))
    assert content == {"when": "2020-01-01T00:00:00Z", "frac": 0.5}


# -- headers, ids and dates ---------------------------------------------------------------


def test_header_fields_and_date_format() -> None:
    session = Session(username="ada", protocol_version="5.4")
    msg = session.message("kernel_info_request", channel="shell", subshell_id="sub-1")
    assert msg.header.username == "ada"
    assert msg.header.version == "5.4"
    assert msg.header.session == session.session_id
    assert msg.header.date.endswith("Z")
    assert msg.header.datetime.tzinfo is not None
    assert abs(msg.header.datetime - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=1)
    assert msg.subshell_id == "sub-1"
    assert msg.to_dict()["header"]["subshell_id"] == "sub-1"


def test_msg_ids_unique_across_fork() -> None:
    session = Session()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            ids = ",".join(session.new_msg_id() for _ in range(100))
            os.write(write, ids.encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as handle:
        child_ids = set(handle.read().decode().split(","))
    parent_ids = {session.new_msg_id() for _ in range(100)}
    assert len(child_ids) == 100
    assert not (child_ids & parent_ids)


def test_reply_copies_parent_identities_channel_and_type() -> None:
    session = Session()
    request = session.message(
        "execute_request",
        {"code": "1"},
        identities=[b"client"],
        channel="shell",
        subshell_id="s",
    )
    reply = session.reply(request, {"status": "ok"})
    assert reply.msg_type == "execute_reply"
    assert reply.parent_id == request.msg_id
    assert reply.parent_msg_type == "execute_request"
    assert reply.identities == (b"client",)
    assert reply.channel == "shell"
    assert reply.subshell_id == "s"
    with pytest.raises(LocalProtocolError):
        session.reply(session.message("stream"), {})


def test_unknown_channel_rejected() -> None:
    with pytest.raises(LocalProtocolError, match="unknown channel"):
        Session().message("x", channel="hb")  # type: ignore[arg-type]


def test_unknown_header_keys_preserved() -> None:
    header = {"msg_id": "a", "msg_type": "t", "custom": [1], "date": "", "version": "5.3"}
    msg = Session().deserialize([DELIMITER, b"", json.dumps(header).encode(), b"{}", b"{}", b"{}"])
    assert msg.header.extra == {"custom": [1]}
    assert msg.header.to_dict()["custom"] == [1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-06T07:08:09.123456Z", dt.datetime(2024, 5, 6, 7, 8, 9, 123456, dt.timezone.utc)),
        ("2024-05-06T07:08:09.1Z", dt.datetime(2024, 5, 6, 7, 8, 9, 100000, dt.timezone.utc)),
        (
            "2024-05-06T07:08:09.123456789+00:00",
            dt.datetime(2024, 5, 6, 7, 8, 9, 123456, dt.timezone.utc),
        ),
        ("2024-05-06T07:08:09", dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)),
    ],
)
def test_dates_parsed_on_demand(text: str, expected: dt.datetime) -> None:
    header = Header(msg_id="a", msg_type="t", date=text)
    assert header.datetime == expected


def test_null_parent_header_and_metadata_read_as_empty() -> None:
    # ipykernel's first "starting" status carries a JSON null parent header.
    header = json.dumps({"msg_id": "a", "msg_type": "status"}).encode()
    msg = Session().deserialize([DELIMITER, b"", header, b"null", b"null", b"{}"])
    assert msg.parent_header == {}
    assert msg.metadata == {}
    assert msg.parent_id is None
    with pytest.raises(MalformedMessage, match="content"):
        Session().deserialize([DELIMITER, b"", header, b"{}", b"{}", b"null"])


def test_from_connection_info_takes_the_session_arguments() -> None:
    from trio_enchannel import ConnectionInfo

    info = ConnectionInfo(1, 2, 3, 4, 5, key="k", signature_scheme="hmac-sha512")
    session = Session.from_connection_info(
        info, session_id="sid", username="ada", protocol_version="5.3", replay_history=2
    )
    assert (session.key, session.signature_scheme) == (b"k", "hmac-sha512")
    assert (session.session_id, session.username, session.protocol_version) == (
        "sid",
        "ada",
        "5.3",
    )
    assert Session.from_connection_info(info).session_id != session.session_id
    with pytest.raises(TypeError, match="session_id"):
        Session.from_connection_info(info, session_id=5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="replay_history"):
        Session.from_connection_info(info, replay_history=0)
