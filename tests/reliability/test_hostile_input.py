"""Hostile input against live channels: every valid message is delivered in order, every invalid
one is rejected and counted by reason, no reader dies, memory stays bounded.

Both directions are attacked over real sockets: a raw kernel (bare ZeroMQ sockets) feeds the
client's ``open_channels`` readers, and a raw client feeds the kernel side's
``open_kernel_channels`` readers. Hostile messages are interleaved with valid traffic on every
channel; hypothesis draws the interleavings and random frame lists.
"""

from __future__ import annotations

import logging
import types
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests._raw_peer import open_raw_peer
from tests.reliability._hostile import (
    REJECTED_KINDS,
    VALID_KINDS,
    Builder,
    RawKernel,
    open_raw_kernel,
    reference_reason,
)
from tests.reliability._measure import PeakRss, rss
from tests.reliability.conftest import examples, record
from tests.strategies import any_frame
from trio_enchannel import ChannelName, Message, Session
from trio_enchannel._channels._channels import Channels, RejectedMessage, open_channels
from trio_enchannel._kernel._side import open_kernel_channels

TIMEOUT = 30
KEY = "hostile-suite-key"
CLIENT_CHANNELS: tuple[ChannelName, ...] = ("shell", "control", "stdin", "iopub")
KERNEL_CHANNELS: tuple[ChannelName, ...] = ("shell", "control", "stdin")

Item = tuple[str, str, Any]
Endpoints = dict[str, trio.abc.ReceiveChannel[Message]]


def items(channels: Sequence[str]) -> st.SearchStrategy[Item]:
    """One scheduled message: (channel, kind, variant or random frames)."""
    channel = st.sampled_from(list(channels))
    return st.one_of(
        st.tuples(channel, st.sampled_from(VALID_KINDS), st.just(0)),
        st.tuples(channel, st.just("valid"), st.just(0)),
        st.tuples(channel, st.sampled_from(sorted(REJECTED_KINDS)), st.integers(0, 11)),
        st.tuples(channel, st.just("random"), st.lists(any_frame, min_size=1, max_size=10)),
    )


class Plan:
    """What was sent on each channel, and so what the receiver must show."""

    def __init__(self, channels: Sequence[str]) -> None:
        self.seqs: dict[str, list[int]] = {c: [] for c in channels}
        self.rejects: dict[str, Counter[str]] = {c: Counter() for c in channels}
        self.sent_kinds: Counter[str] = Counter()
        self.delivered = 0
        self.next_seq = 0

    def build(
        self, builder: Builder, channel: str, kind: str, param: Any, routing: Sequence[bytes]
    ) -> tuple[list[bytes], str | None] | None:
        """The frames to send for one item and the reason they must be rejected for
        (``None`` for a valid message), recording what the receiver must do with them;
        ``None`` when there is nothing to send. ``routing`` is what the receiving socket
        prepends."""
        reason: str | None = None
        if kind in VALID_KINDS:
            frames = builder.valid(channel, self.next_seq, kind)
            self.seqs[channel].append(self.next_seq)
            self.next_seq += 1
        elif kind == "random":
            frames = [bytes(f) for f in param]
            reason = reference_reason(KEY.encode(), [*routing, *frames])
        else:
            if kind == "replayed" and channel not in builder.last_valid:
                return None
            frames = builder.hostile(channel, kind, param)
            reason = REJECTED_KINDS[kind]
        if reason is not None:
            self.rejects[channel][reason] += 1
        self.sent_kinds[kind] += 1
        return frames, reason

    async def lockstep(
        self,
        endpoints: Endpoints,
        rejects: trio.abc.ReceiveChannel[RejectedMessage],
        channel: str,
        reason: str | None,
    ) -> None:
        """Wait until the receiver has dealt with the item just sent: delivered it (a valid
        message) or rejected it for ``reason``. Keeps one item in flight (memory checks)."""
        if reason is None:
            msg = await endpoints[channel].receive()
            assert msg.content["seq"] == self.seqs[channel].pop(0)
            self.delivered += 1
        else:
            rejected = await rejects.receive()
            assert (rejected.channel, rejected.reason) == (channel, reason)

    def sentinels(self, builder: Builder) -> dict[str, list[bytes]]:
        out = {}
        for channel in self.seqs:
            out[channel] = builder.valid(channel, self.next_seq)
            self.seqs[channel].append(self.next_seq)
            self.next_seq += 1
        return out

    async def check_delivered(self, endpoints: Endpoints) -> None:
        """Receive up to each channel's sentinel: exactly the valid messages, in order."""
        for channel, expected in self.seqs.items():
            got = await receive_seqs(endpoints[channel], expected[-1])
            assert got == expected, f"{channel}: delivered {got}, sent {expected}"
            self.delivered += len(got)
            expected.clear()


