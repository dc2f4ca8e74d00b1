"""The codec's encoding side: the orjson fast path against the stdlib path, dates, ids and
signing over parts.

orjson is optional: when it is installed the codec encodes with it and falls back to the
stdlib ``json`` encoder for anything orjson would treat differently. The differential tests
here prove the two paths give the same JSON value or the same error, and every public test
in this module runs on both paths, so the stdlib path stays tested wherever orjson is
installed.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import enum
import fractions
import hashlib
import hmac
import importlib
import json
import math
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trio_enchannel import DELIMITER, LocalProtocolError, Session
from trio_enchannel._wire import _session as codec

from . import strategies as s

orjson = pytest.importorskip("orjson")

PATHS = ["orjson", "stdlib"]


@contextlib.contextmanager
def encoding_path(path: str) -> Iterator[None]:
    """Encode with orjson (as installed) or force the stdlib fallback, for the block."""
    saved = codec._fast_dumps
    codec._fast_dumps = orjson.dumps if path == "orjson" else None
    try:
        yield
    finally:
        codec._fast_dumps = saved


def encode(value: Any, path: str) -> bytes | tuple[str, str]:
    """One part as each path encodes it, or the error it raises (type and text)."""
    with encoding_path(path):
        try:
            return codec._encode_part(value, "content", "comm_msg")
        except LocalProtocolError as exc:
            return ("LocalProtocolError", str(exc))


def canonical(raw: bytes) -> Any:
    """The JSON value of ``raw``, with key order kept and floats compared bit for bit (so
    ``-0.0`` differs from ``0.0``); orjson and ``json`` may spell a float differently
    (``0.00006103515625`` and ``6.103515625e-05``) but must mean the same one."""

    def norm(value: Any) -> Any:
        if isinstance(value, float):
            return ("float", value.hex())
        if isinstance(value, list):
            return [norm(v) for v in value]
        return value

    def pairs(items: list[tuple[str, Any]]) -> Any:
        return ("object", [(k, norm(v)) for k, v in items])

    return norm(json.loads(raw, object_pairs_hook=pairs))


# -- values that exercise every difference between orjson and json --------------------------


class Color(enum.Enum):
    RED = "red"
    TWO = 2
    NAN = math.nan
    PAIR = (1, "x")
    HUGE = 2**70


class Level(enum.IntEnum):
    LOW = 1


class Tag(str, enum.Enum):
    A = "a"


class Text(str):
    pass


class Int(int):
    pass


class Float(float):
    pass


class Ordered(collections.OrderedDict[str, Any]):
    pass


@dataclasses.dataclass
class Point:
    x: int


floats = st.floats()  # NaN and both infinities included
big_ints = st.integers(min_value=2**63 - 4, max_value=2**64 + 4) | st.integers(
    min_value=-(2**63) - 4, max_value=-(2**63) + 4
)
scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=8),  # lone surrogates included
    st.integers(),
    big_ints,
    st.integers(min_value=2**64, max_value=2**200),
    floats,
    st.sampled_from([*Color, *Level, *Tag]),
    st.uuids(),
    st.datetimes(timezones=st.none() | st.just(dt.timezone.utc)),
    st.dates(),
    st.times(),
    st.fractions(),
    st.decimals(),
    st.builds(Point, st.integers()),
    st.text(max_size=4).map(Text),
    st.integers().map(Int),
    floats.map(Float),
    st.binary(max_size=4),
    st.just(object()),
)
keys: st.SearchStrategy[Any] = st.one_of(
    st.text(max_size=5),
    st.integers(),
    big_ints,
    floats,
    st.none(),
    st.booleans(),
    st.text(max_size=3).map(Text),
    st.tuples(st.integers()),
)
wild_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(keys, children, max_size=4),
        st.dictionaries(st.text(max_size=3), children, max_size=3).map(Ordered),
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=20,
)
# Plain JSON, mostly what orjson takes itself, with NaN, infinities and big ints mixed in.
plain_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.text() | st.integers(-(2**65), 2**65) | floats,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=30,
)


def numpy_scalars() -> st.SearchStrategy[Any]:
    try:
        np: Any = importlib.import_module("numpy")
    except ImportError:
        return st.nothing()
    return st.one_of(
        st.integers(-(2**63), 2**63 - 1).map(np.int64),
        st.floats().map(np.float64),
        st.floats(width=32).map(np.float32),
        st.booleans().map(np.bool_),
    )


@settings(max_examples=600)
@given(value=st.dictionaries(keys, wild_values | numpy_scalars(), max_size=5))
def test_orjson_and_stdlib_paths_agree_on_any_value(value: dict[Any, Any]) -> None:
    """Same JSON value or the same error, whatever the content holds: NaN and infinities
    (rejected), integers beyond 64 bits (written), non-str keys (as the stdlib path treats
    them), lone surrogates (rejected), enums, UUIDs, datetimes, subclasses, tuples, sets."""
    fast, slow = encode(value, "orjson"), encode(value, "stdlib")
    if isinstance(fast, bytes) and isinstance(slow, bytes):
        assert canonical(fast) == canonical(slow)
    else:
        assert fast == slow


@settings(max_examples=600)
@given(value=st.dictionaries(st.text(), plain_values, max_size=5))
def test_orjson_and_stdlib_paths_agree_on_plain_json(value: dict[str, Any]) -> None:
    fast, slow = encode(value, "orjson"), encode(value, "stdlib")
    if isinstance(fast, bytes) and isinstance(slow, bytes):
        assert canonical(fast) == canonical(slow)
        if b"." not in slow and b"e" not in slow.lower():  # no float to spell differently
            assert fast == slow
    else:
        assert fast == slow


def holds_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, enum.Enum):
        return holds_non_finite(value.value)
    if isinstance(value, dict):
        return any(holds_non_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(holds_non_finite(v) for v in value)
    return False


@settings(max_examples=500)
@given(
    value=st.recursive(
        st.none() | st.booleans() | st.text(max_size=3) | st.integers(-5, 5) | floats
        | st.sampled_from([*Color, *Level, *Tag]) | st.uuids(),
        lambda children: st.lists(children, max_size=4) | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=3), children, max_size=4),
        max_leaves=40,
    )
)  # fmt: skip
def test_the_search_behind_nulls_finds_every_nan_and_infinity(value: Any) -> None:
    """Among what orjson encodes itself, at any depth, inside enums too."""
    assert codec._has_non_finite(value) == holds_non_finite(value)


@settings(max_examples=300)
@given(
    header=st.dictionaries(st.text(), plain_values, max_size=4),
    parent=st.dictionaries(keys, wild_values, max_size=3),
    metadata=st.dictionaries(st.text(), plain_values, max_size=3),
    content=st.dictionaries(st.text(), plain_values | wild_values, max_size=4),
    path=st.sampled_from(PATHS),
)
def test_encoding_a_message_is_encoding_each_part(
    header: dict[str, Any],
    parent: dict[Any, Any],
    metadata: dict[str, Any],
    content: dict[str, Any],
    path: str,
) -> None:
    """The one-pass encoder of a whole message gives each part's own encoding (or the first
    failing part's error), and their concatenation."""
    with encoding_path(path):
        try:
            h, p, m, c, joined = codec._encode_message("t", header, parent, metadata, content)
        except LocalProtocolError as exc:
            errors = []
            for value, part in ((header, "header"), (parent, "parent_header")):
                try:
                    codec._encode_part(value, part, "t")
                except LocalProtocolError as each:
                    errors.append(str(each))
            for value, part in ((metadata, "metadata"), (content, "content")):
                try:
                    codec._encode_part(value, part, "t")
                except LocalProtocolError as each:
                    errors.append(str(each))
            assert errors and str(exc) == errors[0]
            return
        parts = [
            codec._encode_part(header, "header", "t"),
            codec._encode_part(parent, "parent_header", "t"),
            codec._encode_part(metadata, "metadata", "t"),
            codec._encode_part(content, "content", "t"),
        ]
    assert [h, p, m, c] == parts
    assert joined == b"".join(parts)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"x": 2**64}, b'{"x":18446744073709551616}'),
        ({"x": -(2**63) - 1}, b'{"x":-9223372036854775809}'),
        ({"x": 2**64 - 1}, b'{"x":18446744073709551615}'),
        ({1: "a", None: "b", 2.5: "c", False: "d"}, b'{"1":"a","null":"b","2.5":"c","false":"d"}'),
        ({"x": (1, 2), "y": frozenset()}, b'{"x":[1,2],"y":[]}'),
        ({"at": dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)}, b'{"at":"2020-01-01T00:00:00Z"}'),
        ({"x": None, "text": "null"}, b'{"x":null,"text":"null"}'),
        ({"c": Color.RED, "l": Level.LOW, "t": Tag.A}, b'{"c":"red","l":1,"t":"a"}'),
        ({"u": uuid.UUID(int=1)}, b'{"u":"00000000-0000-0000-0000-000000000001"}'),
        ({"f": fractions.Fraction(1, 4), "s": Text("s")}, b'{"f":0.25,"s":"s"}'),
        ({"text": "h\u00e9llo \u2603", "n": [1, 2.5, None, True]},
         '{"text":"h\u00e9llo \u2603","n":[1,2.5,null,true]}'.encode()),
    ],
)  # fmt: skip
def test_defined_encodings_on_both_paths(path: str, content: Any, expected: bytes) -> None:
    session = Session("k")
    with encoding_path(path):
        frames = session.serialize(session.message("comm_msg", content))
    assert frames[-1] == expected


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("content", "match"),
    [
        ({"x": math.nan}, "NaN or Infinity"),
        ({"x": [1, {"y": -math.inf}]}, "NaN or Infinity"),
        ({"x": Color.NAN}, "NaN or Infinity"),
        ({"rows": [[i, None, (0.5, "null")] for i in range(9000)] + [[math.inf]]}, "NaN or"),
        ({"x": "\ud800"}, "surrogate"),
        ({"\udfff": 1}, "surrogate"),
        ({(1,): 1}, "keys must be str"),
        ({"x": dt.datetime(2020, 1, 1)}, "naive datetime"),
        ({"x": b"bytes"}, "not JSON serializable"),
        ({"x": Point(1)}, "not JSON serializable"),
        ({"x": dt.time(1)}, "not JSON serializable"),
    ],
)
def test_unencodable_content_rejected_on_both_paths(path: str, content: Any, match: str) -> None:
    session = Session("k")
    msg = session.message("comm_msg", content)
    with encoding_path(path), pytest.raises(LocalProtocolError, match=match) as info:
        session.serialize(msg)
    assert "comm_msg message: content" in str(info.value)


