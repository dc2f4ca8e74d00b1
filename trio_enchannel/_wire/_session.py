"""The sans-I/O wire codec: building, signing, framing and verifying messages.

Nothing here does I/O or imports trio or zmq: frames (lists of bytes) go in and out.
"""

from __future__ import annotations

import collections
import datetime as _dt
import enum
import gc
import hashlib
import hmac
import itertools
import json
import logging
import math
import numbers
import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from .._errors import (
    ConfigurationError,
    DuplicateSignature,
    InvalidSignature,
    LocalProtocolError,
    MalformedMessage,
    UnsignedMessage,
)
from ._message import (
    _HEADER_KEYS,
    CHANNEL_NAMES,
    ChannelName,
    Header,
    Message,
    _make_header,
    _make_message,
)

if TYPE_CHECKING:
    from ._connection import ConnectionInfo

__all__ = ["DELIMITER", "Session", "default_username"]

#: The frame that separates routing identities from the message proper.
DELIMITER = b"<IDS|MSG>"

_Buffer = bytes | bytearray | memoryview

# Per-process nonce, renewed in every forked child, so that msg_ids built by a Session that
# was copied across fork() never collide with the parent's. The id's process part (nonce and
# pid) is formatted once per process rather than once per message.
_process_tag = f"{secrets.token_hex(4)}_{os.getpid()}"


def _renew_nonce() -> None:
    global _process_tag
    _process_tag = f"{secrets.token_hex(4)}_{os.getpid()}"


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_nonce)


def default_username() -> str:
    """The user name the protocol's reference implementation uses.

    The first set variable among ``LOGNAME``, ``USER``, ``LNAME`` and ``USERNAME``, else
    ``"username"``.
    """
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        value = os.environ.get(name)
        if value:
            return value
    return "username"


def utc_now() -> str:
    """The current time as a protocol date string (ISO 8601, UTC, ending in ``Z``)."""
    global _date_cache
    seconds, nanos = divmod(_time_ns(), 1_000_000_000)
    cached, text = _date_cache
    if seconds != cached:
        text = _second_text(seconds)
        _date_cache = (seconds, text)
    # 10**9 + the nanoseconds has ten digits: the six after the leading 1 are the
    # microseconds, zero-padded and truncated as ``datetime.now`` truncates them.
    return text + str(1_000_000_000 + nanos)[1:7] + "Z"


_time_ns = time.time_ns

# (second since the epoch, its "YYYY-MM-DDTHH:MM:SS." text): every message sent within the
# same second reuses the text, and only the microseconds are formatted per message. One tuple,
# read and replaced whole, so threads sharing it at worst format the same second twice.
_date_cache: tuple[int, str] = (-1, "")


