"""Remote kernels: many kernels behind one Jupyter Server, driven from one Trio process.

Starts a throwaway Jupyter Server on loopback (its own temporary directories, a random token)
and measures, from a single Trio process:

* **fleet start**: ``N`` kernels started concurrently with ``open_remote_kernel`` (REST start,
  websocket, ``kernel_info`` and live IOPub), wall time until all are ready;
* **fleet throughput**: every kernel runs ``M`` small executions (``print(i * i)``, reply and
  output gathered) back to back, all kernels at once: executions per second overall, the
  per-execution latency distribution, and this (client) process's CPU time;
* **one kernel, each framing**: sequential execute round trips through one kernel over the
  binary ``v1.kernel.websocket.jupyter.org`` framing and over the legacy JSON framing, and a
  4 MiB binary buffer sent to the kernel and echoed back in a comm message.

Every number includes Jupyter Server's own relaying (websocket <-> ZeroMQ), on the same two
cores as the kernels and the client.

    python -m benchmarks remote
    BENCH_QUICK=1 python -m benchmarks remote         # 5 kernels, a few executions (smoke)
    BENCH_KERNELS=100 python -m benchmarks remote
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import trio

from trio_enchannel import RemoteKernel, open_remote_kernel, open_remote_server
from trio_enchannel.testing._jupyter_server import LocalServer, open_local_server

from ._util import table

QUICK = bool(os.environ.get("BENCH_QUICK"))
KERNELS = int(os.environ.get("BENCH_KERNELS", 5 if QUICK else 50))
EXECUTIONS = 5 if QUICK else 40
SEQUENTIAL = 20 if QUICK else 300
BUFFER = 4 * 1024 * 1024
TIMEOUT = 600.0

_ECHO_SETUP = """
from comm import get_comm_manager
def _target(comm, msg):
    comm.on_msg(lambda m: comm.send({}, buffers=m["buffers"]))
