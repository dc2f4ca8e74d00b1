"""Channel throughput: trio-enchannel vs jupyter_client vs raw pyzmq, same run, same peer.

One peer process (``benchmarks/_peer.py``: raw pyzmq, signs with the connection key) serves
every client in turn. Each round connects each client afresh, waits until its iopub
subscription is live (the peer publishes a probe per sync request until one arrives), then
measures:

* iopub ingestion: the peer queues N signed ~600-byte ``stream`` messages, then the client
  times receiving all of them (receive + verify + decode; raw pyzmq only receives);
* shell round trips, one in flight and 100 in flight (a sliding window), of an
  ``execute_request``-shaped message that the peer echoes;
* a 64 MiB buffer round trip (the peer echoes the buffer without copying).

The machine is small and noisy, so the rounds are interleaved (raw, jupyter_client, ours,
raw, ...) and the table reports the best round of each client; medians go to
``benchmarks/results/channels.json``.

    python -m benchmarks channels
    BENCH_QUICK=1 python -m benchmarks channels    # one short round (smoke test)
"""

from __future__ import annotations

import asyncio
import datetime as _dt
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
from functools import partial
from pathlib import Path
from typing import Any

import trio
import zmq
from jupyter_client.asynchronous.client import AsyncKernelClient

from trio_enchannel import Session, open_channels

from ._peer import FLOOD_MESSAGE_SIZE
from ._util import table

QUICK = bool(os.environ.get("BENCH_QUICK"))
ROUNDS = 1 if QUICK else 5
N_FLOOD = 2_000 if QUICK else 20_000
N_RTT1 = 200 if QUICK else 2_000
N_RTT_WINDOW = 1_000 if QUICK else 10_000
WINDOW = 100
BIG = 64 * 1024 * 1024
N_BIG = 2 if QUICK else 4
TIMEOUT = 60.0

EXECUTE: dict[str, Any] = {
    "code": "x = 1",
    "silent": False,
    "store_history": True,
    "user_expressions": {},
    "allow_stdin": False,
    "stop_on_error": True,
}

METRICS = {
    "iopub": "iopub ingestion (msg/s)",
    "rtt1": "shell round trips, 1 in flight (/s)",
    "rtt100": f"shell round trips, {WINDOW} in flight (/s)",
    "big": "64 MiB buffer round trip (MiB/s)",
}

Results = dict[str, float]


# ---------------------------------------------------------------------------------------------
# The peer process


@contextmanager
def peer_process() -> Iterator[dict[str, Any]]:
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
# Raw pyzmq: no protocol work beyond what the peer needs to answer


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


