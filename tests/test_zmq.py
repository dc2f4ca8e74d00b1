"""Tests of the ZeroMQ adapter (trio_enchannel._io._zmq)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import pytest
import trio
import trio.testing
import zmq

from tests._polling import assert_yields_every_few_calls, poll_until
from trio_enchannel import EncryptionUnavailable
from trio_enchannel._io._zmq import (
    ZERO_COPY_THRESHOLD,
    Frame,
    TrioSocket,
    curve_keypair,
    curve_public,
    has_curve,
    zmq_context,
    zmq_version,
)

TIMEOUT = 20


def _as_bytes(frames: list[Frame]) -> list[bytes]:
    return [bytes(f) for f in frames]


@contextmanager
def thread_echo_router() -> Iterator[str]:
    """A blocking pyzmq ROUTER in its own thread that echoes every message; yields its url."""
    router = zmq_context().socket(zmq.ROUTER)
    router.linger = 0
    port = router.bind_to_random_port("tcp://127.0.0.1")
    stop = threading.Event()

    def serve() -> None:
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        while not stop.is_set():
            if poller.poll(20):
                while True:
                    try:
                        msg = router.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    router.send_multipart(msg)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{port}"
    finally:
        stop.set()
        thread.join()
        router.close()


@asynccontextmanager
async def trio_echo_router() -> AsyncIterator[str]:
    """A TrioSocket ROUTER in a task of this event loop that echoes every message."""
    with TrioSocket("ROUTER", linger=0) as router:
        url = router.bind("tcp://127.0.0.1:0")

        async def serve() -> None:
            while True:
                await router.send_multipart(await router.receive_multipart())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            yield url
            nursery.cancel_scope.cancel()


async def _round_trips(
    dealer: TrioSocket, *, senders: int, trips: int, batch_reader: bool | str
) -> None:
    """``senders`` tasks each do ``trips`` request/echo round trips through one DEALER.

    One reader task receives every echo and hands it to the sender it belongs to (with
    ``receive_batch()`` when ``batch_reader == "async"``).
    """
    inboxes = [trio.open_memory_channel[list[bytes]](1) for _ in range(senders)]

    async def reader() -> None:
        done = 0
        while done < senders * trips:
            if batch_reader == "async":
                batch = await dealer.receive_batch(7)
            elif batch_reader:
                batch = dealer.receive_batch_nowait()
                if not batch:
                    await dealer.wait_receivable()
                    continue
            else:
                batch = [await dealer.receive_multipart()]
            for frames in batch:
                data = _as_bytes(frames)
                inboxes[int(data[0])][0].send_nowait(data)
                done += 1

    async def sender(index: int) -> None:
        receive = inboxes[index][1]
        tag = str(index).encode()
        for seq in range(trips):
            payload = [tag, str(seq).encode(), b"x" * (seq % 300)]
            await dealer.send_multipart(payload)
            assert await receive.receive() == payload

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        for i in range(senders):
            nursery.start_soon(sender, i)


@pytest.mark.parametrize(
    "batch_reader", [True, False, "async"], ids=["batch", "single", "async-batch"]
)
async def test_stress_concurrent_senders_with_thread_peer(batch_reader: bool | str) -> None:
    """Several senders share a DEALER whose reader waits on the FD: no wake-up is ever lost.

    The peer runs in another thread so messages arrive at arbitrary moments relative to the
    senders' libzmq calls (which may consume the descriptor's edge).
    """
    with thread_echo_router() as url:
        for _ in range(3):
            with TrioSocket("DEALER", linger=0) as dealer:
                dealer.connect(url)
                with trio.fail_after(TIMEOUT):
                    await _round_trips(dealer, senders=4, trips=400, batch_reader=batch_reader)


@pytest.mark.parametrize("batch_reader", [True, "async"], ids=["batch", "async-batch"])
async def test_stress_concurrent_senders_with_trio_peer(batch_reader: bool | str) -> None:
    """The same with the echo peer in this event loop (sends from the loop's own tasks)."""
    async with trio_echo_router() as url:
        for _ in range(3):
            with TrioSocket("DEALER", linger=0) as dealer:
                dealer.connect(url)
                with trio.fail_after(TIMEOUT):
                    await _round_trips(dealer, senders=4, trips=400, batch_reader=batch_reader)


@pytest.mark.parametrize("call", ["get_option", "readiness"])
async def test_edge_consumed_by_another_call_still_wakes_the_reader(call: str) -> None:
    """Deterministic form of the lost wake-up: the reader waits on the descriptor, a message
    arrives, and libzmq processes it during another task's call on the socket (consuming the
    descriptor's edge) before the event loop polls. The reader must still wake up: the call
    re-reads EVENTS and wakes it. ``get_option`` goes the way of every send, receive and
    option call; ``readiness`` is the EVENTS read itself."""

    def receivable(sock: TrioSocket) -> bool:
        if call == "get_option":
            return bool(int(sock.get_option("EVENTS")) & zmq.POLLIN)
        return sock.readiness()[0]

    with thread_echo_router() as url, TrioSocket("DEALER", linger=0) as dealer:
        dealer.connect(url)
        received: list[list[bytes]] = []

        async def reader() -> None:
            received.append(_as_bytes(await dealer.receive_multipart()))

        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                await trio.testing.wait_all_tasks_blocked()
                dealer.send_multipart_nowait([b"ping"])
                # Without yielding, call into libzmq until it has taken in the echo: the call
                # that does so clears the descriptor's edge, so the event loop alone would
                # never wake the reader (which must end for the nursery to).
                deadline = time.monotonic() + TIMEOUT
                while not receivable(dealer):
                    assert time.monotonic() < deadline, "echo never arrived"
        assert received == [[b"ping"]]


async def test_receive_batch_never_trusts_a_stale_drained_state() -> None:
    """receive_batch() skips reading EVENTS before waiting when it last saw the socket
    drained. Any libzmq call since then (here a send, after libzmq took in a message and
    so cleared the descriptor) must make it look again instead of sleeping."""
    with thread_echo_router() as url, TrioSocket("DEALER", linger=0) as dealer:
        dealer.connect(url)
        with trio.fail_after(TIMEOUT):
            dealer.send_multipart_nowait([b"one"])
            assert [_as_bytes(f) for f in await dealer.receive_batch()] == [[b"one"]]
            dealer.send_multipart_nowait([b"two"])
            _spin_until_receivable(dealer)
            dealer.send_multipart_nowait([b"three"])
            got: list[list[bytes]] = []
            while len(got) < 2:
                got += [_as_bytes(f) for f in await dealer.receive_batch()]
        assert got == [[b"two"], [b"three"]]


async def test_receive_batch_is_a_checkpoint_and_respects_its_limit() -> None:
    with TrioSocket("PAIR", linger=0) as a, TrioSocket("PAIR", linger=0) as b:
        url = a.bind("tcp://127.0.0.1:0")
        b.connect(url)
        with trio.fail_after(TIMEOUT):
            for i in range(10):
                await b.send_multipart([str(i).encode(), b"x"])
            got: list[bytes] = []
            while len(got) < 10:
                batch = await a.receive_batch(3)
                assert 1 <= len(batch) <= 3
                got += [bytes(frames[0]) for frames in batch]
            assert got == [str(i).encode() for i in range(10)]
            await b.send_multipart([b"ready"])
            await trio.testing.wait_all_tasks_blocked()
            with trio.CancelScope() as scope:
                scope.cancel()
                with pytest.raises(trio.Cancelled):
                    await a.receive_batch()  # a message is ready: cancelled all the same
            assert [_as_bytes(f) for f in await a.receive_batch()] == [[b"ready"]]


async def test_a_receive_limit_is_asked_after_the_wait() -> None:
    """A reader whose room shrank while it slept (a receive hook, run by another task's call,
    took messages in) receives no more than the room left: ``limit`` as a function is asked
    after the wait, and at 0 nothing is taken; the messages left wake the next call."""
    peer = zmq_context().socket(zmq.PAIR)
    peer.linger = 0
    room = [3]
    hooked: list[list[bytes]] = []
    try:
        with TrioSocket("PAIR", linger=0) as sock:
            url = f"inproc://limit-after-wait-{id(sock)}"
            sock.bind(url)
            peer.connect(url)

            def hook() -> bool:
                batch = sock.receive_ready_nowait(room[0])
                hooked.extend(_as_bytes(f) for f in batch)
                room[0] -= len(batch)
                return sock.drained

            sock.set_receive_hook(hook)
            woken: list[list[list[bytes]]] = []

            async def reader() -> None:
                woken.append([_as_bytes(f) for f in await sock.receive_batch(lambda: room[0])])

            with trio.fail_after(TIMEOUT):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(reader)
                    await trio.testing.wait_all_tasks_blocked()
                    for i in range(5):  # inproc: all five are in the pipe when send returns
                        peer.send(str(i).encode())
                    # Another task's call: the hook takes three, the room is gone, and the
                    # reader is woken (the socket is not drained).
                    sock.readiness()
                assert hooked == [[b"0"], [b"1"], [b"2"]]
                assert woken == [[]]
                room[0] = 10
                got = [_as_bytes(f) for f in await sock.receive_batch(lambda: room[0])]
            assert got == [[b"3"], [b"4"]]
    finally:
        peer.close()


def _spin_until_receivable(sock: TrioSocket) -> None:
    """Let libzmq take in a message without yielding to Trio: ask the socket (an EVENTS read,
    which clears the descriptor's edge as any libzmq call might) until it has one."""
    deadline = time.monotonic() + TIMEOUT
    while not sock.readiness()[0]:
        assert time.monotonic() < deadline, "the message never arrived"
        time.sleep(0.0005)  # not a Trio yield: lets the echo thread have the GIL


async def test_receive_batch_woken_without_a_message_waits_again() -> None:
    """The descriptor also signals what is not a message (here a peer connecting). Woken,
    receive_batch() receives at once rather than reading EVENTS first; finding nothing
    (EAGAIN: the socket is drained) it waits again, and a later message still wakes it."""
    push = zmq_context().socket(zmq.PAIR)
    push.linger = 0
    try:
        with TrioSocket("PAIR", linger=0) as pull:
            url = pull.bind("tcp://127.0.0.1:0")
            got: list[list[bytes]] = []

            async def reader() -> None:
                got.extend(_as_bytes(f) for f in await pull.receive_batch())

            with trio.fail_after(TIMEOUT):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(reader)
                    await trio.testing.wait_all_tasks_blocked()
                    ops = pull._ops
                    push.connect(url)
                    # The connection wakes the reader, which looks and finds nothing.
                    await poll_until(lambda: pull._ops != ops)
                    await trio.testing.wait_all_tasks_blocked()
                    assert not got
                    push.send_multipart([b"after", b"the wake-up"])
            assert got == [[b"after", b"the wake-up"]]
    finally:
        push.close()


@pytest.mark.parametrize("outcome", ["drains", "declines", "raises"])
async def test_receive_hook_takes_ready_messages_before_waking_the_waiter(outcome: str) -> None:
    """A call that finds messages ready while another task waits for them runs the hook
    first; a hook that drains the socket leaves the waiter asleep, otherwise it is woken."""
    # The peer answers only when told to, from this thread: no reply can race into a call.
    peer = zmq_context().socket(zmq.ROUTER)
    peer.linger = 0
    port = peer.bind_to_random_port("tcp://127.0.0.1")
    with contextlib.closing(peer), TrioSocket("DEALER", linger=0) as dealer:
        dealer.connect(f"tcp://127.0.0.1:{port}")

        def peer_receives() -> list[bytes]:
            assert peer.poll(int(TIMEOUT * 1000)), "the peer never got the message"
            return peer.recv_multipart()

        hooked: list[list[bytes]] = []

        def hook() -> bool:
            if outcome == "raises":
                raise RuntimeError("a broken hook")
            if outcome == "declines":
                return False
            hooked.extend(_as_bytes(f) for f in dealer.receive_ready_nowait())
            return dealer.drained

        dealer.set_receive_hook(hook)
        waiter_got: list[list[bytes]] = []

        async def waiter() -> None:
            while True:
                waiter_got.extend(_as_bytes(f) for f in await dealer.receive_batch())

        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(waiter)
                await trio.testing.wait_all_tasks_blocked()
                dealer.send_multipart_nowait([b"hello"])
                identity, _ = peer_receives()
                peer.send_multipart([identity, b"ping"])
                # Without yielding: the call that finds "ping" ready (an EVENTS read) runs the
                # hook before it would wake the waiter.
                _spin_until_receivable(dealer)
                if outcome == "drains":
                    assert hooked == [[b"ping"]]
                    # Still asleep, and woken by the next arrival as usual.
                    dealer.set_receive_hook(None)
                    peer.send_multipart([identity, b"pong"])
                    _spin_until_receivable(dealer)  # the call that finds "pong" wakes the waiter
                else:
                    peer.send_multipart([identity, b"pong"])
                while len(waiter_got) + len(hooked) < 2:
                    await trio.testing.wait_all_tasks_blocked()
                nursery.cancel_scope.cancel()
        assert hooked + waiter_got == [[b"ping"], [b"pong"]]
        assert waiter_got == ([[b"pong"]] if outcome == "drains" else [[b"ping"], [b"pong"]])


async def test_multipart_round_trip_and_bind_port_zero() -> None:
    with TrioSocket("ROUTER", linger=0) as router, TrioSocket("DEALER", linger=0) as dealer:
        url = router.bind("tcp://127.0.0.1:0")
        assert url.startswith("tcp://127.0.0.1:") and not url.endswith(":0")
        dealer.set_identity(b"client-1")
        dealer.connect(url)
        with trio.fail_after(TIMEOUT):
            await dealer.send_multipart([b"a", b"", b"c" * 1000])
            assert _as_bytes(await router.receive_multipart()) == [
                b"client-1",
                b"a",
                b"",
                b"c" * 1000,
            ]
            await router.send_multipart([b"client-1", b"reply"])
            assert _as_bytes(await dealer.receive_multipart()) == [b"reply"]


async def test_batch_preserves_order() -> None:
    with TrioSocket("PAIR", linger=0) as a, TrioSocket("PAIR", linger=0) as b:
        url = a.bind("tcp://127.0.0.1:0")
        b.connect(url)
        with trio.fail_after(TIMEOUT):
            for i in range(500):
                await b.send_multipart([str(i).encode()])
            got: list[int] = []
            while len(got) < 500:
                batch = a.receive_batch_nowait(limit=64)
                assert len(batch) <= 64
                if not batch:
                    await a.wait_receivable()
                got.extend(int(bytes(m[0])) for m in batch)
        assert got == list(range(500))
        assert a.receive_batch_nowait() == []


async def test_large_frames_are_zero_copy_small_frames_are_bytes() -> None:
    with TrioSocket("PAIR", linger=0) as a, TrioSocket("PAIR", linger=0) as b:
        url = a.bind("tcp://127.0.0.1:0")
        b.connect(url)
        big = bytearray(os.urandom(ZERO_COPY_THRESHOLD * 4))
        with trio.fail_after(TIMEOUT):
            await b.send_multipart([b"small", memoryview(big)])
            first = await a.receive_multipart()
            # The first large frame is seen only after it is copied; later ones are not copied.
            await b.send_multipart([b"small", memoryview(big)])
            second = await a.receive_multipart()
        assert bytes(first[1]) == big and bytes(second[1]) == big
        assert isinstance(second[0], bytes)
        assert isinstance(second[1], memoryview)


async def test_every_kind_of_frame_is_sent_whole_and_a_str_frame_is_refused() -> None:
    with TrioSocket("PAIR", linger=0) as a, TrioSocket("PAIR", linger=0) as b:
        url = a.bind("tcp://127.0.0.1:0")
        b.connect(url)
        big = os.urandom(ZERO_COPY_THRESHOLD)
        frames: list[bytes | bytearray | memoryview] = [
            b"",
            b"bytes",
            bytearray(b"bytearray"),
            memoryview(b"view"),
            big,
        ]
        with trio.fail_after(TIMEOUT):
            await b.send_multipart(frames)
            assert _as_bytes(await a.receive_multipart()) == [bytes(f) for f in frames]
            with pytest.raises(TypeError):
                b.send_multipart_nowait(["text"])  # type: ignore[list-item]
            await b.send_multipart([b"after"])
            assert _as_bytes(await a.receive_multipart()) == [b"after"]


async def test_sender_parks_at_high_water_mark_until_peer_reads() -> None:
    ctx = zmq_context()
    peer = ctx.socket(zmq.PAIR)
    peer.rcvhwm = 1
    peer.linger = 0
    peer.bind("inproc://hwm-test")
    try:
        with TrioSocket("PAIR", linger=0) as sock:
            sock.set_option("SNDHWM", 1)
            sock.connect("inproc://hwm-test")
            sent = 0
            with pytest.raises(trio.WouldBlock):
                for _ in range(100):
                    sock.send_multipart_nowait([str(sent).encode()])
                    sent += 1
            assert 0 < sent < 100
            done = trio.Event()

            async def blocked_sender() -> None:
                await sock.send_multipart([b"last"])
                done.set()

            with trio.fail_after(TIMEOUT):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(blocked_sender)
                    await trio.testing.wait_all_tasks_blocked()
                    assert not done.is_set()
                    received = [peer.recv_multipart(zmq.NOBLOCK)]
                    # Reading on the peer's side frees room: the parked sender must wake.
                    await done.wait()
                    while len(received) < sent + 1:
                        received.append(peer.recv_multipart())
            assert received == [[str(i).encode()] for i in range(sent)] + [[b"last"]]
    finally:
        peer.close()


async def test_close_wakes_every_waiter_with_closed_resource_error() -> None:
    ctx = zmq_context()
    peer = ctx.socket(zmq.PAIR)
    peer.rcvhwm = 1
    peer.linger = 0
    peer.bind("inproc://close-test")
    try:
        sock = TrioSocket("PAIR", linger=0)
        sock.set_option("SNDHWM", 1)
        sock.connect("inproc://close-test")
        while True:
            try:
                sock.send_multipart_nowait([b"fill"])
            except trio.WouldBlock:
                break
        outcomes: list[str] = []

        async def waiter(op: str) -> None:
            try:
                if op == "send":
                    await sock.send_multipart([b"x"])
                else:
                    await sock.receive_multipart()
            except trio.ClosedResourceError:
                outcomes.append(op)

        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                # Two receivers (one waits on the descriptor, one parks) and a parked sender.
                for op in ("receive", "receive", "send"):
                    nursery.start_soon(waiter, op)
                await trio.testing.wait_all_tasks_blocked()
                sock.close()
                sock.close()  # idempotent
        assert sorted(outcomes) == ["receive", "receive", "send"]
        with pytest.raises(trio.ClosedResourceError):
            await sock.receive_multipart()
        with pytest.raises(trio.ClosedResourceError):
            await sock.send_multipart([b"x"])
        with pytest.raises(trio.ClosedResourceError):
            sock.receive_batch_nowait()
        await sock.aclose()
    finally:
        peer.close()


async def test_cancelled_receive_loses_no_message() -> None:
    with TrioSocket("PAIR", linger=0) as a, TrioSocket("PAIR", linger=0) as b:
        url = a.bind("tcp://127.0.0.1:0")
        b.connect(url)
        with trio.fail_after(TIMEOUT):
            # Cancelled while waiting.
            with trio.move_on_after(0.01):
                await a.receive_multipart()
            # Cancelled with a message ready: the cancellation wins, the message stays.
            await b.send_multipart([b"one"])
            while not a.readiness()[0]:
                await a.wait_receivable()
            with trio.CancelScope() as scope:
                scope.cancel()
                await a.receive_multipart()
            await b.send_multipart([b"two"])
            assert _as_bytes(await a.receive_multipart()) == [b"one"]
            assert _as_bytes(await a.receive_multipart()) == [b"two"]


async def test_zmq_errors_are_translated() -> None:
    with TrioSocket("REQ", linger=0) as req:
        req.connect("tcp://127.0.0.1:1")
        await req.send_multipart([b"ping"])
        # A REQ socket must receive before sending again (EFSM).
        with pytest.raises(trio.BrokenResourceError) as info:
            await req.send_multipart([b"again"])
        assert isinstance(info.value.__cause__, zmq.ZMQError)
    with TrioSocket("DEALER", linger=0) as dealer:
        with pytest.raises(trio.BrokenResourceError):
            dealer.connect("not-a-url")
        with pytest.raises(ValueError, match="unknown ZeroMQ socket option"):
            dealer.set_option("NO_SUCH_OPTION", 1)
        with pytest.raises(ValueError, match="at least one frame"):
            dealer.send_multipart_nowait([])
        assert dealer.get_option("LINGER") == 0
    assert "closed" in repr(dealer)
    with pytest.raises(trio.ClosedResourceError):
        dealer.connect("tcp://127.0.0.1:1")


async def test_curve_round_trip() -> None:
    if not has_curve():
        with pytest.raises(EncryptionUnavailable):
            curve_keypair()
        return
    server_public, server_secret = curve_keypair()
    client_public, client_secret = curve_keypair()
    assert curve_public(server_secret) == server_public
    with pytest.raises(ValueError):
        curve_public("too short")
    with TrioSocket("ROUTER", linger=0) as router, TrioSocket("DEALER", linger=0) as dealer:
        router.set_curve_server(server_secret)
        url = router.bind("tcp://127.0.0.1:0")
        dealer.set_curve_client(server_public, public_key=client_public, secret_key=client_secret)
        dealer.connect(url)
        with trio.fail_after(TIMEOUT):
            await dealer.send_multipart([b"secret"])
            frames = _as_bytes(await router.receive_multipart())
        assert frames[1:] == [b"secret"]


async def test_ipc_transport(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(os.fspath(tmp_path), "sock")
    with TrioSocket("PAIR", linger=0) as a, TrioSocket("PAIR", linger=0) as b:
        a.bind(f"ipc://{path}")
        b.connect(f"ipc://{path}")
        with trio.fail_after(TIMEOUT):
            await b.send_multipart([b"over", b"ipc"])
            assert _as_bytes(await a.receive_multipart()) == [b"over", b"ipc"]


def test_shared_context_and_version() -> None:
    assert zmq_context() is zmq_context()
    assert "libzmq" in zmq_version()


async def test_several_receivers_share_a_socket() -> None:
    """Receivers that park behind the descriptor waiter take over when it leaves."""
    with TrioSocket("PAIR", linger=0) as a, TrioSocket("PAIR", linger=0) as b:
        url = a.bind("tcp://127.0.0.1:0")
        b.connect(url)
        got: list[int] = []

        async def receiver() -> None:
            while True:
                frames = await a.receive_multipart()
                if frames[0] == b"stop":
                    return
                got.append(int(bytes(frames[0])))

        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(receiver)
                for i in range(3000):
                    await b.send_multipart([str(i).encode()])
                    if i % 7 == 0:
                        await trio.testing.wait_all_tasks_blocked()
                for _ in range(3):
                    await b.send_multipart([b"stop"])
        assert sorted(got) == list(range(3000))


async def test_parked_receiver_takes_over_when_the_descriptor_waiter_is_cancelled() -> None:
    with TrioSocket("PAIR", linger=0) as a, TrioSocket("PAIR", linger=0) as b:
        url = a.bind("tcp://127.0.0.1:0")
        b.connect(url)
        got: list[list[bytes]] = []

        async def receive_one() -> None:
            got.append(_as_bytes(await a.receive_multipart()))

        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                first = trio.CancelScope()

                async def first_receiver() -> None:
                    with first:
                        await receive_one()

                nursery.start_soon(first_receiver)
                await trio.testing.wait_all_tasks_blocked()  # it waits on the descriptor
                nursery.start_soon(receive_one)
                await trio.testing.wait_all_tasks_blocked()  # this one parks behind it
                first.cancel()
                await trio.testing.wait_all_tasks_blocked()
                await b.send_multipart([b"for the second"])
        assert got == [[b"for the second"]]


async def test_monitor_reports_handshake_and_disconnect_and_closes_with_its_socket() -> None:
    with TrioSocket("DEALER", linger=0) as dealer:
        monitor = dealer.open_monitor()
        with pytest.raises(RuntimeError, match="already monitored"):
            dealer.open_monitor()
        with trio.fail_after(TIMEOUT):
            with TrioSocket("ROUTER", linger=0) as router:
                url = router.bind("tcp://127.0.0.1:0")
                dealer.connect(url)
                names = []
                while "handshake_succeeded" not in names:
                    event = await monitor.receive()
                    names.append(event.name)
                    assert event.endpoint == url
                assert names == ["connected", "handshake_succeeded"]
            # The peer went away.
            assert (await monitor.receive()).name == "disconnected"
    # Closing the monitored socket stops and closes its monitor (in the order libzmq needs).
    with pytest.raises(trio.ClosedResourceError):
        await monitor.receive()
    monitor.close()  # idempotent


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
async def test_monitored_sockets_leave_no_descriptor_behind() -> None:
    """libzmq leaks descriptors (or hangs its I/O thread) unless a monitor is disabled
    before its sockets close: whichever side the caller closes first does it right."""
    with TrioSocket("DEALER", linger=0) as warm:
        warm.open_monitor()
    before = _open_fds()
    for i in range(100):
        sock = TrioSocket("DEALER", linger=0)
        monitor = sock.open_monitor()
        sock.connect("tcp://127.0.0.1:9")
        if i % 2:
            monitor.close()
        sock.close()
        monitor.close()
    with trio.fail_after(TIMEOUT):
        while _open_fds() > before + 5:  # noqa: ASYNC110 - libzmq's reaper frees them
            await trio.sleep(0.01)


async def test_sends_that_do_not_wait_yield_every_few_calls_and_are_cancel_points() -> None:
    from trio_enchannel._util import SCHEDULE_EVERY

    n = SCHEDULE_EVERY * 5
    with TrioSocket("PAIR", linger=0) as a, TrioSocket("PAIR", linger=0) as b:
        b.connect(a.bind("tcp://127.0.0.1:0"))
        with trio.fail_after(TIMEOUT):
            numbers = iter(range(n))

            async def send_next() -> None:
                await b.send_multipart([str(next(numbers)).encode()])

            await assert_yields_every_few_calls(send_next, n, SCHEDULE_EVERY)
            with trio.CancelScope() as scope:
                scope.cancel()
                with pytest.raises(trio.Cancelled):
                    await b.send_multipart([b"never"])
            await b.send_multipart([b"last"])
            got = [bytes(f[0]) for f in [await a.receive_multipart() for _ in range(n + 1)]]
            assert got == [str(i).encode() for i in range(n)] + [b"last"]  # "never" never sent
