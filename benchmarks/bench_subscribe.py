"""IOPub ingestion with subscriptions (issue 16): what ``ch.iopub.subscribe()`` costs.

The peer of the channel benchmark (``benchmarks/_peer.py``) queues N signed 600-byte
``stream`` messages; the client times receiving all of them on ``ch.iopub`` (as in the
channel benchmark's ``iopub ingestion``) *and* on every fast subscription, each read by its
own task. Configurations:

* ``0 subscribers``: ``ch.iopub`` alone (the reader's only extra cost is one falsy check);
* ``1 subscriber``: one subscription, read as fast as it comes;
* ``10 subscribers, 1 slow``: nine read as fast as they come, one never read (a 100-message
  buffer: it drops and counts the rest, and must slow nobody);
* ``10 filtered (no match)``: ten subscriptions to ``status`` only (the filter checks alone);
* ``0 subscribers (baseline)``: only when ``BENCH_BASELINE`` names the root of another
  checkout (e.g. ``git archive main trio_enchannel | tar -x -C /tmp/main``): the same
  measurement with that tree's ``trio_enchannel``, in the same rounds.

Every sample runs in a fresh process (so no configuration inherits another's heap), and the
configurations take turns in every round (rotating order), each with a fresh connection;
the table gives the median and the range over the rounds of the wall-clock rate
and of the client-process CPU time per message (the latter is much less sensitive to other
load on a shared machine). A last table times the reader's side alone, without I/O:
``if fanout.subscriptions: fanout.publish(msg, nbytes)`` per message.

    python -m benchmarks subscribe
    BENCH_QUICK=1 python -m benchmarks subscribe       # one short round (smoke test)
    BENCH_ROUNDS=5 BENCH_BASELINE=/tmp/main python -m benchmarks subscribe
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import trio

from trio_enchannel import open_channels

from ._peer import FLOOD_MESSAGE_SIZE
from ._util import table
from .bench_channels import TIMEOUT, Clock, Info, machine, peer_process, sync_iopub

QUICK = bool(os.environ.get("BENCH_QUICK"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 1 if QUICK else 3))
N_FLOOD = 2_000 if QUICK else 20_000
BASELINE = os.environ.get("BENCH_BASELINE")
SLOW_BUFFER = 100

#: name -> (fast subscriptions, a slow one, filtered-out subscriptions)
CONFIGS: dict[str, tuple[int, bool, int]] = {
    "0 subscribers": (0, False, 0),
    "1 subscriber": (1, False, 0),
    "10 subscribers, 1 slow": (9, True, 0),
    "10 filtered (no match)": (0, False, 10),
}
BASELINE_NAME = "0 subscribers (baseline)"


async def _ingest(info: Info, fast: int, slow: bool, filtered: int) -> dict[str, Any]:
    """Sync IOPub, flood, and time until ``ch.iopub`` and every fast subscription have
    received the whole flood. Uses only the API of the baseline when nothing subscribes."""
    async with (
        open_channels(info, heartbeat=False, iopub_overflow="wait", iopub_buffer_size=1000) as ch,
        contextlib.AsyncExitStack() as stack,
    ):
        session, shell, iopub = ch.session, ch.shell, ch.iopub

        async def request(msg_type: str, content: dict[str, Any]) -> None:
            await shell.send(session.message(msg_type, content, channel="shell"))

        with trio.fail_after(TIMEOUT * 2):
            await sync_iopub(ch)
            subs = [
                await stack.enter_async_context(
                    ch.iopub.subscribe(buffer_size=N_FLOOD, buffer_bytes=2**40)
                )
                for _ in range(fast)
            ]
            slow_sub = None
            if slow:
                slow_sub = await stack.enter_async_context(
                    ch.iopub.subscribe(buffer_size=SLOW_BUFFER)
                )
            for _ in range(filtered):
                await stack.enter_async_context(ch.iopub.subscribe("status"))
            await request("bench_flood_request", {"n": N_FLOOD})
            await shell.receive()
            clock = Clock()
            async with trio.open_nursery() as nursery:
                for sub in subs:

                    async def drain(sub: Any = sub) -> None:
                        receive = sub.receive
                        for _ in range(N_FLOOD):
                            await receive()

                    nursery.start_soon(drain)
                receive = iopub.receive
                for _ in range(N_FLOOD):
                    await receive()
            rate, cpu = clock.stop(N_FLOOD)
            return {
                "rate": rate,
                "cpu": cpu,
                "fast_dropped": sum(sub.dropped for sub in subs),
                "slow_dropped": slow_sub.dropped if slow_sub is not None else 0,
            }


def run_sample(info: Info, name: str, tree: Path) -> dict[str, Any]:
    """One sample of configuration ``name`` in a fresh process importing the
    ``trio_enchannel`` found in ``tree`` (this checkout, or ``BENCH_BASELINE``)."""
    fast, slow, filtered = CONFIGS["0 subscribers" if name == BASELINE_NAME else name]
    here = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=f"{tree}{os.pathsep}{here}", PYTHONDONTWRITEBYTECODE="1")
    code = (
        "import json, sys, trio, trio_enchannel; "
        "from benchmarks.bench_subscribe import _ingest; "
        f"assert trio_enchannel.__file__.startswith({str(tree)!r}); "
        "print(json.dumps(trio.run(_ingest, json.loads(sys.argv[1]), "
        f"{fast}, {slow}, {filtered})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(info)],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def publish_cost() -> list[list[object]]:
    """The reader's own cost per message, without I/O: the check alone, and the hand-over
    to 1 and 10 subscriptions (queued, then discarded between samples)."""
    from trio_enchannel import Session
    from trio_enchannel._io._fanout import Fanout

    msg = Session().message("stream", {"name": "stdout", "text": "x" * 500}, channel="iopub")
    n = 10_000 if QUICK else 100_000
    rows: list[list[object]] = []

    async def measure(subs: int, slow: bool, filtered: int) -> float:
        fanout = Fanout()
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(subs):
                await stack.enter_async_context(fanout.subscribe(buffer_size=n, buffer_bytes=2**40))
            if slow:
                await stack.enter_async_context(fanout.subscribe(buffer_size=SLOW_BUFFER))
            for _ in range(filtered):
                await stack.enter_async_context(fanout.subscribe("status"))

            def hand_over(count: int) -> None:
                for _ in range(count):
                    if fanout.subscriptions:
                        fanout.publish(msg, 600)

            best = float("inf")
            for _ in range(5):
                start = time.process_time()
                hand_over(n)
                best = min(best, time.process_time() - start)
                for sub in fanout.subscriptions:
                    while True:
                        try:
                            sub.receive_nowait()
                        except trio.WouldBlock:
                            break
            return best / n * 1e9

    def inbox_put() -> float:
        from trio_enchannel._io._inbox import Inbox

        best = float("inf")
        for _ in range(5):
            inbox = Inbox[object]()
            start = time.process_time()
            for _ in range(n):
                inbox.put(msg, 600)
            best = min(best, time.process_time() - start)
        return best / n * 1e9

    for name, (fast, slow, filtered) in CONFIGS.items():
        rows.append([name, trio.run(measure, fast, slow, filtered)])
    rows.append(["(reference: one Inbox.put, ch.iopub's own hand-over)", inbox_put()])
    return rows


def run() -> dict[str, list[dict[str, Any]]]:
    names = list(CONFIGS) + ([BASELINE_NAME] if BASELINE else [])
    here = Path(__file__).resolve().parent.parent
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    with peer_process() as info:
        for round_ in range(ROUNDS):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for name in order:
                tree = Path(BASELINE) if name == BASELINE_NAME and BASELINE else here
                samples[name].append(run_sample(info, name, tree))
    return samples


def _spread(values: list[float], fmt: str) -> str:
    return f"{format(min(values), fmt)} - {format(max(values), fmt)}"


def report(samples: dict[str, list[dict[str, Any]]]) -> str:
    reference = statistics.median(s["cpu"] for s in samples["0 subscribers"])
    rows: list[list[object]] = []
    for name, runs in samples.items():
        rates: list[float] = [s["rate"] for s in runs]
        cpus: list[float] = [s["cpu"] for s in runs]
        rows.append(
            [
                name,
                statistics.median(rates),
                _spread(rates, ",.0f"),
                statistics.median(cpus),
                _spread(cpus, ".2f"),
                f"{statistics.median(cpus) / reference:.2f}x",
                max(s["fast_dropped"] for s in runs),
                max(s["slow_dropped"] for s in runs),
            ]
        )
    return table(
        f"IOPub ingestion with subscriptions: median and range over {ROUNDS} rounds",
        [
            "configuration",
            "msg/s",
            "range",
            "CPU us/msg",
            "range",
            "CPU vs 0 subscribers",
            "fast dropped",
            "slow dropped",
        ],
        rows,
    )


def main() -> None:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    started = time.perf_counter()
    samples = run()
    text = "\n\n".join(
        [
            f"{stamp}; {machine()}\n"
            f"per sample: {N_FLOOD} iopub messages of {FLOOD_MESSAGE_SIZE} B delivered to "
            f"ch.iopub and to every fast subscription; the slow one holds {SLOW_BUFFER}; "
            f"{ROUNDS} rounds in {time.perf_counter() - started:.0f} s; "
            f"load average {os.getloadavg()[0]:.1f}",
            report(samples),
            table(
                "The reader's hand-over per message, without I/O (CPU time, best of 5; ns)",
                ["configuration", "ns/msg"],
                publish_cost(),
            ),
        ]
    )
    print(text)
    if QUICK:
        return
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "subscribe.txt").write_text(text + "\n")
