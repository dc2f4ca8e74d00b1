"""The message model: :class:`Header` and :class:`Message`, immutable values.

Messages are plain frozen attrs classes. Dates stay the wire strings they arrived as (parsing
every date costs more than verifying the signature); :attr:`Header.datetime` parses on demand.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from .._errors import MalformedMessage

__all__ = ["CHANNEL_NAMES", "ChannelName", "Header", "Message", "parse_date"]

ChannelName = Literal["shell", "control", "stdin", "iopub"]

#: The four message channels, in the order the protocol documents them.
CHANNEL_NAMES: tuple[ChannelName, ...] = ("shell", "control", "stdin", "iopub")

_HEADER_KEYS = frozenset(
    ("msg_id", "msg_type", "username", "session", "date", "version", "subshell_id")
)


def parse_date(value: str) -> _dt.datetime:
    """Parse an ISO 8601 protocol date into a timezone-aware :class:`~datetime.datetime`.

    A date without a timezone is taken to be UTC (old kernels sent naive dates).

    Raises:
        ValueError: the string is not an ISO 8601 date.
    """
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python 3.10's fromisoformat accepts only 0, 3 or 6 fractional digits.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = ""
        i = 0
        while i < len(rest) and rest[i].isdigit():
            digits += rest[i]
            i += 1
        digits = (digits + "000000")[:6]
        text = f"{head}.{digits}{rest[i:]}"
    parsed = _dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_dt.timezone.utc)
    return parsed


@attrs.frozen
class Header:
    """A message header.

    Attributes:
        msg_id: unique id of the message.
        msg_type: the message type, e.g. ``"execute_request"``.
        username: the user name of the sender.
        session: the sender's session id.
        date: the send time as the ISO 8601 string found on the wire.
        version: the protocol version, e.g. ``"5.5"``.
        subshell_id: the target subshell (protocol 5.5, shell channel only), or ``None``.
        extra: any other keys the sender put in the header, kept verbatim.
    """

    msg_id: str
    msg_type: str
    username: str = "username"
    session: str = ""
    date: str = ""
    version: str = "5.5"
    subshell_id: str | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    @property
    def datetime(self) -> _dt.datetime:
        """The :attr:`date` parsed into a timezone-aware datetime.

        Raises:
            ValueError: the date is not valid ISO 8601.
        """
        return parse_date(self.date)

    def to_dict(self) -> dict[str, Any]:
        """The header as the JSON object sent on the wire."""
        out: dict[str, Any] = {
            "msg_id": self.msg_id,
            "msg_type": self.msg_type,
            "username": self.username,
            "session": self.session,
            "date": self.date,
            "version": self.version,
        }
        if self.subshell_id is not None:
            out["subshell_id"] = self.subshell_id
        if self.extra:  # unknown keys first, as received; the standard ones win
            return {**self.extra, **out}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Header:
        """Build a header from its JSON object.

        Raises:
            MalformedMessage: ``msg_id`` or ``msg_type`` is missing or not a string, or
                another standard key has the wrong type (``reason`` ``"bad_header"``).
        """
        msg_id = data.get("msg_id")
        msg_type = data.get("msg_type")
        if not isinstance(msg_id, str) or not msg_id:
            raise MalformedMessage("header.msg_id must be a non-empty string", reason="bad_header")
        if not isinstance(msg_type, str) or not msg_type:
            raise MalformedMessage(
                "header.msg_type must be a non-empty string", reason="bad_header"
            )
        username = data.get("username", "")
        session = data.get("session", "")
        date = data.get("date", "")
        version = data.get("version", "")
        subshell_id = data.get("subshell_id")
        for name, value in (
            ("username", username),
            ("session", session),
            ("date", date),
            ("version", version),
        ):
            if not isinstance(value, str):
                raise MalformedMessage(
                    f"header.{name} must be a string, got {type(value).__name__}",
                    reason="bad_header",
                )
        if subshell_id is not None and not isinstance(subshell_id, str):
            raise MalformedMessage(
                "header.subshell_id must be a string or null", reason="bad_header"
            )
        extra = {k: v for k, v in data.items() if k not in _HEADER_KEYS}
        return cls(
            msg_id=msg_id,
            msg_type=msg_type,
            username=username,
            session=session,
            date=date,
            version=version,
            subshell_id=subshell_id,
            extra=extra,
        )


def _tuple_of_bytes(value: Any) -> tuple[bytes, ...]:
    return tuple(value)


def _tuple_of_buffers(value: Any) -> tuple[bytes | memoryview, ...]:
    return tuple(value)


@attrs.frozen(eq=True)
class Message:
    """One Jupyter message, as sent or received.

    Build outgoing messages with :meth:`Session.message` / :meth:`Session.reply`; received
    messages come out of :meth:`Session.deserialize` (and so out of every channel) with
    :attr:`channel` set to the channel they arrived on.

    Attributes:
        header: the message's own header.
        parent_header: the header of the message this one answers (a plain dict, ``{}`` when
            there is none).
        metadata: the metadata dict.
        content: the content dict.
        buffers: raw binary buffers following the content (never signed, never JSON).
        identities: ZeroMQ routing identities (or, on IOPub, the topic) preceding the
            delimiter.
        channel: the channel it came from or is going to, or ``None`` when not yet known.
    """

    header: Header
    parent_header: dict[str, Any] = attrs.field(factory=dict)
    metadata: dict[str, Any] = attrs.field(factory=dict)
    content: dict[str, Any] = attrs.field(factory=dict)
    buffers: tuple[bytes | memoryview, ...] = attrs.field(default=(), converter=_tuple_of_buffers)
    identities: tuple[bytes, ...] = attrs.field(default=(), converter=_tuple_of_bytes, repr=False)
    channel: ChannelName | None = None

    @property
    def msg_id(self) -> str:
        """The message's id (``header.msg_id``)."""
        return self.header.msg_id

    @property
    def msg_type(self) -> str:
        """The message's type (``header.msg_type``)."""
        return self.header.msg_type

    @property
    def parent_id(self) -> str | None:
        """The ``msg_id`` of the parent message, or ``None`` when there is no parent."""
        value = self.parent_header.get("msg_id")
        return value if isinstance(value, str) and value else None

    @property
    def parent_msg_type(self) -> str | None:
        """The ``msg_type`` of the parent message, or ``None``."""
        value = self.parent_header.get("msg_type")
        return value if isinstance(value, str) else None

    @property
    def subshell_id(self) -> str | None:
        """The subshell this message targets (``header.subshell_id``), or ``None``."""
        return self.header.subshell_id

    def to_dict(self) -> dict[str, Any]:
        """The message as a jupyter_client-style dict.

        Keys: ``header``, ``parent_header``, ``metadata``, ``content``, ``buffers``,
        ``msg_id``, ``msg_type`` and ``channel``. Dates stay strings.
        """
        return {
            "header": self.header.to_dict(),
            "parent_header": dict(self.parent_header),
            "metadata": dict(self.metadata),
            "content": dict(self.content),
            "buffers": list(self.buffers),
            "msg_id": self.msg_id,
            "msg_type": self.msg_type,
            "channel": self.channel,
        }


