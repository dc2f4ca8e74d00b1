"""What every reader of messages counts and reports: per-channel counters, their statistics
snapshots, and rejected messages (counted by reason, logged, optionally reported).

Shared by the ZeroMQ channels, the websocket (remote) channels and the kernel side, so that a
rejected message, a count or a snapshot means the same thing whichever end read it.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Mapping
from typing import TypeAlias

import attrs
import trio

from .._errors import MalformedMessage, RemoteProtocolError, UsageError
from .._util import worth_logging
from .._wire._message import CHANNEL_NAMES, ChannelName
from ._fanout import Fanout

__all__ = [
    "DROPS_REMEMBERED",
    "ChannelStatistics",
    "Counters",
    "PerChannel",
    "RecentIds",
    "RejectedMessage",
    "Rejects",
    "decoding_bug",
    "detach_error",
]

#: A raw frame as received (ZeroMQ frames, or one websocket frame as bytes).
Frame: TypeAlias = "bytes | memoryview"

#: How many requests' drop counts :meth:`Counters.lost` remembers (the oldest are forgotten).
DROPS_REMEMBERED = 4096


@attrs.frozen
class RejectedMessage:
    """A message that failed verification or decoding (see :attr:`Channels.rejects
    <trio_enchannel.Channels.rejects>`).

    Attributes:
        channel: the channel it arrived on; ``None`` for a websocket frame too broken to
            tell (remote channels only).
        error: why it was rejected; ``error.reason`` is the counted reason. It carries no
            traceback and no cause (they would pin the decoder's frames and the whole input).
        frames: the raw frames as received.
    """

    channel: ChannelName | None
    error: RemoteProtocolError
    frames: tuple[Frame, ...] = attrs.field(repr=False)

    @property
    def reason(self) -> str:
        """The rejection reason (``error.reason``)."""
        return self.error.reason


@attrs.frozen
class ChannelStatistics:
    """A snapshot of one channel's counters.

    Attributes:
        name: the channel.
        received: valid messages received (delivered or not).
        sent: messages sent.
        rejected: rejected messages by reason (``"invalid_signature"``, ``"bad_json"``, ...).
        queued: messages received and waiting for the consumer.
        buffer_size: the capacity of the buffer they wait in, in messages.
        stalls: times the reader found the buffer full and waited for the consumer.
        dropped: messages discarded because the buffer was full (IOPub with
            ``iopub_overflow="drop"``, the default, only).
        discarded: messages that arrived after the consumer closed this channel.
        queued_bytes: the wire size of the queued messages, in bytes.
        buffer_bytes: the capacity of the buffer in bytes (``0``: bounded in messages only).
        subscriptions: IOPub subscriptions open now (:meth:`IOPubChannel.subscribe`).
        subscriber_dropped: copies that IOPub subscriptions (open or closed since) dropped
            because their own buffer was full; not included in ``dropped``, which counts
            the channel's own buffer.
        invalid_utf8: messages accepted (and delivered) although a JSON part held bytes that
            are not valid UTF-8: those were decoded as U+FFFD replacement characters, as
            jupyter_client does (a kernel's ``print('\\udcff')`` sends such a byte).
        unverified: messages accepted with a signature that could not be verified, because
            this side has no key (as jupyter_client accepts them): the peer signs, and most
            likely drops every message sent to it unsigned (on a client, see ``key_missing``
            in :attr:`Channels.handshake_error <trio_enchannel.Channels.handshake_error>`; a
            kernel's channels only count them).
    """

    name: ChannelName
    received: int = 0
    sent: int = 0
    rejected: Mapping[str, int] = attrs.field(factory=dict)
    queued: int = 0
    buffer_size: int = 0
    stalls: int = 0
    dropped: int = 0
    discarded: int = 0
    queued_bytes: int = 0
    buffer_bytes: int = 0
    subscriptions: int = 0
    subscriber_dropped: int = 0
    invalid_utf8: int = 0
    unverified: int = 0

    @property
    def rejected_total(self) -> int:
        """All rejected messages, whatever the reason."""
        return sum(self.rejected.values())


class PerChannel:
    """What every statistics snapshot with one :class:`ChannelStatistics` attribute per
    channel (``shell``, ``control``, ``stdin``, ``iopub``) offers: indexing by channel name and
    the total of rejected messages."""

    __slots__ = ()

    # Declared here, defined by each snapshot class (its attrs fields).
    shell: ChannelStatistics
    control: ChannelStatistics
    stdin: ChannelStatistics
    iopub: ChannelStatistics

    def __getitem__(self, name: ChannelName) -> ChannelStatistics:
        """The statistics of channel ``name``.

        Raises:
            KeyError: not a channel name.
        """
        if name == "shell":
            return self.shell
        if name == "control":
            return self.control
        if name == "stdin":
            return self.stdin
        if name == "iopub":
            return self.iopub
        raise KeyError(name)

    @property
    def rejected_total(self) -> int:
        """Rejected messages over every channel."""
        return sum(self[name].rejected_total for name in CHANNEL_NAMES)


class Counters:
    """One channel's counters. Assigning ``dropped`` wakes :meth:`wait_dropped`."""

    __slots__ = (
        "_drop_event",
        "_dropped",
        "_dropped_by_parent",
        "discarded",
        "fanout",
        "invalid_utf8",
        "received",
        "rejected",
        "sent",
        "stalls",
        "unverified",
    )

    def __init__(self) -> None:
        self.received = 0
        self.sent = 0
        self.rejected: dict[str, int] = {}
        self.stalls = 0
        self._dropped = 0
        self._dropped_by_parent: collections.OrderedDict[str, int] = collections.OrderedDict()
        self.discarded = 0
        self.invalid_utf8 = 0
        self.unverified = 0
        self._drop_event: trio.Event | None = None
        self.fanout: Fanout | None = None  # IOPub's subscriptions, set by the owner

    def __repr__(self) -> str:
        return (
            f"<Counters received={self.received} sent={self.sent} dropped={self._dropped} "
            f"stalls={self.stalls} discarded={self.discarded} rejected={self.rejected}>"
        )

    def drop(self, parent_id: str | None) -> None:
        """Count one dropped message, and remember it against the request that caused it
        (its parent's ``msg_id``), so that request's result can say it is incomplete."""
        self.lost(parent_id)
        self.dropped += 1

    def lost(self, parent_id: str | None) -> None:
        """Remember one message of the request ``parent_id`` that will never be delivered
        (dropped, or rejected although authentic)."""
        if parent_id is not None:
            by_parent = self._dropped_by_parent
            by_parent[parent_id] = by_parent.get(parent_id, 0) + 1
            by_parent.move_to_end(parent_id)
            if len(by_parent) > DROPS_REMEMBERED:
                by_parent.popitem(last=False)

    def dropped_for(self, parent_id: str) -> int:
        """How many messages of the request ``parent_id`` were lost (see :meth:`lost`)."""
        return self._dropped_by_parent.get(parent_id, 0)

    def repaired(self) -> int:
        """Count one message accepted with invalid UTF-8 replaced; return the count (callers
        log the first ten, then at powers of two)."""
        self.invalid_utf8 += 1
        return self.invalid_utf8

    def snapshot(
        self, name: ChannelName, queued: int, queued_bytes: int, limits: tuple[int, int]
    ) -> ChannelStatistics:
        """These counters as a :class:`ChannelStatistics`, with the buffer's state: its
        ``queued`` messages and ``queued_bytes``, and its ``limits`` (messages, bytes)."""
        fanout = self.fanout
        return ChannelStatistics(
            name=name,
            received=self.received,
            sent=self.sent,
            rejected=dict(self.rejected),
            queued=queued,
            buffer_size=limits[0],
            stalls=self.stalls,
            dropped=self._dropped,
            discarded=self.discarded,
            queued_bytes=queued_bytes,
            buffer_bytes=limits[1],
            subscriptions=len(fanout.subscriptions) if fanout is not None else 0,
            subscriber_dropped=fanout.dropped if fanout is not None else 0,
            invalid_utf8=self.invalid_utf8,
            unverified=self.unverified,
        )

    @property
    def dropped(self) -> int:
        return self._dropped

    @dropped.setter
    def dropped(self, value: int) -> None:
        self._dropped = value
        event = self._drop_event
        if event is not None:
            self._drop_event = None
            event.set()

    async def wait_dropped(self, above: int) -> int:
        """Wait until more than ``above`` messages were dropped; return how many were."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._dropped > above:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return self._dropped
        while self._dropped <= above:
            if self._drop_event is None:
                self._drop_event = trio.Event()
            await self._drop_event.wait()
        return self._dropped


def detach_error(error: BaseException) -> None:
    """Drop what a rejection error references beyond its message: its traceback (the
    decoder's frames, whose locals hold the raw frames) and its cause (a UnicodeDecodeError
    or JSONDecodeError holds the whole input). The message already says what was wrong, and
    a kept log record or RejectedMessage then pins nothing but its own frames."""
    error.__traceback__ = None
    error.__cause__ = None
    error.__context__ = None
    error.__suppress_context__ = True


def decoding_bug(logger: logging.Logger, what: str, exc: Exception) -> MalformedMessage:
    """The rejection of a message whose decoding failed with an unexpected exception (a bug
    in the decoder, not the message's fault): logged with its traceback, then handled as any
    rejected message (reason ``"undecodable"``), so that no reader dies of it."""
    logger.error("unexpected error decoding %s", what, exc_info=exc)
    return MalformedMessage(f"undecodable: {exc!r}", reason="undecodable")


class Rejects:
    """Where a reader's rejected messages go: counted per channel and reason (in
    ``counters``), logged (the first ten of a reason, then at powers of two), reported on
    :attr:`receiver` when asked for (``buffer`` unread records at most; more are only counted
    in :attr:`unreported`).

    Args:
        logger: where the warnings go.
        counters: each channel's counters.
        buffer: how many unread records :attr:`receiver` holds; ``None``: not reported.
        disabled: the message of the UsageError that :attr:`receiver` raises then.
        source: what the warnings say the messages came from (``" from kernel <id>"``).
    """

    def __init__(
        self,
        logger: logging.Logger,
        counters: Mapping[ChannelName, Counters],
        buffer: int | None,
        *,
        disabled: str,
        source: str = "",
    ) -> None:
        self._logger = logger
        self._counters = counters
        self._disabled = disabled
        self._source = source
        self._send: trio.MemorySendChannel[RejectedMessage] | None = None
        self._receive: trio.MemoryReceiveChannel[RejectedMessage] | None = None
        if buffer is not None:
            self._send, self._receive = trio.open_memory_channel[RejectedMessage](buffer)
        #: Rejects that did not fit in :attr:`receiver`'s buffer.
        self.unreported = 0
        #: Rejected messages whose channel could not be told (websocket frames only).
        self.unknown_channel = 0

    @property
    def receiver(self) -> trio.MemoryReceiveChannel[RejectedMessage]:
        """Every rejected message as a :class:`RejectedMessage`.

        Raises:
            UsageError: rejects are not reported (``report_rejects=False``).
        """
        if self._receive is None:
            raise UsageError(self._disabled)
        return self._receive

    def reject(
        self, name: ChannelName | None, frames: tuple[Frame, ...], error: RemoteProtocolError
    ) -> None:
        """Count, log and report one rejected message that arrived on ``name`` (``None``:
        unknown) as ``frames``. Never waits."""
        detach_error(error)
        if name is None:
            self.unknown_channel += 1
            count = self.unknown_channel
        else:
            counters = self._counters[name]
            if name == "iopub" and isinstance(error, MalformedMessage):
                counters.lost(error.parent_id)
            rejected = counters.rejected
            count = rejected[error.reason] = rejected.get(error.reason, 0) + 1
        if worth_logging(count):
            self._logger.warning(
                "rejected a message%s on %s (%s, %d so far): %s",
                self._source,
                name or "an unknown channel",
                error.reason,
                count,
                error,
            )
        if self._send is not None:
            try:
                self._send.send_nowait(RejectedMessage(name, error, frames))
            except trio.WouldBlock:
                self.unreported += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    def close(self) -> None:
        """No more rejects: a reader of :attr:`receiver` meets :class:`trio.EndOfChannel`
        once it has read the rest. Idempotent."""
        if self._send is not None:
            self._send.close()


class RecentIds(collections.OrderedDict[str, None]):
    """The ``msg_id`` of the last ``size`` requests a reader sent for itself (liveness
    probes), so that what they cause is not delivered; older ones are forgotten first. A
    dict, so that ``if ids and msg.parent_id in ids`` costs a reader no Python call."""

    def __init__(self, size: int = 256) -> None:
        super().__init__()
        self._size = size

    def add(self, msg_id: str) -> None:
        """Remember ``msg_id``, forgetting the oldest beyond ``size``."""
        self[msg_id] = None
        if len(self) > self._size:
            self.popitem(last=False)