def _run_blocking(info: dict[str, Any], session: Session | None) -> Results:
    ctx = zmq.Context()
    shell = ctx.socket(zmq.DEALER)
    sub = ctx.socket(zmq.SUB)
    for sock in (shell, sub):
        sock.linger = 0
        sock.rcvtimeo = int(TIMEOUT * 1000)
    shell.connect(f"tcp://127.0.0.1:{info['shell_port']}")
    sub.connect(f"tcp://127.0.0.1:{info['iopub_port']}")
    sub.subscribe(b"")
    signer = RawSigner(info["key"])
    try:
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

        results: Results = {}
        shell.send_multipart(signer.request("bench_flood_request", {"n": N_FLOOD}))
        shell.recv_multipart()
        recv = sub.recv_multipart
        if session is None:
            start = time.perf_counter()
            for _ in range(N_FLOOD):
                recv()
        else:
            deserialize = session.deserialize
            start = time.perf_counter()
            for _ in range(N_FLOOD):
                deserialize(recv())
        results["iopub"] = N_FLOOD / (time.perf_counter() - start)

        request: Callable[[], object]
        receive: Callable[[], object]
        if session is None:
            frames = signer.request("execute_request", EXECUTE)
            request = partial(shell.send_multipart, frames)
            receive = shell.recv_multipart
        else:
            codec = session
            request = lambda: shell.send_multipart(  # noqa: E731
                codec.serialize(codec.message("execute_request", EXECUTE))
            )
            receive = lambda: codec.deserialize(shell.recv_multipart())  # noqa: E731

        start = time.perf_counter()
        for _ in range(N_RTT1):
            request()
            receive()
        results["rtt1"] = N_RTT1 / (time.perf_counter() - start)

        start = time.perf_counter()
        for _ in range(WINDOW):
            request()
        for i in range(N_RTT_WINDOW):
            receive()
            if i + WINDOW < N_RTT_WINDOW:
                request()
        results["rtt100"] = N_RTT_WINDOW / (time.perf_counter() - start)

        payload = os.urandom(BIG)
        fastest = float("inf")
        for _ in range(N_BIG):
            start = time.perf_counter()
            if session is None:
                shell.send_multipart([*signer.request("echo_request", {}), payload], copy=False)
                reply = shell.recv_multipart(copy=False)
                size = len(reply[-1])
            else:
                message = session.message("echo_request", {}, buffers=[payload])
                shell.send_multipart(session.serialize(message), copy=False)
                parts = shell.recv_multipart(copy=False)
                frames_in = [p.bytes if len(p) < 65536 else p.buffer for p in parts]
                size = len(session.deserialize(frames_in).buffers[0])
            fastest = min(fastest, time.perf_counter() - start)
            assert size == BIG
        results["big"] = 2 * BIG / (1 << 20) / fastest
        return results
    finally:
        ctx.destroy(linger=0)


def run_raw(info: dict[str, Any]) -> Results:
    """The floor: blocking pyzmq, pre-built request frames, no verification or decoding."""
    return _run_blocking(info, None)


def run_codec(info: dict[str, Any]) -> Results:
    """Diagnostic: blocking pyzmq plus trio-enchannel's Session (build, sign, verify, decode).

    The gap between this and raw pyzmq is the codec; between this and trio-enchannel, the
    Trio I/O layer (adapter, reader tasks, channel hand-over).
    """
    return _run_blocking(info, Session(info["key"]))


# ---------------------------------------------------------------------------------------------
# jupyter_client: AsyncKernelClient under asyncio, used the way its users use it


async def _run_jc(info: dict[str, Any]) -> Results:
    kc = AsyncKernelClient()
    kc.load_connection_info(info)  # type: ignore[arg-type]
    kc.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=False)
    try:
        session, shell = kc.session, kc.shell_channel

        def request(msg_type: str, content: dict[str, Any]) -> None:
            shell.send(session.msg(msg_type, content))

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

        results: Results = {}
        request("bench_flood_request", {"n": N_FLOOD})
        await kc.get_shell_msg(timeout=TIMEOUT)
        start = time.perf_counter()
        for _ in range(N_FLOOD):
            await kc.get_iopub_msg(timeout=TIMEOUT)
        results["iopub"] = N_FLOOD / (time.perf_counter() - start)

        start = time.perf_counter()
        for _ in range(N_RTT1):
            request("execute_request", EXECUTE)
            await kc.get_shell_msg(timeout=TIMEOUT)
        results["rtt1"] = N_RTT1 / (time.perf_counter() - start)

        start = time.perf_counter()
        for _ in range(WINDOW):
            request("execute_request", EXECUTE)
        for i in range(N_RTT_WINDOW):
            await kc.get_shell_msg(timeout=TIMEOUT)
            if i + WINDOW < N_RTT_WINDOW:
                request("execute_request", EXECUTE)
        results["rtt100"] = N_RTT_WINDOW / (time.perf_counter() - start)

        payload = os.urandom(BIG)
        fastest = float("inf")
        for _ in range(N_BIG):
            start = time.perf_counter()
            msg = session.msg("echo_request", {})
            msg["buffers"] = [payload]
            shell.send(msg)
            reply = await kc.get_shell_msg(timeout=TIMEOUT)
            fastest = min(fastest, time.perf_counter() - start)
            assert len(reply["buffers"][0]) == BIG
        results["big"] = 2 * BIG / (1 << 20) / fastest
        return results
    finally:
        kc.stop_channels()