def _second_text(seconds: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.`` for ``seconds`` since the epoch, in UTC: the text that
    ``datetime.isoformat(timespec="microseconds")`` writes before the microseconds."""
    moment = _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc).replace(tzinfo=None)
    return moment.isoformat(timespec="seconds") + "."


def _json_default(obj: object) -> object:
    # Accept what numeric libraries commonly hand over, refuse everything else clearly.
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        value = float(obj)
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not allowed in JSON (no NaN/Infinity on the wire)")
        return value
    if isinstance(obj, _dt.datetime):
        if obj.tzinfo is None:
            raise TypeError("naive datetime: give it a timezone before sending it")
        return obj.astimezone(_dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(obj, _dt.date):
        return obj.isoformat()
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    # orjson writes enums as their values and UUIDs as their canonical text; the stdlib path
    # does the same so that both paths accept the same values.
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, uuid.UUID):
        return str(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


# Compact separators: the bytes orjson writes, and jupyter_client's default (orjson) packer.
_encoder = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, default=_json_default, separators=(",", ":")
)

# The fast path: orjson, when it is installed (the ``fast`` extra). It must accept exactly
# what the stdlib path accepts and write the same JSON value, so whatever orjson treats its
# own way goes to the stdlib path, which then gives the result or the error it always gives:
# datetimes, dataclasses and subclasses of str, int, dict and list are handed to ``default``
# (there is none, so orjson raises), as orjson raises itself for non-str keys, integers beyond
# 64 bits, lone surrogates and nesting deeper than its limit; NaN and Infinity, which orjson
# writes as ``null``, are looked for in any value whose output contains ``null`` (see
# _has_non_finite). Enums and UUIDs, which orjson writes natively, the stdlib path's default
# writes the same way.
_fast_dumps: Callable[..., bytes] | None = None
_FAST_ERROR: type[Exception] = TypeError
_FAST_OPTIONS = 0
_fast_loads: Callable[[_Buffer], Any] | None = None
_FAST_DECODE_ERROR: type[Exception] = ValueError
try:
    import orjson
except ImportError:  # pragma: no cover - the tests force the stdlib path instead
    pass
else:
    _fast_dumps = orjson.dumps
    _fast_loads = orjson.loads
    _FAST_DECODE_ERROR = orjson.JSONDecodeError
    _FAST_ERROR = orjson.JSONEncodeError
    _FAST_OPTIONS = (
        orjson.OPT_PASSTHROUGH_DATETIME
        | orjson.OPT_PASSTHROUGH_DATACLASS
        | orjson.OPT_PASSTHROUGH_SUBCLASS
    )


def _encode_part(value: Any, part: str, msg_type: str) -> bytes:
    if type(value) is dict:
        if not value:
            return b"{}"
    elif not isinstance(value, Mapping):
        raise LocalProtocolError(
            f"{msg_type} message: {part} must be a dict, got {type(value).__name__}"
        )
    dumps = _fast_dumps
    if dumps is not None:
        try:
            data = dumps(value, None, _FAST_OPTIONS)
        except _FAST_ERROR:
            pass
        else:
            if data.find(b"null") >= 0:  # (``in`` costs more: it tries an int first)
                return _check_nulls(data, value, part, msg_type)
            return data
    return _encode_stdlib(value, part, msg_type)


def _check_nulls(data: bytes, value: Any, part: str, msg_type: str) -> bytes:
    """``data``, what orjson wrote for ``value``, unless a ``null`` in it stands for NaN or
    Infinity: then the stdlib path's answer (it raises :class:`LocalProtocolError`)."""
    if _has_non_finite(value):
        return _encode_stdlib(value, part, msg_type)
    return data


_float, _dict, _list, _tuple, _str, _int, _bool = float, dict, list, tuple, str, int, bool


def _has_non_finite(value: Any) -> bool:
    """Whether a value orjson has encoded holds NaN or an infinity.

    orjson encoded it, so it holds only what orjson writes itself: exact dicts (with str
    keys), lists and tuples, str, int, bool, None and float, enums (whose values are looked
    into), UUIDs and orjson fragments. One pass, without recursion, copies or memory beyond
    one iterator per level of nesting (large content with nulls in it is common), checking
    each float: ``x - x`` is ``0.0`` unless ``x`` is NaN or infinite.
    """
    stack = [iter((value,))]
    push = stack.append
    while stack:
        for item in stack[-1]:
            kind = type(item)
            if kind is _float:
                if item - item:
                    return True
            elif kind is _str or kind is _int or kind is _bool or item is None:
                pass
            elif kind is _dict:
                push(iter(item.values()))
                break  # look into it, then come back to the rest of this level
            elif kind is _list or kind is _tuple:
                push(iter(item))
                break
            elif isinstance(item, enum.Enum):
                push(iter((item.value,)))
                break
        else:
            stack.pop()
    return False


#: Up to this size the four JSON parts of a message are joined (a small copy, cheaper than
#: hashing four parts): when sending, to be searched for ``null`` and signed in one call each
#: (the limit applies to the content); when receiving, before the signature is checked.
#: Larger messages are searched, signed and verified in place, so that large content is never
#: copied to be signed and a forged message costs no copy.
_JOIN_LIMIT = 64 * 1024


def _encode_message(
    kind: str, header: dict[str, Any] | bytes, parent: Any, metadata: Any, content: Any
) -> tuple[bytes, bytes, bytes, bytes, bytes | None]:
    """The four JSON parts of a message, each what :func:`_encode_part` gives, and their
    concatenation when the content is no larger than ``_JOIN_LIMIT`` (else ``None``).

    ``header`` may be given already encoded (bytes, as :meth:`Session.message` writes it
    from :func:`_header_fragments`: only strings, so nothing in it can be NaN).

    The usual message (dicts that orjson encodes without writing ``null``) costs four
    ``orjson.dumps`` and one search; the rest goes part by part, as :func:`_encode_part`.
    """
    dumps = _fast_dumps
    if (
        dumps is not None
        and type(parent) is dict
        and type(metadata) is dict
        and type(content) is dict
    ):
        options = _FAST_OPTIONS
        try:
            h = header if type(header) is bytes else dumps(header, None, options)
            p = dumps(parent, None, options) if parent else b"{}"
            m = dumps(metadata, None, options) if metadata else b"{}"
            c = dumps(content, None, options) if content else b"{}"
        except _FAST_ERROR:
            pass
        else:
            # Each part is one JSON object: no "null" straddles two of them.
            if len(c) <= _JOIN_LIMIT:
                joined = h + p + m + c
                if joined.find(b"null") < 0:
                    return h, p, m, c, joined
                content_nulls = c.find(b"null") >= 0
            else:
                content_nulls = c.find(b"null") >= 0
                if not content_nulls and (h + p + m).find(b"null") < 0:
                    return h, p, m, c, None
            if type(header) is not bytes and h.find(b"null") >= 0:
                h = _check_nulls(h, header, "header", kind)
            if p.find(b"null") >= 0:
                p = _check_nulls(p, parent, "parent_header", kind)
            if m.find(b"null") >= 0:
                m = _check_nulls(m, metadata, "metadata", kind)
            if content_nulls:
                c = _check_nulls(c, content, "content", kind)
            return h, p, m, c, h + p + m + c if len(c) <= _JOIN_LIMIT else None
    h = header if type(header) is bytes else _encode_part(header, "header", kind)
    p = _encode_part(parent, "parent_header", kind)
    m = _encode_part(metadata, "metadata", kind)
    c = _encode_part(content, "content", kind)
    return h, p, m, c, h + p + m + c if len(c) <= _JOIN_LIMIT else None


# -- the header of a message this Session builds, encoded as it is built ------------------
# Every string in such a header is either the Session's own (user name, session id, version),
# a message type or ours (the id, the date); when all of them are plain (printable, with no
# quote or backslash), both JSON paths write each as itself between quotes, so the header's
# JSON is assembled by formatting, in the key order of ``Header.to_dict``, at a fraction of
# the cost of building the dict and encoding it. Anything else is encoded as before.


def _plain(text: str) -> bool:
    """Whether both JSON paths write ``text`` as itself between quotes: printable (no
    control characters, lone surrogates or line separators) and without ``"`` or ``\\``."""
    return text.isprintable() and '"' not in text and "\\" not in text


#: msg_type -> its JSON string, or ``None`` when it is not plain; bounded, since message
#: types come from callers (a type beyond the bound is checked each time instead).
_TYPE_JSON: dict[str, str | None] = {}
_TYPE_JSON_LIMIT = 4096


def _type_json(msg_type: str) -> str | None:
    value = f'"{msg_type}"' if _plain(msg_type) else None
    if len(_TYPE_JSON) < _TYPE_JSON_LIMIT:
        _TYPE_JSON[msg_type] = value
    return value


def _header_fragments(
    username: str, session_id: str, version: str
) -> tuple[str, str, str, str | None, str]:
    """``(username, session_id, version, middle, tail)``: the JSON text between the
    ``msg_type`` and the ``date`` of a header with these fields, and after the date (``None``
    when one of them is not plain, and the header is then encoded from its dict)."""
    if not (_plain(username) and _plain(session_id) and _plain(version)):
        return username, session_id, version, None, ""
    middle = f'"username":"{username}","session":"{session_id}",'
    return username, session_id, version, middle, f'"version":"{version}"}}'


def _encode_stdlib(value: Any, part: str, msg_type: str) -> bytes:
    try:
        return _encoder.encode(value).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError, RecursionError) as exc:
        if isinstance(exc, ValueError) and "Out of range float" in str(exc):
            raise LocalProtocolError(
                f"{msg_type} message: {part} contains NaN or Infinity, which JSON on the wire "
                "does not allow"
            ) from exc
        raise LocalProtocolError(
            f"{msg_type} message: {part} cannot be encoded as JSON: {exc}"
        ) from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_decoder = json.JSONDecoder(parse_constant=_reject_constant)


