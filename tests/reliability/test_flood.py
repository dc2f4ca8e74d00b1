"""A slow consumer under an IOPub flood of 100,000 messages from a real kernel.

The contract: either every message arrives or the loss is reported (counted in the
statistics), memory stays bounded, and the other channels keep working meanwhile.

The consumer here is as slow as a consumer can be: it reads nothing from IOPub until the
flooding request's ``execute_reply`` has arrived on shell (so the whole flood has been
published), then reads everything.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from tests.conftest import kernel_process
from tests.reliability._measure import PeakRss
from tests.reliability.conftest import record
from trio_enchannel import Message, open_client
from trio_enchannel._channels._channels import Channels, ChannelStatistics, open_channels

pytestmark = [pytest.mark.kernel, pytest.mark.slow]

FLOOD_SIZE = 100_000
#: What a client may hold in memory while 100,000 messages (~30 MB on the wire) pass by.
MEMORY_BOUND = 64 * 2**20

# Publishes FLOOD_SIZE stream messages for the running request, as fast as ipykernel can.
FLOOD = f"""
_k = get_ipython().kernel
_p = _k.get_parent("shell")
for _i in range({FLOOD_SIZE}):
    _c = {{"name": "stdout", "text": "%d\\n" % _i}}
    _k.session.send(_k.iopub_socket, "stream", _c, parent=_p)
"""


def execute_request(ch: Channels, code: str) -> Message:
    content = {
        "code": code,
        "silent": False,
        "store_history": False,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": True,
    }
    return ch.session.message("execute_request", content, channel="shell")


async def receive_reply(channel: trio.abc.ReceiveChannel[Message], request: Message) -> Message:
    while True:
        msg = await channel.receive()
        if msg.parent_id == request.msg_id:
            return msg


async def drain_until_quiet(ch: Channels, counts: Counter[str]) -> None:
    """Receive IOPub until a marker request's ``idle`` arrives: everything published before
    it has then been delivered or dropped. Markers are repeated in case one is lost."""
    markers: set[str] = set()
    while True:
        marker = ch.session.message("kernel_info_request", channel="shell")
        markers.add(marker.msg_id)
        await ch.shell.send(marker)
        with trio.move_on_after(1.0):
            while True:
                msg = await ch.iopub.receive()
                counts[msg.parent_id or ""] += 1
                if (
                    msg.parent_id in markers
                    and msg.msg_type == "status"
                    and msg.content.get("execution_state") == "idle"
                ):
                    return


@attrs.frozen
class Flood:
    """What a flood did to a client's channels."""

    published: int  # IOPub messages the kernel published for the flooding request
    delivered: int  # of those, delivered to the consumer
    delivered_total: int  # every IOPub message delivered during the test
    stats: ChannelStatistics  # the IOPub statistics right after the last delivery
    received: int  # IOPub messages received during the flood (valid ones)
    dropped: int  # IOPub messages dropped during the flood
    memory_growth: int

    @property
    def lost_before_client(self) -> int:
        """Flood messages that never reached the client: ``received`` also counts the
        barrier markers' own status messages (delivered with another parent), which are
        taken out here."""
        return self.published - (self.received - (self.delivered_total - self.delivered))


async def flood_channels(tmp_path: Path, **options: Any) -> Flood:
    """Flood a client's channels opened with ``options``; the consumer reads nothing until
    the flood is over. Control and shell must keep working meanwhile."""
    with trio.fail_after(120):
        async with (
            kernel_process(tmp_path) as kernel,
            open_channels(kernel.info, **options) as ch,
        ):
            with trio.fail_after(30):
                await ch.wait_iopub_ready()
                # A barrier: everything the start-up caused has been received.
                await drain_until_quiet(ch, Counter())
            before = ch.statistics().iopub
            peak = PeakRss()
            counts: Counter[str] = Counter()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(peak.run)
                request = execute_request(ch, FLOOD)
                await ch.shell.send(request)
                record("load: IOPub flood messages from ipykernel, slow consumer", FLOOD_SIZE)
                # Control answers during the flood...
                probe = ch.session.message("kernel_info_request", channel="control")
                await ch.control.send(probe)
                assert (await receive_reply(ch.control, probe)).msg_type == "kernel_info_reply"
                # ...and shell delivers the reply while IOPub is backed up.
                reply = await receive_reply(ch.shell, request)
                assert reply.content["status"] == "ok", reply.content
                await drain_until_quiet(ch, counts)
                stats = ch.statistics().iopub
                nursery.cancel_scope.cancel()
    return Flood(
        published=FLOOD_SIZE + 3,  # busy, execute_input, the flood, idle
        delivered=counts[request.msg_id],
        delivered_total=sum(counts.values()),
        stats=stats,
        received=stats.received - before.received,
        dropped=stats.dropped - before.dropped,
        memory_growth=peak.growth,
    )


