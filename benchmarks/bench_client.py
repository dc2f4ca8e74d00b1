"""The client users call: ``KernelClient.request`` vs jupyter_client vs raw pyzmq, same run.

One peer process (``benchmarks/_peer.py``, raw pyzmq) serves every client; the clients take
turns for each measurement (rotating order), each with a fresh connection. Measurements:

* request round trips, one in flight: ``await client.request(msg)`` in a loop (jupyter_client:
  ``shell_channel.send`` then ``get_shell_msg``, what its blocking helpers do; raw pyzmq:
  blocking send and ``recv_multipart`` of pre-built frames, the floor);
* request round trips, 100 tasks in flight: 100 tasks each awaiting ``client.request`` in a
  loop (jupyter_client: a sliding window of 100 requests in one task, its best case, since
  its zmq.asyncio channels lose wake-ups when several tasks send and receive on one socket;
  raw pyzmq: a blocking sliding window of 100);
* a 10 MB JSON content round trip (an ``execute_result``-shaped content of 150,000 table rows
  that the peer echoes), each sample in a fresh process of its own, with the peak memory of
  the round trip: the resident set's high-water mark (``VmHWM``, reset through
  ``/proc/self/clear_refs`` just before) over the resident set before it, and, in a second
  untimed round trip, the peak of Python's own allocations (``tracemalloc``);
* the Trio ceiling for a shared socket (a diagnostic, both round-trip measurements): the
  requesting tasks build, sign and send themselves and park; one reader task verifies, decodes
  and reschedules the task each reply answers; the wake-up rule and nothing else (no buffers,
  counters, overflow policy, kernel-death or cancellation guarantees). What any Trio client
  whose tasks share one socket pays at least;
* the client's own work per round trip, in this process without codec or ZeroMQ:
  ``Dispatcher.ask`` and the ``Reply`` against a stub channel whose stand-in reader task hands
  a pre-built reply to the dispatcher, paired with the same stub handing it over through the
  channels' buffer (what ``open_channels``'s ``shell.receive()`` pays): their difference is
  what the client adds to each round trip over the channels.

jupyter_client runs twice: as installed, with orjson (its default packer whenever orjson is
importable) and with its stdlib ``json`` packer. Each ratio is the median of the ratios
within the rounds, with their range.

    python -m benchmarks client
    BENCH_QUICK=1 python -m benchmarks client    # one short round (smoke test)
    BENCH_ROUNDS=9 python -m benchmarks client
    BENCH_BIG=0 python -m benchmarks client      # without the 10 MB round trips
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import outcome
import trio
import zmq
from jupyter_client.asynchronous.client import AsyncKernelClient

from trio_enchannel import Session, open_client
from trio_enchannel._client._dispatcher import Dispatcher
from trio_enchannel._client._results import Reply
from trio_enchannel._io._inbox import Inbox

from ._util import table
from .bench_channels import (
    EXECUTE,
    N_RTT1,
    N_RTT_WINDOW,
    TIMEOUT,
    WINDOW,
    Clock,
    Info,
    Sample,
    _backend_send,
    machine,
    peer_process,
    run_raw,
)

QUICK = bool(os.environ.get("BENCH_QUICK"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 1 if QUICK else 5))
BIG_ROWS = 15_000 if QUICK else 150_000
#: BENCH_BIG=0 skips the 10 MB JSON content round trips (the slowest part).
BIG = os.environ.get("BENCH_BIG", "1") != "0"

OURS, JC_ORJSON, JC_JSON, RAW, CEILING = (
    "trio-enchannel",
    "jupyter_client (orjson)",
    "jupyter_client (json)",
    "raw pyzmq",
    "Trio ceiling",
)

#: measurement -> label
METRICS: dict[str, str] = {
    "rtt1": "request round trips, 1 in flight (/s)",
    "rtt100": f"request round trips, {WINDOW} tasks in flight (/s)",
}

#: (minimum ours/jupyter_client with orjson, minimum ours/raw pyzmq) per measurement (#15).
TARGETS: dict[str, tuple[float, float | None]] = {
    "rtt1": (1.8, 0.70),
    "rtt100": (3.0, None),
}


# ---------------------------------------------------------------------------------------------
# trio-enchannel: open_client, KernelClient.request


async def _run_ours(info: Info, metric: str) -> Sample:
    async with open_client(info, heartbeat=False) as client:
        session = client.session
        request = client.request

        def build() -> Any:
            return session.message("execute_request", EXECUTE, channel="shell")

        with trio.fail_after(TIMEOUT * 2):
            await request(build())  # connected
            if metric == "rtt1":
                clock = Clock()
                for _ in range(N_RTT1):
                    await request(build())
                return clock.stop(N_RTT1)

            async def worker(count: int) -> None:
                for _ in range(count):
                    await request(build())

            clock = Clock()
            async with trio.open_nursery() as nursery:
                for _ in range(WINDOW):
                    nursery.start_soon(worker, N_RTT_WINDOW // WINDOW)
            return clock.stop(N_RTT_WINDOW // WINDOW * WINDOW)


def run_ours(info: Info, metric: str) -> Sample:
    return trio.run(_run_ours, info, metric)


# ---------------------------------------------------------------------------------------------
# jupyter_client: AsyncKernelClient under asyncio


def _jc_client(info: Info, packer: str) -> AsyncKernelClient:
    kc = AsyncKernelClient()
    kc.load_connection_info(info)  # type: ignore[arg-type]
    kc.session.packer = packer
    kc.session.unpacker = packer
    if kc.session.packer != packer:
        raise SystemExit(f"bench_client: jupyter_client has no {packer} packer here")
    kc.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
    return kc


async def _run_jc(info: Info, metric: str, packer: str) -> Sample:
    kc = _jc_client(info, packer)
    try:
        session, shell = kc.session, kc.shell_channel
        shell.send(session.msg("execute_request", EXECUTE))
        await kc.get_shell_msg(timeout=TIMEOUT)  # connected
        if metric == "rtt1":
            clock = Clock()
            for _ in range(N_RTT1):
                shell.send(session.msg("execute_request", EXECUTE))
                await kc.get_shell_msg(timeout=TIMEOUT)
            return clock.stop(N_RTT1)

        # A sliding window of 100 in this one task, as the channel benchmark: jupyter_client's
        # best. Its channels cannot be shared by 100 tasks: a task awaiting get_shell_msg (or
        # the socket's recv_multipart) while others send on the same zmq.asyncio socket loses
        # the wake-up (the sends consume the descriptor's edge) and, with get_shell_msg, sleeps
        # until its timeout; measured here, 2 tasks x 10 requests stall after 3 replies.
        clock = Clock()
        for _ in range(WINDOW):
            shell.send(session.msg("execute_request", EXECUTE))
        for i in range(N_RTT_WINDOW):
            await kc.get_shell_msg(timeout=TIMEOUT)
            if i + WINDOW < N_RTT_WINDOW:
                shell.send(session.msg("execute_request", EXECUTE))
        return clock.stop(N_RTT_WINDOW)
    finally:
        kc.stop_channels()


def run_jc_orjson(info: Info, metric: str) -> Sample:
    return asyncio.run(_run_jc(info, metric, "orjson"))


def run_jc_json(info: Info, metric: str) -> Sample:
    return asyncio.run(_run_jc(info, metric, "json"))


# ---------------------------------------------------------------------------------------------
# Diagnostic: the least a Trio client of one shared socket pays (the "Trio ceiling")


async def _run_ceiling(info: Info, metric: str) -> Sample:
    """Requesting tasks that share one DEALER socket as the client's do, with nothing but the
    protocol work and the wake-up rule: each task builds, signs and sends its request itself
    (pyzmq's Cython send), registers for its reply and parks; one reader task sleeps on the
    descriptor and, once woken, receives until ``EAGAIN``, verifies, decodes and reschedules
    the task each reply answers. After a send (which may consume the descriptor's edge) the
    sender reads ``EVENTS`` and drains ready replies itself, so no wake-up is lost. No
    channels, buffers, counters, overflow policy, kernel-death or cancellation guarantees."""
    session = Session(info["key"])
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(f"tcp://127.0.0.1:{info['shell_port']}")
    fd = int(sock.getsockopt(zmq.FD))
    waiting: dict[str, Any] = {}
    early: dict[str, Any] = {}
    recv, send = sock.recv, _backend_send
    get: Callable[..., Any] = zmq.backend.Socket.get
    noblock, more_flags = int(zmq.NOBLOCK), int(zmq.NOBLOCK | zmq.SNDMORE)
    events, pollin = int(zmq.EVENTS), int(zmq.POLLIN)
    deserialize, serialize, build = session.deserialize, session.serialize, session.message
    reschedule, Value = trio.lowlevel.reschedule, outcome.Value

    def drain() -> None:
        while True:
            frames: list[bytes] = []
            more = True
            try:
                while more:
                    part = recv(noblock, copy=False)
                    more = part.more
                    frames.append(part.bytes)
            except zmq.Again:
                return
            msg = deserialize(frames)
            task = waiting.pop(msg.parent_header["msg_id"])
            if task is trio.lowlevel.current_task():
                early[msg.parent_header["msg_id"]] = msg
            else:
                reschedule(task, Value(msg))

    async def reader() -> None:
        while True:
            drain()
            await trio.lowlevel.wait_readable(fd)

    def abort(_: object) -> trio.lowlevel.Abort:
        return trio.lowlevel.Abort.FAILED  # (never cancelled here)

    async def request() -> Any:
        msg = build("execute_request", EXECUTE)
        frames = serialize(msg)
        last = len(frames) - 1
        for i, frame in enumerate(frames):
            send(sock, frame, noblock if i == last else more_flags)
        waiting[msg.msg_id] = trio.lowlevel.current_task()
        if get(sock, events) & pollin:
            drain()
            if msg.msg_id in early:  # (its own reply, drained by itself)
                return early.pop(msg.msg_id)
        return await trio.lowlevel.wait_task_rescheduled(abort)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            with trio.fail_after(TIMEOUT * 2):
                await request()  # connected
                if metric == "rtt1":
                    clock = Clock()
                    for _ in range(N_RTT1):
                        await request()
                    sample = clock.stop(N_RTT1)
                else:

                    async def worker(count: int) -> None:
                        for _ in range(count):
                            await request()

                    clock = Clock()
                    async with trio.open_nursery() as workers:
                        for _ in range(WINDOW):
                            workers.start_soon(worker, N_RTT_WINDOW // WINDOW)
                    sample = clock.stop(N_RTT_WINDOW // WINDOW * WINDOW)
            nursery.cancel_scope.cancel()
        return sample
    finally:
        ctx.destroy(linger=0)


def run_ceiling(info: Info, metric: str) -> Sample:
    return trio.run(_run_ceiling, info, metric)


CLIENTS: dict[str, Callable[[Info, str], Sample]] = {
    OURS: run_ours,
    JC_ORJSON: run_jc_orjson,
    JC_JSON: run_jc_json,
    RAW: run_raw,
    CEILING: run_ceiling,
}

# ---------------------------------------------------------------------------------------------
# 10 MB of JSON content, each sample in a fresh process


def big_content(rows: int = BIG_ROWS) -> dict[str, Any]:
    """An ``execute_result``-shaped content: a table of ``rows`` records as JSON (no nulls)."""
    table_ = [
        {"id": i, "name": f"row {i}", "value": i * 0.25, "flag": i % 3 == 0, "tags": ["a", "b"]}
        for i in range(rows)
    ]
    return {
        "execution_count": 1,
        "data": {"application/json": {"rows": table_}, "text/plain": f"<{rows} rows>"},
        "metadata": {},
    }


def _status(field: str) -> int:
    """A ``/proc/self/status`` field in bytes (``VmRSS``, ``VmHWM``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


class BigProbe:
    """Times one round trip, then its memory: RSS high-water mark over the RSS before, and
    (a second round trip) tracemalloc's peak."""

    def __init__(self) -> None:
        self.content = big_content()
        self.size = len(json.dumps(self.content, separators=(",", ":")))
        self.result: dict[str, float] = {"payload_mb": self.size / 1e6}

    def before(self) -> tuple[float, float]:
        gc.collect()
        self.rss = _status("VmRSS")
        _reset_peak()
        return time.perf_counter(), time.process_time()

    def after(self, started: tuple[float, float]) -> None:
        self.result["wall_s"] = time.perf_counter() - started[0]
        self.result["cpu_s"] = time.process_time() - started[1]
        self.result["rss_peak_mb"] = (_status("VmHWM") - self.rss) / 1e6

    def traced(self, peak: int) -> None:
        self.result["traced_peak_mb"] = peak / 1e6


def _rows(content: dict[str, Any]) -> int:
    return len(content["data"]["application/json"]["rows"])


async def _big_ours(info: Info) -> dict[str, float]:
    probe = BigProbe()
    async with open_client(info, heartbeat=False) as client:
        session = client.session
        await client.request(session.message("echo_request", {}, channel="shell"))
        for traced in (False, True):
            msg = session.message("echo_request", probe.content, channel="shell")
            if traced:
                tracemalloc.start()
                reply = await client.request(msg)
                probe.traced(tracemalloc.get_traced_memory()[1])
                tracemalloc.stop()
            else:
                started = probe.before()
                reply = await client.request(msg)
                probe.after(started)
            assert _rows(reply.content) == BIG_ROWS
            del msg, reply
    return probe.result


async def _big_jc(info: Info, packer: str) -> dict[str, float]:
    probe = BigProbe()
    kc = _jc_client(info, packer)
    try:
        session, shell = kc.session, kc.shell_channel
        shell.send(session.msg("echo_request", {}))
        await kc.get_shell_msg(timeout=TIMEOUT)
        for traced in (False, True):
            if traced:
                tracemalloc.start()
                shell.send(session.msg("echo_request", probe.content))
                reply = await kc.get_shell_msg(timeout=TIMEOUT)
                probe.traced(tracemalloc.get_traced_memory()[1])
                tracemalloc.stop()
            else:
                started = probe.before()
                shell.send(session.msg("echo_request", probe.content))
                reply = await kc.get_shell_msg(timeout=TIMEOUT)
                probe.after(started)
            assert _rows(reply["content"]) == BIG_ROWS
            del reply
    finally:
        kc.stop_channels()
    return probe.result


BIG_CLIENTS = (OURS, JC_ORJSON, JC_JSON)


def _big_child(client: str) -> None:
    info = json.loads(sys.stdin.readline())
    if client == OURS:
        result = trio.run(_big_ours, info)
    else:
        result = asyncio.run(_big_jc(info, "orjson" if client == JC_ORJSON else "json"))
    print(json.dumps(result), flush=True)


def big_sample(info: Info, client: str) -> dict[str, float]:
    """One 10 MB round trip by ``client`` in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_client", "big", client],
        input=json.dumps(info) + "\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=TIMEOUT * 4,
        cwd=Path(__file__).resolve().parent.parent,
    )
    result: dict[str, float] = json.loads(out.stdout.splitlines()[-1])
    return result


# ---------------------------------------------------------------------------------------------
# The client's own work per round trip: no codec, no ZeroMQ


class _StubChannels:
    """Just what the dispatcher asks of the channels on a round trip: a shell channel whose
    send wakes a stand-in reader task (which hands the pre-built reply over, as the channels'
    reader does after decoding)."""

    def __init__(self) -> None:
        self.session = Session(key=b"bench")
        self.shell = self
        self.unresponsive_error = None
        self.lot = trio.lowlevel.ParkingLot()
        self.sent: list[Any] = []

    async def send(self, msg: Any) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        self.sent.append(msg)
        self.lot.unpark_all()

    async def reader(
        self, hand_over: Callable[[Any], None], *, task_status: trio.TaskStatus[None]
    ) -> None:
        task_status.started()  # parked below before the starter resumes
        while True:
            await self.lot.park()
            for msg in self.sent:
                hand_over(msg)
            self.sent.clear()


async def _own_work(client: bool, n: int) -> float:
    stub = _StubChannels()
    session = stub.session
    msgs = [session.message("execute_request", EXECUTE, channel="shell") for _ in range(n)]
    replies = {m.msg_id: session.reply(m, {"status": "ok"}) for m in msgs}
    replies = {k: attrs.evolve(r, channel="shell") for k, r in replies.items()}
    dispatcher = Dispatcher(stub, unclaimed_buffer=10)  # type: ignore[arg-type]
    inbox: Inbox[Any] = Inbox(senders=1)
    if client:

        def hand_over(msg: Any) -> None:
            dispatcher.dispatch(replies[msg.msg_id], "shell")
    else:

        def hand_over(msg: Any) -> None:
            inbox.put(replies[msg.msg_id], 100)

    async with trio.open_nursery() as nursery:
        await nursery.start(stub.reader, hand_over)
        gc.collect()
        started = time.process_time()
        if client:
            ask = dispatcher.ask
            for msg in msgs:
                Reply(await ask(msg))
        else:
            for msg in msgs:
                await stub.send(msg)
                await inbox.receive()
        cpu = time.process_time() - started
        nursery.cancel_scope.cancel()
    return cpu / n * 1e6


def own_work() -> tuple[float, float, float]:
    """CPU per round trip of the client's own work (``Dispatcher.ask`` and the result) and of
    the channels' hand-over (their buffer), each with a stand-in reader task and no codec or
    ZeroMQ; the median of their paired differences."""
    n = 2_000 if QUICK else 20_000
    pairs = [(trio.run(_own_work, True, n), trio.run(_own_work, False, n)) for _ in range(ROUNDS)]
    return (
        statistics.median(c for c, _ in pairs),
        statistics.median(i for _, i in pairs),
        statistics.median(c - i for c, i in pairs),
    )


# ---------------------------------------------------------------------------------------------
# The driver


def run() -> tuple[dict[str, dict[str, list[Sample]]], dict[str, list[dict[str, float]]]]:
    samples: dict[str, dict[str, list[Sample]]] = {
        name: {metric: [] for metric in METRICS} for name in CLIENTS
    }
    big: dict[str, list[dict[str, float]]] = {name: [] for name in BIG_CLIENTS}
    names = list(CLIENTS)
    with peer_process() as info:
        for round_ in range(ROUNDS):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for metric in METRICS:
                for name in order:
                    samples[name][metric].append(CLIENTS[name](info, metric))
            if not BIG:
                continue
            for name in BIG_CLIENTS[round_ % 3 :] + BIG_CLIENTS[: round_ % 3]:
                big[name].append(big_sample(info, name))
    return samples, big


def _ratios(a: list[float], b: list[float]) -> str:
    values = [x / y for x, y in zip(a, b, strict=True)]
    return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"


def _percent(a: list[float], b: list[float]) -> str:
    values = [x / y for x, y in zip(a, b, strict=True)]
    return f"{statistics.median(values):.0%} ({min(values):.0%}-{max(values):.0%})"


def report(
    samples: dict[str, dict[str, list[Sample]]], big: dict[str, list[dict[str, float]]]
) -> list[str]:
    rates = {n: {m: [s[0] for s in v] for m, v in per.items()} for n, per in samples.items()}
    cpus = {n: {m: [s[1] for s in v] for m, v in per.items()} for n, per in samples.items()}
    rows: list[list[object]] = []
    cpu_rows: list[list[object]] = []
    for metric, label in METRICS.items():
        ours = rates[OURS][metric]
        vs_jc, vs_raw = TARGETS[metric]
        rows.append(
            [
                label,
                *(statistics.median(rates[n][metric]) for n in CLIENTS),
                _ratios(ours, rates[JC_ORJSON][metric]),
                _ratios(ours, rates[JC_JSON][metric]),
                _percent(ours, rates[RAW][metric]),
                f">= {vs_jc:g}x" + ("" if vs_raw is None else f", >= {vs_raw:.0%}"),
                _ratios(rates[CEILING][metric], rates[JC_ORJSON][metric]),
                _percent(rates[CEILING][metric], rates[RAW][metric]),
                _percent(ours, rates[CEILING][metric]),
            ]
        )
        cpu_rows.append(
            [
                f"{label.split(' (')[0]} (us/rt)",
                *(statistics.median(cpus[n][metric]) for n in CLIENTS),
            ]
        )
    big_rows: list[list[object]] = []
    ours_big = big[OURS]
    for name in BIG_CLIENTS if ours_big else ():
        runs = big[name]

        def med(key: str, runs: list[dict[str, float]] = runs) -> float:
            return statistics.median(r[key] for r in runs)

        ratio = (
            "1.00x"
            if name == OURS
            else _ratios([r["wall_s"] for r in runs], [r["wall_s"] for r in ours_big])
        )
        big_rows.append(
            [
                name,
                f"{med('wall_s') * 1e3:.0f}",
                f"{med('cpu_s') * 1e3:.0f}",
                ratio,
                f"{med('rss_peak_mb'):.1f}",
                f"{med('traced_peak_mb'):.1f}",
            ]
        )
    tables = [
        table(
            f"Request round trips: median rate of {ROUNDS} rounds; ours over each, median of "
            "the per-round ratios (range)",
            [
                "measurement",
                *CLIENTS,
                "vs jc (orjson)",
                "vs jc (json)",
                "vs raw",
                "target",
                "ceiling vs jc (orjson)",
                "ceiling vs raw",
                "ours vs ceiling",
            ],
            rows,
        ),
        table(
            "Client CPU time per round trip (median; peer excluded; lower is better)",
            ["measurement", *CLIENTS],
            cpu_rows,
        ),
    ]
    if not ours_big:
        return tables
    payload = statistics.median(r["payload_mb"] for r in ours_big)
    return [
        *tables,
        table(
            f"{payload:.1f} MB JSON content round trip, fresh process per sample, median of "
            f"{ROUNDS} (ratio: their wall time over ours, per round)",
            [
                "client",
                "wall ms",
                "CPU ms",
                "ours faster by",
                "peak RSS over before (MB)",
                "tracemalloc peak (MB)",
            ],
            big_rows,
        ),
    ]


def main() -> None:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    started = time.perf_counter()
    samples, big = run()
    heading = (
        f"{stamp}; {machine()}\n"
        f"per sample: {N_RTT1} and {N_RTT_WINDOW} round trips; {ROUNDS} rounds in "
        f"{time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.1f}"
    )
    own = own_work()
    own_text = (
        "The client's own work per round trip, without codec or ZeroMQ (a stand-in reader "
        f"task; median of {ROUNDS}): Dispatcher.ask + Reply {own[0]:.1f} us of CPU, the "
        f"channels' hand-over alone {own[1]:.1f} us, the client's extra {own[2]:.1f} us"
    )
    text = "\n\n".join([heading, *report(samples, big), own_text])
    print(text)
    if QUICK:
        return
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "client.txt").write_text(text + "\n")
    (out / "client.json").write_text(
        json.dumps(
            {"date": stamp, "rounds": ROUNDS, "samples": samples, "big": big, "own_work": own},
            indent=1,
        )
        + "\n"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["big"]:
        _big_child(sys.argv[2])
    else:
        main()