@pytest.mark.parametrize("path", PATHS)
def test_nan_in_header_extra_or_parent_rejected_naming_the_part(path: str) -> None:
    session = Session("k")
    msg = session.message("comm_msg", {"x": 1}, parent={"msg_id": "p", "n": math.inf})
    with encoding_path(path), pytest.raises(LocalProtocolError, match="parent_header"):
        session.serialize(msg)


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=100)
@given(
    key=s.keys,
    content=s.json_objects,
    parent=s.json_objects,
    metadata=s.json_objects,
    identities=s.identities,
    buffers=s.buffers,
)
def test_round_trip_on_both_paths(
    path: str,
    key: str,
    content: dict[str, Any],
    parent: dict[str, Any],
    metadata: dict[str, Any],
    identities: list[bytes],
    buffers: list[bytes],
) -> None:
    sender, receiver = Session(key), Session(key)
    msg = sender.message("display_data", content, parent=parent, metadata=metadata, buffers=buffers)
    with encoding_path(path):
        frames = sender.serialize(msg, identities=identities)
    out = receiver.deserialize(frames)
    assert out.header == msg.header
    assert (out.parent_header, out.metadata, out.content) == (parent, metadata, content)
    assert out.identities == tuple(identities)
    assert [bytes(b) for b in out.buffers] == buffers


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("with_null", [False, True])
def test_large_content_is_signed_over_the_parts(path: str, with_null: bool) -> None:
    """Content larger than the join limit is hashed in place; the signature is still the
    HMAC of the four parts, and the receiver verifies it."""
    session = Session("k\u00e9y", signature_scheme="hmac-sha512")
    rows = [[i, "x" * 50, None if with_null else i] for i in range(5000)]
    with encoding_path(path):
        frames = session.serialize(session.message("execute_result", {"data": rows}))
    idx = frames.index(DELIMITER)
    parts = frames[idx + 2 : idx + 6]
    assert len(parts[3]) > codec._JOIN_LIMIT
    expected = hmac.new("k\u00e9y".encode(), b"".join(parts), hashlib.sha512).hexdigest()
    assert frames[idx + 1] == expected.encode("ascii")
    assert Session("k\u00e9y", signature_scheme="hmac-sha512").deserialize(frames).content == {
        "data": rows
    }


