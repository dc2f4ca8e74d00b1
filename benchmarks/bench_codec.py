"""Codec throughput: ours vs jupyter_client's Session, same process, same messages.

Measures messages/second for build+serialize+sign and for verify+deserialize of a 200-byte
``stream``, an ``execute_request``, a ``display_data`` with a 40 KB base64 PNG (an inline
plot) and one with a 1 MiB buffer.

jupyter_client is measured twice, the way its users run it: with its default packer (orjson
whenever orjson is importable, as it is in the ``bench`` extra) and with its stdlib ``json``
packer. The three codecs take turns, round after round, each timed in process CPU time; the
ratios compare ours with each within every round and report the median and the range.
"""

from __future__ import annotations

import base64
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from jupyter_client.session import Session as JCSession
from jupyter_client.session import has_orjson

from trio_enchannel import Session

from ._util import table

KEY = "5f2b1f44-5cbd-4d36-9d7b-0f1f1c3b8c1e"

CASES: list[tuple[str, str, dict[str, Any], list[bytes]]] = [
    ("stream 200 B", "stream", {"name": "stdout", "text": "x" * 200}, []),
    (
        "execute_request",
        "execute_request",
        {
            "code": "import numpy as np\nprint(np.arange(10).sum())\n",
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": True,
            "stop_on_error": True,
        },
        [],
    ),
    (
        "display_data, 40 KB base64 PNG",
        "display_data",
        {
            "data": {"image/png": base64.b64encode(os.urandom(30_000)).decode("ascii")},
            "metadata": {},
            "transient": {},
        },
        [],
    ),
    (
        "display_data + 1 MiB buffer",
        "display_data",
        {"data": {"text/plain": "<array>"}, "metadata": {}, "transient": {}},
        [os.urandom(1 << 20)],
    ),
]


def run() -> list[list[object]]:
    rows: list[list[object]] = []
    for case in CASES:
        rows.extend(measure(*case))
    return rows


#: jupyter_client's packers: its default (orjson when importable) and the stdlib one.
JC_PACKERS = ("orjson", "json")

#: Rounds per case: in each, every codec runs once, one after the other (interleaved), so a
#: change of load hits all of them alike; ratios are taken within each round.
ROUNDS = 7


def _jc_session(packer: str) -> Any:
    if packer == "orjson" and not has_orjson:
        raise SystemExit("bench_codec: orjson is not importable; install the 'bench' extra")
    return JCSession(key=KEY.encode(), packer=packer, unpacker=packer)


def _cpu_rate(fn: Callable[[int], object], n: int) -> float:
    """Operations per second of process CPU time for one ``fn(n)`` (CPU time depends much
    less on the other jobs of a shared machine than wall-clock time does)."""
    start = time.process_time()
    fn(n)
    return n / max(time.process_time() - start, 1e-9)


def measure(
    label: str, msg_type: str, content: dict[str, Any], buffers: list[bytes]
) -> list[list[object]]:
    ours = Session(KEY)
    n = 5_000
    parent = ours.message("execute_request", {"code": ""})

    def build_ours(k: int) -> None:
        for _ in range(k):
            ours.serialize(
                ours.message(msg_type, content, parent=parent, buffers=buffers),
                identities=(),
            )

    # Pre-build distinct messages so the replay guard sees fresh signatures.
    ours_frames = [
        [
            bytes(f) if not isinstance(f, bytes) else f
            for f in ours.serialize(ours.message(msg_type, content, parent=parent, buffers=buffers))
        ]
        for _ in range(n)
    ]

    def parse_ours(k: int) -> None:
        receiver = Session(KEY)
        for frames in ours_frames[:k]:
            receiver.deserialize(frames)

    codecs: dict[str, tuple[Callable[[int], None], Callable[[int], None]]] = {
        "ours": (build_ours, parse_ours)
    }
    for packer in JC_PACKERS:
        codecs[packer] = _jc_codec(packer, msg_type, content, buffers, n)
    build: dict[str, list[float]] = {name: [] for name in codecs}
    parse: dict[str, list[float]] = {name: [] for name in codecs}
    for _ in range(ROUNDS):
        for name, (build_fn, parse_fn) in codecs.items():
            build[name].append(_cpu_rate(build_fn, n))
            parse[name].append(_cpu_rate(parse_fn, n))
    rows = []
    for what, rates in (
        (f"{label}: build+serialize+sign", build),
        (f"{label}: verify+deserialize", parse),
    ):
        row: list[object] = [what, max(rates["ours"])]
        for packer in JC_PACKERS:
            ratios = sorted(o / j for o, j in zip(rates["ours"], rates[packer], strict=True))
            row += [
                max(rates[packer]),
                f"{statistics.median(ratios):.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})",
            ]
        rows.append(row)
    return rows


def _jc_codec(
    packer: str, msg_type: str, content: dict[str, Any], buffers: list[bytes], n: int
) -> tuple[Callable[[int], None], Callable[[int], None]]:
    jc = _jc_session(packer)
    jc_parent = jc.msg("execute_request", {"code": ""})

    def build_jc(k: int) -> None:
        for _ in range(k):
            msg = jc.msg(msg_type, content, parent=jc_parent["header"])
            jc.serialize(msg) + buffers

    jc_frames = [
        jc.serialize(jc.msg(msg_type, content, parent=jc_parent["header"])) + buffers
        for _ in range(n)
    ]

    def parse_jc(k: int) -> None:
        receiver = _jc_session(packer)
        for frames in jc_frames[:k]:
            _, rest = receiver.feed_identities(frames)
            receiver.deserialize(rest)

    return build_jc, parse_jc


def main() -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = run()
    print(
        table(
            f"Codec throughput (messages per CPU second, best of {ROUNDS} interleaved rounds; "
            f"ratio: median over the rounds (range); load average {load:.1f})",
            [
                "operation",
                "trio-enchannel",
                "jupyter_client (orjson)",
                "ratio",
                "jupyter_client (json)",
                "ratio",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