def _decode_part(raw: _Buffer, part: str, repaired: list[str] | None = None) -> dict[str, Any]:
    """Decode one JSON frame, raising MalformedMessage with the precise cause.

    Bytes that are not valid UTF-8 are a ``bad_utf8`` error, unless ``repaired`` is given:
    they are then decoded as U+FFFD (as jupyter_client does: a kernel's ``print('\\udcff')``
    sends such a byte) and ``part`` is appended to ``repaired``.
    """
    try:
        text = str(raw, "utf-8")
    except UnicodeDecodeError as exc:
        if repaired is None:
            raise MalformedMessage(
                f"{part} frame is not valid UTF-8: {exc}", reason="bad_utf8"
            ) from exc
        text = str(raw, "utf-8", "replace")
        repaired.append(part)
    try:
        value = _decoder.decode(text)
    except (ValueError, RecursionError) as exc:
        raise MalformedMessage(f"{part} frame is not valid JSON: {exc}", reason="bad_json") from exc
    if not isinstance(value, dict):
        raise MalformedMessage(
            f"{part} frame is JSON {type(value).__name__}, not an object", reason="not_object"
        )
    return value


_scan_once: Callable[[str, int], tuple[Any, int]] = _decoder.scan_once  # type: ignore[attr-defined]


def _decode_object(raw: _Buffer, part: str, repaired: list[str]) -> dict[str, Any]:
    # Fast path: the C scanner on a frame that is exactly one JSON object. Anything unusual
    # (whitespace around it, invalid UTF-8, errors) takes the slow path, which repairs
    # invalid UTF-8 or reports the precise cause. A received buffer (a large frame) is
    # decoded in place, without a bytes copy.
    try:
        text = str(raw, "utf-8")
        value, end = _scan_once(text, 0)
    except (UnicodeDecodeError, StopIteration, ValueError, RecursionError):
        return _decode_part(raw, part, repaired)
    if end != len(text) or type(value) is not dict:
        return _decode_part(raw, part, repaired)
    return value


#: JSON frames of at least this many bytes are decoded with the cyclic garbage collector
#: paused. Decoding builds its objects all at once and keeps them all, so the collections
#: their allocation triggers (each of the older ones walking every container of the process)
#: find nothing to free: for 10 MB of table rows they are half the decoding time.
_PAUSE_GC_AT = 1 << 20


def _decode_large(raw: _Buffer, part: str, repaired: list[str]) -> dict[str, Any]:
    """:func:`_decode_object`, with the garbage collector paused for a large frame (and
    enabled again afterwards only if it was enabled before)."""
    if len(raw) < _PAUSE_GC_AT or not gc.isenabled():
        return _decode_object(raw, part, repaired)
    gc.disable()
    try:
        return _decode_object(raw, part, repaired)
    finally:
        gc.enable()