async def receive_seqs(channel: trio.abc.ReceiveChannel[Message], last: int) -> list[int]:
    """Receive until the message carrying ``last``; return every ``seq`` seen in order."""
    seqs = []
    while True:
        msg = await channel.receive()
        seqs.append(msg.content["seq"])
        if msg.content["seq"] == last:
            return seqs


async def connect_client(rk: RawKernel, ch: Channels) -> None:
    """Make sure every client socket is connected before hostile traffic starts."""
    for name in KERNEL_CHANNELS:
        await ch.send(ch.session.message("hello_request", channel=name))
        await rk.learn_client(name)
    await rk.wait_subscribed()


def record_plan(plan: Plan, side: str) -> None:
    for kind, count in plan.sent_kinds.items():
        if kind not in VALID_KINDS:
            record(f"hostile input rejected ({side}): {kind}", count)
    record(f"valid messages delivered in order among them ({side})", plan.delivered)


async def attack_client(
    rounds: Sequence[Sequence[Item]], *, big: int, lockstep: bool = False
) -> Plan:
    """Send each round of items from a raw kernel to ``open_channels``, then a valid
    sentinel per channel, and check what was delivered and rejected. With ``lockstep`` each
    item is delivered or rejected before the next is sent."""
    with trio.fail_after(TIMEOUT + 2 * len(rounds)):
        async with (
            open_raw_kernel(KEY) as rk,
            open_channels(rk.info, heartbeat=False, report_rejects=True) as ch,
        ):
            await connect_client(rk, ch)
            builder = Builder(Session(KEY), big=big)
            plan = Plan(CLIENT_CHANNELS)
            endpoints: Endpoints = {name: getattr(ch, name) for name in CLIENT_CHANNELS}
            reported: list[str] = []
            for schedule in rounds:
                for channel, kind, param in schedule:
                    built = plan.build(builder, channel, kind, param, ())
                    if built is not None:
                        await rk.send(channel, built[0])
                        if lockstep:
                            await plan.lockstep(endpoints, ch.rejects, channel, built[1])
                            if built[1] is not None:
                                reported.append(built[1])
                for channel, frames in plan.sentinels(builder).items():
                    await rk.send(channel, frames)
                await plan.check_delivered(endpoints)
                while True:
                    try:
                        reported.append(ch.rejects.receive_nowait().reason)
                    except trio.WouldBlock:
                        break
            stats = ch.statistics()
            for channel in CLIENT_CHANNELS:
                assert dict(stats[channel].rejected) == dict(plan.rejects[channel]), channel
            assert sum(stats[c].received for c in CLIENT_CHANNELS) == plan.delivered
            # Every rejection is reported too (as far as the reporting buffer holds).
            assert len(reported) + stats.rejects_unreported == stats.rejected_total
            assert Counter(reported) <= sum(plan.rejects.values(), Counter())
            record_plan(plan, "client")
            return plan