# -- signing over parts ----------------------------------------------------------------------


@settings(max_examples=300)
@given(
    key=st.binary(max_size=200),
    parts=st.lists(st.binary(max_size=300), max_size=6),
    digest=st.sampled_from(["sha256", "sha512", "sha1", "md5", "sha3_256", "blake2b"]),
    view=st.booleans(),
)
def test_hmac_over_parts_is_hmac_over_their_concatenation(
    key: bytes, parts: list[bytes], digest: str, view: bool
) -> None:
    signer = codec._Signer(key, digest)
    given_parts: list[Any] = [memoryview(p) for p in parts] if view else parts
    expected = hmac.new(key, b"".join(parts), digest).hexdigest().encode()
    assert signer.hexdigest(b"", *given_parts) == expected
    signer._inner = signer._outer = None  # the hmac fallback the constructor's self-check uses
    assert signer.hexdigest(b"", *given_parts) == expected


def test_session_sign_takes_parts_and_agrees_with_serialize() -> None:
    session = Session("k")
    frames = session.serialize(session.message("status", {"execution_state": "idle"}))
    idx = frames.index(DELIMITER)
    parts = frames[idx + 2 : idx + 6]
    assert session.sign(parts) == frames[idx + 1]
    assert session.sign(iter([memoryview(bytes(p)) for p in parts])) == frames[idx + 1]
    assert Session("").sign(parts) == b""