def _decode_four(
    text_bytes: bytes, h_len: int, p_len: int, m_len: int
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]] | None:
    """Decode header, parent header, metadata and content from their joined (ASCII) bytes in
    one pass of the C scanner: each part must be exactly one JSON object spanning exactly
    its frame. ``None`` for anything else (``null`` parts, whitespace, errors), which the
    per-frame path then decodes or rejects with the precise cause."""
    text = text_bytes.decode("ascii")
    scan = _scan_once
    try:
        header, end = scan(text, 0)
        if end != h_len or type(header) is not dict:
            return None
        parent, end = scan(text, end)
        if end != h_len + p_len or type(parent) is not dict:
            return None
        metadata, end = scan(text, end)
        if end != h_len + p_len + m_len or type(metadata) is not dict:
            return None
        content, end = scan(text, end)
    except (StopIteration, ValueError, RecursionError):
        return None
    if end != len(text) or type(content) is not dict:
        return None
    return header, parent, metadata, content


#: Every byte to ``0`` if it is a decimal digit, else to a space: a run of
#: ``_LONG_DIGITS`` in the result is a number orjson may read differently.
_DIGITS = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))
#: orjson reads an integer beyond 64 bits as a float; the shortest such literal (-2**63 - 1)
#: has 19 digits. A run this long anywhere (in a string too) sends the message to the stdlib.
_LONG_DIGITS = b"0" * 19
#: Above this many bytes the scan for long digit runs costs more than orjson saves: measured,
#: a base64 image of 16 KB decodes in 27 us this way against 20 us with the stdlib (text with
#: escapes still gains; at 4 KB both are even). Larger small messages go to the stdlib.
_FAST_DECODE_LIMIT = 4096


def _load_four(
    joined: bytes, h: bytes, p: bytes, m: bytes, c: _Buffer
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]] | None:
    """Decode the four JSON parts of a small ASCII message (``joined``, their concatenation,
    at most ``_FAST_DECODE_LIMIT`` bytes) with orjson, when it is installed: each must be one
    JSON object, and the text must hold no run of 19 digits or more (orjson would read a long
    integer as a float). ``None`` for anything else, which :func:`_decode_four` and the
    per-frame path then decode or reject as before. Where orjson accepts a part it gives the
    value the stdlib decoder gives; what it refuses (NaN, out-of-range floats, lone
    surrogates, deep nesting) goes to the stdlib, which keeps its defined behaviour.
    """
    loads = _fast_loads
    if (
        loads is None
        or len(joined) > _FAST_DECODE_LIMIT
        or joined.translate(_DIGITS).find(_LONG_DIGITS) >= 0
    ):
        return None
    try:
        header, parent, metadata, content = loads(h), loads(p), loads(m), loads(c)
    except _FAST_DECODE_ERROR:
        return None
    if (
        type(header) is dict
        and type(parent) is dict
        and type(metadata) is dict
        and type(content) is dict
    ):
        return header, parent, metadata, content
    return None


def parent_id_of(raw: bytes) -> str | None:
    """The ``msg_id`` in a parent header frame, or ``None`` if it cannot be read."""
    try:
        value = _decoder.decode(raw.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return None
    msg_id = value.get("msg_id") if isinstance(value, dict) else None
    return msg_id if isinstance(msg_id, str) and msg_id else None


def _header_from(data: dict[str, Any]) -> Header:
    msg_id = data.get("msg_id")
    msg_type = data.get("msg_type")
    username = data.get("username", "")
    session = data.get("session", "")
    date = data.get("date", "")
    version = data.get("version", "")
    subshell_id = data.get("subshell_id")
    if (
        type(msg_id) is str
        and msg_id
        and type(msg_type) is str
        and msg_type
        and type(username) is str
        and type(session) is str
        and type(date) is str
        and type(version) is str
        and (subshell_id is None or type(subshell_id) is str)
    ):
        extra = (
            {}
            if data.keys() <= _HEADER_KEYS
            else {k: v for k, v in data.items() if k not in _HEADER_KEYS}
        )
        return _make_header(msg_id, msg_type, username, session, date, version, subshell_id, extra)
    return Header.from_dict(data)  # raises MalformedMessage, naming the bad key


def _scheme_factory(scheme: str) -> str:
    if not scheme.startswith("hmac-"):
        raise ConfigurationError(f"signature_scheme must look like 'hmac-<hash>', got {scheme!r}")
    name = scheme[len("hmac-") :]
    try:
        hashlib.new(name)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"signature_scheme {scheme!r}: hashlib has no algorithm {name!r} "
            f"(available: {', '.join(sorted(hashlib.algorithms_available))})"
        ) from exc
    return name


def _key_bytes(key: str | bytes) -> bytes:
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key)
    # bytes(5) would be five NUL bytes: a key nobody chose
    raise TypeError(f"key must be str or bytes, got {type(key).__name__}")