async def attack_kernel(
    rounds: Sequence[Sequence[Item]], *, big: int, lockstep: bool = False
) -> Plan:
    """The same from a raw client to ``open_kernel_channels``."""
    with trio.fail_after(TIMEOUT + 2 * len(rounds)):
        async with (
            open_kernel_channels(key=KEY, report_rejects=True) as kc,
            open_raw_peer(kc.connection_info) as peer,
        ):
            builder = Builder(peer.session, big=big)
            plan = Plan(KERNEL_CHANNELS)
            endpoints: Endpoints = {name: getattr(kc, name) for name in KERNEL_CHANNELS}
            for schedule in rounds:
                for channel, kind, param in schedule:
                    built = plan.build(builder, channel, kind, param, (peer.identity,))
                    if built is not None:
                        await peer.send_frames(channel, built[0])  # type: ignore[arg-type]
                        if lockstep:
                            await plan.lockstep(endpoints, kc.rejects, channel, built[1])
                for channel, frames in plan.sentinels(builder).items():
                    await peer.send_frames(channel, frames)  # type: ignore[arg-type]
                await plan.check_delivered(endpoints)
            stats = kc.statistics()
            for channel in KERNEL_CHANNELS:
                assert dict(stats[channel].rejected) == dict(plan.rejects[channel]), channel
            assert sum(stats[c].received for c in KERNEL_CHANNELS) == plan.delivered
            record_plan(plan, "kernel side")
            return plan


