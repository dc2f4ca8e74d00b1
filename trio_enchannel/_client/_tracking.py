"""Request bookkeeping: which request owns each incoming message (sans-I/O).

A :class:`RequestTracker` maps the ``msg_id`` of every request still in flight to an owner
(whatever object the I/O layer uses to wake the waiting task). For every received message it
answers *where it goes*: to the owning request, to the "unclaimed" store (a reply or output
nobody waits for: kept available, never silently dropped), or dropped as the expected tail of
a finished request (its trailing ``status``/``execute_input`` messages, counted).

Nothing here does I/O: it imports neither trio nor zmq.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Iterator
from typing import Generic, TypeVar

import attrs

from .._errors import LocalProtocolError
from .._wire._message import Message

__all__ = ["RequestTracker", "Route", "Routing"]

T = TypeVar("T")

# IOPub messages that merely frame a request's execution: once the request has returned they
# carry no information, so they are dropped (counted) instead of filling the unclaimed store.
_FRAMING_TYPES = frozenset(("status", "execute_input"))


class Route(enum.Enum):
    """Where a received message goes."""

    REQUEST = "request"
    """To the request in flight that owns it (``Routing.owner``)."""
    UNCLAIMED = "unclaimed"
    """To the unclaimed store: nobody waits for it, but it must stay available."""
    DROP = "drop"
    """Nowhere: the expected tail of a finished request (``Routing.reason`` says which)."""


@attrs.frozen
class Routing(Generic[T]):
    """The decision for one message.

    Attributes:
        route: where the message goes.
        owner: the owning request's owner object when ``route`` is ``REQUEST``.
        reason: why the message is dropped or unclaimed (a short stable code).
    """

    route: Route
    owner: T | None = None
    reason: str = ""


class _Late:
    # One per finished request (a plain class: the cheapest to make).
    __slots__ = ("idle_due", "quiet", "reply_due")

    def __init__(self, quiet: bool, reply_due: bool) -> None:
        self.quiet = quiet  # drop its late reply instead of keeping it
        self.reply_due = reply_due
        self.idle_due = True


@attrs.define(eq=False)
class RequestTracker(Generic[T]):
    """Tracks requests in flight and routes every incoming message to its owner.

    Args:
        recent_size: how many finished requests to remember so that their late messages
            (the idle status after the reply, the reply of a cancelled request) are
            recognised; the oldest are forgotten first.
    """

    recent_size: int = 4096
    _active: dict[str, T] = attrs.field(init=False, factory=dict)
    # msg_id of a finished request -> what is still expected of it.
    _recent: collections.OrderedDict[str, _Late] = attrs.field(
        init=False, factory=collections.OrderedDict
    )
    dropped: collections.Counter[str] = attrs.field(init=False, factory=collections.Counter)
    """How many messages were dropped, by reason."""

    def register(self, msg_id: str, owner: T) -> None:
        """Start tracking the request ``msg_id`` (before sending it: the reply may be fast).

        Raises:
            LocalProtocolError: ``msg_id`` is already tracked.
        """
        if msg_id in self._active:
            raise LocalProtocolError(f"request {msg_id!r} is already in flight")
        self._recent.pop(msg_id, None)
        self._active[msg_id] = owner

    def release(self, msg_id: str, *, quiet: bool = False, replied: bool = False) -> None:
        """Stop tracking ``msg_id`` (the request returned, failed or was cancelled).

        Its late messages are still recognised for a while: trailing status messages are
        dropped; a late reply is unclaimed, or dropped when ``quiet`` is true (for requests
        whose answer no longer interests anyone, such as readiness probes). ``replied`` says
        the reply already arrived: the request is then forgotten at its ``idle`` status
        (otherwise once both the reply and the idle status arrived, in either order, or when
        it is among the oldest beyond ``recent_size``). Releasing an unknown id does nothing.
        """
        if self._active.pop(msg_id, None) is None and msg_id not in self._recent:
            return
        self._remember(msg_id, _Late(quiet, not replied))

    def remember(self, msg_id: str, *, quiet: bool = True, expect_reply: bool = False) -> None:
        """Recognise the late messages of a message sent without waiting for an answer
        (comm messages, fire-and-forget requests), as if it had been released."""
        self._remember(msg_id, _Late(quiet, expect_reply))

    def _remember(self, msg_id: str, late: _Late) -> None:
        recent = self._recent
        if msg_id in recent:
            recent.move_to_end(msg_id)
        recent[msg_id] = late
        while len(recent) > self.recent_size:
            recent.popitem(last=False)

    def owner(self, msg_id: str) -> T | None:
        """The owner of the request ``msg_id`` in flight, or ``None``."""
        return self._active.get(msg_id)

    def __contains__(self, msg_id: object) -> bool:
        return msg_id in self._active

    def __len__(self) -> int:
        return len(self._active)

    def __iter__(self) -> Iterator[T]:
        """The owners of the requests in flight (a snapshot)."""
        return iter(list(self._active.values()))

    def route(self, msg: Message) -> Routing[T]:
        """Decide where the received ``msg`` goes (by its parent's ``msg_id``)."""
        parent = msg.parent_id
        if parent is not None:
            owner = self._active.get(parent)
            if owner is not None:
                return Routing(Route.REQUEST, owner)
            late = self._recent.get(parent)
            if late is not None:
                return self._late(msg, parent, late)
        else:
            return Routing(Route.UNCLAIMED, reason="no_parent")
        return Routing(Route.UNCLAIMED, reason="unknown_parent")

    def _late(self, msg: Message, parent: str, late: _Late) -> Routing[T]:
        if msg.channel == "iopub":
            if msg.msg_type in _FRAMING_TYPES:
                if msg.msg_type == "status" and msg.content.get("execution_state") == "idle":
                    late.idle_due = False
                    self._forget_if_done(parent, late)
                self.dropped["late_status"] += 1
                return Routing(Route.DROP, reason="late_status")
            return Routing(Route.UNCLAIMED, reason="late_output")
        if msg.channel in ("shell", "control"):
            late.reply_due = False
            self._forget_if_done(parent, late)
            if late.quiet:
                self.dropped["late_reply"] += 1
                return Routing(Route.DROP, reason="late_reply")
        return Routing(Route.UNCLAIMED, reason="late")

    def _forget_if_done(self, msg_id: str, late: _Late) -> None:
        if not late.reply_due and not late.idle_due:
            self._recent.pop(msg_id, None)
