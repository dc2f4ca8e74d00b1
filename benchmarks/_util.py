"""Small helpers shared by the benchmarks: timing and ratio tables."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence


def rate(fn: Callable[[int], object], n: int, *, repeat: int = 5) -> float:
    """Best-of-``repeat`` operations per second of ``fn(n)``, which performs ``n`` operations."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(n)
        best = min(best, time.perf_counter() - start)
    return n / best


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table (also valid reStructuredText ``simple`` table)."""
    cells = [[str(c) for c in header], *[[_fmt(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    rule = "  ".join("=" * w for w in widths)
    lines = [
        title,
        "",
        rule,
        "  ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True)),
        rule,
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells[1:]]
    lines.append(rule)
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}"
    return str(value)