@settings(
    max_examples=examples(50, 1000),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(schedule=st.lists(items(CLIENT_CHANNELS), min_size=1, max_size=40))
async def test_client_channels_survive_a_hostile_kernel(schedule: list[Item]) -> None:
    await attack_client([schedule], big=64 * 1024)


@settings(
    max_examples=examples(50, 1000),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(schedule=st.lists(items(KERNEL_CHANNELS), min_size=1, max_size=40))
async def test_kernel_side_survives_a_hostile_client(schedule: list[Item]) -> None:
    await attack_kernel([schedule], big=64 * 1024)


def every_kind(channels: Sequence[str], rounds: int) -> list[list[Item]]:
    """Each hostile and valid kind on each channel, interleaved, in ``rounds`` rounds."""
    out: list[list[Item]] = []
    for r in range(rounds):
        schedule: list[Item] = []
        out.append(schedule)
        for channel in channels:
            schedule.append((channel, "valid", 0))
            for kind in sorted(REJECTED_KINDS):
                schedule.append((channel, kind, r))
                schedule.append((channel, "valid", 0))
            for kind in VALID_KINDS:
                schedule.append((channel, kind, 0))
    return out


#: Oversized frames and huge strings in the every-kind runs (bytes).
BIG = 4 * 1024 * 1024
#: Resident memory the client may grow by while ~1 GiB of hostile and huge traffic passes.
MEMORY_BOUND = 128 * 1024 * 1024


class CountingHandler(logging.Handler):
    """Counts log records without keeping them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.format(record)  # what a real handler does; the record is then dropped
        self.count += 1


@contextmanager
def library_log() -> Iterator[CountingHandler]:
    """Route the library's log records to a handler that counts them and keeps none.

    pytest's own log capture keeps every record of a test until the test ends (see
    test_rejections_do_not_pin_the_rejected_messages): the memory checks must measure the
    library, not that.
    """
    logger = logging.getLogger("trio_enchannel")
    handler = CountingHandler()
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield handler
    finally:
        logger.propagate = propagate
        logger.removeHandler(handler)


@pytest.mark.parametrize("rounds", [3, pytest.param(30, marks=pytest.mark.soak)])
async def test_every_hostile_kind_on_every_client_channel(rounds: int) -> None:
    peak = PeakRss()
    with library_log() as log:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(peak.run)
            plan = await attack_client(every_kind(CLIENT_CHANNELS, rounds), big=BIG, lockstep=True)
            nursery.cancel_scope.cancel()
    for kind in REJECTED_KINDS:
        assert plan.sent_kinds[kind] == rounds * len(CLIENT_CHANNELS), kind
    assert peak.growth < MEMORY_BOUND, f"memory grew by {peak.growth / 2**20:.0f} MiB"
    # Rejections are logged, rate-limited: at most ten per reason and channel plus powers
    # of two, never one line per message of a flood.
    assert 0 < log.count <= len(CLIENT_CHANNELS) * len(set(REJECTED_KINDS.values())) * 12


@pytest.mark.parametrize("rounds", [3, pytest.param(30, marks=pytest.mark.soak)])
async def test_every_hostile_kind_on_every_kernel_channel(rounds: int) -> None:
    peak = PeakRss()
    with library_log():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(peak.run)
            plan = await attack_kernel(every_kind(KERNEL_CHANNELS, rounds), big=BIG, lockstep=True)
            nursery.cancel_scope.cancel()
    for kind in REJECTED_KINDS:
        assert plan.sent_kinds[kind] == rounds * len(KERNEL_CHANNELS), kind
    assert peak.growth < MEMORY_BOUND, f"memory grew by {peak.growth / 2**20:.0f} MiB"


async def test_memory_stays_bounded_under_a_flood_of_oversized_garbage() -> None:
    """250 frames of 4 MiB of garbage (1 GiB) sent at a client's shell, valid traffic in
    between: all rejected, the valid messages delivered, and memory reaches a plateau (what
    the allocator keeps after the first frames) instead of growing with the traffic."""
    with trio.fail_after(TIMEOUT), library_log():
        async with (
            open_raw_kernel(KEY) as rk,
            open_channels(rk.info, heartbeat=False) as ch,
        ):
            await connect_client(rk, ch)
            builder = Builder(Session(KEY), big=BIG)
            plateau = 0
            peak = PeakRss()
            for i in range(250):
                await rk.send("shell", builder.hostile("shell", "oversized_no_delimiter"))
                if i % 25 == 24:
                    await rk.send("shell", builder.valid("shell", i))
                    msg = await ch.shell.receive()
                    assert msg.content["seq"] == i
                    peak.sample()
                    if i == 49:
                        plateau = rss()
            assert ch.statistics().shell.rejected == {"missing_delimiter": 250}
            assert ch.statistics().shell.received == 10
            record("hostile input rejected (client): 4 MiB garbage frames in one flood", 250)
            assert peak.growth < MEMORY_BOUND, f"memory grew by {peak.growth / 2**20:.0f} MiB"
            growth = rss() - plateau
            assert growth < 64 * 2**20, f"grew {growth / 2**20:.0f} MiB after the plateau"


class KeepingHandler(logging.Handler):
    """Keeps every record, as pytest's log capture, a MemoryHandler or a log shipper's queue
    do."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def pinned_bytes(root: object, *, at_least: int = 64 * 1024) -> int:
    """Bytes of the large buffers and strings that ``root`` keeps alive through exceptions
    (their traceback frames' locals, cause, context, arguments and attributes)."""
    total = 0
    seen: set[int] = set()
    stack: list[object] = [root]
    while stack:
        obj = stack.pop()
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, (bytes, bytearray, str)):
            total += len(obj) if len(obj) >= at_least else 0
        elif isinstance(obj, memoryview):
            total += obj.nbytes if obj.nbytes >= at_least else 0
        elif isinstance(obj, BaseException):
            stack += [obj.__traceback__, obj.__cause__, obj.__context__, *obj.args]
            stack += list(vars(obj).values())
        elif isinstance(obj, types.TracebackType):
            stack += [obj.tb_frame, obj.tb_next]
        elif isinstance(obj, types.FrameType):
            stack += list(obj.f_locals.values())
        elif isinstance(obj, (list, tuple)):
            stack += list(obj)
        elif isinstance(obj, logging.LogRecord):
            stack += [*(obj.args if isinstance(obj.args, tuple) else ()), obj.exc_info]
    return total


@pytest.mark.parametrize("side", ["client", "kernel side"])
async def test_rejections_do_not_pin_the_rejected_messages(side: str) -> None:
    """A handler that keeps log records (pytest's capture, a MemoryHandler, a log shipper's
    queue) must not keep 4 MiB rejected messages alive: the text is all a record needs."""
    logger = logging.getLogger("trio_enchannel")
    handler = KeepingHandler()
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        schedule: list[Item] = [
            ("shell", kind, i)
            for i in range(3)
            for kind in ("oversized", "bad_utf8", "deep_nesting", "bad_json")
        ]
        if side == "client":
            await attack_client([schedule], big=BIG, lockstep=True)
        else:
            await attack_kernel([schedule], big=BIG, lockstep=True)
    finally:
        logger.propagate = propagate
        logger.removeHandler(handler)
    assert len(handler.records) == len(schedule)
    pinned = sum(pinned_bytes(record) for record in handler.records)
    assert pinned == 0, f"the log records keep {pinned / 2**20:.0f} MiB of rejected messages"