def run_jc(info: dict[str, Any]) -> Results:
    """jupyter_client's AsyncKernelClient in a fresh asyncio loop."""
    return asyncio.run(_run_jc(info))


# ---------------------------------------------------------------------------------------------
# trio-enchannel: open_channels under Trio, used the way its users use it


async def _run_ours(info: dict[str, Any]) -> Results:
    async with open_channels(info, heartbeat=False) as ch:
        session, shell, iopub = ch.session, ch.shell, ch.iopub

        async def request(msg_type: str, content: dict[str, Any]) -> None:
            await shell.send(session.message(msg_type, content, channel="shell"))

        sent = 0
        while True:
            await request("bench_sync_request", {"token": f"s{sent}"})
            sent += 1
            with trio.move_on_after(0.05):
                await iopub.receive()
                break
        await request("bench_sync_request", {"token": "final"})
        sent += 1
        with trio.fail_after(TIMEOUT):
            while True:
                msg = await iopub.receive()
                if msg.msg_type == "bench_probe" and msg.content["token"] == "final":
                    break
            for _ in range(sent):
                await shell.receive()

            results: Results = {}
            await request("bench_flood_request", {"n": N_FLOOD})
            await shell.receive()
            receive = iopub.receive
            start = time.perf_counter()
            for _ in range(N_FLOOD):
                await receive()
            results["iopub"] = N_FLOOD / (time.perf_counter() - start)

            start = time.perf_counter()
            for _ in range(N_RTT1):
                await request("execute_request", EXECUTE)
                await shell.receive()
            results["rtt1"] = N_RTT1 / (time.perf_counter() - start)

            start = time.perf_counter()
            for _ in range(WINDOW):
                await request("execute_request", EXECUTE)
            for i in range(N_RTT_WINDOW):
                await shell.receive()
                if i + WINDOW < N_RTT_WINDOW:
                    await request("execute_request", EXECUTE)
            results["rtt100"] = N_RTT_WINDOW / (time.perf_counter() - start)

            payload = os.urandom(BIG)
            fastest = float("inf")
            for _ in range(N_BIG):
                start = time.perf_counter()
                await shell.send(
                    session.message("echo_request", {}, buffers=[payload], channel="shell")
                )
                reply = await shell.receive()
                fastest = min(fastest, time.perf_counter() - start)
                assert len(reply.buffers[0]) == BIG
            results["big"] = 2 * BIG / (1 << 20) / fastest
        return results


def run_ours(info: dict[str, Any]) -> Results:
    """trio-enchannel's open_channels in a fresh Trio run."""
    return trio.run(_run_ours, info)


# ---------------------------------------------------------------------------------------------
# The driver


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


CLIENTS: dict[str, Callable[[dict[str, Any]], Results]] = {
    "raw pyzmq": run_raw,
    "jupyter_client": run_jc,
    "trio-enchannel": run_ours,
    "pyzmq + our codec": run_codec,
}


def run() -> dict[str, dict[str, list[float]]]:
    """Every client, ROUNDS times, interleaved, against one peer process."""
    samples: dict[str, dict[str, list[float]]] = {
        name: {metric: [] for metric in METRICS} for name in CLIENTS
    }
    with peer_process() as info:
        for _ in range(ROUNDS):
            for name, client in CLIENTS.items():
                for metric, value in client(info).items():
                    samples[name][metric].append(value)
    return samples