get_comm_manager().register_target("bench-echo", _target)
"""


def machine() -> str:
    """A one-line description of where the numbers come from."""
    import jupyter_server

    cpu = platform.processor() or platform.machine()
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, jupyter_server {jupyter_server.__version__}"
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def fleet(server: LocalServer) -> dict[str, Any]:
    """Start KERNELS kernels at once, then run EXECUTIONS executions on each, all at once."""
    latencies: list[float] = []
    ready_times: list[float] = []
    all_ready = trio.Event()
    results: dict[str, Any] = {}
    ready_count = 0
    finished = 0
    started = time.perf_counter()

    async def one(index: int, rest: Any) -> None:
        nonlocal ready_count, finished
        async with open_remote_kernel(rest, "python3", startup_timeout=TIMEOUT) as kernel:
            ready_times.append(time.perf_counter() - started)
            ready_count += 1
            if ready_count == KERNELS:
                results["start_s"] = time.perf_counter() - started
                all_ready.set()
            await all_ready.wait()
            for i in range(EXECUTIONS):
                t0 = time.perf_counter()
                result = await kernel.client.execute(f"print({i} * {i})")
                latencies.append(time.perf_counter() - t0)
                assert result.stdout == f"{i * i}\n", result
            finished += 1
            if finished == KERNELS:
                results["run_s"] = time.perf_counter() - results["run_started"]
                results["run_cpu_s"] = time.process_time() - results["run_cpu_started"]

    async def mark_run_start() -> None:
        await all_ready.wait()
        results["run_started"] = time.perf_counter()
        results["run_cpu_started"] = time.process_time()

    async with (
        open_remote_server(server.url, token=server.token, start_timeout=TIMEOUT) as rest,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(mark_run_start)
        for index in range(KERNELS):
            nursery.start_soon(one, index, rest)
    total = KERNELS * EXECUTIONS
    return {
        "kernels": KERNELS,
        "start_s": results["start_s"],
        "first_ready_s": min(ready_times),
        "executions": total,
        "run_s": results["run_s"],
        "exec_per_s": total / results["run_s"],
        "client_cpu_share": results["run_cpu_s"] / results["run_s"],
        "client_cpu_per_exec_ms": results["run_cpu_s"] / total * 1e3,
        "latency_p50_ms": statistics.median(latencies) * 1e3,
        "latency_p90_ms": _percentile(latencies, 0.90) * 1e3,
        "latency_p99_ms": _percentile(latencies, 0.99) * 1e3,
    }


async def single(server: LocalServer) -> dict[str, Any]:
    """Sequential round trips and a buffer echo through one kernel."""
    out: dict[str, Any] = {"subprotocol": None}
    async with open_remote_kernel(server.url, token=server.token) as kernel:
        out["subprotocol"] = kernel.channels.subprotocol
        await kernel.client.execute("pass")
        t0 = time.perf_counter()
        for _ in range(SEQUENTIAL):
            await kernel.client.execute("pass")
        out["exec_rt_per_s"] = SEQUENTIAL / (time.perf_counter() - t0)
        out["buffer_mib_s"] = await _buffer_echo(kernel)
    return out


async def _buffer_echo(kernel: RemoteKernel) -> float:
    client = kernel.client
    assert (await client.execute(_ECHO_SETUP)).status == "ok"
    session = client.session
    payload = os.urandom(BUFFER)
    await client.send(
        session.message(
            "comm_open",
            {"comm_id": "bench", "target_name": "bench-echo", "data": {}},
            channel="shell",
        )
    )
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        await client.send(
            session.message(
                "comm_msg", {"comm_id": "bench", "data": {}}, buffers=[payload], channel="shell"
            )
        )
        async for msg in client.unclaimed_iopub:
            if msg.msg_type == "comm_msg" and msg.buffers:
                assert bytes(msg.buffers[0]) == payload
                break
        best = min(best, time.perf_counter() - t0)
    return 2 * BUFFER / (1 << 20) / best


async def run() -> dict[str, Any]:
    """Every measurement; returns the raw numbers."""
    numbers: dict[str, Any] = {}
    with trio.fail_after(TIMEOUT):
        # Jupyter Server rate-limits IOPub per connection by default; lift it so that the
        # benchmark measures the transport.
        async with open_local_server(
            extra_args=["--ZMQChannelsWebsocketConnection.iopub_msg_rate_limit=0"]
        ) as server:
            numbers["v1"] = await single(server)
            numbers["fleet"] = await fleet(server)
        async with open_local_server(kernel_ws_protocol="") as legacy:
            numbers["legacy"] = await single(legacy)
    return numbers


def report(numbers: dict[str, Any]) -> list[str]:
    """The result tables."""
    f = numbers["fleet"]
    fleet_table = table(
        f"{f['kernels']} remote kernels driven concurrently from one Trio process",
        ["measurement", "value"],
        [
            (f"start {f['kernels']} kernels concurrently, all ready (s)", f["start_s"]),
            ("first kernel ready (s)", f["first_ready_s"]),
            (f"executions, all kernels at once ({f['executions']})", f"{f['run_s']:.2f} s"),
            ("executions per second (overall)", f["exec_per_s"]),
            ("client CPU per execution (ms)", f["client_cpu_per_exec_ms"]),
            ("client CPU, share of one core (%)", 100 * f["client_cpu_share"]),
            ("execution latency p50 (ms)", f["latency_p50_ms"]),
            ("execution latency p90 (ms)", f["latency_p90_ms"]),
            ("execution latency p99 (ms)", f["latency_p99_ms"]),
        ],
    )
    framing_table = table(
        "One kernel, each websocket framing",
        ["framing", "execute round trips (/s)", "4 MiB buffer echo (MiB/s)"],
        [
            (
                numbers[name]["subprotocol"] or "legacy JSON",
                numbers[name]["exec_rt_per_s"],
                numbers[name]["buffer_mib_s"],
            )
            for name in ("v1", "legacy")
        ],
    )
    return [fleet_table, framing_table]


def main() -> None:
    """Run the benchmark, print the tables, save them under benchmarks/results/."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    started = time.perf_counter()
    numbers = trio.run(run)
    heading = (
        f"{stamp}; {machine()}\n"
        f"{KERNELS} kernels x {EXECUTIONS} executions; {SEQUENTIAL} sequential round trips per "
        f"framing; {time.perf_counter() - started:.0f} s; load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    text = "\n\n".join([heading, *report(numbers)])
    print(text)
    if QUICK:
        return
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "remote.txt").write_text(text + "\n")
    (out / "remote.json").write_text(
        json.dumps({"date": stamp, "machine": machine(), "numbers": numbers}, indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
