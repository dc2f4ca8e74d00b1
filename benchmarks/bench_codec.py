"""Codec throughput: ours vs jupyter_client's Session, same process, same messages.

Measures messages/second for build+serialize+sign and for verify+deserialize of a 200-byte
``stream``, an ``execute_request`` and a ``display_data`` with a 1 MiB buffer.

jupyter_client is measured twice, the way its users run it: with its default packer (orjson
whenever orjson is importable, as it is in the ``bench`` extra) and with its stdlib ``json``
packer. The ratios compare ours with each.
"""

from __future__ import annotations

import os
from typing import Any

from jupyter_client.session import Session as JCSession
from jupyter_client.session import has_orjson

from trio_enchannel import Session

from ._util import rate, table

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


def _jc_session(packer: str) -> Any:
    if packer == "orjson" and not has_orjson:
        raise SystemExit("bench_codec: orjson is not importable; install the 'bench' extra")
    return JCSession(key=KEY.encode(), packer=packer, unpacker=packer)


def measure(
    label: str, msg_type: str, content: dict[str, Any], buffers: list[bytes]
) -> list[list[object]]:
    ours = Session(KEY)
    n = 20_000
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

    b_ours, p_ours = rate(build_ours, n), rate(parse_ours, n)
    build: list[object] = [f"{label}: build+serialize+sign", b_ours]
    parse: list[object] = [f"{label}: verify+deserialize", p_ours]
    for packer in JC_PACKERS:
        b_jc, p_jc = _measure_jc(packer, msg_type, content, buffers, n)
        build += [b_jc, f"{b_ours / b_jc:.2f}x"]
        parse += [p_jc, f"{p_ours / p_jc:.2f}x"]
    return [build, parse]


def _measure_jc(
    packer: str, msg_type: str, content: dict[str, Any], buffers: list[bytes], n: int
) -> tuple[float, float]:
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

    return rate(build_jc, n), rate(parse_jc, n)


def main() -> None:
    rows = run()
    print(
        table(
            "Codec throughput (messages/second, best of 5)",
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
