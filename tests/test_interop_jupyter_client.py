"""Byte-level interoperability with jupyter_client's Session, in both directions."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_enchannel import DELIMITER, InvalidSignature, Session

from . import strategies as s

pytest.importorskip("jupyter_client", reason="differential tests against jupyter_client")

from jupyter_client.session import Session as JCSession
from jupyter_client.session import has_orjson

SCHEMES = ["hmac-sha256", "hmac-sha512", "hmac-md5", "hmac-sha1"]


#: jupyter_client's packers: its default when orjson is importable, and the stdlib one.
PACKERS = ["orjson", "json"]


def jc_session(key: str, scheme: str, packer: str = "orjson") -> Any:
    if packer == "orjson" and not has_orjson:
        pytest.skip("orjson is not installed: jupyter_client would use its json packer")
    return JCSession(key=key.encode(), signature_scheme=scheme, packer=packer, unpacker=packer)


def jc_frames(
    jc: Any, msg: dict[str, Any], idents: list[bytes], buffers: list[bytes]
) -> list[bytes]:
    # jupyter_client's send() = serialize() plus buffers; reproduce it without a socket.
    return [*jc.serialize(msg, ident=idents), *buffers]


@pytest.mark.parametrize("packer", PACKERS)
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("key", ["", "a-key", "kéy"])
@settings(max_examples=30, deadline=None)
@given(
    content=s.json_objects,
    identities=s.identities,
    buffers=st.lists(st.binary(max_size=64), max_size=2),
)
def test_jupyter_client_frames_verify_and_decode_in_ours(
    packer: str,
    scheme: str,
    key: str,
    content: dict[str, Any],
    identities: list[bytes],
    buffers: list[bytes],
) -> None:
    jc = jc_session(key, scheme, packer)
    parent = jc.msg("execute_request", {"code": "1"})
    msg = jc.msg("execute_result", content, parent=parent["header"], metadata={"m": 1})
    frames = jc_frames(jc, msg, identities, buffers)
    ours = Session(key, signature_scheme=scheme)
    out = ours.deserialize(frames, channel="iopub")
    assert out.msg_id == msg["header"]["msg_id"]
    assert out.msg_type == "execute_result"
    assert out.content == content
    assert out.metadata == {"m": 1}
    assert out.parent_id == parent["header"]["msg_id"]
    assert out.identities == tuple(identities)
    assert [bytes(b) for b in out.buffers] == buffers
    # The date string is kept verbatim; it parses to the same instant jupyter_client sent.
    assert out.header.datetime == msg["header"]["date"]


@pytest.mark.parametrize("packer", PACKERS)
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("key", ["", "a-key", "kéy"])
@settings(max_examples=30, deadline=None)
@given(
    content=s.json_objects,
    identities=s.identities,
    buffers=st.lists(st.binary(max_size=64), max_size=2),
)
def test_our_frames_verify_and_decode_in_jupyter_client(
    packer: str,
    scheme: str,
    key: str,
    content: dict[str, Any],
    identities: list[bytes],
    buffers: list[bytes],
) -> None:
    ours = Session(key, signature_scheme=scheme)
    parent = ours.message("execute_request", {"code": "1"})
    msg = ours.message("display_data", content, parent=parent, metadata={"m": 2}, buffers=buffers)
    frames = [bytes(f) for f in ours.serialize(msg, identities=identities)]
    jc = jc_session(key, scheme, packer)
    idents, rest = jc.feed_identities(frames)
    assert idents == identities
    out = jc.deserialize(rest)
    assert out["header"]["msg_id"] == msg.msg_id
    assert out["content"] == content
    assert out["metadata"] == {"m": 2}
    assert out["parent_header"]["msg_id"] == parent.msg_id
    assert [bytes(b) for b in out["buffers"]] == buffers


@pytest.mark.parametrize("scheme", SCHEMES)
def test_same_dict_encodes_to_the_same_bytes(scheme: str) -> None:
    # Same JSON conventions as jupyter_client's default (orjson) packer: UTF-8, no ASCII
    # escaping, compact separators; identical bytes and signatures.
    jc = jc_session("k", scheme, "orjson")
    ours = Session("k", signature_scheme=scheme)
    content = {"text": "héllo ☃", "n": [1, 2.5, None, True]}
    assert bytes(jc.pack(content)) == ours.serialize(ours.message("t", content))[-1]
    parts = [b"{}", b"{}", b"{}", jc.pack(content)]
    assert jc.sign(parts) == ours.sign(parts)


@pytest.mark.parametrize("packer", PACKERS)
@settings(max_examples=100, deadline=None)
@given(content=s.json_objects, metadata=s.json_objects)
def test_our_parts_are_what_jupyter_client_packs(
    packer: str, content: dict[str, Any], metadata: dict[str, Any]
) -> None:
    """Our JSON parts are byte for byte those of jupyter_client's orjson packer, and the same
    JSON values as its json packer writes (which puts spaces after separators)."""
    jc = jc_session("k", "hmac-sha256", packer)
    ours = Session("k")
    msg = ours.message("display_data", content, metadata=metadata)
    frames = ours.serialize(msg)
    header, _, meta, body = frames[-4:]
    for part, value in ((header, msg.header.to_dict()), (meta, metadata), (body, content)):
        theirs = jc.pack(value)
        if packer == "orjson":
            assert part == theirs
        else:
            assert jc.unpack(part) == jc.unpack(theirs)
    assert jc.sign(frames[-4:]) == frames[-5]


@pytest.mark.parametrize("packer", PACKERS)
@pytest.mark.parametrize("size", [10, 200_000])
def test_large_content_round_trips_with_each_packer(packer: str, size: int) -> None:
    """Content above the size at which we stop joining the parts to sign them: both sides
    verify and decode each other's messages with either packer."""
    content = {"data": {"text/plain": "é" * size, "rows": [[i, None] for i in range(size // 10)]}}
    jc = jc_session("k", "hmac-sha256", packer)
    ours = Session("k")
    frames = [bytes(f) for f in ours.serialize(ours.message("execute_result", content))]
    _, rest = jc.feed_identities(frames)
    assert jc.deserialize(rest)["content"] == content
    theirs = jc.serialize(jc.msg("execute_result", content))
    assert Session("k").deserialize(theirs).content == content


def test_jupyter_client_rejects_our_message_with_other_key() -> None:
    ours = Session("one")
    frames = [bytes(f) for f in ours.serialize(ours.message("status"))]
    jc = jc_session("two", "hmac-sha256")
    _, rest = jc.feed_identities(frames)
    with pytest.raises(ValueError, match="Invalid Signature"):
        jc.deserialize(rest)


def test_we_reject_jupyter_client_message_with_other_key() -> None:
    jc = jc_session("one", "hmac-sha256")
    frames = jc.serialize(jc.msg("status", {}))
    assert DELIMITER in frames
    with pytest.raises(InvalidSignature):
        Session("two").deserialize(frames)