async def test_slow_consumer_with_default_settings_loses_nothing_silently(tmp_path: Path) -> None:
    """With default settings a slow consumer never makes the reader stop draining the socket
    (so the client never pushes back on the kernel, which would make its PUB socket drop
    silently), and every message that reached the client is delivered or counted as dropped.

    What the kernel's own PUB socket drops before anything reaches the client (it happens
    when the machine is too busy to move the bytes: both ends share 2 cores with the test)
    is invisible to any subscriber; it is recorded as a figure, not hidden."""
    flood = await flood_channels(tmp_path)
    stats = flood.stats
    assert stats.stalls == 0, "the reader waited for the consumer"
    assert flood.received == flood.delivered_total + flood.dropped + stats.queued, (
        f"received {flood.received}, delivered {flood.delivered_total}, "
        f"dropped {flood.dropped}, queued {stats.queued}"
    )
    record(
        "load: IOPub flood messages lost before reaching the client (kernel PUB, CPU-starved)",
        flood.lost_before_client,
    )
    assert flood.memory_growth < MEMORY_BOUND


async def test_slow_consumer_with_dropping_iopub_accounts_for_every_message(
    tmp_path: Path,
) -> None:
    """With ``iopub_overflow="drop"`` the reader keeps draining the socket while the consumer
    sleeps: every message that reached the client is delivered or counted as dropped, and
    memory stays bounded by the buffer. (What the kernel's own PUB socket drops when the
    client cannot drain as fast as the kernel publishes never reaches the client: that part
    is ``Flood.lost_before_client``.)"""
    flood = await flood_channels(tmp_path, iopub_overflow="drop")
    stats = flood.stats
    assert flood.received == flood.delivered_total + flood.dropped + stats.queued
    assert flood.dropped > 0  # the consumer really was too slow
    assert stats.stalls == 0  # and the reader never waited for it
    assert flood.memory_growth < MEMORY_BOUND, f"grew {flood.memory_growth / 2**20:.0f} MiB"


async def test_slow_stream_execute_consumer_keeps_memory_bounded(tmp_path: Path) -> None:
    with trio.fail_after(120):
        async with (
            kernel_process(tmp_path) as kernel,
            (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0] as listener,
            open_client(kernel.info) as client,
        ):
            port = listener.socket.getsockname()[1]
            with trio.fail_after(30):
                await client.wait_ready()
            peak = PeakRss()
            streams = 0
            received_before = client.channels.statistics().iopub.received  # type: ignore[attr-defined]
            # The readiness probes' own status messages may still arrive (wait_ready
            # returns at the first answer, on control or shell): the client counts them as
            # late framing messages, and they are not part of the flood.
            late_before = client.statistics().late_dropped
            async with trio.open_nursery() as nursery:
                nursery.start_soon(peak.run)
                # The flood, then a connection to our listener when the kernel is done.
                done = f"import socket\nsocket.create_connection(('127.0.0.1', {port})).close()\n"
                record("load: IOPub flood messages from ipykernel, slow consumer", FLOOD_SIZE)
                async with client.stream_execute(FLOOD + done) as run:
                    first = await run.receive()
                    assert first.msg_type == "status"
                    # The consumer is busy elsewhere until the kernel has published everything.
                    connection = await listener.accept()
                    await connection.aclose()
                    with trio.move_on_after(10) as hung:
                        async for msg in run:
                            streams += msg.msg_type == "stream"
                nursery.cancel_scope.cancel()
            # Shell traffic still works.
            assert (await client.kernel_info()).implementation == "ipython"
            ch: Any = client.channels
            # Every message that went missing is counted somewhere: by the channels (their
            # IOPub buffer), by the client (unclaimed), or by this slow reader's execution
            # (a live reader that falls behind misses the oldest messages, counted).
            cstats = client.statistics()
            dropped = (
                ch.statistics().iopub.dropped
                + cstats.unclaimed_iopub_dropped
                + run.dropped
                # Reached the client and still available, just not to this reader:
                + ch.statistics().iopub.queued
                + cstats.unclaimed_iopub
            )
            # Lost before reaching the client (the kernel's PUB socket, when the machine is
            # too busy to move the bytes): no subscriber can count those.
            late = cstats.late_dropped - late_before
            never_received = (
                FLOOD_SIZE + 4 + late - (ch.statistics().iopub.received - received_before)
            )
    assert not hung.cancelled_caught, f"the execution never ended ({streams} streams)"
    lost = FLOOD_SIZE - streams
    assert lost <= dropped + max(never_received, 0), (
        f"{lost} messages lost, {dropped} reported, {never_received} never reached the client"
    )
    assert peak.growth < MEMORY_BOUND, f"memory grew by {peak.growth / 2**20:.0f} MiB"
