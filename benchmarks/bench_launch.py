"""Kernel launch latency: ``open_kernel`` vs jupyter_client's ``start_new_kernel``, same run.

For each round, both launchers start an ipykernel (``python3``), wait until it is ready, run
``1 + 1`` and wait for the reply and its outputs; then the kernel is shut down gracefully.
Measured per launcher, per round:

* **first reply**: from the launch call to the first execute reply (what a user waits for);
* **shutdown**: from asking for the shutdown until the process is gone and cleaned up.

Rounds alternate which launcher goes first, so a warm page cache or a busy moment is shared
fairly. Target: ``open_kernel`` no slower than jupyter_client for the first reply.

Run: ``python benchmarks/bench_launch.py`` or ``python -m benchmarks launch``;
``BENCH_LAUNCH_ROUNDS=N`` sets the number of rounds (default 7), ``BENCH_QUICK=1`` runs two
rounds and writes no result files.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import trio

if __package__ in (None, ""):  # run as a script: python benchmarks/bench_launch.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks._util import table
else:
    from ._util import table

from trio_enchannel import open_kernel

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
ROUNDS = 2 if QUICK else int(os.environ.get("BENCH_LAUNCH_ROUNDS", "7"))
KERNEL = "python3"
CODE = "1 + 1"


def ours_once() -> tuple[float, float]:
    """(seconds to the first execute reply, seconds to shut down) with open_kernel."""

    async def run() -> tuple[float, float]:
        start = time.perf_counter()
        async with open_kernel(KERNEL) as kernel:
            result = await kernel.client.execute(CODE)
            first_reply = time.perf_counter() - start
            assert result.status == "ok", result
            stop = time.perf_counter()
        shutdown = time.perf_counter() - stop
        assert kernel.returncode == 0, kernel.exit_reason
        return first_reply, shutdown

    return trio.run(run)


def jupyter_client_once() -> tuple[float, float]:
    """(seconds to the first execute reply, seconds to shut down) with jupyter_client."""
    from jupyter_client.manager import start_new_kernel

    start = time.perf_counter()
    km, kc = start_new_kernel(kernel_name=KERNEL, startup_timeout=60)
    reply = kc.execute_interactive(CODE, timeout=60, output_hook=lambda msg: None)
    first_reply = time.perf_counter() - start
    assert reply["content"]["status"] == "ok", reply
    stop = time.perf_counter()
    kc.stop_channels()
    km.shutdown_kernel(now=False)
    shutdown = time.perf_counter() - stop
    return first_reply, shutdown


def machine() -> str:
    import jupyter_client
    import zmq

    cpu = platform.processor() or platform.machine()
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, libzmq {zmq.zmq_version()}, "
        f"pyzmq {zmq.__version__}, jupyter_client {jupyter_client.__version__}"  # type: ignore[attr-defined]
    )


def run() -> dict[str, list[tuple[float, float]]]:
    samples: dict[str, list[tuple[float, float]]] = {"ours": [], "jupyter_client": []}
    ours_once()  # warm up imports and the page cache for both
    jupyter_client_once()
    for i in range(ROUNDS):
        order = ["ours", "jupyter_client"] if i % 2 == 0 else ["jupyter_client", "ours"]
        for who in order:
            samples[who].append(ours_once() if who == "ours" else jupyter_client_once())
        print(
            f"round {i + 1}/{ROUNDS}: first reply ours {samples['ours'][-1][0]:.3f} s, "
            f"jupyter_client {samples['jupyter_client'][-1][0]:.3f} s",
            flush=True,
        )
    return samples


def report(samples: dict[str, list[tuple[float, float]]]) -> str:
    rows: list[list[object]] = []
    for index, label in ((0, "launch to first execute reply (s)"), (1, "shutdown (s)")):
        ours = [s[index] for s in samples["ours"]]
        theirs = [s[index] for s in samples["jupyter_client"]]
        ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
        ratio = theirs_median / ours_median
        per_round = sorted(
            t[index] / o[index]
            for o, t in zip(samples["ours"], samples["jupyter_client"], strict=True)
        )
        rows.append(
            [
                label,
                f"{ours_median:.3f} (min {min(ours):.3f})",
                f"{theirs_median:.3f} (min {min(theirs):.3f})",
                f"{ratio:.2f}x",
                f"{per_round[0]:.2f} - {per_round[-1]:.2f}",
                "yes" if index == 1 or ratio >= 1.0 else "NO",
            ]
        )
    rows[1][-1] = "-"
    return table(
        f"Kernel launch ({KERNEL}): median of {ROUNDS} rounds (ratio > 1: open_kernel is faster)",
        ["measurement", "open_kernel", "jupyter_client", "ratio", "ratio range", "no slower"],
        rows,
    )


def main() -> None:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    samples = run()
    text = f"{stamp}; {machine()}; load average {os.getloadavg()[0]:.1f}\n\n{report(samples)}"
    print(text)
    if QUICK:
        return
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "launch.txt").write_text(text + "\n")
    (out / "launch.json").write_text(
        json.dumps({"date": stamp, "machine": machine(), "samples": samples}, indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
