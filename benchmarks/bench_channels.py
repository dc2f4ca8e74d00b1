"""Channel throughput: trio-enchannel vs jupyter_client vs raw pyzmq, same run, same peer.

One peer process (``benchmarks/_peer.py``: raw pyzmq, signs with the connection key) serves
every client. Measurements:

* iopub ingestion: the peer queues N signed 600-byte ``stream`` messages, then the client
  times receiving all of them (receive + verify + decode; raw pyzmq only receives). Before
  that the client waits until its subscription is live: it repeats a sync request on shell,
  for which the peer publishes a probe on iopub, until a probe arrives (slow joiners);
* shell round trips, one in flight and 100 in flight (a sliding window), of an
  ``execute_request``-shaped message that the peer echoes;
* a 64 MiB buffer round trip on a fresh connection (the peer echoes the buffer without
  copying).

Clients: trio-enchannel (``open_channels`` under Trio), jupyter_client (``AsyncKernelClient``
under asyncio, in this process), raw pyzmq (blocking, pre-built frames: the floor) and, as a
diagnostic, blocking pyzmq with trio-enchannel's ``Session`` doing the protocol work (the
codec floor: what any signing, verifying client pays before any event loop); raw frames waited
for the Trio way by one task without any codec (the Trio floor: what the event loop alone
costs); and that one Trio task with our codec (the ceiling of any Trio client doing the
protocol work, with no reader tasks or channels).

The machine is small and shared, so every sample is short, the clients take turns for each
measurement (in a rotating order) with a fresh connection each, and the tables give the best
sample of each client, the median of the ratios within each round, and the client-process CPU
time per operation (much less sensitive to other load than wall-clock rates).

    python -m benchmarks channels
    BENCH_QUICK=1 python -m benchmarks channels    # one short round (smoke test)
    BENCH_ROUNDS=9 python -m benchmarks channels
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import gc
import hashlib
import hmac
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trio
import zmq
from jupyter_client.asynchronous.client import AsyncKernelClient

from trio_enchannel import Session, open_channels

from ._peer import FLOOD_MESSAGE_SIZE
from ._util import table

QUICK = bool(os.environ.get("BENCH_QUICK"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 1 if QUICK else 5))
N_FLOOD = 2_000 if QUICK else 20_000
N_RTT1 = 200 if QUICK else 2_000
N_RTT_WINDOW = 1_000 if QUICK else 5_000
WINDOW = 100
BIG = 64 * 1024 * 1024
N_BIG = 1  # one round trip per fresh connection: a copy of the first large buffer shows
TIMEOUT = 60.0
ZERO_COPY_MIN = 65536

EXECUTE: dict[str, Any] = {
    "code": "x = 1",
    "silent": False,
    "store_history": True,
    "user_expressions": {},
    "allow_stdin": False,
    "stop_on_error": True,
}

#: measurement -> (label, unit of the CPU column)
METRICS: dict[str, tuple[str, str]] = {
    "iopub": ("iopub ingestion (msg/s)", "us/msg"),
    "rtt1": ("shell round trips, 1 in flight (/s)", "us/rt"),
    "rtt100": (f"shell round trips, {WINDOW} in flight (/s)", "us/rt"),
    "big": ("64 MiB buffer round trip (MiB/s)", "ms/rt"),
}

#: (minimum ours/jupyter_client, minimum ours/raw pyzmq) per measurement (issue #3).
TARGETS: dict[str, tuple[float | None, float]] = {
    "iopub": (4.0, 0.40),
    "rtt1": (1.5, 0.75),
    "rtt100": (1.5, 0.75),
    "big": (None, 0.80),
}

OURS, JC, RAW, CODEC = "trio-enchannel", "jupyter_client", "raw pyzmq", "pyzmq + our codec"
TRIO = "pyzmq over Trio"
TRIO_CODEC = "Trio + our codec"

#: One sample: (rate, CPU time of this process per operation in the metric's CPU unit).
Sample = tuple[float, float]
Info = dict[str, Any]


class Clock:
    """Wall and process CPU time over ``n`` operations."""

    def __init__(self) -> None:
        gc.collect()
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def stop(self, n: int, *, scale: float = 1e6) -> Sample:
        wall = time.perf_counter() - self.wall
        cpu = time.process_time() - self.cpu
        return n / wall, cpu / n * scale


def _big_sample(fastest: float, cpu: float) -> Sample:
    return 2 * BIG / (1 << 20) / fastest, cpu * 1e3


# ---------------------------------------------------------------------------------------------
# The peer process


@contextmanager
def peer_process() -> Iterator[Info]:
    """Start ``benchmarks._peer``; yield its connection info; stop it on exit."""
    key = uuid.uuid4().hex
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks._peer"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(json.dumps({"key": key, "signature_scheme": "hmac-sha256"}) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the benchmark peer exited before reporting its ports")
        yield json.loads(line)
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------------------------
# Blocking pyzmq: raw (no protocol work) and with our codec


class RawSigner:
    """Just enough of the protocol to build signed requests for the raw client."""

    def __init__(self, key: str) -> None:
        self.key = key.encode()
        self.session = uuid.uuid4().hex
        self.counter = 0

    def request(self, msg_type: str, content: dict[str, Any]) -> list[bytes]:
        self.counter += 1
        header = json.dumps(
            {
                "msg_id": f"{self.session}_{self.counter}",
                "msg_type": msg_type,
                "username": "bench",
                "session": self.session,
                "date": _dt.datetime.now(_dt.timezone.utc).isoformat().replace("+00:00", "Z"),
                "version": "5.5",
            }
        ).encode()
        parts = [header, b"{}", b"{}", json.dumps(content).encode()]
        mac = hmac.new(self.key, digestmod=hashlib.sha256)
        for part in parts:
            mac.update(part)
        return [b"<IDS|MSG>", mac.hexdigest().encode(), *parts]


def _run_blocking(info: Info, metric: str, session: Session | None) -> Sample:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    shell = ctx.socket(zmq.DEALER)
    shell.linger = 0
    shell.rcvtimeo = int(TIMEOUT * 1000)
    shell.connect(f"tcp://127.0.0.1:{info['shell_port']}")
    signer = RawSigner(info["key"])
    try:
        if metric == "iopub":
            return _blocking_iopub(ctx, shell, signer, info, session)
        if metric == "big":
            return _blocking_big(shell, signer, session)
        request: Callable[[], object]
        receive: Callable[[], object]
        if session is None:
            frames = signer.request("execute_request", EXECUTE)

            def request() -> None:
                shell.send_multipart(frames)

            receive = shell.recv_multipart
        else:
            codec = session

            def request() -> None:
                shell.send_multipart(codec.serialize(codec.message("execute_request", EXECUTE)))

            def receive() -> object:
                return codec.deserialize(shell.recv_multipart())

        if metric == "rtt1":
            clock = Clock()
            for _ in range(N_RTT1):
                request()
                receive()
            return clock.stop(N_RTT1)
        clock = Clock()
        for _ in range(WINDOW):
            request()
        for i in range(N_RTT_WINDOW):
            receive()
            if i + WINDOW < N_RTT_WINDOW:
                request()
        return clock.stop(N_RTT_WINDOW)
    finally:
        ctx.destroy(linger=0)


def _blocking_iopub(
    ctx: zmq.Context[zmq.Socket[bytes]],
    shell: zmq.Socket[bytes],
    signer: RawSigner,
    info: Info,
    session: Session | None,
) -> Sample:
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.rcvtimeo = int(TIMEOUT * 1000)
    sub.connect(f"tcp://127.0.0.1:{info['iopub_port']}")
    sub.subscribe(b"")
    # Wait until the subscription is live, then drain to a known point.
    sent = 0
    while True:
        shell.send_multipart(signer.request("bench_sync_request", {"token": f"s{sent}"}))
        sent += 1
        if sub.poll(50):
            break
    shell.send_multipart(signer.request("bench_sync_request", {"token": "final"}))
    sent += 1
    while not (
        (frames := sub.recv_multipart())[0] == b"probe"
        and json.loads(frames[-1])["token"] == "final"
    ):
        pass
    for _ in range(sent):
        shell.recv_multipart()
    shell.send_multipart(signer.request("bench_flood_request", {"n": N_FLOOD}))
    shell.recv_multipart()
    recv = sub.recv_multipart
    if session is None:
        clock = Clock()
        for _ in range(N_FLOOD):
            recv()
        return clock.stop(N_FLOOD)
    deserialize = session.deserialize
    clock = Clock()
    for _ in range(N_FLOOD):
        deserialize(recv())
    return clock.stop(N_FLOOD)


def _blocking_big(shell: zmq.Socket[bytes], signer: RawSigner, session: Session | None) -> Sample:
    payload = os.urandom(BIG)
    fastest = float("inf")
    cpu = float("inf")
    for _ in range(N_BIG):
        clock = Clock()
        if session is None:
            shell.send_multipart([*signer.request("echo_request", {}), payload], copy=False)
            reply = shell.recv_multipart(copy=False)
            size = len(reply[-1])
        else:
            message = session.message("echo_request", {}, buffers=[payload])
            shell.send_multipart(session.serialize(message), copy=False)
            parts = shell.recv_multipart(copy=False)
            frames = [p.bytes if len(p) < ZERO_COPY_MIN else p.buffer for p in parts]
            size = len(session.deserialize(frames).buffers[0])
        fastest = min(fastest, time.perf_counter() - clock.wall)
        cpu = min(cpu, time.process_time() - clock.cpu)
        assert size == BIG
    return _big_sample(fastest, cpu)


def run_raw(info: Info, metric: str) -> Sample:
    """The floor: blocking pyzmq, pre-built request frames, no verification or decoding."""
    return _run_blocking(info, metric, None)


def run_codec(info: Info, metric: str) -> Sample:
    """Diagnostic: blocking pyzmq plus trio-enchannel's Session (build, sign, verify, decode).

    The gap between this and raw pyzmq is the codec; between this and trio-enchannel, the
    Trio I/O layer (adapter, reader tasks, hand-over through memory channels).
    """
    return _run_blocking(info, metric, Session(info["key"]))


# ---------------------------------------------------------------------------------------------
# Diagnostic: raw pyzmq frames over Trio (no codec, no tasks): the Trio floor


class _TrioRaw:
    """A zmq socket read by one Trio task, as leanly as the wake-up rule allows.

    The descriptor says only that ``EVENTS`` may have changed, and any libzmq call may
    consume its edge, so before sleeping on it the task must know the socket is drained:
    from ``EAGAIN`` or from ``EVENTS`` without ``POLLIN``. The lean way pays neither an
    exception nor an ``EVENTS`` read per message where it can avoid it: after a wake-up it
    receives at once (the wake-up usually means a message); after a message it asks
    ``EVENTS`` for the next few (cheaper than an empty read's exception), and in a long run
    it receives until ``EAGAIN`` (one exception per run). Frames are received without
    copying and copied to ``bytes`` when small: ``Frame.more`` instead of a ``RCVMORE``
    read per frame (what ``recv_multipart`` does); they are sent one by one with pyzmq's
    Cython send (``send_multipart`` pays a Python wrapper per frame).
    """

    def __init__(self, sock: zmq.Socket[bytes]) -> None:
        self.sock = sock
        self.fd = int(sock.getsockopt(zmq.FD))
        self.run = 0  # messages received since the last wake-up

    def send(self, frames: list[bytes], *, copy: bool = True) -> None:
        # Frame by frame with pyzmq's Cython send, as trio-enchannel sends: send_multipart
        # (and zmq.Socket.send, a Python wrapper for the draft socket types) costs about
        # 1 us more per frame, which a floor must not pay.
        sock, send, last = self.sock, _backend_send, len(frames) - 1
        for i, frame in enumerate(frames):
            send(sock, frame, _NOBLOCK if i == last else _NOBLOCK_MORE, copy)

    def _frames(self, copy: bool) -> list[Any]:
        recv = self.sock.recv
        frames: list[Any] = []
        more = True
        while more:
            part = recv(_NOBLOCK, copy=False)
            more = part.more
            frames.append(part.bytes if copy or len(part) < ZERO_COPY_MIN else part.buffer)
        return frames

    async def recv(self, *, copy: bool = True) -> list[Any]:
        while True:
            if self.run == 0 or self.run > _PROBES or int(self.sock.get(_EVENTS)) & _POLLIN:
                try:
                    frames = self._frames(copy)
                except zmq.Again:
                    pass
                else:
                    self.run += 1
                    return frames
            self.run = 0
            await trio.lowlevel.wait_readable(self.fd)


_NOBLOCK, _EVENTS, _POLLIN = int(zmq.NOBLOCK), int(zmq.EVENTS), int(zmq.POLLIN)
_NOBLOCK_MORE = _NOBLOCK | int(zmq.SNDMORE)
_backend_send: Callable[..., object] = zmq.backend.Socket.send
#: How many messages after a wake-up are followed by an EVENTS read rather than a receive.
_PROBES = 4


async def _run_trio_floor(info: Info, metric: str, session: Session | None) -> Sample:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    raw_shell = ctx.socket(zmq.DEALER)
    raw_shell.linger = 0
    raw_shell.connect(f"tcp://127.0.0.1:{info['shell_port']}")
    shell = _TrioRaw(raw_shell)
    signer = RawSigner(info["key"])
    try:
        with trio.fail_after(TIMEOUT * 2):
            if metric == "iopub":
                raw_sub = ctx.socket(zmq.SUB)
                raw_sub.linger = 0
                raw_sub.connect(f"tcp://127.0.0.1:{info['iopub_port']}")
                raw_sub.subscribe(b"")
                sub = _TrioRaw(raw_sub)
                sent = 0
                while True:
                    shell.send(signer.request("bench_sync_request", {"token": f"s{sent}"}))
                    sent += 1
                    with trio.move_on_after(0.05):
                        await sub.recv()
                        break
                shell.send(signer.request("bench_sync_request", {"token": "final"}))
                sent += 1
                while not (
                    (frames := await sub.recv())[0] == b"probe"
                    and json.loads(frames[-1])["token"] == "final"
                ):
                    pass
                for _ in range(sent):
                    await shell.recv()
                shell.send(signer.request("bench_flood_request", {"n": N_FLOOD}))
                await shell.recv()
                clock = Clock()
                if session is None:
                    for _ in range(N_FLOOD):
                        await sub.recv()
                else:
                    for _ in range(N_FLOOD):
                        session.deserialize(await sub.recv())
                return clock.stop(N_FLOOD)
            if metric == "big":
                payload = os.urandom(BIG)
                clock = Clock()
                if session is None:
                    shell.send([*signer.request("echo_request", {}), payload], copy=False)
                    size = len((await shell.recv(copy=False))[-1])
                else:
                    message = session.message("echo_request", {}, buffers=[payload])
                    shell.send(session.serialize(message), copy=False)  # type: ignore[arg-type]
                    frames = await shell.recv(copy=False)
                    size = len(session.deserialize(frames).buffers[0])
                sample = _big_sample(
                    time.perf_counter() - clock.wall, time.process_time() - clock.cpu
                )
                assert size == BIG
                return sample
            request: Callable[[], object]
            if session is None:
                frames = signer.request("execute_request", EXECUTE)

                def request() -> None:
                    shell.send(frames)

                async def receive() -> object:
                    return await shell.recv()
            else:
                codec = session

                def request() -> None:
                    message = codec.message("execute_request", EXECUTE)
                    shell.send(codec.serialize(message))  # type: ignore[arg-type]

                async def receive() -> object:
                    return codec.deserialize(await shell.recv())

            if metric == "rtt1":
                clock = Clock()
                for _ in range(N_RTT1):
                    request()
                    await receive()
                return clock.stop(N_RTT1)
            clock = Clock()
            for _ in range(WINDOW):
                request()
            for i in range(N_RTT_WINDOW):
                await receive()
                if i + WINDOW < N_RTT_WINDOW:
                    request()
            return clock.stop(N_RTT_WINDOW)
    finally:
        ctx.destroy(linger=0)


def run_trio_floor(info: Info, metric: str) -> Sample:
    """Diagnostic: raw pre-built frames, but waiting the Trio way (the zmq descriptor in
    ``trio.lowlevel.wait_readable``), one task, no codec: what the event loop alone costs."""
    return trio.run(_run_trio_floor, info, metric, None)


def run_trio_codec(info: Info, metric: str) -> Sample:
    """Diagnostic: the Trio floor plus trio-enchannel's Session doing the protocol work, in
    the one task that sends and receives (no reader tasks, no channels, no bookkeeping): the
    ceiling of any Trio client that builds, signs, verifies and decodes every message."""
    return trio.run(_run_trio_floor, info, metric, Session(info["key"]))


# ---------------------------------------------------------------------------------------------
# jupyter_client: AsyncKernelClient under asyncio, used the way its users use it


async def _run_jc(info: Info, metric: str) -> Sample:
    kc = AsyncKernelClient()
    kc.load_connection_info(info)  # type: ignore[arg-type]
    kc.start_channels(shell=True, iopub=metric == "iopub", stdin=False, hb=False, control=False)
    try:
        session, shell = kc.session, kc.shell_channel

        def request(msg_type: str, content: dict[str, Any]) -> None:
            shell.send(session.msg(msg_type, content))

        if metric == "iopub":
            sent = 0
            while True:
                request("bench_sync_request", {"token": f"s{sent}"})
                sent += 1
                if await kc.iopub_channel.socket.poll(50):
                    break
            request("bench_sync_request", {"token": "final"})
            sent += 1
            while True:
                msg = await kc.get_iopub_msg(timeout=TIMEOUT)
                if msg["msg_type"] == "bench_probe" and msg["content"]["token"] == "final":
                    break
            for _ in range(sent):
                await kc.get_shell_msg(timeout=TIMEOUT)
            request("bench_flood_request", {"n": N_FLOOD})
            await kc.get_shell_msg(timeout=TIMEOUT)
            clock = Clock()
            for _ in range(N_FLOOD):
                await kc.get_iopub_msg(timeout=TIMEOUT)
            return clock.stop(N_FLOOD)

        if metric == "rtt1":
            clock = Clock()
            for _ in range(N_RTT1):
                request("execute_request", EXECUTE)
                await kc.get_shell_msg(timeout=TIMEOUT)
            return clock.stop(N_RTT1)

        if metric == "rtt100":
            clock = Clock()
            for _ in range(WINDOW):
                request("execute_request", EXECUTE)
            for i in range(N_RTT_WINDOW):
                await kc.get_shell_msg(timeout=TIMEOUT)
                if i + WINDOW < N_RTT_WINDOW:
                    request("execute_request", EXECUTE)
            return clock.stop(N_RTT_WINDOW)

        payload = os.urandom(BIG)
        fastest = float("inf")
        cpu = float("inf")
        for _ in range(N_BIG):
            clock = Clock()
            msg = session.msg("echo_request", {})
            msg["buffers"] = [payload]
            shell.send(msg)
            reply = await kc.get_shell_msg(timeout=TIMEOUT)
            fastest = min(fastest, time.perf_counter() - clock.wall)
            cpu = min(cpu, time.process_time() - clock.cpu)
            assert len(reply["buffers"][0]) == BIG
        return _big_sample(fastest, cpu)
    finally:
        kc.stop_channels()


def run_jc(info: Info, metric: str) -> Sample:
    """jupyter_client's AsyncKernelClient in a fresh asyncio loop."""
    return asyncio.run(_run_jc(info, metric))


# ---------------------------------------------------------------------------------------------
# trio-enchannel: open_channels under Trio, used the way its users use it


async def sync_iopub(ch: Any) -> None:
    """Make sure ``ch``'s IOPub subscription is live and drained: sync requests until one
    probe comes back, then one final probe read to the end (so nothing earlier is queued),
    and every sync reply read from shell."""
    session, shell, iopub = ch.session, ch.shell, ch.iopub

    async def request(token: str) -> None:
        await shell.send(session.message("bench_sync_request", {"token": token}, channel="shell"))

    sent = 0
    while True:
        await request(f"s{sent}")
        sent += 1
        with trio.move_on_after(0.05):
            await iopub.receive()
            break
    await request("final")
    sent += 1
    while True:
        msg = await iopub.receive()
        if msg.msg_type == "bench_probe" and msg.content["token"] == "final":
            break
    for _ in range(sent):
        await shell.receive()


async def _run_ours(info: Info, metric: str) -> Sample:
    # "wait": lossless flow control, as the peer never drops (the default "drop" would
    # discard what does not fit in the IOPub buffer while the flood waits to be read). The
    # buffer keeps its former size: the reader decodes that many messages before the clock
    # starts (the 10,000 of the default would be half the flood).
    async with open_channels(
        info, heartbeat=False, iopub_overflow="wait", iopub_buffer_size=1000
    ) as ch:
        session, shell, iopub = ch.session, ch.shell, ch.iopub

        async def request(msg_type: str, content: dict[str, Any]) -> None:
            await shell.send(session.message(msg_type, content, channel="shell"))

        with trio.fail_after(TIMEOUT * 2):
            if metric == "iopub":
                await sync_iopub(ch)
                await request("bench_flood_request", {"n": N_FLOOD})
                await shell.receive()
                receive = iopub.receive
                clock = Clock()
                for _ in range(N_FLOOD):
                    await receive()
                return clock.stop(N_FLOOD)

            if metric == "rtt1":
                clock = Clock()
                for _ in range(N_RTT1):
                    await request("execute_request", EXECUTE)
                    await shell.receive()
                return clock.stop(N_RTT1)

            if metric == "rtt100":
                clock = Clock()
                for _ in range(WINDOW):
                    await request("execute_request", EXECUTE)
                for i in range(N_RTT_WINDOW):
                    await shell.receive()
                    if i + WINDOW < N_RTT_WINDOW:
                        await request("execute_request", EXECUTE)
                return clock.stop(N_RTT_WINDOW)

            payload = os.urandom(BIG)
            fastest = float("inf")
            cpu = float("inf")
            for _ in range(N_BIG):
                clock = Clock()
                await shell.send(
                    session.message("echo_request", {}, buffers=[payload], channel="shell")
                )
                reply = await shell.receive()
                fastest = min(fastest, time.perf_counter() - clock.wall)
                cpu = min(cpu, time.process_time() - clock.cpu)
                assert len(reply.buffers[0]) == BIG
            return _big_sample(fastest, cpu)


def run_ours(info: Info, metric: str) -> Sample:
    """trio-enchannel's open_channels in a fresh Trio run."""
    return trio.run(_run_ours, info, metric)


# ---------------------------------------------------------------------------------------------
# The driver

CLIENTS: dict[str, Callable[[Info, str], Sample]] = {
    OURS: run_ours,
    JC: run_jc,
    RAW: run_raw,
    CODEC: run_codec,
    TRIO: run_trio_floor,
    TRIO_CODEC: run_trio_codec,
}

#: The diagnostic clients, and what their rate over raw pyzmq is called in the tables.
DIAGNOSTICS = {CODEC: "codec floor", TRIO: "Trio floor", TRIO_CODEC: "Trio + codec"}

#: client -> metric -> samples
Samples = dict[str, dict[str, list[Sample]]]


def machine() -> str:
    """One line describing where the numbers come from."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    from jupyter_client import _version as jc_version

    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, libzmq {zmq.zmq_version()}, "
        f"pyzmq {zmq.__version__}, jupyter_client {jc_version.__version__}"
    )


def run() -> Samples:
    """Every measurement ROUNDS times; the clients take turns (rotating order) each time."""
    samples: Samples = {name: {metric: [] for metric in METRICS} for name in CLIENTS}
    names = list(CLIENTS)
    with peer_process() as info:
        for round_ in range(ROUNDS):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for metric in METRICS:
                for name in order:
                    samples[name][metric].append(CLIENTS[name](info, metric))
    return samples


def _target(metric: str) -> str:
    vs_jc, vs_raw = TARGETS[metric]
    parts = [] if vs_jc is None else [f">= {vs_jc:g}x"]
    parts.append(f">= {vs_raw:.0%}")
    return ", ".join(parts)


def _met(metric: str, ratio_jc: float, ratio_raw: float) -> str:
    vs_jc, vs_raw = TARGETS[metric]
    ok = ratio_raw >= vs_raw and (vs_jc is None or ratio_jc >= vs_jc)
    return "yes" if ok else "NO"


def _range(values: list[float], fmt: str) -> str:
    return f"{format(min(values), fmt)} - {format(max(values), fmt)}"


def report(samples: Samples) -> list[str]:
    """Three tables: best rates and ratios; per-round ratios; CPU time per operation."""
    rates = {n: {m: [s[0] for s in v] for m, v in per.items()} for n, per in samples.items()}
    cpus = {n: {m: [s[1] for s in v] for m, v in per.items()} for n, per in samples.items()}
    best_rows: list[list[object]] = []
    round_rows: list[list[object]] = []
    cpu_rows: list[list[object]] = []
    for metric, (label, cpu_unit) in METRICS.items():
        best = {name: max(rates[name][metric]) for name in CLIENTS}
        vs_jc, vs_raw = best[OURS] / best[JC], best[OURS] / best[RAW]
        best_rows.append(
            [
                label,
                *best.values(),
                f"{vs_jc:.2f}x",
                f"{vs_raw:.0%}",
                _target(metric),
                _met(metric, vs_jc, vs_raw),
            ]
        )

        def per_round(name: str, over: str, metric: str = metric) -> list[float]:
            """``name``'s rate over ``over``'s, round by round."""
            return [a / b for a, b in zip(rates[name][metric], rates[over][metric], strict=True)]

        r_jc, r_raw = per_round(OURS, JC), per_round(OURS, RAW)
        round_rows.append(
            [
                label,
                f"{statistics.median(r_jc):.2f}x",
                f"{statistics.median(r_raw):.0%}",
                _range(r_jc, ".2f"),
                _range(r_raw, ".0%"),
                *(f"{statistics.median(per_round(n, RAW)):.0%}" for n in DIAGNOSTICS),
            ]
        )
        med = {name: statistics.median(cpus[name][metric]) for name in CLIENTS}
        cpu_rows.append(
            [
                f"{label.split(' (')[0]} ({cpu_unit})",
                *med.values(),
                f"{med[JC] / med[OURS]:.2f}x",
                f"{med[RAW] / med[OURS]:.0%}",
            ]
        )
    return [
        table(
            f"Channels: best of {ROUNDS} samples per client, one peer process",
            ["measurement", *CLIENTS, "vs jupyter_client", "vs raw", "target", "met"],
            best_rows,
        ),
        table(
            f"Ratios within each round: median and range over {ROUNDS} rounds",
            [
                "measurement",
                "vs jupyter_client",
                "vs raw",
                "range vs jupyter_client",
                "range vs raw",
                *(f"{DIAGNOSTICS[n]} vs raw" for n in DIAGNOSTICS),
            ],
            round_rows,
        ),
        table(
            "Client CPU time per operation (median; peer excluded; lower is better)",
            ["measurement", *CLIENTS, "jupyter_client / ours", "raw / ours"],
            cpu_rows,
        ),
    ]


def main() -> None:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    started = time.perf_counter()
    samples = run()
    tables = report(samples)
    heading = (
        f"{stamp}; {machine()}\n"
        f"per sample: {N_FLOOD} iopub messages of {FLOOD_MESSAGE_SIZE} B, {N_RTT1} and "
        f"{N_RTT_WINDOW} round trips, {N_BIG} x 64 MiB; "
        f"{ROUNDS} rounds in {time.perf_counter() - started:.0f} s; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    text = "\n\n".join([heading, *tables])
    print(text)
    if QUICK:
        return
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "channels.txt").write_text(text + "\n")
    (out / "channels.json").write_text(
        json.dumps(
            {"date": stamp, "machine": machine(), "rounds": ROUNDS, "samples": samples},
            indent=1,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