def _str_field(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{attribute.alias} must be a str, got {type(value).__name__}")


def _check_history(_: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"replay_history must be an int, got {type(value).__name__}")


def _plain_buffers(buffers: object) -> bool:
    """Whether ``buffers`` is a list or tuple of bytes, bytearrays and memoryviews (the
    usual case, which the full check below accepts too, checked at less cost)."""
    if type(buffers) is not list and type(buffers) is not tuple:
        return False
    for buffer in buffers:
        kind = type(buffer)
        if kind is not bytes and kind is not memoryview and kind is not bytearray:
            return False
    return True


def _check_parts(
    content: object, metadata: object, parent: object, buffers: object, subshell_id: object
) -> None:
    """The types of :meth:`Session.message`'s arguments, so that a wrong one is a TypeError
    that names it (``dict(5)`` would not, and ``dict([("a", 1)])`` or ``tuple("ab")`` would
    silently build something else)."""
    if (
        (content is None or type(content) is dict)
        and (metadata is None or type(metadata) is dict)
        and (parent is None or type(parent) is Message or type(parent) is dict)
        and (not buffers or _plain_buffers(buffers))
        and (subshell_id is None or type(subshell_id) is str)
    ):
        return  # the common case, at the cost of a few identity checks
    for name, part in (("content", content), ("metadata", metadata)):
        if part is not None and type(part) is not dict and not isinstance(part, Mapping):
            raise TypeError(f"{name} must be a dict, got {type(part).__name__}")
    if parent is not None and not isinstance(parent, (Message, Mapping)):
        raise TypeError(f"parent must be a Message or a header dict, got {type(parent).__name__}")
    if buffers:
        if isinstance(buffers, (str, bytes, bytearray, memoryview)) or not isinstance(
            buffers, Sequence
        ):
            raise TypeError(f"buffers must be a sequence of buffers, got {type(buffers).__name__}")
        for index, buffer in enumerate(buffers):
            if not isinstance(buffer, (bytes, bytearray, memoryview)):
                try:  # any object with the buffer protocol (array.array, numpy arrays, ...)
                    memoryview(buffer)
                except TypeError:
                    raise TypeError(
                        f"buffers[{index}] must be bytes-like, got {type(buffer).__name__}"
                    ) from None
    if subshell_id is not None and type(subshell_id) is not str:
        raise TypeError(f"subshell_id must be a str, got {type(subshell_id).__name__}")


def warn_if_unsigned(session: Session, logger: logging.Logger, where: str) -> None:
    """Log a warning when ``session`` has an empty key: its messages are neither signed nor
    verified, so anyone who can reach the ports can run code in the kernel."""
    if not session.signed:
        logger.warning(
            "%s: the connection key is empty, so message signing is disabled; anyone who can "
            "reach its ports can run code in the kernel",
            where,
        )


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class _Signer:
    """HMAC (RFC 2104) with the keyed inner and outer hash states computed once.

    ``hmac.digest`` derives both states from the key on every call; copying precomputed
    states halves the cost of signing or verifying a small message. A scheme this
    construction does not fit (checked against :func:`hmac.digest` once, here) falls back to
    ``hmac.digest``.
    """

    __slots__ = ("_digest", "_inner", "_key", "_outer")

    def __init__(self, key: bytes, digest: str) -> None:
        self._key = key
        self._digest = digest
        self._inner: Any = None
        self._outer: Any = None
        try:
            inner = hashlib.new(digest)
            block = inner.block_size
            padded = hashlib.new(digest, key).digest() if len(key) > block else key
            padded = padded.ljust(block, b"\0")
            outer = hashlib.new(digest)
            inner.update(padded.translate(_IPAD))
            outer.update(padded.translate(_OPAD))
            self._inner, self._outer = inner, outer
            probe = b"trio-enchannel"
            if self.hexdigest(probe) != hmac.digest(key, probe, digest).hex().encode("ascii"):
                raise ValueError("precomputed HMAC states disagree with hmac.digest")
        except (ValueError, TypeError, AttributeError):
            self._inner = self._outer = None

    def hexdigest(self, data: _Buffer, *more: _Buffer) -> bytes:
        """The HMAC of ``data`` followed by ``more``, as lowercase hex ASCII (the parts are
        hashed where they are, never joined)."""
        if self._inner is None:
            mac = hmac.new(self._key, data, self._digest)
            for part in more:
                mac.update(part)
            return mac.hexdigest().encode("ascii")
        inner = self._inner.copy()
        inner.update(data)
        for part in more:
            inner.update(part)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest().encode("ascii")  # type: ignore[no-any-return]


@attrs.define(eq=False)
class Session:
    """Builds, signs, frames, verifies and decodes messages for one connection.

    A Session holds the HMAC key and the signature scheme shared with the kernel, an id for
    this client session and the replay history of signatures already accepted. Use one
    Session per connection: the replay history is never shared.

    Args:
        key: the HMAC key (``key`` in a connection file). Empty means unsigned messages.
        signature_scheme: ``"hmac-<hashlib name>"``; default ``"hmac-sha256"``.
        session_id: the id put in every header's ``session``; random by default.
        username: the header's ``username``; defaults to the first set variable among
            ``LOGNAME``, ``USER``, ``LNAME`` and ``USERNAME``, else ``"username"`` (as
            jupyter_client does).
        protocol_version: the header's ``version``; default ``"5.5"``.
        replay_history: how many accepted signatures to remember (oldest forgotten first).

    Raises:
        ConfigurationError: the signature scheme is unknown, or ``replay_history`` is < 1.
        TypeError: an argument has the wrong type (a key must be ``str`` or ``bytes``).
    """

    _key: bytes = attrs.field(default=b"", converter=_key_bytes, repr=False, alias="key")
    signature_scheme: str = attrs.field(default="hmac-sha256", kw_only=True, validator=_str_field)
    session_id: str = attrs.field(
        factory=lambda: uuid.uuid4().hex, kw_only=True, validator=_str_field
    )
    username: str = attrs.field(factory=default_username, kw_only=True, validator=_str_field)
    protocol_version: str = attrs.field(default="5.5", kw_only=True, validator=_str_field)
    replay_history: int = attrs.field(
        default=65536, kw_only=True, repr=False, validator=_check_history
    )
    _digest: str = attrs.field(init=False, repr=False)
    _seen: set[bytes] = attrs.field(init=False, factory=set, repr=False)
    _seen_order: collections.deque[bytes] = attrs.field(
        init=False, factory=collections.deque, repr=False
    )
    _counter: Iterable[int] = attrs.field(init=False, factory=itertools.count, repr=False)
    _signer: _Signer = attrs.field(init=False, repr=False)
    _invalid_utf8: int = attrs.field(init=False, default=0, repr=False)
    _unverified: int = attrs.field(init=False, default=0, repr=False)
    # [header fragments (see _header_fragments), (the last Header built, its JSON), (the last
    # parent's Header, its dict)]: a list, so that updating it costs no call to attrs'
    # __setattr__; each item is replaced whole.
    _built: list[Any] = attrs.field(init=False, factory=lambda: [None, None, None], repr=False)

    def __attrs_post_init__(self) -> None:
        self._digest = _scheme_factory(self.signature_scheme)
        self._signer = _Signer(self._key, self._digest)
        if self.replay_history < 1:
            raise ConfigurationError("replay_history must be at least 1")

    @classmethod
    def from_connection_info(
        cls,
        info: ConnectionInfo,
        *,
        session_id: str | None = None,
        username: str | None = None,
        protocol_version: str = "5.5",
        replay_history: int = 65536,
    ) -> Session:
        """A Session with the key and signature scheme of ``info``; the other arguments are
        those of :class:`Session` (``None``: the default, a random id and the user name from
        ``LOGNAME``, ``USER``, ``LNAME`` or ``USERNAME``).

        Raises:
            ConfigurationError: the connection info's signature scheme is unknown, or
                ``replay_history`` is < 1.
            TypeError: an argument has the wrong type.
        """
        return cls(
            info.key,
            signature_scheme=info.signature_scheme,
            session_id=uuid.uuid4().hex if session_id is None else session_id,
            username=default_username() if username is None else username,
            protocol_version=protocol_version,
            replay_history=replay_history,
        )

    @property
    def key(self) -> bytes:
        """The HMAC key as bytes (never shown in reprs)."""
        return self._key

    @property
    def invalid_utf8(self) -> int:
        """How many messages :meth:`deserialize` accepted with invalid UTF-8 in a JSON part,
        decoded as U+FFFD replacement characters (as jupyter_client does)."""
        return self._invalid_utf8

    @property
    def unverified(self) -> int:
        """How many messages :meth:`deserialize` accepted with a signature it could not
        verify, having no key (as jupyter_client does). The peer signs: it most likely has a
        key, and then drops every message this session sends unsigned."""
        return self._unverified

    @property
    def signed(self) -> bool:
        """Whether messages are signed and verified (the key is not empty)."""
        return bool(self._key)

    # -- building -----------------------------------------------------------------------

    def new_msg_id(self) -> str:
        """A message id unique across this session, processes and forks."""
        return f"{self.session_id}_{_process_tag}_{next(self._counter)}"  # type: ignore[call-overload]

    def message(
        self,
        msg_type: str,
        content: Mapping[str, Any] | None = None,
        *,
        parent: Message | Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        buffers: Sequence[_Buffer] = (),
        subshell_id: str | None = None,
        channel: ChannelName | None = None,
        identities: Sequence[bytes] = (),
    ) -> Message:
        """Build a new message with a fresh header.

        Args:
            msg_type: the message type, e.g. ``"execute_request"``.
            content: the content dict (default ``{}``).
            parent: the message being answered, or its header dict.
            metadata: the metadata dict (default ``{}``).
            buffers: raw binary buffers to send after the content.
            subshell_id: target subshell (shell channel, protocol 5.5).
            channel: the channel the message is meant for.
            identities: routing identities (used by the kernel side).

        Raises:
            LocalProtocolError: ``msg_type`` is empty, or ``channel`` is not a channel name.
            TypeError: ``content`` or ``metadata`` is not a dict, ``parent`` not a message or
                header dict, ``buffers`` not bytes-like buffers, ``subshell_id`` not a str.
        """
        _check_parts(content, metadata, parent, buffers, subshell_id)
        if not isinstance(msg_type, str) or not msg_type:
            raise LocalProtocolError("msg_type must be a non-empty string")
        if channel is not None and channel not in CHANNEL_NAMES:
            raise LocalProtocolError(
                f"unknown channel {channel!r}; expected one of {', '.join(CHANNEL_NAMES)}"
            )
        if parent is None:
            parent_header: dict[str, Any] = {}
        elif isinstance(parent, Message):
            # Many messages answer the same request (outputs, status): its header's dict is
            # built once and copied.
            of = parent.header
            last = self._built[2]
            if last is not None and last[0] is of and not of.extra:
                parent_header = last[1].copy()
            else:
                parent_header = of.to_dict()
                self._built[2] = (of, parent_header.copy())
        else:
            parent_header = dict(parent)
        username = self.username
        session_id = self.session_id
        version = self.protocol_version
        msg_id = f"{session_id}_{_process_tag}_{next(self._counter)}"  # type: ignore[call-overload]
        date = utc_now()
        header = _make_header(
            msg_id, msg_type, username, session_id, date, version, subshell_id, {}
        )
        if subshell_id is None:
            # Encode the header now, for serialize (see _header_fragments).
            built = self._built
            fragments = built[0]
            if (
                fragments is None
                or fragments[0] is not username
                or fragments[1] is not session_id
                or fragments[2] is not version
            ):
                fragments = built[0] = _header_fragments(username, session_id, version)
            middle = fragments[3]
            kind = _TYPE_JSON.get(msg_type) or _type_json(msg_type)
            if middle is not None and kind is not None:
                built[1] = (
                    header,
                    f'{{"msg_id":"{msg_id}","msg_type":{kind},{middle}"date":"{date}",'
                    f"{fragments[4]}".encode(),
                )
        return _make_message(
            header,
            parent_header,
            {} if metadata is None else dict(metadata),
            {} if content is None else dict(content),
            buffers if type(buffers) is tuple else tuple(buffers),  # type: ignore[arg-type]  # bytearrays are kept as given
            identities if type(identities) is tuple else tuple(identities),
            channel,
        )

    def reply(
        self,
        request: Message,
        content: Mapping[str, Any] | None = None,
        *,
        msg_type: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        buffers: Sequence[_Buffer] = (),
    ) -> Message:
        """Build the reply to ``request``: its parent header, identities and channel.

        ``msg_type`` defaults to the request's type with ``_request`` replaced by ``_reply``.

        Raises:
            LocalProtocolError: no ``msg_type`` was given and the request's type does not end
                in ``_request``.
        """
        if msg_type is None:
            if not request.msg_type.endswith("_request"):
                raise LocalProtocolError(
                    f"cannot derive a reply type from {request.msg_type!r}; pass msg_type="
                )
            msg_type = request.msg_type[: -len("_request")] + "_reply"
        return self.message(
            msg_type,
            content,
            parent=request,
            metadata=metadata,
            buffers=buffers,
            subshell_id=request.subshell_id,
            channel=request.channel,
            identities=request.identities,
        )

    # -- signing ------------------------------------------------------------------------

    def sign(self, parts: Iterable[_Buffer]) -> bytes:
        """The signature of ``parts`` (header, parent, metadata, content bytes) as hex ASCII.

        The parts are hashed one after the other, never joined: signing copies nothing.
        Returns ``b""`` when the key is empty.
        """
        if not self._key:
            return b""
        return self._signer.hexdigest(b"", *parts)

    # -- framing ------------------------------------------------------------------------

    def serialize(
        self, msg: Message, identities: Sequence[bytes] | None = None
    ) -> list[bytes | memoryview]:
        """Frame and sign ``msg`` for the wire.

        Returns ``[*identities, DELIMITER, signature, header, parent_header, metadata,
        content, *buffers]``. Buffers are passed through untouched (no copy).

        Raises:
            LocalProtocolError: a part is not JSON-encodable (including NaN or Infinity), the
                message type is empty, or a buffer does not support the buffer protocol.
        """
        header = msg.header
        if not header.msg_type:
            raise LocalProtocolError("msg_type must be a non-empty string")
        kind = header.msg_type
        built = self._built[1]
        h, p, m, c, joined = _encode_message(
            kind,
            # the header's JSON when this Session built it (its extra is still empty)
            built[1]
            if built is not None and built[0] is header and not header.extra
            else header.to_dict(),
            msg.parent_header,
            msg.metadata,
            msg.content,
        )
        if not self._key:
            signature = b""
        elif joined is not None:
            signer = self._signer
            inner = signer._inner
            if inner is not None:  # _Signer.hexdigest(joined), without the call
                inner = inner.copy()
                inner.update(joined)
                outer = signer._outer.copy()
                outer.update(inner.digest())
                signature = outer.hexdigest().encode("ascii")
            else:
                signature = signer.hexdigest(joined)
        else:  # large content: hashed in place, never joined
            signature = self._signer.hexdigest(h, p, m, c)
        idents = msg.identities if identities is None else identities
        if idents:
            frames: list[bytes | memoryview] = []
            for ident in idents:
                if not isinstance(ident, bytes):
                    raise LocalProtocolError(
                        f"{kind} message: identities must be bytes, got {type(ident).__name__}"
                    )
                frames.append(ident)
            frames += (DELIMITER, signature, h, p, m, c)
        else:
            frames = [DELIMITER, signature, h, p, m, c]
        buffers: tuple[object, ...] = msg.buffers
        if not buffers:
            return frames
        for buf in buffers:  # the usual buffers, added at once
            if type(buf) is not bytes and type(buf) is not memoryview:
                break
        else:
            frames += buffers  # type: ignore[arg-type]
            return frames
        for i, buf in enumerate(buffers):
            if isinstance(buf, (bytes, memoryview)):
                frames.append(buf)
                continue
            try:
                frames.append(memoryview(buf))  # type: ignore[arg-type]
            except TypeError as exc:
                raise LocalProtocolError(
                    f"{kind} message: buffer {i} ({type(buf).__name__}) does not support the "
                    "buffer protocol"
                ) from exc
        return frames

    def deserialize(
        self, frames: Sequence[bytes | memoryview], *, channel: ChannelName | None = None
    ) -> Message:
        """Verify and decode a message from its frames.

        The signature is checked first, with a constant-time comparison of an HMAC computed
        over the received frames in place (nothing is copied or decoded before the message
        is known to be authentic), then recorded (only verified signatures are recorded) to
        reject replays. Bytes that are not valid UTF-8 in a JSON part are decoded as U+FFFD
        replacement characters, as jupyter_client does, and counted (:attr:`invalid_utf8`).
        Without a key nothing is verified; a message that carries a signature all the same is
        accepted, as jupyter_client accepts it, and counted (:attr:`unverified`).

        Raises:
            MalformedMessage: no delimiter, fewer than five frames after it, a JSON part that is
                not JSON, not an object, or a header without msg_id/msg_type.
            UnsignedMessage: a key is set but the signature frame is empty.
            InvalidSignature: the signature does not match.
            DuplicateSignature: the signature was already accepted (a replay).
        """
        try:
            idx = frames.index(DELIMITER)
        except ValueError:
            raise MalformedMessage(
                f"no {DELIMITER!r} delimiter among {len(frames)} frames",
                reason="missing_delimiter",
            ) from None
        if len(frames) - idx < 6:
            raise MalformedMessage(
                f"{len(frames) - idx - 1} frames after the delimiter; at least 5 are required "
                "(signature, header, parent_header, metadata, content)",
                reason="too_few_frames",
            )
        raw = frames[idx + 2 : idx + 6]
        # A small message is joined at once (cheaper than hashing it in four parts); a large
        # one is hashed in place, and its content frame decoded where it is (never copied or
        # joined: a forged one costs no memory, a 10 MB output costs the frame and its text).
        small = len(raw[0]) + len(raw[1]) + len(raw[2]) + len(raw[3]) <= _JOIN_LIMIT
        signed = b"".join(raw) if small else b""
        if self._key:
            sig_frame = frames[idx + 1]
            if not len(sig_frame):
                raise UnsignedMessage("message has an empty signature but a key is configured")
            # HMAC over the four frames, compared in constant time.
            signer = self._signer
            expected = signer.hexdigest(signed) if small else signer.hexdigest(*raw)
            if len(sig_frame) != len(expected):
                raise InvalidSignature("message signature does not match its content")
            sig = bytes(sig_frame)
            if not hmac.compare_digest(sig, expected):
                raise InvalidSignature("message signature does not match its content")
            if sig in self._seen:
                raise DuplicateSignature("message signature was already seen (replay)")
            self._record(sig)
        elif len(frames[idx + 1]):  # signed, but we have no key to verify it
            self._unverified += 1
        h = bytes(raw[0])
        p = bytes(raw[1])
        m = bytes(raw[2])
        c: _Buffer = raw[3] if isinstance(raw[3], memoryview) else bytes(raw[3])
        try:
            decoded = (
                _load_four(signed, h, p, m, c) or _decode_four(signed, len(h), len(p), len(m))
                if small and signed.isascii()
                else None
            )
            if decoded is not None:
                header_data, parent, metadata, content = decoded
                header = _header_from(header_data)
            else:
                repaired: list[str] = []
                header = _header_from(_decode_object(h, "header", repaired))
                # Real kernels send ``null`` for "no parent" (ipykernel's "starting" status)
                # and jupyter_client accepts it: read it as ``{}``.
                parent = {} if p == b"null" else _decode_object(p, "parent_header", repaired)
                metadata = {} if m == b"null" else _decode_object(m, "metadata", repaired)
                content = _decode_large(c, "content", repaired)
                if repaired:
                    self._invalid_utf8 += 1
        except MalformedMessage as exc:
            # Authentic but malformed: say which request it answers, if that can be read.
            exc.parent_id = parent_id_of(p)
            raise
        return _make_message(
            header,
            parent,
            metadata,
            content,
            tuple(frames[idx + 6 :]),
            tuple(map(bytes, frames[:idx])) if idx else (),
            channel,
        )

    def _record(self, sig: bytes) -> None:
        seen = self._seen
        order = self._seen_order
        if len(order) >= self.replay_history:
            seen.discard(order.popleft())
        seen.add(sig)
        order.append(sig)