# -- fast construction ---------------------------------------------------------------------
# The codec builds every message it sends or receives; attrs' generated __init__ for frozen
# slotted classes sets each attribute through ``object.__setattr__``, and even calling the
# slots' descriptors directly costs about 0.1 us per attribute. These build the same values
# (of the same class: equal, hashable, picklable, frozen) from arguments the codec has
# already checked, at a third of that cost: the object starts as an instance of a private
# subclass that adds no slots and keeps ``object``'s own attribute setting (so that a plain
# attribute store is a slot store, which the interpreter does without a call), and becomes
# an instance of the public class once its attributes are set (``__class__`` assignment,
# which Python allows between classes of the same layout).

_new = object.__new__


class _HeaderDraft(Header):
    """A :class:`Header` under construction (never seen outside :func:`_make_header`)."""

    __slots__ = ()
    # Both, so that the type's attribute setting is object's own, in C.
    __setattr__ = object.__setattr__
    __delattr__ = object.__delattr__


class _MessageDraft(Message):
    """A :class:`Message` under construction (never seen outside :func:`_make_message`)."""

    __slots__ = ()
    __setattr__ = object.__setattr__
    __delattr__ = object.__delattr__


def _make_header(
    msg_id: str,
    msg_type: str,
    username: str,
    session: str,
    date: str,
    version: str,
    subshell_id: str | None,
    extra: Mapping[str, Any],
) -> Header:
    """``Header(...)`` for checked arguments, without attrs' __init__."""
    header: Any = _new(_HeaderDraft)
    header.msg_id = msg_id
    header.msg_type = msg_type
    header.username = username
    header.session = session
    header.date = date
    header.version = version
    header.subshell_id = subshell_id
    header.extra = extra
    header.__class__ = Header
    return header  # type: ignore[no-any-return]


def _make_message(
    header: Header,
    parent_header: dict[str, Any],
    metadata: dict[str, Any],
    content: dict[str, Any],
    buffers: tuple[bytes | memoryview, ...],
    identities: tuple[bytes, ...],
    channel: ChannelName | None,
) -> Message:
    """``Message(...)`` for checked arguments (tuples already), without attrs' __init__."""
    msg: Any = _new(_MessageDraft)
    msg.header = header
    msg.parent_header = parent_header
    msg.metadata = metadata
    msg.content = content
    msg.buffers = buffers
    msg.identities = identities
    msg.channel = channel
    msg.__class__ = Message
    return msg  # type: ignore[no-any-return]