#: (minimum ours/jupyter_client, minimum ours/raw pyzmq) per measurement (issue #3).
TARGETS: dict[str, tuple[float | None, float]] = {
    "iopub": (4.0, 0.40),
    "rtt1": (1.5, 0.75),
    "rtt100": (1.5, 0.75),
    "big": (None, 0.80),
}
OURS, JC, RAW, CODEC = "trio-enchannel", "jupyter_client", "raw pyzmq", "pyzmq + our codec"


def _target(metric: str) -> str:
    vs_jc, vs_raw = TARGETS[metric]
    parts = [] if vs_jc is None else [f">= {vs_jc:g}x"]
    parts.append(f">= {vs_raw:.0%}")
    return ", ".join(parts)


def _met(metric: str, ratio_jc: float, ratio_raw: float) -> str:
    vs_jc, vs_raw = TARGETS[metric]
    ok = ratio_raw >= vs_raw and (vs_jc is None or ratio_jc >= vs_jc)
    return "yes" if ok else "NO"


def report(samples: dict[str, dict[str, list[float]]]) -> tuple[str, str]:
    """The ratio table (best of the rounds) and the per-round median ratio table."""
    best = {name: {m: max(v) for m, v in per.items()} for name, per in samples.items()}
    rows: list[list[object]] = []
    median_rows: list[list[object]] = []
    for metric, label in METRICS.items():
        ours, jc, raw = best[OURS][metric], best[JC][metric], best[RAW][metric]
        rows.append(
            [
                label,
                ours,
                jc,
                raw,
                best[CODEC][metric],
                f"{ours / jc:.2f}x",
                f"{ours / raw:.0%}",
                _target(metric),
                _met(metric, ours / jc, ours / raw),
            ]
        )
        per_round = zip(
            samples[OURS][metric], samples[JC][metric], samples[RAW][metric], strict=True
        )
        ratios = [(o / j, o / r) for o, j, r in per_round]
        codec_floor = statistics.median(
            c / r for c, r in zip(samples[CODEC][metric], samples[RAW][metric], strict=True)
        )
        median_jc = statistics.median(j for j, _ in ratios)
        median_raw = statistics.median(r for _, r in ratios)
        median_rows.append(
            [
                label,
                f"{median_jc:.2f}x",
                f"{median_raw:.0%}",
                f"{min(j for j, _ in ratios):.2f}x - {max(j for j, _ in ratios):.2f}x",
                f"{min(r for _, r in ratios):.0%} - {max(r for _, r in ratios):.0%}",
                f"{codec_floor:.0%}",
            ]
        )
    main_table = table(
        f"Channels: best of {ROUNDS} interleaved rounds, one peer process",
        ["measurement", OURS, JC, RAW, CODEC, "vs jupyter_client", "vs raw pyzmq", "target", "met"],
        rows,
    )
    median_table = table(
        f"Ratios within each round (median and range over {ROUNDS} rounds)",
        [
            "measurement",
            "vs jupyter_client",
            "vs raw pyzmq",
            "range vs jc",
            "range vs raw",
            "codec floor vs raw",
        ],
        median_rows,
    )
    return main_table, median_table


def main() -> None:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    started = time.perf_counter()
    samples = run()
    main_table, median_table = report(samples)
    print(f"{stamp}; {machine()}")
    print(
        f"N={N_FLOOD} iopub messages of {FLOOD_MESSAGE_SIZE} B, {N_RTT1} + {N_RTT_WINDOW} "
        f"round trips, {N_BIG} x 64 MiB per round; {time.perf_counter() - started:.0f} s\n"
    )
    print(main_table)
    print()
    print(median_table)
    if QUICK:
        return
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "channels.json").write_text(
        json.dumps(
            {
                "date": stamp,
                "machine": machine(),
                "rounds": ROUNDS,
                "samples": samples,
                "tables": [main_table, median_table],
            },
            indent=2,
        )
        + "\n"
    )
    (out / "channels.txt").write_text(f"{stamp}; {machine()}\n\n{main_table}\n\n{median_table}\n")


if __name__ == "__main__":
    main()
