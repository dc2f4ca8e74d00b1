"""The idle cost of a connection: CPU and memory of 1 to 100 connected, idle clients.

One peer process (``benchmarks/_peer.py``) stands in for every kernel; each sample runs in a
fresh process of its own, which connects N clients (every channel: shell, control, stdin,
IOPub, and the heartbeat when it is on), makes one request on each (so every connection is
up), then sits idle for a few seconds. Reported: the process CPU time per second of idleness
(as a share of one core), and the resident memory (``VmRSS``) the N connections added over
the process before the first one (imports done), total, per connection, and per connection
beyond the first (the first one also pays for lazy imports and the ZeroMQ context's
threads).

Clients: trio-enchannel (``open_client``; heartbeat: ``open_channels``' default, a ping every
second) and jupyter_client (``AsyncKernelClient.start_channels``; its heartbeat is a thread
per client that pings every second, its default ``time_to_dead``).

    python -m benchmarks idle
    BENCH_QUICK=1 python -m benchmarks idle    # 1 and 10 clients, short idle window
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import trio
from jupyter_client.asynchronous.client import AsyncKernelClient

from trio_enchannel import open_client

from ._util import table
from .bench_channels import TIMEOUT, Info, machine, peer_process

QUICK = bool(os.environ.get("BENCH_QUICK"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 1 if QUICK else 3))
COUNTS = (1, 10) if QUICK else (1, 10, 100)
IDLE = 1.0 if QUICK else 5.0

OURS, JC = "trio-enchannel", "jupyter_client"
#: (client, heartbeat)
CONFIGS = [(OURS, True), (OURS, False), (JC, True), (JC, False)]


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def _ours(info: Info, count: int, heartbeat: bool) -> dict[str, float]:
    gc.collect()
    rss_before = _rss()
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(open_client(info, heartbeat=heartbeat))
            for _ in range(count)
        ]
        with trio.fail_after(TIMEOUT):
            for client in clients:
                await client.request(
                    client.session.message("kernel_info_request", {}, channel="shell")
                )
        gc.collect()
        rss_after = _rss()
        cpu, wall = time.process_time(), time.perf_counter()
        await trio.sleep(IDLE)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_share": cpu / wall, "rss_mb": (rss_after - rss_before) / 1e6}


async def _jc(info: Info, count: int, heartbeat: bool) -> dict[str, float]:
    gc.collect()
    rss_before = _rss()
    clients: list[AsyncKernelClient] = []
    try:
        for _ in range(count):
            kc = AsyncKernelClient()
            kc.load_connection_info(info)  # type: ignore[arg-type]
            kc.start_channels(shell=True, iopub=True, stdin=True, hb=heartbeat, control=True)
            clients.append(kc)
        for kc in clients:
            kc.shell_channel.send(kc.session.msg("kernel_info_request", {}))
            await kc.get_shell_msg(timeout=TIMEOUT)
        gc.collect()
        rss_after = _rss()
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.sleep(IDLE)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        for kc in clients:
            kc.stop_channels()
    return {"cpu_share": cpu / wall, "rss_mb": (rss_after - rss_before) / 1e6}


def _child(client: str, heartbeat: bool, count: int) -> None:
    info = json.loads(sys.stdin.readline())
    if client == OURS:
        result = trio.run(_ours, info, count, heartbeat)
    else:
        result = asyncio.run(_jc(info, count, heartbeat))
    print(json.dumps(result), flush=True)


def sample(info: Info, client: str, heartbeat: bool, count: int) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_idle",
            "one",
            client,
            str(int(heartbeat)),
            str(count),
        ],
        input=json.dumps(info) + "\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=TIMEOUT * 4,
        cwd=Path(__file__).resolve().parent.parent,
    )
    result: dict[str, float] = json.loads(out.stdout.splitlines()[-1])
    return result


def main() -> None:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    started = time.perf_counter()
    results: dict[tuple[str, bool, int], list[dict[str, float]]] = {}
    with peer_process() as info:
        for round_ in range(ROUNDS):
            order = CONFIGS[round_ % len(CONFIGS) :] + CONFIGS[: round_ % len(CONFIGS)]
            for count in COUNTS:
                for client, heartbeat in order:
                    key = (client, heartbeat, count)
                    results.setdefault(key, []).append(sample(info, client, heartbeat, count))
    rows: list[list[object]] = []
    for client, heartbeat in CONFIGS:
        for count in COUNTS:
            runs = results[(client, heartbeat, count)]
            cpu = statistics.median(r["cpu_share"] for r in runs)
            rss = statistics.median(r["rss_mb"] for r in runs)
            first = statistics.median(r["rss_mb"] for r in results[(client, heartbeat, 1)])
            marginal = "" if count == 1 else f"{(rss - first) / (count - 1) * 1e3:.0f}"
            rows.append(
                [
                    client,
                    "on" if heartbeat else "off",
                    count,
                    f"{cpu:.2%}",
                    f"{cpu / count * 1e3:.2f}",
                    f"{rss:.1f}",
                    f"{rss / count * 1e3:.0f}",
                    marginal,
                ]
            )
    heading = (
        f"{stamp}; {machine()}\n"
        f"idle window {IDLE:g} s; {ROUNDS} rounds in {time.perf_counter() - started:.0f} s; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    text = "\n\n".join(
        [
            heading,
            table(
                f"Idle connected clients, one process, median of {ROUNDS} rounds",
                [
                    "client",
                    "heartbeat",
                    "clients",
                    "CPU (share of a core)",
                    "CPU per client (ms/s)",
                    "memory added (MB)",
                    "per client (kB)",
                    "per client beyond the first (kB)",
                ],
                rows,
            ),
        ]
    )
    print(text)
    if QUICK:
        return
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "idle.txt").write_text(text + "\n")
    serial: dict[str, Any] = {f"{c} hb={h} n={n}": v for (c, h, n), v in results.items()}
    (out / "idle.json").write_text(json.dumps({"date": stamp, "results": serial}, indent=1) + "\n")


if __name__ == "__main__":
    if sys.argv[1:2] == ["one"]:
        _child(sys.argv[2], sys.argv[3] == "1", int(sys.argv[4]))
    else:
        main()