# -- dates and ids ---------------------------------------------------------------------------


@contextlib.contextmanager
def clock(ns: int) -> Iterator[None]:
    saved = codec._time_ns
    codec._time_ns = lambda: ns
    try:
        yield
    finally:
        codec._time_ns = saved


def reference_date(ns: int) -> str:
    """What the codec wrote before: ``datetime.now(utc).isoformat()`` with ``Z``."""
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=ns // 1000)
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"


@settings(max_examples=500)
@given(
    instants=st.lists(
        st.integers(min_value=0, max_value=253402300799 * 10**9), min_size=1, max_size=5
    ),
    nudges=st.lists(st.integers(min_value=-(10**9), max_value=10**9), max_size=5),
)
@example(instants=[253402300799 * 10**9], nudges=[10**9])  # the last second, nudged past it
def test_dates_are_the_isoformat_of_the_instant(instants: list[int], nudges: list[int]) -> None:
    """Same text as ``datetime.isoformat`` for any instant, including instants in the same
    second as the previous one (the cached part) and across second boundaries."""
    last = 253402300799 * 10**9 + 999_999_999  # 9999-12-31T23:59:59.999999999: datetime's end
    for ns in [*instants, *(min(max(0, instants[-1] + n), last) for n in nudges)]:
        with clock(ns):
            assert codec.utc_now() == reference_date(ns)


def test_message_dates_follow_the_clock() -> None:
    session = Session()
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    date = session.message("status").header.date
    after = dt.datetime.now(dt.timezone.utc)
    assert len(date) == len("2024-05-06T07:08:09.123456Z") and date.endswith("Z")
    assert before <= dt.datetime.fromisoformat(date[:-1] + "+00:00") <= after
    with clock(1_700_000_000_123_456_789):
        assert session.message("status").header.date == "2023-11-14T22:13:20.123456Z"


def test_msg_ids_name_session_process_and_count() -> None:
    session = Session(session_id="sess")
    first, second = session.new_msg_id(), session.new_msg_id()
    name, nonce, pid, count = first.split("_")
    assert (name, pid, len(nonce)) == ("sess", str(os.getpid()), 8)
    assert second == f"sess_{nonce}_{pid}_{int(count) + 1}"
    assert session.message("status").msg_id == f"sess_{nonce}_{pid}_{int(count) + 2}"


# -- the fast build: Header and Message values without attrs' __init__, the header's JSON --

#: Strings that each JSON path writes otherwise than as themselves between quotes (quotes,
#: backslashes, control characters, line separators, a lone surrogate) and some that it
#: writes as they are.
header_text = st.text(max_size=12) | st.sampled_from(
    ['a"b', "a\\b", "\x00", "tab\there", "\x7f", "\u2028", "\udcff", "é", "/", "", " "]
)


@settings(max_examples=300)
@given(
    fields=st.tuples(*(header_text for _ in range(6))),
    subshell_id=st.none() | header_text,
    extra=st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=2),
    content=st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    buffers=st.lists(st.binary(max_size=4), max_size=2),
    identities=st.lists(st.binary(max_size=4), max_size=2),
    channel=st.none() | st.sampled_from(["shell", "control", "stdin", "iopub"]),
)
def test_fast_built_values_are_the_validated_constructors_values(
    fields: tuple[str, str, str, str, str, str],
    subshell_id: str | None,
    extra: dict[str, Any],
    content: dict[str, Any],
    buffers: list[bytes],
    identities: list[bytes],
    channel: Any,
) -> None:
    """The codec's private constructors build exactly what ``Header(...)`` and
    ``Message(...)`` build: same class, equal, same repr, frozen, picklable, weakly
    referenceable, without an instance dict."""
    import pickle
    import weakref

    import attrs

    from trio_enchannel import Header, Message
    from trio_enchannel._wire import _message

    fast = _message._make_header(*fields, subshell_id, dict(extra))
    slow = Header(*fields, subshell_id=subshell_id, extra=dict(extra))
    fast_msg = _message._make_message(
        fast, {"msg_id": "p"}, {}, dict(content), tuple(buffers), tuple(identities), channel
    )
    slow_msg = Message(
        slow,
        parent_header={"msg_id": "p"},
        content=dict(content),
        buffers=buffers,
        identities=identities,
        channel=channel,
    )
    for built, reference in ((fast, slow), (fast_msg, slow_msg)):
        assert type(built) is type(reference)
        assert built == reference and reference == built
        assert repr(built) == repr(reference)
        assert pickle.loads(pickle.dumps(built)) == reference
        assert weakref.ref(built)() is built
        assert not hasattr(built, "__dict__")
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            built.header = None  # type: ignore[misc, union-attr]
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            del built.channel  # type: ignore[union-attr]
    assert fast_msg.to_dict() == slow_msg.to_dict()


@settings(max_examples=300)
@given(
    msg_types=st.lists(header_text.filter(bool), min_size=3, max_size=3),
    username=header_text,
    session_id=header_text,
    version=header_text,
    subshell_id=st.none() | st.just("sub"),
    order=st.permutations(range(3)),
    path=st.sampled_from(PATHS),
)
def test_a_built_header_is_sent_as_its_dict_encodes(
    msg_types: list[str],
    username: str,
    session_id: str,
    version: str,
    subshell_id: str | None,
    order: list[int],
    path: str,
) -> None:
    """The header JSON a Session writes while building a message is byte for byte what
    encoding ``header.to_dict()`` gives (or the same error), whatever the strings in it, on
    both paths, whichever of its messages is sent first."""
    session = Session("key", username=username, session_id=session_id, protocol_version=version)
    with encoding_path(path):
        msgs = [
            session.message(t, {"n": i}, subshell_id=subshell_id) for i, t in enumerate(msg_types)
        ]
        for i in order:
            msg = msgs[i]
            try:
                expected: Any = codec._encode_part(msg.header.to_dict(), "header", msg.msg_type)
            except LocalProtocolError as exc:
                expected = str(exc)
            try:
                frames = session.serialize(msg)
            except LocalProtocolError as exc:
                assert str(exc) == expected
                continue
            assert frames[2] == expected
            assert frames[1] == session.sign(frames[2:6])


def test_a_built_header_follows_the_session_and_its_extra() -> None:
    """A header built, then given extra keys, or built after the Session's user name,
    session id or version changed, is sent as its dict encodes."""
    session = Session("key", username="ann", session_id="s1")
    msg = session.message("status")
    msg.header.extra["x"] = 1  # type: ignore[index]
    assert json.loads(bytes(session.serialize(msg)[2]))["x"] == 1
    session.username = "bob"
    session.session_id = 'a"b'
    session.protocol_version = "5.4"
    msg = session.message("status")
    header = json.loads(bytes(session.serialize(msg)[2]))
    assert (header["username"], header["session"], header["version"]) == ("bob", 'a"b', "5.4")
    session.session_id = "s2"
    msg = session.message("status")
    assert session.serialize(msg)[2] == codec._encode_part(msg.header.to_dict(), "header", "t")


def test_messages_answering_one_parent_each_get_its_header_as_a_fresh_dict() -> None:
    """The parent's header dict, built once for many answers, is copied into each: changing
    one message's parent header changes no other, and extra keys given to the parent's
    header later are in the next answers'."""
    session = Session("key")
    request = session.message("execute_request", {"code": ""})
    first = session.message("stream", parent=request)
    first.parent_header["msg_id"] = "changed"
    second = session.message("stream", parent=request)
    assert second.parent_header == request.header.to_dict()
    assert second.parent_header is not first.parent_header
    request.header.extra["x"] = 1  # type: ignore[index]
    third = session.message("stream", parent=request)
    assert third.parent_header == request.header.to_dict() and third.parent_header["x"] == 1
    other = session.message("execute_request", {"code": "1"})
    assert session.message("stream", parent=other).parent_id == other.msg_id
    assert session.message("stream", parent=request).parent_header == request.header.to_dict()


@pytest.mark.parametrize("path", PATHS)
def test_buffers_are_framed_as_given_or_as_views(path: str) -> None:
    """bytes and memoryviews are sent as they are, other buffers as memoryviews of them."""
    session = Session("key")
    data, view, mutable = b"ab", memoryview(b"cd"), bytearray(b"ef")
    with encoding_path(path):
        frames = session.serialize(session.message("m", buffers=[data, view, mutable]))
    assert frames[6] is data and frames[7] is view
    assert type(frames[8]) is memoryview and frames[8].obj is mutable


@contextlib.contextmanager
def decoding_path(path: str) -> Iterator[None]:
    """Decode small messages with orjson (as installed) or force the stdlib, for the block."""
    saved = codec._fast_loads
    codec._fast_loads = orjson.loads if path == "orjson" else None
    try:
        yield
    finally:
        codec._fast_loads = saved


# Numbers orjson might read differently: integers of any size (beyond 64 bits it reads them as
# floats), floats of any precision, and strings of digits (which a long-run check must not
# mistake for anything but text).
awkward_scalars = (
    s.json_scalars
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text("0123456789-.eE", max_size=45)
)
awkward_values: st.SearchStrategy[Any] = st.recursive(
    awkward_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(s.text, children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=300)
@given(content=st.dictionaries(s.text, awkward_values, max_size=6))
@example(content={"n": 2**64, "m": -(2**63) - 1, "k": 2**63, "f": 0.1, "s": "1" * 30})
@example(content={"n": 10**40, "nested": [{"x": -(10**19)}], "g": 1e308, "z": -0.0})
def test_received_parts_decode_to_the_same_values_with_or_without_orjson(
    content: dict[str, Any],
) -> None:
    """orjson decodes small messages only where it gives exactly the stdlib's values (same
    types: an integer beyond 64 bits stays an int, never a float)."""
    sender = Session("key")
    frames = sender.serialize(sender.message("comm_msg", content, metadata={"m": content}))
    decoded: dict[str, str] = {}
    for path in PATHS:
        with decoding_path(path):
            msg = Session("key").deserialize(frames)
        decoded[path] = repr((msg.header, msg.parent_header, msg.metadata, msg.content))
    assert decoded["orjson"] == decoded["stdlib"]
    assert repr(Session("key").deserialize(frames).content) == repr(json.loads(bytes(frames[-1])))
